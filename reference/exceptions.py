"""Error types of the certified methods, so that callers catch what they mean to catch.

SolveFailed: a solver ran and did not give a certified answer (HiGHS stopped with an error,
no LipSDP attempt certified a bound, no linear region passed its check).  It is a
RuntimeError, so code that caught RuntimeError still catches it; the ladder
(reference.ladder.run_method) turns it, and only it among RuntimeErrors, into value None with
the message as the reason.
SolveNotCertified: a SolveFailed that still carries the best feasible point of a coefficient
solve stopped at its time limit or not certified optimal (the `solve` command writes it and
exits 3).
"""
from __future__ import annotations


class SolveFailed(RuntimeError):
    """A solver (or a certification step) reported failure: no value is given; the message
    names the method and what each attempt ended with."""


class SolveNotCertified(SolveFailed):
    """A coefficient solve that ended without a certified optimum (status "time_limit" or
    "not_optimal", reference.certify): `model` is the best feasible point known and
    `certificate` its certificate (objective, lower_bound where available, status)."""

    def __init__(self, message: str, model, certificate: dict):
        super().__init__(message)
        self.model, self.certificate = model, certificate


class InaccurateSolution(SolveFailed):
    """A solver's point whose objective, re-evaluated in NumPy, disagrees with the solver's
    beyond tolerance; `pieces` (per neuron (grid, values), internal units) is still a
    feasible point, which reference.certify compares with the others."""

    def __init__(self, message: str, pieces: list):
        super().__init__(message)
        self.pieces = pieces
