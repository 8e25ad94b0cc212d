"""Lipschitz constants of a network: upper bounds, exact values, lower bounds and verdicts.

Upper bounds over R^N_0: Theorem 1 of Aziznejad et al. (IEEE Trans. Signal Process. 2020,
arXiv:2001.06263) with exact slopes (`theorem1`) or BV(2) norms (`theorem1_bv2`), the
layer-wise product (`layerwise`, with `operator_norm` and `slope_bounds`) and LipSDP (Fazlyab
et al., NeurIPS 2019: `lipsdp`, `lipsdp_data`, `certified_rho`, `rounding_bound`,
`RoundingBound`; VARIANTS), and the compositional ECLipsE (Xu and Sivaranjani, NeurIPS 2024:
`eclipse`, `eclipse_fast`).  Exact values: `exact_1d` and `exact_1d_on_box` (one input),
`regions_2d` (two inputs), `exact_milp` (p in {1, inf}).  Lower bounds: `lower` (with
`jacobian_norms`).  Each method's result is a `BoundResult`; `ladder` runs them with one
convention and returns a `LadderResult`, `check_claim` decides a claimed constant and returns a
`Verdict`.
"""
from reference.lipschitz._bound_result import (
    BoundResult,
    LadderResult,
)
from reference.lipschitz._bounds import (
    jacobian_norms,
    layerwise,
    lower,
    operator_norm,
    slope_bounds,
    theorem1,
    theorem1_bv2,
)
from reference.lipschitz._eclipse import (
    eclipse,
    eclipse_fast,
)
from reference.lipschitz._exact1d import (
    exact_1d,
    exact_1d_on_box,
)
from reference.lipschitz._ladder import (
    ladder,
)
from reference.lipschitz._lipsdp import (
    VARIANTS,
    certified_rho,
    lipsdp,
    lipsdp_data,
)
from reference.lipschitz._milp import (
    exact_milp,
)
from reference.lipschitz._regions2d import (
    regions_2d,
)
from reference.lipschitz._rounding import (
    RoundingBound,
    rounding_bound,
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
    "eclipse",
    "eclipse_fast",
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
