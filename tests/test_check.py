"""The `check` command and the oracle flags of `evaluate`: exit codes, reports, bad input."""
import json
import re
import zipfile

import numpy as np
import pytest
from test_oracle import OtherSpline, oracle_inputs, oracle_model

from reference.cli import main
from reference.io import save_model
from reference.network import Dense, Network, SplineActivation
from reference.spline import LinearSpline
from reference import oracle


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
