"""`python -m figures --quick`: every figure written, its CSV equal to the run records, and
the trends the paper claims (knots and the Lipschitz bound fall as lambda grows); the paper
profile: its configs are DeepSplines' recipe and grids, and a tiny version of it (2 epochs)
makes every figure that applies, with two hidden layers."""
import csv
import dataclasses
import hashlib
import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from figures import claims as claims_module
from figures import make
from figures.__main__ import main as figures_main
from figures.common import baseline_choice
from figures.make import FIGURES, figure_sweeps
from figures.profiles import PROFILES, SWEEPS
from figures.run import generate
from reference.exceptions import SolveFailed
from reference.training import RunConfig

CSV_COLUMNS = {
    "lambda_error_rate": {"dataset", "activation", "reg", "lam", "seed", "key", "value"},
    "lambda_sparsity": {"dataset", "activation", "reg", "lam", "seed", "key", "value",
                        "curve"},
    "lambda_lipschitz": {"dataset", "activation", "reg", "lam", "seed", "key", "value"},
    "lambda_lipschitz_ladder": {"dataset", "reg", "lam", "seed", "key", "value", "method"},
    "activations": {"lam", "key", "layer", "neuron", "x", "sigma", "knot"},
    "decision_boundaries": {"dataset", "activation", "width", "key", "test_accuracy"},
    "representer": {"neuron", "z", "optimum", "trained", "knot"},
    "width_table": {"dataset", "activation", "width", "seeds", "test_accuracy_mean",
                    "test_accuracy_std"},
    "claims": {"dataset", "network", "lam", "mu", "runs", "error_rate_mean", "knots_mean",
               "bound_p2_mean", "bound_p1_mean", "keys"},
    "baseline_weight_decay": {"dataset", "activation", "mu", "seed", "split", "chosen", "key",
                              "value"},
    "spline_size": {"size", "seed", "quantity", "key", "value"},
}
TABLES = {"claims"}           # registered entries that write a table (.md, .csv), no picture


@pytest.fixture
def quick(quick_figures):
    return quick_figures


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def record(out, key):
    return json.loads((out / "results" / "records" / f"{key}.json").read_text())


def check_written(out, report, skipped):
    """Every figure of FIGURES but `skipped` written with its data; the skipped ones named
    in the index with the reason."""
    assert set(report) == set(FIGURES)
    index = (out / "index.md").read_text()
    for name in FIGURES:
        assert f"## {name}" in index and f"--only {name}" in index
        if name in skipped:
            assert "does not apply" in report[name]["skipped"], report[name]
            assert f"Not made: this figure {report[name]['skipped']}" in index
            assert not (out / f"{name}.csv").exists()
            continue
        assert "error" not in report[name] and "skipped" not in report[name], report[name]
        for ext in ("png", "pdf") if name not in TABLES else ("md",):
            assert (out / f"{name}.{ext}").stat().st_size > 1000, name
        rows = read_csv(out / f"{name}.csv")
        assert rows and CSV_COLUMNS[name] <= set(rows[0]), name


def test_every_figure_is_written_with_its_data(quick):
    out, report = quick
    check_written(out, report, skipped={"spline_size"})       # quick runs no size sweep
    assert (out / "width_table.md").read_text().startswith("| data set |")
    assert (out / "claims.md").read_text() in (out / "index.md").read_text()


@pytest.mark.parametrize("name, value", [
    ("lambda_error_rate", lambda r, row: 100 * (1 - r["test_accuracy"])),
    ("lambda_sparsity", lambda r, row: r["sparsify"]["knots_before"]
     if row["curve"].startswith("TV2, Adam") else sum(r["knots"])),
    ("lambda_lipschitz", lambda r, row: r["lipschitz_bound"]),
    ("lambda_lipschitz_ladder", lambda r, row: r["ladder"]["2"][row["method"]]["value"]),
])
def test_csv_values_equal_the_run_records(quick, name, value):
    out, _ = quick
    for row in read_csv(out / f"{name}.csv"):
        expected = value(record(out, row["key"]), row)
        assert float(row["value"]) == pytest.approx(expected, rel=1e-12, abs=0), row


def test_width_table_is_the_mean_of_the_records(quick):
    out, _ = quick
    records = [json.loads(p.read_text()) for p in (out / "results" / "records").glob("*.json")]
    for row in read_csv(out / "width_table.csv"):
        accs = [r["test_accuracy"] for r in records
                if r["dataset"] == row["dataset"] and r["activation"] == row["activation"]
                and r["hidden"] == [int(row["width"])]
                and (r["activation"] != "spline"
                     or (r["run_config"]["lam"] == 1e-4 and r["run_config"]["reg"] == "tv2"
                         and not r["run_config"]["prox"]))]
        assert len(accs) == int(row["seeds"])
        assert float(row["test_accuracy_mean"]) == pytest.approx(np.mean(accs), rel=1e-12)


@pytest.mark.parametrize("name", ["lambda_sparsity", "lambda_lipschitz"])
def test_knots_and_bound_fall_as_lambda_grows(quick, name):
    """The paper's trends on the quick sweep: Spearman correlation of the mean over seeds
    with lambda below -0.5, for each data set and regulariser."""
    out, _ = quick
    rows = [r for r in read_csv(out / f"{name}.csv") if r["activation"] == "spline"]
    for dataset in ("circle", "s_shape"):
        for reg in ("tv2", "bv2"):
            sel = [r for r in rows if r["dataset"] == dataset and r["curve"] == reg]
            lams = sorted({float(r["lam"]) for r in sel})
            means = [np.mean([float(r["value"]) for r in sel if float(r["lam"]) == lam])
                     for lam in lams]
            rho = spearmanr(lams, means).statistic
            assert rho < -0.5, (name, dataset, reg, lams, means, rho)


def test_a_failing_figure_is_named_and_the_others_are_written(quick, monkeypatch, capsys):
    out, _ = quick

    def broken(sweeps, profile, out):
        raise RuntimeError("deliberately broken")
    monkeypatch.setitem(FIGURES, "activations", (broken, ("lambda",)))
    (out / "width_table.png").unlink()
    status = figures_main(["--quick", "--out", str(out), "--workers", "0",
                           "--only", "activations,width_table"])
    assert status == 1
    err = capsys.readouterr().err
    assert "figure activations could not be made: RuntimeError: deliberately broken" in err
    assert (out / "width_table.png").stat().st_size > 1000          # made again from cache
    assert "FAILED: RuntimeError: deliberately broken" in (out / "index.md").read_text()


def test_unknown_figure_name(capsys, tmp_path):
    assert figures_main(["--quick", "--out", str(tmp_path), "--only", "nope"]) == 2
    assert "--only: unknown figures ['nope']" in capsys.readouterr().err


def test_figures_fail_on_failed_runs():
    with pytest.raises(RuntimeError, match="1 run.s. failed, e.g. abc: boom"):
        make.ok_records([{"key": "abc", "status": "failed", "error": "boom"}])


@pytest.mark.parametrize("argv, name", [(["--workers", "-1"], "--workers"),
                                        (["--scheduler", "foo"], "--scheduler")])
def test_bad_engine_arguments_create_nothing(argv, name, tmp_path, capsys):
    out = tmp_path / "figs"
    assert figures_main(["--quick", "--out", str(out), *argv]) == 2
    assert name in capsys.readouterr().err and not out.exists()


# ------------------------------------------------------------------ the paper profile
DECADES = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2]
PAPER_SIZES = [3, 5, 7, 11, 15, 21, 31, 51, 81, 101, 121, 151]
# sha256 of the comma-joined keys of each sweep of the profiles of 0.1, computed before the
# profiles were generalised: the cached records of those runs stay valid
CLASSIC_KEYS = {("quick", "lambda"): (44, "cce70635e03e1da3"),
                ("quick", "prox"): (16, "578aa07e25ef4929"),
                ("quick", "width"): (48, "21178177dca6e23b"),
                ("default", "lambda"): (170, "364df930c4e7858c"),
                ("default", "prox"): (70, "0854c5eebad7684e"),
                ("default", "width"): (120, "9fc9934d08910479"),
                ("twodnet", "lambda"): (170, "0f83c32136e9bf95"),
                ("twodnet", "prox"): (70, "84dc664205e0817a"),
                ("twodnet", "width"): (120, "e481759031387c5c")}


@pytest.mark.parametrize("profile, sweep", sorted(CLASSIC_KEYS))
def test_the_classic_profiles_keep_their_run_keys(profile, sweep):
    keys = [c.key() for c in SWEEPS[sweep](PROFILES[profile])]
    digest = hashlib.sha256(",".join(keys).encode()).hexdigest()[:16]
    assert (len(keys), digest) == CLASSIC_KEYS[profile, sweep]
    assert PROFILES[profile].sweeps == ("lambda", "prox", "width")


def test_paper_profile_is_deepsplines_recipe_and_grids():
    paper = PROFILES["paper"]
    assert paper.sweeps == ("lambda", "size")
    lam_sweep, size_sweep = paper.lambda_configs(), paper.size_configs()
    assert len(lam_sweep) == 250 and len(size_sweep) == 60
    assert len({c.key() for c in lam_sweep + size_sweep}) == 310
    for c in lam_sweep + size_sweep:          # DeepSplines' run_twoDnet.py, every run
        assert (c.epochs, c.batch_size, c.lr, c.milestones, c.convention, c.test_grid) == \
            (500, 10, 1e-3, (0.88, 0.96), "deepsplines", "centres"), c
        assert c.seed in range(5)
    splines = [c for c in lam_sweep if c.activation == "spline"]
    baselines = [c for c in lam_sweep if c.activation != "spline"]
    assert len(splines) == 100 and len(baselines) == 150
    for c in splines + size_sweep:
        assert (c.size if c in splines else 21, c.range_, c.spline_init, c.first_bias, c.mu,
                c.sparsify, c.prox) == (21, 1.0, "leaky_relu", False, 1e-5, "auto", False), c
    assert {(c.dataset, c.reg, c.lam, c.seed) for c in splines} == {
        (d, r, lam, s) for d in ("circle", "s_shape") for r in ("tv2", "bv2") for lam in DECADES
        for s in range(5)}
    assert {c.hidden for c in lam_sweep} == {(4, 4)}
    assert all(c.first_bias and c.sparsify is None for c in baselines)
    assert {(c.dataset, c.activation, c.mu, c.seed) for c in baselines} == {
        (d, a, mu, s) for d in ("circle", "s_shape") for a in ("relu", "prelu", "leaky_relu")
        for mu in DECADES for s in range(5)}
    assert {(c.dataset, c.hidden, c.reg, c.lam) for c in size_sweep} == {
        ("circle", (2,), "bv2", 1e-4)}
    assert sorted({c.size for c in size_sweep}) == PAPER_SIZES


def test_figures_read_the_sweeps_the_profile_runs():
    quick, paper = PROFILES["quick"], PROFILES["paper"]
    assert figure_sweeps("lambda_sparsity", quick) == (("lambda", "prox"), None)
    assert figure_sweeps("lambda_sparsity", paper) == (("lambda",), None)   # prox optional
    assert figure_sweeps("decision_boundaries", quick) == (("width",), None)
    assert figure_sweeps("decision_boundaries", paper) == (("lambda",), None)
    assert figure_sweeps("spline_size", paper) == (("size",), None)
    assert figure_sweeps("representer", paper) == (("lambda", "size"), None)
    assert figure_sweeps("representer", quick) == (("lambda",), None)
    sweeps, reason = figure_sweeps("width_table", paper)
    assert sweeps is None and reason.startswith("does not apply to the paper profile: it "
                                                "reads the width sweep")


def fake_record(key, seed, valid, test, **config):
    """A sweep record with the fields the baseline choice and the claims table read."""
    run_config = RunConfig(seed=seed, **config).to_dict()
    return {"key": key, "status": "ok", "run_config": run_config,
            "activation": run_config["activation"], "valid_accuracy": valid,
            "test_accuracy": test, "knots": [], "lipschitz_bound": 1.0,
            "ladder": {"1": {"theorem1_bv2": {"value": 1.0}}}}


def test_baseline_weight_decay_is_chosen_on_validation_not_test():
    records = [fake_record(f"{mu}-{seed}", seed, valid, test, activation="relu", mu=mu)
               for mu, valid, test in ((1e-4, 0.90, 0.99), (1e-3, 0.95, 0.80), (1e-2, 0.95, 0.7))
               for seed in (0, 1)]
    choice = baseline_choice(records)[("circle", "relu")]
    assert choice["mu"] == 1e-3                   # best validation; a tie: the smaller mu
    assert choice["valid_accuracy"] == pytest.approx(0.95) and choice["seeds"] == 2


def test_claims_say_plainly_when_a_claim_does_not_show_up(tmp_path):
    """Knots that grow with lambda, a bound that falls, a spline network 5 points worse than
    the best baseline at the largest lambda: the verdicts say which claims show up."""
    lams, records = [1e-4, 1e-3, 1e-2], []
    for dataset in ("circle", "s_shape"):
        for reg in ("tv2", "bv2"):
            for i, lam in enumerate(lams):
                for seed in range(3):
                    r = fake_record(f"{dataset}{reg}{lam}{seed}", seed, 0.9,
                                    0.95 - 0.05 * (i == 2), dataset=dataset, reg=reg, lam=lam)
                    r["knots"] = [10 + 5 * i + seed]
                    r["lipschitz_bound"] = 100.0 / (i + 1) + seed
                    r["ladder"] = {"1": {"theorem1_bv2": {"value": 50.0 / (i + 1)}}}
                    records.append(r)
        records += [fake_record(f"{dataset}{act}{seed}", seed, 0.9, 0.95, dataset=dataset,
                                activation=act) for act in ("relu", "prelu", "leaky_relu")
                    for seed in range(3)]
    profile = dataclasses.replace(PROFILES["quick"], lams=tuple(lams), seeds=(0, 1, 2))
    files, text = claims_module.claims({"lambda": records}, profile, tmp_path)
    assert (tmp_path / "claims.md").read_text() == text + "\n"
    assert ("- circle, TV2: fewer knots as lambda grows: **does not show up**, Spearman rho "
            "+0.9") in text
    assert "; but the mean rises from lambda 0.0001 -> 0.001: 11 -> 16; 0.001 -> 0.01: 16 ->" \
        in text
    assert "- s_shape, BV2: a lower Lipschitz bound, p = 2 as lambda grows: shows up" in text
    assert "- s_shape, BV2: a lower Lipschitz bound, p = 1 as lambda grows: shows up" in text
    assert ("- circle, BV2: accuracy comparable to the best baseline (relu, mu 0.0001, 5% test "
            "error): **does not show up** at lambda 0.01 (+5.00 pp)") in text
    rows = read_csv(tmp_path / "claims.csv")
    assert rows[0]["network"] == "spline TV2" and float(rows[0]["knots_mean"]) == 11.0
    assert len(read_csv(tmp_path / "claims_spearman.csv")) == 2 * 2 * 3


@pytest.fixture(scope="module")
def paper_tiny(tmp_path_factory):
    """The paper profile shrunk to 2 epochs of batch 250, 2 seeds, 2 lambdas, 2 weight
    decays, 2 spline sizes (44 runs): every figure that applies to it, with its two hidden
    layers and its size sweep."""
    paper = PROFILES["paper"]
    tiny = dataclasses.replace(paper, lams=(1e-4, 1e-2), seeds=(0, 1), baseline_mus=(1e-5, 1e-2),
                               recipe={**paper.recipe, "epochs": 2, "batch_size": 250},
                               size_grid={**paper.size_grid, "size": [3, 21]})
    out = tmp_path_factory.mktemp("paper_tiny")
    report = generate(tiny, out=out, workers=2, progress=False, log=lambda *a: None)
    return out, report, tiny


def test_paper_profile_makes_every_figure_that_applies(paper_tiny):
    out, report, _ = paper_tiny
    check_written(out, report, skipped={"width_table"})
    assert "Verdicts (a trend shows up when" in (out / "index.md").read_text()
    for row in read_csv(out / "spline_size.csv"):
        r = record(out, row["key"])
        expected = {"knots": sum(r["knots"]), "error_rate": 100 * (1 - r["test_accuracy"]),
                    "lipschitz_bound": r["lipschitz_bound"]}[row["quantity"]]
        assert r["run_config"]["size"] == int(row["size"]) and r["hidden"] == [2]
        assert float(row["value"]) == pytest.approx(expected, rel=1e-12, abs=0)
    layers = {row["layer"] for row in read_csv(out / "activations.csv")}
    assert layers == {"1", "3"}                          # both spline layers drawn
    assert "M lambda = 15" in report["representer"]["summary"]


def test_paper_baselines_are_shown_at_their_validation_choice(paper_tiny):
    out, _, _ = paper_tiny
    rows = read_csv(out / "baseline_weight_decay.csv")
    for dataset in ("circle", "s_shape"):
        for act in ("relu", "prelu", "leaky_relu"):
            sel = [r for r in rows if r["dataset"] == dataset and r["activation"] == act]
            valid = {mu: np.mean([float(r["value"]) for r in sel if r["mu"] == mu
                                  and r["split"] == "valid"]) for mu in {r["mu"] for r in sel}}
            best = min(sorted(valid, key=float), key=lambda mu: valid[mu])   # lowest error
            assert {r["mu"] for r in sel if r["chosen"] == "True"} == {best}
            shown = [r for r in read_csv(out / "lambda_error_rate.csv")
                     if r["dataset"] == dataset and r["activation"] == act
                     and r["chosen"] == "True"]
            assert {r["mu"] for r in shown} == {best} and len(shown) == 2
            boundary = [r for r in read_csv(out / "decision_boundaries.csv")
                        if r["dataset"] == dataset and r["activation"] == act]
            assert [r["mu"] for r in boundary] == [best]
    for value in (r["value"] for r in rows):
        assert 0.0 <= float(value) <= 100.0


def test_claims_table_is_the_records_statistics(paper_tiny):
    """claims.csv: each row's means and stds recomputed from the records of its keys; the
    Spearman rows from scipy over the same runs."""
    out, _, _ = paper_tiny
    for row in read_csv(out / "claims.csv"):
        runs = [record(out, key) for key in row["keys"].split(";")]
        assert len(runs) == int(row["runs"]) == 2
        errors = [100 * (1 - r["test_accuracy"]) for r in runs]
        assert float(row["error_rate_mean"]) == pytest.approx(np.mean(errors), rel=1e-12)
        assert float(row["error_rate_std"]) == pytest.approx(np.std(errors, ddof=1),
                                                             rel=1e-9, abs=1e-12)
        bounds = [r["ladder"]["1"]["theorem1_bv2"]["value"] for r in runs]
        assert float(row["bound_p1_mean"]) == pytest.approx(np.mean(bounds), rel=1e-12)
        if row["network"].startswith("spline"):
            assert float(row["knots_mean"]) == np.mean([sum(r["knots"]) for r in runs])
        else:
            assert row["knots_mean"] == ""
    splines = [json.loads(p.read_text()) for p in (out / "results" / "records").glob("*.json")]
    splines = [r for r in splines if r["activation"] == "spline" and r["hidden"] == [4, 4]]
    for row in read_csv(out / "claims_spearman.csv"):
        sel = [r for r in splines if r["dataset"] == row["dataset"]
               and r["run_config"]["reg"] == row["reg"]]
        values = [sum(r["knots"]) if row["quantity"] == "knots" else r["lipschitz_bound"]
                  if row["quantity"] == "bound_p2" else r["ladder"]["1"]["theorem1_bv2"]["value"]
                  for r in sel]
        expected = spearmanr([r["run_config"]["lam"] for r in sel], values)
        assert int(row["runs"]) == len(sel) == 4
        if np.isfinite(expected.statistic):
            assert float(row["rho"]) == pytest.approx(expected.statistic, rel=1e-12)
            assert (row["shows"] == "True") == (expected.statistic < 0
                                                and expected.pvalue < 0.05)


def test_representer_names_the_run_it_could_not_certify(paper_tiny, monkeypatch, tmp_path):
    """A layer problem the solver does not certify (here: the (4, 4) network's, made to
    fail) is named with the solver's status, and the next run of representer_runs (the size
    sweep's network) is shown instead; with none certified, the figure fails by name."""
    out, _, tiny = paper_tiny
    solve = make.convex.solve_layer

    def failing(net, layer, *args, **kwargs):
        if layer == 3:                                  # the (4, 4) network's last layer
            raise SolveFailed("solve: CLARABEL ended with status 'optimal_inaccurate' "
                              "(attempts: ...)")
        return solve(net, layer, *args, **kwargs)
    monkeypatch.setattr(make.convex, "solve_layer", failing)
    report = generate(tiny, out=tmp_path, results=out / "results", workers=0,
                      only=["representer"], progress=False, log=lambda *a: None)
    summary = report["representer"]["summary"]
    assert summary.startswith("circle, BV2, hidden [2], K = 21, lambda 0.0001 per batch")
    assert ("Tried first: circle, TV2, hidden [4, 4], K = 21, lambda 0.01 (seed 0): not "
            "certified, solve: CLARABEL ended with status 'optimal_inaccurate'.") in summary
    no_fallback = dataclasses.replace(tiny, representer_runs=())
    report = generate(no_fallback, out=tmp_path, results=out / "results", workers=0,
                      only=["representer"], progress=False, log=lambda *a: None)
    assert report["representer"]["error"].startswith(
        "SolveFailed: representer: no run's layer problem was certified: circle, TV2")
