"""Lipschitz bounds: Theorem 1, layer-wise, LipSDP, exact 1-D, MILP, 2-D regions, the ladder, lower bounds and claim verdicts."""
from reference.lipschitz._bound_result import (
    BoundResult,
    LadderResult,
)
from reference.lipschitz._bounds import (
    theorem1,
    theorem1_bv2,
    layerwise,
    lower,
    jacobian_norms,
    operator_norm,
    slope_bounds,
)
from reference.lipschitz._lipsdp import (
    lipsdp,
    lipsdp_data,
    certified_rho,
    VARIANTS,
)
from reference.lipschitz._rounding import (
    RoundingBound,
    rounding_bound,
)
from reference.lipschitz._exact1d import (
    exact_1d,
    exact_1d_on_box,
)
from reference.lipschitz._milp import (
    exact_milp,
)
from reference.lipschitz._regions2d import (
    regions_2d,
)
from reference.lipschitz._ladder import (
    ladder,
)
from reference.lipschitz._verdict import (
    Verdict,
    check_claim,
)

__all__ = [
    "BoundResult",
    "LadderResult",
    "theorem1",
    "theorem1_bv2",
    "layerwise",
    "lower",
    "jacobian_norms",
    "operator_norm",
    "slope_bounds",
    "lipsdp",
    "lipsdp_data",
    "certified_rho",
    "VARIANTS",
    "RoundingBound",
    "rounding_bound",
    "exact_1d",
    "exact_1d_on_box",
    "exact_milp",
    "regions_2d",
    "ladder",
    "Verdict",
    "check_claim",
]
