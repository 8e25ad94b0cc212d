"""Linear splines in knot form with free knots (`KnotSpline`).

Knot form: sigma(x) = b0 + b1*x + sum_k a_k (x - tau_k)_+, knots free and possibly
different per channel; the uniform-grid form is reference.nn._linear_spline
(`LinearSpline.to_knot_form`, `LinearSpline.from_knot_form`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from reference._numerics import as_finite_array
from reference.nn._spline_grid import zero_one


@dataclass
class KnotSpline:
    r"""C linear splines in knot form, knots free and possibly different per channel.

    Parameters
    ----------
    b0 : array_like of shape (n_channels,)
        The intercepts.
    b1 : array_like of shape (n_channels,)
        The slopes left of the first knot.
    knots : list of array_like
        Per channel, the knot positions :math:`\tau_{c,k}`, shape (n_knots_c,), sorted
        increasingly.
    jumps : list of array_like
        Per channel, the slope jumps :math:`a_{c,k}` at the knots, shape (n_knots_c,).

    Raises
    ------
    ValueError
        If an array is not finite, the shapes do not match, or knots are not sorted.

    See Also
    --------
    LinearSpline : Splines on a uniform grid.

    Notes
    -----
    .. math::

        \sigma_c(x) = b_{0,c} + b_{1,c}\, x + \sum_k a_{c,k}\, (x - \tau_{c,k})_+ .

    Examples
    --------
    >>> import numpy as np
    >>> from reference.nn import KnotSpline
    >>> relu = KnotSpline(b0=[0.0], b1=[0.0], knots=[[0.0]], jumps=[[1.0]])
    >>> relu(np.array([[-1.0], [2.0]]))
    array([[0.],
           [2.]])
    """
    b0: np.ndarray
    b1: np.ndarray
    knots: list
    jumps: list

    def __post_init__(self):
        self.b0 = as_finite_array(self.b0, "b0", ndim=1)
        self.b1 = as_finite_array(self.b1, "b1", ndim=1)
        if self.b0.shape != self.b1.shape:
            raise ValueError(f"b1: expected shape {self.b0.shape} like b0, got {self.b1.shape}")
        if len(self.knots) != len(self.b0) or len(self.jumps) != len(self.b0):
            raise ValueError(
                f"knots, jumps: expected {len(self.b0)} channels, got {len(self.knots)} and "
                f"{len(self.jumps)}")
        knots, jumps = [], []
        for c, (tau, a) in enumerate(zip(self.knots, self.jumps)):
            tau = as_finite_array(tau, f"knots[{c}]", ndim=1)
            a = as_finite_array(a, f"jumps[{c}]", ndim=1)
            if tau.shape != a.shape:
                raise ValueError(f"jumps[{c}]: expected shape {tau.shape} like knots[{c}], "
                                 f"got {a.shape}")
            if np.any(np.diff(tau) < 0):
                raise ValueError(f"knots[{c}]: expected increasing knot positions")
            knots.append(tau)
            jumps.append(a)
        self.knots, self.jumps = knots, jumps

    @property
    def num_channels(self) -> int:
        """The number of splines C (channels)."""
        return len(self.b0)

    def __call__(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """sigma(x) for x of shape (M, C); returns (M, C)."""
        x = as_finite_array(x, "x", ndim=2)
        if x.shape[1] != self.num_channels:
            raise ValueError(f"x: expected shape (M, {self.num_channels}), got {x.shape}")
        out = self.b0 + self.b1 * x
        for c in range(self.num_channels):
            out[:, c] += np.maximum(x[:, c, None] - self.knots[c], 0.0) @ self.jumps[c]
        return out

    def slopes(self, c: int) -> npt.NDArray[np.float64]:
        """Return the slopes of the pieces of one channel, left to right.

        Parameters
        ----------
        c : int
            The channel.

        Returns
        -------
        slopes : ndarray of shape (n_knots_c + 1,)
            :math:`b_1 + \\operatorname{cumsum}([0, a])`.
        """
        return self.b1[c] + np.concatenate([[0.0], np.cumsum(self.jumps[c])])

    def tv2(self) -> npt.NDArray[np.float64]:
        """Return the second-order total variation of each spline.

        Returns
        -------
        tv2 : ndarray of shape (n_channels,)
            :math:`\\mathrm{TV}^{(2)}(\\sigma_c) = \\sum_k |a_{c,k}|`.
        """
        return np.array([np.abs(a).sum() for a in self.jumps])

    def bv2(self) -> npt.NDArray[np.float64]:
        """Return the BV2 norm of each spline.

        Returns
        -------
        bv2 : ndarray of shape (n_channels,)
            :math:`\\mathrm{TV}^{(2)}(\\sigma_c) + |\\sigma_c(0)| + |\\sigma_c(1)|`.
        """
        return self.tv2() + np.abs(self(zero_one(self.num_channels))).sum(axis=0)

    def lipschitz(self) -> npt.NDArray[np.float64]:
        """Return the Lipschitz constant of each spline.

        Returns
        -------
        lip : ndarray of shape (n_channels,)
            The largest slope magnitude over all pieces.
        """
        return np.array([np.abs(self.slopes(c)).max() for c in range(self.num_channels)])

    def pruned(self, tol: float = 0.0) -> "KnotSpline":
        """Return the same splines without the knots whose jump is at most `tol`.

        Parameters
        ----------
        tol : float, default=0.0
            Knots with :math:`|a_k| \\le` tol are dropped (exact when tol = 0).

        Returns
        -------
        spline : KnotSpline
            The pruned splines.
        """
        keep = [np.abs(a) > tol for a in self.jumps]
        return KnotSpline(self.b0.copy(), self.b1.copy(),
                          [t[k] for t, k in zip(self.knots, keep)],
                          [a[k] for a, k in zip(self.jumps, keep)])

    @classmethod
    def interpolant(cls, points: Sequence[npt.ArrayLike],
                    values: Sequence[npt.ArrayLike]) -> "KnotSpline":
        """Return the piecewise-linear interpolant through given points, per channel.

        Parameters
        ----------
        points : sequence of array_like
            Per channel, the abscissae :math:`p_i`, shape (n_points_c,), at least 2
            distinct, in any order.
        values : sequence of array_like
            Per channel, the values :math:`v_i` at `points`, shape (n_points_c,).

        Returns
        -------
        spline : KnotSpline
            The interpolant, continued linearly beyond the end points with the end slopes:
            knots at the interior sorted points, jumps :math:`a_i = s_i - s_{i-1}` with
            :math:`s_i = (v_{i+1} - v_i)/(p_{i+1} - p_i)`.

        Raises
        ------
        ValueError
            If the numbers of channels or the shapes differ, a channel has fewer than 2
            distinct points (duplicates are not merged), or a value is not finite.
        """
        if len(points) != len(values):
            raise ValueError(f"values: expected {len(points)} channels like points, "
                             f"got {len(values)}")
        b0, b1, knots, jumps = [], [], [], []
        for c, (p, v) in enumerate(zip(points, values)):
            p = as_finite_array(p, f"points[{c}]", ndim=1)
            v = as_finite_array(v, f"values[{c}]", ndim=1)
            if p.shape != v.shape:
                raise ValueError(f"values[{c}]: expected shape {p.shape}, got {v.shape}")
            order = np.argsort(p, kind="stable")
            p, v = p[order], v[order]
            if len(p) < 2 or np.any(np.diff(p) <= 0):
                raise ValueError(f"points[{c}]: expected at least 2 distinct points "
                                 "(merge duplicates first)")
            s = np.diff(v) / np.diff(p)
            b1.append(s[0])
            b0.append(v[0] - s[0] * p[0])
            knots.append(p[1:-1])
            jumps.append(np.diff(s))
        return cls(np.array(b0), np.array(b1), knots, jumps)
