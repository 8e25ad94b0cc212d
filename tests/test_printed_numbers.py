"""Every command prints numbers, never NumPy's repr of them (`np.float64(479.8)`,
`np.int64(3)`, `np.True_`, `array([...])`): each command of the command line runs on small
inputs, on its success and failure paths, and neither stdout nor stderr may hold such text.
`reproduce` is too slow to run twice: its own test (tests/cli/test_cli.py) applies the same
assertion to its output; here run its pieces' commands (train, lipschitz, sweep).
"""
import numpy as np
import pytest

from reference._format import exact, plain
from reference.cli import main
from reference.convex import _active_set as active_set
from reference.convex import _problem as problem
from reference.convex import _solve as convex
from reference.io._model_file import save_model
from reference.lipschitz import _bounds as lipschitz
from reference.lipschitz import _ladder as ladder
from reference.nn._network import build_mlp
from reference.testing import (
    NumpyRepr,
    assert_numbers_only,
    deepsplines_state_dict,
    numpy_typed,
)


# ------------------------------------------------------------------------- the helper
@pytest.mark.parametrize("value, text", [
    (np.float64(479.80000000000001), "479.8"), (np.float32(0.1), "0.10000000149011612"),
    (np.int64(3), "3"), (np.True_, "True"), (np.array([1.5, np.inf]), "[1.5, inf]"),
    ([np.float64(0.25), np.int32(2)], "[0.25, 2]"), ((np.int64(3), 2), "(3, 2)"),
    ({"a": np.array([[1, 2]])}, "{'a': [[1, 2]]}"), (np.float64(np.nan), "nan"),
    ("text", "'text'"), (None, "None"),
])
def test_exact_prints_python_numbers(value, text):
    assert exact(value) == text
    assert_numbers_only(str(plain(value)))


def test_the_pattern_catches_what_numpy_prints():
    for value in (np.float64(1.5), np.int64(2), np.bool_(True), np.float32(1), np.array([1])):
        with pytest.raises(NumpyRepr):
            assert_numbers_only(f"x {[value]}")


# ----------------------------------------------------------------------- the commands
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The inputs every command reads, made once: a trained model, inputs and targets, the
    reference's answers and wrong ones, solve data, a sweep's records, a conformance suite
    with the reference's answers and a spoiled copy."""
    import shutil

    from reference.conformance import _suite as conformance

    tmp = tmp_path_factory.mktemp("numbers")
    f = {"tmp": tmp, "model": tmp / "model.npz"}
    assert main(["train", "--epochs", "2", "--hidden", "3", "--quiet", "--out",
                 str(f["model"])]) == 0
    save_model(build_mlp([1, 1, 1], "relu", rng=0), tmp / "relu.npz")
    rng = np.random.default_rng(0)
    np.save(tmp / "x.npy", rng.uniform(-1, 1, (6, 2)))
    np.save(tmp / "y.npy", rng.uniform(0, 1, 6))
    assert main(["evaluate", str(f["model"]), "--inputs", str(tmp / "x.npy"), "--output",
                 str(tmp / "answers.npz"), "--layers", "--one-sided", "--info", "--loss",
                 "squared", "--targets", str(tmp / "y.npy")]) == 0
    answers = dict(np.load(tmp / "answers.npz"))
    answers["outputs"] = answers["outputs"] * 1.5 + 1.0
    answers["tv2/1"] = answers["tv2/1"] + 1.0
    np.savez(tmp / "wrong.npz", **answers)
    xs = rng.uniform(-1, 1, (40, 2))
    np.savez(tmp / "data.npz", X=xs, y=np.sin(3 * xs[:, 0]))
    assert main(["sweep", "--results", str(tmp / "sweep"), "--workers", "0", "--epochs", "1",
                 "--seeds", "0-1", "--quiet"]) == 0
    assert main(["conformance", "export", str(tmp / "suite")]) == 0
    (tmp / "self").mkdir()
    conformance.self_answers(conformance.load_suite(tmp / "suite"), tmp / "self")
    shutil.copytree(tmp / "self", tmp / "spoiled")
    for path in sorted((tmp / "spoiled").glob("*.npz"))[:3]:
        arrays = {k: v * 1.001 + 1e-3 for k, v in np.load(path).items()}
        np.savez(path, **arrays)
    (tmp / "none").mkdir()
    np.save(tmp / "x3.npy", rng.uniform(-1, 1, (6, 3)))            # one column too many
    images = rng.integers(0, 256, (20, 4, 4)).astype(np.uint8)
    np.savez(tmp / "mnist_bad.npz", x_train=images, y_train=np.r_[np.arange(19) % 10, 12],
             x_test=images[:5], y_test=np.arange(5))               # a label 12
    return f


def polish_rejected(monkeypatch, tmp):
    """The active set's polishing re-solve reports a worse objective: it is rejected, with
    the two objectives in the message."""
    real_polish, real_solve = active_set._polish, active_set.solve_and_check

    def worse(*args, **kwargs):
        result, layer, check = real_solve(*args, **kwargs)
        if result.get("status") == "optimal":
            result = dict(result, objective=result["objective"] * 1.5 + 1.0)
        return result, layer, check

    def polish(*args, **kwargs):
        with monkeypatch.context() as patch:
            patch.setattr(active_set, "solve_and_check", worse)
            return real_polish(*args, **kwargs)
    monkeypatch.setattr(active_set, "_polish", polish)


def inaccurate_solve(monkeypatch, tmp):
    """The solver's objective disagrees with the NumPy re-evaluation: its point is kept as a
    feasible point ("inaccurate solution", quoted with both numbers) and certified by the dual
    bound or refused."""
    real = problem.CoefficientProblem.solve

    def off(self, lam, solver="CLARABEL", warm_start=True, settings=None):
        out = real(self, lam, solver, settings=settings)
        out["objective"] *= 1.01
        return out
    monkeypatch.setattr(problem.CoefficientProblem, "solve", off)


def contradicting_methods(monkeypatch, tmp):
    """A layer-wise 'upper bound' below the certified lower bound: no verdict, an error."""
    net = build_mlp([2, 3, 1], "relu", rng=0)
    save_model(net, tmp / "relu2.npz")
    low = lipschitz.lower(net, 2)["value"]
    monkeypatch.setattr(ladder, "RUNNERS", {**ladder.RUNNERS, "layerwise":
                                            lambda net, p, box, options: {"value": 0.5 * low}})


def regions_unchecked(monkeypatch, tmp):
    """The 2-D regions' areas held to a tolerance below zero: the exact method reports, with
    the two areas, that it is not certified."""
    from reference.lipschitz import _regions2d as regions2d
    monkeypatch.setattr(regions2d, "AREA_CHECK_RTOL", -1.0)


def lip_beyond_the_constraint(monkeypatch, tmp):
    """The solved splines' Lip reported 10 times larger: above --lip-max, SolveFailed."""
    real = problem.knot_counts

    def larger(layer, unit=1.0):
        knots, tols, lips = real(layer, unit)
        return knots, tols, 10 * lips
    monkeypatch.setattr(problem, "knot_counts", larger)


def torch_checkpoint(tmp):
    """A DeepSplines-like state dict saved with torch (skipped without torch)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("deepsplines.ds_modules")
    from deepsplines.ds_modules import DeepBSpline

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), DeepBSpline("fc", 3, size=11, range_=2),
                              torch.nn.Linear(3, 1)).double()
    torch.save(net.state_dict(), tmp / "sd.pth")
    return tmp / "sd.pth"


def damaged_sweep(monkeypatch, tmp):
    """A copy of the fixture's sweep with one record's test_accuracy edited to text: the sweep
    names and recomputes it, the table skips it with a warning line."""
    import json
    import shutil
    shutil.rmtree(tmp / "damaged", ignore_errors=True)
    shutil.copytree(tmp / "sweep", tmp / "damaged")
    path = sorted((tmp / "damaged" / "records").glob("*.json"))[0]
    record = json.loads(path.read_text())
    record["test_accuracy"] = "0.9"
    path.write_text(json.dumps(record))


def evil_checkpoint(monkeypatch, tmp):
    """A checkpoint whose pickle calls os.system (skipped without torch); never loaded."""
    import os
    torch = pytest.importorskip("torch")

    class Payload:
        def __reduce__(self):
            return os.system, ("true",)
    torch.save({"model_state": {"fc1.weight": torch.zeros(2, 2)}, "params": Payload()},
               tmp / "evil.pth")


SOLVE = ["solve", "{model}", "--data", "{tmp}/data.npz", "--layer", "1", "--lam", "0.1",
         "--out", "{tmp}/solved.npz"]
CHECK = ["check", "{model}", "--inputs", "{tmp}/x.npy", "--loss", "squared", "--targets",
         "{tmp}/y.npy", "--answers"]
CASES = {     # name -> (argv with {model} / {tmp}, exit status, set-up or None, text expected)
    "train": (["train", "--epochs", "2", "--hidden", "3", "--quiet", "--sparsify", "auto"],
              0, None, "knots per neuron"),
    "train --json": (["train", "--epochs", "1", "--quiet", "--json"], 0, None, "{"),
    "info": (["info", "{model}"], 0, None, "Theorem-1"),
    "info --json": (["info", "{model}", "--json"], 0, None, "{"),
    "evaluate": (["evaluate", "{model}", "--inputs", "{tmp}/x.npy", "--output", "{tmp}/o.npz",
                  "--layers", "--one-sided", "--info", "--loss", "squared", "--targets",
                  "{tmp}/y.npy"], 0, None, "objective"),
    "check pass": ([*CHECK, "{tmp}/answers.npz", "--json", "{tmp}/check.json"], 0, None,
                   "pass"),
    "check FAIL": ([*CHECK, "{tmp}/wrong.npz"], 1, None, "FAIL"),
    "check bad answers": (["check", "{model}", "--inputs", "{tmp}/x.npy", "--answers",
                           "{model}"], 2, None, "error:"),
    "lipschitz": (["lipschitz", "{model}"], 0, None, "exact"),
    "lipschitz --json": (["lipschitz", "{model}", "--json"], 0, None, "{"),
    "lipschitz relu 1-D": (["lipschitz", "{tmp}/relu.npz", "--p", "inf"], 0, None, "exact"),
    "lipschitz --claim UNSOUND": (["lipschitz", "{model}", "--claim", "1e-3"], 1, None,
                                  "witness"),
    "lipschitz --claim SOUND": (["lipschitz", "{model}", "--claim", "1e6"], 0, None,
                                "certified upper bound"),
    "lipschitz --claim UNDECIDED": (["lipschitz", "{model}", "--claim", "1e-3", "--methods",
                                     "theorem1"], 3, None, "remaining interval"),
    "lipschitz --claim --json": (["lipschitz", "{model}", "--claim", "1e-3", "--json"], 1,
                                 None, "witness"),
    "lipschitz --claim contradiction": (["lipschitz", "{tmp}/relu2.npz", "--claim", "1e-6",
                                         "--methods", "lower,layerwise"], 2,
                                        contradicting_methods, "a method is wrong"),
    "solve": (SOLVE, 0, None, "polishing accepted"),
    "solve polish rejected": (SOLVE, 0, polish_rejected, "polishing rejected: objective"),
    "solve --json": ([*SOLVE, "--json"], 0, None, "{"),
    "solve uniform": ([*SOLVE, "--grid", "uniform", "--size", "9", "--lip-max", "3"], 0,
                      None, "Lip <= 3"),
    "solve inaccurate": (SOLVE, 0, inaccurate_solve, "inaccurate solution"),
    "solve Lip beyond --lip-max": ([*SOLVE, "--lip-max", "3"], 2, lip_beyond_the_constraint,
                                   "beyond tolerance"),
    "lipschitz exact not certified": (["lipschitz", "{model}", "--methods", "exact"], 0,
                                      regions_unchecked, "the regions' areas sum to"),
    "import-deepsplines": (["import-deepsplines", "{pth}", "--out", "{tmp}/imported.npz",
                            "--spline-range", "2"], 0, None, "x_min"),
    "import-deepsplines --json": (["import-deepsplines", "{pth}", "--out",
                                   "{tmp}/imported.npz", "--spline-range", "2", "--json"], 0,
                                  None, "{"),
    "conformance export": (["conformance", "export", "{tmp}/suite"], 0, None, "manifest"),
    "conformance run --self": (["conformance", "run", "{tmp}/suite", "--self"], 0, None,
                               "passed"),
    "conformance run FAIL": (["conformance", "run", "{tmp}/suite", "--answers",
                              "{tmp}/spoiled", "--json", "{tmp}/grade.json"], 1, None,
                             "FAILED"),
    "conformance run no answers": (["conformance", "run", "{tmp}/suite", "--answers",
                                    "{tmp}/none"], 1, None, "no answers file"),
    "sweep": (["sweep", "--results", "{tmp}/sweep", "--workers", "0", "--epochs", "1",
               "--seeds", "0-1", "--quiet"], 0, None, "cached"),
    "sweep --table": (["sweep", "--results", "{tmp}/sweep", "--table", "--csv",
                       "{tmp}/table.csv"], 0, None, "+-"),
    # failure paths of the commands above
    "train bad value": (["train", "--lr", "-1"], 2, None, "--lr"),
    "info not a model": (["info", "{tmp}/x.npy"], 2, None, "not a model file"),
    "evaluate bad inputs": (["evaluate", "{model}", "--inputs", "{tmp}/x3.npy", "--output",
                             "{tmp}/o.npz"], 2, None, "expected shape"),
    "lipschitz exact at its time limit": (["lipschitz", "{model}", "--methods", "exact",
                                           "--time-limit", "0.001"], 0, None,
                                          "certified bracket"),
    "solve at its time limit": ([*SOLVE, "--time-limit", "0.01"], 3, None, "NOT CERTIFIED"),
    "sweep a failed run": (["sweep", "--results", "{tmp}/failing", "--dataset", "mnist",
                            "--data-path", "{tmp}/mnist_bad.npz", "--epochs", "1", "--workers",
                            "0", "--quiet"], 1, None, "outside 0..9 (e.g. 12)"),
    "sweep a damaged record": (["sweep", "--results", "{tmp}/damaged", "--workers", "0",
                                "--epochs", "1", "--seeds", "0-1", "--quiet"], 0,
                               damaged_sweep, "got '0.9'"),
    "sweep --table skipping a record": (["sweep", "--results", "{tmp}/damaged", "--table"], 0,
                                        damaged_sweep, "warning: results: skipped"),
    "import-deepsplines unsafe pickle": (["import-deepsplines", "{tmp}/evil.pth", "--out",
                                          "{tmp}/evil.npz"], 2, evil_checkpoint,
                                         "--unsafe-pickle"),
}
@pytest.mark.parametrize("name", list(CASES))
def test_every_command_prints_numbers_not_numpy_reprs(name, files, monkeypatch, capsys):
    argv, status, setup, expected = CASES[name]
    tmp = files["tmp"]
    if setup is not None:
        setup(monkeypatch, tmp)
    pth = torch_checkpoint(tmp) if name in ("import-deepsplines",
                                            "import-deepsplines --json") else None
    args = [a.format(model=files["model"], tmp=tmp, pth=pth) for a in argv]
    assert main(args) == status
    captured = capsys.readouterr()
    assert expected in captured.out + captured.err           # the path meant was taken
    assert_numbers_only(captured.out)
    assert_numbers_only(captured.err)


# ------------------------------------------- the same text whatever the numbers' types
def text_both_ways(monkeypatch, capsys, argv, patch):
    """The output of main(argv) with `patch(numpy_typed or identity)` installed: once with
    the results as computed, once with their numbers as NumPy scalars."""
    texts = []
    for convert in (lambda v: v, numpy_typed):
        with monkeypatch.context() as m:
            patch(m, convert)
            assert main([str(a) for a in argv]) == 0
        texts.append(capsys.readouterr().out)
    return texts


def cached(function):
    """function, computing once: both runs print the same result (times included)."""
    memo = {}

    def once(*args, **kwargs):
        if "result" not in memo:
            memo["result"] = function(*args, **kwargs)
        return memo["result"]
    return once


def test_train_and_info_print_the_same_text_for_numpy_numbers(files, monkeypatch, capsys):
    from reference.cli import _info, _train
    run_training, spline_summary = cached(_train.run_training), _train.spline_summary

    def patch(m, convert):
        m.setattr(_train, "run_training", lambda *a, **k: (lambda net, s: (net, convert(s)))(
            *run_training(*a, **k)))
        for command in (_train, _info):
            m.setattr(command, "spline_summary", lambda net: convert(spline_summary(net)))
        for key in ("theorem1", "theorem1_bv2"):
            real = getattr(lipschitz, key)
            m.setattr(lipschitz, key, lambda net, p, real=real: convert(real(net, p)))
    for argv in (["train", "--epochs", "2", "--hidden", "3", "--quiet", "--sparsify", "auto"],
                 ["info", files["model"]]):
        python, numpy = text_both_ways(monkeypatch, capsys, argv, patch)
        assert numpy == python
        assert_numbers_only(numpy)


def test_solve_prints_the_same_text_for_numpy_numbers(files, monkeypatch, capsys):
    solve_layer = cached(convex.solve_layer)

    def patch(m, convert):
        m.setattr(convex, "solve_layer", lambda *a, **k: (lambda new, cert: (
            new, convert(cert)))(*solve_layer(*a, **k)))
    argv = [a.format(model=files["model"], tmp=files["tmp"]) for a in SOLVE]
    python, numpy = text_both_ways(monkeypatch, capsys, argv, patch)
    assert "active set:" in python and numpy == python
    assert_numbers_only(numpy)


def test_import_deepsplines_prints_the_same_text_for_numpy_numbers(tmp_path, monkeypatch,
                                                                   capsys):
    """A NumPy state dict (no torch needed) stands for the checkpoint's."""
    import copy

    from reference.io import _deepsplines as ds
    result = ds.import_state(deepsplines_state_dict(np.random.default_rng(0)), spline_range=1.0)

    def patch(m, convert):
        typed = copy.deepcopy(result)
        for layer in typed.layers:
            layer.grid, layer.shapes = convert(layer.grid), convert(layer.shapes)
        typed.check = ds.ActivationCheck(*convert(list(vars(typed.check).values())))
        m.setattr(ds, "import_deepsplines", lambda *a, **k: typed)
    (tmp_path / "sd.pth").write_bytes(b"not read: import_deepsplines is replaced")
    argv = ["import-deepsplines", tmp_path / "sd.pth", "--out", tmp_path / "m.npz"]
    python, numpy = text_both_ways(monkeypatch, capsys, argv, patch)
    assert "x_min -1.0000000149011612" in python and numpy == python
    assert_numbers_only(numpy)
