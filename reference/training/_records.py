"""Sweep records: their content hash, and the checks a stored record passes before it is used.

A record is RESULTS/records/<key>.json, written by reference.training.run_sweep (layout: its module
docstring).  Writing (`seal`) adds two fields:
- model_sha256 ('ok' records): sha256 of the model file's bytes (RESULTS/models/<key>.npz);
- record_sha256: sha256 of the record's canonical JSON without this field
  (experiments.canonical_json: sorted keys, no spaces; JSON numbers read back as the same
  floats), so it covers the summary, key, run_config, status, model and model_sha256.

Reading (`check_record`): a record is *verified* when
1. its file is a regular file (or a link to one; a FIFO or a device is not read) holding
   strict JSON (no NaN / Infinity tokens, every number in the float64 range): an object
   whose `run_config` is a RunConfig as to_dict() writes it and whose `key` is the key of
   that config (RunConfig.key()) and the file's name;
2. its values have their types and ranges (`value_problem`): status 'ok' or 'failed';
   an 'ok' record's accuracies are numbers in [0, 1], knots integers >= 0, tv2 / bv2 /
   losses / seconds finite numbers >= 0, one knots / tv2 / bv2 entry per spline layer,
   lipschitz_bound and every ladder value null or a finite number >= 0 (a Lipschitz constant),
   dataset / activation / hidden those of the run_config, the sparsify totals present when
   the config sparsifies; a failed record's error and traceback are text;
3. its record_sha256 is the hash of its content;
4. an 'ok' record's model is the file models/<key>.npz, a regular file, and that file's
   bytes have the hash model_sha256.
Anything else is *damaged*, and `check_record` says what (the first check that fails, in
the order above).  A record without record_sha256 (written before records were hashed) is
*unverified* (said right after check 1): used like a damaged one, with that reason.  The
hash detects hand edits, a truncated or replaced model and disk damage; it is not a
signature (whoever can write the directory can recompute it).
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

from reference._format import shown
from reference.io._files import jsonable
from reference.training._experiments import LADDER_P, LADDER_RUNGS, RunConfig, json_sha256

RECORDS, MODELS = "records", "models"      # the subdirectories of a results directory
RECORD_HASH, MODEL_HASH = "record_sha256", "model_sha256"
HASH_KEYS = (MODEL_HASH, RECORD_HASH)
STATUSES = ("ok", "failed")
UNVERIFIED = ("no content hash (written before records carried record_sha256): unverified, "
              "so not used")
HASH_CHUNK = 1 << 20                  # bytes read at a time when hashing a model file
# a FIFO would block the read, a device (a link to /dev/zero) never end it: neither is read
NOT_REGULAR = "not a regular file (a directory, FIFO or device, or a link to one): not read"


def model_path(key: str) -> str:
    """Where a run's model is stored, relative to the results directory."""
    return f"{MODELS}/{key}.npz"


# ------------------------------------------------------------------------ hashing
def sha256_file(path) -> str:
    """Hex sha256 of a file's bytes (read in HASH_CHUNK pieces)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_hash(record: dict) -> str:
    """Hex sha256 of canonical_json(record without record_sha256)."""
    return json_sha256({k: v for k, v in record.items() if k != RECORD_HASH})


def seal(record: dict, model_file=None) -> dict:
    """The record as stored: JSON-ready (files.jsonable), with model_sha256 (the hash of
    `model_file`, when given) and record_sha256 added last."""
    sealed = jsonable(record)
    if model_file is not None:
        sealed[MODEL_HASH] = sha256_file(model_file)
    sealed[RECORD_HASH] = content_hash(sealed)
    return sealed


# ------------------------------------------------------------------------ reading
def _refuse_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def parse_record(text: str):
    """The JSON value of `text`, strictly: NaN / Infinity tokens and numbers beyond the
    float64 range (1e999, which Python reads as inf, or an integer of 400 digits) are a
    ValueError."""
    value = json.loads(text, parse_constant=_refuse_constant)
    where = _non_finite(value, "")
    if where is not None:
        raise ValueError(f"{where or 'the record'}: a number beyond the float64 range")
    return value


def _non_finite(value, where: str):
    """The path of the first number of a JSON value outside the float64 range (inf, NaN, an
    integer beyond 1.8e308), else None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else where
    if isinstance(value, int):
        return None if abs(value) <= sys.float_info.max else where
    items = (value.items() if isinstance(value, dict)
             else enumerate(value) if isinstance(value, list) else ())
    for k, v in items:
        found = _non_finite(v, f"{where}.{k}" if where else str(k))
        if found is not None:
            return found
    return None


def check_record(path, results=None):
    """(record, problem) for the record file `path`: problem None when the record is
    verified (see the module docstring; the model is checked when `results` is given),
    else what is wrong with it (record then None)."""
    path = Path(path)
    if path.exists() and not path.is_file():
        return None, NOT_REGULAR
    try:
        record = parse_record(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        # RecursionError: JSON nested too deeply for Python's reader (e.g. 10^5 brackets)
        return None, f"not readable as a record ({type(exc).__name__}: {exc})"
    problem = record_problem(record, key=path.stem, results=results)
    return (record, None) if problem is None else (None, problem)


def record_problem(record, key=None, results=None) -> str | None:
    """What is wrong with a parsed record (None if nothing): the checks 1-4 of the module
    docstring; the key is checked against `key` (the file's name) when given, the model
    file when `results` (the results directory) is given."""
    if not isinstance(record, dict) or "key" not in record or "status" not in record:
        return "not a sweep record (expected an object with key, status and run_config)"
    if not isinstance(record.get("run_config"), dict):
        return f"run_config: expected an object, got {shown(record.get('run_config'), 80)}"
    try:
        config = RunConfig.from_dict(record["run_config"])
    except (TypeError, ValueError, OverflowError) as exc:     # e.g. sparsify 10**400
        return f"run_config unusable: {type(exc).__name__}: {exc}"
    if record["run_config"] != config.to_dict():
        return (f"run_config: not as a sweep writes it (expected {config.to_dict()}, got "
                f"{record['run_config']})")
    if record["key"] != config.key():
        return f"key: {shown(record['key'], 80)} is not the key of its run_config ({config.key()})"
    if key is not None and record["key"] != key:
        return f"key: {record['key']!r} is not the file's name ({key}.json): a copied record"
    if RECORD_HASH not in record:
        return UNVERIFIED
    problem = value_problem(record, config)
    if problem is not None:
        return problem
    if record[RECORD_HASH] != content_hash(record):
        return (f"{RECORD_HASH}: does not match the record's content (edited or damaged "
                "after it was written)")
    if results is not None and record["status"] == "ok":
        return model_problem(record, results)
    return None


def model_problem(record: dict, results) -> str | None:
    """Whether an 'ok' record's model file is the one it was written with."""
    model = Path(results) / record["model"]
    if model.exists() and not model.is_file():
        return f"model {record['model']}: {NOT_REGULAR}"
    try:
        digest = sha256_file(model)
    except OSError as exc:
        return f"model {record['model']}: cannot be read ({exc.strerror or exc})"
    if digest != record[MODEL_HASH]:
        return (f"model {record['model']}: its bytes do not match {MODEL_HASH} (truncated, "
                "replaced or damaged)")
    return None


# ------------------------------------------------------------------------ values
def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fraction(value) -> bool:
    return _number(value) and 0 <= value <= 1


def _nonneg(value) -> bool:
    return _number(value) and math.isfinite(value) and value >= 0


def _optional_nonneg(value) -> bool:
    return value is None or _nonneg(value)


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _text(value) -> bool:
    return isinstance(value, str)


def _list_of(check):
    return lambda value: isinstance(value, list) and all(check(v) for v in value)


FRACTION = (_fraction, "a number in [0, 1]")
NONNEG = (_nonneg, "a finite number >= 0")
BOUND = (_optional_nonneg, "null or a finite number >= 0")
TEXT = (_text, "text")
OK_FIELDS = {            # field of an 'ok' record -> (check, what is expected)
    "test_accuracy": FRACTION, "valid_accuracy": FRACTION, "train_accuracy": FRACTION,
    "train_loss": NONNEG, "objective": NONNEG, "seconds": NONNEG,
    "tv2": (_list_of(_nonneg), "a list of finite numbers >= 0"),
    "bv2": (_list_of(_nonneg), "a list of finite numbers >= 0"),
    "knots": (_list_of(_count), "a list of integers >= 0"),
    "lipschitz_bound": BOUND, "loss": TEXT,
    "model": TEXT, MODEL_HASH: TEXT,
}
FAILED_FIELDS = {"error": TEXT, "traceback": TEXT}
SPARSIFY_FIELDS = {"threshold": BOUND, "knots_before": (_count, "an integer >= 0"),
                   "knots_after": (_count, "an integer >= 0")}


def _field_problem(container: dict, fields: dict, where: str = "") -> str | None:
    for name, (check, expected) in fields.items():
        if name not in container:
            return f"{where}{name}: missing"
        if not check(container[name]):
            return f"{where}{name}: expected {expected}, got {shown(container[name], 80)}"
    return None


def value_problem(record: dict, config: RunConfig) -> str | None:
    """The types and ranges of a record's values (check 2 of the module docstring)."""
    if record["status"] not in STATUSES:
        return f"status: expected one of {list(STATUSES)}, got {shown(record['status'], 80)}"
    if record["status"] == "failed":
        return _field_problem(record, FAILED_FIELDS)
    problem = _field_problem(record, OK_FIELDS)
    if problem is not None:
        return problem
    if record["model"] != model_path(record["key"]):
        return f"model: expected {model_path(record['key'])!r}, got {shown(record['model'], 80)}"
    for name, value in (("dataset", config.dataset), ("activation", config.activation),
                        ("hidden", list(config.hidden))):
        if record.get(name) != value:
            return f"{name}: {shown(record.get(name), 80)} is not the run_config's {value!r}"
    layers = len(config.hidden) if config.activation == "spline" else 0
    for name in ("knots", "tv2", "bv2"):
        if len(record[name]) != layers:
            return (f"{name}: expected {layers} entries (one per spline layer), got "
                    f"{len(record[name])}")
    problem = _ladder_problem(record.get("ladder"))
    sparsifies = config.activation == "spline" and config.sparsify is not None
    if problem is None and (sparsifies or "sparsify" in record):
        sparsify = record.get("sparsify")
        problem = ("sparsify: expected the sparsification's totals (an object), got "
                   f"{shown(sparsify, 80)}" if not isinstance(sparsify, dict)
                   else _field_problem(sparsify, SPARSIFY_FIELDS, "sparsify."))
    return problem


def _ladder_problem(ladder) -> str | None:
    """Every rung of every p present, each an object whose value is BOUND."""
    if not isinstance(ladder, dict):
        return f"ladder: expected an object, got {shown(ladder, 80)}"
    for p in LADDER_P:
        rungs = ladder.get(p)
        if not isinstance(rungs, dict):
            return f"ladder.{p}: expected an object, got {shown(rungs, 80)}"
        for name in LADDER_RUNGS[p]:
            if not isinstance(rungs.get(name), dict):
                return f"ladder.{p}.{name}: expected an object, got {shown(rungs.get(name), 80)}"
            problem = _field_problem(rungs[name], {"value": BOUND}, f"ladder.{p}.{name}.")
            if problem is not None:
                return problem
    return None
