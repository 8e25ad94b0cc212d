"""Exact Lipschitz constants over a box for p in {1, inf} by mixed-integer LP (HiGHS).

f is CPWL, so Lip_p over the (convex) box [-R, R]^N_0 = max over the linear regions meeting
it of ||J||_{p->p}.  `exact_milp` encodes (x, v) -> (f(x), J(x) v) with one binary per
reachable linear piece of every neuron (scipy.optimize.milp, HiGHS), big-M constants from
interval bounds (`_encode`), on the network normalised so that every layer's values are
near 1 on the box (`exact.normalized_network`: powers of two, exact), because HiGHS's
tolerances are absolute (1e-6 on every row).  Each pattern HiGHS returns is decided: attained
(floating point decides the pattern at the LP's deepest point of its region,
reference.lipschitz._rounding_exact.robust_pieces), proven non-empty in exact rational arithmetic
(that point strictly inside the region, reference.lipschitz._rational), proven without interior (a
Gordan certificate on the LP's binding rows, checked exactly: only then is it cut off), or
undecided (kept: its value stays an upper bound).  Whatever stops it (time limit, patterns
undecided, HiGHS disagreeing with NumPy), it returns a certified bracket lower_bound <= Lip_p
<= upper_bound with a witness pair for the lower end (see `exact_milp`).  Shared pieces
(knot forms, tail bounds, witness pairs) come from reference.lipschitz._exact.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.optimize
import scipy.sparse

from reference import _format
from reference._limits import Deadline, check_box, check_limit, guard
from reference.exceptions import MilpNotOptimal, NotApplicable
from reference.lipschitz import _rational as rational
from reference.lipschitz._bound_result import BoundResult
from reference.lipschitz._bounds import (
    check_finite,
    jacobian_norms,
    operator_norm,
    parse_p,
    secant_pair,
    vector_norm,
)
from reference.lipschitz._exact import (
    TIME_LIMIT,
    box_halfspaces,
    chord_pair,
    finite_or_none,
    knot_form,
    normalized_network,
    piece_tables,
    solver_output_silenced,
    tail_bounds,
)
from reference.lipschitz._milp_patterns import decide
from reference.nn._knot_spline import KnotSpline
from reference.nn._network import Network

MAX_BINARIES = 400         # binaries of one MILP (refused before solving)
HIGHS_INFINITY = 1e20      # HiGHS treats bounds of this size as infinite
MILP_TOLERANCE = 1e-5      # HiGHS's objective and bounds, trusted to this x
#                            max(|bound|, layer-wise bound): relative to the problem's scale
PRESOLVE = (True, False)   # HiGHS attempts: a "Solve error" with presolve is retried without
MAX_CUTS = 200             # patterns proven without interior cut off per MILP
THIN_PIECE = 1e-5          # _encode: pieces narrower (x the neuron's range) are widened
FALLBACK_POINTS = 64       # no witness pattern: seeded points for a secant lower bound


class _Milp:
    """Variables with bounds and sparse linear constraints lo <= A v <= hi for scipy's milp,
    kept as blocks of arrays (concatenated once, in `solve`)."""

    def __init__(self):
        self.n_vars, self.n_rows, self.binaries = 0, 0, 0
        self.lbs, self.ubs, self.kinds = [], [], []
        self.rows, self.cols, self.vals, self.lo, self.hi = [], [], [], [], []

    def var(self, lb, ub, integer: bool = False) -> np.ndarray:
        lb, ub = np.atleast_1d(np.asarray(lb, float)), np.atleast_1d(np.asarray(ub, float))
        self.lbs.append(lb)
        self.ubs.append(ub)
        self.kinds.append(np.full(len(lb), int(integer)))
        self.binaries += len(lb) if integer else 0
        self.n_vars += len(lb)
        return np.arange(self.n_vars - len(lb), self.n_vars)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.lbs), np.concatenate(self.ubs)

    def add(self, idx, coef, lo: float, hi: float) -> None:
        """lo <= sum_k coef[k] * v[idx[k]] <= hi."""
        self.add_rows(np.asarray(idx, int)[None], np.asarray(coef, float)[None], lo, hi)

    def add_rows(self, idx: np.ndarray, coef: np.ndarray, lo, hi) -> None:
        """lo_r <= sum_k coef[r, k] * v[idx[r, k]] <= hi_r for every row r of (R, K) arrays."""
        count, k = idx.shape
        self.rows.append(np.repeat(np.arange(self.n_rows, self.n_rows + count), k))
        self.cols.append(idx.ravel())
        self.vals.append(np.asarray(coef, float).ravel())
        self.lo.append(np.broadcast_to(np.asarray(lo, float), count))
        self.hi.append(np.broadcast_to(np.asarray(hi, float), count))
        self.n_rows += count

    def solve(self, objective: np.ndarray, time_limit: float, gap: float,
              presolve: bool = True):
        c = np.zeros(self.n_vars)
        c[objective[0]] = objective[1]
        a = scipy.sparse.csr_array(
            (np.concatenate(self.vals), (np.concatenate(self.rows), np.concatenate(self.cols))),
            shape=(self.n_rows, self.n_vars))
        with solver_output_silenced():
            return scipy.optimize.milp(
                c, integrality=np.concatenate(self.kinds),
                bounds=scipy.optimize.Bounds(*self.bounds()),
                constraints=scipy.optimize.LinearConstraint(a, np.concatenate(self.lo),
                                                            np.concatenate(self.hi)),
                options={"time_limit": time_limit, "mip_rel_gap": gap, "presolve": presolve})


def _channel(spl: KnotSpline, n: int, z: np.ndarray) -> np.ndarray:
    """sigma_n(z) for z (P,): b0 + b1 z + sum_k a_k (z - tau_k)_+ of channel n alone."""
    return spl.b0[n] + spl.b1[n] * z + np.maximum(z[:, None] - spl.knots[n], 0.0) @ spl.jumps[n]


def _pieces_in(spl: KnotSpline, n: int, lo: float, hi: float):
    """The linear pieces of neuron n met by z in [lo, hi]: their ends clipped to [lo, hi]
    l, h (P,), their true ends (knots or -+inf) el, eh (P,), slopes (P,), sigma(l) (P,), and
    their indices among all the neuron's pieces (P,)."""
    tau = spl.knots[n]
    edges = np.concatenate([[-np.inf], tau, [np.inf]])
    slopes = spl.slopes(n)
    keep = (edges[1:] > lo) & (edges[:-1] < hi)
    if not keep.any():                                   # lo == hi on a knot
        keep = (edges[1:] >= lo) & (edges[:-1] <= hi)
        keep[np.argmax(keep)+1:] = False
    l = np.maximum(edges[:-1][keep], lo)
    h = np.minimum(edges[1:][keep], hi)
    values = _channel(spl, n, l)
    return l, h, edges[:-1][keep], edges[1:][keep], slopes[keep], values, np.flatnonzero(keep)


def _spline_range(spl: KnotSpline, n: int, lo: float, hi: float) -> tuple[float, float]:
    """min and max of sigma_n over [lo, hi] (at the ends and the knots inside)."""
    tau = spl.knots[n]
    pts = np.concatenate([[lo, hi], tau[(tau > lo) & (tau < hi)]])
    vals = _channel(spl, n, pts)
    return float(vals.min()), float(vals.max())


def _interval_affine(weight, bias, lo, hi):
    """Interval bounds of W y + b for y in the box [lo, hi]."""
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    centre = weight @ mid + (0.0 if bias is None else bias)
    spread = np.abs(weight) @ rad
    return centre - spread, centre + spread


def _encode(net: Network, box: float, direction, max_binaries: float = MAX_BINARIES):
    """The MILP of (x, v) -> (f(x), J(x) v) over x in [-box, box]^N_0.

    direction: ("box",) for v in [-1, 1]^N_0, or ("unit", j) for v = e_j.  Per neuron with
    pre-activation z in [lo, hi] (interval bounds) meeting P > 1 pieces [l_j, h_j] with slopes
    s_j: binaries d_j (sum 1) and copies z_j, dz_j (convex-hull form):
      z = sum z_j, l_j d_j <= z_j <= h_j d_j,  y = sum (sigma(l_j) d_j + s_j (z_j - l_j d_j)),
      dz = sum dz_j, D_lo d_j <= dz_j <= D_hi d_j,  dy = sum s_j dz_j,
    [D_lo, D_hi] the interval bounds of dz.  P = 1: y and dy affine in z, dz.  A piece
    narrower than THIN_PIECE x max(1, |lo|, |hi|) is widened by that much on each side (y
    on it continues its line, y's bounds grow by the largest slope times it): HiGHS, whose
    tolerances are 1e-9 .. 1e-6, otherwise takes a piece 1e-13 wide for an infeasible one
    and reports a bound below the slope it carries; the widened MILP is a relaxation (every
    true point and pattern stays feasible), so its bound still holds, and a pattern it
    alone allows is decided and cut off like any other (`decide`).
    More than max_binaries binaries: TooLarge as soon as the count passes it (the encoding
    stops there).  Returns the model, the input variables, the output direction variables,
    their bounds and the pattern list, per neuron in order: (binaries or None, slopes s_j, offsets
    sigma(l_j) - s_j l_j (sigma = s_j z + offset_j on piece j), true piece ends el, eh, the
    pieces' indices among all the neuron's pieces)."""
    m = _Milp()
    n0 = net.n_in
    ylo, yhi = np.full(n0, -box), np.full(n0, box)
    y = x_vars = m.var(ylo, yhi)
    if direction[0] == "box":
        dlo, dhi = -np.ones(n0), np.ones(n0)
    else:
        dlo = dhi = np.eye(n0)[direction[1]]
    dy = m.var(dlo, dhi)
    pattern: list[tuple] = []
    for layer in net.layers:
        if not layer.is_activation:
            w, b = layer.params["weight"], layer.params.get("bias")
            zlo, zhi = _interval_affine(w, b, ylo, yhi)
            gl, gh = _interval_affine(w, None, dlo, dhi)
            z, dz = m.var(zlo, zhi), m.var(gl, gh)
            coef = np.hstack([np.ones((len(z), 1)), -w])              # z_r - w_r . y = b_r
            rhs = 0.0 if b is None else b
            m.add_rows(np.column_stack([z, np.tile(y, (len(z), 1))]), coef, rhs, rhs)
            m.add_rows(np.column_stack([dz, np.tile(dy, (len(z), 1))]), coef, 0.0, 0.0)
            y, dy, ylo, yhi, dlo, dhi = z, dz, zlo, zhi, gl, gh
            continue
        width = len(y)
        spl = knot_form(layer, width)
        ny, ndy = np.zeros(width, int), np.zeros(width, int)
        nylo, nyhi, ndlo, ndhi = (np.zeros(width) for _ in range(4))
        for n in range(width):
            l, h, el, eh, s, v, index = _pieces_in(spl, n, ylo[n], yhi[n])
            nylo[n], nyhi[n] = _spline_range(spl, n, ylo[n], yhi[n])
            if len(s) > 1:                  # thin pieces widened: a relaxation HiGHS sees
                room = THIN_PIECE * max(1.0, abs(ylo[n]), abs(yhi[n]))
                thin = h - l < room
                l, h = np.where(thin, l - room, l), np.where(thin, h + room, h)
                slack = room * float(np.abs(s[thin]).max(initial=0.0))
                nylo[n], nyhi[n] = nylo[n] - slack, nyhi[n] + slack
            prods = np.concatenate([s * dlo[n], s * dhi[n]])
            ndlo[n], ndhi[n] = prods.min(), prods.max()
            ny[n] = m.var(nylo[n], nyhi[n])[0]
            ndy[n] = m.var(ndlo[n], ndhi[n])[0]
            if len(s) == 1:
                m.add([ny[n], y[n]], [1.0, -s[0]], v[0] - s[0] * l[0], v[0] - s[0] * l[0])
                m.add([ndy[n], dy[n]], [1.0, -s[0]], 0.0, 0.0)
                pattern.append((None, s, v - s * l, el, eh, index))
                continue
            k = len(s)
            d = m.var(np.zeros(k), np.ones(k), integer=True)
            _check_binaries(m, max_binaries)
            zc = m.var(np.minimum(l, 0) , np.maximum(h, 0))
            dzc = m.var(np.full(k, min(dlo[n], 0)), np.full(k, max(dhi[n], 0)))
            m.add(d, np.ones(k), 1.0, 1.0)
            m.add(np.r_[y[n], zc], np.r_[1.0, -np.ones(k)], 0.0, 0.0)
            m.add(np.r_[dy[n], dzc], np.r_[1.0, -np.ones(k)], 0.0, 0.0)
            for j in range(k):
                m.add([zc[j], d[j]], [1.0, -l[j]], 0.0, np.inf)
                m.add([zc[j], d[j]], [1.0, -h[j]], -np.inf, 0.0)
                m.add([dzc[j], d[j]], [1.0, -dlo[n]], 0.0, np.inf)
                m.add([dzc[j], d[j]], [1.0, -dhi[n]], -np.inf, 0.0)
            m.add(np.r_[ny[n], zc, d], np.r_[1.0, -s, -(v - s * l)], 0.0, 0.0)
            m.add(np.r_[ndy[n], dzc], np.r_[1.0, -s], 0.0, 0.0)
            pattern.append((d, s, v - s * l, el, eh, index))
        y, dy, ylo, yhi, dlo, dhi = ny, ndy, nylo, nyhi, ndlo, ndhi
    return m, x_vars, dy, (dlo, dhi), pattern


def _check_binaries(m: _Milp, max_binaries: float) -> None:
    guard("model: the MILP's binaries", m.binaries, max_binaries, "max_binaries")




def _chosen(res_x, pattern):
    """Per pattern entry, the index of the chosen piece (0 when the neuron has one)."""
    return [0 if d is None else int(np.argmax(res_x[d])) for d, *_ in pattern]


def _pattern_affine(net: Network, pattern, chosen):
    """With every neuron on its chosen piece, f is affine on the region: returns the
    Jacobian J (N_L, N_0), per pattern entry z_n(x) = g.x + c with (g, c, lo, hi, layer)
    (lo, hi the chosen piece's true ends, layer the index of the neuron's activation layer
    among them: g and c depend on the pieces of the layers before it only), and the
    activation pattern (per activation layer, the index of every neuron's piece)."""
    g, c = np.eye(net.n_in), np.zeros(net.n_in)
    rows, k, depth, pieces = [], 0, 0, []
    for layer in net.layers:
        if not layer.is_activation:
            w = layer.params["weight"]
            g, c = w @ g, w @ c + layer.params.get("bias", 0.0)
            continue
        width = g.shape[0]
        slope, offset = np.zeros(width), np.zeros(width)
        layer_pieces = []
        for n in range(width):
            _, s, off, el, eh, index = pattern[k]
            j = chosen[k]
            k += 1
            slope[n], offset[n] = s[j], off[j]
            rows.append((g[n].copy(), c[n], el[j], eh[j], depth))
            layer_pieces.append(int(index[j]))
        pieces.append(tuple(layer_pieces))
        g, c = slope[:, None] * g, slope * c + offset
        depth += 1
    return g, rows, pieces


def _objective_bound(m: _Milp, target) -> float:
    """An upper bound on max -c.v over the variables' bounds alone (interval arithmetic):
    sum_k max(-c_k lb_k, -c_k ub_k)."""
    idx, coef = target
    lb, ub = (b[idx] for b in m.bounds())
    return float(np.sum(np.maximum(-coef * lb, -coef * ub)))


def _witness(net: Network, candidates, p: float):
    """The candidate patterns (value, rows, x, jac, decision) by decreasing value, to the
    first one whose region is attained or proven non-empty (`decide`).  Returns (witness
    = ||J||_{p->p} of that pattern (the network's own Jacobian at x when attained) or None,
    its x or None, whether attained, its rows or None)."""
    for value, rows, _, jac, (kind, x_in) in sorted(candidates, key=lambda c: -c[0]):
        if kind == "attained":
            return operator_norm(net.input_jacobian(x_in[None])[0], p), x_in, True, rows
        if kind == "proven":
            return operator_norm(jac, p), x_in, False, rows
    return None, None, False, None


def _region_halfspaces(rows, box: float, n0: int) -> tuple[np.ndarray, np.ndarray]:
    """A pattern's region within the box as A x <= b: lo <= g.x + c <= hi for every row
    (g, c, lo, hi, layer) of `_pattern_affine` (infinite ends dropped), and the box."""
    a_rows, b = [], []
    for g, c, lo, hi, _ in rows:
        if np.isfinite(lo):
            a_rows.append(-g)
            b.append(c - lo)
        if np.isfinite(hi):
            a_rows.append(g)
            b.append(hi - c)
    a_box, b_box = box_halfspaces(box, n0)
    return (np.vstack([np.reshape(a_rows, (-1, n0)), a_box]),
            np.concatenate([np.asarray(b, float), b_box]))


def witness_pair(net: Network, p: float, box: float, x_in, rows, seed: int = 0) -> dict:
    """The certified lower end of the MILP's bracket as a pair of points of the box: with a
    witness pattern (x_in strictly inside its region), the `chord_pair` of that region within
    the box through x_in (f affine between the two points: ratio = ||J||_{p->p} up to
    rounding); without one (HiGHS stopped before an incumbent, none of its patterns has an
    interior point, or the region is too thin for a chord in float64), the `secant_pair`
    at the best of FALLBACK_POINTS seeded uniform points of the box (f differentiable there
    with probability 1).  Returns witness_x, witness_x_pair,
    witness_ratio and witness_source."""
    chord = None
    if x_in is not None:
        try:
            chord = chord_pair(net, p, *_region_halfspaces(rows, box, net.n_in), x=x_in)
        except ValueError:                 # a region thinner than float64 resolves
            chord = None
    if chord is not None:
        x_a, x_b, ratio = chord
        source = "chord of the witness pattern's region (within the box) through its point"
    else:
        x = np.random.default_rng(seed).uniform(-box, box, (FALLBACK_POINTS, net.n_in))
        best = x[int(np.argmax(jacobian_norms(net.input_jacobian(x), p)))]
        x_a, x_b, ratio = secant_pair(net, best, p, box)
        source = (f"no witness pattern: secant pair at the best of {FALLBACK_POINTS} seeded "
                  f"points of the box (seed {seed})")
    return {"witness_x": x_a, "witness_x_pair": x_b, "witness_ratio": ratio,
            "witness_source": source}


def _target(m: _Milp, direction, out, olo, ohi):
    """The objective (variables, coefficients; HiGHS minimises) of one MILP: -(J v)_i for
    direction ("box", i); for ("unit", j), -sum_i t_i with t_i = |(J e_j)_i| (a sign binary
    and big-M = 2 max(-lo_i, hi_i) when the interval [lo_i, hi_i] of (J e_j)_i holds 0)."""
    if direction[0] == "box":
        return np.array([out[direction[1]]]), np.array([-1.0])
    t = m.var(np.zeros(len(out)), np.maximum(np.abs(olo), np.abs(ohi)))
    for i in range(len(out)):
        big = 2 * max(-olo[i], ohi[i], 0.0)
        if olo[i] >= 0 or ohi[i] <= 0:
            sign = 1.0 if olo[i] >= 0 else -1.0
            m.add([t[i], out[i]], [1.0, -sign], 0.0, 0.0)
            continue
        sg = m.var(0.0, 1.0, integer=True)[0]
        m.add([t[i], out[i], sg], [1.0, -1.0, big], -np.inf, big)
        m.add([t[i], out[i], sg], [1.0, 1.0, -big], -np.inf, 0.0)
    return t, -np.ones(len(out))


def _highs(m: _Milp, target, deadline: Deadline, share: int, gap: float, label: str):
    """HiGHS on the model within a share (1 / share) of the time left: with presolve, then,
    if HiGHS fails other than by its time limit (HiGHS 1.x reports "Solve error" on some of
    these models with presolve, and solves them without), without it.  Returns (result,
    the attempts as text when there was a retry, else []); MilpNotOptimal when every
    attempt failed."""
    attempts = []
    for presolve in PRESOLVE:
        seconds = max(deadline.remaining() / share, 1e-3)
        res = m.solve(target, seconds, gap, presolve=presolve)
        failed = res.status not in (0, 1) or (res.status == 0 and res.x is None)
        attempts.append(f"presolve {'on' if presolve else 'off'}: {res.message}")
        if not failed:
            return res, attempts if len(attempts) > 1 else []
    raise MilpNotOptimal(f"{label}: HiGHS stopped ({'; '.join(attempts)}); no exact value is "
                         "reported")


def _conflict_binaries(pattern, chosen, rows, support) -> list:
    """The binaries of the chosen pieces that make a region without interior: those of the
    neurons in the certificate's support (`decide`) and of every neuron in a layer before
    the deepest of them (their pieces fix the support rows' g and c).  Any pattern with these
    pieces has the same support rows, hence the same certificate: one cut removes them
    all."""
    conflict = {key[0] for key in support if key[0] != "box"}
    deepest = max((rows[k][4] for k in conflict), default=-1)
    keep = [k for k in range(len(rows)) if k in conflict or rows[k][4] < deepest]
    return [pattern[k][0][chosen[k]] for k in keep if pattern[k][0] is not None]


def _solve_one(net, model, direction, p, box, limits, deadline, share, label,
               exact: tuple[rational.RationalNetwork, dict]) -> dict:
    """Solve one MILP of exact_milp within a share of the time left (limits = (max_binaries,
    max_cuts, mip_rel_gap); exact = (rational network, piece tables) for `decide`).  Each
    pattern HiGHS finds optimal is decided (`decide`); when its region is proven without
    interior in the box (e.g. bias-free ReLU layers, where every pattern is feasible at
    x = 0 and the MILP's optimum can be a combination of pieces no region has), its
    conflicting pieces are cut off (sum of their binaries <= their count - 1,
    `_conflict_binaries`: every pattern sharing them goes, and no slope of f, Lip being the
    max over the regions with interior) and HiGHS solves again, up to max_cuts times; a
    pattern attained, proven, or undecided stays.  Returns solved (HiGHS proved optimality),
    upper (HiGHS's bound on the optimum over the patterns left: its dual bound, its
    objective when solved without one, or the interval bound of the objective when stopped
    before it has any), dual, attempts, binaries, cuts, and when HiGHS has a solution:
    candidate (value re-evaluated in NumPy, rows, x, jac, decision) of its pattern,
    objective (HiGHS's) and gap."""
    m, x_vars, out, (olo, ohi), pattern = model
    max_binaries, max_cuts, gap = limits
    big_m = max(np.abs(b).max() for b in m.bounds())
    if not big_m < HIGHS_INFINITY:                  # the ladder's other methods still run
        raise NotApplicable(f"box: the MILP's interval bounds reach {big_m:.3g}, beyond "
                            f"HiGHS's infinity {HIGHS_INFINITY:g}; the exact method needs a "
                            "smaller box for this network")
    target = _target(m, direction, out, olo, ohi)
    _check_binaries(m, max_binaries)
    res, attempts = _highs(m, target, deadline, share, gap, label)
    cuts = 0
    while res.x is not None:
        chosen = _chosen(res.x, pattern)
        jac, rows, pieces = _pattern_affine(net, pattern, chosen)
        decision = decide(net, *exact, rows, pieces, box)
        if res.status != 0 or cuts >= max_cuts or decision[0] != "empty":
            break
        binaries = _conflict_binaries(pattern, chosen, rows, decision[1])
        if not binaries:
            break
        m.add(binaries, np.ones(len(binaries)), -np.inf, len(binaries) - 1.0)
        cuts += 1
        res, more = _highs(m, target, deadline, share, gap, label)
        attempts += more
    dual = getattr(res, "mip_dual_bound", None)
    dual = -dual if dual is not None and np.isfinite(dual) else (
        -res.fun if res.status == 0 else None)
    out = {"solved": res.status == 0, "dual": dual, "binaries": m.binaries, "cuts": cuts,
           "attempts": [f"{label} {a}" for a in attempts],
           "upper": dual if dual is not None else _objective_bound(m, target)}
    if res.x is None:                                        # stopped before an incumbent
        return out
    value = np.abs(jac[direction[1]]).sum() if p == np.inf else \
        np.abs(jac[:, direction[1]]).sum()
    out.update(candidate=(float(value), rows, res.x[x_vars], jac, decision),
               objective=-res.fun, gap=float(getattr(res, "mip_gap", 0.0) or 0.0))
    return out


def _verdict(net, p, done, witness, upper, tolerance) -> tuple:
    """(status, upper_bound, reason) of a run whose MILPs were all solved: "optimal" when the
    witness (NumPy) and HiGHS's bound U agree to the tolerance, |U - witness| <= tolerance
    (the upper bound is then U + tolerance); otherwise a bracket: "not_attained" when no
    pattern HiGHS found is attained or proven, or the best one is neither (its value is
    above the witness), "solver_tolerance" when HiGHS's bound and the witness of its own
    pattern differ by more than the tolerance (U + tolerance is kept as the upper bound if it
    is above the witness; if not, HiGHS contradicts an attained value and the layer-wise
    bound replaces it)."""
    best = max(d["candidate"][0] for d in done)
    if witness is not None and abs(upper - witness) <= tolerance:
        return "optimal", upper + tolerance, None
    if witness is None or best > witness + tolerance:
        return ("not_attained", upper + tolerance,
                f"the best activation pattern HiGHS found (value {_format.exact(best)}) has "
                "no point where floating point or exact arithmetic decides that its region "
                "meets the box in an open set (after the cuts allowed by max_cuts): its value "
                "is an upper bound, not attained")
    if witness > upper + tolerance:
        return ("solver_tolerance", tail_bounds(net, p)[1],
                f"HiGHS's bound {_format.exact(upper)} is below the attained value "
                f"{_format.exact(witness)} by more than its tolerance {tolerance:.3g}: "
                "HiGHS's bound is not used (upper bound: layer-wise)")
    return ("solver_tolerance", upper + tolerance,
            f"HiGHS's bound {_format.exact(upper)} and the NumPy re-evaluation "
            f"{_format.exact(witness)} of its pattern at an interior point differ by more "
            f"than its tolerance {tolerance:.3g}")


def exact_milp(net: Network, p: float | str = np.inf, box: float = 1.0,
               max_binaries: float = MAX_BINARIES, time_limit: float = TIME_LIMIT,
               mip_rel_gap: float = 1e-9, max_cuts: int = MAX_CUTS) -> BoundResult:
    r"""Exact Lipschitz constant over a box for p in {1, inf}, by mixed-integer LP (HiGHS).

    Parameters
    ----------
    net : Network
        The network f, N_0 inputs, N_L outputs; its parameters must be finite.
    p : {1, inf} or str, default inf
        The l_p norm on inputs and outputs (p = 2: NotApplicable).
    box : float, default 1.0
        The half-width R > 0 of the box [-R, R]^N_0.
    max_binaries : int, default MAX_BINARIES (400)
        The most binaries of one MILP (refused while encoding, before any solve).
    time_limit : float, default TIME_LIMIT (60.0)
        Seconds, shared by the MILPs (each gets the time left over the MILPs left).
    mip_rel_gap : float, default 1e-9
        HiGHS's relative MIP gap.
    max_cuts : int, default MAX_CUTS (200)
        The most patterns proven without interior cut off per MILP, an integer >= 0.

    Returns
    -------
    result : BoundResult
        A dict subclass with attribute access (the keys marked [exact_milp] in
        `BoundResult`): ``value`` (float, = witness when optimal, else None), ``status`` ("optimal",
        "not_attained", "solver_tolerance" or "time_limit"), ``certified_exact`` (bool:
        status "optimal"), ``witness`` (float or None), ``witness_x`` (ndarray, shape
        (N_0,)), ``attained`` (whether the witness is the network's own Jacobian at
        witness_x, else a pattern's proven norm), ``lower_bound`` <= Lip_p(f) <=
        ``upper_bound`` (floats; upper_bound = HiGHS's bound + tolerance, or the layer-wise
        bound), ``lower_bound_certificate`` and ``upper_bound_certificate`` (str),
        ``upper_margin_kind`` ("tolerance" or "closed_form"), ``tolerance`` (float),
        ``witness_pair`` (dict: ``x``, ``x_pair``, ``ratio``, ``source``: a pair of points
        of the box whose secant ratio, re-evaluated with Network.forward, realises the
        lower end up to rounding), ``milp_objective`` and ``milp_dual_bound`` (HiGHS's),
        ``mip_gap`` (absent when stopped at the time limit), ``milps``, ``milps_solved``,
        ``cuts``, ``binaries``, ``attempts`` (HiGHS's retries), ``domain``, ``seconds``,
        and ``reason`` (str) when there is no value.

    Raises
    ------
    NotApplicable
        For p = 2, and when the box is too large for HiGHS (an interval bound of the
        normalised network reaches HIGHS_INFINITY, e.g. a spline's linear extension at box
        1e100).
    ValueError
        When p, box, max_binaries or max_cuts is out of range, or a parameter is not finite.
    TooLarge
        Over max_binaries binaries, while encoding, before any solve.
    MilpNotOptimal
        When HiGHS fails (other than by the time limit) with and without presolve.

    See Also
    --------
    exact_1d, regions_2d : The exact methods for one and two inputs, every p.

    Notes
    -----
    f is continuous and piecewise linear [1]_, so over the (convex) box

    .. math::

        \mathrm{Lip}_p(f) = \max_{\text{regions } \Omega \cap [-R, R]^{N_0}
        \neq \emptyset} \|J_\Omega\|_{p\to p} .

    `exact_milp` encodes (x, v) -> (f(x), J(x) v) with one binary per reachable linear
    piece of every neuron and big-M constants from interval bounds.  p = inf:
    ||J||_{inf->inf} = max_i max_{v in [-1,1]^N_0} (J v)_i, one MILP per output i; p = 1:
    ||J||_{1->1} = max_j ||J e_j||_1, one MILP per input j with a sign binary for each
    |(J e_j)_i| whose sign is not fixed by the interval bounds.  See `_encode`.
    The MILPs share the time limit: each gets the time left over the MILPs left.

    Units: the MILPs run on `exact.normalized_network` (f(x) = a_L f_hat(x / a_0), every
    layer's values near 1 on the box; powers of two, exact), so that HiGHS's absolute
    tolerances mean the same at every scale; every number is mapped back (values times
    a_L / a_0, points times a_0).

    Certificate: for each MILP's answer the pattern Jacobian is recomputed in NumPy and the
    pattern decided (`decide`): an LP finds the deepest point of its region within the
    box; the pattern is attained when floating point decides the network's own pieces
    there (by more than their rounding bounds), proven when that point is strictly inside
    the region in exact rational arithmetic, proven without interior when the LP's binding
    rows give an exact Gordan certificate, undecided otherwise.  The candidates are tried
    by decreasing value: the first attained or proven one is the witness (the network's own
    Jacobian there, or the pattern's proven norm), a certified lower bound.  A pattern
    proven without interior in the box is no slope of f (at a point where several
    pre-activations sit on knots, e.g. x = 0 without biases, the MILP may combine pieces
    that no region has): it is cut off and the MILP solved again (`_solve_one`, at most
    max_cuts times per MILP); an undecided one is never cut (its region may be a strip
    thinner than any tolerance, carrying the largest slope).  HiGHS's bound U (max over the
    MILPs of the dual bound, its objective when solved) is an upper bound up to its
    tolerances: its rows hold to mip_feasibility_tolerance = 1e-6 (absolute, in the
    normalised units), which moves the objective by about that much (measured: HiGHS's
    objective above the NumPy value of its own pattern by up to 1.06e-6 relative over 3900
    MILPs of the ladder property's networks, 1.86e-6 on one found by a random search), and
    a row's error reaches the objective through the gains of the layers after it, so U is
    trusted to tolerance = MILP_TOLERANCE x max(|U|, layerwise(f, p)) (the layer-wise bound
    carries those gains; both scale like f, so the tolerance means the same in any units)
    and the upper bound is U + tolerance.  The value reported is the witness, never HiGHS's number:
    status "optimal" (certified_exact) when |U - witness| <= tolerance; otherwise value None
    and a bracket (`_verdict`): status "not_attained" (the best pattern left after max_cuts
    cuts is neither attained nor proven) or "solver_tolerance" (HiGHS's bound and the
    witness disagree).  HiGHS's "Solve error" with presolve is retried without presolve
    (attempts).

    When time_limit is reached (HiGHS stops on it, or no time is left to start a MILP):
    status "time_limit", value None, certified_exact False, a reason, and the bracket
    lower_bound <= Lip_p <= upper_bound: upper_bound = max over the MILPs of HiGHS's bound
    (the interval bound of the objective when HiGHS has none yet, the layer-wise bound when
    not started) + tolerance; lower_bound = the witness of the best pattern found (optimal
    or incumbent, re-evaluated in NumPy) that has one.

    Every status carries a usable bracket (never nothing): lower_bound is the witness, or,
    when no pattern has one (HiGHS stopped before an incumbent, or status "not_attained"),
    ||J|| at the best of FALLBACK_POINTS seeded points of the box (witness_x is then that
    point, witness None); lower_bound_certificate and upper_bound_certificate say which.
    witness_pair {x, x_pair, ratio, source} (`witness_pair`) is a pair of points of the box
    whose secant ratio, re-evaluated with Network.forward, realises the lower end up to
    rounding: what a verdict on a claimed bound shows (reference.lipschitz._verdict).

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.

    Examples
    --------
    >>> import numpy as np
    >>> from reference.nn import build_mlp
    >>> from reference.lipschitz import exact_milp
    >>> result = exact_milp(build_mlp([2, 4, 1], activation="relu", rng=0), p=np.inf)
    >>> print(result["status"], round(result["value"], 6), result["milps"])
    optimal 0.857481 1
    """
    p = parse_p(p)
    check_finite(net)
    if p == 2.0:
        raise NotApplicable("p: the MILP computes exact values for p = 1 or inf only")
    box = check_box(box)
    max_binaries = check_limit(max_binaries, "max_binaries")
    if not (isinstance(max_cuts, (int, np.integer)) and max_cuts >= 0):
        raise ValueError(f"max_cuts: expected an integer >= 0, got {max_cuts!r}")
    deadline = Deadline(time_limit)
    net_hat, box_hat, a_in, a_out = normalized_network(net, box)
    out = BoundResult(_exact_milp(net_hat, p, box_hat, (max_binaries, max_cuts, mip_rel_gap),
                                  deadline))
    factor = a_out / a_in
    for key in ("witness", "lower_bound", "upper_bound", "tolerance", "milp_objective",
                "milp_dual_bound"):
        out[key] = None if out[key] is None else out[key] * factor
    pair = out["witness_pair"]
    x, x_pair = a_in * np.asarray(pair["x"]), a_in * np.asarray(pair["x_pair"])
    diff = net.forward(x_pair[None])[0] - net.forward(x[None])[0]
    pair.update(x=x, x_pair=x_pair, ratio=vector_norm(diff, p) / vector_norm(x_pair - x, p))
    out["witness_x"] = a_in * np.asarray(out["witness_x"])
    if out["value"] is not None:
        out["value"] = out["witness"]
    out.update(domain=f"box [-{box:g}, {box:g}]^{net.n_in}", seconds=deadline.elapsed())
    return out


def _exact_milp(net: Network, p: float, box: float, limits: tuple, deadline) -> dict:
    """exact_milp on a normalised network (its docstring; limits = (max_binaries, max_cuts,
    mip_rel_gap)), every number in that network's units."""
    max_binaries = limits[0]
    n0 = net.n_in
    runs = [("box", i) for i in range(net.n_out)] if p == np.inf else \
        [("unit", j) for j in range(n0)]
    tables = piece_tables(net)
    exact = (rational.RationalNetwork(net, tables), tables)
    encoded = _encode(net, box, runs[0], max_binaries) if p == np.inf else None  # N_L targets
    done: list[dict[str, Any]] = []
    for r, direction in enumerate(runs):
        if encoded is None and r > 0 and deadline.expired():           # not started
            done.append({"solved": False, "upper": tail_bounds(net, p)[1], "dual": None})
            continue
        model = encoded or _encode(net, box, direction, max_binaries)
        done.append(_solve_one(net, model, direction, p, box, limits, deadline,
                               len(runs) - r, f"MILP {r + 1}/{len(runs)}", exact))
    candidates = [d["candidate"] for d in done if d.get("candidate")]
    solved = sum(d["solved"] for d in done)
    upper = float(max(d["upper"] for d in done))
    tolerance = MILP_TOLERANCE * max(abs(upper), tail_bounds(net, p)[1])
    witness, x_in, attained, rows = _witness(net, candidates, p)
    pair = witness_pair(net, p, box, x_in, rows)
    if witness is None:                    # no pattern attained: the fallback's own point
        x_in = pair["witness_x"]
        lower = operator_norm(net.input_jacobian(x_in[None])[0], p)
        certificate = ("||J(witness_x)||, the network's Jacobian at a seeded point of the box "
                       "(f differentiable there with probability 1): " + pair["witness_source"])
    elif attained:
        lower = witness
        certificate = ("||J(witness_x)||, the network's Jacobian at a point of the region of "
                       "the best pattern HiGHS found where floating point decides its pieces")
    else:
        lower = witness
        certificate = ("||J|| of the best pattern HiGHS found whose region exact rational "
                       "arithmetic proves to meet the box in an open set (witness_x inside)")
    common = {"witness": witness, "lower_bound": lower, "witness_x": x_in,
              "attained": attained, "lower_bound_certificate": certificate,
              "witness_pair": {"x": pair["witness_x"], "x_pair": pair["witness_x_pair"],
                               "ratio": pair["witness_ratio"],
                               "source": pair["witness_source"]},
              "tolerance": tolerance,
              "upper_bound_certificate": "max over the MILPs of HiGHS's dual bound (or "
                                         "objective) + tolerance",
              "upper_margin_kind": "tolerance",
              "milp_objective": max((d["objective"] for d in done if "objective" in d),
                                    default=None),
              "milp_dual_bound": max((d["dual"] for d in done if d["dual"] is not None),
                                     default=None),
              "milps": len(runs), "milps_solved": solved,
              "cuts": sum(d.get("cuts", 0) for d in done),
              "binaries": max((d.get("binaries", 0) for d in done), default=0),
              "attempts": [a for d in done for a in d.get("attempts", [])]}
    if solved < len(runs):
        return {"value": None, "status": "time_limit", "certified_exact": False,
                "upper_bound": finite_or_none(upper + tolerance),
                "reason": (f"stopped at the time limit {deadline.time_limit:g} s with "
                           f"{solved} of {len(runs)} MILPs solved"), **common}
    status, upper_bound, reason = _verdict(net, p, done, witness, upper, tolerance)
    if upper_bound != upper + tolerance:
        common["upper_bound_certificate"] = "the layer-wise bound (HiGHS's bound not used)"
        common["upper_margin_kind"] = "closed_form"
    out = {"value": witness if status == "optimal" else None, "status": status,
           "certified_exact": status == "optimal", "upper_bound": finite_or_none(upper_bound),
           "mip_gap": max(d["gap"] for d in done), **common}
    if reason:
        out["reason"] = reason
    return out
