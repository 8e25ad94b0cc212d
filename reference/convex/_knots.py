"""How the knot count of a solved layer is decided (reference.convex): a slope change counts
as a knot when it exceeds its estimated accuracy by a wide margin, not when it merely
exceeds a tolerance.

Per neuron n, with |a_j| the slope changes of the returned spline, tol_n the tolerance of
`knot_counts` (KNOT_RTOL max |a|, SLOPE_RTOL max(slope unit, max |slope|)) and nu_n the
jump accuracy that the solve estimates (reference.convex._newton: the last Newton correction
of the jumps plus their rounding: an estimate of the error, accurate when Newton converges
quadratically, not a proof; in the caller's slope units; None when the point was not
refined: method "full", a Lip bound, the squared loss):

    e_j         = nu_n + rounding_j                    (the jump's accuracy)
    certain_n   = #{j : |a_j| > max(tol_n, KNOT_MARGIN e_j)}   (nonzero beyond its accuracy)
    possible_n  = #{j : |a_j| > e_j} + undecided_n     (nonzero at the optimum, possibly)

undecided_n: the runs of consecutive candidates outside the restricted problem where the
optimality condition is violated by more than the multipliers' accuracy (accepted because
the violation is within the tolerance; a knot of the exact optimum may sit there;
reference.convex._active_set).  The count `knots` is certain_n; `knot_rule` holds the
threshold, nu, the smallest counted and the largest uncounted jump (their ratio is the gap
between the count and the next jump) and the bracket [certain_n, possible_n] (equal when
the count is decided).  Without nu the count is the jumps above tol_n, and the rule says
that the accuracy is not estimated (the bracket is then [None, count]: no jump is decided).
A jump's accuracy is nu_n plus its own rounding as stored (`_jump_rounding`: the values
and slopes it is computed from), so a jump between close knots is judged by its own
error.  A leaf: NumPy only.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from reference._numerics import EPS

KNOT_MARGIN = 100.0      # a jump counts when above this * its estimated accuracy (and tol)


def knot_rule(layer, tolerance, accuracy=None, undecided=None) -> dict:
    """The knot-count decision of a returned layer (module docstring).

    Parameters
    ----------
    layer : SplineActivation or KnotSplineActivation
        The returned spline layer (caller's units).
    tolerance : array_like, shape (N,)
        `knot_counts`' tolerance per neuron.
    accuracy : array_like of shape (N,), optional
        The estimated jump accuracy nu_n per neuron (caller's units); None: not estimated.
    undecided : array_like of int, shape (N,), optional
        Runs of candidates outside the solved grid where a knot may sit (default 0).

    Returns
    -------
    rule : dict
        ``knots`` (N,) certain counts (without `accuracy`: above the tolerance),
        ``knots_bracket`` [[certain, possible] per neuron] (certain None without
        `accuracy`), ``decided`` (bool: every bracket closed), ``threshold`` (N,): the
        largest max(tol_n, KNOT_MARGIN e_j) applied to neuron n's jumps (tol_n without
        `accuracy`),
        ``jump_accuracy`` (N,) or None, ``smallest_counted`` (N,) and
        ``largest_uncounted`` (N,) (0.0 when none), ``separation`` (N,): smallest counted
        / largest uncounted (inf when nothing is uncounted, None when nothing is counted),
        ``undecided_candidates`` (N,), ``margin`` KNOT_MARGIN, ``rule`` (a sentence).
    """
    spl = layer.knot_spline()
    n = spl.num_channels
    tol = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), (n,))
    nu = None if accuracy is None else np.broadcast_to(
        np.asarray(accuracy, dtype=np.float64), (n,))
    extra = np.zeros(n, dtype=int) if undecided is None else np.asarray(undecided, dtype=int)
    out: dict[str, Any] = {"threshold": [], "smallest_counted": [], "largest_uncounted": [],
                           "separation": [], "knots": [], "knots_bracket": []}
    for k in range(n):
        a = np.abs(spl.jumps[k])
        err = None if nu is None else nu[k] + _jump_rounding(layer, spl, k)     # per jump
        theta = tol[k] if err is None else np.maximum(tol[k], KNOT_MARGIN * err)
        counted, rest = a[a > theta], a[a <= theta]
        small = float(counted.min(initial=np.inf)) if len(counted) else 0.0
        large = float(rest.max(initial=0.0))
        out["threshold"].append(float(np.max(theta, initial=tol[k])))
        out["smallest_counted"].append(small)
        out["largest_uncounted"].append(large)
        out["separation"].append(None if not len(counted) else
                                 (np.inf if large == 0 else small / large))
        out["knots"].append(int(len(counted)))
        possible = int(len(counted)) if err is None else int(np.sum(a > err)) + int(extra[k])
        out["knots_bracket"].append([None if nu is None else int(len(counted)), possible])
    decided = nu is not None and all(c == p for c, p in out["knots_bracket"])
    if nu is None:
        text = ("jumps above the tolerance of knot_counts; their accuracy is not estimated (the "
                "solver's point was not refined), so no count is decided")
    else:
        text = (f"a jump counts when above max(tolerance, {KNOT_MARGIN:g} x its estimated "
                "accuracy, the last Newton correction plus rounding); jumps between the "
                "accuracy and that threshold, and candidates off the solved grid where the "
                "optimality condition is violated beyond the multipliers' accuracy, are "
                "possible knots")
    out.update(decided=decided, jump_accuracy=None if nu is None else nu.tolist(),
               undecided_candidates=extra.tolist(), margin=KNOT_MARGIN, rule=text)
    return out


def _jump_rounding(layer, spl, k: int) -> np.ndarray:
    """The rounding of each jump of neuron k as stored, (K,): a jump is a difference of
    slopes, each a difference of values over a step, so 8 eps (max |value| of the knot and
    its neighbours / the shorter step + |slope left| + |slope right|)."""
    knots = np.asarray(spl.knots[k], dtype=np.float64)
    if len(knots) == 0:
        return np.zeros(0)
    width = layer.n_in
    values = np.abs(layer.forward(np.tile(knots[:, None], (1, width)))[0][:, k])
    slopes = np.abs(spl.slopes(k))
    steps = np.diff(knots)
    left = np.concatenate([[np.inf], steps])
    right = np.concatenate([steps, [np.inf]])
    near = np.maximum.reduce([values, np.concatenate([[0.0], values[:-1]]),
                              np.concatenate([values[1:], [0.0]])])
    return 8 * EPS * (near / np.minimum(left, right) + slopes[:-1] + slopes[1:])


def violated_runs(violation: list, active: list, level: float) -> list:
    """Per neuron, the runs of consecutive inactive candidates whose violation (relative, as
    reference.convex._active_set.Optimality holds it) exceeds `level`."""
    out = []
    for v, mask in zip(violation, active):
        bad = (np.asarray(v) > level) & ~np.asarray(mask)
        out.append(int(np.sum(np.diff(np.concatenate([[False], bad]).astype(np.int8)) == 1)))
    return out
