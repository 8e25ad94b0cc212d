"""Tampered manifests (issue 21, items 3 and 14; hypothesis): random edits of the tolerances,
paths, format string, kinds, names, parameters and answer keys of a conformance suite's
manifest.json.  Each is either refused with one line naming DIR and the manifest (a
SuiteError, never another exception), or leaves the grading as strict as the built-in suite:
all-zero answers still fail the edited case."""
import copy
import json
import shutil

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from reference.conformance import _suite as conformance
from reference.exceptions import SuiteError
from reference.testing import check_property

FIELDS = ("rtol", "atol", "key_tolerances", "model", "inputs", "expected", "data", "format",
          "answer_keys", "kind", "name", "parameters")
NUMBERS = (st.floats(allow_nan=True, allow_infinity=True) | st.just(1e300) | st.just(0.0)
           | st.integers(-10, 10**30) | st.sampled_from([1e-10, 1e-9, 1e-6, 1e-4, 1e-12]))
PATHS = (st.text(max_size=40) | st.sampled_from([
    "/proc/self/environ", "/etc/passwd", "../suite/knots/model.npz", "knots/../k2/model.npz",
    "knots/model.npz", "knots/inputs.npy", "k2/expected.npz", "C:\\x", "\\\\server\\x",
    "knots//model.npz", "./knots/model.npz", "knots/model.npz/", "knots/data.npz", ""])
    | st.builds(lambda n, f: f"{n}/{f}", st.sampled_from(["knots", "k2", "..", ".", "exact_1d"]),
                st.sampled_from(["model.npz", "inputs.npy", "expected.npz", "data.npz"])))
FORMATS = (st.text(max_size=60)
           | st.builds(lambda t: "deepspline-reference-conformance/" + t, st.text(max_size=20))
           | st.builds(lambda n: f"deepspline-reference-conformance/{n}",
                       st.integers(-5, 10**60))
           | st.just("deepspline-reference-conformance/" + "9" * 5000)
           | NUMBERS | st.lists(st.text(max_size=5), max_size=3) | st.none())
ANY = st.recursive(st.none() | st.booleans() | NUMBERS | st.text(max_size=10),
                   lambda inner: st.lists(inner, max_size=3)
                   | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    directory = tmp_path_factory.mktemp("suite") / "suite"
    conformance.export(directory)
    zero = directory.parent / "zero"
    zero.mkdir()
    for entry in json.loads((directory / "manifest.json").read_text())["cases"]:
        expected = np.load(directory / entry["expected"])
        np.savez(zero / f"{entry['name']}.npz", **{k: 0 * expected[k] for k in expected.files})
    return directory, zero


def edit_strategy(manifest):
    names = [c["name"] for c in manifest["cases"]]

    @st.composite
    def edits(draw):
        field = draw(st.sampled_from(FIELDS))
        if field == "format":
            return field, None, draw(FORMATS)
        i = draw(st.integers(0, len(names) - 1))
        keys = manifest["cases"][i]["answer_keys"]
        if field in ("rtol", "atol"):
            value = draw(NUMBERS | ANY)
        elif field == "key_tolerances":
            value = draw(st.dictionaries(st.sampled_from(keys) | st.text(max_size=8),
                                         st.lists(NUMBERS, min_size=0, max_size=3)
                                         | ANY, max_size=3))
        elif field in ("model", "inputs", "expected", "data"):
            value = draw(PATHS | ANY)
        elif field == "answer_keys":
            value = draw(st.lists(st.sampled_from(keys) | st.text(max_size=8), max_size=6)
                         | ANY)
        elif field == "kind":
            value = draw(st.sampled_from(["evaluate", "regulariser", "lipschitz",
                                          "objective", "lipschitz_exact", "solve"]) | ANY)
        elif field == "name":
            value = draw(st.sampled_from(names) | st.text(max_size=12) | ANY)
        else:
            parameters = manifest["cases"][i]["parameters"]
            key = draw(st.sampled_from(sorted(parameters) + ["extra"]))
            value = (key, draw(NUMBERS | st.text(max_size=8) | ANY))
        return field, i, value

    return edits()


def apply(manifest, edit):
    field, i, value = edit
    if field == "format":
        manifest["format"] = value
        return
    case = manifest["cases"][i]
    if field == "data":
        case["parameters"]["data"] = value
    elif field == "parameters":
        case["parameters"][value[0]] = value[1]
    else:
        case[field] = value


def test_a_tampered_manifest_is_refused_or_still_strict(profile, suite, tmp_path_factory):
    directory, zero = suite
    original = json.loads((directory / "manifest.json").read_text())
    work = tmp_path_factory.mktemp("tampered") / "suite"
    shutil.copytree(directory, work)
    path = work / "manifest.json"

    @given(edit_strategy(original))
    @example(("data", 0, None))        # found by the slow profile: a data path on 'knots'
    def prop(edit):
        manifest = copy.deepcopy(original)
        apply(manifest, edit)
        assume(manifest != original)
        path.write_text(json.dumps(manifest))
        try:
            suite_read = conformance.load_suite(work)
        except SuiteError as exc:
            text = str(exc)
            assert text.startswith(f"DIR: {path}: ") and "\n" not in text, text
            assert len(text) < 1200, len(text)
            return
        entry = suite_read.cases[edit[1] if edit[1] is not None else 0]
        try:
            result = conformance.grade_case(suite_read, entry, zero / f"{entry['name']}.npz")
        except SuiteError as exc:
            assert str(exc).startswith(f"DIR: {path}: ") and "\n" not in str(exc)
            return
        assert not result.passed, edit

    check_property(prop, profile)
