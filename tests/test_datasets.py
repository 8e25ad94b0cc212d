import gzip
import struct

import numpy as np
import pytest

from reference import datasets


def test_circle_is_balanced_and_shaped():
    ds = datasets.load("circle", seed=0)
    assert ds.x_train.shape == (1500, 2) and ds.x_valid.shape == (1500, 2)
    assert ds.x_test.shape == (40000, 2)
    assert np.all(np.abs(ds.x_train) <= 1)
    # half the area of the square is inside the circle of radius^2 = 2/pi
    assert abs(ds.y_test.mean() - 0.5) < 0.01
    assert abs(ds.y_train.mean() - 0.5) < 0.05
    np.testing.assert_array_equal(datasets.circle_labels(np.array([[0.0, 0.0], [0.9, 0.9]])), [1, 0])


def test_s_shape_labels_and_seed():
    ds = datasets.load("s_shape", seed=3)
    again = datasets.load("s_shape", seed=3)
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    assert not np.array_equal(ds.x_train, datasets.load("s_shape", seed=4).x_train)
    pts = np.array([[0.4 * np.sin(-5 * 0.2), 0.2], [0.9, 0.0], [0.0, 0.9]])
    np.testing.assert_array_equal(datasets.s_shape_labels(pts), [1, 0, 0])


def test_test_grid_step():
    g = datasets.test_grid()
    assert np.allclose(np.unique(g[:, 0]), -1 + 0.01 * np.arange(200))


def write_idx(path, array, type_code):
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(">u1").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(data)


def test_mnist_from_idx_files_and_npz(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 28, 28))
    labels = rng.integers(0, 10, 30)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, 0x08)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels, 0x08)
    write_idx(tmp_path / "t10k-images.idx3-ubyte", images[:5], 0x08)      # other spelling
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:5], 0x08)
    ds = datasets.mnist(tmp_path, num_valid=10)
    assert ds.x_train.shape == (20, 784) and ds.x_valid.shape == (10, 784)
    assert ds.x_test.shape == (5, 784) and ds.x_train.max() <= 1.0
    np.testing.assert_array_equal(ds.y_test, labels[:5])
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=images, y_train=labels, x_test=images[:5], y_test=labels[:5])
    ds2 = datasets.mnist(npz, num_valid=10)
    np.testing.assert_array_equal(ds2.x_test, ds.x_test)


def test_mnist_errors(tmp_path):
    with pytest.raises(ValueError, match="path: the mnist data set is read from a path"):
        datasets.load("mnist")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        datasets.mnist(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        datasets.mnist(tmp_path)
    np.savez(tmp_path / "m.npz", x_train=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="lacks the arrays"):
        datasets.mnist(tmp_path / "m.npz")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.mnist(tmp_path)
    with pytest.raises(ValueError, match="dataset"):
        datasets.load("cifar")


def test_digits_needs_the_optional_extra():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="scikit-learn"):
            datasets.load("digits")
        return
    ds = datasets.load("digits")
    assert ds.x_train.shape[1] == 64 and ds.num_classes == 10
    assert len(ds.y_train) + len(ds.y_valid) + len(ds.y_test) == 1797


def test_idx_header_errors(tmp_path):
    bad_type = tmp_path / "train-images-idx3-ubyte"
    bad_type.write_bytes(bytes([0, 0, 0x07, 1]) + struct.pack(">I", 2) + b"\x00\x00")
    with pytest.raises(ValueError, match="unknown IDX data type"):
        datasets.mnist(tmp_path)
    bad_type.write_bytes(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 5) + b"\x00\x00")
    with pytest.raises(ValueError, match="IDX header says"):
        datasets.mnist(tmp_path)
