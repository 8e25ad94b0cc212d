"""The oracle: reference answers, check with the one-sided rule, localisation of a disagreement."""
from reference.oracle._check import (
    reference_answers,
    check,
    compare,
    Objective,
)
from reference.oracle._localise import (
    localise,
    format_localisation,
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
