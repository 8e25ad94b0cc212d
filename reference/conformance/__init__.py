"""The conformance suite: the golden cases, their export and the grading of answers.

`build_cases` makes every golden `Case` from a fixed seed; `export` writes them with the
reference's expected answers to a directory, `load_suite` reads one back and checks it
against the built-in cases, `grade` grades another implementation's answers to it (with
``reference.oracle.check``), and `self_answers` answers it with this reference.
"""
from reference.conformance._cases import (
    Case,
    build_cases,
)
from reference.conformance._suite import (
    export,
    grade,
    load_suite,
    self_answers,
)

__all__ = [
    "export",
    "grade",
    "load_suite",
    "self_answers",
    "build_cases",
    "Case",
]
