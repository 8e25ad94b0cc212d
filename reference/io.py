"""The model file (DESIGN section 4): one .npz, format 'deepspline-reference/1'.

Entry `format` holds the format string, entry `layers` a JSON list, one object per layer:
    {"type": "dense", "weight": NAME, "bias": NAME or null}     weight (N_out, N_in)
    {"type": "spline", "coefficients": NAME, "x_min": float, "step": float}   (N, K)
    {"type": "relu"}, {"type": "leaky_relu", "slope": float},
    {"type": "prelu", "slope": NAME}, {"type": "identity"}
    {"type": "knot_spline", "points": NAME, "values": NAME, "counts": NAME}  (format /2)
        free-knot splines: neuron n owns the next counts[n] >= 2 entries of the flat arrays
        points (strictly increasing per neuron) and values; the interpolant, continued
        linearly with its end slopes.
A file holding a knot_spline layer is written as format 'deepspline-reference/2'; any other
is still written as '/1', so readers of version 1 keep reading it.  Both are read.
NAME is the key of an array in the same file.  Loading validates everything and names the
offending layer; saving is atomic (temporary file in the same directory, then rename).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from reference.network import (Dense, Identity, KnotSplineActivation, LeakyReLU, Network,
                               PReLU, ReLU, SplineActivation)
from reference.spline import LinearSpline

FORMAT = "deepspline-reference/1"
FORMAT_KNOTS = "deepspline-reference/2"
FORMATS = (FORMAT, FORMAT_KNOTS)


def layer_entries(net: Network) -> tuple[list, dict]:
    """The JSON layer list and the arrays (name -> array) describing `net`."""
    entries, arrays = [], {}

    def put(i, key, value):
        name = f"layer{i}.{key}"
        arrays[name] = np.asarray(value, dtype=np.float64)
        return name

    for i, layer in enumerate(net.layers):
        if isinstance(layer, Dense):
            bias = put(i, "bias", layer.params["bias"]) if "bias" in layer.params else None
            entries.append({"type": "dense", "weight": put(i, "weight", layer.params["weight"]),
                            "bias": bias})
        elif isinstance(layer, SplineActivation):
            entries.append({"type": "spline",
                            "coefficients": put(i, "coefficients", layer.params["coefficients"]),
                            "x_min": layer.spline.x_min, "step": layer.spline.step})
        elif isinstance(layer, KnotSplineActivation):
            entries.append({"type": "knot_spline",
                            "points": put(i, "points", np.concatenate(layer.points)),
                            "values": put(i, "values", np.concatenate(layer.values)),
                            "counts": put(i, "counts", [len(p) for p in layer.points])})
        elif isinstance(layer, LeakyReLU):
            entries.append({"type": "leaky_relu", "slope": layer.slope})
        elif isinstance(layer, PReLU):
            entries.append({"type": "prelu", "slope": put(i, "slope", layer.params["slope"])})
        else:
            entries.append({"type": layer.kind})
    return entries, arrays


def save_model(net: Network, path) -> Path:
    """Write `net` to `path` atomically: a temporary file beside it, fsync, rename."""
    path = Path(path)
    entries, arrays = layer_entries(net)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"path: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            version = FORMAT_KNOTS if any(e["type"] == "knot_spline" for e in entries) \
                else FORMAT
            np.savez(f, format=np.array(version), layers=np.array(json.dumps(entries)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


class ModelFileError(ValueError):
    """A model file that does not follow the format; the message names the layer."""


def _array(data, name, where, ndim):
    if not isinstance(name, str) or name not in data:
        raise ModelFileError(f"{where}: array {name!r} is missing from the file")
    arr = np.asarray(data[name])
    if arr.dtype.kind not in "fiu":
        raise ModelFileError(f"{where}: array {name!r} is not numeric (dtype {arr.dtype})")
    arr = arr.astype(np.float64)
    if arr.ndim != ndim:
        raise ModelFileError(f"{where}: array {name!r} should be {ndim}-D, has shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ModelFileError(f"{where}: array {name!r} holds NaN or inf")
    return arr


def _number(entry, key, where):
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ModelFileError(f"{where}: {key!r} should be a finite number, got {value!r}")
    return float(value)


def _build_layer(entry, data, where):
    if not isinstance(entry, dict) or "type" not in entry:
        raise ModelFileError(f"{where}: expected an object with a 'type'")
    kind = entry["type"]
    if kind == "dense":
        weight = _array(data, entry.get("weight"), where, 2)
        bias = entry.get("bias")
        if bias is not None:
            bias = _array(data, bias, where, 1)
            if bias.shape != (weight.shape[0],):
                raise ModelFileError(f"{where}: bias has shape {bias.shape}, expected "
                                     f"({weight.shape[0]},) to match weight {weight.shape}")
        return Dense(weight, bias)
    if kind == "spline":
        coefficients = _array(data, entry.get("coefficients"), where, 2)
        if coefficients.shape[1] < 2:
            raise ModelFileError(f"{where}: coefficients need K >= 2 per neuron, "
                                 f"shape is {coefficients.shape}")
        x_min = _number(entry, "x_min", where)
        step = _number(entry, "step", where)
        if step <= 0:
            raise ModelFileError(f"{where}: 'step' should be > 0, got {step}")
        return SplineActivation(LinearSpline(coefficients, x_min, step))
    if kind == "knot_spline":
        points = _array(data, entry.get("points"), where, 1)
        values = _array(data, entry.get("values"), where, 1)
        counts = _array(data, entry.get("counts"), where, 1)
        if (np.any(counts != np.round(counts)) or np.any(counts < 2)
                or counts.sum() != len(points) or len(values) != len(points)):
            raise ModelFileError(f"{where}: counts should be integers >= 2 summing to the "
                                 f"lengths of points and values ({len(points)}, {len(values)})")
        cuts = np.cumsum(counts.astype(int))[:-1]
        try:
            return KnotSplineActivation(np.split(points, cuts), np.split(values, cuts))
        except ValueError as exc:
            raise ModelFileError(f"{where}: {exc}") from None
    if kind == "leaky_relu":
        return LeakyReLU(_number(entry, "slope", where))
    if kind == "prelu":
        return PReLU(_array(data, entry.get("slope"), where, 1))
    if kind in ("relu", "identity"):
        return ReLU() if kind == "relu" else Identity()
    raise ModelFileError(f"{where}: unknown layer type {kind!r} (expected dense, spline, "
                         "knot_spline, relu, leaky_relu, prelu or identity)")


def load_model(path, with_names: bool = False):
    """Read and validate a model file; every error names the file and the layer.

    Returns the Network; with `with_names`, also a dict from each parameter array's name
    in the file to the network's own parameter name 'layer{i}.{key}'."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model: no file at {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ModelFileError(f"{path}: not a readable .npz file ({exc})") from None
    with data:
        arrays = {k: data[k] for k in data.files}
    for key in ("format", "layers"):
        if key not in arrays:
            raise ModelFileError(f"{path}: entry {key!r} is missing")
    if str(arrays["format"]) not in FORMATS:
        raise ModelFileError(f"{path}: format is {str(arrays['format'])!r}, expected one of "
                             f"{list(FORMATS)}")
    try:
        entries = json.loads(str(arrays["layers"]))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: entry 'layers' is not valid JSON ({exc})") from None
    if not isinstance(entries, list) or not entries:
        raise ModelFileError(f"{path}: entry 'layers' should be a non-empty JSON list")
    layers, names = [], {}
    for i, entry in enumerate(entries):
        where = f"{path}: layer {i} ({entry.get('type') if isinstance(entry, dict) else entry})"
        layers.append(_build_layer(entry, arrays, where))
        for key in layers[-1].params:
            names[entry[key]] = f"layer{i}.{key}"
    try:
        net = Network(layers)
    except ValueError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    return (net, names) if with_names else net



def network_from_mat(path, activation: str = "relu") -> Network:
    """A bias-free network from a MATLAB file whose cell `weights` holds W_1..W_L (as in
    the LipSDP repository): dense layers with `activation` between them (relu, or any
    name network.make_activation knows) and an identity output."""
    import scipy.io

    from reference.network import make_activation

    cells = scipy.io.loadmat(path)["weights"].ravel()
    layers = []
    for i, w in enumerate(cells):
        w = np.asarray(w, dtype=np.float64)
        layers.append(Dense(w))
        layers.append(make_activation(activation if i < len(cells) - 1 else "identity",
                                      w.shape[0]))
    return Network(layers)
