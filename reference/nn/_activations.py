"""Every activation layer, registered: the user kinds (`ACTIVATIONS`) and `make_activation`.

Importing this module imports every class module (reference.nn._spline_activation,
reference.nn._knot_spline_activation, reference.nn._ramps), whose classes register
themselves (`register`, reference.nn._activation_base), so that ACTIVATION_TYPES is
complete before ACTIVATIONS is read from it.  It re-exports the names of those modules:
reference.nn._network and reference.nn import the activations from here.
"""
from __future__ import annotations

from reference._numerics import check_choice
from reference.nn._activation_base import (  # noqa: F401  (re-exported)
    ACTIVATION_TYPES,
    NO_PARAMS,
    Activation,
    kinks_from_slopes,
    nearest_index,
    register,
)

# isort: off
# the registration order is the order of ACTIVATION_TYPES and ACTIVATIONS (error messages)
from reference.nn._spline_activation import SplineActivation  # noqa: F401
from reference.nn._knot_spline_activation import KnotSplineActivation  # noqa: F401
from reference.nn._ramps import Identity, LeakyReLU, PReLU, Ramp, ReLU  # noqa: F401
# isort: on

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
