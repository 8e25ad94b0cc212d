"""Exact Lipschitz constants of a network, which is continuous and piecewise linear (CPWL).

Two cases are computable:

- 1-D input (N_0 = 1): `exact_1d` propagates the breakpoints layer by layer and takes
  Lip_p(f) = max over the linear pieces of ||f'||_p, over the whole real line;
- p in {1, inf}, a small network, a box [-R, R]^N_0: `exact_milp` solves a mixed-integer LP
  (scipy.optimize.milp, HiGHS) with one binary per reachable linear piece of every
  neuron, big-M constants from interval bounds (see the docstring there).

Every activation enters through its knot form sigma(z) = b0 + b1 z + sum_k a_k (z - tau_k)_+
(`knot_form`): splines exactly, ReLU as a single knot at 0, LeakyReLU / PReLU(a) as a knot at
0 with jump 1 - a, the identity without knots.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.optimize
import scipy.sparse

from reference.lipschitz import check_finite, operator_norm, parse_p
from reference.network import (Dense, Identity, KnotSplineActivation, LeakyReLU, Network,
                               PReLU, ReLU, SplineActivation)
from reference.spline import KnotSpline

MAX_PIECES = 1_000_000
MAX_BINARIES = 400
TIME_LIMIT = 60.0
REGION_TOL = 1e-9


def knot_form(layer, width: int) -> KnotSpline:
    """The activation layer as C = width knot-form splines, knots with zero jump dropped."""
    if isinstance(layer, SplineActivation):
        return layer.spline.to_knot_form().pruned(0.0)
    if isinstance(layer, KnotSplineActivation):
        return layer.spline.pruned(0.0)
    if isinstance(layer, (LeakyReLU, PReLU, ReLU)):
        if isinstance(layer, PReLU):
            a = layer.params["slope"].copy()
        else:
            a = np.full(width, layer.slope if isinstance(layer, LeakyReLU) else 0.0)
        jumps = [np.array([1.0 - s]) for s in a]
        return KnotSpline(np.zeros(width), a, [np.zeros(1) for _ in range(width)],
                          jumps).pruned(0.0)
    if isinstance(layer, Identity):
        return KnotSpline(np.zeros(width), np.ones(width), [np.zeros(0)] * width,
                          [np.zeros(0)] * width)
    raise TypeError(f"layer: not an activation layer ({type(layer).__name__})")


def _activation_indices(net: Network) -> list:
    return [i for i, layer in enumerate(net.layers) if layer.kind != "dense"]


def _head(net: Network, i: int) -> Network:
    """The map x -> input of layer i (an identity dense layer first, so i = 0 works)."""
    return Network([Dense(np.eye(net.n_in))] + net.layers[:i])


def _segment_points(breaks: np.ndarray) -> np.ndarray:
    """One point inside each segment of the partition of R by the sorted breaks:
    breaks[0] - 1, the midpoints, breaks[-1] + 1 (0 when there are no breaks)."""
    if len(breaks) == 0:
        return np.zeros(1)
    return np.concatenate([[breaks[0] - 1.0], (breaks[:-1] + breaks[1:]) / 2,
                           [breaks[-1] + 1.0]])


def _crossings(breaks, z_at_breaks, slopes, knots) -> np.ndarray:
    """Inputs x where a pre-activation z(x), affine on each segment of the partition by
    `breaks` (values z_at_breaks at the breaks, or the value at x = 0 when there are none;
    slope slopes[j] on segment j; the first and last segments unbounded), crosses one of the
    sorted `knots` inside a segment."""
    if len(knots) == 0:
        return np.zeros(0)
    # segment j = (left_j, right_j); reference point: its finite end (left end if any)
    left = np.concatenate([[-np.inf], breaks])
    right = np.concatenate([breaks, [np.inf]])
    ref_x = np.where(np.isfinite(left), left, right) if len(breaks) else np.zeros(1)
    ref_z = np.concatenate([z_at_breaks[:1], z_at_breaks]) if len(breaks) else z_at_breaks
    out = []
    for j, s in enumerate(slopes):
        if s == 0:
            continue
        # z range over the open segment
        z_left = ref_z[j] + s * (left[j] - ref_x[j]) if np.isfinite(left[j]) else -np.inf * s
        z_right = ref_z[j] + s * (right[j] - ref_x[j]) if np.isfinite(right[j]) else np.inf * s
        lo, hi = min(z_left, z_right), max(z_left, z_right)
        inside = knots[(knots > lo) & (knots < hi)]
        if len(inside):
            x = ref_x[j] + (inside - ref_z[j]) / s
            out.append(x[(x > left[j]) & (x < right[j])])
    return np.concatenate(out) if out else np.zeros(0)


def exact_1d(net: Network, p=2, max_pieces: int = MAX_PIECES) -> dict:
    """Exact Lip_p(f) over R for a network with one input, by breakpoint propagation.

    Before activation layer l, the map x -> z_l is affine on each segment of the current
    partition of R (breakpoints sorted); neuron n's knots tau are crossed at
    x = x_ref + (tau - z(x_ref)) / z'  inside a segment; the union of all crossings is the
    partition after layer l.  At the end f is affine on every segment and
    Lip_p(f) = max_j ||f'(segment j)||_p (|x| is every l_p norm in 1-D), with f' the Jacobian
    at one interior point of each segment (its midpoint; beyond the end breakpoints, 1 away).
    Returns value, pieces (segments of the final partition), linear_pieces (after merging
    neighbours whose slopes agree to 1e-12 relative), the breakpoints and the argmax
    segment.  More than max_pieces segments is a ValueError (not a wrong number)."""
    p = parse_p(p)
    check_finite(net)
    if net.n_in != 1:
        raise ValueError(f"model: exact_1d needs a network with 1 input, got {net.n_in}")
    t0 = time.perf_counter()
    breaks = np.zeros(0)
    for i in _activation_indices(net):
        head = _head(net, i)
        width = head.n_out
        spl = knot_form(net.layers[i], width)
        # z at the breaks (at x = 0 when there are none yet) and its slope on each segment
        z_ref = head.forward((breaks if len(breaks) else np.zeros(1))[:, None])
        slopes = head.input_jacobian(_segment_points(breaks)[:, None])[:, :, 0]
        new = [_crossings(breaks, z_ref[:, n], slopes[:, n], spl.knots[n])
               for n in range(width)]
        breaks = np.unique(np.concatenate([breaks, *new]))
        if len(breaks) + 1 > max_pieces:
            raise ValueError(f"max_pieces: the partition has more than {max_pieces} pieces "
                             f"after layer {i}; raise max_pieces to go on")
    points = _segment_points(breaks)
    jac = net.input_jacobian(points[:, None])[:, :, 0]          # (pieces, N_L)
    norms = np.linalg.norm(jac, ord=p, axis=1)
    best = int(np.argmax(norms))
    scale = max(float(np.abs(jac).max()), np.finfo(float).tiny)
    changes = np.any(np.abs(np.diff(jac, axis=0)) > 1e-12 * scale, axis=1)
    return {"value": float(norms[best]), "pieces": len(points),
            "linear_pieces": int(changes.sum()) + 1, "breakpoints": breaks,
            "argmax_point": float(points[best]), "domain": "R",
            "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------- MILP
class _Milp:
    """Variables with bounds and sparse linear constraints lo <= A v <= hi for scipy's milp."""

    def __init__(self):
        self.lb, self.ub, self.integer = [], [], []
        self.rows, self.cols, self.vals, self.lo, self.hi = [], [], [], [], []

    def var(self, lb, ub, integer: bool = False) -> np.ndarray:
        lb, ub = np.atleast_1d(np.asarray(lb, float)), np.atleast_1d(np.asarray(ub, float))
        start = len(self.lb)
        self.lb.extend(lb)
        self.ub.extend(ub)
        self.integer.extend([int(integer)] * len(lb))
        return np.arange(start, start + len(lb))

    def add(self, idx, coef, lo: float, hi: float) -> None:
        """lo <= sum_k coef[k] * v[idx[k]] <= hi."""
        row = len(self.lo)
        self.rows.extend([row] * len(idx))
        self.cols.extend(np.asarray(idx, int))
        self.vals.extend(np.asarray(coef, float))
        self.lo.append(lo)
        self.hi.append(hi)

    def solve(self, objective: np.ndarray, time_limit: float, gap: float):
        n = len(self.lb)
        c = np.zeros(n)
        c[objective[0]] = objective[1]
        a = scipy.sparse.csr_array((self.vals, (self.rows, self.cols)), shape=(len(self.lo), n))
        return scipy.optimize.milp(
            c, integrality=np.array(self.integer),
            bounds=scipy.optimize.Bounds(self.lb, self.ub),
            constraints=scipy.optimize.LinearConstraint(a, self.lo, self.hi),
            options={"time_limit": time_limit, "mip_rel_gap": gap, "presolve": True})


def _pieces_in(spl: KnotSpline, n: int, lo: float, hi: float):
    """The linear pieces of neuron n met by z in [lo, hi]: their ends clipped to [lo, hi]
    l, h (P,), their true ends (knots or -+inf) el, eh (P,), slopes (P,), sigma(l) (P,)."""
    tau = spl.knots[n]
    edges = np.concatenate([[-np.inf], tau, [np.inf]])
    slopes = spl.slopes(n)
    keep = (edges[1:] > lo) & (edges[:-1] < hi)
    if not keep.any():                                   # lo == hi on a knot
        keep = (edges[1:] >= lo) & (edges[:-1] <= hi)
        keep[np.argmax(keep)+1:] = False
    l = np.maximum(edges[:-1][keep], lo)
    h = np.minimum(edges[1:][keep], hi)
    values = spl(np.broadcast_to(l[:, None], (len(l), spl.num_channels)))[:, n]
    return l, h, edges[:-1][keep], edges[1:][keep], slopes[keep], values


def _spline_range(spl: KnotSpline, n: int, lo: float, hi: float) -> tuple[float, float]:
    """min and max of sigma_n over [lo, hi] (at the ends and the knots inside)."""
    tau = spl.knots[n]
    pts = np.concatenate([[lo, hi], tau[(tau > lo) & (tau < hi)]])
    vals = spl(np.broadcast_to(pts[:, None], (len(pts), spl.num_channels)))[:, n]
    return float(vals.min()), float(vals.max())


def _interval_affine(weight, bias, lo, hi):
    """Interval bounds of W y + b for y in the box [lo, hi]."""
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    centre = weight @ mid + (0.0 if bias is None else bias)
    spread = np.abs(weight) @ rad
    return centre - spread, centre + spread


def _encode(net: Network, box: float, direction):
    """The MILP of (x, v) -> (f(x), J(x) v) over x in [-box, box]^N_0.

    direction: ("box",) for v in [-1, 1]^N_0, or ("unit", j) for v = e_j.  Per neuron with
    pre-activation z in [lo, hi] (interval bounds) meeting P > 1 pieces [l_j, h_j] with slopes
    s_j: binaries d_j (sum 1) and copies z_j, dz_j (convex-hull form):
      z = sum z_j, l_j d_j <= z_j <= h_j d_j,  y = sum (sigma(l_j) d_j + s_j (z_j - l_j d_j)),
      dz = sum dz_j, D_lo d_j <= dz_j <= D_hi d_j,  dy = sum s_j dz_j,
    [D_lo, D_hi] the interval bounds of dz.  P = 1: y and dy affine in z, dz.
    Returns the model, the input variables, the output direction variables, their bounds and
    the pattern list, per neuron in order: (binaries or None, slopes s_j, offsets
    sigma(l_j) - s_j l_j (sigma = s_j z + offset_j on piece j), true piece ends el, eh)."""
    m = _Milp()
    n0 = net.n_in
    ylo, yhi = np.full(n0, -box), np.full(n0, box)
    y = x_vars = m.var(ylo, yhi)
    if direction[0] == "box":
        dlo, dhi = -np.ones(n0), np.ones(n0)
    else:
        dlo = dhi = np.eye(n0)[direction[1]]
    dy = m.var(dlo, dhi)
    pattern = []
    for layer in net.layers:
        if layer.kind == "dense":
            w, b = layer.params["weight"], layer.params.get("bias")
            zlo, zhi = _interval_affine(w, b, ylo, yhi)
            gl, gh = _interval_affine(w, None, dlo, dhi)
            z, dz = m.var(zlo, zhi), m.var(gl, gh)
            for r in range(w.shape[0]):
                m.add(np.r_[z[r], y], np.r_[1.0, -w[r]], *(2 * [0.0 if b is None else b[r]]))
                m.add(np.r_[dz[r], dy], np.r_[1.0, -w[r]], 0.0, 0.0)
            y, dy, ylo, yhi, dlo, dhi = z, dz, zlo, zhi, gl, gh
            continue
        width = len(y)
        spl = knot_form(layer, width)
        ny, ndy = np.zeros(width, int), np.zeros(width, int)
        nylo, nyhi, ndlo, ndhi = (np.zeros(width) for _ in range(4))
        for n in range(width):
            l, h, el, eh, s, v = _pieces_in(spl, n, ylo[n], yhi[n])
            nylo[n], nyhi[n] = _spline_range(spl, n, ylo[n], yhi[n])
            prods = np.concatenate([s * dlo[n], s * dhi[n]])
            ndlo[n], ndhi[n] = prods.min(), prods.max()
            ny[n] = m.var(nylo[n], nyhi[n])[0]
            ndy[n] = m.var(ndlo[n], ndhi[n])[0]
            if len(s) == 1:
                m.add([ny[n], y[n]], [1.0, -s[0]], v[0] - s[0] * l[0], v[0] - s[0] * l[0])
                m.add([ndy[n], dy[n]], [1.0, -s[0]], 0.0, 0.0)
                pattern.append((None, s, v - s * l, el, eh))
                continue
            k = len(s)
            d = m.var(np.zeros(k), np.ones(k), integer=True)
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
            pattern.append((d, s, v - s * l, el, eh))
        y, dy, ylo, yhi, dlo, dhi = ny, ndy, nylo, nyhi, ndlo, ndhi
    return m, x_vars, dy, (dlo, dhi), pattern


class NotApplicable(ValueError):
    """A method that does not apply to this model or p (the message says why)."""


class MilpNotOptimal(RuntimeError):
    """HiGHS stopped before proving optimality (time limit): no value is reported."""


def _chosen(res_x, pattern):
    """Per pattern entry, the index of the chosen piece (0 when the neuron has one)."""
    return [0 if d is None else int(np.argmax(res_x[d])) for d, *_ in pattern]


def _pattern_affine(net: Network, pattern, chosen):
    """With every neuron on its chosen piece, f is affine on the region: returns the
    Jacobian J (N_L, N_0) and, per pattern entry, z_n(x) = g.x + c with (g, c, lo, hi)
    (lo, hi the chosen piece's true ends)."""
    g, c = np.eye(net.n_in), np.zeros(net.n_in)
    rows, k = [], 0
    for layer in net.layers:
        if layer.kind == "dense":
            w = layer.params["weight"]
            g, c = w @ g, w @ c + layer.params.get("bias", 0.0)
            continue
        width = g.shape[0]
        slope, offset = np.zeros(width), np.zeros(width)
        for n in range(width):
            _, s, off, el, eh = pattern[k]
            j = chosen[k]
            k += 1
            slope[n], offset[n] = s[j], off[j]
            rows.append((g[n].copy(), c[n], el[j], eh[j]))
        g, c = slope[:, None] * g, slope * c + offset
    return g, rows


def _interior_point(rows, box: float, n0: int):
    """max eps s.t. lo + eps ||g|| <= g.x + c <= hi - eps ||g|| for every neuron whose
    pre-activation moves (g != 0), -box <= x <= box: the region of the pattern meets the
    box in an open set iff eps* > 0.  Returns (eps*, x)."""
    a_rows, b = [], []
    for g, c, lo, hi in rows:
        norm = np.linalg.norm(g)
        if norm == 0:
            continue
        if np.isfinite(lo):                       # -(g.x) + eps ||g|| <= c - lo
            a_rows.append(np.r_[-g, norm])
            b.append(c - lo)
        if np.isfinite(hi):                       # g.x + eps ||g|| <= hi - c
            a_rows.append(np.r_[g, norm])
            b.append(hi - c)
    cost = np.r_[np.zeros(n0), -1.0]
    bounds = [(-box, box)] * n0 + [(None, box)]
    res = scipy.optimize.linprog(cost, A_ub=np.array(a_rows) if a_rows else None,
                                 b_ub=np.array(b) if b else None, bounds=bounds,
                                 method="highs")
    if res.status != 0:
        return -np.inf, None
    return float(res.x[-1]), res.x[:-1]


def exact_milp(net: Network, p=np.inf, box: float = 1.0, max_binaries: int = MAX_BINARIES,
               time_limit: float = TIME_LIMIT, mip_rel_gap: float = 1e-9) -> dict:
    """Exact Lip_p(f) over the box [-box, box]^N_0 for p in {1, inf}, by mixed-integer LP.

    f is CPWL, so Lip_p over the (convex) box = max over the linear regions meeting it of
    ||J||_{p->p}.  p = inf: ||J||_{inf->inf} = max_i max_{v in [-1,1]^N_0} (J v)_i, one MILP
    per output i; p = 1: ||J||_{1->1} = max_j ||J e_j||_1, one MILP per input j with a sign
    binary for each |(J e_j)_i| whose sign is not fixed by the interval bounds.  See `_encode`.

    Certificate: the optimal pattern's Jacobian is recomputed in NumPy (value), checked
    against HiGHS's objective, and an LP finds a point strictly inside the pattern's region
    within the box (eps* > 0): there the network's own Jacobian is evaluated (witness), a
    lower bound equal to the value, so the value is attained (certified_exact).  If the
    pattern's region has no interior (a degenerate network), certified_exact is False and the
    value is only an upper bound.  Over max_binaries binaries: NotApplicable; HiGHS stopping
    on time_limit: MilpNotOptimal with the gap reached."""
    p = parse_p(p)
    check_finite(net)
    if p == 2.0:
        raise NotApplicable("p: the MILP computes exact values for p = 1 or inf only")
    if not (np.isfinite(box) and box > 0):
        raise ValueError(f"box: expected a positive finite half-width, got {box!r}")
    t0 = time.perf_counter()
    n0, n_out = net.n_in, net.n_out
    runs = [("box",)] * n_out if p == np.inf else [("unit", j) for j in range(n0)]
    best = None
    objective_max, dual_max, binaries, gaps = -np.inf, -np.inf, 0, []
    encoded = _encode(net, box, runs[0]) if p == np.inf else None   # one model, N_L targets
    for r, direction in enumerate(runs):
        m, x_vars, out, (olo, ohi), pattern = encoded or _encode(net, box, direction)
        if p == np.inf:
            target = (np.array([out[r]]), np.array([-1.0]))
        else:
            t = m.var(np.zeros(n_out), np.maximum(np.abs(olo), np.abs(ohi)))
            for i in range(n_out):
                big = 2 * max(-olo[i], ohi[i], 0.0)
                if olo[i] >= 0 or ohi[i] <= 0:
                    sign = 1.0 if olo[i] >= 0 else -1.0
                    m.add([t[i], out[i]], [1.0, -sign], 0.0, 0.0)
                    continue
                sg = m.var(0.0, 1.0, integer=True)[0]
                m.add([t[i], out[i], sg], [1.0, -1.0, big], -np.inf, big)
                m.add([t[i], out[i], sg], [1.0, 1.0, -big], -np.inf, 0.0)
            target = (t, -np.ones(n_out))
        binaries = max(binaries, int(np.sum(m.integer)))
        if binaries > max_binaries:
            raise NotApplicable(f"model: the MILP needs {binaries} binaries, over the size "
                                f"guard max_binaries={max_binaries}")
        remaining = time_limit - (time.perf_counter() - t0)
        res = m.solve(target, max(remaining, 1e-3), mip_rel_gap)
        if res.status != 0 or res.x is None:
            gap = getattr(res, "mip_gap", None)
            bracket = ""
            if res.fun is not None and getattr(res, "mip_dual_bound", None) is not None:
                bracket = f", best found {-res.fun:.6g}, bound {-res.mip_dual_bound:.6g}"
            raise MilpNotOptimal(f"MILP {r + 1}/{len(runs)}: HiGHS stopped ({res.message}); "
                                 f"MILP gap {gap}{bracket}; no exact value is reported")
        gaps.append(float(getattr(res, "mip_gap", 0.0) or 0.0))
        objective_max = max(objective_max, -res.fun)
        dual_max = max(dual_max, -getattr(res, "mip_dual_bound", res.fun))
        chosen = _chosen(res.x, pattern)
        jac, rows = _pattern_affine(net, pattern, chosen)
        value = (np.abs(jac[r]).sum() if p == np.inf else np.abs(jac[:, direction[1]]).sum())
        if abs(value + res.fun) > 1e-6 * max(1.0, abs(value)):
            raise MilpNotOptimal(f"MILP {r + 1}: HiGHS objective {-res.fun!r} disagrees with "
                                 f"the NumPy re-evaluation of its pattern {value!r}")
        if best is None or value > best[0]:
            best = (value, rows, res.x[x_vars], jac)
    value, rows, x_milp, jac = best
    eps, x_in = _interior_point(rows, box, n0)
    certified = eps > REGION_TOL * box
    witness = None
    if certified:
        j_net = net.input_jacobian(x_in[None])[0]
        certified = bool(np.allclose(j_net, jac, rtol=1e-9, atol=1e-12 * np.abs(jac).max()))
        witness = operator_norm(j_net, p)
    return {"value": float(value), "certified_exact": certified, "witness": witness,
            "witness_x": x_in if certified else x_milp, "interior_margin": eps,
            "milp_objective": float(objective_max), "milp_dual_bound": float(dual_max),
            "mip_gap": max(gaps), "milps": len(runs), "binaries": binaries,
            "status": "optimal", "domain": f"box [-{box:g}, {box:g}]^{n0}",
            "seconds": time.perf_counter() - t0}
