"""The linear pieces of an activation layer, as float64 tables for the enumerations of the
exact methods and as the exact rationals they stand for.

Every activation of the ladder is continuous and piecewise linear: on piece k of neuron n,
between its knots tau_{k-1} < z < tau_k (tau_{-1} = -inf, tau_K = +inf),
    sigma_n(z) = slope[n, k] z + offset[n, k].
The *exact model* is the network whose float64 parameters are read as the rationals they
are, evaluated without rounding (reference.nn._linear_spline calls it the exact model): a uniform
spline has its knots at x_min + k T exactly, slopes (c_{k+1} - c_k) / T and
sigma(z) = c_k + slope (z - t_k) on grid piece k; a knot spline the interpolant of its
(points, values); ReLU, LeakyReLU and PReLU one knot at 0 with slopes a and 1; the identity
no knot.  A knot is kept when the exact slopes on its two sides differ (a grid point where
the spline does not bend is no knot; the float test alone, D2 c == 0 in floating point, may
call a bend of one ulp none).

`PieceTable` holds, per neuron, the kept knots rounded to float64 with a bound on that
rounding, the slopes and offsets of the pieces rounded to float64 with a bound on their
error, and (lazily, `exact`) the same as `fractions.Fraction`.  Float errors (u = 2^-53,
gamma_n = n u / (1 - n u)):
    knots: uniform grid fl(x_min + k T) within gamma_2 (|x_min| + k T); points and 0 exact;
    slopes: fl(fl(c_{k+1} - c_k) / T) within gamma_2 |slope|, knot splines gamma_3 |slope|,
            ramps exact;
    offsets: fl(c_j - fl(slope t_j)) within gamma_4 (|c_j| + |slope| |t_j|) = gamma_4 scale.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from reference._numerics import gamma
from reference.nn._linear_spline import LinearSpline


@dataclass
class PieceTable:
    """The pieces of the W neurons of one activation layer (module docstring).

    knots[n] (K_n,) sorted float64, knot_error[n] (K_n,) bounds on |knot - exact knot|;
    slopes, offsets, offset_scale (W, S), S = max K_n + 1, piece k of neuron n in column k
    (rows padded with their last piece): sigma_n(z) = slopes z + offsets on it, the offset
    within gamma_4 offset_scale of the exact one; slope_rtol the relative error bound of the
    slopes; snap (W,) the width in z below each knot where the network's own evaluation
    (the spline kernels' snap, reference.nn._linear_spline) takes the piece to the right of the knot
    (0 for the other activations).  `exact(n)` gives (knots, slopes, offsets) of neuron n
    as lists of Fraction (K_n, K_n + 1, K_n + 1)."""
    knots: list
    knot_error: list
    slopes: np.ndarray
    offsets: np.ndarray
    offset_scale: np.ndarray
    slope_rtol: float
    snap: np.ndarray
    _exact_pieces: Callable[[int], tuple[list, list, list]] | None = field(repr=False,
                                                                            default=None)
    _cache: dict = field(repr=False, default_factory=dict)

    @property
    def width(self) -> int:
        return len(self.knots)

    def exact(self, n: int) -> tuple[list, list, list]:
        if n not in self._cache:
            assert self._exact_pieces is not None      # every table is built with one
            self._cache[n] = self._exact_pieces(n)
        return self._cache[n]


def _padded(rows: list) -> np.ndarray:
    size = max(len(r) for r in rows)
    return np.array([np.pad(np.asarray(r, float), (0, size - len(r)), mode="edge")
                     for r in rows])


def _changes(slopes_float: np.ndarray, exact_slope) -> np.ndarray:
    """The interior breakpoints (K - 1,) where the exact slope changes: the float slopes
    differ there, or (rare: equal float slopes) their exact values do."""
    keep = np.diff(slopes_float) != 0
    for k in np.flatnonzero(~keep):
        keep[k] = exact_slope(k + 1) != exact_slope(k)
    return keep


def _spline_table(spl: LinearSpline) -> PieceTable:
    c, x_min, step, size = spl.coefficients, spl.x_min, spl.step, spl.size
    grid = spl.grid
    grid_error = gamma(2) * (abs(x_min) + step * np.arange(size))
    grid_slopes = spl.slopes()                                      # (W, K - 1)
    fx, ft = Fraction(x_min), Fraction(step)

    def exact_slope(n):
        return lambda j: (Fraction(c[n, j + 1]) - Fraction(c[n, j])) / ft

    kept = [1 + np.flatnonzero(_changes(grid_slopes[n], exact_slope(n)))
            for n in range(len(c))]                                 # grid indices of knots
    slopes, offsets, scales = [], [], []
    for n, knots in enumerate(kept):
        first = np.concatenate([[0], knots])                       # a grid piece of each
        s = grid_slopes[n, first]
        slopes.append(s)
        offsets.append(c[n, first] - s * grid[first])
        scales.append(np.abs(c[n, first]) + np.abs(s) * np.abs(grid[first]))

    def exact_pieces(n):
        knots = kept[n]
        first = np.concatenate([[0], knots])
        tau = [fx + int(k) * ft for k in knots]
        s = [(Fraction(c[n, j + 1]) - Fraction(c[n, j])) / ft for j in first]
        o = [Fraction(c[n, j]) - sj * (fx + int(j) * ft) for j, sj in zip(first, s)]
        return tau, s, o

    width = len(c)
    return PieceTable([grid[k] for k in kept], [grid_error[k] for k in kept], _padded(slopes),
                      _padded(offsets), _padded(scales), gamma(2),
                      np.full(width, spl.knot_snap * step), exact_pieces)


def _knot_spline_table(points: list, values: list) -> PieceTable:
    knots, errors, slopes, offsets, scales, exact_data = [], [], [], [], [], []
    for p, v in zip(points, values):
        s = np.diff(v) / np.diff(p)

        def exact_slope(i, p=p, v=v):
            return (Fraction(v[i + 1]) - Fraction(v[i])) / (Fraction(p[i + 1]) - Fraction(p[i]))

        keep = _changes(s, exact_slope)
        pieces = np.concatenate([[0], 1 + np.flatnonzero(keep)])   # first segment of each
        knots.append(p[1:-1][keep])
        errors.append(np.zeros(int(keep.sum())))
        slopes.append(s[pieces])
        offsets.append(v[pieces] - s[pieces] * p[pieces])
        scales.append(np.abs(v[pieces]) + np.abs(s[pieces]) * np.abs(p[pieces]))
        exact_data.append((p, v, pieces, exact_slope))

    def exact_pieces(n):
        p, v, pieces, exact_slope = exact_data[n]
        s = [exact_slope(int(i)) for i in pieces]
        o = [Fraction(v[i]) - si * Fraction(p[i]) for i, si in zip(pieces, s)]
        return [Fraction(t) for t in p[pieces[1:]]], s, o

    return PieceTable(knots, errors, _padded(slopes), _padded(offsets), _padded(scales),
                      gamma(3), np.zeros(len(knots)), exact_pieces)


def _ramp_table(a: np.ndarray) -> PieceTable:
    bent = a != 1.0
    knots = [np.zeros(1) if b else np.zeros(0) for b in bent]
    slopes = [np.array([s, 1.0]) if b else np.array([1.0]) for s, b in zip(a, bent)]

    def exact_pieces(n):
        if not bent[n]:
            return [], [Fraction(1)], [Fraction(0)]
        return [Fraction(0)], [Fraction(a[n]), Fraction(1)], [Fraction(0), Fraction(0)]

    zeros = _padded([np.zeros(len(s)) for s in slopes])
    return PieceTable(knots, [np.zeros(len(k)) for k in knots], _padded(slopes), zeros,
                      zeros.copy(), 0.0, np.zeros(len(a)), exact_pieces)


# the forms of Activation.piece_form -> their table
TABLES: dict[str, Callable[..., PieceTable]] = {
    "uniform_spline": _spline_table, "knot_points": _knot_spline_table, "ramp": _ramp_table}


def piece_table(layer, width: int) -> PieceTable:
    """The PieceTable of an activation layer of `width` neurons (module docstring), built
    from the canonical form the layer gives of itself (`Activation.piece_form`: a uniform
    spline, knot points and values, or a ramp); a layer that is not a CPWL activation:
    TypeError."""
    piece_form = getattr(layer, "piece_form", None)
    if piece_form is None:
        raise TypeError(f"layer: not an activation layer ({type(layer).__name__})")
    form, *data = piece_form(width)
    return TABLES[form](*data)
