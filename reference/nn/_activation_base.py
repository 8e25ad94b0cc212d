"""The activation layer protocol (`Activation`) and the registry (`register`).

The classes: reference.nn._spline_activation (SplineActivation),
reference.nn._knot_spline_activation (KnotSplineActivation), reference.nn._ramps (Ramp, ReLU,
LeakyReLU, PReLU, Identity); reference.nn._activations imports them all (every kind
registered), then lists the user kinds (ACTIVATIONS) and builds layers (make_activation).

Activation layers: the layers of reference.network between the Dense ones.

Neuron-wise y = sigma(z) on row-major batches z (M, N).  Every layer implements
    forward(z) -> (y, cache),  backward(cache, grad_y, side=None) -> (grad_z, {param: grad}),
    jacobian_step(cache, J, side=None) -> J'
and exposes `params` (name -> array, updated in place by optimisers).

One-sided derivatives (what the oracle needs at kinks): an activation layer lists its kinks
per neuron (`kinks`: positions, slopes left and right), says which pre-activations lie on
one (`on_kink`, within a window relative to the pre-activation's magnitude) and, given
`side` (M, N) int8 = -1 / +1, takes the slope left / right of the nearest kink there instead
of its own convention (the right piece) in `backward` and `jacobian_step`.  Knows nothing of
optimisers or cvxpy.

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

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from reference.nn._knot_spline import KnotSpline

# shared by the parameter-free layers, read-only
NO_PARAMS: MappingProxyType[str, np.ndarray] = MappingProxyType({})


class Activation:
    """Neuron-wise activation: y = sigma(z); subclasses give sigma, sigma', parameters and
    their kinks.

    `derivative(z)` is sigma'(z) (M, N); at a breakpoint, the slope of the right piece."""
    kind: str                                      # each registered subclass sets its own
    derivative: Callable[[np.ndarray], np.ndarray]  # each subclass defines it
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


def _leaves_normal_range(originals: list, scaled: list) -> bool:
    """Whether a nonzero entry of the arrays `originals` became subnormal or zero in
    `scaled` (the same arrays divided by a power of two): the division was not exact."""
    tiny = np.finfo(float).tiny
    return any(np.any((a != 0) & (np.abs(b) < tiny)) for a, b in zip(originals, scaled))


# kind -> activation class: the registry (see `register`)
ACTIVATION_TYPES: dict[str, type[Activation]] = {}


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
