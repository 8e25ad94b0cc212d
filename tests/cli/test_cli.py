import json
import math
import subprocess
import sys

import numpy as np
import pytest

from reference.cli import main
from reference.io._model_file import load_model, save_model
from reference.testing import assert_numbers_only, central_difference, oracle_model, relative_error


def knot_form(spline, c):
    """(b0, b1, knots, jumps) of channel c, computed directly from the coefficients."""
    coef, t, step = spline.coefficients[c], spline.grid, spline.step
    slopes = [(coef[k + 1] - coef[k]) / step for k in range(len(coef) - 1)]
    return (coef[0] - slopes[0] * t[0], slopes[0], list(t[1:-1]),
            [slopes[k + 1] - slopes[k] for k in range(len(slopes) - 1)])


def independent_forward(net, x):
    """Sample by sample, in plain Python floats (math.fsum), with the knot form of every
    spline: output and input Jacobian (right-piece slope at a knot)."""
    outputs, jacobians = [], []
    for row in x:
        y = [float(v) for v in row]
        jac = np.eye(len(y))
        for layer in net.layers:
            if layer.kind == "dense":
                w = layer.params["weight"]
                b = layer.params.get("bias", np.zeros(w.shape[0]))
                y = [math.fsum([*(w[o, i] * y[i] for i in range(len(y))), b[o]])
                     for o in range(w.shape[0])]
                jac = w @ jac
            elif layer.kind == "spline":
                d, new = [], []
                for c, z in enumerate(y):
                    b0, b1, knots, jumps = knot_form(layer.spline, c)
                    new.append(math.fsum([b0, b1 * z, *(a * max(z - t, 0.0)
                                                        for t, a in zip(knots, jumps))]))
                    d.append(b1 + sum(a for t, a in zip(knots, jumps) if z >= t))
                y = new
                jac = np.array(d)[:, None] * jac
            elif layer.kind == "prelu":
                a = layer.params["slope"]
                d = [1.0 if z >= 0 else a[c] for c, z in enumerate(y)]
                y = [z if z >= 0 else a[c] * z for c, z in enumerate(y)]
                jac = np.array(d)[:, None] * jac
        outputs.append(y)
        jacobians.append(jac)
    return np.array(outputs), np.array(jacobians)


def test_evaluate_agrees_with_independent_computation(tmp_path):
    rng = np.random.default_rng(0)
    net = oracle_model(rng)
    model = save_model(net, tmp_path / "model.npz")
    grid = net.layers[1].spline.grid
    special = np.concatenate([grid, [grid[0] - 1e-9, grid[-1] + 1e-9, -1e6, 1e6, -40.0, 35.0]])
    x = np.concatenate([np.stack([special, special[::-1]], axis=1),
                        rng.uniform(-3, 3, (50, 2))])
    np.save(tmp_path / "x.npy", x)
    assert main(["evaluate", str(model), "--inputs", str(tmp_path / "x.npy"),
                 "--output", str(tmp_path / "out.npz")]) == 0
    out = np.load(tmp_path / "out.npz")
    ref_out, ref_jac = independent_forward(net, x)
    scale = np.maximum(np.abs(ref_out), 1.0)
    assert np.max(np.abs(out["outputs"] - ref_out) / scale) < 1e-10
    jac_scale = np.maximum(np.abs(ref_jac), 1.0)
    assert np.max(np.abs(out["input_jacobian"] - ref_jac) / jac_scale) < 1e-10
    names = {k for k in out.files if k.startswith("param_gradients/")}
    assert names == {f"param_gradients/{n}" for n, _ in net.named_params()}


def test_evaluate_parameter_gradients_pass_finite_differences(tmp_path):
    rng = np.random.default_rng(1)
    net = oracle_model(rng)
    model = save_model(net, tmp_path / "model.npz")
    x = rng.uniform(-1.2, 1.2, (30, 2))
    np.save(tmp_path / "x.npy", x)
    main(["evaluate", str(model), "--inputs", str(tmp_path / "x.npy"),
          "--output", str(tmp_path / "out.npz")])
    out = np.load(tmp_path / "out.npz")
    for name, value in net.named_params():
        fd = central_difference(lambda: net.forward(x).sum(), value)
        assert relative_error(out[f"param_gradients/{name}"], fd) < 1e-6, name


def test_evaluate_bad_inputs(tmp_path, capsys):
    net = oracle_model(np.random.default_rng(2))
    model = save_model(net, tmp_path / "model.npz")
    np.save(tmp_path / "x.npy", np.zeros((4, 3)))
    assert main(["evaluate", str(model), "--inputs", str(tmp_path / "x.npy"),
                 "--output", str(tmp_path / "o.npz")]) == 2
    assert "x: expected shape (M, 2)" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "absent.npz")]) == 2
    assert "model: no file" in capsys.readouterr().err


def test_train_json_and_info(tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert main(["train", "--epochs", "3", "--hidden", "3", "--json", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("test_accuracy", "train_loss", "tv2", "bv2", "knots", "lipschitz_bound"):
        assert key in result
    net = load_model(out)
    assert result["tv2"][0] == pytest.approx(net.layers[1].spline.tv2().sum())
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["theorem1_bv2"]["2"] == pytest.approx(result["lipschitz_bound"])
    assert info["splines"][0]["knots"] == list(net.layers[1].spline.num_knots()[0])
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Theorem-1 Lipschitz bounds" in text and "spline layer 1" in text


def test_train_recipe_flags_reach_the_run_config(tmp_path, capsys):
    """--mu, --milestones, --convention, --no-first-bias and --test-grid train the network
    RunConfig would with those fields: the same model, bit for bit, and the JSON says so."""
    from reference.training import RunConfig, run
    flags = {"mu": 1e-5, "milestones": (0.5, 0.8), "convention": "deepsplines",
             "first_bias": False, "test_grid": "centres"}
    out = tmp_path / "m.npz"
    assert main(["train", "--epochs", "4", "--hidden", "3", "--json", "--out", str(out),
                 "--mu", "1e-5", "--milestones", "0.5,0.8", "--convention", "deepsplines",
                 "--no-first-bias", "--test-grid", "centres"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {k: result["run_config"][k] for k in flags} == {
        **flags, "milestones": list(flags["milestones"])}
    expected, summary = run(RunConfig(epochs=4, hidden=(3,), **flags))
    assert result["test_accuracy"] == summary["test_accuracy"]
    net = load_model(out)
    assert "bias" not in net.layers[0].params
    for mine, theirs in zip(net.layers, expected.layers):
        for key, value in theirs.params.items():
            np.testing.assert_array_equal(mine.params[key], value)


def test_train_bad_arguments(capsys):
    assert main(["train", "--hidden", "0", "--epochs", "1"]) == 2
    assert "--hidden" in capsys.readouterr().err
    assert main(["train", "--size", "1", "--epochs", "1"]) == 2   # argparse usage error
    assert "--size: expected an integer >= 2" in capsys.readouterr().err
    assert main(["train", "--dataset", "mnist", "--epochs", "1"]) == 2
    assert "path" in capsys.readouterr().err
    assert main(["train", "--activation", "tanh"]) == 2
    assert "invalid choice: 'tanh'" in capsys.readouterr().err
    assert main(["train", "--milestones", "0.5,1.5"]) == 2
    assert "--milestones: expected a fraction of the epochs in (0, 1]" in capsys.readouterr().err
    assert main(["train", "--mu", "-1"]) == 2
    assert "--mu: expected a finite number >= 0" in capsys.readouterr().err


def test_reproduce_prints_the_tables_and_the_quick_lipschitz_checks_pass(tmp_path, capsys,
                                                                        quick_figures):
    """reproduce runs the quick profiles of both theory checks (they must pass) and writes
    the quick figures (their runs cached by the session's quick_figures)."""
    figures_dir, _ = quick_figures
    (figures_dir / "index.md").unlink()
    assert main(["reproduce", "--epochs", "2", "--checks-dir", str(tmp_path),
                 "--figures-dir", str(figures_dir)]) == 0
    assert (figures_dir / "index.md").is_file()
    captured = capsys.readouterr()
    text = captured.out
    assert_numbers_only(text)                   # numbers, not np.float64(...) (all commands:
    assert_numbers_only(captured.err)           # tests/test_printed_numbers.py)
    assert f"(index: {figures_dir}/index.md)" in text
    for activation in ("spline", "relu", "prelu", "leaky_relu"):
        assert activation in text
    assert "Lipschitz ladder checks (quick profile" in text and "ALL PASSED" in text
    report = json.loads((tmp_path / "lipschitz_bound.json").read_text())
    assert report["checks"]["lower <= exact"]["instances"] >= 20
    assert report["checks"]["1-D dense scan <= exact (+ scan rounding)"]["instances"] >= 4
    assert all(c["passed"] == c["instances"] for c in report["checks"].values())
    assert "Representer-theorem checks (quick profile" in text and text.count("ALL PASSED") == 2
    report = json.loads((tmp_path / "representer.json").read_text())
    assert report["checks"]["reduction: outputs unchanged (1e-10 rel)"]["instances"] >= 10
    assert all(c["passed"] == c["instances"] for c in report["checks"].values())


def test_module_entry_point():
    run = subprocess.run([sys.executable, "-m", "reference", "--help"], capture_output=True,
                         text=True, check=True)
    assert "reproduce" in run.stdout


def test_train_summary_describes_the_saved_sparsified_model(tmp_path, capsys):
    from reference.data import _datasets as datasets
    from reference.training._train import accuracy
    out = tmp_path / "m.npz"
    assert main(["train", "--epochs", "5", "--sparsify", "1.0", "--json", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    net = load_model(out)
    ds = datasets.load("circle")
    for split in ("train", "valid", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        assert result[f"{split}_accuracy"] == accuracy(net, x, y, "logistic")
    counts, tols = net.layers[1].spline.num_knots()
    assert result["knots"] == [int(counts.sum())]
    assert result["knot_tolerance"] == [tols.tolist()]
    report = result["sparsification"][0]
    assert report["knots_left"] == counts.tolist() and sum(report["knots_removed"]) > 0
