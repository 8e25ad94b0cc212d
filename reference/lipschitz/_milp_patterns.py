"""Deciding one activation pattern of the MILP (reference.lipschitz._milp): is its region, within
the box, attained, proven non-empty, proven without interior, or undecided?

A pattern (the piece of every neuron) is affine on its region
    {x in the box : lo_n <= g_n . x + c_n <= hi_n for every neuron n},
a convex polytope.  `decide` finds the deepest point of the region (`interior_point`, an LP
with the margin on every row, the box's included), then: attained when floating point
decides the network's own pieces there (reference.lipschitz._rounding_exact.robust_pieces); proven
when the point, or the point where the LP's binding rows meet at a positive margin, lies strictly
inside the region in exact rational arithmetic (reference.lipschitz._rational.interior_certificate);
empty (no interior) when some rows carry an exact Gordan certificate
(reference.lipschitz._rational.empty_certificate); undecided otherwise.  Only an empty pattern may
be cut off: a region thinner than HiGHS's tolerances may carry the largest slope.
"""
from __future__ import annotations

import numpy as np
import scipy.optimize

from reference.lipschitz import _rational as rational
from reference.lipschitz._exact import solver_output_silenced
from reference.lipschitz._rounding_exact import robust_pieces
from reference.nn._network import Network


def interior_point(rows, box: float, n0: int):
    """max eps s.t. lo + eps ||g|| <= g.x + c <= hi - eps ||g|| for every neuron whose
    pre-activation moves (g != 0), -box + eps <= x <= box - eps: the region of the pattern
    meets the box in an open set iff eps* > 0 (in exact arithmetic; HiGHS's tolerances
    decide nothing here, see `decide`), and the point found is then inside the box too.
    rows: per neuron (g, c, lo, hi, layer) (reference.lipschitz._milp._pattern_affine).  Returns
    (eps*, x, support): support, the keys of the constraints with a nonzero dual at the
    optimum, (k, "lo" / "hi") for pattern entry k and ("box", d, -1 / +1) for the box;
    with y those duals, y >= 0 and sum y_i a_i = 0 certify eps* (LP duality)."""
    keys: list[tuple]                   # (k, "lo" / "hi") or ("box", d, side), as documented
    a_rows, b, keys = [], [], []
    for k, (g, c, lo, hi, _) in enumerate(rows):
        norm = np.linalg.norm(g)
        if norm == 0:
            continue
        if np.isfinite(lo):                       # -(g.x) + eps ||g|| <= c - lo
            a_rows.append(np.r_[-g, norm])
            b.append(c - lo)
            keys.append((k, "lo"))
        if np.isfinite(hi):                       # g.x + eps ||g|| <= hi - c
            a_rows.append(np.r_[g, norm])
            b.append(hi - c)
            keys.append((k, "hi"))
    for d in range(n0):                           # +-x_d + eps <= box
        for side in (1, -1):
            a_rows.append(np.r_[side * np.eye(n0)[d], 1.0])
            b.append(box)
            keys.append(("box", d, side))
    cost = np.r_[np.zeros(n0), -1.0]
    bounds = [(-box, box)] * n0 + [(None, box)]
    with solver_output_silenced():
        res = scipy.optimize.linprog(cost, A_ub=np.array(a_rows), b_ub=np.array(b),
                                     bounds=bounds, method="highs")
    if res.status != 0:
        return -np.inf, None, set()
    support = {keys[i] for i in np.flatnonzero(res.ineqlin.marginals)}
    return float(res.x[-1]), res.x[:-1], support


def _exact_rows(rnet, pieces, box: float) -> dict:
    """The constraints of a pattern's region within the box as exact rows, keyed as in
    `interior_point`: (k, "lo" / "hi") for the k-th neuron (network order), ("box", d, s)."""
    rows = {}
    for key, a, b in rational.pattern_rows(rnet, pieces):
        rows[key] = (a, b)
    for (d, side), (a, b) in zip([(d, side) for d in range(rnet.net.n_in) for side in (1, -1)],
                                 rational.box_rows(box, rnet.net.n_in)):
        rows[("box", d, side)] = (a, b)
    return rows


def _flat(exact: dict, pieces: list) -> list:
    """Per activation layer, (1, W) bool: the neurons whose pre-activation is exactly
    constant on the pattern's region (every exact row of theirs has a = 0)."""
    flat, k = [], 0
    for layer_pieces in pieces:
        mask = np.zeros((1, len(layer_pieces)), dtype=bool)
        for n in range(len(layer_pieces)):
            own = [exact[(k, side)][0] for side in ("lo", "hi") if (k, side) in exact]
            mask[0, n] = bool(own) and not any(any(a) for a in own)
            k += 1
        flat.append(mask)
    return flat


def decide(net: Network, rnet, tables, rows, pieces, box: float) -> tuple:
    """What a pattern's region is (module docstring): ("attained", x) when floating point
    decides the pattern at the LP's deepest point x (the network's own pieces there, by
    more than their rounding bounds; a neuron whose pre-activation is exactly constant on
    the region may take either piece), ("proven", x) when x, or the point where the LP's
    binding rows meet at a positive margin (`rational.interior_certificate`), lies strictly
    inside the region in exact arithmetic (x then that point rounded), ("empty", support)
    when the binding rows give an exact Gordan certificate that the region has no interior,
    else ("undecided", x or None)."""
    eps, x_in, support = interior_point(rows, box, net.n_in)
    exact = _exact_rows(rnet, pieces, box)
    if x_in is not None:
        flat = _flat(exact, pieces)
        found, ok = robust_pieces(net, x_in[None], tables, flat)
        if ok[0] and all(np.all((f[0] == np.array(mine)) | still[0])
                         for f, mine, still in zip(found, pieces, flat)):
            return "attained", x_in
    if x_in is not None:
        rows_all = list(exact.values())
        if rational.strictly_inside(rows_all, x_in):
            return "proven", x_in
        binding = [key for key in support if key in exact]
        weights = [1.0 if key[0] == "box" else float(np.linalg.norm(rows[key[0]][0]))
                   for key in binding]
        point = rational.interior_certificate(rows_all, [exact[key] for key in binding],
                                              weights, x_in)
        if point is not None:
            return "proven", np.array([float(v) for v in point])
    keys = list(exact)
    near = [keys.index(key) for key in support if key in exact]
    binding_count = len(near)
    if x_in is not None:                 # then the rows by their distance from the LP's point
        slack = [float(b) - float(sum(ai * xi for ai, xi in zip(a, x_in))) for a, b in
                 exact.values()]
        scale = [max(float(sum(abs(ai) for ai in a)), np.finfo(float).tiny) for a, _ in
                 exact.values()]
        order = np.argsort(np.abs(slack) / np.array(scale))
        near += [int(i) for i in order if int(i) not in near]
    proof = rational.empty_certificate(list(exact.values()), near, binding_count)
    if proof is not None:
        return "empty", {keys[i] for i in proof}
    return "undecided", x_in
