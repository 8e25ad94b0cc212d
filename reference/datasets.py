"""Data sets.  Nothing is downloaded: sets are generated, bundled in a package, or read
from a path the user gives.

Every loader returns a Dataset with float64 inputs (M, N_0) and integer labels (M,).
"""
from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reference._checks import check_choice

GENERATED = ("circle", "s_shape")
DATASETS = GENERATED + ("digits", "mnist")


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def circle_labels(x: np.ndarray) -> np.ndarray:
    """1 inside the circle x1^2 + x2^2 < 2/pi (half the area of [-1, 1]^2), else 0."""
    return (np.sum(x ** 2, axis=1) < 2.0 / np.pi).astype(np.intp)


def s_shape_labels(x: np.ndarray) -> np.ndarray:
    """1 where 0.4 sin(-5 x2) - 0.3 < x1 < 0.4 sin(-5 x2) + 0.3 and |x2| < 0.8, else 0."""
    centre = 0.4 * np.sin(-5.0 * x[:, 1])
    inside = (x[:, 0] > centre - 0.3) & (x[:, 0] < centre + 0.3) & (np.abs(x[:, 1]) < 0.8)
    return inside.astype(np.intp)


def test_grid() -> np.ndarray:
    """The 200 x 200 grid of step 0.01 on [-1, 1)^2 (DeepSplines' 2-D test set), (40000, 2)."""
    axis = -1.0 + 0.01 * np.arange(200)
    g1, g2 = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([g1.ravel(), g2.ravel()], axis=1)


def two_d(name: str, seed: int = 0, num_train: int = 1500, num_valid: int = 1500) -> Dataset:
    """circle or s_shape: points uniform in [-1, 1]^2 from np.random.default_rng(seed)."""
    check_choice(name, GENERATED, "name")
    labels = circle_labels if name == "circle" else s_shape_labels
    rng = np.random.default_rng(seed)
    x_train = rng.uniform(-1.0, 1.0, (int(num_train), 2))
    x_valid = rng.uniform(-1.0, 1.0, (int(num_valid), 2))
    x_test = test_grid()
    return Dataset(name, x_train, labels(x_train), x_valid, labels(x_valid),
                   x_test, labels(x_test), 2)


def digits(seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, pixels scaled to [0, 1]), split
    60/20/20 by a seeded permutation.  Needs the optional extra `digits` (scikit-learn)."""
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


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped): magic 0x00 0x00 type ndim, big-endian dims, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise ValueError(f"{path}: unknown IDX data type 0x{raw[2]:02x}")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=dtypes[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: IDX header says {dims}, file holds {data.size} values")
    return data.reshape(dims)


def _find(directory: Path, stem: str) -> Path:
    """stem or stem.gz, also under the other common spelling (train-images.idx3-ubyte)."""
    for name in (stem, stem.replace("-idx", ".idx")):
        for candidate in (directory / name, directory / (name + ".gz")):
            if candidate.exists():
                return candidate
    raise FileNotFoundError(f"mnist: {stem}[.gz] not found in {directory}")


def mnist(path, seed: int = 0, num_valid: int = 10000) -> Dataset:
    """MNIST from a path the user gives: a directory with the four IDX files
    (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...), or an .npz with
    x_train, y_train, x_test, y_test (Keras' mnist.npz layout).  Pixels scaled to [0, 1]
    and flattened to 784; the last `num_valid` training images (after a seeded shuffle)
    form the validation set."""
    if path is None:
        raise ValueError("path: the mnist data set is read from a path you give "
                         "(--data-path DIR_OR_NPZ); nothing is downloaded")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: {path} does not exist (expected a directory of "
                                "MNIST IDX files or an .npz file)")
    if path.is_dir():
        x_tr = _read_idx(_find(path, "train-images-idx3-ubyte"))
        y_tr = _read_idx(_find(path, "train-labels-idx1-ubyte"))
        x_te = _read_idx(_find(path, "t10k-images-idx3-ubyte"))
        y_te = _read_idx(_find(path, "t10k-labels-idx1-ubyte"))
    else:
        with np.load(path) as data:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(data.files)
            if missing:
                raise ValueError(f"path: {path} lacks the arrays {sorted(missing)}")
            x_tr, y_tr, x_te, y_te = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    x_tr = x_tr.reshape(len(x_tr), -1).astype(np.float64) / 255.0
    x_te = x_te.reshape(len(x_te), -1).astype(np.float64) / 255.0
    y_tr, y_te = y_tr.astype(np.intp), y_te.astype(np.intp)
    order = np.random.default_rng(seed).permutation(len(y_tr))
    tr, va = order[:len(order) - num_valid], order[len(order) - num_valid:]
    return Dataset("mnist", x_tr[tr], y_tr[tr], x_tr[va], y_tr[va], x_te, y_te, 10)


def load(name: str, seed: int = 0, path=None) -> Dataset:
    """A data set by name: circle, s_shape, digits, or mnist (read from `path`)."""
    check_choice(name, DATASETS, "dataset")
    if name in GENERATED:
        return two_d(name, seed)
    if name == "digits":
        return digits(seed)
    return mnist(path, seed)
