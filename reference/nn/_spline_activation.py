"""The layer of trainable linear-spline activations on a uniform grid (`SplineActivation`).

Its splines are reference.nn._linear_spline.LinearSpline; the layer protocol is
reference.nn._activation_base.Activation.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from reference._numerics import UNIT_ROUNDOFF, gamma
from reference.nn._activation_base import (
    Activation,
    _leaves_normal_range,
    _spline_constants,
    kinks_from_slopes,
    register,
)
from reference.nn._kernels import Pieces
from reference.nn._linear_spline import LinearSpline


@register
class SplineActivation(Activation):
    r"""A layer of trainable linear-spline activations on a uniform grid, one per neuron.

    Parameters
    ----------
    spline : LinearSpline
        The splines, one channel per neuron.

    Attributes
    ----------
    params : dict of str to ndarray
        ``'coefficients'``, shape (n_neurons, size): the spline's coefficient array itself
        (the optimisers update it in place).

    See Also
    --------
    LinearSpline : The splines and their accuracy.

    Notes
    -----
    Neuron n applies :math:`\sigma_n(z) = \sum_k c_{n,k}\, \beta_1((z - x_{\min})/T - k)`,
    continued linearly outside the grid; see `LinearSpline`.

    References
    ----------
    .. [1] P. Bohra, J. Campos, H. Gupta, S. Aziznejad, M. Unser, "Learning Activation
       Functions in Deep (Spline) Neural Networks", IEEE Open Journal of Signal
       Processing 1, 2020.
    .. [2] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With
       Trainable Activations and Controlled Lipschitz Constant", IEEE Trans. Signal
       Process. 68, 2020, arXiv:2001.06263.
    """
    kind = "spline"
    is_spline = True
    uniform_grid = True

    def __init__(self, spline: LinearSpline):
        self._spline = spline
        self.params = {"coefficients": spline.coefficients}
        # where the last forward's z lie, for its backward
        self._forward_pieces: Pieces | None = None

    @property
    def spline(self) -> LinearSpline:
        """The layer's splines, always on the current params['coefficients']."""
        self._spline.coefficients = self.params["coefficients"]
        return self._spline

    @property
    def n_in(self):
        """The number of neurons (input and output width)."""
        return self._spline.num_channels

    n_out = n_in

    def forward(self, z: npt.NDArray[np.float64]
                ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Apply the splines (unchecked kernels; the network checks its inputs).

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The pre-activations, finite float64.

        Returns
        -------
        y : ndarray of shape (n_samples, n_neurons)
            :math:`\\sigma_n(z_{m,n})`.
        cache : ndarray of shape (n_samples, n_neurons)
            `z` (where it lies on the grid is kept for the `backward` of this same z).
        """
        y, self._forward_pieces = self.spline.forward_unchecked(z, keep_pieces=True)
        return y, z

    def derivative(self, z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return the derivative of the splines.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The pre-activations.

        Returns
        -------
        d : ndarray of shape (n_samples, n_neurons)
            :math:`\\sigma_n'(z_{m,n})`, the slope of the piece right of a knot at it.
        """
        return self.spline.derivative_unchecked(z)

    @property
    def kink_snap(self):
        """knot_snap * step: inputs that close below a grid point take the piece right of it
        (reference.nn.LinearSpline), so the kink window is never narrower."""
        return self._spline.knot_snap * self._spline.step

    def kinks(self, width: int) -> list[tuple[npt.NDArray[np.float64], ...]]:
        """Return the kinks of each spline: the grid points where the slope changes.

        Parameters
        ----------
        width : int
            The number of neurons (unused: the splines fix it).

        Returns
        -------
        kinks : list of tuple of ndarray
            Per neuron, ``(tau, left, right)``: the interior grid points whose slope change
            exceeds the rounding of the slopes, and the slopes left and right of each.
        """
        spline = self.spline
        return [kinks_from_slopes(spline.grid[1:-1], s) for s in spline.slopes()]

    def backward(self, z: npt.NDArray[np.float64], grad_y: npt.NDArray[np.float64],
                 side: npt.NDArray[np.int8] | None = None
                 ) -> tuple[npt.NDArray[np.float64], dict[str, npt.NDArray[np.float64]]]:
        """Backpropagate a gradient through the splines.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The cache of `forward`.
        grad_y : ndarray of shape (n_samples, n_neurons)
            The gradient of the objective in the outputs.
        side : ndarray of shape (n_samples, n_neurons), dtype int8, or None, default=None
            One-sided slopes at kinks for `grad_z`, as in `derivative_at`.

        Returns
        -------
        grad_z : ndarray of shape (n_samples, n_neurons)
            The gradient in the pre-activations.
        grads : dict of str to ndarray
            ``'coefficients'``: the gradient in the coefficients, shape
            (n_neurons, size) (see `LinearSpline.backward`).

        Notes
        -----
        The coefficient gradient does not depend on `side`: :math:`\\sigma(t_k) = c_k` from
        either piece (up to the kernel's snap of s steps, see `LinearSpline`).
        """
        pieces = self._forward_pieces                  # used for the z of that forward only
        if pieces is not None and pieces.x is not z:
            pieces = None
        grad_z, grad_c = self.spline.backward_unchecked(z, grad_y, pieces)
        if side is not None and np.any(side):
            grad_z = grad_y * self.derivative_at(z, side)
        return grad_z, {"coefficients": grad_c}

    @classmethod
    def fresh(cls, width: int, *, spline_init: str = "leaky_relu", size: int = 51,
              range_: float = 4.0, slope: float = 0.01, **_: Any) -> "SplineActivation":
        """Build splines that start from a standard function on DeepSplines' grid.

        Parameters
        ----------
        width : int
            The number of neurons.
        spline_init : str, default='leaky_relu'
            The function (see `LinearSpline.initialise`).
        size : int, default=51
            The number of grid points K.
        range_ : float, default=4.0
            The grid is ``[-range_, range_]``.
        slope : float, default=0.01
            The negative slope of a ``leaky_relu`` start.
        **_
            Options of the other kinds, ignored.

        Returns
        -------
        layer : SplineActivation
            The new layer.
        """
        return cls(LinearSpline.initialise(spline_init, width, size, range_, slope=slope))

    def to_entry(self, put: Callable[[str, npt.ArrayLike], str]) -> dict[str, Any]:
        """Return the layer's model-file entry.

        Parameters
        ----------
        put : callable
            ``put(key, array)`` stores an array in the file and returns its NAME.

        Returns
        -------
        entry : dict
            ``{"type": "spline", "coefficients": NAME, "x_min": float, "step": float}``.
        """
        return {"type": "spline", "coefficients": put("coefficients",
                                                      self.params["coefficients"]),
                "x_min": self.spline.x_min, "step": self.spline.step}

    @classmethod
    def from_entry(cls, read: Any) -> "SplineActivation":
        """Build the layer of a ``spline`` model-file entry.

        Parameters
        ----------
        read : EntryReader
            The entry being read (see `Activation.from_entry`).

        Returns
        -------
        layer : SplineActivation
            The layer.

        Raises
        ------
        ModelFileError
            If the coefficients have fewer than 2 columns or the step is not > 0.
        ValueError
            If a value is outside the supported range of `LinearSpline`.
        """
        coefficients = read.array("coefficients", 2)
        if coefficients.shape[1] < 2:
            raise read.error(f"coefficients need K >= 2 per neuron, "
                             f"shape is {coefficients.shape}")
        x_min = read.number("x_min")
        step = read.number("step")
        if step <= 0:
            raise read.error(f"'step' should be > 0, got {step}")
        return cls(LinearSpline(coefficients, x_min, step))

    def constants(self, width: int) -> dict[str, npt.NDArray[np.float64]]:
        """Return the per-neuron Lip, TV2 and BV2 of the splines, exact.

        Parameters
        ----------
        width : int
            The number of neurons (unused: the splines fix it).

        Returns
        -------
        constants : dict of str to ndarray of shape (n_neurons,)
            ``'lip'``, ``'tv2'``, ``'bv2'`` (see `Activation.constants`).
        """
        return _spline_constants(self.spline)

    def slope_range(self, width: int
                    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Return the smallest and largest slope of each spline.

        Parameters
        ----------
        width : int
            The number of neurons (unused).

        Returns
        -------
        min_slope, max_slope : ndarray of shape (n_neurons,)
            Over all pieces, the unbounded ends included.
        """
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
        """The rounding bound of the spline kernels' evaluation (reference.nn._linear_spline).

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
