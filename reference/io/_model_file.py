"""The model file (the README's section *Model file*): one .npz, format 'deepspline-reference/1'.

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
reference.nn._network.layer_types()): this module knows the file, not the kinds.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from reference.exceptions import FileError, ModelFileError
from reference.io._files import NpzReader, describe, file_kind, write_npz
from reference.nn._network import Dense, Network, layer_types, make_activation

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


def save_model(net: Network, path: str | os.PathLike[str], arg: str = "path") -> Path:
    """Write a network to a model file, atomically.

    Parameters
    ----------
    net : Network
        The network; every layer is validated as `load_model` would validate it, before
        anything is written.
    path : str or os.PathLike
        The file to write, exactly this name (no ``.npz`` appended).
    arg : str, default='path'
        The name of the argument that gave `path` (e.g. a command-line flag), used in
        error messages.

    Returns
    -------
    path : pathlib.Path
        The path written.

    Raises
    ------
    ModelFileError
        A ValueError, if a layer would not load back (the message names the layer);
        nothing is written then.
    FileError
        A ValueError, if `path` cannot be written (a directory, a missing directory, no
        space left); the target is then unchanged.

    See Also
    --------
    load_model : Read the file back.
    atomic_write : How the file is written.

    Notes
    -----
    The file is an ``.npz`` whose entry ``format`` holds the format string and entry
    ``layers`` a JSON list, one object per layer (see the module docstring and the
    README's section *Model file*).  It is written as ``'deepspline-reference/2'`` when a
    layer needs it (a ``knot_spline`` layer), else as ``'deepspline-reference/1'``, so that
    readers of version 1 keep reading it.  The write goes to a temporary file beside the
    target, is fsynced and renamed over it; the target keeps its permissions.

    Examples
    --------
    >>> import os, tempfile
    >>> from reference.nn import build_mlp
    >>> from reference.io import load_model, save_model
    >>> net = build_mlp([2, 3, 1], rng=0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_model(net, os.path.join(tmp, "model.npz"))
    ...     same = load_model(path)
    >>> [layer.kind for layer in same.layers]
    ['dense', 'spline', 'dense', 'identity']
    >>> x = [[0.5, -0.25]]
    >>> bool((same(x) == net(x)).all())
    True
    """
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
    """The layer of one entry, by its class in reference.nn._network.layer_types()."""
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


@overload
def load_model(path: str | os.PathLike[str], with_names: Literal[False] = False) -> Network: ...
@overload
def load_model(path: str | os.PathLike[str],
               with_names: Literal[True]) -> tuple[Network, dict[str, str]]: ...
@overload
def load_model(path: str | os.PathLike[str],
               with_names: bool = False) -> Network | tuple[Network, dict[str, str]]: ...
def load_model(path: str | os.PathLike[str],
               with_names: bool = False) -> Network | tuple[Network, dict[str, str]]:
    """Read and validate a model file; every error names the file and the layer.

    Parameters
    ----------
    path : str or os.PathLike
        The model file (an ``.npz`` written by `save_model`, format
        ``'deepspline-reference/1'`` or ``'/2'``).
    with_names : bool, default=False
        Also return the names of the parameter arrays.

    Returns
    -------
    net : Network
        The network the file describes.
    names : dict of str to str
        Only when `with_names`: each parameter array's name in the file -> the network's
        own parameter name ``'layer{i}.{key}'`` (as `Network.named_params` gives it).

    Raises
    ------
    FileNotFoundError
        If there is no file at `path`.
    ModelFileError
        A ValueError, if `path` is a directory or not a model file (the message says what
        it is instead, e.g. a PyTorch checkpoint), or an entry breaks the format: missing or
        non-real arrays, wrong dimensions, NaN or inf, unknown layer types, widths that do
        not chain, an array named by two layers.  The message names the layer.

    See Also
    --------
    save_model : Write a model file.

    Notes
    -----
    Only the entries that the layers name are read, each after its header has been checked
    against the bytes the archive holds; no pickle is ever loaded.  An array NAME may be
    used by one layer only: tied parameters are not part of the format (their gradients
    would be ambiguous), so a file where two layers name the same array is refused.

    Examples
    --------
    >>> import os, tempfile
    >>> from reference.nn import build_mlp
    >>> from reference.io import load_model, save_model
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_model(build_mlp([2, 1], activation="relu", rng=0),
    ...                       os.path.join(tmp, "model.npz"))
    ...     net, names = load_model(path, with_names=True)
    >>> net.n_in, net.n_out
    (2, 1)
    >>> names
    {'layer0.weight': 'layer0.weight', 'layer0.bias': 'layer0.bias'}
    """
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


def network_from_mat(path: str | os.PathLike[str], activation: str = "relu") -> Network:
    """Build a bias-free network from the weights in a MATLAB file (LipSDP's layout).

    Parameters
    ----------
    path : str or os.PathLike
        A MATLAB ``.mat`` file whose cell ``weights`` holds :math:`W_1, \\dots, W_L`, each
        of shape (n_out, n_in), as in the LipSDP repository.
    activation : str, default='relu'
        The activation between the dense layers: any kind `reference.nn.make_activation`
        builds (``'relu'``, ``'leaky_relu'``, ``'spline'``, ...), with its default options.

    Returns
    -------
    net : Network
        Dense layers without bias, `activation` after each but the last, and an identity
        output: :math:`f(x) = W_L \\sigma(\\cdots \\sigma(W_1 x))`.

    Raises
    ------
    FileNotFoundError
        If there is no file at `path`.
    ModelFileError
        A ValueError, if the file is not a readable MATLAB file, has no variable
        ``weights``, or its matrices are not real or their shapes do not chain.

    References
    ----------
    .. [1] M. Fazlyab, A. Robey, H. Hassani, M. Morari, G. J. Pappas, "Efficient and
       Accurate Estimation of Lipschitz Constants for Deep Neural Networks", NeurIPS 2019
       (LipSDP; its repository stores the weights this way).
    """
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
    layers: list[Any] = []
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
