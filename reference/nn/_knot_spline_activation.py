"""The layer of free-knot linear splines given by interpolation points
(`KnotSplineActivation`).

Its splines are reference.nn._knot_spline.KnotSpline; the layer protocol is
reference.nn._activation_base.Activation.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from reference._numerics import as_finite_array, gamma
from reference.nn._activation_base import (
    Activation,
    _leaves_normal_range,
    _spline_constants,
    kinks_from_slopes,
    nearest_index,
    register,
)
from reference.nn._knot_spline import KnotSpline
from reference.nn._regularisers import get as get_regulariser


@register
class KnotSplineActivation(Activation):
    r"""A layer of free-knot linear splines, one per neuron, given by interpolation points.

    This is how the exact (data-grid) solutions of `reference.convex` are stored: made by
    the solvers, not a user's choice (not in `ACTIVATIONS`).

    Parameters
    ----------
    points : sequence of array_like
        Per neuron, the points :math:`p_i`, shape (n_points_n,), at least 2, strictly
        increasing.
    values : sequence of array_like
        Per neuron, the values :math:`v_i` at `points`, shape (n_points_n,).

    Attributes
    ----------
    params : dict of str to ndarray
        ``'points'`` and ``'values'``, the flat arrays of the model file (neuron n owns the
        next ``counts[n]`` entries).
    points, values : list of ndarray
        Per neuron, views into the flat arrays.
    counts : ndarray of shape (n_neurons,)
        The number of points per neuron.
    offsets : ndarray of shape (n_neurons,)
        Where each neuron's points start in the flat arrays.

    Raises
    ------
    ValueError
        If the numbers of neurons differ, or a neuron has fewer than 2 strictly
        increasing, finite points with as many values.

    Notes
    -----
    The piecewise-linear interpolant, continued linearly beyond the end points with the
    end slopes:

    .. math::

        \sigma_n(z) = v_i + s_i (z - p_i), \qquad
        s_i = \frac{v_{i+1} - v_i}{p_{i+1} - p_i},

    with i the piece of z (clipped to the first / last piece outside);
    :math:`\sigma_n'(z) = s_i` (the right piece at a point).
    """
    kind = "knot_spline"
    user_choice = False
    format_version = 2
    is_spline = True
    grid_word = "point"

    def __init__(self, points: Sequence[npt.ArrayLike], values: Sequence[npt.ArrayLike]):
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
        """The number of neurons (input and output width)."""
        return len(self.points)

    n_out = n_in

    @property
    def spline(self) -> KnotSpline:
        """The same splines in knot form (knots at the interior points)."""
        return KnotSpline.interpolant(self.points, self.values)

    def kinks(self, width: int) -> list[tuple[npt.NDArray[np.float64], ...]]:
        """Return the kinks of each neuron: the interior points where the slope changes.

        Parameters
        ----------
        width : int
            The number of neurons (unused: the points fix it).

        Returns
        -------
        kinks : list of tuple of ndarray
            Per neuron, ``(tau, left, right)``: the interior points whose slope change
            exceeds the rounding of the slopes, and the slopes left and right of each.
        """
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

    def forward(self, z: npt.NDArray[np.float64]
                ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Apply the interpolants.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The pre-activations.

        Returns
        -------
        y : ndarray of shape (n_samples, n_neurons)
            :math:`\\sigma_n(z_{m,n}) = v_i + s_i (z_{m,n} - p_i)`.
        cache : ndarray of shape (n_samples, n_neurons)
            `z`.
        """
        y = np.empty_like(z)
        for n, s in enumerate(self.slopes):
            i = self._piece(n, z[:, n])
            y[:, n] = self.values[n][i] + s[i] * (z[:, n] - self.points[n][i])
        return y, z

    def derivative(self, z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return the slope of the piece of each pre-activation.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The pre-activations.

        Returns
        -------
        d : ndarray of shape (n_samples, n_neurons)
            :math:`s_i`, the right piece at a point.
        """
        return np.stack([s[self._piece(n, z[:, n])] for n, s in enumerate(self.slopes)],
                        axis=1)

    def backward(self, z: npt.NDArray[np.float64], grad_y: npt.NDArray[np.float64],
                 side: npt.NDArray[np.int8] | None = None
                 ) -> tuple[npt.NDArray[np.float64], dict[str, npt.NDArray[np.float64]]]:
        r"""Backpropagate a gradient through the interpolants, to z, points and values.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The cache of `forward`.
        grad_y : ndarray of shape (n_samples, n_neurons)
            The gradient of the objective in the outputs.
        side : ndarray of shape (n_samples, n_neurons), dtype int8, or None, default=None
            Where -1 / +1, the piece left / right of the nearest interior point is used
            (for every gradient).

        Returns
        -------
        grad_z : ndarray of shape (n_samples, n_neurons)
            The gradient in the pre-activations.
        grads : dict of str to ndarray
            ``'points'`` and ``'values'``, flat like `params`, summed over the samples.

        Notes
        -----
        With i the piece of z, :math:`h = p_{i+1} - p_i` and :math:`t = (z - p_i)/h`
        (outside [0, 1] in the extrapolated ends):

        .. math::

            \frac{\partial\sigma}{\partial z} = s_i, \quad
            \frac{\partial\sigma}{\partial v_i} = 1 - t, \quad
            \frac{\partial\sigma}{\partial v_{i+1}} = t, \quad
            \frac{\partial\sigma}{\partial p_i} = s_i (t - 1), \quad
            \frac{\partial\sigma}{\partial p_{i+1}} = -s_i t.
        """
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

    def regulariser_grads(self, reg: str) -> dict[str, npt.NDArray[np.float64]]:
        r"""Return a subgradient of the summed regulariser in the points and values.

        Parameters
        ----------
        reg : {'tv2', 'bv2'}
            The regulariser R (`REGULARISERS`).

        Returns
        -------
        grads : dict of str to ndarray
            ``'points'`` and ``'values'``, flat like `params`: a subgradient of
            :math:`\sum_n R(\sigma_n)`.

        Raises
        ------
        ValueError
            If `reg` is not a known regulariser.

        Notes
        -----
        :math:`\mathrm{TV}^{(2)} = \sum_j |a_j|`, :math:`a_j = s_j - s_{j-1}` at the
        interior points: :math:`\partial \mathrm{TV}^{(2)} / \partial s_i =
        \operatorname{sign}(a_i) - \operatorname{sign}(a_{i+1})` (sign(0) = 0), and
        :math:`s_i = (v_{i+1} - v_i)/h_i` gives

        .. math::

            \frac{\partial s_i}{\partial v_{i+1}} = -\frac{\partial s_i}{\partial v_i}
            = \frac{1}{h_i}, \qquad
            \frac{\partial s_i}{\partial p_i} = -\frac{\partial s_i}{\partial p_{i+1}}
            = \frac{s_i}{h_i}.

        BV2 adds :math:`|\sigma(0)| + |\sigma(1)|` (:math:`|\sigma(t)|` for t in the
        regulariser's ``extra_points``): `backward` at those z with gradient
        :math:`\operatorname{sign}(\sigma)`.
        """
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

    def to_entry(self, put: Callable[[str, npt.ArrayLike], str]) -> dict[str, Any]:
        """Return the layer's model-file entry (format version 2).

        Parameters
        ----------
        put : callable
            ``put(key, array)`` stores an array in the file and returns its NAME.

        Returns
        -------
        entry : dict
            ``{"type": "knot_spline", "points": NAME, "values": NAME, "counts": NAME}``.
        """
        return {"type": "knot_spline", "points": put("points", np.concatenate(self.points)),
                "values": put("values", np.concatenate(self.values)),
                "counts": put("counts", [len(p) for p in self.points])}

    @classmethod
    def from_entry(cls, read: Any) -> "KnotSplineActivation":
        """Build the layer of a ``knot_spline`` model-file entry.

        Parameters
        ----------
        read : EntryReader
            The entry being read (see `Activation.from_entry`).

        Returns
        -------
        layer : KnotSplineActivation
            The layer.

        Raises
        ------
        ModelFileError
            If the counts are not integers >= 2 summing to the lengths of points and
            values, or a neuron's points are not strictly increasing.
        """
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

    def constants(self, width: int) -> dict[str, npt.NDArray[np.float64]]:
        """Return the per-neuron Lip, TV2 and BV2 of the interpolants, exact.

        Parameters
        ----------
        width : int
            The number of neurons (unused: the points fix it).

        Returns
        -------
        constants : dict of str to ndarray of shape (n_neurons,)
            ``'lip'``, ``'tv2'``, ``'bv2'`` (see `Activation.constants`).
        """
        return _spline_constants(self.spline)

    def slope_range(self, width: int
                    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Return the smallest and largest piece slope of each neuron.

        Parameters
        ----------
        width : int
            The number of neurons (unused).

        Returns
        -------
        min_slope, max_slope : ndarray of shape (n_neurons,)
            Over all pieces, the extrapolated ends included.
        """
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
