"""Reading and writing the project's files safely.

Writing: `atomic_write` puts the bytes in a temporary file beside the target (named
`.NAME.PID.XXXX.tmp`), fsyncs it and renames it over the target, so that a reader sees the old
file or the new one, never a mix; on any failure (full disk, SIGINT, an exception while
writing) the temporary file is removed and the target is untouched.  The new file gets the
target's permissions when it replaces one, else the usual 0666 & ~umask.  Temporary files left
by a killed process (whose PID is no longer running) are removed by the next write of the
same target; no reader ever opens them.

Reading: `.npy` / `.npz` arrays are read with allow_pickle=False, and an `.npz` entry is
read only after its header has been checked against the bytes the archive holds (a header
declaring a huge shape is refused before anything is allocated); only the entries asked for
are read.  Every error names the argument (e.g. `--inputs`) and says what was expected.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from reference._format import plain
from reference.exceptions import FileError

MAX_ARRAY_BYTES = 8 * 2**30       # one array read from a file: at most 8 GiB




# torch.save's legacy (non-zip) format: a pickle whose first object is torch's magic number
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
FILE_KINDS = {        # file_kind -> what describe says ({path}: the file's path)
    "npy": "a single NumPy array (.npy)",
    "npz": "an .npz archive",
    "torch": ("a PyTorch checkpoint (torch.save; `python -m reference import-deepsplines "
              "{path} --out MODEL.npz` turns a DeepSplines checkpoint into a model file)"),
    "damaged_zip": "a damaged zip archive",
    "zip": "a zip archive that is not an .npz",
    "mat": "a MATLAB .mat file (the lipschitz command reads LipSDP weights from it)",
    "gzip": "a gzip file",
    "pickle": "a Python pickle (never loaded: pickles can run code)",
    "empty": "an empty file",
    "other": "not a NumPy file",
}


def _head(path) -> bytes:
    with open(path, "rb") as f:
        return f.read(160)


def file_kind(path) -> str:
    """The kind of a file from its first bytes: a key of FILE_KINDS, or 'unreadable'."""
    try:
        head = _head(path)
    except OSError:
        return "unreadable"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return "damaged_zip"
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        return "npz" if names and all(n.endswith(".npy") for n in names) else "zip"
    for magic, kind in ((b"MATLAB", "mat"), (b"\x1f\x8b", "gzip"),
                        (_TORCH_LEGACY_MAGIC, "torch"), (b"\x80", "pickle")):
        if head.startswith(magic):
            return kind
    return "other" if head else "empty"


def describe(path) -> str:
    """What a file looks like from its first bytes (for error messages) and, for the files
    another command reads, which command reads them."""
    try:
        _head(path)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return FILE_KINDS[file_kind(path)].format(path=path)


def _check_readable_file(path, arg: str) -> Path:
    path = Path(path)
    if str(path) == "":
        raise FileError(f"{arg}: expected a file path, got ''")
    if path.is_dir():
        raise FileError(f"{arg}: {path} is a directory, expected a file")
    if not path.is_file():
        raise FileNotFoundError(f"{arg}: no file at {path}")
    return path


def load_npy(path, arg: str) -> np.ndarray:
    """One array from a .npy file (no pickles); errors name `arg`."""
    path = _check_readable_file(path, arg)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            shape, _, dtype = _read_header(f, version)
            _check_size(shape, dtype, os.path.getsize(path) - f.tell(), f"{arg}: {path}")
            f.seek(0)
            return np.lib.format.read_array(f, allow_pickle=False)
    except FileError:
        raise
    except (ValueError, OSError, EOFError, MemoryError) as exc:
        raise FileError(f"{arg}: {path} is not a readable .npy array ({describe(path)}; "
                        f"{type(exc).__name__}: {exc})") from None


def _read_header(f, version):
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def _check_size(shape, dtype, available: int, where: str) -> None:
    """Refuse an array whose header declares more bytes than the file holds, an object
    (pickled) dtype, or more than MAX_ARRAY_BYTES, before anything is allocated."""
    if dtype.hasobject:
        raise FileError(f"{where}: holds Python objects (a pickle), which are never loaded")
    count = 1
    for n in shape:
        count *= int(n)
    nbytes = count * dtype.itemsize
    if nbytes > available:
        raise FileError(f"{where}: header declares shape {tuple(shape)} ({nbytes} bytes) but "
                        f"only {available} bytes follow: the file is damaged")
    if nbytes > MAX_ARRAY_BYTES:
        raise FileError(f"{where}: array of {nbytes} bytes exceeds the {MAX_ARRAY_BYTES}-byte "
                        "limit (reference.files.MAX_ARRAY_BYTES)")


class NpzReader:
    """The entries of an .npz archive, each read on demand with its header checked first.

    `reader.names` lists the entries; `reader[name]` reads one (FileError if it is damaged).
    Use as a context manager."""

    def __init__(self, path, arg: str):
        self.path = _check_readable_file(path, arg)
        self.arg = arg
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, ValueError):
            raise FileError(f"{arg}: {self.path} is not an .npz archive "
                            f"({describe(self.path)})") from None
        self._members = {}
        for info in self._zip.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            self._members[name] = info

    @property
    def names(self) -> list:
        return list(self._members)

    def __contains__(self, name) -> bool:
        return name in self._members

    def __getitem__(self, name: str) -> np.ndarray:
        info = self._members[name]
        where = f"{self.arg}: {self.path}, entry {name!r}"
        try:
            with self._zip.open(info) as f:
                version = np.lib.format.read_magic(f)
                shape, _, dtype = _read_header(f, version)
                header = f.tell()
            _check_size(shape, dtype, info.file_size - header, where)
            with self._zip.open(info) as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except FileError:
            raise
        except (ValueError, OSError, EOFError, MemoryError, zipfile.BadZipFile,
                NotImplementedError, RuntimeError) as exc:
            raise FileError(f"{where} cannot be read ({type(exc).__name__}: {exc})") from None

    def close(self):
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_npz(path: str | os.PathLike[str], arg: str,
             keys: Sequence[str] | None = None) -> dict[str, npt.NDArray[Any]]:
    """Read arrays from an ``.npz`` archive, safely (no pickles, headers checked first).

    Parameters
    ----------
    path : str or os.PathLike
        The archive.
    arg : str
        The name of the argument that gave `path` (e.g. ``--inputs``), used in error
        messages.
    keys : sequence of str or None, default=None
        The entries to read; None reads every entry.

    Returns
    -------
    arrays : dict of str to ndarray
        Each key -> its array, with the shape and dtype stored in the archive.

    Raises
    ------
    FileNotFoundError
        If there is no file at `path`.
    FileError
        A ValueError, if `path` is empty or a directory, is not an ``.npz`` archive, lacks
        one of `keys`, or an entry is damaged, holds Python objects (a pickle, never
        loaded), declares more bytes than the archive holds or more than
        ``MAX_ARRAY_BYTES`` (8 GiB).

    See Also
    --------
    write_npz : Write an archive atomically.

    Notes
    -----
    An entry is read only after its header has been checked against the bytes the archive
    holds, so a header declaring a huge shape is refused before anything is allocated; only
    the entries asked for are read.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from reference.io import load_npz, write_npz
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_npz(os.path.join(tmp, "a.npz"), {"x": np.arange(3.0)})
    ...     arrays = load_npz(path, "--inputs")
    >>> arrays
    {'x': array([0., 1., 2.])}
    """
    with NpzReader(path, arg) as reader:
        keys = reader.names if keys is None else keys
        missing = [k for k in keys if k not in reader]
        if missing:
            raise FileError(f"{arg}: {reader.path} has no array "
                            f"{', '.join(repr(k) for k in missing)} (it holds {reader.names})")
        return {k: reader[k] for k in keys}


# ------------------------------------------------------------------------------ writing
def _temp_pattern(name: str) -> re.Pattern:
    return re.compile(re.escape(f".{name}.") + r"(\d+)\..*\.tmp$")


def _remove_stale_temporaries(directory: Path, name: str) -> None:
    """Remove `.NAME.PID.*.tmp` files whose writing process no longer runs."""
    pattern = _temp_pattern(name)
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            match = pattern.match(entry.name)
            if match and not _pid_alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _new_file_mode(path: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def check_writable(path, arg: str) -> Path:
    """Refuse, before any work, an output path that cannot be written: '' , a directory,
    a missing directory, or a directory where no file can be created (read-only, full)."""
    if path is None or str(path) == "":
        raise FileError(f"{arg}: expected a file path, got {path!r}")
    path = Path(path)
    if path.is_dir():
        raise FileError(f"{arg}: {path} is a directory, expected a file path")
    directory = path.parent
    if not directory.is_dir():
        raise FileError(f"{arg}: directory {directory} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                     dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise FileError(f"{arg}: cannot write in {directory} ({exc.strerror})") from None
    return path


def check_not_an_input(path, arg: str, inputs: dict) -> None:
    """Refuse an output path that is one of the command's input files (inputs: argument
    name -> path): writing it would destroy the input."""
    if path is None or not Path(path).exists():
        return
    for name, other in inputs.items():
        if other is not None and Path(other).exists() and os.path.samefile(path, other):
            raise FileError(f"{arg}: {path} is the file given as {name}; writing there would "
                            "destroy it (choose another output path)")


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object],
                 arg: str = "path") -> Path:
    """Write a file atomically: readers see the old file or the new one, never a mix.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (created or replaced).
    write : callable
        ``write(f)`` writes the content to the binary file object ``f``.
    arg : str, default='path'
        The name of the argument that gave `path` (e.g. ``--out``), used in error messages.

    Returns
    -------
    path : pathlib.Path
        The path written.

    Raises
    ------
    FileError
        A ValueError, if `path` is empty, a directory or in a missing or unwritable
        directory (checked before `write` is called), or an OSError happens while writing
        (e.g. no space left on the device); `path` is then unchanged.

    Notes
    -----
    The bytes go to a temporary file beside the target (``.NAME.PID.XXXX.tmp``), which is
    fsynced and renamed over the target; on any failure (an exception in `write`, a full
    disk, SIGINT) the temporary file is removed and the target is untouched.  The new file
    gets the target's permissions when it replaces one, else ``0666 & ~umask``.
    Temporary files left by a killed process (whose PID no longer runs) are removed by the
    next write of the same target.

    Examples
    --------
    >>> import os, tempfile
    >>> from reference.io import atomic_write
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = atomic_write(os.path.join(tmp, "out.bin"), lambda f: f.write(b"abc"))
    ...     path.read_bytes()
    b'abc'
    """
    path = check_writable(path, arg)
    directory = path.parent
    _remove_stale_temporaries(directory, path.name)
    mode = _new_file_mode(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                   dir=directory)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ENOSPC:
            reason = "no space left on the device"
        raise FileError(f"{arg}: could not write {path} ({reason}); nothing was changed "
                        "there") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return path


def write_npz(path: str | os.PathLike[str], arrays: Mapping[str, Any],
              arg: str = "path") -> Path:
    """Write arrays to an ``.npz`` archive (``np.savez``), atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The archive, exactly this name (no ``.npz`` appended).
    arrays : mapping of str to array_like
        Entry name -> array.
    arg : str, default='path'
        The name of the argument that gave `path`, used in error messages.

    Returns
    -------
    path : pathlib.Path
        The path written.

    Raises
    ------
    FileError
        A ValueError, if `path` cannot be written (see `atomic_write`).

    See Also
    --------
    load_npz : Read the archive back.
    """
    return atomic_write(path, lambda f: np.savez(f, **arrays), arg)


def write_text(path: str | os.PathLike[str], text: str, arg: str = "path") -> Path:
    """Write a text file (UTF-8), atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    text : str
        The content, encoded as UTF-8.
    arg : str, default='path'
        The name of the argument that gave `path`, used in error messages.

    Returns
    -------
    path : pathlib.Path
        The path written.

    Raises
    ------
    FileError
        A ValueError, if `path` cannot be written (see `atomic_write`).
    """
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), arg)


# ------------------------------------------------------------------------------ JSON
def jsonable(value):
    """NumPy scalars and arrays as Python numbers and lists; non-finite floats as None (JSON
    has no NaN or Infinity)."""
    return plain(value, nonfinite=lambda number: None)


def dumps_json(value, indent=None) -> str:
    """Strict JSON (no NaN / Infinity tokens) of `value` after `jsonable`."""
    return json.dumps(jsonable(value), indent=indent, allow_nan=False)


def prepare_output_dir(directory, arg: str) -> Path:
    """Create `directory` (and parents) if needed; FileError naming `arg` if a file is in the
    way or nothing can be written there."""
    directory = Path(directory)
    if str(directory) == "":
        raise FileError(f"{arg}: expected a directory path, got ''")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FileError(f"{arg}: {directory} (or a parent) is a file, expected a "
                        "directory") from None
    except OSError as exc:
        raise FileError(f"{arg}: cannot create {directory} ({exc.strerror})") from None
    check_writable(directory / ".probe", arg)
    return directory
