"""The coefficient problem: the activations of one spline layer with every weight fixed.

With the weights fixed, the splines of a layer followed by an affine map enter the outputs
linearly, so fitting them with TV(2) or BV(2) regularisation (Aziznejad et al., IEEE Trans.
Signal Process. 2020, arXiv:2001.06263) is a convex problem (`CoefficientProblem`), solved
to a certified optimum by `solve_layer` (one lambda) and `solve_path` (several), on the data
grid by an active set of knots (`solve_layer_active`; METHODS names the two methods).
Each solve returns its certificate as a `SolveCertificate`.  `knot_counts` counts the knots
of a layer with its tolerances; `reduce_network` is the representer reduction (every spline
replaced by its interpolant at the data) and `interpolation_lp` the least-TV(2) or BV(2)
spline through given points.
"""
from reference.convex._active_set import (
    solve_layer_active,
)
from reference.convex._certificate import (
    SolveCertificate,
)
from reference.convex._problem import (
    CoefficientProblem,
    knot_counts,
)
from reference.convex._representer import (
    interpolation_lp,
    reduce_network,
)
from reference.convex._solve import (
    METHODS,
    solve_layer,
    solve_path,
)

__all__ = [
    "SolveCertificate",
    "CoefficientProblem",
    "solve_layer",
    "solve_path",
    "knot_counts",
    "METHODS",
    "solve_layer_active",
    "reduce_network",
    "interpolation_lp",
]
