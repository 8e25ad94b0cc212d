"""Property tests, family "tampered records" (issue 21, item 2): random edits of a stored
sweep record's fields, of its file's bytes and of its model file's bytes are each detected
by reference.records.check_record (the record is not used, and the reason is given); and a
record that passes the checks can always be tabulated (finite numbers in their ranges)."""
import copy
import json
import math
import shutil
import sys

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reference.testing import check_property
from reference.training import _sweep as sweep
from reference.training._experiments import canonical_json
from reference.training._records import check_record, content_hash
from reference.training._sweep import expand, run_sweep, table

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.sampled_from([10**400, -1])
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                               max_size=3),
    max_leaves=6)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Two stored runs (a sparsified spline network, a ReLU one): per key, the record's text,
    its parsed content and the model's bytes; and a scratch results directory."""
    root = tmp_path_factory.mktemp("stored")
    configs = expand(activation=["spline", "relu"], dataset="circle", epochs=2, size=9)
    run_sweep(configs, root, workers=0, progress=False)
    runs = {}
    for config in configs:
        text = sweep.record_path(root, config.key()).read_text()
        model = (root / "models" / f"{config.key()}.npz").read_bytes()
        runs[config.key()] = (text, json.loads(text), model)
    scratch = tmp_path_factory.mktemp("scratch")
    shutil.copytree(root, scratch, dirs_exist_ok=True)
    return runs, scratch


def put(scratch, key, text, model):
    """Store a record (text or bytes) and a model file under `key`; check_record's answer."""
    path = sweep.record_path(scratch, key)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    (scratch / "models" / f"{key}.npz").write_bytes(model)
    return check_record(path, scratch)


def paths(value, prefix=()):
    """Every path (a tuple of keys / indices) to a node of a JSON value, the root aside."""
    items = (value.items() if isinstance(value, dict)
             else enumerate(value) if isinstance(value, list) else ())
    for k, v in items:
        yield prefix + (k,)
        yield from paths(v, prefix + (k,))


def nudged(value):
    """A number one ulp away (or the opposite boolean, or text with one more character)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, float):
        return float(np.nextafter(value, math.inf))
    if isinstance(value, int):
        return value + 1
    return value + "x" if isinstance(value, str) else None


@st.composite
def edits(draw, record):
    """A copy of `record` with one random edit: a node replaced by a random JSON value or
    nudged by one ulp, a member deleted, or a member added."""
    edited = copy.deepcopy(record)
    path = draw(st.sampled_from(sorted(paths(record), key=repr)))
    parent = edited
    for k in path[:-1]:
        parent = parent[k]
    kind = draw(st.sampled_from(["replace", "nudge", "delete", "add"]))
    if kind == "replace":
        parent[path[-1]] = draw(JSON)
    elif kind == "nudge":
        parent[path[-1]] = nudged(parent[path[-1]])
    elif kind == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=5))] = draw(JSON)
    else:
        parent.append(draw(JSON))
    return edited


def draw_edit(data, runs):
    """One of the stored runs and a random edit of its record: (key, record, model bytes,
    edited record)."""
    key = data.draw(st.sampled_from(sorted(runs)))
    _, record, model = runs[key]
    return key, record, model, data.draw(edits(record))


def dump(record, style):
    return json.dumps(record, indent=1) if style == "indent" else json.dumps(record)


def test_every_edit_of_a_record_is_detected(profile, stored):
    runs, scratch = stored

    @given(st.data())
    def prop(data):
        key, record, model, edited = draw_edit(data, runs)
        assume(canonical_json(edited) != canonical_json(record))
        got, problem = put(scratch, key, dump(edited, data.draw(st.sampled_from(
            ["indent", "compact"]))), model)
        assert got is None and isinstance(problem, str) and problem, (edited, problem)
    check_property(prop, profile)


def test_every_byte_edit_of_a_record_file_or_a_model_file_is_detected(profile, stored):
    """A byte edit that leaves the JSON content unchanged (e.g. in its indentation) is the
    same record and is accepted; every other one is detected."""
    runs, scratch = stored

    @given(st.data())
    def prop(data):
        key = data.draw(st.sampled_from(sorted(runs)))
        text, record, model = runs[key]
        target = data.draw(st.sampled_from(["record", "model"]))
        original = text.encode() if target == "record" else model
        size = len(original)
        kind = data.draw(st.sampled_from(["flip", "truncate", "append", "replace"]))
        if kind == "flip":
            i = data.draw(st.integers(0, size - 1))
            mask = data.draw(st.integers(1, 255))
            damaged = original[:i] + bytes([original[i] ^ mask]) + original[i + 1:]
        elif kind == "truncate":
            damaged = original[:data.draw(st.integers(0, size - 1))]
        elif kind == "append":
            damaged = original + data.draw(st.binary(min_size=1, max_size=16))
        else:
            damaged = data.draw(st.binary(max_size=64))
        assume(damaged != original)
        if target == "record":
            got, problem = put(scratch, key, damaged, model)
            try:
                same = json.loads(damaged) == record
            except ValueError:
                same = False
            if same:
                assert problem is None and got == record
                return
        else:
            got, problem = put(scratch, key, text, damaged)
            assert problem is not None and f"model models/{key}.npz" in problem, problem
        assert got is None and isinstance(problem, str) and problem
    check_property(prop, profile)


def test_a_record_that_passes_the_checks_can_always_be_tabulated(profile, stored):
    """Forged edits (the hash recomputed after the edit): either a value check names what
    is wrong, or the record is used, and then the table's numbers are finite and in range
    (the TypeError of item 12 cannot come back through a verified record)."""
    runs, scratch = stored

    @given(st.data())
    def prop(data):
        key, record, model, edited = draw_edit(data, runs)
        edited["record_sha256"] = content_hash(edited)
        got, problem = put(scratch, key, json.dumps(edited), model)
        if problem is not None:
            assert got is None
            return
        (row,) = table([got])
        for name, value in row.items():           # every metric is >= 0 (and its std)
            if name.endswith(("_mean", "_std")) and value is not None:
                assert isinstance(value, float) and math.isfinite(value) and value >= 0, \
                    (name, value)
        assert 0 <= row["test_accuracy_mean"] <= 1 and 0 <= row["train_accuracy_mean"] <= 1
        assert row["seeds"] == 1 and row["failed"] == 0
    check_property(prop, profile)


def _number(v):
    """A JSON number of the float64 range (an integer too: 10**400 is not one)."""
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and -sys.float_info.max <= v <= sys.float_info.max)


def _nonneg(v):
    return _number(v) and v >= 0


def _count(v):
    return isinstance(v, int) and _number(v) and v >= 0


def _per_layer(element):
    return lambda v, layers: (isinstance(v, list) and len(v) == layers
                              and all(element(x) for x in v))


# the documented rules (README, Guarantees), restated here as the oracle: path in an 'ok'
# record -> whether a value is acceptable there (layers: spline layers of the network)
RULES = {
    ("test_accuracy",): lambda v, _: _number(v) and 0 <= v <= 1,
    ("valid_accuracy",): lambda v, _: _number(v) and 0 <= v <= 1,
    ("train_accuracy",): lambda v, _: _number(v) and 0 <= v <= 1,
    ("train_loss",): lambda v, _: _nonneg(v),
    ("objective",): lambda v, _: _nonneg(v),
    ("seconds",): lambda v, _: _nonneg(v),
    ("lipschitz_bound",): lambda v, _: v is None or _nonneg(v),
    ("knots",): _per_layer(_count),
    ("tv2",): _per_layer(_nonneg),
    ("bv2",): _per_layer(_nonneg),
    **{("ladder", p, m, "value"): (lambda v, _: v is None or _nonneg(v))
       for p in ("1", "2", "inf") for m in ("theorem1", "theorem1_bv2", "layerwise", "lower")},
    ("ladder", "2", "lipsdp_neuron", "value"): lambda v, _: v is None or _nonneg(v),
    ("sparsify", "threshold"): lambda v, _: v is None or _nonneg(v),
    ("sparsify", "knots_before"): lambda v, _: _count(v),
}
SCALARS = (st.none() | st.booleans() | st.integers(-3, 3) | st.integers(-10**30, 10**30)
           | st.floats() | st.sampled_from([0.0, 1.0, -0.0, 1.5, -1e-300, 1e308, 10**400])
           | st.text(max_size=4))
VALUES = SCALARS | st.lists(SCALARS, max_size=3) | st.lists(SCALARS, min_size=1, max_size=1)
VALUE_EXAMPLES = 500      # default profile: cheap (~5 ms an example), and every rule is hit


def test_values_are_checked_against_their_documented_ranges(profile, stored):
    """A value set at a checked field, with the record's hash recomputed (a forged edit):
    the record is used exactly when the value obeys the documented rule, else the field
    is named."""
    runs, scratch = stored

    @given(st.data())
    def prop(data):
        key = data.draw(st.sampled_from(sorted(runs)))
        text, record, model = runs[key]
        layers = len(record["knots"])
        path = data.draw(st.sampled_from([p for p in RULES if p[0] != "sparsify"
                                          or "sparsify" in record]))
        value = data.draw(VALUES)
        edited = copy.deepcopy(record)
        parent = edited
        for k in path[:-1]:
            parent = parent[k]
        parent[path[-1]] = value
        try:
            edited["record_sha256"] = content_hash(edited)
        except ValueError:                 # NaN / inf: no hash, and JSON writes a bad token
            assert not _finite_json(value)
        got, problem = put(scratch, key, json.dumps(edited), model)
        if RULES[path](value, layers):
            assert problem is None and got == json.loads(json.dumps(edited)), problem
            table([got])
        else:
            assert got is None and problem is not None
            if _finite_json(value):
                assert problem.startswith(".".join(path) + ":"), (path, value, problem)
    check_property(prop, profile, examples=VALUE_EXAMPLES)


def _finite_json(value) -> bool:
    """No NaN / inf / integer beyond float64 inside (those make the file itself unreadable:
    another message)."""
    if isinstance(value, list):
        return all(_finite_json(v) for v in value)
    return _number(value) or not isinstance(value, (int, float)) or isinstance(value, bool)
