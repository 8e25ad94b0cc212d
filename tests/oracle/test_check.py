"""The `check` command and the oracle flags of `evaluate`: exit codes, reports, bad input."""
import json
import re
import zipfile

import numpy as np
import pytest

from reference.cli import main
from reference.io._model_file import save_model
from reference.nn._linear_spline import LinearSpline
from reference.nn._network import Dense, Network, ReLU, SplineActivation
from reference.oracle import _check as oracle
from reference.testing import OtherSpline, oracle_inputs, oracle_model


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    net = oracle_model(rng)
    x = oracle_inputs(net, rng, random_rows=20)
    model = save_model(net, tmp_path / "model.npz")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", rng.normal(size=(len(x), 2)))
    return tmp_path, net, x, str(model)


def run_check(tmp, model, answers, *extra):
    return main(["check", model, "--inputs", str(tmp / "x.npy"), "--answers", str(answers),
                 *extra])


def test_evaluate_without_flags_keeps_its_keys(files):
    tmp, net, x, model = files
    assert main(["evaluate", model, "--inputs", str(tmp / "x.npy"),
                 "--output", str(tmp / "out.npz")]) == 0
    keys = set(np.load(tmp / "out.npz").files)
    assert keys == {"outputs", "input_jacobian"} | {f"param_gradients/{n}"
                                                    for n, _ in net.named_params()}


def test_evaluate_flags_write_what_check_compares(files, capsys):
    tmp, net, x, model = files
    assert main(["evaluate", model, "--inputs", str(tmp / "x.npy"), "--output",
                 str(tmp / "ref.npz"), "--layers", "--one-sided", "--info", "--loss",
                 "squared", "--targets", str(tmp / "y.npy"), "--lam", "0.1", "--reg", "bv2",
                 "--mu", "1e-3"]) == 0
    out = capsys.readouterr().out
    ref = dict(np.load(tmp / "ref.npz"))
    on_kink = int(ref["on_kink"].sum())
    assert f"one-sided Jacobians ({on_kink} rows on a kink)" in out and on_kink > 0
    expected = oracle.reference_answers(
        net, x, layers=True, one_sided=True,
        objective=oracle.Objective("squared", np.load(tmp / "y.npy"), 0.1, "bv2", 1e-3))
    assert set(ref) == set(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(ref[key], value, err_msg=key)
    assert ref["objective"] == pytest.approx(
        ref["objective/data"] + ref["objective/weight_decay"] + ref["objective/regulariser"])
    assert run_check(tmp, model, tmp / "ref.npz", "--loss", "squared", "--targets",
                     str(tmp / "y.npy"), "--lam", "0.1", "--reg", "bv2", "--mu", "1e-3",
                     "--json", str(tmp / "report.json")) == 0
    text = capsys.readouterr().out
    assert f"{len(ref)} of {len(ref)} quantities pass" in text
    report = json.loads((tmp / "report.json").read_text())
    assert report["passed"] is True and len(report["rows"]) == len(ref)
    assert report["kink_rows"] == on_kink
    # the same answers with another lambda: the objective rows fail (exit 1)
    assert run_check(tmp, model, tmp / "ref.npz", "--loss", "squared", "--targets",
                     str(tmp / "y.npy"), "--lam", "0.2", "--reg", "bv2", "--mu", "1e-3") == 1
    text = capsys.readouterr().out
    assert "objective/regulariser" in text and "theirs = 0.5 x ours" in text


def test_check_fails_and_localises_with_exit_1(files, capsys):
    tmp, net, x, model = files
    layers = list(net.layers)
    layers[1] = OtherSpline(net.layers[1].spline, piece="off_by_one")
    theirs = oracle.reference_answers(Network(layers), x, layers=True, info=False)
    np.savez(tmp / "theirs.npz", **theirs)
    assert run_check(tmp, model, tmp / "theirs.npz", "--json", str(tmp / "r.json")) == 1
    text = capsys.readouterr().out
    assert "FAIL" in text and "first disagreement: layer 1 (spline)" in text
    report = json.loads((tmp / "r.json").read_text())
    assert report["passed"] is False
    assert report["localisation"]["first_layer"]["layer"] == 1
    # a looser tolerance does not hide it; the left-on-knots implementation passes
    layers[1] = OtherSpline(net.layers[1].spline, piece="left_on_knots")
    np.savez(tmp / "left.npz", **oracle.reference_answers(Network(layers), x, info=False))
    assert run_check(tmp, model, tmp / "left.npz") == 0
    assert "closest: left" in capsys.readouterr().out


def write_pth_like(path):
    """A zip laid out as torch.save writes it (archive/data.pkl), without torch."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr("archive/version", b"3\n")


@pytest.mark.parametrize("make, extra, message", [
    (lambda p, a: np.savez(p, **{}), [], "--answers: holds no array"),
    (lambda p, a: np.savez(p, outputs=a["outputs"][:3]), [],
     r"--answers: key 'outputs' has shape \(3, 2\), expected \(31, 2\)"),
    (lambda p, a: np.savez(p, outputs=np.full_like(a["outputs"], np.nan)), [],
     "--answers: key 'outputs' holds NaN or inf"),
    (lambda p, a: np.savez(p, output=a["outputs"]), [], "did you mean 'outputs'"),
    (lambda p, a: np.savez(p, outputs=np.array(["a"] * 62).reshape(31, 2)), [],
     "'outputs' is not a real array"),
    (lambda p, a: write_pth_like(p), [], "--answers: .* is a PyTorch checkpoint"),
    (lambda p, a: p.write_text("outputs,1,2\n"), [], "--answers: .* is not a NumPy file"),
    (lambda p, a: np.save(p, a["outputs"]), [], r"--answers: .* is a single NumPy array"),
    (lambda p, a: np.savez(p, objective=1.0), [], "needs the objective: give --loss"),
    (lambda p, a: np.savez(p, outputs=a["outputs"]), ["--loss", "squared"],
     "--targets: the objective"),
    (lambda p, a: np.savez(p, outputs=a["outputs"]), ["--lam", "1"],
     "--loss: --lam given without --loss"),
    (lambda p, a: np.savez(p, outputs=a["outputs"]), ["--loss", "squared", "--targets", "Y"],
     "--loss: .* holds no objective key"),
    (lambda p, a: np.savez(p, objective=1.0), ["--loss", "xent", "--targets", "Y"],
     "--targets: y: expected integer class labels"),
    (lambda p, a: np.savez(p, outputs=a["outputs"]), ["--knot-tol", "0.01"],
     "--knot-tol: expected at most 0.001"),
    (lambda p, a: np.savez(p, format="deepspline-reference/1", layers="[]"), [],
     "--answers: .* is a model file"),
])
def test_bad_input_exits_2_naming_the_flag(files, capsys, make, extra, message):
    tmp, net, x, model = files
    answers = oracle.reference_answers(net, x)
    path = tmp / "answers.bin"
    make(path, answers)
    if not path.exists():                  # np.save / np.savez append a suffix
        path = next(tmp.glob("answers.bin.*"))
    extra = [str(tmp / "y.npy") if e == "Y" else e for e in extra]
    assert run_check(tmp, model, path, *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert re.search(message, err), err


def test_bad_files_and_options(files, capsys):
    tmp, net, x, model = files
    np.savez(tmp / "a.npz", outputs=net.forward(x))
    assert run_check(tmp, model, tmp / "missing.npz") == 2
    assert "--answers: no file" in capsys.readouterr().err
    assert main(["check", model, "--inputs", str(tmp / "a.npz"), "--answers",
                 str(tmp / "a.npz")]) == 2
    assert "--inputs" in capsys.readouterr().err
    np.save(tmp / "x3.npy", np.zeros((4, 3)))
    assert main(["check", model, "--inputs", str(tmp / "x3.npy"), "--answers",
                 str(tmp / "a.npz")]) == 2
    assert "--inputs: x: expected shape (M, 2)" in capsys.readouterr().err
    assert run_check(tmp, model, tmp / "a.npz", "--rtol", "-1") == 2
    assert "argument --rtol: expected a finite number >= 0" in capsys.readouterr().err
    assert run_check(tmp, model, tmp / "a.npz", "--json", str(tmp / "a.npz")) == 2
    assert "--json" in capsys.readouterr().err
    assert main(["check", str(tmp / "a.npz"), "--inputs", str(tmp / "x.npy"), "--answers",
                 str(tmp / "a.npz")]) == 2
    assert "model" in (err := capsys.readouterr().err) and "not a model file" in err
    assert run_check(tmp, model, tmp / "a.npz") == 0


def test_huge_values_give_one_line_and_no_warnings(files, capsys):
    """Answers near the float64 limit fail as numbers (no RuntimeWarning on stderr); inputs
    whose forward pass overflows are refused naming --inputs."""
    tmp, net, x, model = files
    np.savez(tmp / "huge.npz", outputs=np.full_like(net.forward(x), 1e308))
    assert run_check(tmp, model, tmp / "huge.npz", "--rtol", "1e308", "--atol", "1e308") == 0
    assert run_check(tmp, model, tmp / "huge.npz") == 1
    assert capsys.readouterr().err == ""
    np.save(tmp / "far.npy", np.full((2, 2), 1e308))
    for argv in (["evaluate", model, "--inputs", str(tmp / "far.npy"), "--output",
                  str(tmp / "o.npz")],
                 ["check", model, "--inputs", str(tmp / "far.npy"), "--answers",
                  str(tmp / "huge.npz")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --inputs: layer ") and len(err.splitlines()) == 1, err
    assert not (tmp / "o.npz").exists()


def test_a_fine_grid_is_graded_as_a_unit_one(tmp_path, capsys):
    """Grid step 1e-8 near 0, inputs ~1e-7: the kink window is relative (knot_tol
    max(|z|_mag, |tau|)), so the default passes where a window tied to 1 (1e-9) was refused;
    a grid of the same step far from 0 (t ~ 1) is refused, naming --knot-tol, and a smaller
    --knot-tol is accepted all the way through."""
    rng = np.random.default_rng(11)
    coefficients = rng.normal(size=(1, 9))
    for x_min, status in ((-4e-8, 0), (1.0, 2)):
        net = Network([SplineActivation(LinearSpline(coefficients, x_min, 1e-8)),
                       Dense(rng.normal(size=(1, 1)))])
        model = save_model(net, tmp_path / "fine.npz")
        x = np.concatenate([net.layers[0].spline.grid, x_min + rng.uniform(-1e-7, 1.4e-7, 6)])
        np.save(tmp_path / "x.npy", x[:, None])
        np.savez(tmp_path / "a.npz", **oracle.reference_answers(net, x[:, None], one_sided=True,
                                                               knot_tol=1e-12))
        assert run_check(tmp_path, str(model), tmp_path / "a.npz") == status
        out = capsys.readouterr()
        if status == 2:
            assert out.err.startswith("error: --knot-tol: 1e-09 makes the kink window of "
                                      "layer 0")
        else:
            assert "7 of 15 samples have a pre-activation on a kink" in out.out
        assert run_check(tmp_path, str(model), tmp_path / "a.npz", "--knot-tol", "1e-12") == 0


def cancelling_network(rng):
    """Two nearly equal ReLU neurons with output weights [1, -1] (the review's repro): the
    outputs, ~5e-9, are a difference of terms ~5 (their magnitude |W| |y| + |b|)."""
    w = rng.standard_normal((1, 20))
    weight, bias = np.vstack([w, w * (1 + 1e-9)]), np.array([5.0, 5.0 * (1 + 1e-9)])
    return Network([Dense(weight, bias), ReLU(), Dense(np.array([[1.0, -1.0]]), np.zeros(1))])


def reversed_outputs(net, x):
    """The outputs of `net` (cancelling_network) computed by another correct float64
    implementation: every dot product summed in the reverse order."""
    weight, bias = net.layers[0].params["weight"], net.layers[0].params["bias"]
    z = np.stack([(x[:, ::-1] * weight[k, ::-1]).sum(axis=1) + bias[k]
                  for k in range(len(bias))], axis=1)
    return np.maximum(z, 0) @ net.layers[2].params["weight"].T          # (M, 1)


def row_result(out: str, key: str) -> str:
    """The result column (pass, FAIL, unresolved) of the row of `key` in check's table."""
    line = next(line for line in out.splitlines() if line.startswith(f"  {key} "))
    return next(word for word in line.split() if word in ("pass", "FAIL", "unresolved"))


def test_a_float64_implementation_passes_on_cancelling_outputs(tmp_path, capsys):
    """Outputs ~5e-9 that cancel from terms ~5: another float64 summation order differs by
    ~1e-15, 1e-7 of max |ours|, which atol times max |ours| (6e-18) failed (exit 1) though
    it is float64 rounding of terms ~5.  S is max(max |ours|, the key's magnitude), the
    scale of any float64 implementation's rounding: no row fails (exit 0).  A zero answer is
    then within the tolerance too, so the row says 'unresolved' for either answer (never a
    plain pass); a smaller --atol resolves it: the zero answer fails, the reversed sums
    pass."""
    rng = np.random.default_rng(0)
    net = cancelling_network(rng)
    x = rng.standard_normal((50, 20)) * 0.1
    save_model(net, tmp_path / "m.npz")
    np.save(tmp_path / "x.npy", x)
    ours = oracle.reference_answers(net, x, info=False)["outputs"]
    theirs = reversed_outputs(net, x)
    assert 0 < np.abs(theirs - ours).max() < 1e-14 and np.abs(ours).max() < 1e-8
    np.savez(tmp_path / "reversed.npz", outputs=theirs)
    np.savez(tmp_path / "zero.npz", outputs=0 * ours)
    assert run_check(tmp_path, str(tmp_path / "m.npz"), tmp_path / "reversed.npz") == 0
    assert row_result(capsys.readouterr().out, "outputs") == "unresolved"
    assert run_check(tmp_path, str(tmp_path / "m.npz"), tmp_path / "zero.npz",
                     "--json", str(tmp_path / "r.json")) == 0
    out = capsys.readouterr().out
    assert row_result(out, "outputs") == "unresolved" and "a zero answer would pass" in out
    assert "0 of 1 quantities pass, 1 unresolved" in out
    row = json.loads((tmp_path / "r.json").read_text())["rows"][0]
    assert row["passed"] is True and row["resolved"] is False
    assert row["scale_from"] == "magnitude" and row["scale"] > 1e8 * np.abs(ours).max()
    for answers, result in (("zero.npz", "FAIL"), ("reversed.npz", "pass")):
        assert run_check(tmp_path, str(tmp_path / "m.npz"), tmp_path / answers,
                         "--atol", "1e-13") == (result == "FAIL")
        assert row_result(capsys.readouterr().out, "outputs") == result


def test_a_magnitude_beyond_float64_is_clamped_with_a_note(tmp_path, capsys):
    """W2 = [1e308, -1e308] on two equal ReLU neurons: the outputs are exactly 0, the
    magnitude |W| |y| + |b| (3e308) leaves the float64 range.  check refused the model
    naming --inputs (exit 2); the magnitude is now clamped at the largest float64 there
    (a tolerance at most that wide), with a note naming the layer, and the right answer
    passes, a wrong one fails."""
    net = Network([Dense(np.ones((2, 1)), np.full(2, 0.5)), ReLU(),
                   Dense(np.array([[1e308, -1e308]]), np.zeros(1))])
    model = save_model(net, tmp_path / "m.npz")
    x = np.array([[1.0], [-1.0]])          # the second sample's ReLUs are off
    np.save(tmp_path / "x.npy", x)
    ref = oracle.reference_answers(net, x, info=False)
    assert not ref["outputs"].any()
    np.savez(tmp_path / "a.npz", outputs=ref["outputs"])
    np.savez(tmp_path / "b.npz", outputs=ref["outputs"] + 1e300)
    assert run_check(tmp_path, str(model), tmp_path / "a.npz") == 0
    out = capsys.readouterr().out
    assert "layer 2 (dense)" in out and "clamped at 1.8e+308" in out
    assert run_check(tmp_path, str(model), tmp_path / "b.npz") == 1
    capsys.readouterr()
    assert main(["evaluate", str(model), "--inputs", str(tmp_path / "x.npy"), "--output",
                 str(tmp_path / "o.npz"), "--one-sided"]) == 0
    assert "clamped at 1.8e+308" in capsys.readouterr().out


def test_check_runs_the_forward_pass_once(files, monkeypatch):
    """`check` ran the forward pass, the magnitudes and the kink windows three times (the
    --knot-tol check, the reference answers, oracle.check): once now."""
    tmp, net, x, model = files
    np.savez(tmp / "a.npz", **oracle.reference_answers(net, x, layers=True, one_sided=True))
    calls = {"forward": 0, "kink_windows": 0}
    forward, windows = Network.forward, SplineActivation.kink_windows

    def counted_forward(self, *args, **kwargs):
        calls["forward"] += kwargs.get("keep_cache", False)
        return forward(self, *args, **kwargs)

    def counted_windows(self, *args, **kwargs):
        calls["kink_windows"] += 1
        return windows(self, *args, **kwargs)

    monkeypatch.setattr(Network, "forward", counted_forward)
    monkeypatch.setattr(SplineActivation, "kink_windows", counted_windows)
    assert run_check(tmp, model, tmp / "a.npz") == 0
    spline_layers = sum(isinstance(layer, SplineActivation) for layer in net.layers)
    assert calls == {"forward": 1, "kink_windows": spline_layers}
