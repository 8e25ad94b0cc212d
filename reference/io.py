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
from pathlib import Path

import numpy as np

from reference.network import (Dense, Identity, KnotSplineActivation, LeakyReLU, Network,
                               PReLU, ReLU, SplineActivation)
from reference.files import FileError, NpzReader, describe, file_kind, write_npz
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


def save_model(net: Network, path, arg: str = "path") -> Path:
    """Write `net` to `path` atomically (reference.files.atomic_write: a temporary file beside
    it, fsync, rename; the target keeps its permissions; nothing changes on failure); errors
    name `arg` (e.g. the command-line flag)."""
    entries, arrays = layer_entries(net)
    for i, entry in enumerate(entries):          # what is saved must load: same validation
        where = f"net: layer {i} ({entry['type']})"
        try:
            _build_layer(entry, arrays, where)
        except ModelFileError as exc:
            raise ModelFileError(f"{exc}; nothing was written") from None
        except ValueError as exc:
            raise ModelFileError(f"{where}: {exc}; nothing was written") from None
    version = FORMAT_KNOTS if any(e["type"] == "knot_spline" for e in entries) else FORMAT
    return write_npz(path, {"format": np.array(version), "layers": np.array(json.dumps(entries)),
                            **arrays}, arg=arg)


class ModelFileError(ValueError):
    """A model file that does not follow the format; the message names the layer."""


def _array(data, name, where, ndim):
    if not isinstance(name, str) or name not in data:
        raise ModelFileError(f"{where}: array {name!r} is missing from the file")
    try:
        arr = np.asarray(data[name])
    except FileError as exc:
        raise ModelFileError(f"{where}: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise ModelFileError(f"{where}: array {name!r} is not real-valued (dtype {arr.dtype})")
    arr = arr.astype(np.float64)
    if arr.ndim != ndim:
        raise ModelFileError(f"{where}: array {name!r} should be {ndim}-D, has shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ModelFileError(f"{where}: array {name!r} holds NaN or inf (or integers beyond "
                             "the float64 range)")
    return arr


def _number(entry, key, where):
    value = entry.get(key)
    try:
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) \
            and np.isfinite(float(value))
    except OverflowError:
        ok = False
    if not ok:
        shown = repr(value) if len(repr(value)) < 40 else repr(value)[:37] + "..."
        raise ModelFileError(f"{where}: {key!r} should be a finite number within the float64 "
                             f"range, got {shown}")
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


def _array_names(entry) -> list:
    """The array NAMEs a layer entry refers to (every string field but 'type')."""
    if not isinstance(entry, dict):
        return []
    return [v for k, v in entry.items() if k != "type" and isinstance(v, str)]


def load_model(path, with_names: bool = False):
    """Read and validate a model file; every error names the file and the layer.

    Only the entries that the layers name are read, each after its header has been checked
    (reference.files.NpzReader); no pickle is ever loaded.  An array NAME may be used by one
    layer only: tied parameters are not part of the format (their gradients would be
    ambiguous), so a file where two layers name the same array is refused.
    Returns the Network; with `with_names`, also a dict from each parameter array's name
    in the file to the network's own parameter name 'layer{i}.{key}'."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"model: {path} is a directory, expected a model file (.npz)")
    if not path.is_file():
        raise FileNotFoundError(f"model: no file at {path}")
    try:
        if file_kind(path) != "npz":            # e.g. a .pth: say what it is and what reads it
            raise FileError(path)
        reader = NpzReader(path, "model")
    except FileError:
        raise ModelFileError(f"model: {path} is not a model file: it is {describe(path)} "
                             "(model files are .npz archives written by save_model)") from None
    with reader:
        for key in ("format", "layers"):
            if key not in reader:
                raise ModelFileError(f"{path}: entry {key!r} is missing: not a model file "
                                     f"(it is {describe(path)} with entries {reader.names[:8]})")
        header = {}
        for key in ("format", "layers"):
            try:
                header[key] = reader[key]
            except FileError as exc:
                raise ModelFileError(str(exc)) from None
            if header[key].dtype.kind != "U" or header[key].ndim != 0:
                raise ModelFileError(f"{path}: entry {key!r} should be a string")
        if str(header["format"]) not in FORMATS:
            raise ModelFileError(f"{path}: format is {str(header['format'])!r}, expected one "
                                 f"of {list(FORMATS)}")
        try:
            entries = json.loads(str(header["layers"]))
        except ValueError as exc:
            raise ModelFileError(f"{path}: entry 'layers' is not valid JSON ({exc})") from None
        if not isinstance(entries, list) or not entries:
            raise ModelFileError(f"{path}: entry 'layers' should be a non-empty JSON list")
        layers, names, owner = [], {}, {}
        for i, entry in enumerate(entries):
            where = (f"{path}: layer {i} "
                     f"({entry.get('type') if isinstance(entry, dict) else entry})")
            for name in _array_names(entry):
                if name in owner:
                    raise ModelFileError(
                        f"{where}: array {name!r} is already used by layer {owner[name]}; "
                        "each array may be named by one layer only (tied parameters are not "
                        "supported)")
                owner[name] = i
            try:
                layers.append(_build_layer(entry, reader, where))
            except ModelFileError:
                raise
            except ValueError as exc:
                raise ModelFileError(f"{where}: {exc}") from None
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

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model: no file at {path}")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:     # scipy raises many types for a damaged file
        raise ModelFileError(f"model: {path} is not a readable MATLAB file (it is "
                             f"{describe(path)}; {type(exc).__name__}: {exc})") from None
    if "weights" not in mat:
        raise ModelFileError(f"model: {path} has no variable 'weights' (expected a cell of "
                             f"weight matrices, as in the LipSDP repository; it holds "
                             f"{sorted(k for k in mat if not k.startswith('__'))})")
    cells = np.asarray(mat["weights"]).ravel()
    layers = []
    try:
        for i, w in enumerate(cells):
            w = np.asarray(w, dtype=np.float64)
            layers.append(Dense(w))
            layers.append(make_activation(activation if i < len(cells) - 1 else "identity",
                                          w.shape[0]))
        return Network(layers)
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"model: {path}: the cell 'weights' should hold real weight "
                             f"matrices whose shapes chain ({exc})") from None
