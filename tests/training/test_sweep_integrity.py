"""Stored sweep records are checked before use (issue 21, items 2, 7 and 12): a record edited
by hand, a damaged or replaced model file, values of the wrong type or range, and records
written before the hash are reported by name, recomputed by the sweep and never averaged by
the table."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from reference.cli import main
from reference.training import _sweep as sweep
from reference.training._sweep import expand, load_records, run_sweep, table, without_timings

CONFIGS = expand(activation=["spline", "relu"], lam=[1e-3, 1.0], seeds=[0, 1],
                 dataset="circle", epochs=2, size=9)
SPLINE = 0                        # index in CONFIGS of the record that is damaged
ROOT = Path(__file__).resolve().parents[2]           # `python -m reference` of this tree
SWEEP_ARGS = ["--activation", "spline,relu", "--lam", "1e-3,1", "--seeds", "0,1", "--epochs",
              "2", "--size", "9", "--workers", "0", "--quiet"]      # CONFIGS, in this process


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    return root, run_sweep(CONFIGS, root, workers=0, progress=False)


@pytest.fixture
def results(pristine, tmp_path):
    """A copy of the pristine results directory, to damage."""
    root, first = pristine
    shutil.copytree(root, tmp_path / "r")
    return tmp_path / "r", first


def edit(root, key, change, rehash=False):
    """Apply change(record) to the stored record of `key` (the hash recomputed when
    `rehash`: the values' own checks must catch it then)."""
    path = sweep.record_path(root, key)
    record = json.loads(path.read_text())
    change(record)
    if rehash:
        from reference.training._records import content_hash
        record["record_sha256"] = content_hash(record)
    path.write_text(json.dumps(record, indent=1))


def setter(name, value):
    return lambda r: r.__setitem__(name, value)


def assert_recomputed(root, first, key, reason):
    """The sweep reports `key` with `reason`, recomputes it (the same record, timings and
    hashes aside) and reuses the others; the table then equals the pristine one."""
    again = run_sweep(CONFIGS, root, workers=0, progress=False)
    assert (again.done, again.cached, again.failed) == (1, len(CONFIGS) - 1, 0)
    assert [k for k, _ in again.damaged] == [key], again.damaged
    assert reason in again.damaged[0][1], again.damaged
    for old, new in zip(first.records, again.records):
        assert without_timings(old) == without_timings(new)
    assert untimed(table(load_records(root))) == untimed(table(first.records))


def untimed(rows):
    """Table rows without the training time, which differs between identical runs."""
    return [{k: v for k, v in row.items() if not k.startswith("seconds_")} for row in rows]


def test_records_carry_the_hash_of_their_content_and_of_their_model(pristine):
    from reference.training._experiments import canonical_json
    root, first = pristine
    for record in first.records:
        body = {k: v for k, v in record.items() if k != "record_sha256"}
        assert record["record_sha256"] == hashlib.sha256(
            canonical_json(body).encode()).hexdigest()
        model = (root / record["model"]).read_bytes()
        assert record["model_sha256"] == hashlib.sha256(model).hexdigest()
        assert list(record)[-2:] == ["model_sha256", "record_sha256"]   # added last
    assert load_records(root) == sorted(first.records, key=lambda r: r["key"])


EDITS = {        # the hand edits, and values of the wrong type or range
    "accuracy 0.1": (setter("test_accuracy", 0.1), "record_sha256: does not match"),
    "bound 1e-3": (setter("lipschitz_bound", 1e-3), "record_sha256: does not match"),
    "knots 1e308": (setter("knots", [1e308]), "knots: expected a list of integers >= 0"),
    "negative bound": (setter("lipschitz_bound", -1.0),
                       "lipschitz_bound: expected null or a finite number >= 0"),
    "accuracy as text": (setter("test_accuracy", "0.9"),
                         "test_accuracy: expected a number in [0, 1], got '0.9'"),
    "accuracy 1.5": (setter("test_accuracy", 1.5), "test_accuracy: expected a number in"),
    "knots true": (setter("knots", [True]), "knots: expected a list of integers >= 0"),
    "ladder value": (lambda r: r["ladder"]["2"]["lower"].__setitem__("value", "big"),
                     "ladder.2.lower.value: expected null or a finite number >= 0"),
    "no test accuracy": (lambda r: r.pop("test_accuracy"), "test_accuracy: missing"),
    "status": (setter("status", "done"), "status: expected one of ['ok', 'failed']"),
    "sparsify 10**400": (lambda r: r["run_config"].__setitem__("sparsify", 10**400),
                         "run_config.sparsify: a number beyond the float64 range"),
}


# every edit as made by hand (the hash no longer matches), and each edit whose value is
# refused also with its hash recomputed (the value checks alone must catch it)
EDIT_CASES = [(name, False) for name in sorted(EDITS)] + [
    (name, True) for name in sorted(EDITS) if not EDITS[name][1].startswith("record_sha256")]


@pytest.mark.parametrize("name, rehash", EDIT_CASES,
                         ids=[f"{n}{', rehashed' if r else ''}" for n, r in EDIT_CASES])
def test_an_edited_record_is_named_recomputed_and_not_averaged(results, name, rehash):
    root, first = results
    change, reason = EDITS[name]
    key = CONFIGS[SPLINE].key()
    edit(root, key, change, rehash)
    with pytest.warns(UserWarning) as caught:
        rows = table(load_records(root))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and f"{key}.json" in messages[0] and reason in messages[0]
    assert rows == table([r for r in first.records if r["key"] != key])
    assert_recomputed(root, first, key, reason)


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]), "do not match"),
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(p.stat().st_size)),
     "do not match"),
    (lambda p: p.write_bytes(b""), "do not match"),
    (lambda p: p.unlink(), "cannot be read"),
    (lambda p: shutil.copyfile(p.parent / f"{CONFIGS[SPLINE + 1].key()}.npz", p),
     "do not match"),
], ids=["truncated", "garbage", "empty", "missing", "another run's model"])
def test_a_damaged_model_file_is_named_and_its_run_recomputed(results, damage, reason):
    """Item 7: the model file's hash is checked, not only that it exists."""
    root, first = results
    key = CONFIGS[SPLINE].key()
    damage(root / "models" / f"{key}.npz")
    with pytest.warns(UserWarning, match=f"{key}.json .model models/{key}.npz: .*{reason}"):
        assert table(load_records(root)) == table(
            [r for r in first.records if r["key"] != key])
    assert_recomputed(root, first, key, f"model models/{key}.npz")


def test_records_without_a_hash_are_unverified_and_recomputed(results):
    """Records written before this change (no record_sha256, no model_sha256) are not used,
    and the reason says so."""
    root, first = results
    key = CONFIGS[SPLINE].key()
    edit(root, key, lambda r: [r.pop(k) for k in ("record_sha256", "model_sha256")])
    with pytest.warns(UserWarning, match=f"{key}.json .no content hash .*unverified"):
        load_records(root)
    assert_recomputed(root, first, key, "unverified")


@pytest.mark.parametrize("number, reason", [
    ("1e999", "seconds: a number beyond the float64 range"),
    ("NaN", "NaN is not a number JSON allows"),
    ("-Infinity", "-Infinity is not a number JSON allows")])
def test_non_finite_numbers_are_refused(results, number, reason):
    """Python's JSON reader turns 1e999 into inf and accepts NaN / Infinity tokens."""
    root, first = results
    key = CONFIGS[SPLINE].key()
    path = sweep.record_path(root, key)
    path.write_text(re.sub(r'"seconds": [^,\n]+', f'"seconds": {number}', path.read_text(),
                           count=1))
    with pytest.warns(UserWarning, match=re.escape(reason)):
        load_records(root)
    assert_recomputed(root, first, key, reason)


def test_a_record_nested_too_deeply_to_parse_is_recomputed(results):
    """JSON nested 10^5 deep makes Python's reader raise RecursionError, which ended the whole
    sweep with exit 2 instead of recomputing that one record."""
    root, first = results
    key = CONFIGS[SPLINE].key()
    sweep.record_path(root, key).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.warns(UserWarning, match=f"{key}.json .not readable as a record "
                                         r"\(RecursionError"):
        load_records(root)
    assert_recomputed(root, first, key, "RecursionError")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
@pytest.mark.parametrize("which", ["model", "record"])
@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_a_model_or_record_that_is_not_a_regular_file_is_damaged_not_read(results, which,
                                                                         special):
    """A FIFO (open() waits for a writer forever) or a link to /dev/zero (endless bytes) in
    place of a model or record file hung the sweep while it hashed or read it; it is named
    as not a regular file and recomputed.  Run as a process: a hang fails after 120 s."""
    root, first = results
    key = CONFIGS[SPLINE].key()
    path = (root / "models" / f"{key}.npz" if which == "model"
            else sweep.record_path(root, key))
    path.unlink()
    if special == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(special)
    proc = subprocess.run([sys.executable, "-m", "reference", "sweep", "--results", str(root),
                           *SWEEP_ARGS], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"{len(CONFIGS)} runs: 1 done, {len(CONFIGS) - 1} cached, 0 failed" in proc.stdout
    assert f"recomputed {key}: its record was not used (" in proc.stdout
    assert "not a regular file" in proc.stdout, proc.stdout
    assert path.is_file() and not path.is_symlink()          # replaced by the new run's file
    assert without_timings(json.loads(sweep.record_path(root, key).read_text())) == \
        without_timings(first.records[SPLINE])


def test_a_record_copied_under_another_name_is_not_used(results):
    """A copy of a record under another key would otherwise be averaged twice."""
    root, first = results
    a, b = (CONFIGS[i].key() for i in (SPLINE, SPLINE + 1))
    shutil.copyfile(sweep.record_path(root, a), sweep.record_path(root, b))
    with pytest.warns(UserWarning, match=f"{b}.json .key: '{a}' is not the file's name"):
        rows = table(load_records(root))
    assert rows == table([r for r in first.records if r["key"] != b])
    assert_recomputed(root, first, b, "is not the file's name")


def test_table_command_on_a_text_accuracy_warns_and_prints_the_other_records(results):
    """Item 12: test_accuracy "0.9" used to end in a TypeError traceback.  As a user runs it:
    exit 0, the table of the other records on stdout, and on stderr one line naming the
    record and what is wrong (not Python's warning format, which quoted a line of the CLI's
    source)."""
    root, first = results
    key = CONFIGS[SPLINE].key()
    edit(root, key, setter("test_accuracy", "0.9"))
    proc = subprocess.run([sys.executable, "-m", "reference", "sweep", "--results", str(root),
                           "--table"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == sweep.format_table(table(
        [r for r in first.records if r["key"] != key]))
    path = sweep.record_path(root, key)
    assert proc.stderr.splitlines() == [
        f"warning: results: skipped {path} (test_accuracy: expected a number in [0, 1], got "
        "'0.9')"], proc.stderr


def test_sweep_command_names_the_recomputed_records(results, capsys):
    root, first = results
    key = CONFIGS[SPLINE].key()
    edit(root, key, setter("lipschitz_bound", 1e-3))
    argv = ["sweep", "--results", str(root), *SWEEP_ARGS]
    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # nothing else complains
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{len(CONFIGS)} runs: 1 done, {len(CONFIGS) - 1} cached, 0 failed" in out
    assert f"  recomputed {key}: its record was not used (record_sha256: does not match" in out
    assert main(argv) == 0
    assert "recomputed" not in capsys.readouterr().out


def test_figures_recompute_a_damaged_record_and_name_it(quick_figures):
    """The figures go through the sweep: a damaged record is recomputed, named in the log
    and the index, and the figure's numbers are the recomputed run's."""
    from figures.run import generate
    out, _ = quick_figures
    root = out / "results"
    record = next(json.loads(p.read_text()) for p in sorted((root / "records").glob("*.json"))
                  if json.loads(p.read_text())["hidden"] == [2]
                  and json.loads(p.read_text())["activation"] == "relu")
    key, accuracy = record["key"], record["test_accuracy"]
    edit(root, key, setter("test_accuracy", 0.1))
    log = []
    generate("quick", out=out, only=["width_table"], workers=0, progress=False,
             log=log.append)
    text = "\n".join(log)
    assert f"recomputed {key}: its record was not used (record_sha256: does not match" in text
    assert f"{key}" in (out / "index.md").read_text()
    assert json.loads(sweep.record_path(root, key).read_text())["test_accuracy"] == accuracy
