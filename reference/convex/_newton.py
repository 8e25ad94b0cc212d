"""Newton refinement of a restricted coefficient problem (reference.convex._active_set).

The active set's restricted problem has few knots per neuron, and for the logistic and
cross-entropy losses CLARABEL solves its exponential cones to about 1e-5 relative only: the
solution carries slope changes of that size where the optimum has none, and multipliers
too noisy for the optimality check (status "stalled").  With the sign of every knot fixed,
the restricted problem is smooth, and Newton's method solves it to rounding level:

    min_v  E(A sigma(z) + c) + sum_n lambda_n sum_{j in K_n} s_j a_j(v_n)
                             [+ sum_n mu_n sum_t sign(sigma_n(t)) sigma_n(t)   (BV2)]

v_n the values of neuron n at the ends of its candidates and its support K_n (the knots of
the conic solution, their signs s_j), a_j(v_n) the slope change at knot j (linear in v_n),
sigma_n the linear spline through (points, v_n) continued linearly (a hat basis: two
entries per sample and neuron).  A BV2 point value that the conic solution leaves at zero
is held at zero (a linear constraint; the null-space of those constraints is the
variable).  The Newton step solves the Hessian system by an eigen-decomposition of its
Jacobi-scaled form, eigenvalues below NULL_RTOL of the largest dropped (the gauge
directions, on which the objective is constant), with a backtracking (Armijo) line search.

The support is updated as an active set of its own (`refine`, after Lawson and Hanson's
NNLS): a Newton step is cut where a jump reaches 0 (the sign-fixed objective is |a| only up
to there; beyond it the objective is unbounded below) and that knot leaves the support;
at a converged point, per neuron, the active candidate without a knot where the restricted
problem's multiplier exceeds lambda the most (`optimality`'s violation > ADD_RTOL) joins it
with the sign that lowers the objective, and Newton runs again (at most SUPPORT_ROUNDS +
ROUNDS_PER_CANDIDATE P times, P the most active candidates of a neuron: each may join and
leave once; else "support did not settle").  A converged support whose objective is not
lower than the one before the last addition ends the loop with that point: the violations
left are at the multipliers' accuracy (a knot added there goes straight back to 0), and the
caller's check reports them as its noise.  The
result is a point of the restricted problem whose own optimality conditions hold to
rounding level, so the active set's check (`optimality`) judges it with noise ~1e-12
instead of ~1e-5, and every jump outside the support is exactly 0.

Jump accuracy (`Refinement.jump_accuracy`, per neuron): the size of the last Newton
correction of the jumps plus their rounding (4 eps (|v_{j-1}| / h_{j-1} + 2 |v_j| / h +
|v_{j+1}| / h_j)); reference.convex._knots decides the knot count against it.  Every
quantity is in the internal units of reference.convex._certify.Scaled.  No Lip bound: with
|slope| <= L_max the problem keeps CLARABEL's solution (the caller does not call this).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from reference._numerics import EPS
from reference.nn._losses import check_targets, loss_and_grad
from reference.nn._network import KnotSplineActivation

MAX_ITERATIONS = 60        # Newton iterations per support
SUPPORT_ROUNDS = 200       # support updates (a knot dropped at 0, a candidate added) ...
ROUNDS_PER_CANDIDATE = 2   # ... plus this many per active candidate of the largest neuron
NULL_RTOL = 1e-12          # eigenvalues of the scaled Hessian below this * max: null space
DECREMENT_RTOL = 1e-22     # converged: Newton decrement^2 / 2 <= this * max(|F|, 1)
STALL_RTOL = 1e-12         # below this * max(|F|, 1): full steps, no line search
FINAL_STEPS = 3            # ... FINAL_STEPS of them, then converged
ARMIJO = 1e-4              # sufficient decrease of the line search
ADD_RTOL = 1e-9            # a candidate joins the support when its violation exceeds this
DENSE_LIMIT = 3e7          # M N^2 up to this: the Hessian by dense neuron blocks


@dataclass
class Refinement:
    """What `refine` found: pieces (per neuron (active grid points, values) in internal
    units), objective (internal, NumPy), status ("converged" or why not), iterations (Newton
    steps in all), support_rounds, support (knots per neuron), jump_accuracy (N,): the
    estimated error of the jumps, decrement: the last Newton decrement^2 / 2."""
    pieces: list
    objective: float
    status: str
    iterations: int = 0
    support_rounds: int = 0
    support: list = field(default_factory=list)
    jump_accuracy: np.ndarray = field(default_factory=lambda: np.zeros(0))
    decrement: float = 0.0

    @property
    def converged(self) -> bool:
        return self.status == "converged"


def _hat(points: np.ndarray, z: np.ndarray):
    """(M, Q) sparse rows: the linear spline through (points, v), continued linearly beyond
    the ends, at z, as a map of v."""
    q = len(points)
    i = np.clip(np.searchsorted(points, z, side="right") - 1, 0, q - 2)
    t = (z - points[i]) / (points[i + 1] - points[i])
    rows = np.repeat(np.arange(len(z)), 2)
    cols = np.stack([i, i + 1], axis=1).ravel()
    vals = np.stack([1.0 - t, t], axis=1).ravel()
    return sp.csr_array((vals, (rows, cols)), shape=(len(z), q))


def _jump_map(points: np.ndarray) -> np.ndarray:
    """(Q - 2, Q): the slope changes a_j = s_j - s_{j-1} at the interior points as a map of
    the values (s_i = (v_{i+1} - v_i) / h_i)."""
    q = len(points)
    h = np.diff(points)
    slopes = (np.eye(q, k=1)[:-1] - np.eye(q)[:-1]) / h[:, None]          # (Q - 1, Q)
    return slopes[1:] - slopes[:-1]


def _curvature(loss: str, outputs: np.ndarray, y: np.ndarray):
    """(value, gradient (M, N_L), Hessian form): the loss, its gradient in the outputs, and
    ("diag", h (M, N_L)) for a Hessian diag(h) per sample (squared: 1, logistic:
    p (1 - p)), or ("softmax", p (M, N_L)) for diag(p) - p p^T (cross-entropy); None for a
    loss without one here (no refinement)."""
    value, grad = loss_and_grad(loss, outputs, y)
    if loss == "squared":
        return value, grad, ("diag", np.ones_like(outputs))
    if loss == "logistic":
        p = grad + y                                   # sigmoid(f)
        return value, grad, ("diag", p * (1.0 - p))
    if loss == "xent":
        p = grad.copy()
        p[np.arange(len(y)), y] += 1.0                 # softmax(f)
        return value, grad, ("softmax", p)
    return None


def _precise_loss(loss: str, outputs: np.ndarray, y: np.ndarray) -> float:
    """The summed loss without cancellation, for the line search: logistic
    log(1 + e^f) - y f = log(1 + e^(-f)) for y = 1 (a difference of two terms of size |f|
    otherwise, whose rounding eps |f| M hid the decrease of a Newton step at the large
    logits of a small lambda); cross-entropy log sum_j e^(f_j) - f_y = log(1 + sum_{j != y}
    e^(f_j - f_y)) by log1p of the shifted terms; squared as reference.nn._losses."""
    if loss == "logistic":
        return float(np.sum(np.logaddexp(0.0, np.where(y == 1, -outputs, outputs))))
    if loss == "xent":
        rows = np.arange(len(y))
        shifted = outputs - outputs[rows, y][:, None]
        top = np.max(shifted, axis=1)
        rest = np.exp(shifted - top[:, None])
        rest[rows, y] = 0.0
        rest_sum = rest.sum(axis=1)           # log(1 + e^top rest_sum), top = max_j s_j
        with np.errstate(over="ignore"):
            total = np.where(top > 0, top + np.log(np.exp(-top) + rest_sum),
                             np.log1p(np.exp(np.minimum(top, 0.0)) * rest_sum))
        return float(np.sum(total))
    return float(loss_and_grad(loss, outputs, y)[0])


class _Restricted:
    """The sign-fixed restricted problem of `refine` on fixed supports."""

    def __init__(self, z, a_mat, c, y, loss, grids, active, support, signs, lam_n, mu,
                 points, point_signs):
        self.z, self.a_mat, self.c, self.y, self.loss = z, a_mat, c, y, loss
        n = z.shape[1]
        self.knots = []                                   # per neuron: the Q_n points
        blocks, lin, jumps, cons = [], [], [], []
        for k in range(n):
            g = grids[k][active[k]]
            pts = np.concatenate([[g[0]], g[1:-1][support[k]], [g[-1]]])
            self.knots.append(pts)
            blocks.append(_hat(pts, z[:, k]))
            jmap = _jump_map(pts)
            jumps.append(jmap)
            term = lam_n[k] * (signs[k][support[k]] @ jmap) if len(jmap) else \
                np.zeros(len(pts))
            for t, s in zip(points[k], point_signs[k]):
                e = _hat(pts, np.array([t])).toarray()[0]
                if s == 0:
                    cons.append((k, e))
                else:
                    term = term + mu[k] * s * e
            lin.append(term)
        self.sizes = np.array([len(p) for p in self.knots])
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.basis = sp.hstack(blocks, format="csr")          # (M, D): sigma stacked
        self.neuron = np.repeat(np.arange(n), self.sizes)     # neuron of each column
        self.lin = np.concatenate(lin)
        self.jumps = jumps
        self.signs = [signs[k][support[k]] for k in range(n)]
        self.blocking: list = [np.zeros(0, dtype=int)] * n   # set by `_newton`
        d = int(self.offsets[-1])
        if cons:
            c_mat = np.zeros((len(cons), d))
            for r, (k, e) in enumerate(cons):
                c_mat[r, self.offsets[k]:self.offsets[k + 1]] = e
            _, sv, vt = np.linalg.svd(c_mat)
            rank = int(np.sum(sv > 1e-12 * sv.max()))
            self.free = vt[rank:].T                           # (D, D - rank)
        else:
            self.free = None

    def sigma(self, v: np.ndarray) -> np.ndarray:
        """(M, N) the splines at the samples."""
        n = self.z.shape[1]
        out = np.empty(self.z.shape)
        for k in range(n):
            lo, hi = self.offsets[k], self.offsets[k + 1]
            out[:, k] = self.basis[:, lo:hi] @ v[lo:hi]
        return out

    def value(self, v: np.ndarray) -> float:
        out = self.sigma(v) @ self.a_mat.T + self.c[None, :]
        return float(_precise_loss(self.loss, out, self.y) + self.lin @ v)

    def derivatives(self, v: np.ndarray):
        """(F, gradient (D,), Hessian (D, D)) at v."""
        out = self.sigma(v) @ self.a_mat.T + self.c[None, :]
        _, grad, (kind, h) = _curvature(self.loss, out, self.y)
        value = _precise_loss(self.loss, out, self.y)
        w = grad @ self.a_mat                                 # (M, N)
        rows_w = w[:, self.neuron]                            # (M, D) weight per column
        gradient = np.asarray((self.basis.multiply(rows_w)).sum(axis=0)).ravel() + self.lin
        if self.z.shape[0] * self.z.shape[1] ** 2 <= DENSE_LIMIT:
            return float(value + self.lin @ v), gradient, self._dense_hessian(kind, h)
        hess = np.zeros((len(v), len(v)))
        pa = None
        for l in range(self.a_mat.shape[0]):
            j = self.basis.multiply(self.a_mat[l, self.neuron][None, :]).tocsr()   # (M, D)
            hess += (j.T @ j.multiply(h[:, [l]])).toarray()
            if kind == "softmax":
                part = j.multiply(h[:, [l]])
                pa = part if pa is None else pa + part
        if kind == "softmax":
            pa = sp.csr_array(pa)
            hess -= (pa.T @ pa).toarray()
        return float(value + self.lin @ v), gradient, hess

    def _dense_hessian(self, kind: str, h: np.ndarray) -> np.ndarray:
        """The Hessian by neuron blocks: H_(n, n') = E_n^T diag(K[:, n, n']) E_n' with
        K_m = A^T diag(h_m) A (minus (A^T p_m)(A^T p_m)^T for the softmax), (M, N, N)."""
        a = self.a_mat
        k = np.einsum("ml,li,lj->mij", h, a, a)
        if kind == "softmax":
            pa = h @ a
            k -= pa[:, :, None] * pa[:, None, :]
        n, off = self.z.shape[1], self.offsets
        blocks = [self.basis[:, off[i]:off[i + 1]].toarray() for i in range(n)]
        hess = np.zeros((off[-1], off[-1]))
        for i in range(n):
            for j in range(i, n):
                part = blocks[i].T @ (k[:, i, j][:, None] * blocks[j])
                hess[off[i]:off[i + 1], off[j]:off[j + 1]] = part
                hess[off[j]:off[j + 1], off[i]:off[i + 1]] = part.T
        return hess

    def step(self, gradient: np.ndarray, hess: np.ndarray) -> np.ndarray:
        """The Newton step -H^+ g on the free subspace (eigenvalues of the Jacobi-scaled H
        below NULL_RTOL of the largest dropped)."""
        if self.free is not None:
            gradient, hess = self.free.T @ gradient, self.free.T @ hess @ self.free
        d = np.sqrt(np.maximum(np.diag(hess), 0.0))
        d[d == 0] = 1.0
        vals, vecs = np.linalg.eigh(hess / np.outer(d, d))
        keep = vals > NULL_RTOL * max(vals.max(initial=0.0), np.finfo(float).tiny)
        rhs = vecs[:, keep].T @ (gradient / d)
        out = -(vecs[:, keep] @ (rhs / vals[keep])) / d
        return out if self.free is None else self.free @ out

    def longest_step(self, v: np.ndarray, step: np.ndarray):
        """(t, blocking): the largest t with every support jump keeping its sign along
        v + t step (the sign-fixed objective is |a| only there; inf when none turns), and
        blocking, per neuron, the positions (among the support) of the jumps that reach 0
        at t."""
        ratios = []
        for a, da, sgn in zip(self.jump_values(v), self.jump_values(step), self.signs):
            r = np.full(len(a), np.inf)
            toward = sgn * da < 0
            r[toward] = np.maximum(sgn[toward] * a[toward], 0.0) / -(sgn[toward] * da[toward])
            ratios.append(r)
        t = min((float(r.min(initial=np.inf)) for r in ratios), default=np.inf)
        return t, [np.flatnonzero(r <= t) if np.isfinite(t) else np.zeros(0, dtype=int)
                   for r in ratios]

    def jump_values(self, v: np.ndarray) -> list:
        return [jm @ v[self.offsets[k]:self.offsets[k + 1]] for k, jm in enumerate(self.jumps)]

    def jump_rounding(self, v: np.ndarray) -> np.ndarray:
        """(N,) 4 eps (|v_{j-1}| / h_{j-1} + 2 |v_j| / min h + |v_{j+1}| / h_j), max over j."""
        out = []
        for k, pts in enumerate(self.knots):
            vals = np.abs(v[self.offsets[k]:self.offsets[k + 1]])
            h = np.diff(pts)
            if len(pts) < 3:
                out.append(0.0)
                continue
            term = vals[:-2] / h[:-1] + 2 * vals[1:-1] / np.minimum(h[:-1], h[1:]) \
                + vals[2:] / h[1:]
            out.append(4 * EPS * float(term.max()))
        return np.array(out)

    def start(self, layer) -> np.ndarray:
        """v at the knots from a solved layer (internal units)."""
        return np.concatenate([layer.forward(np.tile(p[:, None], (1, len(self.knots))))[0][:, k]
                               for k, p in enumerate(self.knots)])

    def pieces(self, v: np.ndarray, grids, active) -> list:
        """Per neuron (active grid points, values there)."""
        out = []
        for k, pts in enumerate(self.knots):
            g = grids[k][active[k]]
            vals = _hat(pts, g) @ v[self.offsets[k]:self.offsets[k + 1]]
            vals[np.searchsorted(g, pts)] = v[self.offsets[k]:self.offsets[k + 1]]
            out.append((g, vals))
        return out


def _newton(problem: _Restricted, v: np.ndarray, deadline=None):
    """Newton with backtracking from v: (v, iterations, decrement, last step, status).
    Converged when the decrement is below DECREMENT_RTOL max(|F|, 1) after at least one
    step, or after FINAL_STEPS full steps taken once it is below STALL_RTOL max(|F|, 1)
    (there the objective cannot tell a decrease from rounding, and Newton converges
    quadratically); those steps too stop where a jump reaches 0 ("sign change"), so no jump
    of the support changes sign.  At least one step: a conic solution whose decrement is
    already tiny can still have multipliers off by 5e-9 (cross-entropy, 1500 samples),
    which one full step removes."""
    value = problem.value(v)
    step = np.zeros_like(v)
    final = 0
    decrement = np.inf
    for it in range(1, MAX_ITERATIONS + 1):
        if deadline is not None and deadline.expired():
            return v, it - 1, np.inf, step, "time_limit"
        value, gradient, hess = problem.derivatives(v)
        step = problem.step(gradient, hess)
        decrement = -float(gradient @ step) / 2
        scale = max(abs(value), 1.0)
        if (decrement <= DECREMENT_RTOL * scale and it > 1) or final == FINAL_STEPS:
            return v, it - 1, max(decrement, 0.0), step, "converged"
        t_max, blocking = problem.longest_step(v, step)
        problem.blocking = blocking
        t = min(1.0, t_max)
        if t <= 0:
            return v, it, decrement, step, "sign change"
        if decrement <= STALL_RTOL * scale:     # no line search, but no jump crosses 0
            if t < 1.0:
                return v + t * step, it, decrement, step, "sign change"
            v, final = v + step, final + 1
            continue
        boundary = t < 1.0
        while True:
            trial = v + t * step
            new = problem.value(trial)
            if np.isfinite(new) and new <= value - ARMIJO * t * 2 * decrement:
                break
            t /= 2
            boundary = False
            if np.array_equal(v + t * step, v):     # the step is lost in v's rounding (a
                return v, it, decrement, step, "line search failed"   # huge step: t << 1e-12)
        v = trial
        if boundary:                    # a knot's jump reached 0: the support changes
            return v, it, decrement, step, "sign change"
    return v, MAX_ITERATIONS, decrement, step, "iteration limit"


def refine(layer, z, a_mat, c, y, loss, reg_weights, lam: float, grids, active, tolerance,
           violation=None, deadline=None) -> Refinement | None:
    """Refine a restricted solution by Newton's method on its support (module docstring).

    Parameters
    ----------
    layer : KnotSplineActivation
        The conic solution on the active candidates (internal units).
    z : ndarray, shape (M, N)
        Internal pre-activations.
    a_mat : ndarray, shape (N_L, N)
        Internal map after the layer.
    c : ndarray, shape (N_L,)
        Internal offset.
    y : ndarray
        Targets in the loss's form (internal).
    loss : str
        The loss; None is returned for a loss without a Hessian here.
    reg_weights : RegWeights
        The regulariser's weights (reference.convex._problem.RegWeights).
    lam : float
        The solver's lambda (internal).
    grids : list of ndarray
        The candidate points per neuron.
    active : list of ndarray of bool
        The active candidates per neuron.
    tolerance : ndarray, shape (N,)
        Jumps above this form the starting support (the knot tolerance).
    violation : callable, optional
        ``violation(pieces) -> list of (violation (P_n,), T (Q_n - 2,))`` per neuron: the
        optimality check's relative violation at every candidate of a point
        (reference.convex._active_set.optimality) and the multipliers T_k = phi(g_k) -
        phi(g_0) at the interior active candidates (a knot added there lowers the
        objective with the sign -sign(T_k)), for the support updates; None: no additions.
    deadline : Deadline, optional
        Checked at every Newton step.

    Returns
    -------
    refinement : Refinement or None
        None when the loss has no Hessian here.
    """
    y = check_targets(loss, (z.shape[0], a_mat.shape[0]), y)
    if _curvature(loss, np.zeros((1, a_mat.shape[0])), y[:1]) is None:
        return None
    lam_n, mu = reg_weights.penalties(lam)
    n = z.shape[1]
    support, signs = [], []
    for k in range(n):
        a = np.diff(layer.slopes[k])                     # jumps at the interior points
        support.append(np.abs(a) > tolerance[k])
        signs.append(np.sign(a))
    at_points = [layer.forward(np.tile(np.asarray(p)[:, None], (1, n)))[0][:, k]
                 if len(p) else np.zeros(0) for k, p in enumerate(reg_weights.points)]
    point_tol = 1e-7 * max((np.abs(v).max(initial=0.0) for v in at_points), default=0.0)
    point_signs = [np.where(np.abs(v) > point_tol, np.sign(v), 0.0) for v in at_points]
    total, rounds, start_layer = 0, 0, layer
    best_value = np.inf                  # F at the last converged support before an addition
    max_rounds = SUPPORT_ROUNDS + ROUNDS_PER_CANDIDATE * max(int(m.sum()) for m in active)
    for rounds in range(1, max_rounds + 1):
        problem = _Restricted(z, a_mat, c, y, loss, grids, active, support, signs, lam_n, mu,
                              reg_weights.points, point_signs)
        v, its, decrement, step, status = _newton(problem, problem.start(start_layer),
                                                  deadline)
        total += its
        if status == "sign change":      # drop the knots whose jump reached 0, go on
            for k in range(n):
                idx = np.flatnonzero(support[k])
                support[k][idx[problem.blocking[k]]] = False
            start_layer = KnotSplineActivation(*zip(*problem.pieces(v, grids, active)))
            continue
        if status != "converged":
            return Refinement(problem.pieces(v, grids, active), problem.value(v), status,
                              total, rounds)
        jumps = problem.jump_values(v)
        flipped = False
        for k in range(n):
            idx = np.flatnonzero(support[k])
            bad = jumps[k] * signs[k][idx] <= 0
            if bad.any():
                support[k][idx[bad]] = False
                flipped = True
        pieces = problem.pieces(v, grids, active)
        start_layer = KnotSplineActivation(*zip(*pieces))
        if flipped:
            continue
        if violation is not None:
            # per neuron the most violated candidate joins (Lawson-Hanson, by neuron: the
            # minimiser over the larger support then gives it the sign that lowers the
            # objective; a support whose objective does not drop ends the loop)
            checked = violation(pieces)
            joining = []
            for k, (viol, t_inner) in enumerate(checked):
                inner = np.where(support[k], -np.inf, viol[active[k]][1:-1])
                j = int(np.argmax(inner)) if len(inner) else -1
                if j >= 0 and inner[j] > ADD_RTOL:
                    joining.append((k, j, float(np.sign(t_inner[j]))))
            value = problem.value(v)
            if joining and value < best_value - 16 * EPS * abs(value):
                best_value = value
                for k, j, sign in joining:
                    support[k][j], signs[k][j] = True, -sign
                continue
            # joining but no decrease since the last addition: the violations left are at
            # the accuracy of the multipliers (a knot added there leaves again at once);
            # this point is the restricted optimum to that accuracy, which the caller's
            # check (`optimality`) measures and reports as its noise
        accuracy = np.array([float(np.abs(jm @ step[problem.offsets[k]:
                                                     problem.offsets[k + 1]]).max(initial=0.0))
                             for k, jm in enumerate(problem.jumps)]) + problem.jump_rounding(v)
        return Refinement(pieces, problem.value(v), "converged", total, rounds,
                          [int(s.sum()) for s in support], accuracy, decrement)
    return Refinement(problem.pieces(v, grids, active), problem.value(v),
                      "support did not settle", total, rounds)
