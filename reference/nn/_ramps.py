"""The fixed piecewise-linear activations: the ReLU family (`Ramp`: `ReLU`, `LeakyReLU`,
`PReLU`) and `Identity`.

The layer protocol is reference.nn._activation_base.Activation.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from reference._numerics import UNIT_ROUNDOFF, as_finite_array
from reference.nn._activation_base import NO_PARAMS, Activation, kinks_from_slopes, register


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
