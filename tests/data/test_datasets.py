import gzip
import io
import struct
import zipfile

import numpy as np
import pytest

from reference.data import _datasets as datasets

IDX_CODES = {"|u1": 0x08, "|i1": 0x09, "<i2": 0x0B, "<i4": 0x0C, "<f4": 0x0D, "<f8": 0x0E}
IDX_STEMS = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def test_circle_is_balanced_and_shaped():
    ds = datasets.load("circle", seed=0)
    assert ds.x_train.shape == (1500, 2) and ds.x_valid.shape == (1500, 2)
    assert ds.x_test.shape == (40000, 2)
    assert np.all(np.abs(ds.x_train) <= 1)
    # half the area of the square is inside the circle of radius^2 = 2/pi
    assert abs(ds.y_test.mean() - 0.5) < 0.01
    assert abs(ds.y_train.mean() - 0.5) < 0.05
    np.testing.assert_array_equal(
        datasets.circle_labels(np.array([[0.0, 0.0], [0.9, 0.9]])), [1, 0])


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


def test_test_grid_of_cell_centres_is_deepsplines():
    """'centres': DeepSplines' stored test grid (-0.995 .. 0.995, float32 in its files), the
    same row order as the default grid, which is unchanged."""
    centres, corners = datasets.test_grid("centres"), datasets.test_grid()
    axis = -0.995 + 0.01 * np.arange(200)
    np.testing.assert_array_equal(np.unique(centres[:, 0]), axis)
    np.testing.assert_array_equal(centres[:2], [[axis[0], axis[0]], [axis[0], axis[1]]])
    np.testing.assert_allclose(centres - corners, 0.005, rtol=1e-12)
    assert np.array_equal(corners, datasets.test_grid("corners"))
    ds = datasets.load("s_shape", seed=2, grid="centres")
    np.testing.assert_array_equal(ds.x_test, centres)
    np.testing.assert_array_equal(ds.y_test, datasets.s_shape_labels(centres))
    np.testing.assert_array_equal(ds.x_train, datasets.load("s_shape", seed=2).x_train)
    with pytest.raises(ValueError, match="^kind: expected one of"):
        datasets.test_grid("middle")
    with pytest.raises(ValueError, match="^grid: expected one of"):
        datasets.two_d("circle", grid="middle")
    with pytest.raises(ValueError, match="^grid: only the two-dimensional sets"):
        datasets.load("digits", grid="centres")


@pytest.mark.parametrize("kwargs, name", [
    ({"num_train": 0}, "num_train"), ({"num_train": 1.5}, "num_train"),
    ({"num_valid": 0}, "num_valid"), ({"num_valid": True}, "num_valid"),
    ({"seed": -1}, "seed"), ({"seed": "3"}, "seed")])
def test_two_d_arguments_are_validated(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}: expected an integer"):
        datasets.two_d("circle", **kwargs)


def test_two_d_sizes_and_path_only_for_mnist():
    ds = datasets.two_d("s_shape", seed=1, num_train=7, num_valid=3)
    assert ds.x_train.shape == (7, 2) and ds.x_valid.shape == (3, 2)
    with pytest.raises(ValueError, match="path: only the mnist data set is read from a path"):
        datasets.load("circle", path="somewhere.npz")
    with pytest.raises(ValueError, match="seed"):
        datasets.load("mnist", seed=-2, path="somewhere.npz")


# ----------------------------------------------------------------------------- MNIST
def idx_bytes(array):
    """An IDX file holding `array` (its dtype picks the IDX type code)."""
    array = np.asarray(array)
    code = IDX_CODES[array.dtype.str]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array):
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if str(path).endswith(".gz") else data)


def fake_mnist(m=30, m_test=5, size=(28, 28), seed=0):
    rng = np.random.default_rng(seed)
    return {"x_train": rng.integers(0, 256, (m, *size)).astype(np.uint8),
            "y_train": rng.integers(0, 10, m).astype(np.uint8),
            "x_test": rng.integers(0, 256, (m_test, *size)).astype(np.uint8),
            "y_test": rng.integers(0, 10, m_test).astype(np.uint8)}


def write_mnist_dir(directory, arrays, gz=("x_train",)):
    directory.mkdir(exist_ok=True)
    for key, stem in IDX_STEMS.items():
        write_idx(directory / (stem + (".gz" if key in gz else "")), arrays[key])
    return directory


def test_mnist_from_idx_files_and_npz(tmp_path):
    arrays = fake_mnist()
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", arrays["x_train"])
    write_idx(tmp_path / "train-labels-idx1-ubyte", arrays["y_train"])
    write_idx(tmp_path / "t10k-images.idx3-ubyte", arrays["x_test"])      # other spelling
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", arrays["y_test"])
    ds = datasets.mnist(tmp_path, num_valid=10)
    assert ds.x_train.shape == (20, 784) and ds.x_valid.shape == (10, 784)
    assert ds.x_test.shape == (5, 784) and ds.x_train.max() <= 1.0
    assert ds.x_train.dtype == np.float64 and ds.num_classes == 10
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])
    np.testing.assert_array_equal(ds.x_test * 255, arrays["x_test"].reshape(5, -1))
    # training + validation = the training file, shuffled by the seed
    both = np.concatenate([ds.x_train, ds.x_valid]) * 255
    np.testing.assert_array_equal(np.sort(both, axis=0),
                                  np.sort(arrays["x_train"].reshape(30, -1), axis=0))
    npz = tmp_path / "mnist.npz"
    np.savez(npz, **arrays)
    ds2 = datasets.mnist(npz, num_valid=10)
    for key in ("x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(ds2, key), getattr(ds, key))


def test_small_mnist_trains_on_five_sixths_by_default(tmp_path):
    """Issue 11.2: with fewer than 10 000 training images the old default split left an
    empty training set."""
    np.savez(tmp_path / "m.npz", **fake_mnist(m=30))
    ds = datasets.load("mnist", seed=0, path=tmp_path / "m.npz")
    assert ds.x_train.shape == (25, 784) and ds.x_valid.shape == (5, 784)
    np.savez(tmp_path / "two.npz", **fake_mnist(m=2))
    ds = datasets.mnist(tmp_path / "two.npz")
    assert len(ds.x_train) == 1 and len(ds.x_valid) == 1


@pytest.mark.parametrize("num_valid, message", [
    (30, "num_valid: 30 validation images leave none of the 30"),
    (31, "num_valid: 31 validation images"), (0, "num_valid: expected an integer >= 1"),
    (2.5, "num_valid: expected an integer")])
def test_num_valid_must_leave_a_training_set(tmp_path, num_valid, message):
    np.savez(tmp_path / "m.npz", **fake_mnist(m=30))
    with pytest.raises(ValueError, match=message):
        datasets.mnist(tmp_path / "m.npz", num_valid=num_valid)


def test_one_training_image_is_too_few(tmp_path):
    np.savez(tmp_path / "m.npz", **fake_mnist(m=1))
    with pytest.raises(ValueError, match="path: .* holds 1 training image.*at least 2"):
        datasets.mnist(tmp_path / "m.npz")


@pytest.mark.parametrize("part", ["train", "test"])
@pytest.mark.parametrize("layout", ["idx", "npz"])
def test_image_and_label_counts_must_agree(tmp_path, part, layout):
    """Issue 11.2: 12 000 images with 11 000 labels silently dropped 1 000 images."""
    arrays = fake_mnist(m=12, m_test=12)
    arrays[f"y_{part}"] = arrays[f"y_{part}"][:11]
    if layout == "idx":
        path = write_mnist_dir(tmp_path / "d", arrays)
    else:
        path = tmp_path / "m.npz"
        np.savez(path, **arrays)
    with pytest.raises(ValueError, match="path: .* holds 12 images but .* holds 11 labels"):
        datasets.mnist(path)


def with_entry(array, value, dtype=None):
    """A copy of `array` (as dtype) whose first entry is `value`."""
    out = array.astype(dtype or array.dtype)
    out.flat[0] = value
    return out


def test_labels_and_pixels_are_validated(tmp_path):
    cases = {"label 10": ("y_train", lambda a: with_entry(a, 10), r"1 label\(s\) outside 0..9"),
             "float labels": ("y_test", lambda a: a.astype(np.float64), "integer labels"),
             "2-D labels": ("y_test", lambda a: a[:, None], r"shape \(M,\)"),
             "float pixels": ("x_train", lambda a: a / 255.0, "integer pixels"),
             "pixel 300": ("x_train", lambda a: with_entry(a, 300, np.int16),
                           r"pixel values in \[0, 300\]"),
             "negative pixel": ("x_test", lambda a: with_entry(a, -1, np.int16),
                                r"pixel values in \[-1, 255\]; expected 0..255"),
             "empty test set": ("x_test", lambda a: a[:0], "non-empty test set")}
    for name, (key, change, message) in cases.items():
        arrays = fake_mnist()
        arrays[key] = change(arrays[key])
        if name == "empty test set":
            arrays["y_test"] = arrays["y_test"][:0]
        np.savez(tmp_path / "m.npz", **arrays)
        with pytest.raises(ValueError, match=message):
            datasets.mnist(tmp_path / "m.npz")
        if arrays[key].dtype != np.float64:                  # IDX: the same checks
            directory = write_mnist_dir(tmp_path / name, arrays)
            with pytest.raises(ValueError, match=message):
                datasets.mnist(directory)


def test_image_size_is_any_but_one(tmp_path):
    """Decision: any image size (M, H, W) or (M, D), the same in training and test."""
    arrays = fake_mnist(size=(14, 14))
    arrays["x_test"] = arrays["x_test"].reshape(5, 196)
    ds = datasets.mnist(write_mnist_dir(tmp_path / "small", arrays))
    assert ds.x_train.shape[1] == ds.x_test.shape[1] == 196
    arrays["x_test"] = fake_mnist()["x_test"]
    with pytest.raises(ValueError, match=r"training images \(14, 14\) .* and test images "
                                         r"\(28, 28\) .* differ"):
        datasets.mnist(write_mnist_dir(tmp_path / "mixed", arrays))


def test_mnist_errors(tmp_path):
    with pytest.raises(ValueError, match="path: the mnist data set is read from a path"):
        datasets.load("mnist")
    with pytest.raises(FileNotFoundError, match="path: .* does not exist"):
        datasets.mnist(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="path: .* holds no file train-images-idx3-ubyte"):
        datasets.mnist(tmp_path)
    np.savez(tmp_path / "m.npz", x_train=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="path: .* has no array 'y_train', 'x_test', 'y_test'"):
        datasets.mnist(tmp_path / "m.npz")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="path: .* is not an IDX file"):
        datasets.mnist(tmp_path)
    with pytest.raises(ValueError, match="dataset"):
        datasets.load("cifar")


def test_an_idx_name_that_is_a_directory_is_not_a_file(tmp_path):
    write_mnist_dir(tmp_path, fake_mnist(), gz=())
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte").mkdir()
    with pytest.raises(FileNotFoundError, match="path: .* holds no file t10k-labels-idx1-ubyte"):
        datasets.mnist(tmp_path)


def gzip_damages():
    good = gzip.compress(idx_bytes(fake_mnist()["x_train"]))
    flipped = bytearray(good)
    flipped[12] ^= 0xFF
    return {"garbage after the gzip magic": b"\x1f\x8b" + b"garbage" * 10,  # BadGzipFile
            "truncated stream": good[: len(good) // 2],                       # EOFError
            "corrupt deflate data": bytes(flipped)}                          # zlib.error


@pytest.mark.parametrize("damage", sorted(gzip_damages()))
def test_corrupt_gzip_is_a_value_error_naming_path(tmp_path, damage):
    """Issue 11.7: a corrupt .gz raised zlib.error (or BadGzipFile, EOFError)."""
    write_mnist_dir(tmp_path, fake_mnist())
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip_damages()[damage])
    with pytest.raises(ValueError, match="path: cannot read .*train-images-idx3-ubyte.gz"):
        datasets.mnist(tmp_path)


def test_wrong_file_types_name_path(tmp_path):
    """Issue 11.7: a .npy, a text file, an .npz needing pickle as --data-path."""
    np.save(tmp_path / "x.npy", np.zeros((3, 784)))
    with pytest.raises(ValueError, match=r"path: .*x.npy is a single NumPy array \(.npy\), "
                                         "neither a directory nor an .npz archive; expected"):
        datasets.mnist(tmp_path / "x.npy")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="path: .*notes.txt is not a NumPy file, neither"):
        datasets.mnist(tmp_path / "notes.txt")
    arrays = fake_mnist()
    arrays["y_train"] = np.array(list(arrays["y_train"]), dtype=object)
    np.savez(tmp_path / "pickled.npz", **arrays)
    with pytest.raises(ValueError, match=r"path: .*pickled.npz, entry 'y_train': holds Python "
                                         r"objects \(a pickle\), which are never loaded"):
        datasets.mnist(tmp_path / "pickled.npz")
    (tmp_path / "broken.npz").write_bytes((tmp_path / "pickled.npz").read_bytes()[:-30])
    with pytest.raises(ValueError, match="path: .*broken.npz is a damaged zip archive"):
        datasets.mnist(tmp_path / "broken.npz")


def test_truncated_or_oversized_idx(tmp_path):
    """Issue 11.7: IDX files with truncated data or header, or huge declared dims."""
    write_mnist_dir(tmp_path, fake_mnist(), gz=())
    images = tmp_path / "train-images-idx3-ubyte"
    full = images.read_bytes()
    images.write_bytes(full[:-100])
    with pytest.raises(ValueError, match=r"path: .*IDX header says \(30, 28, 28\) \(23520 "
                                         r"bytes of data\), the file holds 23420 bytes"):
        datasets.mnist(tmp_path)
    images.write_bytes(full + b"\0")
    with pytest.raises(ValueError, match="the file holds 23521 bytes"):
        datasets.mnist(tmp_path)
    images.write_bytes(bytes([0, 0, 0x08, 3, 0, 0]))
    with pytest.raises(ValueError, match=r"path: .*IDX header truncated \(declares 3 dims"):
        datasets.mnist(tmp_path)
    huge = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)
    images.write_bytes(huge + b"\0" * 10)
    with pytest.raises(ValueError, match=r"path: .*IDX header says \(4294967295, "):
        datasets.mnist(tmp_path)
    images.unlink()
    gz = tmp_path / "train-images-idx3-ubyte.gz"        # more than a gzip file can hold
    gz.write_bytes(gzip.compress(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 10**6, 28, 28)))
    with pytest.raises(ValueError, match=r"IDX header says \(1000000, 28, 28\) .* can hold "
                                         "at most"):
        datasets.mnist(tmp_path)
    gz.write_bytes(gzip.compress(full[:-100]))           # declared size plausible, data short
    with pytest.raises(ValueError, match="the file holds 23420 bytes"):
        datasets.mnist(tmp_path)
    gz.write_bytes(gzip.compress(full + b"\0"))
    with pytest.raises(ValueError, match="the file holds more"):
        datasets.mnist(tmp_path)


def test_idx_array_size_limit(tmp_path, monkeypatch):
    """The limit of reference.files on one array read from a file holds for IDX files too."""
    monkeypatch.setattr(datasets, "MAX_ARRAY_BYTES", 1000)
    with pytest.raises(ValueError, match=r"IDX header says \(30, 28, 28\) .* exceeds the "
                                         "1000-byte limit"):
        datasets.mnist(write_mnist_dir(tmp_path, fake_mnist()))


def npz_with_member(path, key, member_bytes, arrays):
    with zipfile.ZipFile(path, "w") as zf:
        for k, value in arrays.items():
            if k == key:
                zf.writestr(k + ".npy", member_bytes)
            else:
                buf = io.BytesIO()
                np.save(buf, value)
                zf.writestr(k + ".npy", buf.getvalue())


def test_npz_header_declaring_a_huge_array_is_rejected_before_allocating(tmp_path):
    """The old loader tried to allocate 931 GiB (numpy preallocates from the .npy header)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|u1", "fortran_order": False, "shape": (10**12,)})
    npz_with_member(tmp_path / "m.npz", "x_train", buf.getvalue() + b"\0" * 10, fake_mnist())
    with pytest.raises(ValueError, match=r"path: .*m.npz, entry 'x_train': header declares "
                                         r"shape \(1000000000000,\) .* only 10 bytes follow"):
        datasets.mnist(tmp_path / "m.npz")
    npz_with_member(tmp_path / "m.npz", "y_test", b"not an npy member", fake_mnist())
    with pytest.raises(ValueError, match=r"path: .*m.npz, entry 'y_test' cannot be read"):
        datasets.mnist(tmp_path / "m.npz")


def test_idx_headers_are_checked_before_any_data_is_read(tmp_path, monkeypatch):
    """A wrong count, size or type is found from the IDX headers: no data is read."""
    def no_data_read(*args):
        raise AssertionError("data read before the headers were checked")
    monkeypatch.setattr(datasets, "_read_upto", no_data_read)
    arrays = fake_mnist(m=12)
    arrays["y_train"] = arrays["y_train"][:11]
    with pytest.raises(ValueError, match="holds 12 images but"):
        datasets.mnist(write_mnist_dir(tmp_path / "count", arrays))
    arrays = fake_mnist()
    arrays["x_test"] = arrays["x_test"].astype(np.int32)[:, :14, :14]
    with pytest.raises(ValueError, match=r"training images \(28, 28\) .* differ"):
        datasets.mnist(write_mnist_dir(tmp_path / "size", arrays))


def test_arg_names_the_argument_that_gave_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="^--data-path: .* does not exist"):
        datasets.load("mnist", path=tmp_path / "nowhere", arg="--data-path")
    with pytest.raises(ValueError, match="^--data-path: only the mnist data set"):
        datasets.load("s_shape", path=tmp_path, arg="--data-path")


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
    with pytest.raises(ValueError, match="path: .*unknown IDX data type 0x07"):
        datasets.mnist(tmp_path)
    bad_type.write_bytes(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 5) + b"\x00\x00")
    with pytest.raises(ValueError, match="IDX header says"):
        datasets.mnist(tmp_path)
