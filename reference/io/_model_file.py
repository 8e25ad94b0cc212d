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
Each layer class writes and reads its own entry (`to_entry` / `from_entry`, the registry
reference.network.layer_types()): this module knows the file, not the kinds.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from reference.nn._network import Dense, Network, layer_types, make_activation
from reference.io._files import NpzReader, describe, file_kind, write_npz
from reference.exceptions import FileError, ModelFileError

FORMAT = "deepspline-reference/1"
FORMAT_KNOTS = "deepspline-reference/2"
FORMATS = (FORMAT, FORMAT_KNOTS)       # FORMATS[v - 1]: version v (a class's format_version)


def layer_entries(net: Network) -> tuple[list, dict]:
    """The JSON layer list and the arrays (name -> array) describing `net`."""
    arrays: dict[str, np.ndarray]                # name -> array
    entries, arrays = [], {}
    for i, layer in enumerate(net.layers):
        entries.append(layer.to_entry(_putter(arrays, i)))
    return entries, arrays


def _putter(arrays: dict, i: int):
    """put(key, value) for layer i's `to_entry`: stores value (as float64) in arrays under
    the NAME 'layer{i}.{key}' and returns that NAME."""
    def put(key, value):
        name = f"layer{i}.{key}"
        arrays[name] = np.asarray(value, dtype=np.float64)
        return name
    return put


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
    types = layer_types()
    version = FORMATS[max(types[e["type"]].format_version for e in entries) - 1]
    return write_npz(path, {"format": np.array(version), "layers": np.array(json.dumps(entries)),
                            **arrays}, arg=arg)




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


class EntryReader:
    """One layer entry being read, for the layer classes' `from_entry`: its fields validated
    (`array`, `number`), and errors (`error`) naming the layer as `where`."""

    def __init__(self, entry: dict, data, where: str):
        self.entry, self.data, self.where = entry, data, where

    def array(self, key: str, ndim: int) -> np.ndarray:
        """The array the field `key` names: present, real, ndim-D, finite, as float64."""
        return _array(self.data, self.entry.get(key), self.where, ndim)

    def number(self, key: str) -> float:
        """The field `key`: a finite number (not a bool)."""
        return _number(self.entry, key, self.where)

    def error(self, message: str) -> ModelFileError:
        """The error to raise for a bad entry: '{where}: {message}'."""
        return ModelFileError(f"{self.where}: {message}")


def _build_layer(entry, data, where):
    """The layer of one entry, by its class in reference.network.layer_types()."""
    if not isinstance(entry, dict) or "type" not in entry:
        raise ModelFileError(f"{where}: expected an object with a 'type'")
    kind = entry["type"]
    types = layer_types()
    if not isinstance(kind, str) or kind not in types:
        expected = list(types)
        raise ModelFileError(f"{where}: unknown layer type {kind!r} (expected "
                             f"{', '.join(expected[:-1])} or {expected[-1]})")
    return types[kind].from_entry(EntryReader(entry, data, where))


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
        owner: dict[str, int]                    # array name -> the layer that names it
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
