"""examples/torch_answers.py answers the conformance suite with the published `deepsplines`
package: every case it answers passes `conformance run`; the others fail only for lack of
an answers file (pytest -m torch; needs torch and deepsplines)."""
import importlib.util
import json
import re
from pathlib import Path

import pytest

from reference.cli import _main as cli
from reference.conformance import _suite as conformance

pytestmark = pytest.mark.torch
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "torch_answers.py"


def load_example():
    spec = importlib.util.spec_from_file_location("torch_answers", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deepsplines_answers_pass_the_suite(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    pytest.importorskip("deepsplines")
    suite, answers = tmp_path / "suite", tmp_path / "answers"
    conformance.export(suite)
    default = torch.get_default_dtype()
    assert load_example().main([str(suite), str(answers)]) == 0
    assert torch.get_default_dtype() == default           # restored for the other tests
    printed = capsys.readouterr().out
    skipped = dict(re.findall(r"^  skipped (\S+): (.+)$", printed, re.M))
    answered = {p.stem for p in answers.glob("*.npz")}
    manifest = json.loads((suite / "manifest.json").read_text())
    assert answered | set(skipped) == {c["name"] for c in manifest["cases"]}
    assert not answered & set(skipped)
    # what the package can express: DeepBSpline on its symmetric odd grid, Linear, ReLU
    # family, its TV2 / BV2, and the training objective written with them
    assert {"knots", "kinks_hidden", "relu_kink", "grid_ends", "outside_grid", "far_outside",
            "deepsplines_step_f64", "deepsplines_step_f32", "relu_leaky_prelu", "tv2_bv2",
            "objective_squared_tv2", "objective_logistic_bv2", "objective_xent_tv2"} <= answered
    assert "odd number of coefficients" in skipped["k2"]
    assert "knot_spline" in skipped["knot_form"]

    status = cli.main(["conformance", "run", str(suite), "--answers", str(answers),
                       "--json", str(tmp_path / "report.json")])
    report = json.loads((tmp_path / "report.json").read_text())
    assert status == (0 if not skipped else 1)
    assert set(report["cases_failed"]) == set(skipped)
    for case in report["cases"]:
        if case["name"] in answered:
            assert case["passed"], (case["name"], capsys.readouterr().out)
        else:            # skipped: failed for lack of a file, never for a wrong number
            assert all(r["compared"] == 0 and "no answers file" in r["note"]
                       for r in case["rows"])
    knots = next(c for c in report["cases"] if c["name"] == "knots")
    assert max(r["on_knot"] for r in knots["rows"]) > 0


def test_bad_suite_or_answers_directory_is_one_line(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("deepsplines")
    example = load_example()
    (tmp_path / "file").write_text("x")
    suite = tmp_path / "suite"
    conformance.export(suite)
    for argv, message in (([tmp_path / "nowhere", tmp_path / "a"], "is not a conformance suite"),
                          ([tmp_path / "file", tmp_path / "a"], "is not a conformance suite"),
                          ([suite, tmp_path / "file"], "is a file, expected a directory"),
                          ([suite, suite], "should not be the suite itself")):
        assert example.main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert (tmp_path / "file").read_text() == "x" and not (tmp_path / "a").exists()


def test_the_example_reads_the_current_format_and_stays_in_the_suite(tmp_path):
    """The adapter checks the format it was written for, and never follows a manifest path
    out of the suite (absolute, '..', a symlink out); no torch needed for either."""
    example = load_example()
    assert example.MANIFEST_FORMAT == conformance.FORMAT
    suite = tmp_path / "suite"
    (suite / "knots").mkdir(parents=True)
    (suite / "knots" / "model.npz").write_bytes(b"")
    (suite / "knots" / "link.npz").symlink_to(tmp_path / "elsewhere.npz")
    assert example.case_file(suite, "knots/model.npz") == suite / "knots" / "model.npz"
    for relative in ("/proc/self/environ", "../suite/knots/model.npz", "knots/link.npz"):
        with pytest.raises(example.Unsupported, match="outside the suite"):
            example.case_file(suite, relative)
