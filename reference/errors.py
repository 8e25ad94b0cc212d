"""Error types of the certified methods, so that callers catch what they mean to catch.

SolveFailed: a solver ran and did not give a certified answer (HiGHS stopped with an error,
no LipSDP attempt certified a bound, no linear region passed its check).  It is a
RuntimeError, so code that caught RuntimeError still catches it; the ladder
(reference.ladder.run_method) turns it, and only it among RuntimeErrors, into value None with
the message as the reason.
"""
from __future__ import annotations


class SolveFailed(RuntimeError):
    """A solver (or a certification step) reported failure: no value is given; the message
    names the method and what each attempt ended with."""
