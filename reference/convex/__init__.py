"""The coefficient problem with the weights fixed: the full solve, the active-set solve and the representer reduction."""
from reference.convex._certificate import (
    SolveCertificate,
)
from reference.convex._problem import (
    CoefficientProblem,
    knot_counts,
)
from reference.convex._solve import (
    solve_layer,
    solve_path,
    METHODS,
)
from reference.convex._active_set import (
    solve_layer_active,
)
from reference.convex._representer import (
    reduce_network,
    interpolation_lp,
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
