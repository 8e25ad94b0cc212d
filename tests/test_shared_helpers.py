"""Helpers shared instead of repeated (the review's item 10): one hash of a JSON value for
run keys and sweep records (experiments.json_sha256), one way to quote a value in a message
(reference._format.shown / clipped)."""
import numpy as np
import pytest

from reference import conformance, experiments, records
from reference._format import clipped, shown
from reference.experiments import RunConfig, json_sha256


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
    with pytest.raises(conformance.SuiteError, match=r"\.\.\. \(5035 characters\)"):
        conformance._check_format("deepspline-reference-conformance/" + "9" * 5000, "DIR")
