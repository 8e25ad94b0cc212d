"""Activation layers and their registry (the layers of reference.network between the Dense ones).

Neuron-wise y = sigma(z) on row-major batches z (M, N).  Every layer implements
    forward(z) -> (y, cache),  backward(cache, grad_y, side=None) -> (grad_z, {param: grad}),
    jacobian_step(cache, J, side=None) -> J'
and exposes `params` (name -> array, updated in place by optimisers).

One-sided derivatives (what the oracle needs at kinks): an activation layer lists its kinks
per neuron (`kinks`: positions, slopes left and right), says which pre-activations lie on
one (`on_kink`, within a window relative to the pre-activation's magnitude) and, given
`side` (M, N) int8 = -1 / +1, takes the slope left / right of the nearest kink there instead
of its own convention (the right piece) in `backward` and `jacobian_step`.  Knows nothing of optimisers or cvxpy.

Registry: ACTIVATION_TYPES (kind -> class, filled by `register`) is the one list of the
activation kinds.  Each class answers for itself what used to be spread over if-chains:
its `kind`, a fresh layer (`fresh`, what make_activation builds), its model-file entry
(`to_entry`) and how to rebuild it from one (`from_entry`, with reference.io's validating
reader), its per-neuron constants (`constants`: Lip, TV2, BV2) and slope range
(`slope_range`).  reference.network re-exports every public name (Dense and its `layer_types()`
live there).

The layer protocol (issue 16): other rooms ask a layer, never its class (no isinstance
outside reference.nn; tests/test_layer_protocol.py scans for it), so a new activation is one
class plus its `register` entry.  Flags: `is_activation` (Dense: False), `is_identity`,
`is_spline` (what reference.convex solves for), `uniform_grid` (a LinearSpline trained through
its coefficients); exact mathematics: `piece_form` (a canonical CPWL form that
reference.lipschitz tabulates), `forward_error` (the rounding bound of `forward`), `rescaled`
(sigma(a t) / a, exact), `knot_spline`; localisation data: `grid_pieces`, `region_breaks`,
`grid_word`, `describe_entry` (what a parameter entry is).
"""
from __future__ import annotations

from types import MappingProxyType

import numpy as np

from reference._checks import as_finite_array, check_choice
from reference._numerics import UNIT_ROUNDOFF, gamma
from reference.nn._regularisers import get as get_regulariser
from reference.nn._spline import KnotSpline, LinearSpline

NO_PARAMS = MappingProxyType({})      # shared by the parameter-free layers, read-only


class Activation:
    """Neuron-wise activation: y = sigma(z); subclasses give sigma, sigma', parameters and
    their kinks.

    `derivative(z)` is sigma'(z) (M, N); at a breakpoint, the slope of the right piece."""
    n_in = n_out = None      # any width (spline and prelu fix theirs)
    kink_snap = 0.0          # width below a kink that the layer's own piece rule puts on it
    user_choice = True       # in ACTIVATIONS (made by make_activation)
    format_version = 1       # the model-file format version that introduced the kind
    # The layer protocol (issue 16): what other rooms ask a layer instead of its class.
    is_activation = True     # neuron-wise sigma (Dense: False)
    is_identity = False      # sigma(z) = z: nothing after the last weight, no regions
    is_spline = False        # a spline the coefficient problem solves for (reference.convex)
    uniform_grid = False     # its `spline` is a LinearSpline on a uniform grid, trained
    #                          through params['coefficients'] (reference.training)
    grid_word = "knot"       # what localisation calls an interior point of `grid_pieces`
    positively_homogeneous = False   # sigma(a t) = a sigma(t) for a > 0 (`rescaled`: self)
    exact_forward = False    # `forward` computes sigma(z) without rounding (`forward_error`: 0)

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

    def on_kink(self, z, knot_tol: float, magnitude) -> np.ndarray:
        """(M, N) bool: |z - tau| <= max(knot_tol * max(magnitude, |tau|), `kink_snap`) for
        the nearest kink tau; magnitude: the scale of z, a number or (M, N), no default (the
        oracle passes the |W| |y| + |b| bound of reference.magnitudes: a window tied to 1
        would hold every sample of a network whose pre-activations are 1e-12)."""
        return self.kink_windows(z, knot_tol, magnitude)[0]

    def kink_windows(self, z, knot_tol: float, magnitude) -> tuple:
        """(on_kink, window, spacing), each (M, N): the mask of `on_kink`, the window
        max(knot_tol * max(magnitude, |tau|), kink_snap) around the kink tau nearest to z,
        and the distance from tau to the next kink of its neuron (inf for a lone kink; where
        a neuron has no kink: window 0, never on a kink)."""
        mask = np.zeros(z.shape, dtype=bool)
        window, spacing = np.zeros(z.shape), np.full(z.shape, np.inf)
        magnitude = np.broadcast_to(np.asarray(magnitude, dtype=np.float64), z.shape)
        for n, (tau, _, _) in enumerate(self.kinks(z.shape[1])):
            if len(tau):
                j = nearest_index(tau, z[:, n])
                scale = np.maximum(magnitude[:, n], np.abs(tau[j]))
                window[:, n] = np.maximum(knot_tol * scale, self.kink_snap)
                mask[:, n] = np.abs(z[:, n] - tau[j]) <= window[:, n]
                gaps = np.diff(tau)
                spacing[:, n] = np.minimum(np.r_[np.inf, gaps], np.r_[gaps, np.inf])[j]
        return mask, window, spacing

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

    def piece_form(self, width: int) -> tuple:
        """The layer as one of the canonical continuous piecewise-linear forms that
        reference.lipschitz tabulates exactly (reference.lipschitz._pieces).

        Parameters
        ----------
        width : int
            The number of neurons N.

        Returns
        -------
        tuple
            ``("uniform_spline", spline)``: a LinearSpline (N channels) read exactly;
            ``("knot_points", points, values)``: per neuron the interpolant through
            (points[n] (K_n,), values[n] (K_n,)), continued linearly with the end slopes;
            ``("ramp", a)``: sigma_n(z) = z (z >= 0), a_n z (z < 0), a (N,).

        Raises
        ------
        TypeError
            When the layer is not continuous piecewise linear (the default).

        Notes
        -----
        Every float64 number of the form stands for the rational it is: the exact methods
        enumerate the pieces sigma_n(z) = s_k z + o_k of exactly this function.
        """
        raise TypeError(f"layer: not an activation layer ({type(self).__name__})")

    def forward_error(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """A bound on the rounding error of the layer's own `forward`.

        Parameters
        ----------
        z : ndarray, shape (M, N)
            The computed pre-activations.
        y : ndarray, shape (M, N)
            The computed outputs fl(sigma(z)).

        Returns
        -------
        ndarray, shape (M, N)
            e with |fl(sigma(z)) - sigma(z)| <= e for the exact sigma at the given z (zeros
            for an `exact_forward` layer).

        Raises
        ------
        TypeError
            When the layer states no bound (the default, unless `exact_forward`).
        """
        if self.exact_forward:
            return np.zeros_like(y)
        raise TypeError(f"layer: no rounding bound for a {type(self).__name__} layer")

    def rescaled(self, factor: float):
        """The layer sigma_hat(t) = sigma(factor t) / factor, built exactly.

        Parameters
        ----------
        factor : float
            A power of two.

        Returns
        -------
        Activation or None
            The rescaled layer: `self` when sigma is positively homogeneous (the default
            for `positively_homogeneous` layers); None when the layer cannot be rescaled
            exactly (the default otherwise: the exact methods then keep the factor 1 for
            its block).

        Notes
        -----
        sigma_hat has the same slopes as sigma, its knots and values divided by factor.
        """
        return self if self.positively_homogeneous else None

    def knot_spline(self) -> KnotSpline:
        """The layer's splines in knot form (every grid point or interior point a knot).

        Returns
        -------
        KnotSpline
            One channel per neuron, the same function as the layer.

        Raises
        ------
        TypeError
            When the layer is no spline (`is_spline` False: the default).
        """
        raise TypeError(f"layer: {type(self).__name__} is not a spline layer")

    def grid_pieces(self, n: int, z: np.ndarray):
        """The grid of neuron n and the grid piece its own evaluation uses for each z.

        Parameters
        ----------
        n : int
            The neuron.
        z : ndarray, shape (M,)
            Its pre-activations.

        Returns
        -------
        tuple or None
            (grid (K,), ends included: a spline's grid, a knot spline's points; piece (M,)
            int in [0, K - 2]: z is evaluated on [grid[k], grid[k + 1]] or its extension);
            None for a layer without a grid (the default), whose regions `region_breaks`
            tells.
        """
        return None

    def region_breaks(self, n: int) -> np.ndarray:
        """The points whose sides name the regions of neuron n (layers without a grid).

        Parameters
        ----------
        n : int
            The neuron.

        Returns
        -------
        ndarray, shape (B,)
            Sorted; empty: the layer has no regions (default: the kinks of neuron n).
        """
        width = self.n_in if self.n_in is not None else n + 1
        return self.kinks(width)[n][0]

    def describe_entry(self, param: str, entry: tuple) -> str:
        """What entry `entry` of the parameter array `param` is, in words.

        Parameters
        ----------
        param : str
            A key of `params`.
        entry : tuple of int
            The index into ``params[param]``.

        Returns
        -------
        str
            E.g. 'neuron 3' (the default: the first index is the neuron).
        """
        return f"neuron {entry[0]}"


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
    is_spline = True
    uniform_grid = True

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
    def kink_snap(self):
        """knot_snap * step: inputs that close below a grid point take the piece right of it
        (reference.spline), so the kink window is never narrower."""
        return self._spline.knot_snap * self._spline.step

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

    def knot_spline(self):
        """The splines in knot form: every interior grid point a knot.

        Returns
        -------
        KnotSpline
            `LinearSpline.to_knot_form` of the layer's splines (N channels).
        """
        return self.spline.to_knot_form()

    def piece_form(self, width):
        """The uniform spline itself (grid x_min + k T, coefficients c read exactly).

        Parameters
        ----------
        width : int
            N (the spline fixes it).

        Returns
        -------
        (str, LinearSpline)
            ("uniform_spline", the layer's splines).
        """
        return ("uniform_spline", self.spline)

    def forward_error(self, z, y):
        """The rounding bound of the spline kernels' evaluation (reference.nn._spline).

        Parameters
        ----------
        z : ndarray, shape (M, N)
            The computed pre-activations (u = (z - x_min) / T enters the bound).
        y : ndarray, shape (M, N)
            The computed outputs (not needed: the bound is in the coefficients).

        Returns
        -------
        ndarray, shape (M, N)
            The bound per entry.

        Notes
        -----
        With u = (z - x_min) / T:
        gamma_2 max|c| + (gamma_4 (K - 2) + gamma_5 |u|) max|dc| + 2^-1074, plus
        (s + delta) max|D2 c| (delta = gamma_4 |u| + u_r s, s the knot snap) where an
        interior knot lies within s + 2 delta steps above u.
        """
        s = self.spline
        c = s.coefficients                                                # (N, K)
        c_max = np.abs(c).max(axis=1)
        dc_max = np.abs(np.diff(c, axis=1)).max(axis=1)
        d2_max = np.abs(np.diff(c, 2, axis=1)).max(axis=1, initial=0.0)
        u = (z - s.x_min) / s.step
        snap, delta = s.knot_snap, gamma(4) * np.abs(u) + UNIT_ROUNDOFF * s.knot_snap
        # the snap term only where an interior knot lies less than s + delta steps above u
        # (2 delta: u here is computed too)
        above = np.ceil(u)
        near = (above - u <= snap + 2 * delta) & (above >= 1) & (above <= s.size - 2)
        return (gamma(2) * c_max + (gamma(4) * (s.size - 2) + gamma(5) * np.abs(u)) * dc_max
                + np.where(near, snap + delta, 0.0) * d2_max + 2.0 ** -1074)

    def rescaled(self, factor):
        """The spline with coefficients, x_min and step divided by factor.

        Parameters
        ----------
        factor : float
            A power of two (x_min, T and every c_k are divided by it).

        Returns
        -------
        SplineActivation or None
            None when a nonzero number would leave the normal float64 range or the
            spline's supported range.
        """
        spline = self.spline
        originals = [spline.coefficients, np.array([spline.x_min, spline.step])]
        arrays = [a / factor for a in originals]
        if _leaves_normal_range(originals, arrays):
            return None
        try:
            return SplineActivation(LinearSpline(arrays[0], arrays[1][0], arrays[1][1]))
        except ValueError:                       # outside the spline's supported range
            return None

    def grid_pieces(self, n, z):
        """The grid and the piece the kernels evaluate each z on.

        Parameters
        ----------
        n : int
            The neuron (every neuron shares the grid).
        z : ndarray, shape (M,)
            Its pre-activations.

        Returns
        -------
        tuple
            (grid t_k (K,), piece (M,) int).

        Notes
        -----
        piece = floor((z - x_min) / T + s) clipped to [0, K - 2], s the knot snap.
        """
        spline = self.spline
        return spline.grid, np.clip(np.floor((z - spline.x_min) / spline.step
                                             + spline.knot_snap), 0, spline.size - 2).astype(int)

    def describe_entry(self, param, entry):
        """A coefficient in words: its neuron, grid point t_k and the pieces it moves.

        Parameters
        ----------
        param : str
            'coefficients'.
        entry : tuple of int
            (neuron n, coefficient k).

        Returns
        -------
        str
            'neuron n, coefficient c_k at t_k = ... (pieces k - 1 and k)'.
        """
        n, k = entry
        pieces = sorted({min(max(j, 0), self.spline.size - 2) for j in (k - 1, k)})
        return (f"neuron {n}, coefficient c_{k} at t_{k} = {self.spline.grid[k]:.6g} "
                f"(piece{'s' if len(pieces) > 1 else ''} {' and '.join(map(str, pieces))})")


def _leaves_normal_range(originals: list, scaled: list) -> bool:
    """Whether a nonzero entry of the arrays `originals` became subnormal or zero in
    `scaled` (the same arrays divided by a power of two): the division was not exact."""
    tiny = np.finfo(float).tiny
    return any(np.any((a != 0) & (np.abs(b) < tiny)) for a, b in zip(originals, scaled))


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
    is_spline = True
    grid_word = "point"

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

    def knot_spline(self):
        """The splines in knot form: a knot at every interior point.

        Returns
        -------
        KnotSpline
            `spline` (N channels).
        """
        return self.spline

    def piece_form(self, width):
        """The points and values themselves (the interpolant, read exactly).

        Parameters
        ----------
        width : int
            The number of neurons (len(points) already).

        Returns
        -------
        (str, list, list)
            ("knot_points", points, values): per neuron (counts[n],) each.
        """
        return ("knot_points", self.points, self.values)

    def forward_error(self, z, y):
        """The rounding bound of v_i + s_i (z - p_i), s_i = (v_{i+1} - v_i) / (p_{i+1} - p_i).

        Parameters
        ----------
        z : ndarray, shape (M, N)
            The computed pre-activations (|z| enters the bound).
        y : ndarray, shape (M, N)
            The computed outputs (not needed).

        Returns
        -------
        ndarray, shape (M, N)
            gamma_6 (max|v| + max|s| (|z| + max|p|)) + 2^-1022 per entry.
        """
        v_max = np.array([np.abs(v).max() for v in self.values])
        s_max = np.array([np.abs(s).max() for s in self.slopes])
        p_max = np.array([np.abs(p).max() for p in self.points])
        return gamma(6) * (v_max + s_max * (np.abs(z) + p_max)) + np.finfo(float).tiny

    def rescaled(self, factor):
        """The knot spline with its points and values divided by factor.

        Parameters
        ----------
        factor : float
            A power of two (points and values are divided by it).

        Returns
        -------
        KnotSplineActivation or None
            None when a nonzero number would leave the normal float64 range.
        """
        originals = self.points + self.values
        arrays = [a / factor for a in originals]
        if _leaves_normal_range(originals, arrays):
            return None
        half = len(self.points)
        try:
            return KnotSplineActivation(arrays[:half], arrays[half:])
        except ValueError:
            return None

    def grid_pieces(self, n, z):
        """The points of neuron n and the segment each z is evaluated on.

        Parameters
        ----------
        n : int
            The neuron.
        z : ndarray, shape (M,)
            Its pre-activations (any finite float64).

        Returns
        -------
        tuple
            (points[n] (counts[n],), segment (M,) int: the right one at a point, the end
            segments outside).
        """
        return self.points[n], self._piece(n, z)

    def describe_entry(self, param, entry):
        """An entry of the flat `points` or `values` in words.

        Parameters
        ----------
        param : str
            'points' or 'values'.
        entry : tuple of int
            (index into the flat array,).

        Returns
        -------
        str
            'neuron n, point j' or 'neuron n, value j' (j counted within the neuron).
        """
        n = int(np.searchsorted(self.offsets, entry[0], side="right") - 1)
        return f"neuron {n}, {param[:-1]} {entry[0] - self.offsets[n]}"


class Ramp(Activation):
    """sigma_n(z) = z (z >= 0), a_n z (z < 0), a = `negative_slopes(width)` (N,):
    kink at 0 unless a_n = 1; Lip max(1, |a|), TV2 |1 - a|, BV2 |1 - a| + 1 (sigma(0) = 0,
    sigma(1) = 1), slopes in [min(a, 1), max(a, 1)]."""
    positively_homogeneous = True

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

    def piece_form(self, width):
        """The ramp's negative slopes.

        Parameters
        ----------
        width : int
            N.

        Returns
        -------
        (str, ndarray)
            ("ramp", a (N,) float64), a = `negative_slopes(width)`.
        """
        return ("ramp", np.array(self.negative_slopes(width), dtype=np.float64))

    def forward_error(self, z, y):
        """One product a z on the negative side (none for an `exact_forward` ramp: ReLU).

        Parameters
        ----------
        z : ndarray, shape (M, N)
            The computed pre-activations (not needed).
        y : ndarray, shape (M, N)
            The computed outputs, a z or z.

        Returns
        -------
        ndarray, shape (M, N)
            u |y|, u = 2^-53 (zeros when `exact_forward`).
        """
        if self.exact_forward:
            return np.zeros_like(y)
        return UNIT_ROUNDOFF * np.abs(y)

    def region_breaks(self, n):
        """The sides of z = 0 (whether or not the slope changes there: a = 1).

        Parameters
        ----------
        n : int
            The neuron (the break is the same for all).

        Returns
        -------
        ndarray, shape (1,)
            [0].
        """
        return np.zeros(1)


@register
class ReLU(Ramp):
    """sigma(z) = max(z, 0) (a = 0: Lip 1, TV2 1, BV2 2, slopes in [0, 1])."""
    kind = "relu"
    params = NO_PARAMS
    exact_forward = True     # max(z, 0)

    def forward(self, z):
        return np.maximum(z, 0.0), z

    def derivative(self, z):
        return (z >= 0).astype(np.float64)

    def negative_slopes(self, width):
        return np.zeros(width)



@register
class LeakyReLU(Ramp):
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
class PReLU(Ramp):
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
    is_identity = exact_forward = positively_homogeneous = True

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

    def piece_form(self, width):
        """The identity as a ramp of negative slope 1 (no kink).

        Parameters
        ----------
        width : int
            The number of neurons N (any: the identity has no width of its own).

        Returns
        -------
        (str, ndarray)
            ("ramp", ones (N,)): a = 1 on both sides of 0.
        """
        return ("ramp", np.ones(width))


ACTIVATIONS = tuple(kind for kind, cls in ACTIVATION_TYPES.items() if cls.user_choice)
# ("spline", "relu", "leaky_relu", "prelu", "identity"): the kinds a user may ask for



def make_activation(kind: str, width: int, *, spline_init="leaky_relu", size=51, range_=4.0,
                    slope=0.01, prelu_init=0.25):
    """A fresh activation layer of the given kind and width (ACTIVATION_TYPES[kind].fresh):
    spline_init, size, range_ and slope for splines (LinearSpline.initialise), slope for
    leaky_relu, prelu_init for prelu."""
    check_choice(kind, ACTIVATIONS, "activation")
    return ACTIVATION_TYPES[kind].fresh(width, spline_init=spline_init, size=size,
                                        range_=range_, slope=slope, prelu_init=prelu_init)
