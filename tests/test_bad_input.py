"""Fuzz harness for the loaders and the command line: bad files, bad values, bad places to
write.  Every case must end with exit status 2 (1 only where a check legitimately fails), a
one-line message on stderr that names the argument, no traceback, and every file that was
there before unchanged (bytes and permissions)."""
import errno
import json
import os
import shlex
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from reference.cli import main
from reference.io import _files as files
from reference.io._model_file import FORMAT, load_model, save_model
from reference.nn._network import build_mlp


# ----------------------------------------------------------------------------- helpers
def snapshot(directory):
    """{name: (bytes, mode)} of every file below directory."""
    out = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[path] = (f.read(), stat.S_IMODE(os.stat(path).st_mode))
    return out


def run_fails(argv, capsys, names, tmp_path, status=2):
    """main(argv) must return `status` with a one-line error naming every string in `names`,
    no traceback, and leave every file in tmp_path as it was."""
    before = snapshot(tmp_path)
    assert main([str(a) for a in argv]) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]
    for name in names:
        assert name in message, (name, message)
    assert snapshot(tmp_path) == before
    return message


def raw_npz(path, members: dict):
    """An .npz written member by member: name -> bytes (already in .npy format)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)
    return path


def torch_like(path):
    """A zip laid out like torch.save's (archive/data.pkl), without torch."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x04.")
        zf.writestr("archive/version", b"3\n")
    return path


def npy_bytes(array) -> bytes:
    import io as _io
    buffer = _io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def model_members(net) -> dict:
    from reference.io._model_file import layer_entries
    entries, arrays = layer_entries(net)
    members = {"format": npy_bytes(np.array(FORMAT)),
               "layers": npy_bytes(np.array(json.dumps(entries)))}
    members.update({k: npy_bytes(v) for k, v in arrays.items()})
    return members, entries


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.npz"
    save_model(build_mlp([2, 3, 1], "spline", rng=0, size=7, range_=2.0), path)
    return path


@pytest.fixture
def inputs(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).uniform(-1, 1, (5, 2)))
    return path


# -------------------------------------------------------------------- model files
def corrupt_crc(path):
    """Flip the last data byte of the largest member (its CRC no longer matches)."""
    with zipfile.ZipFile(path) as zf:
        info = max(zf.infolist(), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = np.frombuffer(raw[info.header_offset + 26:info.header_offset + 30],
                                        dtype="<u2")
    last = info.header_offset + 30 + int(name_len) + int(extra_len) + info.compress_size - 1
    raw[last] ^= 0xFF
    path.write_bytes(bytes(raw))


def huge_header(path, net_path):
    """The model with its first weight's .npy header declaring a 10^6 x 10^6 array."""
    import io as _io
    members = {}
    with zipfile.ZipFile(net_path) as zf:
        for info in zf.infolist():
            members[info.filename[:-4]] = zf.read(info)
    buffer = _io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    members["layer0.weight"] = buffer.getvalue() + b"\0" * 48
    raw_npz(path, members)


def edit_layers(path, edit):
    """Rewrite the model's layer list with edit(entries) (and optional new members)."""
    members = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            members[info.filename[:-4]] = zf.read(info)
    entries = json.loads(str(np.load(path)["layers"]))
    extra = edit(entries) or {}
    members["layers"] = npy_bytes(np.array(json.dumps(entries)))
    members.update({k: npy_bytes(v) for k, v in extra.items()})
    path.unlink()
    raw_npz(path, members)


def _shared_weight(entries):
    entries[2]["weight"] = entries[0]["weight"]


def _x_min_huge_int(entries):
    entries[1]["x_min"] = 10 ** 400


def _step_subnormal(entries):
    entries[1]["step"] = 5e-324


def _width_zero(entries):
    entries[0]["weight"] = "w0"
    return {"w0": np.zeros((3, 0))}


def _prelu_width_zero(entries):
    entries[1] = {"type": "prelu", "slope": "s0"}
    entries[0]["weight"] = "w0"
    entries[0]["bias"] = None
    return {"s0": np.zeros(0), "w0": np.zeros((3, 2))}


def _coefficients_huge(entries):
    return {entries[1]["coefficients"]: np.full((3, 7), 1e308)}


def _format_unknown(entries):
    entries.append({"type": "softmax"})


def _complex_weight(entries):
    return {entries[0]["weight"]: np.ones((3, 2), dtype=complex)}


MODEL_CASES = {
    "crc": lambda p, m: corrupt_crc(p),
    "huge declared shape": lambda p, m: huge_header(p, m),
    "truncated": lambda p, m: p.write_bytes(m.read_bytes()[: m.stat().st_size // 2]),
    "empty file": lambda p, m: p.write_bytes(b""),
    "npy array": lambda p, m: np.save(open(p, "wb"), np.zeros(3)),
    "pickle": lambda p, m: p.write_bytes(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01."),
    "torch-like zip": lambda p, m: torch_like(p),
    "shared names": lambda p, m: edit_layers(p, _shared_weight),
    "400-digit x_min": lambda p, m: edit_layers(p, _x_min_huge_int),
    "step 5e-324": lambda p, m: edit_layers(p, _step_subnormal),
    "input width 0": lambda p, m: edit_layers(p, _width_zero),
    "prelu width 0": lambda p, m: edit_layers(p, _prelu_width_zero),
    "coefficients 1e308": lambda p, m: edit_layers(p, _coefficients_huge),
    "unknown layer type": lambda p, m: edit_layers(p, _format_unknown),
    "complex weight": lambda p, m: edit_layers(p, _complex_weight),
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
@pytest.mark.parametrize("command", ["evaluate", "info", "lipschitz"])
def test_bad_model_files(case, command, tmp_path, model, inputs, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(model.read_bytes())
    MODEL_CASES[case](bad, model)
    argv = {"evaluate": ["evaluate", bad, "--inputs", inputs, "--output", tmp_path / "o.npz"],
            "info": ["info", bad],
            "lipschitz": ["lipschitz", bad, "--methods", "layerwise"]}[command]
    message = run_fails(argv, capsys, [str(bad)], tmp_path)
    assert message.startswith("error: ")
    assert not (tmp_path / "o.npz").exists()


def test_shared_names_are_refused_with_the_reason(tmp_path, model):
    edit_layers(model, _shared_weight)
    with pytest.raises(ValueError, match="already used by layer 0.*tied parameters"):
        load_model(model)


def test_a_model_reads_only_the_entries_its_layers_name(tmp_path, model, monkeypatch):
    """An unused entry is never read: its header may even be damaged."""
    members = {}
    with zipfile.ZipFile(model) as zf:
        for info in zf.infolist():
            members[info.filename[:-4]] = zf.read(info)
    members["unused"] = b"\x93NUMPY garbage"
    path = raw_npz(tmp_path / "extra.npz", members)
    read = []
    original = files.NpzReader.__getitem__
    monkeypatch.setattr(files.NpzReader, "__getitem__",
                        lambda self, name: read.append(name) or original(self, name))
    load_model(path)
    assert "unused" not in read and len(read) == len(members) - 1


def test_the_kind_of_a_wrong_file_is_named(tmp_path, capsys, inputs):
    pth = torch_like(tmp_path / "ckpt.pth")
    assert main(["info", str(pth)]) == 2
    assert "PyTorch checkpoint" in capsys.readouterr().err
    assert main(["info", str(inputs)]) == 2
    assert "single NumPy array (.npy)" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["garbage", "no weights"])
def test_bad_mat_files(content, tmp_path, capsys):
    path = tmp_path / "w.mat"
    if content == "garbage":
        path.write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 50)
    else:
        scipy.io.savemat(path, {"other": np.eye(2)})
    run_fails(["lipschitz", path, "--methods", "layerwise"], capsys, [str(path)], tmp_path)


# -------------------------------------------------------------------------- inputs
def _object_array(p):
    np.save(p, np.array([object()]), allow_pickle=True)


INPUT_CASES = {
    "missing": lambda p: None,
    "directory": lambda p: p.mkdir(),
    "npz instead of npy": lambda p: np.savez(open(p, "wb"), x=np.zeros((2, 2))),
    "object array (pickle)": _object_array,
    "complex": lambda p: np.save(open(p, "wb"), np.ones((2, 2), dtype=complex)),
    "strings": lambda p: np.save(open(p, "wb"), np.array([["a", "b"]])),
    "wrong width": lambda p: np.save(open(p, "wb"), np.zeros((2, 3))),
    "3-D": lambda p: np.save(open(p, "wb"), np.zeros((2, 2, 1))),
    "NaN": lambda p: np.save(open(p, "wb"), np.full((2, 2), np.nan)),
    "truncated": lambda p: p.write_bytes(npy_bytes(np.zeros((100, 2)))[:200]),
}


@pytest.mark.parametrize("case", sorted(INPUT_CASES))
def test_bad_inputs_for_evaluate(case, tmp_path, model, capsys):
    bad = tmp_path / "in.npy"
    INPUT_CASES[case](bad)
    out = tmp_path / "o.npz"
    out.write_bytes(b"previous result")
    run_fails(["evaluate", model, "--inputs", bad, "--output", out], capsys, ["--inputs"],
              tmp_path)


def test_zero_rows_evaluate_to_empty_arrays(tmp_path, model, capsys):
    x = tmp_path / "empty.npy"
    np.save(x, np.zeros((0, 2)))
    assert main(["evaluate", str(model), "--inputs", str(x), "--output",
                 str(tmp_path / "o.npz")]) == 0
    result = np.load(tmp_path / "o.npz")
    assert result["outputs"].shape == (0, 1) and result["input_jacobian"].shape == (0, 1, 2)
    assert np.all(result["param_gradients/layer1.coefficients"] == 0)


def test_overflowing_evaluation_writes_nothing(tmp_path, model, capsys):
    x = tmp_path / "big.npy"
    np.save(x, np.full((2, 2), 1e308))
    out = tmp_path / "o.npz"
    out.write_bytes(b"previous result")
    run_fails(["evaluate", model, "--inputs", x, "--output", out], capsys,
              ["float64 range"], tmp_path)


# --------------------------------------------------------------------------- outputs
def output_cases(tmp_path):
    (tmp_path / "a_file").write_bytes(b"x")
    return {"missing directory": tmp_path / "absent" / "o.npz",
            "a directory": tmp_path,
            "under a file": tmp_path / "a_file" / "o.npz",
            "empty": ""}


@pytest.mark.parametrize("case", ["missing directory", "a directory", "under a file", "empty"])
@pytest.mark.parametrize("command", ["evaluate", "train", "solve", "reproduce"])
def test_bad_output_locations_are_refused_before_any_work(case, command, tmp_path, model,
                                                         inputs, capsys, monkeypatch):
    target = output_cases(tmp_path)[case]
    data = tmp_path / "d.npz"
    np.savez(data, X=np.zeros((4, 2)), y=np.zeros(4))
    from reference.cli import _reproduce, _train
    for trains in (_train, _reproduce):                 # the commands that train
        monkeypatch.setattr(trains, "run_training", lambda *a, **k: pytest.fail("work started"))
    argv, arg = {
        "evaluate": (["evaluate", model, "--inputs", inputs, "--output", target], "--output"),
        "train": (["train", "--epochs", "1", "--quiet", "--out", target], "--out"),
        "solve": (["solve", model, "--data", data, "--layer", "1", "--lam", "1", "--out",
                   target], "--out"),
        "reproduce": (["reproduce", "--epochs", "1", "--json-out", target], "--json-out"),
    }[command]
    run_fails(argv, capsys, [arg], tmp_path)


def test_checks_dir_that_is_a_file(tmp_path, capsys, monkeypatch):
    from reference.cli import _reproduce
    monkeypatch.setattr(_reproduce, "run_training", lambda *a, **k: pytest.fail("work started"))
    (tmp_path / "f").write_bytes(b"x")
    run_fails(["reproduce", "--checks-dir", tmp_path / "f"], capsys, ["--checks-dir"], tmp_path)


def test_read_only_location(tmp_path, model, inputs, capsys, monkeypatch):
    """Root ignores permission bits, so the refusal of the file system is simulated."""
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)
    run_fails(["evaluate", model, "--inputs", inputs, "--output", tmp_path / "o.npz"], capsys,
              ["--output", "Permission denied"], tmp_path)


@pytest.mark.parametrize("fault", [OSError(errno.ENOSPC, "No space left on device"),
                                   KeyboardInterrupt()])
def test_a_failed_write_keeps_the_old_file(fault, tmp_path, model, inputs, capsys, monkeypatch):
    out = tmp_path / "o.npz"
    assert main(["evaluate", str(model), "--inputs", str(inputs), "--output", str(out)]) == 0
    capsys.readouterr()

    def broken(fd):
        raise fault
    monkeypatch.setattr(files.os, "fsync", broken)
    status = 130 if isinstance(fault, KeyboardInterrupt) else 2
    names = [] if status == 130 else ["--output", "no space left"]
    run_fails(["evaluate", model, "--inputs", inputs, "--output", out], capsys, names, tmp_path,
              status=status)


@pytest.mark.parametrize("command", ["train", "solve", "reproduce"])
def test_a_full_disk_keeps_the_old_output_of_every_command(command, tmp_path, model, capsys,
                                                            monkeypatch):
    """The same atomic write behind every output: on ENOSPC the previous file stays."""
    out = tmp_path / "previous.out"
    out.write_bytes(b"previous result")
    data = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(data, X=rng.uniform(-1, 1, (30, 2)), y=rng.normal(size=30))
    for check in ("lipschitz_bound", "representer"):        # reproduce: no theory checks
        monkeypatch.setattr(f"theory_checks.{check}.run", lambda quick, json_out: 0)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    argv = {"train": ["train", "--epochs", "1", "--quiet", "--out", out],
            "solve": ["solve", model, "--data", data, "--layer", "1", "--lam", "1", "--out",
                      out],
            "reproduce": ["reproduce", "--epochs", "1", "--no-figures", "--checks-dir",
                          tmp_path / "checks", "--json-out", out]}[command]
    arg = "--json-out" if command == "reproduce" else "--out"
    monkeypatch.setattr(files.os, "fsync", full)
    run_fails(argv, capsys, [arg, "no space left"], tmp_path)


def test_tied_weights_of_the_same_shape_are_refused_by_evaluate(tmp_path, inputs, capsys):
    """Two layers naming one array of a shape that fits both: refused, not summed wrongly."""
    path = tmp_path / "tied.npz"
    save_model(build_mlp([2, 2, 2, 1], "relu", rng=0), path)
    edit_layers(path, lambda entries: entries[2].update(weight=entries[0]["weight"]))
    run_fails(["evaluate", path, "--inputs", inputs, "--output", tmp_path / "o.npz"], capsys,
              [str(path), "already used by layer 0"], tmp_path)


def test_output_name_is_exact_and_permissions_kept(tmp_path, model, inputs, capsys):
    out = tmp_path / "result.bin"                  # no .npz suffix: written as given
    out.write_bytes(b"old")
    os.chmod(out, 0o644)
    assert main(["evaluate", str(model), "--inputs", str(inputs), "--output", str(out)]) == 0
    assert "wrote " + str(out) in capsys.readouterr().out
    assert not (tmp_path / "result.bin.npz").exists()
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
    assert np.load(out)["outputs"].shape == (5, 1)
    saved = tmp_path / "new.npz"
    save_model(load_model(model), saved)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o666 & ~umask


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path, model):
    dead = tmp_path / ".m.npz.999999999.abcd.tmp"       # no such PID
    alive = tmp_path / f".m.npz.{os.getpid()}.efgh.tmp"
    dead.write_bytes(b"half")
    alive.write_bytes(b"in progress")
    save_model(load_model(model), model)
    assert not dead.exists() and alive.exists()


# -------------------------------------------------------------------- train / solve
@pytest.mark.parametrize("argv, name", [
    (["--seed", "-1"], "--seed"), (["--epochs", "0"], "--epochs"), (["--lr", "nan"], "--lr"),
    (["--lam", "-1"], "--lam"), (["--range", "1e308"], "--range"),
    (["--range", "inf"], "--range"), (["--sparsify", "-1"], "--sparsify"),
    (["--sparsify", "x"], "--sparsify"), (["--hidden", "2,,2"], "--hidden"),
    (["--batch-size", "1.5"], "--batch-size"), (["--size", "1"], "--size"),
    (["--size", "100000000000"], "--size"), (["--out", ""], "--out"),
])
def test_bad_train_values_are_refused_before_training(argv, name, tmp_path, capsys,
                                                       monkeypatch):
    from reference.cli import _train
    monkeypatch.setattr(_train, "run_training", lambda *a, **k: pytest.fail("work started"))
    run_fails(["train", "--quiet", *argv], capsys, [name], tmp_path)


@pytest.mark.parametrize("case", ["npy", "directory", "no y", "empty", "complex X"])
def test_bad_solve_data(case, tmp_path, model, capsys):
    data = tmp_path / "d.npz"
    if case == "npy":
        np.save(open(data, "wb"), np.zeros((4, 2)))
    elif case == "directory":
        data.mkdir()
    elif case == "no y":
        np.savez(data, X=np.zeros((4, 2)))
    elif case == "empty":
        np.savez(data, X=np.zeros((0, 2)), y=np.zeros(0))
    else:
        np.savez(data, X=np.ones((4, 2), dtype=complex), y=np.zeros(4))
    names = ["--data"] if case in ("npy", "directory", "no y", "empty") else ["--data: X"]
    run_fails(["solve", model, "--data", data, "--layer", "1", "--lam", "1", "--out",
               tmp_path / "s.npz"], capsys, names, tmp_path)


@pytest.mark.parametrize("argv, name", [
    (["--box", "1e308"], "box"), (["--box", "nan"], "--box"), (["--time-limit", "nan"],
                                                               "--time-limit"),
    (["--time-limit", "-1"], "--time-limit"), (["--seed", "-1"], "--seed"),
    (["--p", "3"], "p"), (["--methods", "fast"], "methods"),
])
def test_bad_lipschitz_values(argv, name, tmp_path, model, capsys):
    run_fails(["lipschitz", model, "--methods", "lower,layerwise", *argv], capsys, [name],
              tmp_path)


# ------------------------------------------------------------------------ JSON output
def test_json_output_is_strict(tmp_path, capsys):
    """Bounds that overflow print as null, never as the non-JSON token Infinity."""
    net = build_mlp([2, 3, 1], "relu", rng=0)
    net.layers[0].params["weight"][:] = 1e200
    net.layers[2].params["weight"][:] = 1e200
    path = tmp_path / "big.npz"
    save_model(net, path)
    assert main(["info", str(path), "--json"]) == 0
    text = capsys.readouterr().out

    def refuse(token):
        raise AssertionError(f"non-JSON token {token}")
    info = json.loads(text, parse_constant=refuse)
    assert info["theorem1"]["2"] is None


def test_sweep_table_csv_inside_the_records_is_refused(tmp_path, capsys):
    (tmp_path / "records").mkdir()
    run_fails(["sweep", "--results", tmp_path, "--table", "--csv",
               tmp_path / "records" / "t.csv"], capsys, ["--csv", "inside the records"],
              tmp_path)


def test_sweep_csv_without_table_is_refused(tmp_path, capsys):
    """--csv only writes the table of --table: without it no run starts, nothing is written."""
    run_fails(["sweep", "--results", tmp_path, "--workers", "0", "--csv", tmp_path / "t.csv"],
              capsys, ["--csv", "--table"], tmp_path)


@pytest.mark.parametrize("argv, name", [(["--range", "1e308"], "--size/--range"),
                                        (["--dataset", "mnist"], "--data-path")])
def test_sweep_configs_are_checked_before_any_run(argv, name, tmp_path, capsys):
    run_fails(["sweep", "--results", tmp_path / "runs", "--workers", "0", "--epochs", "1",
               *argv], capsys, [name], tmp_path)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("target", ["model", "inputs"])
def test_an_output_that_is_an_input_is_refused(target, tmp_path, model, inputs, capsys):
    out = {"model": model, "inputs": inputs}[target]
    run_fails(["evaluate", model, "--inputs", inputs, "--output", out], capsys,
              ["--output", "would destroy it"], tmp_path)


# ----------------------------------------------------------------------- broken pipes
ROOT = Path(__file__).resolve().parents[1]           # `python -m reference` of this tree
NOISE = ("Traceback", "Exception ignored", "BrokenPipeError", "Broken pipe")


def run_into_a_gone_reader(argv, stderr_too=False):
    """`python -m reference ARGV` with its stdout (and stderr if stderr_too) a pipe whose
    reader is already gone (as `| head -c 0`, deterministically): (status, stderr)."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "reference", *map(str, argv)], cwd=ROOT,
                              stdout=write, stderr=write if stderr_too else subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=600)
    finally:
        os.close(write)
    return proc.returncode, (proc.stderr or b"").decode()


@pytest.fixture
def answers(tmp_path, model, inputs, capsys):
    """(the reference's answers, the same with outputs off by 1) for `check`."""
    good = tmp_path / "answers.npz"
    assert main(["evaluate", str(model), "--inputs", str(inputs), "--output", str(good)]) == 0
    capsys.readouterr()
    arrays = dict(np.load(good))
    arrays["outputs"] = arrays["outputs"] + 1.0
    np.savez(tmp_path / "wrong.npz", **arrays)
    return good, tmp_path / "wrong.npz"


@pytest.fixture(scope="module")
def suite(conformance_suite):
    """The session's exported suite (tests/conftest.py); read-only."""
    return conformance_suite


def pipe_cases(model, inputs, answers, suite, tmp_path):
    """name -> (argv, the command's own status)."""
    good, wrong = answers
    check = ["check", model, "--inputs", inputs, "--answers"]
    (tmp_path / "no_answers").mkdir()
    return {
        "lipschitz --claim UNSOUND": (["lipschitz", model, "--claim", "1e-9"], 1),
        "lipschitz --claim UNDECIDED": (["lipschitz", model, "--claim", "1e-9", "--methods",
                                         "theorem1"], 3),
        "check FAIL": ([*check, wrong], 1),
        "conformance run FAIL": (["conformance", "run", suite, "--answers",
                                  tmp_path / "no_answers"], 1),
        "bad input": (["info", tmp_path / "absent.npz"], 2),
        "usage error": (["lipschitz", model, "--claim", "abc"], 2),
        "lipschitz --claim SOUND": (["lipschitz", model, "--claim", "1e9"], 0),
        "check pass": ([*check, good], 0),
    }


PIPE_CASES = [(case, False) for case in (
    "lipschitz --claim UNSOUND", "lipschitz --claim UNDECIDED", "check FAIL",
    "conformance run FAIL", "bad input", "usage error", "lipschitz --claim SOUND",
    "check pass")] + [
    (case, True) for case in ("lipschitz --claim UNSOUND", "bad input", "usage error")]


@pytest.mark.parametrize("case, stderr_too", PIPE_CASES,
                         ids=[c + (" 2>&1" if both else "") for c, both in PIPE_CASES])
def test_a_reader_that_goes_away_never_turns_a_failure_into_success(
        case, stderr_too, model, inputs, answers, suite, tmp_path, capsys):
    """`set -o pipefail; python -m reference ... | head`: a failing command keeps its own
    status (1 FAIL / UNSOUND, 2 bad input, 3 undecided), a succeeding one gives 141
    (128 + SIGPIPE: output was lost), never 0; nothing on stderr about the pipe."""
    argv, own = pipe_cases(model, inputs, answers, suite, tmp_path)[case]
    assert main([str(a) for a in argv]) == own           # the premise: its own status
    capsys.readouterr()
    status, err = run_into_a_gone_reader(argv, stderr_too)
    assert status == (own or 141), (status, err)
    assert not any(word in err for word in NOISE), err


@pytest.mark.parametrize("case, allowed", [("lipschitz --claim UNSOUND", {1}),
                                           ("lipschitz --claim SOUND", {0, 141})])
def test_pipefail_pipelines_into_head(case, allowed, model, inputs, answers, suite, tmp_path):
    """Real shell pipelines, `| head -c 1`: the pipeline's status under pipefail is the
    command's (a success may or may not see the reader go: 0 or 141), head gets the first
    byte, and stderr says nothing of the pipe."""
    argv, _ = pipe_cases(model, inputs, answers, suite, tmp_path)[case]
    command = " ".join(shlex.quote(str(a)) for a in [sys.executable, "-m", "reference", *argv])
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; {command} | head -c 1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode in allowed, (proc.returncode, proc.stderr)
    assert len(proc.stdout) == 1 and not any(word in proc.stderr for word in NOISE)


def test_a_closed_stdout_keeps_the_status(model):
    """`>&-`: Python has no sys.stdout (None) and print skips it; the status is the
    command's own (1: UNSOUND), no traceback."""
    command = " ".join(shlex.quote(str(a)) for a in
                       [sys.executable, "-m", "reference", "lipschitz", model, "--claim", "1e-9"])
    proc = subprocess.run(["bash", "-c", f"{command} >&-"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 1 and not any(word in proc.stderr for word in NOISE), proc.stderr
