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

from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from reference._numerics import UNIT_ROUNDOFF, as_finite_array, check_choice, gamma
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
    def fresh(cls, width: int, **options: Any) -> "Activation":
        """Build a fresh layer of this kind and width (what `make_activation` builds).

        Parameters
        ----------
        width : int
            The number of neurons N.
        **options
            The options of `make_activation`; each kind takes the ones it uses.

        Returns
        -------
        layer : Activation
            The new layer.
        """
        return cls()

    def to_entry(self, put: Callable[[str, npt.ArrayLike], str]) -> dict[str, Any]:
        """Return the layer's model-file entry.

        Parameters
        ----------
        put : callable
            ``put(key, array)`` stores an array in the file and returns its NAME.

        Returns
        -------
        entry : dict
            ``{"type": kind}`` plus the layer's fields.
        """
        return {"type": self.kind}

    @classmethod
    def from_entry(cls, read: Any) -> "Activation":
        """Build the layer of a model-file entry.

        Parameters
        ----------
        read : EntryReader
            The entry being read: ``read.array(key, ndim)`` and ``read.number(key)`` are
            its validated fields, ``read.error(message)`` the error naming the layer.

        Returns
        -------
        layer : Activation
            The layer.
        """
        return cls()

    def constants(self, width: int) -> dict[str, npt.NDArray[np.float64]]:
        r"""Return the per-neuron constants that the Lipschitz bounds use.

        Parameters
        ----------
        width : int
            The number of neurons N.

        Returns
        -------
        constants : dict of str to ndarray of shape (width,)
            ``'lip'``: :math:`\mathrm{Lip}(\sigma_n)`; ``'tv2'``:
            :math:`\mathrm{TV}^{(2)}(\sigma_n)`; ``'bv2'``:
            :math:`\mathrm{TV}^{(2)}(\sigma_n) + |\sigma_n(0)| + |\sigma_n(1)|`.

        Raises
        ------
        TypeError
            If the kind gives no such constants.
        """
        raise TypeError(f"layer: {type(self).__name__} gives no per-neuron constants")

    def slope_range(self, width: int
                    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Return the per-neuron range of slopes, over all pieces.

        Parameters
        ----------
        width : int
            The number of neurons N.

        Returns
        -------
        min_slope : ndarray of shape (width,)
            The smallest slope of each neuron's activation.
        max_slope : ndarray of shape (width,)
            The largest slope.

        Raises
        ------
        TypeError
            If the kind gives no slope range.
        """
        raise TypeError(f"layer: {type(self).__name__} gives no slope range")

    def kinks(self, width: int) -> list[tuple[npt.NDArray[np.float64], ...]]:
        """Return the kinks of each neuron's activation (where the slope changes).

        Parameters
        ----------
        width : int
            The number of neurons N.

        Returns
        -------
        kinks : list of tuple of ndarray
            Per neuron, ``(tau, left, right)``, each of shape (n_kinks,): the kinks,
            sorted, and the slopes just left and right of each.
        """
        raise NotImplementedError

    def on_kink(self, z: npt.NDArray[np.float64], knot_tol: float,
                magnitude: float | npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        r"""Tell which pre-activations lie on a kink, within a window relative to their scale.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The pre-activations.
        knot_tol : float
            The relative half-width of the window.
        magnitude : float or ndarray of shape (n_samples, n_neurons)
            The scale of z, no default: the oracle passes the :math:`|W| |y| + |b|` bound
            of ``reference.oracle``; a window tied to 1 would hold every sample of a
            network whose pre-activations are 1e-12.

        Returns
        -------
        mask : ndarray of shape (n_samples, n_neurons), dtype bool
            :math:`|z - \tau| \le \max(\mathrm{knot\_tol} \cdot \max(\mathrm{magnitude},
            |\tau|), \mathrm{kink\_snap})` for the nearest kink :math:`\tau`.
        """
        return self.kink_windows(z, knot_tol, magnitude)[0]

    def kink_windows(self, z: npt.NDArray[np.float64], knot_tol: float,
                     magnitude: float | npt.NDArray[np.float64]
                     ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64],
                                npt.NDArray[np.float64]]:
        r"""Return the kink windows around the pre-activations.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The pre-activations.
        knot_tol : float
            The relative half-width of the window.
        magnitude : float or ndarray of shape (n_samples, n_neurons)
            The scale of z, as in `on_kink`.

        Returns
        -------
        on_kink : ndarray of shape (n_samples, n_neurons), dtype bool
            The mask of `on_kink`.
        window : ndarray of shape (n_samples, n_neurons)
            :math:`\max(\mathrm{knot\_tol} \cdot \max(\mathrm{magnitude}, |\tau|),
            \mathrm{kink\_snap})` around the kink :math:`\tau` nearest to z; 0 where the
            neuron has no kink (never on a kink).
        spacing : ndarray of shape (n_samples, n_neurons)
            The distance from :math:`\tau` to the next kink of its neuron (inf for a lone
            kink or none).
        """
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

    def derivative_at(self, z: npt.NDArray[np.float64],
                      side: npt.NDArray[np.int8] | None = None) -> npt.NDArray[np.float64]:
        r"""Return the derivative, one-sided where asked.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The pre-activations.
        side : ndarray of shape (n_samples, n_neurons), dtype int8, or None, default=None
            Where -1 / +1, the slope left / right of the kink nearest to z; elsewhere (and
            when None) the layer's own convention.

        Returns
        -------
        d : ndarray of shape (n_samples, n_neurons)
            :math:`\sigma_n'(z_{m,n})`; at a kink, the slope of the right piece unless
            `side` says otherwise.
        """
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

    def backward(self, z: npt.NDArray[np.float64], grad_y: npt.NDArray[np.float64],
                 side: npt.NDArray[np.int8] | None = None
                 ) -> tuple[npt.NDArray[np.float64], dict[str, npt.NDArray[np.float64]]]:
        """Backpropagate a gradient through the activation.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The cache of `forward` (the pre-activations).
        grad_y : ndarray of shape (n_samples, n_neurons)
            The gradient of the objective in the outputs y.
        side : ndarray of shape (n_samples, n_neurons), dtype int8, or None, default=None
            One-sided slopes at kinks, as in `derivative_at`.

        Returns
        -------
        grad_z : ndarray of shape (n_samples, n_neurons)
            ``grad_y * derivative_at(z, side)``.
        grads : dict of str to ndarray
            The gradients of the parameters (none here).
        """
        return grad_y * self.derivative_at(z, side), {}

    def jacobian_step(self, z: npt.NDArray[np.float64], jac: npt.NDArray[np.float64],
                      side: npt.NDArray[np.int8] | None = None) -> npt.NDArray[np.float64]:
        """Propagate an input Jacobian through the activation (forward mode).

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The cache of `forward` (the pre-activations).
        jac : ndarray of shape (n_samples, n_neurons, n_0)
            The Jacobian of z in the network's inputs.
        side : ndarray of shape (n_samples, n_neurons), dtype int8, or None, default=None
            One-sided slopes at kinks, as in `derivative_at`.

        Returns
        -------
        jac : ndarray of shape (n_samples, n_neurons, n_0)
            Row n of :math:`J_m` scaled by :math:`\\sigma_n'(z_{m,n})`.
        """
        return self.derivative_at(z, side)[:, :, None] * jac

    def check_width(self, width: int) -> None:
        """Check that the layer takes inputs of this width.

        Parameters
        ----------
        width : int
            The width of the inputs.

        Raises
        ------
        ValueError
            If the layer fixes its width and it differs.
        """
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


def register(cls: type[Activation]) -> type[Activation]:
    """Register an activation class under its ``kind`` (a class decorator).

    The argument ``cls`` is a subclass of `Activation` with a class attribute ``kind``
    (numpydoc does not list a parameter named ``cls``).

    Returns
    -------
    cls : type
        The class itself, now ``ACTIVATION_TYPES[cls.kind]``: `make_activation`,
        `reference.io` and `reference.lipschitz` then know the kind.
    """
    ACTIVATION_TYPES[cls.kind] = cls
    return cls


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
        self._forward_pieces = None        # where the last forward's z lie, for its backward

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


class Ramp(Activation):
    r"""The ReLU family: slope 1 for :math:`z \ge 0`, a negative slope :math:`a_n` below.

    Notes
    -----
    With :math:`a` = ``negative_slopes(width)``, of shape (N,):

    .. math::

        \sigma_n(z) = \begin{cases} z & z \ge 0 \\ a_n z & z < 0 \end{cases}

    a kink at 0 unless :math:`a_n = 1`; :math:`\mathrm{Lip} = \max(1, |a_n|)`,
    :math:`\mathrm{TV}^{(2)} = |1 - a_n|`, :math:`\mathrm{BV}^{(2)} = |1 - a_n| + 1`
    (:math:`\sigma(0) = 0`, :math:`\sigma(1) = 1`), slopes in
    :math:`[\min(a_n, 1), \max(a_n, 1)]`.
    """
    positively_homogeneous = True

    def negative_slopes(self, width: int) -> npt.NDArray[np.float64]:
        """Return the slope of each neuron below 0.

        Parameters
        ----------
        width : int
            The number of neurons N.

        Returns
        -------
        slopes : ndarray of shape (width,)
            :math:`a_n`.
        """
        raise NotImplementedError

    def kinks(self, width: int) -> list[tuple[npt.NDArray[np.float64], ...]]:
        """Return the kink at 0 of each neuron (none where the two slopes agree).

        Parameters
        ----------
        width : int
            The number of neurons N.

        Returns
        -------
        kinks : list of tuple of ndarray
            Per neuron, ``(tau, left, right)``: ``([0.], [a_n], [1.])``, or empty arrays
            when :math:`a_n = 1`.
        """
        zero = np.zeros(1)
        return [kinks_from_slopes(zero, np.array([a, 1.0]))
                for a in self.negative_slopes(width)]

    def constants(self, width: int) -> dict[str, npt.NDArray[np.float64]]:
        """Return the per-neuron Lip, TV2 and BV2, in closed form.

        Parameters
        ----------
        width : int
            The number of neurons N.

        Returns
        -------
        constants : dict of str to ndarray of shape (width,)
            ``'lip'`` :math:`\\max(1, |a_n|)`, ``'tv2'`` :math:`|1 - a_n|`, ``'bv2'``
            :math:`|1 - a_n| + 1`.
        """
        a = self.negative_slopes(width)
        return {"lip": np.maximum(1.0, np.abs(a)), "tv2": np.abs(1.0 - a),
                "bv2": np.abs(1.0 - a) + 1.0}

    def slope_range(self, width: int
                    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Return the smallest and largest slope of each neuron.

        Parameters
        ----------
        width : int
            The number of neurons N.

        Returns
        -------
        min_slope, max_slope : ndarray of shape (width,)
            :math:`\\min(a_n, 1)` and :math:`\\max(a_n, 1)`.
        """
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

    def forward(self, z: npt.NDArray[np.float64]
                ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Apply :math:`\\max(z, 0)`.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The pre-activations.

        Returns
        -------
        y : ndarray of shape (n_samples, n_neurons)
            :math:`\\max(z, 0)`.
        cache : ndarray of shape (n_samples, n_neurons)
            `z`.
        """
        return np.maximum(z, 0.0), z

    def derivative(self, z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return the derivative, 1 where z >= 0 (the right piece at 0), else 0.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The pre-activations.

        Returns
        -------
        d : ndarray of shape (n_samples, n_neurons)
            The slopes, 0 or 1.
        """
        return (z >= 0).astype(np.float64)

    def negative_slopes(self, width: int) -> npt.NDArray[np.float64]:
        """Return the slopes below 0: zeros.

        Parameters
        ----------
        width : int
            The number of neurons N.

        Returns
        -------
        slopes : ndarray of shape (width,)
            Zeros.
        """
        return np.zeros(width)



@register
class LeakyReLU(Ramp):
    r"""The leaky ReLU, :math:`\sigma(z) = z` for :math:`z \ge 0`, :math:`a z` below.

    Parameters
    ----------
    slope : float, default=0.01
        The slope a below 0, one fixed value for every neuron (no parameter to train).

    Raises
    ------
    ValueError
        If `slope` is not finite.
    """
    kind = "leaky_relu"
    params = NO_PARAMS

    def __init__(self, slope: float = 0.01):
        slope = float(slope)
        if not np.isfinite(slope):
            raise ValueError(f"slope: expected a finite number, got {slope}")
        self.slope = slope

    def forward(self, z: npt.NDArray[np.float64]
                ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Apply the leaky ReLU.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The pre-activations.

        Returns
        -------
        y : ndarray of shape (n_samples, n_neurons)
            z where z >= 0, ``slope * z`` elsewhere.
        cache : ndarray of shape (n_samples, n_neurons)
            `z`.
        """
        return np.where(z >= 0, z, self.slope * z), z

    def derivative(self, z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return the derivative, 1 where z >= 0 (the right piece at 0), else the slope.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The pre-activations.

        Returns
        -------
        d : ndarray of shape (n_samples, n_neurons)
            1 or `slope`.
        """
        return np.where(z >= 0, 1.0, self.slope)

    def negative_slopes(self, width: int) -> npt.NDArray[np.float64]:
        """Return the slope below 0 for every neuron.

        Parameters
        ----------
        width : int
            The number of neurons N.

        Returns
        -------
        slopes : ndarray of shape (width,)
            `slope` in every entry.
        """
        return np.full(width, self.slope)

    @classmethod
    def fresh(cls, width: int, *, slope: float = 0.01, **_: Any) -> "LeakyReLU":
        """Build a leaky ReLU (any width).

        Parameters
        ----------
        width : int
            The number of neurons (unused: the layer takes any width).
        slope : float, default=0.01
            The slope below 0.
        **_
            Options of the other kinds, ignored.

        Returns
        -------
        layer : LeakyReLU
            The new layer.
        """
        return cls(slope)

    def to_entry(self, put: Callable[[str, npt.ArrayLike], str]) -> dict[str, Any]:
        """Return the layer's model-file entry.

        Parameters
        ----------
        put : callable
            Stores an array (unused: the slope is a number in the entry).

        Returns
        -------
        entry : dict
            ``{"type": "leaky_relu", "slope": float}``.
        """
        return {"type": "leaky_relu", "slope": self.slope}

    @classmethod
    def from_entry(cls, read: Any) -> "LeakyReLU":
        """Build the layer of a ``leaky_relu`` model-file entry.

        Parameters
        ----------
        read : EntryReader
            The entry being read (see `Activation.from_entry`).

        Returns
        -------
        layer : LeakyReLU
            The layer.

        Raises
        ------
        ModelFileError
            If the slope is not a finite number.
        """
        return cls(read.number("slope"))


@register
class PReLU(Ramp):
    r"""The parametric ReLU: :math:`\sigma_n(z) = z` for :math:`z \ge 0`, :math:`a_n z` below.

    Parameters
    ----------
    slope : array_like of shape (n_neurons,)
        The slopes :math:`a_n` below 0, one per neuron (at least one), learned.

    Attributes
    ----------
    params : dict of str to ndarray
        ``'slope'``, shape (n_neurons,) (updated in place by the optimisers).

    Raises
    ------
    ValueError
        If `slope` is not a finite 1-D array with at least one entry.
    """
    kind = "prelu"

    def __init__(self, slope: npt.ArrayLike):
        slope = as_finite_array(slope, "slope", ndim=1)
        if slope.shape[0] < 1:
            raise ValueError("slope: expected one slope per neuron, at least one (N >= 1)")
        self.params = {"slope": slope}

    @property
    def n_in(self):
        """The number of neurons (input and output width)."""
        return self.params["slope"].shape[0]

    n_out = n_in

    def forward(self, z: npt.NDArray[np.float64]
                ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Apply the parametric ReLU.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The pre-activations.

        Returns
        -------
        y : ndarray of shape (n_samples, n_neurons)
            :math:`z_{m,n}` where it is >= 0, :math:`a_n z_{m,n}` elsewhere.
        cache : ndarray of shape (n_samples, n_neurons)
            `z`.
        """
        return np.where(z >= 0, z, self.params["slope"] * z), z

    def derivative(self, z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return the derivative, 1 where z >= 0 (the right piece at 0), else the neuron's slope.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The pre-activations.

        Returns
        -------
        d : ndarray of shape (n_samples, n_neurons)
            1 or :math:`a_n`.
        """
        return np.where(z >= 0, 1.0, self.params["slope"])

    def negative_slopes(self, width: int) -> npt.NDArray[np.float64]:
        """Return the learned slopes below 0.

        Parameters
        ----------
        width : int
            The number of neurons (unused: the slopes fix it).

        Returns
        -------
        slopes : ndarray of shape (n_neurons,)
            ``params['slope']`` itself.
        """
        return self.params["slope"]

    def backward(self, z: npt.NDArray[np.float64], grad_y: npt.NDArray[np.float64],
                 side: npt.NDArray[np.int8] | None = None
                 ) -> tuple[npt.NDArray[np.float64], dict[str, npt.NDArray[np.float64]]]:
        """Backpropagate a gradient to the pre-activations and the slopes.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The cache of `forward`.
        grad_y : ndarray of shape (n_samples, n_neurons)
            The gradient of the objective in the outputs.
        side : ndarray of shape (n_samples, n_neurons), dtype int8, or None, default=None
            One-sided slopes at the kink for `grad_z` only (the slope gradient is
            continuous there).

        Returns
        -------
        grad_z : ndarray of shape (n_samples, n_neurons)
            The gradient in the pre-activations.
        grads : dict of str to ndarray
            ``'slope'``, shape (n_neurons,): :math:`\\sum_m g_{m,n} \\min(z_{m,n}, 0)`, as
            :math:`\\partial\\sigma_n / \\partial a_n = \\min(z, 0)`.
        """
        return (grad_y * self.derivative_at(z, side),
                {"slope": (grad_y * np.minimum(z, 0.0)).sum(axis=0)})

    @classmethod
    def fresh(cls, width: int, *, prelu_init: float = 0.25, **_: Any) -> "PReLU":
        """Build a parametric ReLU with every slope at its initial value.

        Parameters
        ----------
        width : int
            The number of neurons.
        prelu_init : float, default=0.25
            The initial slope of every neuron (PyTorch's default).
        **_
            Options of the other kinds, ignored.

        Returns
        -------
        layer : PReLU
            The new layer.
        """
        return cls(np.full(width, float(prelu_init)))

    def to_entry(self, put: Callable[[str, npt.ArrayLike], str]) -> dict[str, Any]:
        """Return the layer's model-file entry.

        Parameters
        ----------
        put : callable
            ``put(key, array)`` stores an array in the file and returns its NAME.

        Returns
        -------
        entry : dict
            ``{"type": "prelu", "slope": NAME}``.
        """
        return {"type": "prelu", "slope": put("slope", self.params["slope"])}

    @classmethod
    def from_entry(cls, read: Any) -> "PReLU":
        """Build the layer of a ``prelu`` model-file entry.

        Parameters
        ----------
        read : EntryReader
            The entry being read (see `Activation.from_entry`).

        Returns
        -------
        layer : PReLU
            The layer.

        Raises
        ------
        ModelFileError
            If the slope array is missing, not 1-D or not finite.
        """
        return cls(read.array("slope", 1))


@register
class Identity(Activation):
    r"""The identity, :math:`\sigma(z) = z` (the usual last layer).

    Lip 1, TV2 0, BV2 1 (:math:`|\sigma(1)|`), slopes in [1, 1].
    """
    kind = "identity"
    params = NO_PARAMS
    is_identity = exact_forward = positively_homogeneous = True

    def forward(self, z: npt.NDArray[np.float64]
                ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Return the pre-activations unchanged.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The pre-activations.

        Returns
        -------
        y : ndarray of shape (n_samples, n_neurons)
            `z` itself (not a copy).
        cache : ndarray of shape (n_samples, n_neurons)
            `z`.
        """
        return z, z

    def derivative(self, z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return the derivative, 1 everywhere.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The pre-activations.

        Returns
        -------
        d : ndarray of shape (n_samples, n_neurons)
            Ones.
        """
        return np.ones_like(z)

    def kinks(self, width: int) -> list[tuple[npt.NDArray[np.float64], ...]]:
        """Return no kink for any neuron.

        Parameters
        ----------
        width : int
            The number of neurons N.

        Returns
        -------
        kinks : list of tuple of ndarray
            Per neuron, three empty arrays.
        """
        return [(np.zeros(0),) * 3] * width

    def backward(self, z: npt.NDArray[np.float64], grad_y: npt.NDArray[np.float64],
                 side: npt.NDArray[np.int8] | None = None
                 ) -> tuple[npt.NDArray[np.float64], dict[str, npt.NDArray[np.float64]]]:
        """Pass the gradient through unchanged.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The cache of `forward` (unused).
        grad_y : ndarray of shape (n_samples, n_neurons)
            The gradient of the objective in the outputs.
        side : ndarray or None, default=None
            Ignored (no kinks).

        Returns
        -------
        grad_z : ndarray of shape (n_samples, n_neurons)
            `grad_y` itself.
        grads : dict
            Empty (no parameters).
        """
        return grad_y, {}

    def jacobian_step(self, z: npt.NDArray[np.float64], jac: npt.NDArray[np.float64],
                      side: npt.NDArray[np.int8] | None = None) -> npt.NDArray[np.float64]:
        """Pass the input Jacobian through unchanged.

        Parameters
        ----------
        z : ndarray of shape (n_samples, n_neurons)
            The cache of `forward` (unused).
        jac : ndarray of shape (n_samples, n_neurons, n_0)
            The Jacobian of z in the network's inputs.
        side : ndarray or None, default=None
            Ignored (no kinks).

        Returns
        -------
        jac : ndarray of shape (n_samples, n_neurons, n_0)
            `jac` itself.
        """
        return jac

    def constants(self, width: int) -> dict[str, npt.NDArray[np.float64]]:
        """Return the per-neuron constants of the identity.

        Parameters
        ----------
        width : int
            The number of neurons N.

        Returns
        -------
        constants : dict of str to ndarray of shape (width,)
            ``'lip'`` 1, ``'tv2'`` 0, ``'bv2'`` 1 (:math:`|\\sigma(1)|`).
        """
        return {"lip": np.ones(width), "tv2": np.zeros(width), "bv2": np.ones(width)}

    def slope_range(self, width: int
                    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Return the slope range of the identity, [1, 1] for every neuron.

        Parameters
        ----------
        width : int
            The number of neurons N.

        Returns
        -------
        min_slope, max_slope : ndarray of shape (width,)
            Ones.
        """
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



def make_activation(kind: str, width: int, *, spline_init: str = "leaky_relu", size: int = 51,
                    range_: float = 4.0, slope: float = 0.01,
                    prelu_init: float = 0.25) -> Activation:
    """Build a fresh activation layer of a given kind and width.

    Parameters
    ----------
    kind : str
        One of `ACTIVATIONS`: ``'spline'``, ``'relu'``, ``'leaky_relu'``, ``'prelu'``,
        ``'identity'``.
    width : int
        The number of neurons N.
    spline_init : str, default='leaky_relu'
        ``spline``: the function the splines start from (see `LinearSpline.initialise`).
    size : int, default=51
        ``spline``: the number of grid points K.
    range_ : float, default=4.0
        ``spline``: the grid is ``[-range_, range_]``.
    slope : float, default=0.01
        The negative slope of ``leaky_relu``, and of a ``leaky_relu`` spline start.
    prelu_init : float, default=0.25
        ``prelu``: the initial slope of every neuron.

    Returns
    -------
    layer : Activation
        ``ACTIVATION_TYPES[kind].fresh(width, ...)``.

    Raises
    ------
    ValueError
        If `kind` is not one of `ACTIVATIONS`, or an option is out of range.

    Examples
    --------
    >>> from reference.nn import make_activation
    >>> layer = make_activation("spline", 3, size=11, range_=1.0)
    >>> layer.kind, layer.spline.coefficients.shape
    ('spline', (3, 11))
    >>> make_activation("leaky_relu", 3, slope=0.1).slope
    0.1
    """
    check_choice(kind, ACTIVATIONS, "activation")
    return ACTIVATION_TYPES[kind].fresh(width, spline_init=spline_init, size=size,
                                        range_=range_, slope=slope, prelu_init=prelu_init)
