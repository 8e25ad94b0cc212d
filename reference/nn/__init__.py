"""The network: linear-spline activations, dense layers, losses and regularisers.

Linear-spline activations on a uniform grid (`LinearSpline`, DeepSplines' form) and with
free knots (`KnotSpline`), the activation layers and their registry (`ACTIVATIONS`,
`register`, `make_activation`), dense layers and networks with hand-written
backpropagation (`Dense`, `Network`, `build_mlp`), the data losses (`LOSSES`,
`loss_and_grad`) and the TV(2) / BV(2) regularisers (`REGULARISERS`).  The spline kernels
run on NumPy or numba (`set_backend`), bit for bit the same.
"""
from reference.nn._activations import (
    ACTIVATIONS,
    Activation,
    Identity,
    KnotSplineActivation,
    LeakyReLU,
    PReLU,
    Ramp,
    ReLU,
    SplineActivation,
    make_activation,
    register,
)
from reference.nn._kernels import (
    backend,
    num_threads,
    set_backend,
    set_num_threads,
    use_backend,
)
from reference.nn._knot_spline import KnotSpline
from reference.nn._linear_spline import LinearSpline
from reference.nn._losses import (
    LOSSES,
    Loss,
    loss_and_grad,
    predict_labels,
    register_loss,
)
from reference.nn._network import (
    Dense,
    Network,
    build_mlp,
)
from reference.nn._regularisers import (
    REGULARISERS,
    TV2,
)
from reference.nn._spline_grid import grid_from_range

__all__ = [
    "LinearSpline",
    "KnotSpline",
    "grid_from_range",
    "Network",
    "Dense",
    "build_mlp",
    "Activation",
    "Identity",
    "ReLU",
    "PReLU",
    "LeakyReLU",
    "Ramp",
    "SplineActivation",
    "KnotSplineActivation",
    "ACTIVATIONS",
    "register",
    "make_activation",
    "LOSSES",
    "loss_and_grad",
    "Loss",
    "register_loss",
    "predict_labels",
    "REGULARISERS",
    "TV2",
    "set_backend",
    "backend",
    "use_backend",
    "set_num_threads",
    "num_threads",
]
