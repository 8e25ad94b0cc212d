r"""Linear-spline activations on a uniform grid (`LinearSpline`); the knot form is
reference.nn._knot_spline.

Uniform-grid form (as in DeepSplines), per channel c = 0..C-1 with K coefficients
on the grid t_k = x_min + k*T (k = 0..K-1):

    sigma(x) = sum_k c_k beta1((x - x_min)/T - k)      for x in [t_0, t_{K-1}],

continued linearly outside with the end slopes (c_1 - c_0)/T and (c_{K-1} - c_{K-2})/T.

Knot form: sigma(x) = b0 + b1*x + sum_k a_k (x - tau_k)_+ .  On the uniform grid the
knots are tau_k = t_1..t_{K-2} and the slope jumps are a = (1/T) D2 c.

Supported range: reference.nn._spline_grid (module docstring).

Accuracy of the kernels (u_r = 2^-53, gamma_n = n*u_r/(1 - n*u_r)).  For an input x let
u = (x - x_min)/T exactly and p_k(x) = c_k + (u - k)(c_{k+1} - c_k) the line of piece k.
- Piece: the kernels use k = clip(floor(u + s), 0, K-2) with s = `LinearSpline.knot_snap`
  = KNOT_SNAP + 4*EPS*K (in steps): an input at a knot or less than s steps below it
  takes the piece to the right of the knot (the derivative convention).  Rounding of u
  can move only inputs with |u + s - j| <= delta = gamma_4*|u| + u_r*s for an interior
  knot j (1 <= j <= K-2), i.e. within about two ulps of x - x_min around t_j - s*T: they
  may take piece j-1 or j.  Every other input takes exactly the piece above.
- Value: |computed - p_k(x)| <= gamma_2|c_k| + (gamma_4 k + gamma_5 |u|)|c_{k+1} - c_k|
  + 2^-1074.  On the piece of the exact model this is the error against sigma(x); the
  inputs that take the piece right of a knot j from below (u in [j - s - delta, j)) add
  |u - j| |c_{j+1} - 2c_j + c_{j-1}| <= (s + delta)|D2 c_j|.  The bound involves
  |x - x_min|/T and k, never |x_min|/T: a grid far from 0 (|x_min|/T up to 1e150) is as
  accurate as one at 0.
- Derivative: the slope of piece k, fl(fl(c_{k+1} - c_k)/T), relative error <= gamma_2.
- Backward: grad_x = fl(grad_out * derivative); the coefficient gradient adds
  grad_out*(1 - frac) at c_k and grad_out*frac at c_{k+1}, frac = fl(fl(x - x_min)*fl(1/T)) - k,
  with error <= gamma_{M+16} sum_m |grad_out_m| (1 + |u_m| + 2|u_m - k_m|), M the batch
  size and the sum over the rows that touch the coefficient (a few roundings per term,
  then the sums).
- Overflow: the value is formed as b_k + (x - x_min)*slope_k (b_k = c_k - k*dc_k), so it
  is exact to the bound above for every finite x (0 on a flat end, even at x = -1.7e308)
  and overflows only where |sigma(x)| itself is beyond float64; the checked `__call__`
  raises ValueError there, and the checked `backward` when a gradient overflows (its
  coefficient part needs (x - x_min)/T; the unchecked kernels return inf or NaN there).
- Grid points computed in floating point as x_min + k*T (as `grid` does) take the piece
  right of knot k whenever max(|t_0|, |t_{K-1}|) <= GRID_POINT_RATIO*T (9000: every
  DeepSplines grid [-r, r] with K <= 18001): their rounding, u_r*(k + |t_k|/T) steps,
  is then below the snap.  On grids farther from 0 a computed grid point may round below
  t_k by more than s steps and then takes the left piece, the exact model's answer there.

Kernels: reference.nn._kernels, the NumPy reference or the same operations fused by
numba (optional; bit for bit the same results).  float64, no training logic.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from reference._numerics import EPS, as_real_array, check_nonnegative
from reference.nn import _kernels as kernels
from reference.nn._kernels import Pieces, num_threads, set_num_threads  # noqa: F401
from reference.nn._knot_spline import KnotSpline
from reference.nn._spline_grid import (
    MAX_MAGNITUDE,
    MAX_STEP,
    MIN_STEP,
    _coefficients,
    _grid_indices,
    _real_in,
    _second_difference,
    _size,
    grid_from_range,
    zero_one,
)

CHUNK_ELEMENTS = 131072          # entries per row block of the forward / backward kernels
KNOT_SNAP = 1e-12                # inputs within KNOT_SNAP * step below a grid point count as on it


def _piece_arrays(pieces: Pieces | None) -> list:
    """The arrays a backward reads from `pieces` (none when it locates again)."""
    return [] if pieces is None else [a for a in (pieces.index, pieces.fraction)
                                      if a is not None]


class LinearSpline:
    r"""C linear splines on one uniform grid (DeepSplines' parametrisation).

    Parameters
    ----------
    coefficients : array_like of shape (n_channels, size)
        The values :math:`c_{c,k} = \sigma_c(t_k)` at the grid points
        :math:`t_k = x_{\min} + kT`, :math:`k = 0, \dots, K-1`, K = size >= 2; every entry
        0 or of magnitude in [1e-200, 1e100].
    x_min : float
        The first grid point :math:`t_0`, with :math:`|x_{\min}| \le 10^{100}`.
    step : float
        The grid step T, in [1e-50, 1e50].

    Attributes
    ----------
    coefficients : ndarray of shape (n_channels, size)
        The coefficients as float64 (training updates them in place).
    x_min : float
        The first grid point.
    step : float
        The grid step.

    Raises
    ------
    ValueError
        If a parameter is not finite or lies outside the supported range (the message
        names the argument).

    See Also
    --------
    KnotSpline : The same splines in knot form, with free knots.
    grid_from_range : DeepSplines' grid on [-R, R].

    Notes
    -----
    Spline c maps column c of an input x of shape (n_samples, n_channels):

    .. math::

        \sigma_c(x) = \sum_{k=0}^{K-1} c_{c,k}\, \beta_1\!\left(\frac{x - x_{\min}}{T}
        - k\right) \quad \text{for } x \in [t_0, t_{K-1}],

    with :math:`\beta_1` the linear B-spline (the hat function), continued linearly
    outside with the end slopes :math:`(c_1 - c_0)/T` and :math:`(c_{K-1} - c_{K-2})/T`.
    At a knot the derivative is the slope of the piece to the right.  The module
    docstring states the supported range and the accuracy of every operation.

    References
    ----------
    .. [1] P. Bohra, J. Campos, H. Gupta, S. Aziznejad, M. Unser, "Learning Activation
       Functions in Deep (Spline) Neural Networks", IEEE Open Journal of Signal
       Processing 1, 2020.
    .. [2] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With
       Trainable Activations and Controlled Lipschitz Constant", IEEE Trans. Signal
       Process. 68, 2020, arXiv:2001.06263.

    Examples
    --------
    >>> import numpy as np
    >>> from reference.nn import LinearSpline
    >>> spline = LinearSpline.initialise("relu", num_channels=1, size=5, range_=2.0)
    >>> spline.grid
    array([-2., -1.,  0.,  1.,  2.])
    >>> spline(np.array([[-1.5], [0.5], [3.0]]))
    array([[0. ],
           [0.5],
           [3. ]])
    >>> spline.tv2(), spline.lipschitz()
    (array([1.]), array([1.]))
    """

    def __init__(self, coefficients: npt.ArrayLike, x_min: float, step: float):
        self.coefficients = _coefficients(coefficients)
        self.x_min = _real_in(x_min, "x_min", -MAX_MAGNITUDE, MAX_MAGNITUDE)
        self.step = _real_in(step, "step", MIN_STEP, MAX_STEP)

    # ------------------------------------------------------------------ basics
    @property
    def num_channels(self) -> int:
        """The number of splines C (channels)."""
        return self.coefficients.shape[0]

    @property
    def size(self) -> int:
        """The number of coefficients per spline K."""
        return self.coefficients.shape[1]

    @property
    def grid(self) -> np.ndarray:
        """Grid points t_k = x_min + k*step (rounded), shape (K,)."""
        return self.x_min + self.step * np.arange(self.size)

    @property
    def knot_snap(self) -> float:
        """s = KNOT_SNAP + 4*EPS*K: inputs less than s steps below a knot take the piece to
        its right (s covers the rounding of (x - x_min)/step, <= 4 u_r K steps on the grid)."""
        return KNOT_SNAP + 4 * EPS * self.size

    def copy(self) -> "LinearSpline":
        """Return a copy with its own coefficient array.

        Returns
        -------
        spline : LinearSpline
            The same splines on the same grid.
        """
        return LinearSpline(self.coefficients.copy(), self.x_min, self.step)

    def _check_input(self, x, name="x") -> tuple[np.ndarray, float]:
        """x as a finite float64 array of shape (M, C), and max |x| (0 when empty): the
        finiteness check and the maximum share one pass (min and max)."""
        x = self._check_shape(x, name)
        if x.size == 0:
            return x, 0.0
        low, high = x.min(), x.max()                          # NaN propagates
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError(f"{name}: expected finite values, found NaN or inf")
        return x, float(max(-low, high))

    def _check_shape(self, x, name="x") -> np.ndarray:
        """x as a float64 array of shape (M, C); its values are checked by the callers."""
        x = as_real_array(x, name)
        if x.ndim != 2 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"{name}: expected shape (M, {self.num_channels}), got {x.shape}")
        return x

    # ------------------------------------------------------ evaluation
    # The kernels (reference.nn._kernels) run on row blocks of about CHUNK_ELEMENTS
    # entries, shared among `num_threads` threads; blocks depend on the shape alone and
    # their partial sums are added in order: results depend neither on the thread count
    # nor on the backend (numba or numpy, bit for bit the same).  The checked calls need
    # no pass of their own over the inputs: a NaN or inf input, or an overflow, makes an
    # output non-finite, which the kernels report block by block; only then are the
    # inputs examined, to name the cause.

    def _piece_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat tables indexed like coefficients.ravel(), for the line of piece k written
        from x_min: p_k(x) = b_k + (x - x_min)*slope_k, with dc_k = c_{k+1} - c_k,
        slope_k = dc_k/T and b_k = c_k - k*dc_k (dc = 0 in the unused last slot)."""
        c = self.coefficients
        dc = np.empty_like(c)
        np.subtract(c[:, 1:], c[:, :-1], out=dc[:, :-1])
        dc[:, -1] = 0.0
        intercepts = c - _grid_indices(self.size) * dc
        return intercepts.ravel(), np.divide(dc, self.step, out=dc).ravel()

    def _grid(self) -> kernels.Grid:
        """The kernels' view of the spline: x_min, fl(1/T), the snap, K, C and the tables."""
        intercepts, slopes = self._piece_tables()
        return kernels.Grid(self.x_min, 1.0 / self.step, self.knot_snap, self.size,
                            self.num_channels, intercepts, slopes)

    def _block_rows(self) -> int:
        return max(1, CHUNK_ELEMENTS // self.num_channels)

    @staticmethod
    def _check_out(out, shape: tuple, name: str, *inputs) -> np.ndarray | None:
        """`out` if it can receive a result of this shape: a writeable, C-contiguous
        float64 ndarray of exactly that shape sharing no memory with the inputs (None
        passes through: the kernels then allocate).  ValueError naming `name` otherwise."""
        if out is None:
            return None
        if not isinstance(out, np.ndarray) or out.dtype != np.float64:
            raise ValueError(f"{name}: expected a float64 numpy array, got "
                             f"{getattr(out, 'dtype', type(out).__name__)}")
        if out.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {out.shape}")
        if not (out.flags.c_contiguous and out.flags.writeable):
            raise ValueError(f"{name}: expected a writeable, C-contiguous array")
        if any(np.may_share_memory(out, a) for a in inputs):
            raise ValueError(f"{name}: shares memory with an input; give a separate array")
        return out

    def _check_grad_x_out(self, grad_x_out, x, grad_out, pieces) -> np.ndarray | None:
        """`_check_out` for a backward's grad_x_out: it may overlap neither x, grad_out nor
        the arrays the backward reads from `pieces` (nothing is looked at when it is None)."""
        if grad_x_out is None:
            return None
        return self._check_out(grad_x_out, x.shape, "grad_x_out", x, grad_out,
                               *_piece_arrays(pieces))

    def __call__(self, x: npt.ArrayLike,
                 out: npt.NDArray[np.float64] | None = None) -> npt.NDArray[np.float64]:
        """sigma(x) for x of shape (M, C); returns (M, C), written into `out` when given
        (see `_check_out`; the result is the same bit for bit).  ValueError (naming x) if
        x is not finite or some |sigma(x)| is beyond the float64 range."""
        return self._forward_checked(x, keep=False, out=out)[0]

    def forward(self, x: npt.ArrayLike, out: npt.NDArray[np.float64] | None = None
                ) -> tuple[npt.NDArray[np.float64], Pieces]:
        """Evaluate the splines and keep where the inputs lie, for `backward`.

        Parameters
        ----------
        x : array_like of shape (n_samples, n_channels)
            Finite inputs; column c goes through spline c.
        out : ndarray of shape (n_samples, n_channels) or None, default=None
            Where to write the values: a writeable, C-contiguous float64 array sharing no
            memory with `x` (the result is the same bit for bit).  None allocates.

        Returns
        -------
        y : ndarray of shape (n_samples, n_channels)
            :math:`\\sigma_c(x_{m,c})`.
        pieces : Pieces
            Where the inputs lie and the piece tables of these coefficients; given to
            `backward` with the same `x`, which then need not locate the inputs again.

        Raises
        ------
        ValueError
            If `x` has the wrong shape or is not finite, `out` is not as above, or some
            :math:`|\\sigma(x)|` is beyond the float64 range.
        """
        return self._forward_checked(x, keep=True, out=out)

    def _forward_checked(self, x, keep: bool, out=None):
        source, x = x, self._check_shape(x)
        out = self._check_out(out, x.shape, "out", x)
        with np.errstate(over="ignore", invalid="ignore"):           # reported below
            out, pieces, finite = kernels.forward(self._grid(), x, self._block_rows(),
                                                  keep=keep, check=True, source=source,
                                                  out=out)
        if not finite:
            _, x_max = self._check_input(x)                          # names a NaN or inf
            slopes = float(np.abs(self._piece_tables()[1]).max())
            raise ValueError(
                f"x: sigma(x) is beyond the float64 range for some inputs (largest |x| "
                f"{x_max:.3g}, largest |slope| {slopes:.3g})")
        return out, pieces

    def forward_unchecked(self, x: npt.NDArray[np.float64], keep_pieces: bool = False,
                          out: npt.NDArray[np.float64] | None = None
                          ) -> npt.NDArray[np.float64] | tuple[npt.NDArray[np.float64],
                                                               Pieces]:
        """Evaluate the splines without checking the input (the training loop's forward).

        Parameters
        ----------
        x : ndarray of shape (n_samples, n_channels)
            A finite float64 array (not checked).
        keep_pieces : bool, default=False
            Also return where the inputs lie, for `backward_unchecked`.
        out : ndarray of shape (n_samples, n_channels) or None, default=None
            Where to write the values, as in `forward` (checked: cheap, and a wrong one
            would corrupt memory).

        Returns
        -------
        y : ndarray of shape (n_samples, n_channels)
            :math:`\\sigma_c(x_{m,c})`; +-inf where it is beyond float64, never NaN.
        pieces : Pieces
            Only with `keep_pieces`.
        """
        out = self._check_out(out, x.shape, "out", x)
        out, pieces, _ = kernels.forward(self._grid(), x, self._block_rows(), keep=keep_pieces,
                                         out=out)
        return (out, pieces) if keep_pieces else out

    def derivative(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Return the derivative of the splines at x.

        Parameters
        ----------
        x : array_like of shape (n_samples, n_channels)
            Finite inputs.

        Returns
        -------
        d : ndarray of shape (n_samples, n_channels)
            :math:`\\sigma_c'(x_{m,c})`; at a knot, the slope of the piece to the right.

        Raises
        ------
        ValueError
            If `x` has the wrong shape or is not finite.
        """
        return self.derivative_unchecked(self._check_input(x)[0])

    def derivative_unchecked(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return the derivative of the splines at x, without checking x.

        Parameters
        ----------
        x : ndarray of shape (n_samples, n_channels)
            A finite float64 array (not checked).

        Returns
        -------
        d : ndarray of shape (n_samples, n_channels)
            :math:`\\sigma_c'(x_{m,c})`, the slope of the piece of each entry.
        """
        return kernels.derivative(self._grid(), x, self._block_rows())

    def _check_pieces(self, pieces, x) -> None:
        if not isinstance(pieces, Pieces) or pieces.x is not x:
            raise ValueError("pieces: expected the pieces returned by the forward pass of "
                             "this same x (forward or forward_unchecked(x, keep_pieces=True))")
        if pieces.grid.size != self.size or pieces.grid.channels != self.num_channels:
            raise ValueError(f"pieces: made by a spline of shape ({pieces.grid.channels}, "
                             f"{pieces.grid.size}), this one is {self.coefficients.shape}")

    def backward(self, x: npt.ArrayLike, grad_out: npt.ArrayLike, pieces: Pieces | None = None,
                 grad_x_out: npt.NDArray[np.float64] | None = None
                 ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        r"""Vector-Jacobian products of :math:`y = \sigma(x)`.

        Parameters
        ----------
        x : array_like of shape (n_samples, n_channels)
            The inputs of the forward pass.
        grad_out : array_like of shape (n_samples, n_channels)
            The gradient of the objective in y.
        pieces : Pieces or None, default=None
            From `forward` of the same `x` object: the derivatives are then those of the
            coefficients at that forward pass, and `x` is not examined again.
        grad_x_out : ndarray of shape (n_samples, n_channels) or None, default=None
            Where to write `grad_x` (as `out` in `forward`; overlapping neither `x`,
            `grad_out` nor the arrays of `pieces`).

        Returns
        -------
        grad_x : ndarray of shape (n_samples, n_channels)
            The gradient in x.
        grad_coefficients : ndarray of shape (n_channels, size)
            The gradient in the coefficients.

        Raises
        ------
        ValueError
            If the shapes do not match, `pieces` is not from the forward pass of this `x`,
            an input is not finite, or a gradient is beyond the float64 range (the message
            names `x` and `grad_out`).

        Notes
        -----
        .. math::

            \mathrm{grad\_x}_{m,c} = g_{m,c}\, \sigma_c'(x_{m,c}), \qquad
            \mathrm{grad\_coefficients}_{c,k} = \sum_m g_{m,c}\,
            \frac{\partial \sigma_c(x_{m,c})}{\partial c_k},

        with :math:`g` = `grad_out` and :math:`\partial\sigma/\partial c_k = 1 - \phi` at the
        left end k of the piece of x, :math:`\phi` at its right end k + 1,
        :math:`\phi = (x - t_k)/T` (outside [0, 1] in the extrapolated ends).
        """
        if pieces is not None:
            self._check_pieces(pieces, x)
        x = self._check_shape(x)
        grad_out = self._check_shape(grad_out, "grad_out")
        if grad_out.shape != x.shape:
            raise ValueError(f"grad_out: expected shape {x.shape}, got {grad_out.shape}")
        grad_x_out = self._check_grad_x_out(grad_x_out, x, grad_out, pieces)
        if pieces is None:
            self._check_input(x)
        with np.errstate(over="ignore", invalid="ignore"):           # reported below
            grad_x, grad_c, finite = kernels.backward(
                self._grid() if pieces is None else None, x, grad_out, self._block_rows(),
                pieces, check=True, grad_x=grad_x_out)
        if not (finite and np.all(np.isfinite(grad_c))):
            _, x_max = self._check_input(x)
            _, g_max = self._check_input(grad_out, "grad_out")       # names a NaN or inf
            slope_max = float(np.abs(self._piece_tables()[1]).max())
            frac_max = (x_max + abs(self.x_min)) / self.step + self.size
            raise ValueError(
                f"x, grad_out: the gradients are not representable in float64 (largest "
                f"|grad_out| {g_max:.3g}, largest |slope| {slope_max:.3g}; the coefficient "
                f"gradient sums grad_out * (x - t_k)/step, here up to {frac_max:.3g} steps, "
                f"over {x.shape[0]} rows)")
        return grad_x, grad_c.reshape(self.coefficients.shape)

    def backward_unchecked(self, x: npt.NDArray[np.float64], grad_out: npt.NDArray[np.float64],
                           pieces: Pieces | None = None,
                           grad_x_out: npt.NDArray[np.float64] | None = None
                           ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """`backward` for finite float64 arrays, without checking them.

        Parameters
        ----------
        x : ndarray of shape (n_samples, n_channels)
            The inputs of the forward pass (not checked).
        grad_out : ndarray of shape (n_samples, n_channels)
            The gradient of the objective in y (not checked).
        pieces : Pieces or None, default=None
            As in `backward` (checked).
        grad_x_out : ndarray of shape (n_samples, n_channels) or None, default=None
            As in `backward` (checked).

        Returns
        -------
        grad_x : ndarray of shape (n_samples, n_channels)
            The gradient in x; inf or NaN where it is beyond float64.
        grad_coefficients : ndarray of shape (n_channels, size)
            The gradient in the coefficients; inf or NaN where it, or
            (x - x_min)/step, is beyond float64.
        """
        if pieces is not None:
            self._check_pieces(pieces, x)
        grad_x_out = self._check_grad_x_out(grad_x_out, x, grad_out, pieces)
        grad_x, grad_c, _ = kernels.backward(self._grid() if pieces is None else None, x,
                                             grad_out, self._block_rows(), pieces,
                                             grad_x=grad_x_out)
        return grad_x, grad_c.reshape(self.coefficients.shape)

    # ------------------------------------------------------ regularisers
    def slopes(self) -> npt.NDArray[np.float64]:
        """Return the slopes of the K - 1 linear pieces on the grid.

        Returns
        -------
        slopes : ndarray of shape (n_channels, size - 1)
            :math:`(c_{k+1} - c_k)/T`.  The two unbounded ends continue the first and the
            last of them.
        """
        return np.diff(self.coefficients, axis=1) / self.step

    def jumps(self) -> npt.NDArray[np.float64]:
        """Return the slope jumps at the interior grid points (the knots).

        Returns
        -------
        jumps : ndarray of shape (n_channels, size - 2)
            :math:`a = \\frac{1}{T} D_2 c` at the knots :math:`t_1, \\dots, t_{K-2}`, with
            :math:`(D_2 c)_j = c_j - 2 c_{j+1} + c_{j+2}`.
        """
        return np.diff(self.coefficients, n=2, axis=1) / self.step

    def tv2(self) -> npt.NDArray[np.float64]:
        """Return the second-order total variation of each spline.

        Returns
        -------
        tv2 : ndarray of shape (n_channels,)
            :math:`\\mathrm{TV}^{(2)}(\\sigma_c) = \\sum_k |a_k| = \\|D_2 c\\|_1 / T`.
        """
        return np.abs(self.jumps()).sum(axis=1)

    def tv2_grad(self) -> npt.NDArray[np.float64]:
        """Return a subgradient of the summed TV2 in the coefficients.

        Returns
        -------
        grad : ndarray of shape (n_channels, size)
            :math:`D_2^\\top \\operatorname{sign}(D_2 c) / T`, a subgradient of
            :math:`\\sum_c \\mathrm{TV}^{(2)}(\\sigma_c)`.

        Notes
        -----
        :math:`\\operatorname{sign}(D_2 c / T) = \\operatorname{sign}(D_2 c)` (T > 0; a
        nonzero jump never underflows to 0, module docstring), and
        :math:`\\operatorname{sign}(D_2 c) D_2` is exact in any order (integers below 5).
        """
        dc = np.diff(self.coefficients, axis=1)
        return np.sign(dc[:, 1:] - dc[:, :-1]) @ _second_difference(self.size) / self.step

    def values_at_zero_one(self) -> npt.NDArray[np.float64]:
        """Return the values of the splines at 0 and 1.

        Returns
        -------
        values : ndarray of shape (2, n_channels)
            Row 0 :math:`\\sigma_c(0)`, row 1 :math:`\\sigma_c(1)`.
        """
        return self(zero_one(self.num_channels))

    def bv2(self) -> npt.NDArray[np.float64]:
        """Return the BV2 norm of each spline (DeepSplines' convention).

        Returns
        -------
        bv2 : ndarray of shape (n_channels,)
            :math:`\\|\\sigma_c\\|_{\\mathrm{BV}^{(2)}} = \\mathrm{TV}^{(2)}(\\sigma_c)
            + |\\sigma_c(0)| + |\\sigma_c(1)|`.
        """
        return self.tv2() + np.abs(self.values_at_zero_one()).sum(axis=0)

    def bv2_grad(self) -> npt.NDArray[np.float64]:
        """Return a subgradient of the summed BV2 norm in the coefficients.

        Returns
        -------
        grad : ndarray of shape (n_channels, size)
            A subgradient of :math:`\\sum_c \\|\\sigma_c\\|_{\\mathrm{BV}^{(2)}}`: `tv2_grad`
            plus the gradient of :math:`|\\sigma_c(0)| + |\\sigma_c(1)|`.
        """
        signs = np.sign(self.values_at_zero_one())
        _, g = self.backward(zero_one(self.num_channels), signs)
        return self.tv2_grad() + g

    def lipschitz(self) -> npt.NDArray[np.float64]:
        """Return the Lipschitz constant of each spline.

        Returns
        -------
        lip : ndarray of shape (n_channels,)
            :math:`\\mathrm{Lip}(\\sigma_c) = \\max_k |s_k|`, the largest slope magnitude
            over all pieces (the unbounded ends included).
        """
        return np.abs(self.slopes()).max(axis=1)

    def slope_range(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Return the smallest and largest slope of each spline.

        Returns
        -------
        min_slope : ndarray of shape (n_channels,)
            The smallest slope over all pieces.
        max_slope : ndarray of shape (n_channels,)
            The largest slope over all pieces.
        """
        s = self.slopes()
        return s.min(axis=1), s.max(axis=1)

    # ------------------------------------------------------ knots
    def knot_tolerance(self, tol: float | None = None) -> npt.NDArray[np.float64]:
        """Return the per-channel tolerance for counting knots.

        Parameters
        ----------
        tol : float or None, default=None
            An absolute tolerance >= 0, used as given; None chooses one per channel.

        Returns
        -------
        tols : ndarray of shape (n_channels,)
            With `tol` None, :math:`\\max(10^{-6} \\max_k |a_k|,\\ 64\\,\\epsilon
            \\max_k |c_k| / T)`: relative to the largest jump, never below the round-off
            level of :math:`a = D_2 c / T`.

        Raises
        ------
        ValueError
            If `tol` is not a finite number >= 0.
        """
        floor = 64 * EPS * np.abs(self.coefficients).max(axis=1) / self.step
        if tol is None:
            rel = 1e-6 * np.abs(self.jumps()).max(axis=1, initial=0.0)
            return np.maximum(rel, floor)
        tol = check_nonnegative(tol, "tol")
        return np.full(self.num_channels, tol)

    def knots(self, tol: float | None = None
              ) -> tuple[list[npt.NDArray[np.float64]], npt.NDArray[np.float64]]:
        """Return the knots of each spline: the grid points where the slope jumps.

        Parameters
        ----------
        tol : float or None, default=None
            The tolerance, as in `knot_tolerance`: a knot is :math:`|a_k| >` tol.

        Returns
        -------
        positions : list of ndarray
            Per channel, the knot positions, shape (n_knots_c,).
        tols : ndarray of shape (n_channels,)
            The tolerance used.

        Raises
        ------
        ValueError
            If `tol` is not a finite number >= 0.
        """
        tols = self.knot_tolerance(tol)
        a = self.jumps()
        inner = self.grid[1:-1]
        return [inner[np.abs(a[c]) > tols[c]] for c in range(self.num_channels)], tols

    def num_knots(self, tol: float | None = None
                  ) -> tuple[npt.NDArray[np.int_], npt.NDArray[np.float64]]:
        """Return the number of knots of each spline, with the tolerance used.

        Parameters
        ----------
        tol : float or None, default=None
            The tolerance, as in `knot_tolerance`.

        Returns
        -------
        counts : ndarray of shape (n_channels,)
            The number of knots per channel.
        tols : ndarray of shape (n_channels,)
            The per-channel tolerance the count used (that of `knots`).

        Raises
        ------
        ValueError
            If `tol` is negative, NaN or infinite.
        """
        positions, tols = self.knots(tol)
        return np.array([len(p) for p in positions]), tols

    # ------------------------------------------------------ conversions
    def to_knot_form(self) -> "KnotSpline":
        """Return the same splines in knot form.

        Returns
        -------
        spline : KnotSpline
            :math:`b_1` the first slope, :math:`b_0 = c_0 - b_1 t_0`, knots
            :math:`t_1, \\dots, t_{K-2}` and jumps :math:`a = D_2 c / T`.  Every grid knot
            is kept (a jump may be zero); `KnotSpline.pruned` drops them.

        Notes
        -----
        Exact when these are floats (e.g. dyadic x_min, step and coefficients); otherwise
        each is rounded once or twice, and the knots are the computed grid points
        fl(x_min + k*step), :math:`u_r (k + |t_k|/T)` steps from :math:`t_k` at most: on a
        grid far from 0 (large :math:`|t_k|/T`) the knot form is accurate to about
        :math:`u_r |t_k|/T\\, |D_2 c|` only.
        """
        b1 = (self.coefficients[:, 1] - self.coefficients[:, 0]) / self.step
        b0 = self.coefficients[:, 0] - b1 * self.x_min
        a = self.jumps()
        inner = self.grid[1:-1]
        return KnotSpline(b0, b1, [inner.copy() for _ in range(self.num_channels)], list(a))

    @classmethod
    def from_knot_form(cls, spline: "KnotSpline", x_min: float, step: float, size: int,
                       atol: float = 1e-9) -> "LinearSpline":
        """Sample a knot-form spline on the grid x_min + k*step (k < size).

        Parameters
        ----------
        spline : KnotSpline
            The splines; every knot must lie on an interior grid point.
        x_min : float
            The first grid point.
        step : float
            The grid step T.
        size : int
            The number of grid points K >= 2.
        atol : float, default=1e-9
            How far (in steps) a knot may lie from its grid point, on top of the rounding
            of a grid point computed in floating point, :math:`4 \\epsilon (|\\tau| +
            |x_{\\min}|)`.

        Returns
        -------
        spline : LinearSpline
            Coefficients the knot form's values at the computed grid points (exact up to
            the rounding of that evaluation).

        Raises
        ------
        ValueError
            If a knot is not on an interior grid point, or the grid is outside the
            supported range.
        """
        x_min = _real_in(x_min, "x_min", -MAX_MAGNITUDE, MAX_MAGNITUDE)
        step = _real_in(step, "step", MIN_STEP, MAX_STEP)
        size = _size(size)
        for c, tau in enumerate(spline.knots):
            u = (tau - x_min) / step
            slack = atol + 4 * EPS * (np.abs(tau) + abs(x_min)) / step
            off = np.abs(u - np.round(u)) > slack
            outside = (np.round(u) < 1) | (np.round(u) > size - 2)
            if np.any(off | outside):
                raise ValueError(
                    f"spline: channel {c} has knots {tau[off | outside]} that are not interior "
                    f"points of the grid x_min={x_min}, step={step}, size={size}")
        grid = x_min + step * np.arange(size)
        return cls(spline(np.tile(grid[:, None], (1, spline.num_channels))).T, x_min, step)

    @classmethod
    def from_slopes(cls, c0: npt.ArrayLike, slopes: npt.ArrayLike, x_min: float,
                    step: float) -> "LinearSpline":
        """Build splines from their first value and their piece slopes.

        Parameters
        ----------
        c0 : array_like of shape (n_channels,)
            The values :math:`c_0` at the first grid point.
        slopes : array_like of shape (n_channels, size - 1)
            The slopes :math:`s_k` of the pieces.
        x_min : float
            The first grid point.
        step : float
            The grid step T.

        Returns
        -------
        spline : LinearSpline
            Coefficients :math:`c = c_0 + T \\operatorname{cumsum}([0, s])`.

        Raises
        ------
        ValueError
            If the coefficients or the grid are outside the supported range.
        """
        slopes = np.asarray(slopes, dtype=np.float64)
        steps = np.concatenate([np.zeros((slopes.shape[0], 1)), step * slopes], axis=1)
        return cls(np.asarray(c0, dtype=np.float64)[:, None] + np.cumsum(steps, axis=1),
                   x_min, step)

    # ------------------------------------------------------ sparsification
    def sparsify(self, threshold: float) -> tuple["LinearSpline", dict]:
        """Zero the small slope jumps and rebuild the coefficients exactly.

        Parameters
        ----------
        threshold : float
            A finite number >= 0: the jumps with :math:`|a_k| \\le` threshold are set to 0.

        Returns
        -------
        spline : LinearSpline
            The sparsified splines on the same grid.
        report : dict
            Per channel, each of shape (n_channels,): ``knots_removed`` and ``knots_left``
            (both counted with this spline's `knot_tolerance`, reported as
            ``knot_tolerance``; removed + left = knots before), ``max_change_on_grid``
            :math:`\\max_k |\\hat c_k - c_k|`, and ``end_slope_change``, the change of the
            right end slope (beyond the grid the change grows at most linearly with it);
            and ``threshold``.

        Raises
        ------
        ValueError
            If `threshold` is not a finite number >= 0.

        Notes
        -----
        As in DeepSplines, :math:`c_0` and :math:`c_1` (hence the leftmost piece) are kept;
        with :math:`\\hat a` the thresholded jumps, the slopes are
        :math:`s_0 + \\operatorname{cumsum}(\\hat a)` and
        :math:`\\hat c = c_0 + T \\operatorname{cumsum}([0, s])`.
        """
        threshold = check_nonnegative(threshold, "threshold")
        a = self.jumps()
        tol = self.knot_tolerance()
        is_knot = np.abs(a) > tol[:, None]
        small = np.abs(a) <= threshold
        a_hat = np.where(small, 0.0, a)
        s0 = (self.coefficients[:, 1] - self.coefficients[:, 0]) / self.step
        slopes = s0[:, None] + np.concatenate(
            [np.zeros((a.shape[0], 1)), np.cumsum(a_hat, axis=1)], axis=1)
        new = LinearSpline.from_slopes(self.coefficients[:, 0], slopes, self.x_min, self.step)
        report = {
            "threshold": threshold,
            "knot_tolerance": tol,
            "knots_removed": (is_knot & small).sum(axis=1),
            "knots_left": (is_knot & ~small).sum(axis=1),
            "max_change_on_grid": np.abs(new.coefficients - self.coefficients).max(axis=1),
            "end_slope_change": np.abs(new.slopes()[:, -1] - self.slopes()[:, -1]),
        }
        return new, report

    # ------------------------------------------------------ initialisations
    @classmethod
    def initialise(cls, name: str, num_channels: int, size: int, range_: float,
                   slope: float = 0.01) -> "LinearSpline":
        """Build splines that interpolate a standard function on DeepSplines' grid.

        Parameters
        ----------
        name : {'relu', 'leaky_relu', 'identity', 'abs', 'even_odd'}
            The function f: ``even_odd`` is :math:`|x|` on the first half of the channels
            and the soft-threshold :math:`\\operatorname{sign}(x) \\max(|x| - 1/2, 0)` on
            the rest.
        num_channels : int
            The number of splines C >= 1.
        size : int
            The number of grid points K (see `grid_from_range`).
        range_ : float
            The grid is ``[-range_, range_]``.
        slope : float, default=0.01
            The negative slope of ``leaky_relu``.

        Returns
        -------
        spline : LinearSpline
            Coefficients :math:`c_k = f(t_k)`.

        Raises
        ------
        ValueError
            If `name` is unknown, `num_channels` < 1, or the grid is outside the supported
            range.
        """
        num_channels = int(num_channels)
        if num_channels < 1:
            raise ValueError(f"num_channels: expected an integer >= 1, got {num_channels}")
        x_min, step = grid_from_range(size, range_)
        t = np.tile(x_min + step * np.arange(int(size)), (num_channels, 1))
        inits: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            "relu": lambda t: np.maximum(t, 0.0),
            "leaky_relu": lambda t: np.where(t >= 0, t, slope * t),
            "identity": lambda t: t.copy(),
            "abs": np.abs,
            "even_odd": lambda t: np.concatenate(
                [np.abs(t[: num_channels // 2]),
                 np.sign(t[num_channels // 2:])
                 * np.maximum(np.abs(t[num_channels // 2:]) - 0.5, 0)]),
        }
        if name not in inits:
            raise ValueError(f"init: expected one of {sorted(inits)}, got {name!r}")
        return cls(inits[name](t), x_min, step)
