"""DeepSplines (PyTorch) checkpoints as model files (`import-deepsplines`).

Reads what the published `deepsplines` package (1.0.0) writes:
- a checkpoint of its training loop (Project.save_network): a dict with `model_state` (the
  network's state dict) and `params` (params['net'] names the network; params['model'] holds
  activation_type, spline_size, spline_range, num_hidden_layers, ...).  The layer order is
  the named network's forward (registry NETWORKS), not the key order: in twoDnet the
  activations are a ModuleList registered after fc1, fc2 and fc_last;
- a plain `torch.save(net.state_dict())`: the order is given (`layers`, e.g.
  'fc1,act1,fc2,sigmoid'), or read from the key order when that cannot mislead: dense and
  stateful activation modules alternate, starting and ending with a dense one, and no
  Sequential index is skipped (a skipped index is a stateless module, e.g. nn.ReLU).

Modules, recognised by their parameter names (MODULE_KINDS), C neurons, K = spline size:
    nn.Linear    weight (N_out, N_in), bias (N_out,) or absent          -> dense
    nn.PReLU     weight (1,) or (C,)                                     -> prelu (C slopes)
    DeepBSpline  _coefficients_vect (C*K,), row-major (C, K)             -> spline
    DeepBSplineExplicitLinear: the same plus spline_weight b1 (C,) and spline_bias b0 (C,)
                 (absent when built with bias=False: b0 = 0);
                 sigma(x) = sum_k c_k beta1((x - x_min)/T - k) + b1 x + b0
                 -> spline with coefficients c_k + b1 t_k + b0 (a line is its own
                 interpolant, so only rounding changes; the end slopes gain b1 as well)
    DeepReLUSpline: _relu_slopes a (C, K-2), spline_weight b1, spline_bias b0;
                 sigma(x) = b0 + b1 x + sum_k a_k (x - tau_k)_+,
                 tau = torch.linspace(-T (n//2), T (n//2), n) (n = K - 2, build dtype)
                 -> knot_spline through tau_0 - T, tau_0 .. tau_{n-1}, tau_{n-1} + T
    stateless, named in the order: relu, leaky_relu[:SLOPE] (0.01 as nn.LeakyReLU),
    identity, and sigmoid (last only): never a layer, stated as the logistic link (the
    model file outputs the logit).

Grid (DeepSplines' ds_utils.spline_grid_from_range and DeepSplineBase.__init__):
    T = ((R / (K // 2)) // 1e-6) * 1e-6     (Python floats; R = spline_range)
kept as torch.Tensor([T]), i.e. in torch's default dtype when the module was built
(`grid_dtype`: float32 unless torch.set_default_dtype was changed), and .double() does not
convert it: R = 1, K = 21 gives T = 0.09999999999999999, held as 0.10000000149011612.
Coefficient k sits at t_k = x_min + k T with x_min = -(K // 2) T (DeepSplines' left clamp,
formed in float64 from T).  The checkpoint holds no grid: it is recomputed from
params['model'] (spline_size, spline_range), or from `spline_range` / `spline_grid` (K from
the shapes) for a plain state dict.  A float64 step instead would move grid point t_k by
|k - K//2| |T32 - T64| (up to 1.5e-8 for R = 1, K = 21) and the outputs by that times the
slopes (3.5e-9 on a twoDnet after one epoch, 1.5e-6 with random N(0, 1) coefficients).

One deviation of DeepSplines' own forward is not copied: beyond the grid ends it adds its
linear extrapolation from the offsets T (K//2) and T (K//2 - 1) computed in the grid's dtype,
so with a float32 grid its activations jump by |end slope| * |fl32(h) - h| at t_0 and t_{K-2}.
The model file holds the continuous spline; `extrapolation_gap` is that largest jump.

torch is imported only when a file is read (the optional [torch] extra); checkpoints are
read with torch.load(weights_only=True), which loads tensors and plain containers only, and
with weights_only=False only when asked (`unsafe_pickle`: that can run code from the file).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reference._format import exact
from reference.io._files import describe, file_kind
from reference.nn._linear_spline import LinearSpline
from reference.nn._network import (
    ACTIVATION_TYPES,
    Dense,
    KnotSplineActivation,
    Network,
    PReLU,
    SplineActivation,
)

TORCH_INSTALL = ("pip install torch==2.13.0, then pip install --no-deps deepsplines (the "
                 "project's [torch] extra; --no-deps keeps out torchvision, which DeepSplines "
                 "needs only for its CIFAR/MNIST loaders)")
GRID_DTYPES = ("float32", "float64")
GRID_ROUND = 1e-6                  # ds_utils.spline_grid_from_range(round_to=1e-6)
LEAKY_SLOPE = 0.01                 # nn.LeakyReLU's default negative_slope
CHECK_RTOL = 1e-12                 # the activation re-evaluation: |diff| <= this * max(1, |sigma|)
CONV_NETWORKS = ("resnet32_cifar", "nin_cifar", "convnet_mnist")
STATELESS = ("relu", "leaky_relu", "identity", "sigmoid")

# module kind -> (required parameter names, optional ones); nn.Linear and nn.PReLU share
# `weight` and are told apart by its dimension
MODULE_KINDS = {
    "linear": ({"weight"}, {"bias"}),
    "deepBspline": ({"_coefficients_vect"}, set()),
    "deepBspline_explicit_linear": ({"_coefficients_vect", "spline_weight"}, {"spline_bias"}),
    "deepReLUspline": ({"_relu_slopes", "spline_weight"}, {"spline_bias"}),
}
DEEPSPLINE_KINDS = ("deepBspline", "deepBspline_explicit_linear", "deepReLUspline")


@dataclass(frozen=True)
class LayerItem:
    """One entry of a layer order: a module of the state dict (`module`), or a stateless
    activation (`kind` in STATELESS, `slope` for leaky_relu)."""
    module: str | None = None
    kind: str | None = None
    slope: float | None = None

    def __str__(self):
        if self.module is not None:
            return self.module
        return f"{self.kind}:{self.slope:g}" if self.kind == "leaky_relu" else self.kind


@dataclass
class ImportedLayer:
    """What one layer of the model file came from."""
    index: int
    source: str             # state-dict module name, or the stateless item
    module: str             # linear, prelu, deepBspline, ..., relu, leaky_relu, identity
    type: str               # the model file's layer type
    shapes: dict            # parameter name -> shape in the checkpoint
    grid: dict | None = None   # splines: size, step, x_min, dtype, extrapolation_gap


@dataclass
class ActivationCheck:
    """The imported activations against DeepSplines' formulas re-evaluated in NumPy."""
    points: int             # probe points per neuron (grid points, midpoints, outside)
    max_error: float
    tolerance: float
    passed: bool


@dataclass
class ImportResult:
    """What `import_deepsplines` returns: the network and how it was read (see its Returns)."""
    network: Network
    source: str             # 'training checkpoint' or 'state dict'
    net_name: str | None    # params['net'] of a training checkpoint
    order: list             # the layer order used (str of each LayerItem)
    order_from: str
    layers: list            # ImportedLayer per model-file layer
    link: str | None        # 'logistic' when the torch forward ends in a sigmoid
    check: ActivationCheck
    loaded_with: str
    notes: list = field(default_factory=list)

    @property
    def extrapolation_gap(self) -> float:
        return max([layer.grid["extrapolation_gap"] for layer in self.layers if layer.grid]
                   + [0.0])


# ------------------------------------------------------------------------------ grid
def deepsplines_step(size: int, range_: float | None = None, grid: float | None = None,
                     dtype: str = "float32") -> float:
    """Return DeepSplines' grid step T as its modules hold it.

    Parameters
    ----------
    size : int
        The spline size K (coefficients per neuron), odd and >= 3.
    range_ : float or None, default=None
        DeepSplines' ``spline_range`` R; exactly one of `range_` and `grid` is given.
    grid : float or None, default=None
        The step itself (DeepSplines' ``spline_grid``).
    dtype : {'float32', 'float64'}, default='float32'
        torch's default dtype when the module was built: the step is rounded to it.

    Returns
    -------
    step : float
        T, a finite number > 0, rounded to `dtype` and returned as a Python float.

    Raises
    ------
    ValueError
        If `dtype` is not one of the two, both or neither of `range_` and `grid` are given,
        `size` is not an odd integer >= 3, or the step is not a finite number > 0.

    Notes
    -----
    From a range, as ``ds_utils.spline_grid_from_range`` does in Python floats:

    .. math::

        T = \\left\\lfloor \\frac{R / \\lfloor K/2 \\rfloor}{10^{-6}} \\right\\rfloor
            \\cdot 10^{-6},

    then kept as ``torch.Tensor([T])``, i.e. in `dtype`: R = 1, K = 21 gives
    T = 0.09999999999999999, held as 0.10000000149011612 in float32.  Coefficient k then
    sits at :math:`t_k = (k - \\lfloor K/2 \\rfloor) T`.

    Examples
    --------
    >>> from reference.io import deepsplines_step
    >>> deepsplines_step(21, range_=1.0)
    0.10000000149011612
    >>> deepsplines_step(21, range_=1.0, dtype="float64")
    0.09999999999999999
    """
    if dtype not in GRID_DTYPES:
        raise ValueError(f"grid_dtype: expected one of {list(GRID_DTYPES)}, got {dtype!r}")
    if (range_ is None) == (grid is None):
        raise ValueError("spline_range / spline_grid: give exactly one of them")
    if size < 3 or size % 2 == 0:
        raise ValueError(f"spline size: DeepSplines needs an odd size >= 3, got {size}")
    value = float(grid) if grid is not None else (
        (float(range_)  # type: ignore[arg-type]  # given when grid is not (checked above)
         / (size // 2)) // GRID_ROUND) * GRID_ROUND
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"spline_range / spline_grid: the step should be a finite number > 0, "
                         f"got {exact(value)} (range {exact(range_)}, grid {exact(grid)}, "
                         f"size {size})")
    return float(np.float32(value)) if dtype == "float32" else value


def extrapolation_gap(coefficients: np.ndarray, step: float, dtype: str) -> float:
    """Largest jump of DeepSplines' forward at its grid ends: |end slope| * |fl(h) - h| with
    h = T (K//2) (left) and T (K//2 - 1) (right) and fl the rounding of the grid's dtype."""
    if dtype == "float64":
        return 0.0
    n = coefficients.shape[1] // 2
    gaps = []
    for h_steps, slope in ((n, coefficients[:, 1] - coefficients[:, 0]),
                           (n - 1, coefficients[:, -1] - coefficients[:, -2])):
        h32 = float(np.float32(step) * np.float32(h_steps))
        gaps.append(np.abs(slope / step) * abs(h32 - step * h_steps))
    return float(np.max(gaps))


# ------------------------------------------------------------------------------ orders
def parse_layer_order(text: str) -> list:
    """'fc1,activations.0,fc2,relu,fc_last,sigmoid' -> LayerItems (syntax only; the names
    are checked against the state dict later).  ValueError naming --layers."""
    parts = [part.strip() for part in str(text).split(",")]
    if not text or any(not part for part in parts):
        raise ValueError(f"--layers: expected comma-separated module names or relu, "
                         f"leaky_relu[:SLOPE], identity, sigmoid, got {text!r}")
    items = []
    for i, part in enumerate(parts):
        kind, _, arg = part.partition(":")
        if kind == "leaky_relu":
            try:
                slope = float(arg) if arg else LEAKY_SLOPE
            except ValueError:
                slope = None
            if slope is None or not np.isfinite(slope):
                raise ValueError(f"--layers: item {i} {part!r}: the slope after "
                                 f"'leaky_relu:' should be a finite number")
            items.append(LayerItem(kind="leaky_relu", slope=slope))
        elif arg:
            raise ValueError(f"--layers: item {i} {part!r}: only leaky_relu takes a value "
                             "(leaky_relu:SLOPE)")
        elif kind == "sigmoid" and i != len(parts) - 1:
            raise ValueError(f"--layers: item {i} 'sigmoid' should be the last item (it is "
                             "stated as the logistic link of the output, not a layer)")
        elif kind in STATELESS:
            items.append(LayerItem(kind=kind))
        else:
            items.append(LayerItem(module=part))
    modules = [item.module for item in items if item.module]
    repeated = sorted({m for m in modules if modules.count(m) > 1})
    if repeated:
        raise ValueError(f"--layers: module(s) {repeated} appear more than once (tied "
                         "parameters are not part of the model file)")
    return items


def _twodnet(model: dict) -> list:
    """twoDnet's forward: fc1, act 0, [fc2, act 1], fc_last, sigmoid (then squeeze(1))."""
    kind = model["activation_type"]

    def activation(i):
        if kind in DEEPSPLINE_KINDS:
            return LayerItem(module=f"activations.{i}")
        if kind in ("relu", "leaky_relu"):
            return LayerItem(kind=kind, slope=LEAKY_SLOPE if kind == "leaky_relu" else None)
        raise ValueError(f"params['model']['activation_type']: unknown value {kind!r}")

    items = [LayerItem(module="fc1"), activation(0)]
    if int(model["num_hidden_layers"]) > 1:
        items += [LayerItem(module="fc2"), activation(1)]
    return items + [LayerItem(module="fc_last"), LayerItem(kind="sigmoid")]


NETWORKS = {"twoDnet": _twodnet}      # params['net'] -> layer order from params['model']


def group_modules(state: dict) -> dict:
    """{module name: {parameter name: array}} in the state dict's order."""
    modules: dict[str, dict] = {}
    for key, value in state.items():
        name, _, param = key.rpartition(".")
        modules.setdefault(name, {})[param] = value
    return modules


def module_kind(name: str, params: dict) -> str:
    """The module kind (MODULE_KINDS or 'prelu') of a state-dict module, from its parameter
    names and the dimension of `weight`."""
    names = set(params)
    for kind, (required, optional) in MODULE_KINDS.items():
        if required <= names <= required | optional:
            if kind == "linear" and np.ndim(params["weight"]) == 1 and names == {"weight"}:
                return "prelu"
            if kind == "linear" and np.ndim(params["weight"]) != 2:
                break
            return kind
    shapes = {k: tuple(np.shape(v)) for k, v in params.items()}
    raise ValueError(f"module {name!r}: parameters {shapes} are not those of nn.Linear, "
                     "nn.PReLU or a DeepSplines activation (DeepBSpline, "
                     "DeepBSplineExplicitLinear, DeepReLUSpline); convolutional and other "
                     "modules cannot go into a model file")


def _skips_an_index(names: list) -> bool:
    """Names like a Sequential's ('0', '2' or 'net.0', 'net.2': the index is a whole path
    component, unlike 'fc1') with an index missing from 0, 1, 2, ...: a stateless module
    (nn.ReLU, ...) sits there."""
    found = [re.fullmatch(r"(.*\.)?(\d+)", n) for n in names]
    if not all(found) or len({m.group(1) or "" for m in found if m}) != 1:
        return False
    return [int(m.group(2)) for m in found if m] != list(range(len(names)))


def order_from_keys(modules: dict) -> list:
    """The layer order as the modules were registered, when that cannot mislead (see the
    module docstring); ValueError asking for --layers otherwise."""
    names = list(modules)
    kinds = [module_kind(n, modules[n]) for n in names]
    alternating = len(names) % 2 == 1 and all(
        (kind == "linear") == (i % 2 == 0) for i, kind in enumerate(kinds))
    skips = _skips_an_index(names)
    if not alternating or skips:
        reason = ("a skipped Sequential index hides a stateless module"
                  if skips else "dense and activation modules do not alternate")
        listing = ", ".join(f"{n} ({k})" for n, k in zip(names, kinds))
        raise ValueError(f"--layers: the key order cannot tell the layer order of this state "
                         f"dict ({reason}; modules {listing}); give the forward's order as "
                         "--layers NAME,NAME,... (these names and relu, leaky_relu[:SLOPE], "
                         "identity, sigmoid)")
    return [LayerItem(module=n) for n in names]


# ------------------------------------------------------------------------------ conversion
def _relu_spline_knots(num_relus: int, step: float, dtype: str) -> np.ndarray:
    """DeepReLUSpline's knot_loc: torch.linspace(-T (n//2), T (n//2), n) in the build dtype
    (torch's own linspace, so the float32 rounding is the module's)."""
    torch = import_torch()
    left = -step * (num_relus // 2)
    return torch.linspace(left, -left, num_relus,
                          dtype=getattr(torch, dtype)).to(torch.float64).numpy()


def _linear(name, params, width, grid):
    return Dense(params["weight"], params.get("bias")), None


def _prelu(name, params, width, grid):
    slope = np.asarray(params["weight"], dtype=np.float64)
    if slope.shape == (1,) and width is not None:
        slope = np.full(width, slope[0])
    return PReLU(slope), None


def _size_of(name, params, key, width, extra=0):
    """(C, K) from a flat (C*K,) or a (C, K - extra) parameter and the layer width C."""
    arr = np.asarray(params[key])
    if arr.ndim == 2:
        if width is not None and arr.shape[0] != width:
            raise ValueError(f"module {name!r}: {key} has {arr.shape[0]} rows, but the layer "
                             f"before gives width {width}")
        return arr.shape[0], arr.shape[1] + extra
    if width is None or arr.size % width:
        raise ValueError(f"module {name!r}: {key} has {arr.size} entries, which is not a "
                         f"multiple of the layer width {width}")
    return width, arr.size // width


def _spline_grid(name, grid, size) -> dict:
    """size, step, x_min and dtype of a DeepSplines activation with `size` coefficients."""
    if grid.get("size") is not None and grid["size"] != size:
        raise ValueError(f"module {name!r}: params['model']['spline_size'] is {grid['size']}, "
                         f"but its parameters give {size} per neuron")
    step = deepsplines_step(size, grid.get("range_"), grid.get("grid"), grid["dtype"])
    return {"size": size, "step": step, "x_min": -(step * (size // 2)), "dtype": grid["dtype"]}


def _bspline(name, params, width, grid):
    num, size = _size_of(name, params, "_coefficients_vect", width)
    info = _spline_grid(name, grid, size)
    step, x_min = info["step"], info["x_min"]
    coefficients = np.asarray(params["_coefficients_vect"], dtype=np.float64).reshape(num, size)
    LinearSpline(coefficients, x_min, step)          # validates the step and values first
    info["extrapolation_gap"] = extrapolation_gap(coefficients, step, grid["dtype"])
    if "spline_weight" in params:          # explicit linear term b1 x + b0 on the grid
        b0 = np.asarray(params.get("spline_bias", np.zeros(num)), dtype=np.float64)
        coefficients = (coefficients + np.asarray(params["spline_weight"])[:, None]
                        * (x_min + step * np.arange(size)) + b0[:, None])
    return SplineActivation(LinearSpline(coefficients, x_min, step)), info


def _relu_spline(name, params, width, grid):
    num, size = _size_of(name, params, "_relu_slopes", width, extra=2)
    info = _spline_grid(name, grid, size)
    tau = _relu_spline_knots(size - 2, info["step"], grid["dtype"])
    points = np.concatenate([[tau[0] - info["step"]], tau, [tau[-1] + info["step"]]])
    values = deepsplines_formula("deepReLUspline", params, points, tau, info["step"])
    info.update(x_min=float(tau[0]), extrapolation_gap=0.0)
    return KnotSplineActivation([points] * num, list(values.T)), info


def deepsplines_formula(kind: str, params: dict, x: np.ndarray, t: np.ndarray,
                        step: float) -> np.ndarray:
    """DeepSplines' activations of one module at x (P,) for its C neurons, (P, C), from
    the formulas of the module docstring, in float64: the ReLU form
    sum_k a_k (x - t_k)_+ for deepReLUspline (t: its knots); otherwise the B-spline
    expansion, np.interp through (t_k, c_k) continued with the end slopes (t: the K grid
    points); plus b1 x + b0 for the variants with a linear term."""
    column = x[:, None]
    if kind == "deepReLUspline":
        y = np.maximum(column - t[None, :], 0.0) @ np.asarray(params["_relu_slopes"]).T
    else:
        c = np.asarray(params["_coefficients_vect"]).reshape(-1, len(t))
        y = np.stack([np.interp(x, t, row) for row in c], axis=1)
        left = c[:, 0] + (column - t[0]) * ((c[:, 1] - c[:, 0]) / step)
        right = c[:, -1] + (column - t[-1]) * ((c[:, -1] - c[:, -2]) / step)
        y = np.where(column < t[0], left, np.where(column > t[-1], right, y))
    if "spline_weight" in params:
        y = y + column * params["spline_weight"] + params.get("spline_bias", 0.0)
    return y


CONVERTERS = {"linear": _linear, "prelu": _prelu, "deepBspline": _bspline,
              "deepBspline_explicit_linear": _bspline, "deepReLUspline": _relu_spline}


def _check_placed(modules: dict, order: list, what: str) -> None:
    """Every module of the state dict placed once, and only those."""
    named = [item.module for item in order if item.module]
    unknown = [m for m in named if m not in modules]
    if unknown:
        raise ValueError(f"{what}: {unknown} are not modules of the state dict (it has "
                         f"{list(modules)}; stateless items: relu, leaky_relu[:SLOPE], "
                         "identity, sigmoid)")
    unused = [m for m in modules if m not in named]
    if unused:
        raise ValueError(f"{what}: the state dict's module(s) {unused} are not in the order "
                         f"{[str(i) for i in order]}; every module must be placed")


def _convert(item, modules, width, grid):
    """(layer, kind, grid info, parameter shapes) of one item of the order."""
    if item.module is None:
        layer = ACTIVATION_TYPES[item.kind].fresh(width, slope=item.slope)
        return layer, item.kind, None, {}
    params = modules[item.module]
    kind = module_kind(item.module, params)
    if kind in DEEPSPLINE_KINDS:
        expected = grid.get("activation_type")
        if expected and kind != expected:
            raise ValueError(f"module {item.module!r} holds a {kind} activation, but "
                             f"params['model']['activation_type'] is {expected!r}")
        if grid.get("range_") is None and grid.get("grid") is None:
            raise ValueError(f"--spline-range: module {item.module!r} is a DeepSplines "
                             "activation, and a state dict does not hold its grid: give "
                             "--spline-range R (DeepSplines' range_, 4 by default) or "
                             "--spline-grid T")
    try:
        layer, info = CONVERTERS[kind](item.module, params, width, grid)
    except ValueError as exc:
        message = str(exc)
        raise ValueError(message if message.startswith(("module", "spline"))
                         else f"module {item.module!r}: {message}") from None
    return layer, kind, info, {k: list(np.shape(v)) for k, v in params.items()}


def build_network(state: dict, order: list, grid: dict, what: str = "--layers"):
    """(Network, [ImportedLayer], link, modules) from a state dict of float64 arrays and a
    layer order.  grid: {'range_' or 'grid', 'dtype', optional 'size' and
    'activation_type'} for the DeepSplines activations."""
    modules = group_modules(state)
    _check_placed(modules, order, what)
    link = "logistic" if order and order[-1].kind == "sigmoid" else None
    items = order[:-1] if link else order
    if not items:
        raise ValueError(f"{what}: the order {[str(i) for i in order]} holds no layer")
    dense = [modules[i.module]["weight"] for i in items
             if i.module and module_kind(i.module, modules[i.module]) == "linear"]
    width = dense[0].shape[1] if dense else None       # width in front of the first layer
    layers, imported = [], []
    for index, item in enumerate(items):
        layer, kind, info, shapes = _convert(item, modules, width, grid)
        layers.append(layer)
        width = layer.n_out if layer.n_out is not None else width
        imported.append(ImportedLayer(index, str(item), kind, layer.kind, shapes, info))
    try:
        net = Network(layers)
    except ValueError as exc:
        raise ValueError(f"{what}: the layers do not chain in the order "
                         f"{[str(i) for i in order]} ({exc})") from None
    return net, imported, link, modules


# ------------------------------------------------------------------------------ the check
def check_activations(net: Network, imported: list, modules: dict) -> ActivationCheck:
    """Each imported DeepSplines activation against deepsplines_formula (an independent
    NumPy evaluation: np.interp on t_k = (k - K//2) T, or the ReLU sum) at the grid points
    (knots), the midpoints and 0.5 T and 3 T beyond each end.  Passes when every
    |difference| <= CHECK_RTOL * max(1, max |sigma|)."""
    worst, scale, points = 0.0, 1.0, 0
    for record in imported:
        if record.grid is None:
            continue
        step, size, dtype = record.grid["step"], record.grid["size"], record.grid["dtype"]
        t = (_relu_spline_knots(size - 2, step, dtype) if record.module == "deepReLUspline"
             else (np.arange(size) - size // 2) * step)
        x = np.concatenate([t, (t[:-1] + t[1:]) / 2, t[0] - step * np.array([0.5, 3.0]),
                            t[-1] + step * np.array([0.5, 3.0])])
        expected = deepsplines_formula(record.module, modules[record.source], x, t, step)
        layer = net.layers[record.index]
        ours = layer.forward(np.repeat(x[:, None], layer.n_in, axis=1))[0]
        worst = max(worst, float(np.max(np.abs(ours - expected))))
        scale = max(scale, float(np.max(np.abs(expected))))
        points = max(points, len(x))
    return ActivationCheck(points, worst, CHECK_RTOL * scale, worst <= CHECK_RTOL * scale)


# ------------------------------------------------------------------------------ files
def import_torch():
    """torch, or ImportError saying how to install it."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError(f"import-deepsplines needs PyTorch, which cannot be imported "
                          f"({exc}): {TORCH_INSTALL}") from None
    return torch


UNSAFE_PICKLE_RISK = ("--unsafe-pickle loads it with torch.load(weights_only=False), which runs "
                      "the code the file's pickle names (arbitrary code execution)")
_TORCH_BOILERPLATE = ("Weights only load failed", "(1)", "(2)", "Check the documentation")


def load_failure(exc: Exception, path, arg: str = "CKPT") -> str:
    """The one-line message for torch.load's failure `exc` on `path`.

    When torch.load(weights_only=True) refuses a global of the file's pickle (nothing of the
    file has run then), the message names that global, the flag --unsafe-pickle and what the
    flag risks.  A global of a module torch blocks outright (os, posix, nt, sys: the
    operating system, e.g. os.system running a shell command) is never needed by a
    checkpoint, and the message says not to use the flag on that file."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line]
    reason = next((line.removeprefix("WeightsUnpickler error:").strip() for line in lines
                   if not line.startswith(_TORCH_BOILERPLATE)), lines[0] if lines else "")
    if not any(line.startswith("Weights only load failed") for line in lines):
        return f"{arg}: {path} cannot be read by torch.load ({type(exc).__name__}: {reason})"
    blocked = re.search(r"GLOBAL (\S+) whose module (\S+?)\.? is blocked", reason)
    if blocked:
        name, module = blocked.groups()
        return (f"{arg}: {path} was refused before anything in it ran: its pickle names the "
                f"global {name} (module {module}, which torch.load blocks outright: it gives "
                f"a pickle the operating system, e.g. shell commands); {UNSAFE_PICKLE_RISK}, "
                f"here {name} with the file's arguments: no DeepSplines checkpoint names it; "
                "do not use --unsafe-pickle on this file")
    found = re.search(r"Unsupported global: GLOBAL (\S+)", reason)
    if found:
        return (f"{arg}: {path} holds Python objects beyond tensors and plain containers (the "
                f"global {found.group(1)}), which torch.load(weights_only=True) does not load; "
                f"if the file comes from a source you trust, {UNSAFE_PICKLE_RISK}")
    return (f"{arg}: {path} cannot be read by torch.load(weights_only=True) ({reason}); if "
            f"the file comes from a source you trust, {UNSAFE_PICKLE_RISK}")


def read_checkpoint(path, unsafe_pickle: bool = False, arg: str = "CKPT"):
    """(state dict as float64 NumPy arrays, params or None, how it was loaded) of a
    torch.save file, read on the CPU with torch.load(weights_only=True) (tensors and plain
    containers only), or weights_only=False when `unsafe_pickle` (which runs whatever code
    the file's pickle names).  A training checkpoint gives its model_state and params."""
    path = Path(path)
    if not path.is_file():
        raise (ValueError(f"{arg}: {path} is not a file, expected a PyTorch checkpoint")
               if path.exists() else FileNotFoundError(f"{arg}: no file at {path}"))
    if file_kind(path) != "torch":
        raise ValueError(f"{arg}: {path} is not a PyTorch checkpoint: it is {describe(path)}")
    torch = import_torch()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not unsafe_pickle)
    except Exception as exc:          # torch raises UnpicklingError, RuntimeError, ... here
        raise ValueError(load_failure(exc, path, arg)) from None
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    params = None
    if isinstance(obj, dict) and isinstance(obj.get("model_state"), dict):
        obj, params = obj["model_state"], obj.get("params")
        params = params if isinstance(params, dict) else None
    if not (isinstance(obj, dict) and obj
            and all(isinstance(v, torch.Tensor) for v in obj.values())):
        shown = list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{arg}: {path} holds {shown}: neither a DeepSplines training "
                         "checkpoint (model_state, params) nor a state dict (names -> tensors)")
    state = {key: (value.detach().cpu().to(torch.float64) if value.is_floating_point()
                   else value.detach().cpu()).numpy() for key, value in obj.items()}
    return state, params, f"torch.load(weights_only={not unsafe_pickle})"


def _grid_from_params(params: dict, spline_range, spline_grid) -> dict:
    """The grid entries of a training checkpoint's params['model']."""
    model = params.get("model")
    model = model if isinstance(model, dict) else {}
    missing = [k for k in ("activation_type", "spline_size", "spline_range") if k not in model]
    if missing:
        raise ValueError(f"CKPT: params['model'] lacks {missing}")
    if spline_range is not None or spline_grid is not None:
        raise ValueError(f"--spline-range / --spline-grid: this training checkpoint states its "
                         f"grid (spline_size {model['spline_size']}, spline_range "
                         f"{model['spline_range']}); they are for plain state dicts")
    return {"range_": model["spline_range"], "size": int(model["spline_size"]),
            "activation_type": model["activation_type"]}


def _order_of_network(params: dict) -> list:
    """The layer order of the network params['net'] names (registry NETWORKS)."""
    name = params.get("net")
    if name in CONV_NETWORKS:
        raise ValueError(f"CKPT: params['net'] is {name!r}, a convolutional network, which a "
                         "model file cannot hold (fully-connected networks only)")
    if name not in NETWORKS:
        raise ValueError(f"--layers: params['net'] is {name!r}, whose forward is not known "
                         f"here (known: {list(NETWORKS)}); give the layer order")
    return NETWORKS[name](params["model"])


def import_state(state: dict, params: dict | None = None, layers=None, spline_range=None,
                 spline_grid=None, grid_dtype: str = "float32") -> ImportResult:
    """A state dict of NumPy arrays (+ a training checkpoint's params) as a Network.

    layers: a layer order (str or LayerItems), needed when neither params nor the keys tell
    it; spline_range / spline_grid: the grid of a plain state dict's DeepSplines
    activations; grid_dtype: torch's default dtype when the activations were built."""
    if grid_dtype not in GRID_DTYPES:
        raise ValueError(f"--grid-dtype: expected one of {list(GRID_DTYPES)}, got {grid_dtype!r}")
    if spline_range is not None and spline_grid is not None:
        raise ValueError("--spline-range / --spline-grid: give one of them, not both")
    grid = {"dtype": grid_dtype, "range_": spline_range, "grid": spline_grid}
    if params is not None and params.get("net") in CONV_NETWORKS:
        _order_of_network(params)                      # refuses it, naming the network
    if params is not None:
        grid.update(_grid_from_params(params, spline_range, spline_grid))
    order = parse_layer_order(layers) if isinstance(layers, str) else layers
    notes = []
    if order is not None:
        order_from, what = "--layers", "--layers"
    elif params is not None:
        order = _order_of_network(params)
        order_from = what = f"the forward of params['net'] = {params['net']!r}"
    else:
        order = order_from_keys(group_modules(state))
        order_from, what = "the key order (modules as registered)", "--layers"
        notes.append("a state dict cannot show stateless modules after the last module with "
                     "parameters (e.g. a final nn.Sigmoid): if the network has one, give "
                     "--layers ...,sigmoid")
    net, imported, link, modules = build_network(state, order, grid, what)
    if params is not None and params.get("net") == "twoDnet":
        notes.append("DeepSplines' twoDnet returns sigmoid(logit).squeeze(1), shape (M,); the "
                     "model file returns the logit, shape (M, 1)")
    return ImportResult(net, "training checkpoint" if params is not None else "state dict",
                        params.get("net") if params else None, [str(i) for i in order],
                        order_from, imported, link, check_activations(net, imported, modules),
                        "", notes)


def import_deepsplines(path: str | os.PathLike[str], layers: str | list[LayerItem] | None = None,
                       spline_range: float | None = None, spline_grid: float | None = None,
                       grid_dtype: str = "float32", unsafe_pickle: bool = False) -> ImportResult:
    """Import a DeepSplines (PyTorch) checkpoint as a network of this package.

    Parameters
    ----------
    path : str or os.PathLike
        A ``torch.save`` file: a checkpoint of DeepSplines' training loop (a dict with
        ``model_state`` and ``params``) or a plain state dict.
    layers : str or list of LayerItem or None, default=None
        The layer order, e.g. ``'fc1,act1,fc2,sigmoid'`` (module names of the state dict and
        the stateless ``relu``, ``leaky_relu[:SLOPE]``, ``identity``, ``sigmoid`` (last
        only)).  None: the forward of the network ``params['net']`` names, or for a state
        dict the key order when that cannot mislead.
    spline_range : float or None, default=None
        DeepSplines' ``spline_range`` of a plain state dict's spline activations (a
        training checkpoint states its own).  At most one of `spline_range` and
        `spline_grid`.
    spline_grid : float or None, default=None
        The grid step of a plain state dict's spline activations, instead of a range.
    grid_dtype : {'float32', 'float64'}, default='float32'
        torch's default dtype when the activations were built (the grid step is held in
        it; see `deepsplines_step`).
    unsafe_pickle : bool, default=False
        Load with ``torch.load(weights_only=False)``, which runs the code the file's pickle
        names: only for files from a source you trust.

    Returns
    -------
    result : ImportResult
        ``network`` (the Network), ``source`` ('training checkpoint' or 'state dict'),
        ``net_name``, ``order`` and ``order_from`` (the layer order used and where it came
        from), ``layers`` (per model-file layer: the module it came from, its kind, the
        parameter shapes and, for splines, the grid), ``link`` ('logistic' when the torch
        forward ends in a sigmoid, which the model file leaves out: it outputs the logit),
        ``check`` (the imported activations against DeepSplines' formulas re-evaluated in
        NumPy: probe points, largest error, tolerance, passed), ``loaded_with``, ``notes``,
        and the property ``extrapolation_gap``.

    Raises
    ------
    ImportError
        If PyTorch cannot be imported (the optional ``[torch]`` extra).
    FileNotFoundError
        If there is no file at `path`.
    ValueError
        If the file is not a PyTorch checkpoint or ``torch.load`` refuses it (the message
        names the global of the pickle and what ``--unsafe-pickle`` would risk), the layer
        order cannot be told or does not chain, a module is not ``nn.Linear``,
        ``nn.PReLU`` or a DeepSplines activation, or a grid argument is missing or
        contradicts the checkpoint.

    Notes
    -----
    A DeepBSpline activation with coefficients :math:`c_k` on the grid
    :math:`t_k = x_{\\min} + kT`, :math:`x_{\\min} = -\\lfloor K/2 \\rfloor T`, is

    .. math::

        \\sigma(x) = \\sum_k c_k \\beta_1\\!\\left(\\frac{x - x_{\\min}}{T} - k\\right)
                     + b_1 x + b_0

    (:math:`b_1, b_0` only for DeepBSplineExplicitLinear), imported as a ``spline`` layer
    with coefficients :math:`c_k + b_1 t_k + b_0`; a DeepReLUSpline
    :math:`\\sigma(x) = b_0 + b_1 x + \\sum_k a_k (x - \\tau_k)_+` becomes a
    ``knot_spline`` layer.  DeepSplines' own forward jumps by up to
    ``result.extrapolation_gap`` at the grid ends with a float32 grid; the model file holds
    the continuous spline.  The module docstring gives the details.

    References
    ----------
    .. [1] P. Bohra, J. Campos, H. Gupta, S. Aziznejad, M. Unser, "Learning Activation
       Functions in Deep (Spline) Neural Networks", IEEE Open Journal of Signal
       Processing 1, 2020.
    """
    state, params, loaded_with = read_checkpoint(path, unsafe_pickle)
    result = import_state(state, params, layers, spline_range, spline_grid, grid_dtype)
    result.loaded_with = loaded_with
    return result
