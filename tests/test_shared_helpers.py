"""Helpers shared instead of repeated (the review's item 10): one scale per answer key for
`check` and `conformance` (reference.key_scales, the solve's unit from reference.certify), one
hash of a JSON value for run keys and sweep records (experiments.json_sha256), one way to
quote a value in a message (reference._format.shown / clipped)."""
import numpy as np
import pytest

from reference._format import clipped, shown
from reference.conformance import _cases as cases
from reference.conformance import _suite as conformance
from reference.convex._certify import output_scale
from reference.convex._solve import split_at
from reference.exceptions import SuiteError
from reference.training import _experiments as experiments
from reference.training import _records as records
from reference.training._experiments import RunConfig, json_sha256


def test_a_solve_answer_is_scaled_by_the_unit_of_the_solve(tmp_path):
    """The conformance grader scaled a solve answer by max |ours| (where that was 0, by
    (1/2) sum y^2 or max |y|: a second formula beside the solve's own).  Its scale is now the
    solve's: S = max(|ours|, U) for the objective, U = T^2, and max(max |ours|, T) for the
    fitted values, T = certify.output_scale(loss, y, c), c the bias after the layer."""
    case = next(c for c in cases.build_cases() if c.name == "solve_data_tv2")
    conformance.export(tmp_path / "suite", built=[case])
    suite = conformance.load_suite(tmp_path / "suite", built=[case])
    live = conformance.self_answers(suite, tmp_path)
    result = conformance.grade(suite, tmp_path, live=live).cases[0]
    c = split_at(case.net, case.parameters["layer"])[3]
    unit = output_scale("squared", case.targets[:, None], c)
    assert unit == np.abs(case.targets - c[0]).max()
    ours = live[case.name][0]
    assert abs(ours["solve/objective"]) < unit ** 2           # the unit decides here
    assert result.passed and len(result.rows) == 3
    for row in result.rows:
        magnitude = unit ** 2 if row.key == "solve/objective" else unit
        largest = float(np.abs(ours[row.key]).max())
        assert row.scale == max(largest, magnitude), row.key
        assert row.scale_from == ("magnitude" if magnitude > largest else "reference")


def test_run_keys_and_record_hashes_are_one_hash(monkeypatch):
    """RunConfig.key and records.content_hash each computed sha256(canonical_json(...)); both
    go through experiments.json_sha256 now: a change of the canonical form changes both."""
    config = RunConfig()
    record = {"key": config.key(), "status": "failed", "run_config": config.to_dict()}
    assert config.key() == json_sha256(config.to_dict())[:experiments.KEY_LENGTH]
    assert records.content_hash(dict(record, record_sha256="x")) == json_sha256(record)
    before = (config.key(), records.content_hash(record))
    monkeypatch.setattr(experiments, "canonical_json", lambda value: "one form")
    after = (config.key(), records.content_hash(record))
    assert after[0] != before[0] and after[1] != before[1]
    assert after[1].startswith(after[0])                      # the same text, the same hash


def test_one_way_to_quote_a_value():
    """Messages quote what they were given with _format.shown: Python's numbers (never
    np.float64(...)), a long value cut with its length said (records cut at 80 characters
    without saying so)."""
    assert shown(np.float64(0.1)) == "0.1" and shown([np.int64(3)]) == "[3]"
    assert shown("x" * 100, 10) == "'xxxxxxxxx... (102 characters)"
    assert clipped("abc", 3) == "abc" and clipped("abcd", 3) == "abc... (4 characters)"
    config = RunConfig()
    record = {"key": config.key(), "status": "ok" * 100, "run_config": config.to_dict()}
    problem = records.value_problem(record, config)
    assert problem.startswith("status: expected one of ['ok', 'failed'], got 'okok")
    assert problem.endswith("... (202 characters)")
    with pytest.raises(SuiteError, match=r"\.\.\. \(5035 characters\)"):
        conformance._check_format("deepspline-reference-conformance/" + "9" * 5000, "DIR")
