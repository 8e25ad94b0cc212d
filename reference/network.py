"""Layers and networks with hand-written backpropagation (the losses: reference.losses).

Network: z_l = W_l y_{l-1} + b_l, y_l = sigma_l(z_l), stored as a flat list of layers
(Dense, then an activation, ...).  Arrays are row-major batches: an input batch is (M, N_0).
Every layer implements
    forward(x) -> (y, cache)                 x (M, N_in), y (M, N_out)
    backward(cache, grad_y, side=None) -> (grad_x, {param_name: grad})
    jacobian_step(cache, J, side=None) -> J'  J (M, N_in, N_0) -> (M, N_out, N_0)
and exposes `params` (name -> array, updated in place by optimisers).

One-sided derivatives (what the oracle needs at kinks): an activation layer lists its kinks
per neuron (`kinks`: positions, slopes left and right), says which pre-activations lie on
one (`on_kink`, within a tolerance) and, given `side` (M, N) int8 = -1 / +1, takes the
slope left / right of the nearest kink there instead of its own convention (the right
piece) in `backward` and `jacobian_step`.  Knows nothing of optimisers or cvxpy.

Registry: ACTIVATION_TYPES (kind -> class, filled by `register`) is the one list of the
activation kinds.  Each class answers for itself what used to be spread over if-chains:
its `kind`, a fresh layer (`fresh`, what make_activation builds), its model-file entry
(`to_entry`) and how to rebuild it from one (`from_entry`, with reference.io's validating
reader), its per-neuron constants (`constants`: Lip, TV2, BV2) and slope range
(`slope_range`).  Dense has `to_entry` / `from_entry` too (`layer_types()` adds it).
"""
from __future__ import annotations

from types import MappingProxyType

import numpy as np

from reference._checks import OverflowResult, as_finite_array, check_choice
from reference.regularisers import get as get_regulariser
from reference.spline import KnotSpline, LinearSpline

NO_PARAMS = MappingProxyType({})      # shared by the parameter-free layers, read-only


class Dense:
    """z = x W^T + b; weight (N_out, N_in), bias (N_out,) or None."""
    kind = "dense"
    format_version = 1       # the model-file format version that introduced the kind

    def __init__(self, weight, bias=None):
        weight = as_finite_array(weight, "weight", ndim=2)
        if min(weight.shape) < 1:
            raise ValueError(f"weight: expected shape (N_out, N_in) with N_out, N_in >= 1, "
                             f"got {weight.shape}")
        self.params = {"weight": weight}
        if bias is not None:
            bias = as_finite_array(bias, "bias", ndim=1)
            if bias.shape != (weight.shape[0],):
                raise ValueError(f"bias: expected shape ({weight.shape[0]},), got {bias.shape}")
            self.params["bias"] = bias

    @property
    def n_in(self):
        return self.params["weight"].shape[1]

    @property
    def n_out(self):
        return self.params["weight"].shape[0]

    def forward(self, x):
        z = x @ self.params["weight"].T
        if "bias" in self.params:
            z += self.params["bias"]
        return z, x

    def backward(self, x, grad_z, side=None):
        """grad_x = grad_z W, grad_W = grad_z^T x, grad_b = sum_m grad_z (no kinks: `side`
        is ignored)."""
        grads = {"weight": grad_z.T @ x}
        if "bias" in self.params:
            grads["bias"] = grad_z.sum(axis=0)
        return grad_z @ self.params["weight"], grads

    def jacobian_step(self, x, jac, side=None):
        return np.einsum("oi,mij->moj", self.params["weight"], jac)

    def to_entry(self, put) -> dict:
        """The model-file entry; put(key, array) stores an array and returns its NAME."""
        bias = put("bias", self.params["bias"]) if "bias" in self.params else None
        return {"type": "dense", "weight": put("weight", self.params["weight"]), "bias": bias}

    @classmethod
    def from_entry(cls, read):
        """The layer of a model-file entry; read.array(key, ndim) / read.number(key) are the
        validated fields, read.error(message) the error naming the layer."""
        weight = read.array("weight", 2)
        bias = read.entry.get("bias")
        if bias is not None:
            bias = read.array("bias", 1)
            if bias.shape != (weight.shape[0],):
                raise read.error(f"bias has shape {bias.shape}, expected "
                                 f"({weight.shape[0]},) to match weight {weight.shape}")
        return cls(weight, bias)


class Activation:
    """Neuron-wise activation: y = sigma(z); subclasses give sigma, sigma', parameters and
    their kinks.

    `derivative(z)` is sigma'(z) (M, N); at a breakpoint, the slope of the right piece."""
    n_in = n_out = None      # any width (spline and prelu fix theirs)
    kink_step = 0.0          # grid step T of a uniform spline (enters the kink tolerance)
    user_choice = True       # in ACTIVATIONS (made by make_activation)
    format_version = 1       # the model-file format version that introduced the kind

    @classmethod
    def fresh(cls, width: int, **options):
        """A fresh layer of this kind and width (options: see make_activation)."""
        return cls()

    def to_entry(self, put) -> dict:
        """The model-file entry (see Dense.to_entry)."""
        return {"type": self.kind}

    @classmethod
    def from_entry(cls, read):
        """The layer of a model-file entry (see Dense.from_entry)."""
        return cls()

    def constants(self, width: int) -> dict:
        """Per-neuron Lip, TV2 and BV2 = TV2 + |sigma(0)| + |sigma(1)|, each (width,)."""
        raise TypeError(f"layer: {type(self).__name__} gives no per-neuron constants")

    def slope_range(self, width: int) -> tuple:
        """Per-neuron [min slope, max slope] over all pieces, each (width,)."""
        raise TypeError(f"layer: {type(self).__name__} gives no slope range")

    def kinks(self, width: int) -> list:
        """Per neuron: (tau, left, right), the kinks (where the slope changes) sorted, (n_k,),
        and the slopes just left and right of each, (n_k,)."""
        raise NotImplementedError

    def on_kink(self, z, knot_tol: float) -> np.ndarray:
        """(M, N) bool: |z - tau| <= knot_tol * max(1, |tau|, T) for the nearest kink tau
        (T = `kink_step`, the grid step of a uniform spline, else 0)."""
        mask = np.zeros(z.shape, dtype=bool)
        for n, (tau, _, _) in enumerate(self.kinks(z.shape[1])):
            if len(tau):
                near = tau[nearest_index(tau, z[:, n])]
                scale = np.maximum(np.maximum(1.0, np.abs(near)), self.kink_step)
                mask[:, n] = np.abs(z[:, n] - near) <= knot_tol * scale
        return mask

    def derivative_at(self, z, side=None) -> np.ndarray:
        """sigma'(z) (M, N), except where side (M, N) int8 is -1 / +1: the slope left / right
        of the kink nearest to z."""
        d = self.derivative(z)
        if side is None or not np.any(side):
            return d
        d = np.array(d, dtype=np.float64)
        for n, (tau, left, right) in enumerate(self.kinks(z.shape[1])):
            rows = np.flatnonzero(side[:, n])
            if len(rows) and len(tau):
                j = nearest_index(tau, z[rows, n])
                d[rows, n] = np.where(side[rows, n] < 0, left[j], right[j])
        return d

    def backward(self, z, grad_y, side=None):
        return grad_y * self.derivative_at(z, side), {}

    def jacobian_step(self, z, jac, side=None):
        return self.derivative_at(z, side)[:, :, None] * jac

    def check_width(self, width):
        if self.n_in is not None and width != self.n_in:
            raise ValueError(f"{self.kind}: expected inputs of width {self.n_in}, got {width}")


def nearest_index(tau: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Index of the entry of the sorted tau (n,), n >= 1, nearest to each z (M,)."""
    if len(tau) == 1:
        return np.zeros(len(z), dtype=np.intp)
    j = np.clip(np.searchsorted(tau, z), 1, len(tau) - 1)
    return np.where(np.abs(z - tau[j - 1]) <= np.abs(tau[j] - z), j - 1, j)


def kinks_from_slopes(tau: np.ndarray, slopes: np.ndarray) -> tuple:
    """(tau, left, right) of a piecewise-linear function with breakpoints tau (n,) and piece
    slopes (n + 1,), keeping the breakpoints whose slope change exceeds the rounding of the
    slopes (16 eps max|slope|)."""
    jumps = np.diff(slopes)
    keep = np.abs(jumps) > 16 * np.finfo(np.float64).eps * np.abs(slopes).max(initial=0.0)
    return tau[keep], slopes[:-1][keep], slopes[1:][keep]


def _spline_constants(spline) -> dict:
    """Lip, TV2, BV2 per neuron, exact from a LinearSpline or KnotSpline."""
    return {"lip": spline.lipschitz(), "tv2": spline.tv2(), "bv2": spline.bv2()}


ACTIVATION_TYPES = {}      # kind -> activation class: the registry (see `register`)


def register(cls):
    """Class decorator: ACTIVATION_TYPES[cls.kind] = cls (make_activation, reference.io and
    reference.lipschitz then know the kind)."""
    ACTIVATION_TYPES[cls.kind] = cls
    return cls


@register
class SplineActivation(Activation):
    """One linear spline per neuron (reference.spline.LinearSpline); params: coefficients."""
    kind = "spline"

    def __init__(self, spline: LinearSpline):
        self._spline = spline
        self.params = {"coefficients": spline.coefficients}
        self._forward_pieces = None        # where the last forward's z lie, for its backward

    @property
    def spline(self) -> LinearSpline:
        """The layer's splines, always on the current params['coefficients']."""
        self._spline.coefficients = self.params["coefficients"]
        return self._spline

    @property
    def n_in(self):
        return self._spline.num_channels

    n_out = n_in

    def forward(self, z):
        y, self._forward_pieces = self.spline.forward_unchecked(z, keep_pieces=True)
        return y, z

    def derivative(self, z):
        return self.spline.derivative_unchecked(z)

    @property
    def kink_step(self):
        return self._spline.step

    def kinks(self, width):
        spline = self.spline
        return [kinks_from_slopes(spline.grid[1:-1], s) for s in spline.slopes()]

    def backward(self, z, grad_y, side=None):
        """The coefficient gradient does not depend on `side`: sigma(t_k) = c_k from either
        piece (up to the kernel's snap of s steps, see reference.spline)."""
        pieces = self._forward_pieces                  # used for the z of that forward only
        if pieces is not None and pieces.x is not z:
            pieces = None
        grad_z, grad_c = self.spline.backward_unchecked(z, grad_y, pieces)
        if side is not None and np.any(side):
            grad_z = grad_y * self.derivative_at(z, side)
        return grad_z, {"coefficients": grad_c}

    @classmethod
    def fresh(cls, width, *, spline_init="leaky_relu", size=51, range_=4.0, slope=0.01,
              **_):
        return cls(LinearSpline.initialise(spline_init, width, size, range_, slope=slope))

    def to_entry(self, put) -> dict:
        return {"type": "spline", "coefficients": put("coefficients",
                                                      self.params["coefficients"]),
                "x_min": self.spline.x_min, "step": self.spline.step}

    @classmethod
    def from_entry(cls, read):
        coefficients = read.array("coefficients", 2)
        if coefficients.shape[1] < 2:
            raise read.error(f"coefficients need K >= 2 per neuron, "
                             f"shape is {coefficients.shape}")
        x_min = read.number("x_min")
        step = read.number("step")
        if step <= 0:
            raise read.error(f"'step' should be > 0, got {step}")
        return cls(LinearSpline(coefficients, x_min, step))

    def constants(self, width):
        return _spline_constants(self.spline)

    def slope_range(self, width):
        return self.spline.slope_range()


@register
class KnotSplineActivation(Activation):
    """One free-knot linear spline per neuron: the piecewise-linear interpolant through
    (points[n][i], values[n][i]), points strictly increasing (>= 2 per neuron), continued
    linearly beyond the end points with the end slopes.  This is how the exact (data-grid)
    solutions of reference.convex are stored.  params: `points` and `values`, the flat
    arrays of the model file (neuron n owns the next counts[n] entries); points[n] and
    values[n] are views into them.

    sigma_n(z) = v_i + s_i (z - p_i) with i = the piece of z (clipped to the first / last
    piece outside), s_i = (v_{i+1} - v_i) / (p_{i+1} - p_i); sigma'(z) = s_i (the right
    piece at a point).  Made by the solvers, not a user's choice (not in ACTIVATIONS)."""
    kind = "knot_spline"
    user_choice = False
    format_version = 2

    def __init__(self, points, values):
        if len(points) != len(values) or len(points) == 0:
            raise ValueError(f"values: expected one array per neuron like points "
                             f"({len(points)}), got {len(values)}")
        checked = []
        for n, (p, v) in enumerate(zip(points, values)):
            p = as_finite_array(p, f"points[{n}]", ndim=1)
            v = as_finite_array(v, f"values[{n}]", ndim=1)
            if p.shape != v.shape or len(p) < 2 or np.any(np.diff(p) <= 0):
                raise ValueError(f"points[{n}]: expected >= 2 strictly increasing points with "
                                 f"as many values, got shapes {p.shape} and {v.shape}")
            checked.append((p, v))
        self.counts = np.array([len(p) for p, _ in checked])
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.params = {"points": np.concatenate([p for p, _ in checked]),
                       "values": np.concatenate([v for _, v in checked])}
        cuts = np.cumsum(self.counts)[:-1]
        self.points = np.split(self.params["points"], cuts)      # views
        self.values = np.split(self.params["values"], cuts)

    @property
    def slopes(self) -> list:
        """Per neuron the piece slopes s_i, (counts[n] - 1,), from the current parameters."""
        return [np.diff(v) / np.diff(p) for p, v in zip(self.points, self.values)]

    @property
    def n_in(self):
        return len(self.points)

    n_out = n_in

    @property
    def spline(self) -> KnotSpline:
        """The same splines in knot form (knots at the interior points)."""
        return KnotSpline.interpolant(self.points, self.values)

    def kinks(self, width):
        return [kinks_from_slopes(p[1:-1], s) for p, s in zip(self.points, self.slopes)]

    def _piece(self, n: int, z: np.ndarray, side=None) -> np.ndarray:
        """The piece i of each z (M,): the right one at a point; where side (M,) is -1 / +1,
        the piece left / right of the nearest interior point."""
        p = self.points[n]
        i = np.clip(np.searchsorted(p, z, side="right") - 1, 0, len(p) - 2)
        if side is not None and np.any(side) and len(p) > 2:
            rows = np.flatnonzero(side)
            j = 1 + nearest_index(p[1:-1], z[rows])          # the nearest interior point
            i[rows] = np.where(side[rows] < 0, j - 1, j)
        return i

    def forward(self, z):
        y = np.empty_like(z)
        for n, s in enumerate(self.slopes):
            i = self._piece(n, z[:, n])
            y[:, n] = self.values[n][i] + s[i] * (z[:, n] - self.points[n][i])
        return y, z

    def derivative(self, z):
        return np.stack([s[self._piece(n, z[:, n])] for n, s in enumerate(self.slopes)],
                        axis=1)

    def backward(self, z, grad_y, side=None):
        """With i the piece of z, h = p_{i+1} - p_i and t = (z - p_i)/h (outside [0, 1] in
        the extrapolated ends):
            d sigma/dz = s_i,  d sigma/dv_i = 1 - t,  d sigma/dv_{i+1} = t,
            d sigma/dp_i = s_i (t - 1),  d sigma/dp_{i+1} = -s_i t.
        grad_points and grad_values are flat like params, summed over the M rows."""
        grad_z = np.empty_like(z)
        size = len(self.params["points"])
        grad_p, grad_v = np.zeros(size), np.zeros(size)
        for n, s in enumerate(self.slopes):
            p, g = self.points[n], grad_y[:, n]
            i = self._piece(n, z[:, n], None if side is None else side[:, n])
            t = (z[:, n] - p[i]) / (p[i + 1] - p[i])
            grad_z[:, n] = g * s[i]
            at = self.offsets[n] + i
            grad_v += np.bincount(at, g * (1 - t), size) + np.bincount(at + 1, g * t, size)
            grad_p += (np.bincount(at, g * s[i] * (t - 1), size)
                       - np.bincount(at + 1, g * s[i] * t, size))
        return grad_z, {"points": grad_p, "values": grad_v}

    def regulariser_grads(self, reg: str) -> dict:
        """A subgradient of sum_n R(sigma_n) in points and values (flat, like params).

        TV2 = sum_j |a_j|, a_j = s_j - s_{j-1} at the interior points: d TV2/d s_i =
        sign(a_i) - sign(a_{i+1}) (sign(0) = 0), and s_i = (v_{i+1} - v_i)/h_i gives
        d s_i/d v_{i+1} = -d s_i/d v_i = 1/h_i, d s_i/d p_i = -d s_i/d p_{i+1} = s_i/h_i.
        BV2 adds |sigma(0)| + |sigma(1)| (reference.regularisers: |sigma(t)| for t in
        `extra_points`): `backward` at those z with grad sign(sigma)."""
        regulariser = get_regulariser(reg)
        grad_p, grad_v = np.zeros_like(self.params["points"]), np.zeros_like(
            self.params["values"])
        for n, s in enumerate(self.slopes):
            h, sign = np.diff(self.points[n]), np.sign(np.diff(s))
            g_s = np.zeros_like(s)
            g_s[1:] += sign
            g_s[:-1] -= sign
            lo, hi = self.offsets[n], self.offsets[n] + len(s)
            grad_v[lo:hi] -= g_s / h
            grad_v[lo + 1:hi + 1] += g_s / h
            grad_p[lo:hi] += g_s * s / h
            grad_p[lo + 1:hi + 1] -= g_s * s / h
        if regulariser.extra_points:
            extra = regulariser.extra_inputs(self.n_in)
            _, grads = self.backward(extra, np.sign(self.forward(extra)[0]))
            grad_p += grads["points"]
            grad_v += grads["values"]
        return {"points": grad_p, "values": grad_v}

    def to_entry(self, put) -> dict:
        return {"type": "knot_spline", "points": put("points", np.concatenate(self.points)),
                "values": put("values", np.concatenate(self.values)),
                "counts": put("counts", [len(p) for p in self.points])}

    @classmethod
    def from_entry(cls, read):
        points = read.array("points", 1)
        values = read.array("values", 1)
        counts = read.array("counts", 1)
        if (np.any(counts != np.round(counts)) or np.any(counts < 2)
                or counts.sum() != len(points) or len(values) != len(points)):
            raise read.error(f"counts should be integers >= 2 summing to the "
                             f"lengths of points and values ({len(points)}, {len(values)})")
        cuts = np.cumsum(counts.astype(int))[:-1]
        try:
            return cls(np.split(points, cuts), np.split(values, cuts))
        except ValueError as exc:
            raise read.error(str(exc)) from None

    def constants(self, width):
        return _spline_constants(self.spline)

    def slope_range(self, width):
        return (np.array([s.min() for s in self.slopes]),
                np.array([s.max() for s in self.slopes]))


class _Ramp(Activation):
    """sigma_n(z) = z (z >= 0), a_n z (z < 0), a = `negative_slopes(width)` (N,):
    kink at 0 unless a_n = 1; Lip max(1, |a|), TV2 |1 - a|, BV2 |1 - a| + 1 (sigma(0) = 0,
    sigma(1) = 1), slopes in [min(a, 1), max(a, 1)]."""

    def negative_slopes(self, width: int) -> np.ndarray:
        raise NotImplementedError

    def kinks(self, width):
        zero = np.zeros(1)
        return [kinks_from_slopes(zero, np.array([a, 1.0]))
                for a in self.negative_slopes(width)]

    def constants(self, width):
        a = self.negative_slopes(width)
        return {"lip": np.maximum(1.0, np.abs(a)), "tv2": np.abs(1.0 - a),
                "bv2": np.abs(1.0 - a) + 1.0}

    def slope_range(self, width):
        a = self.negative_slopes(width)
        return np.minimum(a, 1.0), np.maximum(a, 1.0)


@register
class ReLU(_Ramp):
    """sigma(z) = max(z, 0) (a = 0: Lip 1, TV2 1, BV2 2, slopes in [0, 1])."""
    kind = "relu"
    params = NO_PARAMS

    def forward(self, z):
        return np.maximum(z, 0.0), z

    def derivative(self, z):
        return (z >= 0).astype(np.float64)

    def negative_slopes(self, width):
        return np.zeros(width)


@register
class LeakyReLU(_Ramp):
    """sigma(z) = z for z >= 0, slope*z otherwise (one fixed slope)."""
    kind = "leaky_relu"
    params = NO_PARAMS

    def __init__(self, slope: float = 0.01):
        slope = float(slope)
        if not np.isfinite(slope):
            raise ValueError(f"slope: expected a finite number, got {slope}")
        self.slope = slope

    def forward(self, z):
        return np.where(z >= 0, z, self.slope * z), z

    def derivative(self, z):
        return np.where(z >= 0, 1.0, self.slope)

    def negative_slopes(self, width):
        return np.full(width, self.slope)

    @classmethod
    def fresh(cls, width, *, slope=0.01, **_):
        return cls(slope)

    def to_entry(self, put) -> dict:
        return {"type": "leaky_relu", "slope": self.slope}

    @classmethod
    def from_entry(cls, read):
        return cls(read.number("slope"))



@register
class PReLU(_Ramp):
    """sigma_n(z) = z for z >= 0, a_n*z otherwise; slope a (N,) learned per neuron."""
    kind = "prelu"

    def __init__(self, slope):
        slope = as_finite_array(slope, "slope", ndim=1)
        if slope.shape[0] < 1:
            raise ValueError("slope: expected one slope per neuron, at least one (N >= 1)")
        self.params = {"slope": slope}

    @property
    def n_in(self):
        return self.params["slope"].shape[0]

    n_out = n_in

    def forward(self, z):
        return np.where(z >= 0, z, self.params["slope"] * z), z

    def derivative(self, z):
        return np.where(z >= 0, 1.0, self.params["slope"])

    def negative_slopes(self, width):
        return self.params["slope"]

    def backward(self, z, grad_y, side=None):
        """d sigma_n / d a_n = min(z, 0) (continuous at the kink: `side` changes grad_z only)."""
        return (grad_y * self.derivative_at(z, side),
                {"slope": (grad_y * np.minimum(z, 0.0)).sum(axis=0)})

    @classmethod
    def fresh(cls, width, *, prelu_init=0.25, **_):
        return cls(np.full(width, float(prelu_init)))

    def to_entry(self, put) -> dict:
        return {"type": "prelu", "slope": put("slope", self.params["slope"])}

    @classmethod
    def from_entry(cls, read):
        return cls(read.array("slope", 1))



@register
class Identity(Activation):
    """sigma(z) = z; Lip 1, TV2 0, BV2 1 (|sigma(1)|), slopes in [1, 1]."""
    kind = "identity"
    params = NO_PARAMS

    def forward(self, z):
        return z, z

    def derivative(self, z):
        return np.ones_like(z)

    def kinks(self, width):
        return [(np.zeros(0),) * 3] * width

    def backward(self, z, grad_y, side=None):
        return grad_y, {}

    def jacobian_step(self, z, jac, side=None):
        return jac

    def constants(self, width):
        return {"lip": np.ones(width), "tv2": np.zeros(width), "bv2": np.ones(width)}

    def slope_range(self, width):
        return np.ones(width), np.ones(width)


ACTIVATIONS = tuple(kind for kind, cls in ACTIVATION_TYPES.items() if cls.user_choice)
# ("spline", "relu", "leaky_relu", "prelu", "identity"): the kinds a user may ask for


def layer_types() -> dict:
    """Every layer kind of the model file: dense, then the activations (the registry as it
    is now, kinds registered later included)."""
    return {Dense.kind: Dense, **ACTIVATION_TYPES}


class Network:
    """f(x) = layers[-1](...layers[0](x)); widths are checked when the network is built."""

    def __init__(self, layers):
        layers = list(layers)
        if not layers:
            raise ValueError("layers: expected at least one layer")
        width = None
        for i, layer in enumerate(layers):
            if width is not None and layer.n_in is not None and layer.n_in != width:
                raise ValueError(f"layers[{i}] ({layer.kind}): expected input width "
                                 f"{layer.n_in}, but the previous layer gives {width}")
            width = layer.n_out if layer.n_out is not None else width
        if layers[0].n_in is None:
            raise ValueError("layers[0]: the first layer must fix the input width "
                             "(a dense, spline or prelu layer)")
        self.layers = layers
        self.n_out = width

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    def named_params(self):
        """(name, array) for every parameter, names 'layer{i}.{param}' as in the model file."""
        for i, layer in enumerate(self.layers):
            for key, value in layer.params.items():
                yield f"layer{i}.{key}", value

    def check_inputs(self, x) -> np.ndarray:
        x = as_finite_array(x, "x", ndim=2)
        if x.shape[1] != self.n_in:
            raise ValueError(f"x: expected shape (M, {self.n_in}), got {x.shape}")
        return x

    def forward(self, x, keep_cache: bool = False):
        """f(x) for x (M, N_0) -> (M, N_L); with keep_cache, also the per-layer caches."""
        x = self.check_inputs(x)
        y, caches = x, []
        for layer in self.layers:
            y, cache = layer.forward(y)
            caches.append(cache)
        if not np.all(np.isfinite(y)):
            self._report_overflow(x)
        return (y, caches) if keep_cache else y

    def _report_overflow(self, x):
        """Raise OverflowResult naming the first layer and row whose output is not finite."""
        y = x
        for i, layer in enumerate(self.layers):
            y = layer.forward(y)[0]
            bad = ~np.all(np.isfinite(y), axis=1)
            if np.any(bad):
                raise OverflowResult(
                    f"x: layer {i} ({layer.kind}) overflows the float64 range at input row "
                    f"{int(np.argmax(bad))} (finite inputs and parameters, result beyond "
                    f"+-1.8e308); rescale the inputs or the parameters")

    __call__ = forward

    def backward(self, caches, grad_out, sides=None):
        """Backpropagate grad_out = dE/df (M, N_L) through the cached forward pass; `sides`
        (one per layer: None or (M, N_i) int8, see `kink_masks`) picks one-sided slopes.

        Returns (grad_x (M, N_0), {param name: gradient of the same shape})."""
        grads = {}
        g = grad_out
        sides = sides or [None] * len(self.layers)
        for i in reversed(range(len(self.layers))):
            g, layer_grads = self.layers[i].backward(caches[i], g, sides[i])
            for key, value in layer_grads.items():
                grads[f"layer{i}.{key}"] = value
        return g, grads

    def input_jacobian(self, x, sides=None) -> np.ndarray:
        """J[m] = d f(x_m) / d x, shape (M, N_L, N_0), by forward-mode propagation; `sides`
        as in `backward`."""
        y = self.check_inputs(x)
        layers = list(zip(self.layers, sides or [None] * len(self.layers)))
        if isinstance(self.layers[0], Dense):  # start from W_1: no (M, N_0, N_0) identity
            weight = self.layers[0].params["weight"]
            jac = np.broadcast_to(weight, (y.shape[0],) + weight.shape)
            y = self.layers[0].forward(y)[0]
            layers = layers[1:]
        else:
            jac = np.broadcast_to(np.eye(self.n_in), (y.shape[0], self.n_in, self.n_in))
        for layer, side in layers:
            y_next, cache = layer.forward(y)
            jac = layer.jacobian_step(cache, jac, side)
            y = y_next
        return np.array(jac)

    def kink_masks(self, caches, knot_tol: float) -> list:
        """Per layer: None (dense) or the (M, N_i) bool mask of pre-activations on a kink
        (Activation.on_kink).  -mask / +mask as int8 are the `sides` of the left / right
        one-sided derivatives."""
        return [None if isinstance(layer, Dense) else layer.on_kink(z, knot_tol)
                for layer, z in zip(self.layers, caches)]


def make_activation(kind: str, width: int, *, spline_init="leaky_relu", size=51, range_=4.0,
                    slope=0.01, prelu_init=0.25):
    """A fresh activation layer of the given kind and width (ACTIVATION_TYPES[kind].fresh):
    spline_init, size, range_ and slope for splines (LinearSpline.initialise), slope for
    leaky_relu, prelu_init for prelu."""
    check_choice(kind, ACTIVATIONS, "activation")
    return ACTIVATION_TYPES[kind].fresh(width, spline_init=spline_init, size=size,
                                        range_=range_, slope=slope, prelu_init=prelu_init)


def build_mlp(widths, activation="spline", rng=None, last="identity", **activation_options):
    """Dense layers widths[0] -> widths[1] -> ... -> widths[-1], an activation after each
    hidden layer and `last` after the output layer.  Weights and biases ~ U(-1/sqrt(n_in),
    1/sqrt(n_in)) (PyTorch's default for nn.Linear), drawn from rng (seeded Generator)."""
    check_choice(activation, ACTIVATIONS, "activation")
    check_choice(last, ACTIVATIONS, "last")
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"widths: expected at least two positive widths, got {widths}")
    rng = np.random.default_rng(rng)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        bound = 1.0 / np.sqrt(n_in)
        layers.append(Dense(rng.uniform(-bound, bound, (n_out, n_in)),
                            rng.uniform(-bound, bound, n_out)))
        kind = activation if i < len(widths) - 2 else last
        layers.append(make_activation(kind, n_out, **activation_options))
    return Network(layers)
