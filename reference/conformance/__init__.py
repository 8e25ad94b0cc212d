"""The conformance suite: the cases, export and grading."""
from reference.conformance._suite import (
    export,
    grade,
    load_suite,
    self_answers,
)
from reference.conformance._cases import (
    build_cases,
    Case,
)

__all__ = [
    "export",
    "grade",
    "load_suite",
    "self_answers",
    "build_cases",
    "Case",
]
