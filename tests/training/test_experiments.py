"""Runs as data (issue 8, item 1): RunConfig, its key, run() and its summary."""
import hashlib
import json
import subprocess
import sys
from dataclasses import fields

import pytest

from reference.io._files import dumps_json
from reference.lipschitz import _bounds as lipschitz
from reference.training import _experiments as experiments
from reference.training._experiments import RunConfig, run, run_training
from reference.training._sweep import without_timings

TINY = {"epochs": 2, "size": 9}
TRAIN_JSON_KEYS = ("dataset", "activation", "hidden", "loss", "test_accuracy", "valid_accuracy",
                   "train_accuracy", "train_loss", "objective", "tv2", "bv2", "knots",
                   "knot_tolerance", "lipschitz_bound", "lipschitz_bound_form", "seconds",
                   "config")


@pytest.fixture(scope="module")
def spline_run():
    config = RunConfig(hidden=(2,), sparsify="auto", seed=3, **TINY)
    return config, *run(config)


def test_key_is_the_documented_hash_and_the_same_in_another_process():
    config = RunConfig(dataset="s_shape", hidden=(8, 8), lam=0.1, seed=4, sparsify="auto")
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    assert config.key() == hashlib.sha256(text.encode()).hexdigest()[:16]
    code = ("from reference.training._experiments import RunConfig; "
            "print(RunConfig(dataset='s_shape', "
            "hidden=[8, 8], lam=1e-1, seed=4, sparsify='auto').key())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == config.key()


def test_every_field_changes_the_key_and_spellings_do_not():
    base = RunConfig()
    other = {"dataset": "s_shape", "activation": "relu", "hidden": (3,), "reg": "bv2",
             "lam": 0.5, "size": 11, "range_": 3.0, "epochs": 7, "seed": 1, "batch_size": 8,
             "lr": 0.02, "spline_init": "relu", "sparsify": "auto", "acc_drop": 0.01,
             "prox": True, "data_path": "x", "mu": 1e-5, "milestones": (0.88, 0.96),
             "convention": "deepsplines", "first_bias": False, "test_grid": "centres"}
    assert set(other) == {f.name for f in fields(RunConfig)}
    keys = {RunConfig(**{**base.to_dict(), name: value}).key() for name, value in other.items()}
    assert len(keys | {base.key()}) == len(other) + 1
    assert RunConfig(hidden=2, lam=1, size=21.0).key() == RunConfig(hidden=(2,), lam=1.0).key()
    assert RunConfig(milestones=[0.96, 0.88]).key() == RunConfig(milestones=(0.88, 0.96)).key()
    assert RunConfig.from_dict(base.to_dict()) == base
    assert RunConfig.from_dict(json.loads(json.dumps(RunConfig(**other).to_dict()))) == \
        RunConfig(**other)


@pytest.mark.parametrize("field, value", [
    ("dataset", "moons"), ("activation", "identity"), ("hidden", ()), ("hidden", (2, 0)),
    ("hidden", "2"), ("reg", "tv1"), ("lam", -1.0), ("lam", float("nan")), ("range_", 0.0),
    ("lr", 0), ("size", 1), ("size", 2.5), ("epochs", 0), ("seed", -1), ("batch_size", 0),
    ("sparsify", -0.1), ("sparsify", "yes"), ("acc_drop", 1.5), ("prox", "yes"),
    ("data_path", ""), ("spline_init", "tanh"), ("seed", True), ("mu", -1e-5),
    ("milestones", (0.5, 1.5)), ("milestones", (0.0,)), ("milestones", 0.5),
    ("convention", "torch"), ("first_bias", "no"), ("test_grid", "middle")])
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field}: expected"):
        RunConfig(**{field: value})


def test_the_keys_of_0_1_configs_are_unchanged():
    """The fields added in 0.2 (mu, milestones, convention, first_bias, test_grid) are
    stored only when they leave their defaults: a config of 0.1 keeps its dict and its key
    (this key was computed by 0.1's RunConfig), so stored sweep records stay valid."""
    config = RunConfig(dataset="s_shape", hidden=(4, 4), lam=1e-5, reg="bv2", size=21,
                       range_=1.0, epochs=500, batch_size=10, lr=1e-3, sparsify="auto")
    assert not set(config.to_dict()) & set(experiments.ADDED_FIELDS)
    assert config.key() == "fb9ae9fa6a70bd9a"
    paper = RunConfig(**{**config.to_dict(), "mu": 1e-5, "convention": "deepsplines"})
    assert paper.to_dict()["mu"] == 1e-5 and "first_bias" not in paper.to_dict()
    assert paper.all_fields()["first_bias"] is True and paper.key() != config.key()
    train_config = paper.train_config("logistic")
    assert (train_config.mu, train_config.milestones, train_config.convention) == \
        (1e-5, (0.75, 0.9), "deepsplines")
    with pytest.raises(ValueError, match="^test_grid: expected 'corners' for dataset 'digits'"):
        RunConfig(dataset="digits", test_grid="centres")


def test_run_follows_the_deepsplines_recipe_fields():
    """first_bias=False builds the first dense layer without bias, test_grid='centres'
    tests on DeepSplines' grid (the test accuracy recomputed there), and the summary's
    objective is DeepSplines' (mean data term) under convention='deepsplines'."""
    from reference.data import circle_labels, test_grid
    from reference.training._train import accuracy

    config = RunConfig(hidden=(4, 4), first_bias=False, test_grid="centres", mu=1e-5,
                       milestones=(0.88, 0.96), convention="deepsplines", reg="bv2",
                       range_=1.0, **TINY)
    net, summary = run(config)
    assert "bias" not in net.layers[0].params and "bias" in net.layers[2].params
    grid = test_grid("centres")
    assert summary["test_accuracy"] == accuracy(net, grid, circle_labels(grid), "logistic")
    assert summary["config"]["convention"] == "deepsplines"
    assert tuple(summary["config"]["milestones"]) == (0.88, 0.96)
    assert 0 < summary["train_loss"] < 1                   # a mean of BCE, not a sum


def test_unknown_fields():
    with pytest.raises(ValueError, match="unknown fields .*'depth'"):
        RunConfig.from_dict({"depth": 3})
    with pytest.raises(TypeError, match="unknown options"):
        run_training("circle", "spline", [2], depth=3)
    with pytest.raises(TypeError, match="config: expected a RunConfig"):
        run({"dataset": "circle"})


def test_canonical_baselines_ignore_the_spline_fields():
    relu = RunConfig(activation="relu", lam=0.5, reg="bv2", sparsify="auto", prox=True)
    assert relu.canonical() == RunConfig(activation="relu")
    spline = RunConfig(lam=0.5, reg="bv2", sparsify="auto", prox=True)
    assert spline.canonical() is spline


def test_summary_keeps_train_json_and_adds_the_ladder(spline_run):
    config, net, summary = spline_run
    assert all(key in summary for key in TRAIN_JSON_KEYS)
    assert summary["run_config"] == config.to_dict()
    assert summary["config"]["lam"] == config.lam and summary["config"]["seed"] == 3
    json.loads(dumps_json(summary))                        # strict JSON
    counts, tols = net.layers[1].spline.num_knots()
    assert summary["knots"] == [int(counts.sum())]
    assert summary["sparsify"]["knots_after"] == int(counts.sum())
    ladder = summary["ladder"]
    assert set(ladder) == {"1", "2", "inf"}
    # what reference.records requires of a stored record's ladder
    assert {p: tuple(rungs) for p, rungs in ladder.items()} == experiments.LADDER_RUNGS
    for p, rungs in ladder.items():
        for name in ("theorem1", "theorem1_bv2", "layerwise"):
            assert rungs[name]["value"] == getattr(lipschitz, name)(net, p)
        low = lipschitz.lower(net, p, box=experiments.LOWER_BOX, seed=3,
                              num_points=experiments.LOWER_POINTS,
                              rounds=experiments.LOWER_ROUNDS)
        assert rungs["lower"]["value"] == low["value"]
        chain = [rungs[n]["value"] for n in ("lower", "layerwise", "theorem1", "theorem1_bv2")]
        assert all(a <= b * (1 + 1e-12) for a, b in zip(chain, chain[1:])), chain
    sdp = ladder["2"]["lipsdp_neuron"]
    assert sdp["status"] == "optimal" and sdp["solver"] and "certificate" in sdp
    assert ladder["2"]["lower"]["value"] <= sdp["value"] * (1 + 1e-9)
    assert summary["lipschitz_bound"] == ladder["2"]["theorem1_bv2"]["value"]


def test_run_is_reproducible_and_run_training_is_run(spline_run):
    config, _, summary = spline_run
    _, again = run_training("circle", "spline", [2], sparsify="auto", seed=3, **TINY)
    assert without_timings(json.loads(dumps_json(again))) == \
        without_timings(json.loads(dumps_json(summary)))


def test_baseline_run_and_lipsdp_budget(monkeypatch):
    monkeypatch.setattr(experiments, "LIPSDP_MAX_COST", 1.0)    # below any LipSDP's cost
    _, summary = run(RunConfig(activation="prelu", **TINY))
    assert summary["knots"] == [] and summary["tv2"] == []
    sdp = summary["ladder"]["2"]["lipsdp_neuron"]
    assert sdp["value"] is None and "max_sdp_cost" in sdp["reason"]
    assert "sparsify" not in summary


def test_data_path_errors_name_the_argument():
    with pytest.raises(ValueError, match="^data_path: only the mnist"):
        run(RunConfig(data_path="somewhere", **TINY))
    with pytest.raises(ValueError, match="^--data-path: only the mnist"):
        run_training("circle", "spline", [2], data_path="somewhere", data_arg="--data-path",
                     **TINY)


def test_train_command_sparsify_auto_and_prox(capsys):
    from reference.cli import main
    assert main(["train", "--epochs", "2", "--size", "9", "--sparsify", "auto", "--acc-drop",
                 "0.01", "--prox", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["run_config"]["sparsify"] == "auto" and result["run_config"]["prox"] is True
    assert result["config"]["prox"] is True and result["sparsify"]["acc_drop_max"] == 0.01
    assert result["sparsify"]["acc_drop"] <= 0.01
    assert main(["train", "--epochs", "2", "--size", "9", "--sparsify", "auto"]) == 0
    assert "--sparsify auto: threshold" in capsys.readouterr().out


@pytest.mark.parametrize("argv, name", [
    (["train", "--sparsify", "some"], "--sparsify"), (["train", "--acc-drop", "2"], "--acc-drop"),
    (["sweep", "--results", "r", "--seeds", "3-1"], "--seeds"),
    (["sweep", "--results", "r", "--lam", "1,x"], "--lam"),
    (["sweep", "--results", "r", "--activation", "relu,tanh"], "--activation"),
    (["sweep", "--results", "r", "--workers", "-1"], "--workers"),
    (["sweep", "--results", "r", "--hidden", "2,,2"], "--hidden"),
    (["sweep", "--results", "r", "--scheduler", "localhost"], "scheduler")])
def test_bad_cli_values_name_the_argument(argv, name, capsys, tmp_path, monkeypatch):
    from reference.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err
    assert not (tmp_path / "r" / "records").exists() or not any((tmp_path / "r").rglob("*.json"))


def test_a_refused_lower_bound_leaves_the_other_rungs(monkeypatch):
    """lower refused by its size guard: value None with the reason; LipSDP still runs."""
    from reference.exceptions import TooLarge
    from reference.lipschitz import _bounds as lipschitz
    from reference.nn._network import build_mlp

    def refuse(*args, **kwargs):
        raise TooLarge("lower bound cost", 2.0, 1.0, "max_lower_cost")
    monkeypatch.setattr(lipschitz, "lower", refuse)
    out = experiments.lipschitz_ladder(build_mlp([2, 2, 1], "relu", rng=0))
    assert out["2"]["lower"]["value"] is None and "max_lower_cost" in out["2"]["lower"]["reason"]
    assert out["2"]["lipsdp_neuron"]["value"] > 0 and out["1"]["theorem1"]["value"] > 0


def test_lower_rung_goes_through_the_ladder_with_the_same_record():
    """lipschitz_ladder's lower rung is ladder.run_method("lower") with the experiments'
    budget; its record keeps the fields it had (values of lipschitz.lower with that budget)."""
    from reference.nn._network import build_mlp
    net = build_mlp([2, 3, 1], "relu", rng=0)
    out = experiments.lipschitz_ladder(net, seed=5)
    for p_name, rungs in out.items():
        low = lipschitz.lower(net, lipschitz.parse_p(p_name), box=experiments.LOWER_BOX,
                              num_points=experiments.LOWER_POINTS,
                              rounds=experiments.LOWER_ROUNDS, seed=5)
        record = rungs["lower"]
        assert list(record) == [*experiments.LOWER_FIELDS, "num_points", "rounds", "domain",
                                "kind", "seconds"]
        assert record["value"] == low["value"] and record["pair_ratio"] == low["pair_ratio"]
        assert record["x"] == low["x"].tolist() and record["seed"] == 5
        assert record["points_evaluated"] == low["points_evaluated"]
        assert (record["num_points"], record["rounds"]) == (experiments.LOWER_POINTS,
                                                            experiments.LOWER_ROUNDS)
        assert record["kind"] == "lower" and rungs["theorem1"]["kind"] == "upper"
