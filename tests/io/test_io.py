import json
import zipfile

import numpy as np
import pytest

from reference.exceptions import ModelFileError
from reference.io._model_file import FORMAT, load_model, save_model
from reference.nn._linear_spline import LinearSpline
from reference.nn._network import Dense, LeakyReLU, Network, PReLU, SplineActivation, build_mlp


def all_layer_network(rng):
    return Network([Dense(rng.normal(size=(3, 2)), rng.normal(size=3)),
                    SplineActivation(LinearSpline(rng.normal(size=(3, 5)), -1.0, 0.5)),
                    Dense(rng.normal(size=(3, 3)), None), PReLU(np.array([0.1, 0.2, 0.3])),
                    Dense(rng.normal(size=(2, 3))), LeakyReLU(0.05),
                    *build_mlp([2, 2, 1], "relu", rng=0).layers])


def test_roundtrip_is_exact(tmp_path):
    net = all_layer_network(np.random.default_rng(0))
    path = save_model(net, tmp_path / "m.npz")
    back = load_model(path)
    assert [l.kind for l in back.layers] == [l.kind for l in net.layers]
    for (na, a), (nb, b) in zip(net.named_params(), back.named_params()):
        assert na == nb
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(1).normal(size=(20, 2))
    np.testing.assert_array_equal(net.forward(x), back.forward(x))
    assert back.layers[1].spline.x_min == -1.0 and back.layers[1].spline.step == 0.5
    assert back.layers[5].slope == 0.05
    with np.load(path) as data:
        assert str(data["format"]) == FORMAT
        layers = json.loads(str(data["layers"]))
    assert layers[0] == {"type": "dense", "weight": "layer0.weight", "bias": "layer0.bias"}
    assert layers[2]["bias"] is None


def test_save_is_atomic(tmp_path, monkeypatch):
    net = build_mlp([2, 2, 1], "spline", rng=0)
    path = tmp_path / "m.npz"
    save_model(net, path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(ValueError, match="path: could not write .*disk full.*nothing was changed"):
        save_model(build_mlp([2, 3, 1], "relu", rng=1), path)
    assert path.read_bytes() == before                     # old file intact
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary left behind


def write(tmp_path, layers, **arrays):
    path = tmp_path / "bad.npz"
    meta = {"format": np.array(arrays.pop("format", FORMAT)),
            "layers": np.array(layers if isinstance(layers, str) else json.dumps(layers))}
    np.savez(path, **meta, **arrays)
    return path


W = np.ones((2, 2))


@pytest.mark.parametrize("layers, arrays, match", [
    ([{"type": "dense", "weight": "w", "bias": None}], {},
     r"layer 0 \(dense\): array 'w' is missing"),
    ([{"type": "dense", "weight": "w", "bias": "b"}], {"w": W, "b": np.ones(3)},
     "layer 0.*bias has shape"),
    ([{"type": "dense", "weight": "w", "bias": None}], {"w": np.ones(2)}, "should be 2-D"),
    ([{"type": "dense", "weight": "w", "bias": None}], {"w": np.array([[np.nan]])}, "NaN or inf"),
    ([{"type": "dense", "weight": "w", "bias": None},
      {"type": "spline", "coefficients": "c", "x_min": -1, "step": 0.5}],
     {"w": W, "c": np.ones((2, 1))}, r"layer 1 \(spline\): coefficients need K >= 2"),
    ([{"type": "dense", "weight": "w", "bias": None},
      {"type": "spline", "coefficients": "c", "x_min": -1, "step": 0}],
     {"w": W, "c": np.ones((2, 3))}, r"layer 1 \(spline\): 'step' should be > 0"),
    ([{"type": "dense", "weight": "w", "bias": None},
      {"type": "spline", "coefficients": "c", "x_min": -1}],
     {"w": W, "c": np.ones((2, 3))}, "'step' should be a finite number"),
    ([{"type": "dense", "weight": "w", "bias": None},
      {"type": "spline", "coefficients": "c", "x_min": -1, "step": 1}],
     {"w": W, "c": np.ones((3, 3))}, "layers\\[1\\] \\(spline\\): expected input width 3"),
    ([{"type": "dense", "weight": "w", "bias": None}, {"type": "tanh"}], {"w": W},
     r"layer 1 \(tanh\): unknown layer type"),
    ([{"type": "dense", "weight": "w", "bias": None}, {"type": "leaky_relu"}], {"w": W},
     r"layer 1 \(leaky_relu\): 'slope' should be a finite number"),
    ([{"type": "dense", "weight": "w", "bias": None}, {"type": "prelu", "slope": "s"}],
     {"w": W}, r"layer 1 \(prelu\): array 's' is missing"),
    ([], {}, "non-empty JSON list"),
    ("{not json", {}, "not valid JSON"),
])
def test_bad_model_files(tmp_path, layers, arrays, match):
    with pytest.raises(ModelFileError, match=match):
        load_model(write(tmp_path, layers, **arrays))


def test_bad_format_and_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="format is 'other/2'"):
        load_model(write(tmp_path, [{"type": "identity"}], format="other/2"))
    with pytest.raises(FileNotFoundError, match="model: no file"):
        load_model(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(ModelFileError, match="not a model file: it is not a NumPy file"):
        load_model(tmp_path / "junk.npz")
    np.savez(tmp_path / "nometa.npz", w=W)
    with pytest.raises(ModelFileError, match="'format' is missing"):
        load_model(tmp_path / "nometa.npz")


def test_non_numeric_array_is_rejected(tmp_path):
    path = write(tmp_path, [{"type": "dense", "weight": "w", "bias": None}],
                 w=np.array([["a", "b"]]))
    with pytest.raises(ModelFileError, match="not real-valued"):
        load_model(path)


def test_save_into_a_missing_directory_names_it(tmp_path):
    with pytest.raises(ValueError, match="path: directory .*absent does not exist"):
        save_model(build_mlp([2, 1], "relu", rng=0), tmp_path / "absent" / "m.npz")


def test_a_model_that_could_not_be_loaded_is_not_saved(tmp_path):
    """Training may push coefficients out of the supported range: refused at save, so that
    every saved file loads."""
    net = build_mlp([2, 2, 1], "spline", rng=0)
    net.layers[1].params["coefficients"][0, 0] = 1e300
    with pytest.raises(ValueError, match="layer 1 .spline.*coefficients.*nothing was written"):
        save_model(net, tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_file_kinds_name_what_a_file_is_and_which_command_reads_it(tmp_path):
    """A file that is not a model file: the error says what it is; for a PyTorch checkpoint
    (zip or legacy format, recognised without torch) it names import-deepsplines."""
    from reference.io._files import describe, file_kind

    pth = tmp_path / "ckpt.pth"
    with zipfile.ZipFile(pth, "w") as zf:                   # torch.save's layout
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    legacy = tmp_path / "legacy.pth"                         # torch's magic number, pickled
    legacy.write_bytes(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.")
    pickle = tmp_path / "p.pkl"
    pickle.write_bytes(b"\x80\x04K\x01.")
    np.save(tmp_path / "x.npy", np.zeros(2))
    np.savez(tmp_path / "a.npz", w=W)
    (tmp_path / "empty").write_bytes(b"")
    kinds = {pth: "torch", legacy: "torch", pickle: "pickle", tmp_path / "x.npy": "npy",
             tmp_path / "a.npz": "npz", tmp_path / "empty": "empty"}
    for path, kind in kinds.items():
        assert file_kind(path) == kind
    for path in (pth, legacy):
        assert describe(path).startswith("a PyTorch checkpoint (torch.save; `python -m "
                                         f"reference import-deepsplines {path} --out MODEL.npz`")
        with pytest.raises(ModelFileError, match=f"model: {path} is not a model file: it is a "
                                                 "PyTorch checkpoint .*import-deepsplines"):
            load_model(path)
    with pytest.raises(ModelFileError, match="it is a Python pickle .never loaded"):
        load_model(pickle)
    with pytest.raises(ModelFileError, match=r"it is a single NumPy array \(.npy\)"):
        load_model(tmp_path / "x.npy")
