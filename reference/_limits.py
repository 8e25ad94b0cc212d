"""Size guards and time limits of the expensive methods: one mechanism for all of them.

Size guard: before any heavy work, a method computes a cheap estimate of its cost from the
shapes alone and calls `guard`; over the limit it raises TooLarge (a ValueError) whose message
gives the estimate, the limit and the keyword argument that raises the limit.  Each limit is a
module constant beside the method (one number to raise when the method gets faster):

    lipsdp.lipsdp          work of the SDP solve, e.g. NUMPY 8 N^3 + k^3 on the reduced LMI
                           (sdp_cost)
                           <= MAX_SDP_COST, keyword max_sdp_cost
    exact.exact_milp       binaries, counted while encoding <= MAX_BINARIES, max_binaries
    lipschitz.lower        points x flops of one Jacobian <= MAX_LOWER_COST, max_lower_cost
    convex.solve_layer,    grid points + samples x neurons (problem_size)
    solve_path,            <= MAX_PROBLEM_SIZE, keyword max_size
    interpolation_lp

The ladder (reference.ladder) reports a refused method as value None with the message as its
reason, so no default method list can hang.

exact.exact_1d counts the pieces of its partition before it builds them and stops at
max_pieces (MAX_PIECES) with a bracket, as at its time limit; regions2d.regions_2d counts the
strips of each split before building them and stops at max_regions (MAX_REGIONS) likewise.

Time limit: the methods that may still run long after passing their guard (exact_1d,
regions_2d, exact_milp) take `time_limit` (seconds, finite and > 0: `check_time_limit`) and,
when they reach it, return the best certified answer so far marked as such: status
"time_limit", value None, certified_exact False, and a bracket lower_bound <= Lip <=
upper_bound, each bound with its certificate.  LipSDP has a size guard only: its
interior-point solves have no time limit, and their cost is predictable from the LMI's side
and number of multipliers.
"""
from __future__ import annotations

import time

import numpy as np

from reference._numerics import check_positive
from reference.exceptions import TooLarge

MAX_BOX = 1e290   # box half-widths above this are refused (see check_box)
MIN_BOX = 1e-290  # ... and below this




def check_limit(value, name: str) -> float:
    """A size limit or time limit as a float, which must be finite and > 0 (NaN, inf, zero,
    negative and non-numbers are a ValueError naming the argument): there is no 'no limit'
    value, pass a large one."""
    return check_positive(value, name)


def check_time_limit(value, name: str = "time_limit") -> float:
    """A time limit in seconds: finite and > 0 (there is no "no limit": pass a large one)."""
    return check_limit(value, name)


def guard(what: str, estimate: float, limit, override: str) -> None:
    """Raise TooLarge when estimate > limit (limit validated by check_limit, named override)."""
    limit = check_limit(limit, override)
    if estimate > limit:
        raise TooLarge(what, estimate, limit, override)


def check_box(box, name: str = "box") -> float:
    """The half-width R of the box [-R, R]^N_0: finite, MIN_BOX = 1e-290 <= R <= MAX_BOX =
    1e290.  A box is a length in the inputs' units: the exact methods work on the box
    normalised to [-m, m] by a power of two (reference.exact.input_scale), the MILP on a
    network normalised layer by layer, so the size of R does not matter to them; the range
    keeps the points of the box and every witness pair (distances down to 1e-9 R) in the
    normal float64 range (2.2e-308 .. 1.8e308) with room for a few products.  (A box can
    still be refused for given weights: the exact methods need the first layer's weights
    times R normal; a forward pass that overflows is reported as such.)"""
    try:
        value = float(box)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a positive finite half-width, got {box!r}") from None
    if not (np.isfinite(value) and MIN_BOX <= value <= MAX_BOX):
        raise ValueError(f"{name}: expected a half-width in [{MIN_BOX:g}, {MAX_BOX:g}], "
                         f"got {box!r}")
    return value


class Deadline:
    """A time budget started now: `remaining()` seconds left (never below 0), `expired()`."""

    def __init__(self, time_limit, name: str = "time_limit"):
        self.time_limit = check_time_limit(time_limit, name)
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def remaining(self) -> float:
        return max(self.time_limit - self.elapsed(), 0.0)

    def expired(self) -> bool:
        return self.elapsed() >= self.time_limit
