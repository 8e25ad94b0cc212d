"""The oracle: reference answers, their check with the one-sided rule, localisation.

`reference_answers` computes what another implementation of the same network should give
(outputs, Jacobians, gradients, layer outputs, regularisers, Lipschitz bounds, the
`Objective`); `check` compares its answers key by key with a tolerance relative to each
key's scale, accepting either one-sided derivative at a kink (`gradient_range`), and
`localise` says where the first disagreement comes from (`format_localisation`).
`compare` is the comparison of one array.
"""
from reference.oracle._check import (
    Objective,
    check,
    compare,
    reference_answers,
)
from reference.oracle._localise import (
    format_localisation,
    localise,
)
from reference.oracle._one_sided import (
    gradient_range,
)

__all__ = [
    "reference_answers",
    "check",
    "compare",
    "Objective",
    "localise",
    "format_localisation",
    "gradient_range",
]
