r"""Data sets.  Nothing is downloaded: sets are generated, bundled in a package, or read
from a path the user gives.

Every loader returns a Dataset with float64 inputs (M, N_0), integer labels (M,), and
non-empty training, validation and test sets.

MNIST is read from `path` (the CLI's --data-path): a directory with the four IDX files, or
an .npz with x_train, y_train, x_test, y_test (Keras' layout).  No array is allocated before
its header is checked against the bytes its file can hold (IDX: here, before any IDX data is
read; .npz: reference.io.load_npz, entry by entry, no pickles); then the layout (one label per
image, images (M, H, W) or (M, D) of one size in training and test, integer pixels and
labels) and the values (pixels 0..255, labels 0..9).  A damaged or wrong file gives a
FileError (a ValueError) naming the argument that gave the path and saying what was
expected.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from reference._numerics import check_choice
from reference.exceptions import FileError
from reference.io._files import MAX_ARRAY_BYTES, describe, load_npz

GENERATED = ("circle", "s_shape")
DATASETS = GENERATED + ("digits", "mnist")
NUM_TRAIN_2D = 1500
NUM_VALID_2D = 1500
TEST_GRIDS = ("corners", "centres")     # test_grid's kinds: the project's, DeepSplines'

MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
IDX_STEMS = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MNIST_CLASSES = 10
MAX_PIXEL = 255
VALID_FRACTION = 6          # default validation set: 1/6 of the training images (60 000 -> 10 000)
MAX_DEFLATE_RATIO = 1032    # deflate expands at most 1032:1: what a compressed file can hold
READ_CHUNK = 1 << 24        # bytes read at a time, so a lying header allocates nothing
GZIP_MAGIC = b"\x1f\x8b"
EXPECTED_PATH = ("a directory with the four MNIST IDX files (train-images-idx3-ubyte, "
                 "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, "
                 "each optionally .gz) or an .npz with the arrays x_train, y_train, x_test, "
                 "y_test")


@dataclass
class Dataset:
    """A data set split into training, validation and test parts (what the loaders return).

    Attributes
    ----------
    name : str
        The data set's name (one of `DATASETS`).
    x_train, x_valid, x_test : ndarray of shape (n_samples, n_features)
        The inputs, float64.
    y_train, y_valid, y_test : ndarray of shape (n_samples,)
        The integer class labels, in [0, num_classes).
    num_classes : int
        The number of classes.
    """
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def check_count(value, name: str, minimum: int = 1) -> int:
    """value as an int, which must be an integer (not a bool, not a float) >= minimum."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def circle_labels(x: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """Label points by the disc of half the area of the square :math:`[-1, 1]^2`.

    Parameters
    ----------
    x : ndarray of shape (n_samples, 2)
        The points :math:`(x_1, x_2)`.

    Returns
    -------
    labels : ndarray of shape (n_samples,), dtype intp
        1 inside the circle, 0 outside.

    See Also
    --------
    s_shape_labels : The other generated two-dimensional set.

    Notes
    -----
    A point is labelled 1 when

    .. math::

        x_1^2 + x_2^2 < \\frac{2}{\\pi},

    the disc whose area, 2, is half that of :math:`[-1, 1]^2`.

    Examples
    --------
    >>> import numpy as np
    >>> from reference.data import circle_labels
    >>> circle_labels(np.array([[0.0, 0.0], [0.9, 0.9]]))
    array([1, 0])
    """
    return (np.sum(x ** 2, axis=1) < 2.0 / np.pi).astype(np.intp)


def s_shape_labels(x: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """Label points by the S-shaped band of DeepSplines' ``s_shape`` set.

    Parameters
    ----------
    x : ndarray of shape (n_samples, 2)
        Points of the plane, one per row.

    Returns
    -------
    labels : ndarray of shape (n_samples,), dtype intp
        The class of each point: 1 in the band, else 0.

    Notes
    -----
    A point :math:`(x_1, x_2)` is labelled 1 when

    .. math::

        0.4 \\sin(-5 x_2) - 0.3 < x_1 < 0.4 \\sin(-5 x_2) + 0.3
        \\quad \\text{and} \\quad |x_2| < 0.8.
    """
    centre = 0.4 * np.sin(-5.0 * x[:, 1])
    inside = (x[:, 0] > centre - 0.3) & (x[:, 0] < centre + 0.3) & (np.abs(x[:, 1]) < 0.8)
    return inside.astype(np.intp)


def test_grid(kind: str = "corners") -> npt.NDArray[np.float64]:
    """Return the test set of the two-dimensional data sets: a regular grid on the square.

    Parameters
    ----------
    kind : {'corners', 'centres'}, default='corners'
        'corners': the points :math:`-1 + 0.01 i` on each axis, the lower-left corners of
        the 0.01 cells of :math:`[-1, 1)^2` (the project's test set since 0.1);
        'centres': the cell centres :math:`-0.995 + 0.01 i` (DeepSplines' stored test
        set, which holds these values rounded to float32).

    Returns
    -------
    grid : ndarray of shape (40000, 2)
        The 200 x 200 points :math:`(g_i, g_j)`, :math:`0 \\le i, j < 200`, of step 0.01,
        the second coordinate varying fastest.

    Raises
    ------
    ValueError
        If `kind` is not one of the two.

    Examples
    --------
    >>> from reference.data import test_grid
    >>> grid = test_grid()
    >>> grid.shape
    (40000, 2)
    >>> grid[:2].tolist()
    [[-1.0, -1.0], [-1.0, -0.99]]
    >>> test_grid("centres")[[0, -1]].tolist()
    [[-0.995, -0.995], [0.995, 0.995]]
    """
    check_choice(kind, TEST_GRIDS, "kind")
    axis = (-1.0 if kind == "corners" else -0.995) + 0.01 * np.arange(200)
    g1, g2 = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([g1.ravel(), g2.ravel()], axis=1)


def two_d(name: str, seed: int = 0, num_train: int = NUM_TRAIN_2D,
          num_valid: int = NUM_VALID_2D, grid: str = "corners") -> Dataset:
    """Generate a two-dimensional classification set (``circle`` or ``s_shape``).

    Parameters
    ----------
    name : {'circle', 's_shape'}
        The set: labels by `circle_labels` or `s_shape_labels`.
    seed : int, default=0
        Seed of ``np.random.default_rng``, an integer >= 0.
    num_train : int, default=1500
        Number of training points, >= 1.
    num_valid : int, default=1500
        Number of validation points, >= 1.
    grid : {'corners', 'centres'}, default='corners'
        The test grid (`test_grid`): the project's or DeepSplines' cell centres.

    Returns
    -------
    dataset : Dataset
        ``x_train`` of shape (num_train, 2) and ``x_valid`` of shape (num_valid, 2),
        uniform in :math:`[-1, 1]^2` (training points drawn first); ``x_test`` the
        (40000, 2) points of `test_grid`; labels (intp, 0 or 1) of shape (n_samples,) for
        each; ``num_classes`` 2.

    Raises
    ------
    ValueError
        If `name` is not one of the two sets, `seed`, `num_train` or `num_valid` is
        not an integer in its range (a bool or a float is refused), or `grid`
        not a kind of `test_grid`.

    See Also
    --------
    load : Any data set by name.

    References
    ----------
    .. [1] P. Bohra, J. Campos, H. Gupta, S. Aziznejad, M. Unser, "Learning Activation
       Functions in Deep (Spline) Neural Networks", IEEE Open Journal of Signal
       Processing 1, 2020 (the two-dimensional sets of DeepSplines).
    """
    check_choice(name, GENERATED, "name")
    seed = check_count(seed, "seed", 0)
    num_train = check_count(num_train, "num_train")
    num_valid = check_count(num_valid, "num_valid")
    check_choice(grid, TEST_GRIDS, "grid")
    labels = circle_labels if name == "circle" else s_shape_labels
    rng = np.random.default_rng(seed)
    x_train = rng.uniform(-1.0, 1.0, (num_train, 2))
    x_valid = rng.uniform(-1.0, 1.0, (num_valid, 2))
    x_test = test_grid(grid)
    return Dataset(name, x_train, labels(x_train), x_valid, labels(x_valid),
                   x_test, labels(x_test), 2)


def digits(seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, pixels scaled to [0, 1]), split
    60/20/20 by a seeded permutation.  Needs the optional extra `digits` (scikit-learn)."""
    seed = check_count(seed, "seed", 0)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("dataset 'digits' needs scikit-learn: "
                          "pip install -e '.[digits]'") from None
    bunch = load_digits()
    x = bunch.data.astype(np.float64) / 16.0
    y = bunch.target.astype(np.intp)
    order = np.random.default_rng(seed).permutation(len(y))
    a, b = int(0.6 * len(y)), int(0.8 * len(y))
    tr, va, te = order[:a], order[a:b], order[b:]
    return Dataset("digits", x[tr], y[tr], x[va], y[va], x[te], y[te], 10)


# --------------------------------------------------------------------------- MNIST files
@dataclass
class StoredArray:
    """An array in a file, known from its header before its data is read."""
    where: str                          # the file (and entry), for messages
    shape: tuple
    dtype: np.dtype
    read: Callable[[], np.ndarray]      # the data, of shape `shape`


@contextmanager
def _readable(where, arg: str):
    """Errors of reading a damaged or foreign file -> FileError naming `arg`."""
    try:
        yield
    except (OSError, EOFError, zlib.error) as exc:
        raise FileError(f"{arg}: cannot read {where} ({type(exc).__name__}: {exc}); "
                        f"expected {EXPECTED_PATH}") from None


def _read_upto(stream, limit: int) -> bytearray:
    """Up to `limit` bytes of `stream`, read in chunks: memory follows the data that is
    there, not what a header claims."""
    buf = bytearray()
    while len(buf) < limit:
        chunk = stream.read(min(READ_CHUNK, limit - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _idx(file: Path, arg: str, with_data: bool):
    """(dims, dtype, data) of an IDX file; data (shape dims) only when with_data, else None.

    IDX: magic 0x00 0x00 TYPE NDIM, NDIM big-endian uint32 dims, then the data, big-endian;
    the file may be gzipped (recognised by its magic).  The declared size is checked against
    the file's length (uncompressed: equal; gzipped: at most MAX_DEFLATE_RATIO x the length)
    and against reference.io._files.MAX_ARRAY_BYTES before any data is read."""
    with _readable(file, arg), open(file, "rb") as raw:
        gzipped = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        stored = os.fstat(raw.fileno()).st_size
        stream = gzip.GzipFile(fileobj=raw) if gzipped else raw
        head = stream.read(4)
        if len(head) < 4 or head[:2] != b"\0\0":
            raise FileError(f"{arg}: {file} is not an IDX file (bad magic number); expected "
                            f"{EXPECTED_PATH}")
        if head[2] not in IDX_TYPES:
            raise FileError(f"{arg}: {file}: unknown IDX data type 0x{head[2]:02x}")
        ndim = head[3]
        raw_dims = stream.read(4 * ndim)
        if len(raw_dims) < 4 * ndim:
            raise FileError(f"{arg}: {file}: IDX header truncated (declares {ndim} dims, "
                            f"holds {len(raw_dims) // 4})")
        dims = struct.unpack(f">{ndim}I", raw_dims)
        dtype = np.dtype(IDX_TYPES[head[2]])
        nbytes = math.prod(dims) * dtype.itemsize            # Python ints: no overflow
        said = f"{arg}: {file}: IDX header says {dims} ({nbytes} bytes of data), the file"
        room = MAX_DEFLATE_RATIO * stored if gzipped else stored - 4 - 4 * ndim
        if nbytes > room or (nbytes != room and not gzipped):
            raise FileError(f"{said} {'can hold at most' if gzipped else 'holds'} {room} bytes")
        if nbytes > MAX_ARRAY_BYTES:
            raise FileError(f"{said} exceeds the {MAX_ARRAY_BYTES}-byte limit "
                            "(reference.files.MAX_ARRAY_BYTES)")
        if not with_data:
            return dims, dtype, None
        data = _read_upto(stream, nbytes + 1)      # one more: trailing data
        if len(data) != nbytes:
            held = "more" if len(data) > nbytes else f"{len(data)} bytes"
            raise FileError(f"{said} holds {held}")
    return dims, dtype, np.frombuffer(data, dtype).reshape(dims)


def _find(directory: Path, stem: str, arg: str) -> Path:
    """stem or stem.gz, also under the other common spelling (train-images.idx3-ubyte)."""
    names = (stem, stem.replace("-idx", ".idx"))
    for name in names:
        for candidate in (directory / name, directory / (name + ".gz")):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"{arg}: {directory} holds no file {' or '.join(names)} "
                            f"(optionally .gz); expected {EXPECTED_PATH}")


def _idx_arrays(directory: Path, arg: str) -> dict:
    """{key: StoredArray} for the four IDX files of an MNIST directory (headers read)."""
    arrays = {}
    for key in MNIST_KEYS:
        file = _find(directory, IDX_STEMS[key], arg)
        dims, dtype, _ = _idx(file, arg, with_data=False)
        arrays[key] = StoredArray(
            str(file), dims, dtype,
            lambda f=file:  # type: ignore[misc]  # mypy cannot type a lambda with a default
            _idx(f, arg, with_data=True)[2])
    return arrays


def _npz_arrays(path: Path, arg: str) -> dict:
    """{key: StoredArray} for the four arrays of an MNIST .npz (read by reference.io.load_npz:
    every entry's header checked against the archive before it is read, no pickles)."""
    if not zipfile.is_zipfile(path):
        raise FileError(f"{arg}: {path} is {describe(path)}, neither a directory nor an .npz "
                        f"archive; expected {EXPECTED_PATH}")
    arrays = load_npz(path, arg, MNIST_KEYS)
    return {k: StoredArray(f"{path}[{k}]", a.shape, a.dtype,
                           lambda a=a: a)  # type: ignore[misc]  # mypy: lambda with a default
            for k, a in arrays.items()}


def _check_layout(arrays: dict, arg: str) -> None:
    """From the headers alone: integer images (M, H, W) or (M, D) and labels (M,), one label
    per image, the same image size in training and test, at least one test image."""
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.dtype.kind not in "ui" or len(x.shape) not in (2, 3) or 0 in x.shape[1:]:
            raise FileError(f"{arg}: {x.where} holds {x.dtype} of shape {x.shape}; expected "
                            f"integer pixels 0..{MAX_PIXEL} of shape (M, H, W) or (M, D)")
        if y.dtype.kind not in "ui" or len(y.shape) != 1:
            raise FileError(f"{arg}: {y.where} holds {y.dtype} of shape {y.shape}; expected "
                            f"integer labels 0..{MNIST_CLASSES - 1} of shape (M,)")
        if x.shape[0] != y.shape[0]:
            raise FileError(f"{arg}: {x.where} holds {x.shape[0]} images but {y.where} holds "
                            f"{y.shape[0]} labels; expected one label per image")
    x_tr, x_te = arrays["x_train"], arrays["x_test"]
    if x_te.shape[0] == 0:
        raise FileError(f"{arg}: {x_te.where} holds no image; expected a non-empty test set")
    if math.prod(x_tr.shape[1:]) != math.prod(x_te.shape[1:]):
        raise FileError(f"{arg}: training images {x_tr.shape[1:]} ({x_tr.where}) and test "
                        f"images {x_te.shape[1:]} ({x_te.where}) differ; expected one size")


def _split_size(num_valid, m: int, where: str, arg: str) -> int:
    """The number of validation images: num_valid (1 <= num_valid <= m - 1), or by default
    max(1, m // VALID_FRACTION)."""
    if m < 2:
        raise FileError(f"{arg}: {where} holds {m} training image(s); expected at least 2 "
                        "(one to train on, one to validate)")
    if num_valid is None:
        return max(1, m // VALID_FRACTION)
    num_valid = check_count(num_valid, "num_valid")
    if num_valid >= m:
        raise ValueError(f"num_valid: {num_valid} validation images leave none of the {m} "
                         f"training images of {where} to train on; expected <= {m - 1}")
    return num_valid


def _images(stored: StoredArray, arg: str) -> np.ndarray:
    """Pixels 0..MAX_PIXEL -> float64 in [0, 1], flattened to (M, D)."""
    x = stored.read()
    if x.size and (x.min() < 0 or x.max() > MAX_PIXEL):
        raise FileError(f"{arg}: {stored.where} holds pixel values in [{x.min()}, {x.max()}]; "
                        f"expected 0..{MAX_PIXEL}")
    return x.reshape(len(x), -1).astype(np.float64) / MAX_PIXEL


def _labels(stored: StoredArray, arg: str) -> np.ndarray:
    y = stored.read()
    bad = (y < 0) | (y >= MNIST_CLASSES)
    if np.any(bad):
        raise FileError(f"{arg}: {stored.where} holds {int(bad.sum())} label(s) outside "
                        f"0..{MNIST_CLASSES - 1} (e.g. {y[bad][0]})")
    return y.astype(np.intp)


def mnist(path: str | os.PathLike[str] | None, seed: int = 0, num_valid: int | None = None,
          arg: str = "path") -> Dataset:
    """Read MNIST from a path the user gives (nothing is downloaded).

    Parameters
    ----------
    path : str or os.PathLike
        A directory with the four IDX files (``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
        each optionally ``.gz``, also spelled ``train-images.idx3-ubyte``), or an ``.npz``
        with the arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` (Keras'
        ``mnist.npz`` layout).  None is refused with a ValueError saying so.
    seed : int, default=0
        Seed of the shuffle that picks the validation images, an integer >= 0.
    num_valid : int or None, default=None
        Number of validation images, taken from the training images:
        1 <= num_valid <= M - 1 for M training images; None gives max(1, M // 6)
        (10 000 of MNIST's 60 000).
    arg : str, default='path'
        The name of the argument that gave `path` (e.g. ``--data-path``), used in error
        messages.

    Returns
    -------
    dataset : Dataset
        Images as float64 in [0, 1] flattened to shape (n_samples, H * W), labels (intp,
        0..9) of shape (n_samples,); the last `num_valid` training images after a seeded
        permutation form ``x_valid``; ``num_classes`` 10.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist, or a directory lacks one of the four IDX files.
    FileError
        A ValueError, if a file is damaged or foreign, or its headers or values are not
        those of MNIST: images of shape (M, H, W) or (M, D), one size in training and test,
        integer pixels 0..255; integer labels 0..9 of shape (M,), one per image; at least
        one test image and two training images.  Every header is checked against the bytes
        its file can hold before any array is allocated.
    ValueError
        If `path` is None, or `seed` or `num_valid` is out of range.

    See Also
    --------
    load : Any data set by name.

    References
    ----------
    .. [1] Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to
       document recognition", Proc. IEEE 86(11), 1998.
    """
    seed = check_count(seed, "seed", 0)
    if path is None:
        raise ValueError(f"{arg}: the mnist data set is read from a path you give "
                         "(--data-path DIR_OR_NPZ); nothing is downloaded")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{arg}: {path} does not exist; expected {EXPECTED_PATH}")
    arrays = _idx_arrays(path, arg) if path.is_dir() else _npz_arrays(path, arg)
    _check_layout(arrays, arg)
    x_train = arrays["x_train"]
    num_valid = _split_size(num_valid, x_train.shape[0], x_train.where, arg)
    x_tr, x_te = _images(x_train, arg), _images(arrays["x_test"], arg)
    y_tr, y_te = _labels(arrays["y_train"], arg), _labels(arrays["y_test"], arg)
    order = np.random.default_rng(seed).permutation(len(y_tr))
    tr, va = order[:len(order) - num_valid], order[len(order) - num_valid:]
    return Dataset("mnist", x_tr[tr], y_tr[tr], x_tr[va], y_tr[va], x_te, y_te, MNIST_CLASSES)


def load(name: str, seed: int = 0, path: str | os.PathLike[str] | None = None,
         arg: str = "path", grid: str = "corners") -> Dataset:
    """Load a data set by name.

    Parameters
    ----------
    name : {'circle', 's_shape', 'digits', 'mnist'}
        The data set (`DATASETS`): the two generated two-dimensional sets (`two_d`),
        scikit-learn's bundled 8 x 8 digits (split 60/20/20 by a seeded permutation; needs
        the optional extra ``digits``), or MNIST read from `path` (`mnist`).
    seed : int, default=0
        Seed of the generated points or of the split, an integer >= 0.
    path : str or os.PathLike or None, default=None
        Where MNIST is read from; the other sets take no path.
    arg : str, default='path'
        The name of the argument that gave `path`, used in error messages.
    grid : {'corners', 'centres'}, default='corners'
        The test grid of the two-dimensional sets (`test_grid`); the other sets have
        none and take only the default.

    Returns
    -------
    dataset : Dataset
        Fields ``name``; ``x_train``, ``x_valid``, ``x_test``, float64 of shape
        (n_samples, n_features); ``y_train``, ``y_valid``, ``y_test``, integer labels of
        shape (n_samples,); ``num_classes``.  Every part is non-empty.

    Raises
    ------
    ValueError
        If `name` is not a known set, or a `path` is given for a set other than MNIST, or
        `seed` is not an integer >= 0 (MNIST: see `mnist`), or `grid` is not
        'corners' for a set without a test grid.
    ImportError
        If ``digits`` is asked for and scikit-learn is not installed.

    See Also
    --------
    two_d, mnist : The loaders behind `load`.

    Examples
    --------
    >>> from reference.data import load
    >>> data = load("circle", seed=0)
    >>> data.x_train.shape, data.y_train.shape, data.x_test.shape
    ((1500, 2), (1500,), (40000, 2))
    >>> data.num_classes
    2
    """
    check_choice(name, DATASETS, "dataset")
    check_choice(grid, TEST_GRIDS, "grid")
    if name not in GENERATED and grid != "corners":
        raise ValueError(f"grid: only the two-dimensional sets {list(GENERATED)} are "
                         f"tested on a grid; dataset {name!r} takes the default 'corners', "
                         f"got {grid!r}")
    if name == "mnist":
        return mnist(path, seed, arg=arg)
    if path is not None:
        raise ValueError(f"{arg}: only the mnist data set is read from a path; dataset "
                         f"{name!r} is {'bundled' if name == 'digits' else 'generated'}, "
                         f"got {str(path)!r}")
    if name in GENERATED:
        return two_d(name, seed, grid=grid)
    return digits(seed)
