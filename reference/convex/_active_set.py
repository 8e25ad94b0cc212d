"""The data-grid coefficient problem (reference.convex) solved by an active set of knots.

On the data grid every neuron n may bend at each of its P_n candidate points g_{n,k} (its
merged pre-activations, plus 0 and 1 for BV2), and CLARABEL's factorisation of the full
problem fills in when several neurons share the samples.  The optimum bends at few of
them, so: solve the problem with knots allowed only at an active subset S_n of the
candidates (INITIAL_POINTS quantile points to start), check the optimality condition of
the full problem at every candidate (`optimality`), add candidates where it fails, and
repeat until it holds everywhere.  The restricted problem is the same CoefficientProblem
on the grids S_n: a spline with knots in S_n is a spline with knots in the data, so the
restricted optimum is the full optimum when the condition holds (the condition is the KKT
system of the full data-grid problem, with the multipliers built from the restricted
solution).

Rules (module constants):
- relative violation (|lambda_n xi_{n,k}| - lambda_n) / lambda_ref_n with
  lambda_ref_n = max(lambda_n, REFERENCE_FLOOR * max_n sum_m |w0_mn| (max z_n - min z_n)),
  lambda_n neuron n's TV2 weight, w0 the loss weights of the zero spline
  (`reference_scale`: the size of |phi_n| before any fit, independent of the solution):
  lambda = 0, or a lambda below the floor, is measured against the floor;
- accepted (`Optimality.accepted`): the restricted problem's own conditions hold to
  `noise` <= NOISE_MAX (the accuracy of the multipliers built from the solution, 0 at an
  exact restricted optimum; CLARABEL's static regularisation, or its tolerances on the
  exponential cones of the logistic and cross-entropy losses, can leave more, and the
  restricted problem is then solved again with REFINED_SETTINGS), and the worst relative
  violation at the other candidates is <= VIOLATION_RTOL + noise;
- added per round (`points_to_add`): in every run of consecutive inactive candidates
  whose violation exceeds the tolerance, the one of largest violation (merged or
  duplicated samples are one candidate: the candidates are `convex.data_grid`'s);
  dropped (`points_to_drop`): active candidates without a knot whose multiplier is well
  inside its bound (the solution stays optimal without them);
- status "round limit" after MAX_ROUNDS rounds, "stalled" when the condition fails but no
  inactive candidate violates it (solver accuracy): never an accepted optimum; the last
  restricted solution (a feasible point) goes to reference.convex._certify's verdict, which
  certifies it by the NumPy dual bound or refuses it;
- polishing (`solve_layer_active`): re-solve with the knots of the optimum only, accepted
  when the objective stays within the certified gaps; both knot counts are reported;
- a deadline (reference._limits.Deadline) is checked before every round and passed to the
  solves: status "time_limit", and the last restricted solution (a feasible point of the
  full problem) goes to reference.convex._certify's verdict.
Everything here runs in reference.convex._certify's internal units (y, c divided by the data's
scale T, the pre-activations of neuron n by r_n and column n of A by a_n; TV2 weight
lambda_n = lambda / (T a_n r_n), BV2's points at 0 and 1 / r_n with the weight
lambda / (T a_n), L_max a_n r_n / T), where every value, slope and spread is of order 1:
the floors "max(1, .)" of the tolerances and the knot tolerance's slope unit 1 are the
problem's own scale.  `weights` (a reference.convex._certify.RegWeights) states them; None is the
problem as given (every weight 1, BV2's points 0 and 1).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from reference._format import exact
from reference._limits import Deadline
from reference._numerics import EPS
from reference.convex._knots import violated_runs
from reference.convex._newton import refine
from reference.convex._problem import (
    CoefficientProblem,
    RegWeights,
    finish,
    gauge_basis,
    knot_counts,
    problem_for,
)
from reference.convex._solver_settings import REFINED_SETTINGS
from reference.exceptions import SolveFailed
from reference.nn._losses import loss_and_grad
from reference.nn._network import KnotSplineActivation, Network
from reference.nn._regularisers import get as get_regulariser

INITIAL_POINTS = 8          # quantile candidates per neuron in the first round (ends included)
MAX_ROUNDS = 30
VIOLATION_RTOL = 1e-6       # accepted: worst (|lambda xi| - lambda) / lambda_ref <= this + noise
REFERENCE_FLOOR = 1e-6      # lambda_ref >= REFERENCE_FLOOR * `reference_scale`
NOISE_MAX = 1e-6            # the multipliers' accuracy needed (`Optimality.accepted`)
NOISE_WEIGHT = 1e3          # lip_certificate: weight of the noise against the violation
POLISH_KNOT_RTOL = 1e-4     # first polishing attempt: knots above this * max |a| per neuron
DROP_MARGIN = 1e-3          # `points_to_drop`: multipliers below (1 - this) lambda
NEWTON_LOSSES = ("logistic", "xent")   # restricted solves refined by Newton's method
NEWTON_ATTEMPTS = 1         # ... after at most this many CLARABEL attempts (tight)


@dataclass
class Optimality:
    """The optimality check of a restricted solution against every candidate knot (see
    `optimality`); every number relative to lambda_ref (`reference`).

    violation: per neuron (P_n,) (|lambda xi| - lambda) / lambda_ref at every candidate;
    worst: the largest at the inactive candidates (dual infeasibility where the restricted
    problem did not look), 0 if none is positive; noise: the largest
    residual of the restricted problem's own KKT conditions (dual feasibility at the
    active candidates, complementarity relative to the largest term, the closing
    condition), which is 0 at an exact restricted optimum: the accuracy of the multipliers;
    condition: which form of the check; tolerance; gap: the complementarity gap G summed
    over the neurons (a bound on F(solution) - F(optimum) when worst and noise are 0).

    accepted: noise <= NOISE_MAX and worst <= tolerance + noise (a violation below the
    noise cannot be told from the multipliers' error)."""
    violation: list
    worst: float
    noise: float
    reference: float
    condition: str
    tolerance: float
    gap: float
    active: list | None = None

    @property
    def accepted(self) -> bool:
        return self.noise <= NOISE_MAX and self.worst <= self.tolerance + self.noise


@dataclass
class ActiveSetResult:
    """What `solve_active` found: the last restricted problem and its solve (as returned by
    CoefficientProblem.solve), the active masks over the candidate grids, the history of
    (points per neuron, worst violation) per round, status "converged" / "round limit" /
    "stalled" / "time_limit" / the solver's status; last: the last restricted solution
    (a feasible point of the full problem, None before the first)."""
    problem: object
    result: dict
    active: list
    optimality: Optimality | None
    status: str
    rounds: int
    history: list = field(default_factory=list)
    seconds: float = 0.0
    last: KnotSplineActivation | None = None


# ----------------------------------------------------------------- the optimality condition
def loss_weights(sigma_at_z: np.ndarray, a_mat: np.ndarray, c: np.ndarray, y, loss: str):
    """w (M, N) = r A with r (M, N_L) = dE/df the loss gradient at the outputs
    f = sigma(z) A^T + c (squared: f - y; logistic: sigmoid(f) - y; cross-entropy:
    softmax(f) - onehot(y)); w_mn is the derivative of the data term in sigma_n(z_mn)."""
    _, r = loss_and_grad(loss, sigma_at_z @ a_mat.T + c[None, :], y)
    return r @ a_mat


ACCUMULATION_UNIT = float(np.finfo(np.longdouble).eps) / 2   # knot_correlation's sums' unit


def knot_correlation(z: np.ndarray, w: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """phi(tau) = sum_m w_m (z_m - tau)_+ at every tau, z and w (M,), tau (P,): the
    derivative of the data term in the jump a of a knot a (z - tau)_+ added at tau.
    Computed from the sorted z without cancellation: with tail_j = sum_{i >= j} w_(i),
    phi(z_(j)) = sum_{i > j} (z_(i) - z_(i-1)) tail_i, and between sorted points
    phi(tau) = phi(z_(j)) + (z_(j) - tau) tail_j for the first z_(j) > tau (0 beyond z_(M)).
    phi is piecewise linear with kinks at the z, so its extreme values lie at data points.
    The sums are accumulated in np.longdouble (unit ACCUMULATION_UNIT: 2^-64 on x86-64,
    2^-53 where it is float64), so that their error, which grows with M, stays far below
    the result's rounding at a million samples (`knot_correlation_error`)."""
    order = np.argsort(z, kind="stable")
    zs = z[order]
    zl, wl = zs.astype(np.longdouble), w[order].astype(np.longdouble)
    tail = np.cumsum(wl[::-1])[::-1]                                    # (M,)
    steps = np.diff(zl) * tail[1:]
    at = np.concatenate([np.cumsum(steps[::-1])[::-1], np.zeros(2, np.longdouble)])
    j = np.searchsorted(zs, tau, side="right")
    zj = np.concatenate([zl, np.zeros(1, np.longdouble)])[j]
    tj = np.concatenate([tail, np.zeros(1, np.longdouble)])[j]
    return (at[j] + (zj - tau.astype(np.longdouble)) * tj).astype(np.float64)


def knot_correlation_error(samples: int, outputs: int = 1) -> float:
    """e such that `knot_correlation` of w = r A_n (r (M, N_L) the dual point, computed in
    float64) is within e sum_m |w_m| S of phi, S the spread of the points and the taus:
    4 (M + 4) u_acc (the two cumulative sums, each within gamma_M sum |.|, the steps and
    products, every term at most sum |w| S) + 4 (N_L + 4) u (w's own rounding, and the
    result's to float64), u_acc = ACCUMULATION_UNIT, u = EPS / 2."""
    return 4.0 * (samples + 4) * ACCUMULATION_UNIT + 2.0 * (outputs + 4) * EPS


def bv2_end_weights(z: np.ndarray, w: np.ndarray, p1: float = 1.0):
    """(v0, v1): the multipliers of |sigma(0)| and |sigma(p1)| in the BV2 problem without a
    Lip bound (p1 = 1, or 1 / r_n in internal units), from the stationarity in the affine
    part b0 + b1 z of sigma: sum_m w_m + v0 + v1 = 0 and sum_m w_m z_m + v1 p1 = 0, so
    v1 = -sum w z / p1, v0 = -sum w - v1.  The points 0 and p1 then act as two extra samples
    of weights v0, v1 in phi."""
    s0, s1 = float(w.sum()), float(w @ z)
    v1 = -s1 / p1
    return -s0 - v1, v1


def adds_zero_one(reg: str) -> bool:
    """Whether R adds |sigma(0)| + |sigma(1)| to TV2 (BV2: extra_points (0, 1), see
    reference.nn._regularisers): `bv2_end_weights` and `lip_certificate` are derived for exactly
    those points; a regulariser with other extra points is a ValueError naming reg."""
    extra = get_regulariser(reg).extra_points
    if extra not in ((), (0.0, 1.0)):
        raise ValueError(f"reg: the active-set certificate handles the extra points () or "
                         f"(0, 1) only, {reg!r} has {extra}")
    return bool(extra)


def reference_scale(z, a_mat, c, y, loss: str) -> float:
    """max_n sum_m |w0_mn| (max z_n - min z_n), w0 = `loss_weights` of the zero spline: a
    bound on |phi_n| before any fit, fixed by the data (1 if it vanishes)."""
    w0 = loss_weights(np.zeros_like(z), a_mat, c, y, loss)
    return max(float(np.max(np.abs(w0).sum(axis=0) * np.ptp(z, axis=0))), 0.0) or 1.0


def _pieces(layer: KnotSplineActivation, n: int, grid, act):
    """(jumps (P,): a_j at the active candidates, 0 elsewhere and at the ends; slopes
    (P - 1,): the slope of the restricted solution on every candidate piece)."""
    slopes = layer.slopes[n]
    jumps = np.zeros(len(grid))
    jumps[np.flatnonzero(act)[1:-1]] = np.diff(slopes)
    return jumps, slopes[np.cumsum(act)[:-1] - 1]


def _penalty(n: int, lam: float, reg: str, weights=None):
    """(lambda_n (N,): the TV2 weights, mu (N,): the point terms' weights, p1 (N,): BV2's second
    point per neuron (the first is 0), bv2) of the problem lam * `weights`
    (reference.convex._certify.RegWeights; None: `RegWeights.plain`)."""
    bv2 = adds_zero_one(reg)
    weights = weights or RegWeights.plain(n, reg)
    lam_n, mu = weights.penalties(lam)
    p1 = np.array([p[1] for p in weights.points]) if bv2 else np.ones(n)
    return lam_n, mu, p1, bv2


def _scales(layer: KnotSplineActivation, p1: np.ndarray):
    """(sigma at 0 and p1_n (2, N), max |a| over the layer's knots, max |sigma(0)|,
    |sigma(p1)| over the layer, knot tolerance per neuron (N,)): complementarity is
    required at the knots (|a_j| above the tolerance of `convex.knot_counts`, slope unit 1:
    internal units), its residual weighted by |a_j| / max |a| (resp. |sigma(.)| / max
    |sigma(.)|, values below 1e-7 max(1, max |sigma(.)|) taken as 0), so that a small knot
    counts as little as its jump."""
    _, tols, _ = knot_counts(layer, 1.0)
    at01 = layer.forward(np.stack([np.zeros(layer.n_in), p1]))[0]
    a_max = max((np.abs(np.diff(s)).max(initial=0.0) for s in layer.slopes), default=0.0)
    v_max = float(np.abs(at01).max())
    at01 = np.where(np.abs(at01) > 1e-7 * max(1.0, v_max), at01, 0.0)    # as for knots
    return at01, max(a_max, 1e-300), max(v_max, 1e-300), tols


def optimality(layer: KnotSplineActivation, z, w, grids, active, lam: float, reg: str,
               lip_max=None, scale: float = 1.0, weights=None) -> Optimality:
    """The optimality condition of the full data-grid problem at a restricted optimum
    `layer` (knots only at the active candidates), per neuron n, w = `loss_weights` (the
    derivatives of the data term in sigma_n(z_mn): logistic and cross-entropy losses enter
    only through them).  On the candidates g_0 < ... < g_{P-1} sigma_n has the value u_0 at
    g_0 and slopes s_i on [g_i, g_{i+1}], TV2 = sum_k |a_k|, a_k = s_k - s_{k-1}.  With
    multipliers lambda xi_k, xi_k in d|a_k| (xi_0 = xi_{P-1} = 0), and mu_i of
    |s_i| <= L_max, stationarity in s_i reads
    phi(g_i) - phi(g_{i+1}) + lambda (xi_i - xi_{i+1}) + mu_i = 0; summed:

        lambda xi_k = M_k - T_k,   T_k = phi(g_k) - phi(g_0),   M_k = sum_{i < k} mu_i,
        phi(tau) = sum_m w_mn (z_mn - tau)_+ = sum_m r_m . A_n (z_mn - tau)_+ .

    TV2 without a Lip bound: M = 0 and phi(g_0) = 0 (stationarity in b0, b1), so the
    condition is |phi_n(tau)| <= lambda at every candidate tau (dual feasibility) and
    phi_n(tau_j) = -lambda sign(a_j) at the knots (complementarity); T_k is used for
    phi(g_k): they differ by the closing residual phi(g_0), a solver residual.
    BV2: the points 0 and 1 are added as samples of weights v0, v1 (`bv2_end_weights`),
    with |v0| <= lambda, v0 = lambda sign(sigma(0)) if sigma(0) != 0, likewise v1.
    Lip <= L_max: mu_i has the sign of s_i and is 0 where |s_i| < L_max; M is unknown and
    chosen by `lip_certificate`.
    Closing condition xi_{P-1} = 0, i.e. M_{P-1} = T_{P-1} (a stationarity residual).
    Such multipliers bound the suboptimality: F(solution) - F(optimum) <= G with
        G = sum_knots lambda |a_j| (1 - sign(a_j) xi_j) + sum_pieces |mu_J| (L_max - |s_J|)
            [+ |sigma(0)| (lambda - sign(sigma(0)) v0) + likewise at 1],
    every term >= 0 and 0 at the exact optimum.

    The conditions at the active candidates hold at an exact restricted optimum; what is
    left of them (`Optimality.noise`: dual infeasibility, (lambda - sign(a_j) lambda xi_j)
    |a_j| / max_j |a_j| at the knots, the closing residual) measures the accuracy of the
    multipliers, and violations at the inactive candidates are judged against it
    (`Optimality.accepted`).  Everything of neuron n is relative to lambda_ref_n =
    max(lambda_n, REFERENCE_FLOOR * scale), scale = `reference_scale`, lambda_n its TV2
    weight, and BV2's point terms, at 0 and p1_n, weighted by mu_n (`_penalty` of lam and
    weights; lambda_n = mu_n = lam and p1 = 1 by default), whose multipliers' residuals are
    relative to max(mu_n, REFERENCE_FLOOR * scale): in internal units the two weights differ
    by r_n, the spread of the neuron's pre-activations."""
    lam_n, mu, p1, bv2 = _penalty(z.shape[1], lam, reg, weights)
    if lip_max is not None:
        return lip_certificate(layer, z, w, grids, active, lam, reg, lip_max, scale, weights)
    refs = np.maximum(lam_n, REFERENCE_FLOOR * scale)
    point_refs = np.maximum(mu, REFERENCE_FLOOR * scale)
    violation, worst, noise, gap = [], 0.0, 0.0, 0.0
    at01, a_max, v_max, knot_tol = _scales(layer, p1)
    for n, (g, act) in enumerate(zip(grids, active)):
        zn, wn, lam_k, ref = z[:, n], w[:, n], lam_n[n], refs[n]
        jumps, _ = _pieces(layer, n, g, act)
        if bv2:
            v, value = np.array(bv2_end_weights(zn, wn, p1[n])), at01[:, n]
            noise = max(noise, float(np.max(np.abs(v) - mu[n])) / point_refs[n],
                        float(np.max((mu[n] - np.sign(value) * v) * np.abs(value)))
                        / v_max / point_refs[n])
            gap += float(mu[n] * np.abs(value).sum() - value @ v)
            zn, wn = np.concatenate([zn, [0.0, p1[n]]]), np.concatenate([wn, v])
        t = knot_correlation(zn, wn, g)
        t = t - t[0]                                                    # T = -lambda xi
        viol = np.abs(t) - lam_k
        knots = np.flatnonzero(np.abs(jumps) > knot_tol[n])
        compl = (lam_k + np.sign(jumps[knots]) * t[knots]) * np.abs(jumps[knots])
        noise = max(noise, abs(t[-1]) / ref, float(viol[act].max()) / ref,
                    float(compl.max(initial=0.0)) / a_max / ref)
        worst = max(worst, float(viol[~act].max(initial=0.0)) / ref)
        gap += float(np.sum(lam_k * np.abs(jumps) + jumps * t))
        violation.append(viol / ref)
    return Optimality(violation, max(worst, 0.0), max(noise, 0.0), refs,
                      "closed form", VIOLATION_RTOL, gap)


def lip_certificate(layer, z, w, grids, active, lam, reg, lip_max, scale,
                    weights=None) -> Optimality:
    """`optimality` with the bound |s| <= L_max: the multipliers M are chosen by a linear
    program per neuron (HiGHS; M, T and v divided by lambda_ref), over M_1..M_{P-1}
    (M_0 = 0), for BV2 v0 (v1 = -sum_m w_m - v0 by the stationarity in u_0, so T_k is
    affine in v0), and two slacks:  min W noise + worst  (W = NOISE_WEIGHT) subject to
      |M_k - T_k| <= lambda + worst at every inactive candidate,
      |M_j - T_j| <= lambda + noise at every interior active candidate,
      (lambda - sign(a_j) (M_j - T_j)) |a_j| <= noise max |a| at the knots (`_scales`),
      sign(s_i) (M_{i+1} - M_i) >= -noise on every candidate piece (|.| <= noise where
        s_i = 0), sign(s_J) mu_J (L_max - |s_J|) <= noise L_max on the pieces J of the
        solution (mu_J the change of M across J),
      |v| <= lambda + noise, (lambda - sign(sigma(.)) v) |sigma(.)| <= noise
        max |sigma(0 or 1)| (BV2),   M_{P-1} = T_{P-1}.
    worst and noise are the largest over the neurons; the violation at the candidates is
    |M_k - T_k| - lambda at the solution (+inf at the inactive candidates whose row binds
    with a nonzero dual: those that set `worst`); gap = G there.  Per neuron n: lambda is its
    TV2 weight lambda_n, the point terms' weight mu, L_max = lip_max[n] (a number or (N,)),
    BV2's second point p1_n (`_penalty`), lambda_ref_n as in `optimality`."""
    lam_n, mu_points, p1, bv2 = _penalty(z.shape[1], lam, reg, weights)
    lips = np.broadcast_to(np.asarray(lip_max, dtype=np.float64), (z.shape[1],))
    refs = np.maximum(lam_n, REFERENCE_FLOOR * scale)
    violation, worst, noise, gap = [], 0.0, 0.0, 0.0
    at01, a_max, v_max, knot_tol = _scales(layer, p1)
    for n, (g, act) in enumerate(zip(grids, active)):
        ref, lip = refs[n], lips[n]
        lam_r, mu_r = lam_n[n] / ref, mu_points[n] / ref
        p = len(g)
        zn, wn = z[:, n], w[:, n]
        jumps, slopes = _pieces(layer, n, g, act)
        t = knot_correlation(zn, wn, g)
        t = (t - t[0]) / ref
        d = np.zeros(p)
        total = float(wn.sum()) / ref
        if bv2:                       # T = t - S e1 + v0 (e0 - e1), e at the samples 0, 1
            e0 = np.maximum(-g, 0.0) - max(-g[0], 0.0)
            e1 = np.maximum(p1[n] - g, 0.0) - max(p1[n] - g[0], 0.0)
            t, d = t - total * e1, e0 - e1
        # columns: M_1..M_{P-1} (0..p-2), v0 (p-1), noise (p), worst (p + 1); M_0 = 0
        lp, v_col, noise_col, worst_col = _LinearProgram(p + 2), p - 1, p, p + 1
        col_m = np.arange(-1, p - 1)
        k = np.arange(1, p - 1)
        slack = np.where(act[k], noise_col, worst_col)
        for sgn in (1.0, -1.0):        # sgn (M_k - v0 d_k - t_k) - slack <= lambda
            lp.rows(slack, lam_r + sgn * t[k], col_m[k], sgn, v_col, -sgn * d[k])
        knots = np.flatnonzero(np.abs(jumps) > knot_tol[n])
        # sign(a) (t - M + v0 d) |a| / max|a| - noise <= -lam |a| / max|a|
        a_abs, a_sign = np.abs(jumps[knots]), np.sign(jumps[knots])
        lp.rows(noise_col, (-lam_r - a_sign * t[knots]) * a_abs / a_max,
                col_m[knots], -a_sign * a_abs / a_max, v_col, a_sign * d[knots] * a_abs / a_max)
        sign = np.sign(slopes)
        i = np.flatnonzero(sign != 0)                    # -sign (M_{i+1} - M_i) <= noise
        lp.rows(noise_col, 0.0, col_m[i + 1], -sign[i], col_m[i], sign[i])
        flat = np.flatnonzero(sign == 0)
        for sgn in (1.0, -1.0):
            lp.rows(noise_col, 0.0, col_m[flat + 1], sgn, col_m[flat], -sgn)
        idx = np.flatnonzero(act)                        # mu_J (L - |s_J|) / L <= noise
        s_j = layer.slopes[n]
        weight = np.sign(s_j) * (lip - np.abs(s_j)) / lip
        lp.rows(noise_col, 0.0, col_m[idx[1:]], weight, col_m[idx[:-1]], -weight)
        if bv2:
            for coef, shift, val in ((1.0, 0.0, at01[0, n]), (-1.0, -total, at01[1, n])):
                for sgn in (1.0, -1.0):                  # |coef v0 + shift| <= lam + noise
                    lp.rows(noise_col, mu_r - sgn * shift, v_col, sgn * coef)
                share = abs(val) / v_max                 # (lam - sign(val) v) share <= noise
                lp.rows(noise_col, (-mu_r + np.sign(val) * shift) * share,
                        v_col, -np.sign(val) * coef * share)
        lp.closing(p - 2, v_col, -d[p - 1], t[p - 1])
        try:
            x, marginal = lp.solve(noise_col, worst_col, bv2, n)
        except SolveFailed:                   # no multipliers: nothing is certified here
            violation.append(np.zeros(p))
            noise = np.inf
            continue
        m_all = np.concatenate([[0.0], x[:p - 1]])
        xi = m_all - t - x[v_col] * d                     # lambda xi / lambda_ref
        viol = np.abs(xi) - lam_r
        binding = np.zeros(p, dtype=bool)                 # rows that set `worst`
        binding[k] = (marginal[:len(k)] != 0) | (marginal[len(k):2 * len(k)] != 0)
        viol[binding & ~act & (x[worst_col] > 0)] = np.inf
        violation.append(viol)
        worst, noise = max(worst, float(x[worst_col])), max(noise, float(x[noise_col]))
        mu = np.diff(m_all[idx])
        gap += ref * float(np.sum(lam_r * np.abs(jumps) - jumps * xi)
                           + np.sum(np.abs(mu) * (lip - np.abs(s_j))))
        if bv2:
            v = np.array([x[v_col], -total - x[v_col]])
            gap += ref * float(mu_r * np.abs(at01[:, n]).sum() - at01[:, n] @ v)
    return Optimality(violation, worst, noise, refs, "linear program (Lip-bound multipliers)",
                      VIOLATION_RTOL, gap)


class _LinearProgram:
    """The rows of `lip_certificate`'s linear program as sparse triplets: a row reads
    sum coef x_col - x_slack <= rhs  (column -1: a constant 0, left out)."""
    ub: list[tuple[np.ndarray, np.ndarray, np.ndarray]]      # (rows, columns, coefficients)
    eq: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    b_ub: list[np.ndarray]
    b_eq: list[np.ndarray]

    def __init__(self, columns: int):
        self.columns, self.ub, self.eq, self.b_ub, self.b_eq = columns, [], [], [], []

    def rows(self, slack_col, rhs, *pairs):
        """One row per entry of rhs (arrays broadcast): sum over (col, coef) pairs of
        coef x_col - x_slack_col <= rhs."""
        shape = np.broadcast_shapes(np.shape(rhs), *(np.shape(a) for a in pairs), (1,))
        rhs = np.broadcast_to(np.asarray(rhs, dtype=np.float64), shape)
        cols = [np.broadcast_to(c, shape) for c in pairs[0::2]] + \
            [np.broadcast_to(slack_col, shape)]
        coefs = [np.broadcast_to(c, shape) for c in pairs[1::2]] + [-np.ones(shape)]
        r = sum(len(b) for b in self.b_ub) + np.arange(len(rhs))
        for col, coef in zip(cols, coefs):
            keep = (col >= 0) & (coef != 0)
            self.ub.append((r[keep], col[keep], coef[keep]))
        self.b_ub.append(rhs)

    def closing(self, col_m, col_v, coef_v, value):
        """x_m + coef_v x_v = value."""
        r = sum(len(b) for b in self.b_eq)
        self.eq.append((np.array([r, r]), np.array([col_m, col_v]), np.array([1.0, coef_v])))
        self.b_eq.append(np.array([value]))

    def solve(self, noise_col, worst_col, free_v, neuron):
        """x minimising NOISE_WEIGHT x_noise + x_worst, both >= 0 (x_v fixed at 0 unless
        free_v); SolveFailed (a RuntimeError) if HiGHS fails (`lip_certificate` then
        reports infinite noise: the restricted solution is not accepted)."""
        from scipy.optimize import linprog

        def matrix(parts, n_rows):
            r, c, v = (np.concatenate(x) for x in zip(*parts))
            return sp.csr_array((v, (r, c)), shape=(n_rows, self.columns))
        b_ub, b_eq = np.concatenate(self.b_ub), np.concatenate(self.b_eq)
        cost = np.zeros(self.columns)
        cost[noise_col], cost[worst_col] = NOISE_WEIGHT, 1.0
        bounds = [(None, None)] * self.columns
        bounds[noise_col] = bounds[worst_col] = (0.0, None)
        if not free_v:
            bounds[noise_col - 1] = (0.0, 0.0)
        out = linprog(cost, A_ub=matrix(self.ub, len(b_ub)), b_ub=b_ub,
                      A_eq=matrix(self.eq, len(b_eq)), b_eq=b_eq, bounds=bounds,
                      method="highs")
        if out.status != 0:
            raise SolveFailed(f"solve: the optimality LP of neuron {neuron} ended with "
                              f"{out.message!r}; no model is returned")
        return out.x, out.ineqlin.marginals


# ----------------------------------------------------------------------- the active set
def initial_active(grids, count: int = INITIAL_POINTS) -> list:
    """Boolean masks over the candidates: `count` points at evenly spaced ranks (quantiles
    of the candidates, both ends included); every candidate when P_n <= count."""
    out = []
    for g in grids:
        mask = np.zeros(len(g), dtype=bool)
        mask[np.unique(np.round(np.linspace(0, len(g) - 1, count)).astype(int))] = True
        out.append(mask)
    return out


def points_to_add(violation: list, active: list, tol: float = VIOLATION_RTOL) -> list:
    """New masks: in every run of consecutive inactive candidates whose violation exceeds
    tol, the candidate of largest violation (the first of ties)."""
    out = []
    for v, mask in zip(violation, active):
        bad = (v > tol) & ~mask
        new = mask.copy()
        if bad.any():
            run = np.cumsum(np.diff(np.concatenate([[False], bad]).astype(np.int8)) == 1)
            idx = np.flatnonzero(bad)
            order = np.lexsort((-v[idx], run[idx]))      # by run, largest violation first
            first = np.concatenate([[True], np.diff(run[idx][order]) != 0])
            new[idx[order][first]] = True
        out.append(new)
    return out


def points_to_drop(layer: KnotSplineActivation, check: Optimality, active: list) -> list:
    """Masks of the active candidates that the next round can do without: not an end, no
    knot there (|a| <= the tolerance of `convex.knot_counts`) and the multiplier well inside
    its bound (violation < -DROP_MARGIN, i.e. |lambda xi| < (1 - DROP_MARGIN) lambda for
    lambda_ref = lambda).  The current solution stays optimal without them; they come back
    if a later round violates the condition there.  Keeps the restricted problems small."""
    _, tols, _ = knot_counts(layer, 1.0)
    out = []
    for n, (v, mask) in enumerate(zip(check.violation, active)):
        idx = np.flatnonzero(mask)
        flat = np.abs(np.diff(layer.slopes[n])) <= tols[n]            # interior actives
        drop = np.zeros(len(mask), dtype=bool)
        drop[idx[1:-1][flat & (v[idx[1:-1]] < -DROP_MARGIN)]] = True
        out.append(drop)
    return out


def solve_and_check(prob, z, a_mat, c, y, grids, active, lam, solver, scale, settings=None,
                    previous=None):
    """(result, solution layer, Optimality) of a restricted problem: solved (with
    `settings`, see `convex.CoefficientProblem.solve`), refined by Newton's method where the
    loss is one of NEWTON_LOSSES and there is no Lip bound (`refine_solution`), the
    multipliers built from its solution and checked; when the verdict depends on their
    accuracy (noise > NOISE_MAX and no violation beyond tolerance + noise; e.g. CLARABEL's
    static regularisation biasing a near-interpolation, or its tolerances on exponential
    cones), solved again with REFINED_SETTINGS (CLARABEL) and checked again.  When the
    solver fails (after NEWTON_ATTEMPTS attempts) on a problem that Newton's method can
    refine, Newton starts from `previous` (the last restricted solution, a
    KnotSplineActivation in internal units; None: the zero spline) and its point is taken
    if it converges (`newton_fallback`); else the solver runs every attempt of
    `solver_attempts`.  (result, None, None) if all fail."""
    first, passes = None, (settings, REFINED_SETTINGS)
    newton = prob.loss in NEWTON_LOSSES and prob.lip_max is None
    for options in passes[:1 if settings == REFINED_SETTINGS else 2]:
        limit = {"max_attempts": NEWTON_ATTEMPTS} if newton else {}
        result = prob.solve(lam, solver, settings=options, **limit)
        if result["status"] != "optimal" and newton and result["status"] != "time_limit":
            found = newton_fallback(prob, result, z, a_mat, c, y, grids, active, lam,
                                    scale, previous)
            if found[1] is not None:
                return found
            result = prob.solve(lam, solver, settings=options)      # every attempt
            if result["status"] == "optimal":
                result, layer, check = refine_solution(prob, result, z, a_mat, c, y, grids,
                                                       active, lam, scale)
                return result, layer, check
        if result["status"] != "optimal":
            break
        result, layer, check = refine_solution(prob, result, z, a_mat, c, y, grids, active,
                                               lam, scale)
        first = first or (result, layer, check)
        decided = check.noise <= NOISE_MAX or check.worst > check.tolerance + check.noise
        if decided or solver != "CLARABEL":
            return result, layer, check
    if first is None:                          # the solver failed (Newton too, if tried)
        return result, None, None
    attempts = first[0]["attempts"] + [f"refined: {a}" for a in result["attempts"]]
    if result["status"] == "time_limit":       # the first solution is the last point known
        return {**result, "attempts": attempts}, first[1], first[2]
    if result["status"] != "optimal":          # the refined solve failed: keep the first
        prob.solve(lam, solver, settings=settings)    # (the problem holds it again)
        first = refine_solution(prob, first[0], z, a_mat, c, y, grids, active, lam, scale)
        return {**first[0], "attempts": attempts}, first[1], first[2]
    return {**result, "attempts": attempts}, layer, check


def newton_fallback(prob, result, z, a_mat, c, y, grids, active, lam, scale, previous):
    """(result, layer, Optimality) of Newton's method (reference.convex._newton.refine)
    started from `previous` evaluated at the active candidates (None: the zero spline) when
    the solver failed; (result, None, None) when the loss or a Lip bound rules Newton out,
    or it does not converge."""
    if prob.loss not in NEWTON_LOSSES or prob.lip_max is not None \
            or result["status"] == "time_limit":
        return result, None, None
    pts = [g[m] for g, m in zip(grids, active)]
    if previous is None:
        start = KnotSplineActivation(pts, [np.zeros(len(p)) for p in pts])
    else:
        at = [previous.forward(np.tile(p[:, None], (1, len(pts))))[0][:, k]
              for k, p in enumerate(pts)]
        start = KnotSplineActivation(pts, at)
    prob.refined = [(p, v) for p, v in zip(start.points, start.values)]
    out, layer, check = refine_solution(prob, {**result, "objective": None, "gap": None},
                                        z, a_mat, c, y, grids, active, lam, scale)
    if out.get("newton", {}).get("status") != "refined":
        prob.refined = None
        return result, None, None
    out.update(status="optimal", default_settings=False,
               attempts=result["attempts"] + [
                   "Newton's method from " + ("the zero spline" if previous is None
                                              else "the last restricted solution")
                   + f": converged ({out['newton']['iterations']} iterations)"])
    return out, layer, check


def _check(prob, layer, z, a_mat, c, y, grids, active, lam, scale) -> Optimality:
    """`optimality` of a restricted solution `layer`."""
    w = loss_weights(layer.forward(z)[0], a_mat, c, y, prob.loss)
    check = optimality(layer, z, w, grids, active, lam, prob.reg, prob.lip_max, scale,
                       prob.weights)
    check.active = [m.copy() for m in active]
    return check


def refine_solution(prob, result, z, a_mat, c, y, grids, active, lam, scale):
    """(result, layer, Optimality) of a solved restricted problem: for a loss of
    NEWTON_LOSSES without a Lip bound, the solution refined by Newton's method on its
    support (reference.convex._newton.refine), kept when Newton converged and the
    multipliers built from its point are at least as accurate (`Optimality.noise`) as the
    conic solution's or within NOISE_MAX (its violations at the inactive candidates are
    the restricted optimum's own, which the next round acts on);
    then prob.refined holds its pieces, result["objective"] is its NumPy objective,
    result["gap"] None (the solver's gap is of its own point) and result["newton"] says
    what Newton did (iterations, support, jump_accuracy per neuron).  Otherwise the conic
    solution, with result["newton"] saying why it was kept."""
    layer = KnotSplineActivation(*zip(*prob.splines()))
    check = _check(prob, layer, z, a_mat, c, y, grids, active, lam, scale)
    if prob.loss not in NEWTON_LOSSES or prob.lip_max is not None:
        return result, layer, check
    _, tols, _ = knot_counts(layer, 1.0)

    def violation(pieces):
        trial = KnotSplineActivation(*zip(*pieces))
        out = _check(prob, trial, z, a_mat, c, y, grids, active, lam, scale)
        w = loss_weights(trial.forward(z)[0], a_mat, c, y, prob.loss)
        ts = []
        for k, g in enumerate(grids):
            t = knot_correlation(z[:, k], w[:, k], g[active[k]])
            ts.append((t - t[0])[1:-1])
        return list(zip(out.violation, ts))
    found = refine(layer, z, a_mat, c, y, prob.loss, prob.weights, lam, grids, active, tols,
                   violation, prob.deadline)
    if found is None or not found.converged:
        why = "no Hessian for the loss" if found is None else found.status
        return {**result, "newton": {"status": f"kept the solver's point ({why})"}}, \
            layer, check
    refined = KnotSplineActivation(*zip(*found.pieces))
    new_check = _check(prob, refined, z, a_mat, c, y, grids, active, lam, scale)
    if new_check.noise > max(check.noise, NOISE_MAX):
        return {**result, "newton": {"status": (
            f"kept the solver's point (Newton's point: multiplier noise "
            f"{new_check.noise:.3g})")}}, layer, check
    prob.refined = found.pieces
    info = {"status": "refined", "iterations": found.iterations,
            "support_rounds": found.support_rounds, "support": found.support,
            "jump_accuracy": found.jump_accuracy.tolist(), "decrement": found.decrement,
            "solver_objective": result["objective"], "solver_gap": result["gap"]}
    return {**result, "objective": found.objective, "gap": None, "newton": info}, \
        refined, new_check


def solve_active(z, a_mat, c, y, loss, reg, grids, lam, lip_max, solver, *, gauge=None,
                 start=None, max_rounds: int | None = None, deadline=None,
                 bar=None, weights=None, settings=None) -> ActiveSetResult:
    """The active-set loop (module docstring).  z (M, N), a_mat (N_L, N), c (N_L,), y in the
    loss's form; grids: the candidates per neuron (`convex.data_grid`); lip_max, weights: as
    in `convex.CoefficientProblem` (internal units); settings: `solve_and_check`'s;
    start: initial masks
    (default `initial_active`), e.g. the previous lambda's on a path; deadline: a
    limits.Deadline checked before every round and passed to the solves (status
    "time_limit" when it passes); bar: a tqdm bar whose postfix shows each round.  Returns an
    ActiveSetResult whose problem holds the last restricted solution."""
    t0 = time.perf_counter()
    max_rounds = MAX_ROUNDS if max_rounds is None else max_rounds
    if not isinstance(max_rounds, (int, np.integer)) or max_rounds < 1:
        raise ValueError(f"max_rounds: expected an integer >= 1, got {max_rounds!r}")
    scale = reference_scale(z, a_mat, c, y, loss)
    active = [m.copy() for m in (start or initial_active(grids))]
    history: list[dict]                                  # one entry per round
    history, check, last, prob, result = [], None, None, None, {}
    for rounds in range(1, max_rounds + 1):
        if deadline is not None and deadline.expired():
            status = "time_limit"
            break
        prob = CoefficientProblem(z, a_mat, c, y, loss, reg,
                                  [g[m] for g, m in zip(grids, active)], lip_max, gauge=gauge,
                                  deadline=deadline, weights=weights)
        result, layer, check = solve_and_check(prob, z, a_mat, c, y, grids, active, lam,
                                               solver, scale, settings, previous=last)
        last = layer or last
        if result["status"] != "optimal":
            return ActiveSetResult(prob, result, active, check, result["status"], rounds,
                                   history, time.perf_counter() - t0, last)
        history.append({"points": [int(m.sum()) for m in active], "worst": check.worst,
                        "noise": check.noise, "solver_seconds": result["seconds"],
                        "attempts": result["attempts"], "seconds": time.perf_counter() - t0})
        if bar is not None:
            bar.set_postfix_str(f"round {rounds}: points per neuron {history[-1]['points']}, "
                                f"worst violation {check.worst:.1e}, noise {check.noise:.1e}")
        if check.accepted:
            status = "converged"
            break
        grown = points_to_add(check.violation, active, check.tolerance)
        if sum(int(m.sum()) for m in grown) == sum(int(m.sum()) for m in active):
            status = "stalled"
            break
        if rounds == max_rounds:
            status = "round limit"
            break
        active = [m & ~d for m, d in zip(grown, points_to_drop(layer, check, active))]
    return ActiveSetResult(prob, result, active, check, status, rounds, history,
                           time.perf_counter() - t0, last)


def _knot_grids(layer: KnotSplineActivation, grids: list, rtol=None, scaled=None) -> list:
    """Masks over the internal candidates `grids`: the two ends and the points where the
    returned `layer` (the caller's units; its points divided by scaled.zr, exact) changes
    slope by more than the knot tolerance of `convex.knot_counts` (with the problem's slope
    unit; rtol None), or by more than rtol * max |a| of the neuron."""
    zr = np.ones(layer.n_in) if scaled is None else scaled.zr
    _, tols, _ = knot_counts(layer, 0.0 if scaled is None else scaled.slope_unit)
    out = []
    for n, g in enumerate(grids):
        p, a = layer.points[n] / zr[n], np.abs(np.diff(layer.slopes[n]))
        tol = tols[n] if rtol is None else max(tols[n], rtol * a.max(initial=0.0))
        mask = np.isin(g, p[1:-1][a > tol])
        mask[[0, -1]] = True
        out.append(mask)
    return out


def solve_layer_active(net: Network, layer: int, x: NDArray[np.float64], y: NDArray,
                       scaled: Any, grids: list[NDArray[np.float64]], *, solver: str,
                       start: list[NDArray[np.bool_]] | None = None, polish: bool = True,
                       max_rounds: int | None = None, gauge: NDArray[np.float64] | None = None,
                       deadline: Deadline | None = None, bar: Any = None,
                       settings: dict | None = None) -> tuple[Network | None, dict, list,
                                                               list, str | None]:
    r"""Solve the data-grid coefficient problem of one layer by an active set of knots.

    The engine of ``reference.convex.solve_layer(method="active")``, which validates the
    arguments, scales the problem and certifies the point returned.

    Parameters
    ----------
    net : Network
        The network; every weight stays fixed.
    layer : int
        Index of the spline layer in ``net.layers``.
    x : ndarray of float64, shape (M, N_0)
        The inputs, as checked by `solve_layer`.
    y : ndarray
        The caller's targets in the loss's form, for the NumPy re-evaluation.
    scaled : Scaled
        The problem in reference.convex._certify's internal units (``Scaled``: z, A, c, y,
        lambda, L_max, loss, regulariser and their units).
    grids : list of ndarray
        N sorted arrays: the candidate points of each neuron (the internal data grid).
    solver : str
        The cvxpy solver.
    start : list of ndarray of bool, optional
        Per neuron, the active candidates to start from (a previous lambda's); default
        INITIAL_POINTS quantile points.
    polish : bool, default True
        Re-solve on the knots of the optimum only (accepted when the objective stays within
        the certified gaps).
    max_rounds : int, optional
        The most rounds (default MAX_ROUNDS).
    gauge : ndarray, shape (2N, k) or (N, k), optional
        The gauge directions (`gauge_basis`; computed here for TV2 when None).
    deadline : Deadline, optional
        Checked before every round and passed to the solves.
    bar : tqdm, optional
        A progress bar to update.
    settings : dict, optional
        CLARABEL settings for every solve.

    Returns
    -------
    model : Network or None
        The new network (a knot-form layer), None when not converged.
    certificate : dict
        `solve_layer`'s certificate fields for the returned model (status, gap, NumPy
        re-evaluation, knots, ...), plus ``method`` ("active"), ``method_certified``,
        ``rounds``, ``points_per_neuron`` (of the returned model), ``candidate_points``
        (data-grid points per neuron), ``worst_violation`` (relative, Notes),
        ``violation_tolerance``, ``violation_reference`` (lambda_ref),
        ``optimality_condition``, ``multiplier_noise``, ``complementarity_gap``,
        ``active_history`` (points and worst violation per round), and the polishing:
        ``knots_unpolished``, ``polish`` ("accepted ...", "rejected: ...", "off" or
        "skipped (time limit)"), ``polish_objective``, ``objective_unpolished``.  When not
        converged, a partial certificate with ``rejected`` saying why.
    masks : list of ndarray of bool
        Per neuron, the active candidates at the end (the next lambda's `start`).
    extra_points : list of tuple
        [("last restricted solution", pieces)] when not converged and a round had
        finished, else []: feasible points for reference.convex._certify.conclude.
    stopped : str or None
        The reason at the deadline ("stopped at the time limit ..."), else None.

    Raises
    ------
    SolveFailed
        When a solver fails: no model.

    Notes
    -----
    Knots are allowed only at an active subset S_n of each neuron's candidates; the
    restricted problem is solved, the optimality condition of the full data-grid problem
    is checked at every candidate, and candidates where it fails are added, until

    .. math::

        \max_{n,k}\ \frac{|\lambda_n \xi_{n,k}| - \lambda_n}{\lambda_{\mathrm{ref},n}}
        \le \mathrm{VIOLATION\_RTOL} + \text{noise},

    xi_{n,k} the multiplier of candidate k built from the restricted solution, lambda_n
    neuron n's TV(2) weight and lambda_ref,n = max(lambda_n, REFERENCE_FLOOR times the size
    of |phi_n| at the zero spline) (module docstring).  A spline with knots in S_n is a
    spline with knots in the data, so the restricted optimum is the full one when the
    condition holds.  Polishing re-solves with the candidates restricted to the ends and the
    knots of the first solution (those above POLISH_KNOT_RTOL max |a|, then those above the
    knot tolerance), and is accepted when the objective stays within |gap| + |polished gap|
    + 1e-12 max(|objective|, U) of the first one (U the objective unit) and its own check
    passes: the knot count is then that of a solution on the knots alone.  Not converged
    (round limit, stalled) or at the deadline, the last restricted solution goes to
    reference.convex._certify.conclude, which certifies that point by the NumPy dual bound
    or refuses it.
    """
    t0 = time.perf_counter()
    z, a_mat, c, loss, reg, lam = (scaled.z, scaled.a_mat, scaled.c, scaled.loss, scaled.reg,
                                   scaled.lam)
    if gauge is None and get_regulariser(reg).ignores_affine:
        gauge = gauge_basis(z, a_mat, loss, affine=scaled.lip_max is None)
    run = solve_active(z, a_mat, c, scaled.y, loss, reg, grids, lam, scaled.lip_max, solver,
                       gauge=gauge, start=start, max_rounds=max_rounds, deadline=deadline,
                       bar=bar, weights=scaled.weights, settings=settings)
    base = {"method": "active", "rounds": run.rounds, "solver": solver,
            "candidate_points": [len(g) for g in grids],
            "active_history": [{"points": h["points"], "worst": h["worst"]}
                               for h in run.history]}
    if run.status in ("time_limit", "round limit", "stalled"):
        extra = [] if run.last is None else \
            [("last restricted solution", list(zip(run.last.points, run.last.values)))]
        base["attempts"] = run.result.get("attempts", [])
        if run.status == "time_limit":
            assert deadline is not None          # only a deadline stops at the time limit
            return None, base, run.active, extra, \
                f"stopped at the time limit {deadline.time_limit:g} s in round {run.rounds}"
        base["rejected"] = _not_converged(run, scaled)
        return None, base, run.active, extra, None
    new, cert = finish(net, layer, x, y, scaled.lam_given, run.problem, run.result, None,
                       0.0, norm_grids=grids, scaled=scaled)
    assert run.optimality is not None      # finish raised unless the last solve was optimal
    cert.update(base, knots_unpolished=cert["knots"], polish="off", polish_objective=None,
                method_certified=run.optimality.accepted,
                **_certificate(run.optimality, scaled, cert))
    if polish and deadline is not None and deadline.expired():
        cert["polish"] = "skipped (time limit)"
    elif polish:
        new, cert = _polish(net, layer, x, y, scaled, grids, new, cert, gauge, solver=solver,
                            deadline=deadline, settings=settings)
    cert["points_per_neuron"] = [len(p) for p in new.layers[layer].points]
    cert["seconds"] = time.perf_counter() - t0
    return new, cert, run.active, [], None


def _not_converged(run: ActiveSetResult, scaled) -> str:
    """Why the active set gave no certified point (round limit, stalled)."""
    check = run.optimality
    assert check is not None               # round limit and stalled follow a checked round
    return (f"the active set did not converge (status {run.status!r} after {run.rounds} "
            f"rounds, worst violation {check.worst:.3g} x lambda_ref "
            f"{external_reference(check, scaled):.3g} (tolerance {check.tolerance:g}), "
            f"multiplier noise {check.noise:.3g} (at most {NOISE_MAX:g}), points per neuron "
            f"{[int(m.sum()) for m in run.active]}; method='full' (--method full) solves the "
            "whole data grid at once)")


def _polish(net, layer, x, y, scaled, grids, new, cert, gauge, *, solver, deadline,
            settings=None):
    """The polishing step of `solve_layer_active`: first with the knots above
    POLISH_KNOT_RTOL * max |a| per neuron, then (if that is rejected) with every knot above
    the tolerance of `convex.knot_counts`; (model, certificate) of the first accepted, else
    the given ones with the reasons in cert["polish"]."""
    reasons, tried = [], []
    for rtol in (POLISH_KNOT_RTOL, None):
        keep = _knot_grids(new.layers[layer], grids, rtol, scaled)
        if any(all(np.array_equal(a, b) for a, b in zip(keep, t)) for t in tried):
            continue                                     # the same knots as before
        tried.append(keep)
        out = _polish_once(net, layer, x, y, scaled, grids, cert, gauge, keep, solver=solver,
                           deadline=deadline, settings=settings)
        if isinstance(out, tuple):
            out[1]["polish"] = ("accepted" + (f" (knots above {rtol:g} max |a|)" if rtol
                                              else " (knots above the knot tolerance)"))
            return out
        reasons.append(out)
    cert["polish"] = "rejected: " + "; ".join(reasons)
    return new, cert


def _polish_once(net, layer, x, y, scaled, grids, cert, gauge, keep, *, solver, deadline,
                 settings=None):
    """One polishing re-solve on the candidates `keep`: (model, certificate) if accepted,
    else the reason (a string)."""
    z, a_mat, c, yi, loss = scaled.z, scaled.a_mat, scaled.c, scaled.y, scaled.loss
    prob = problem_for(scaled, [g[m] for g, m in zip(grids, keep)], gauge, deadline)
    result, _, check = solve_and_check(prob, z, a_mat, c, yi, grids, keep, scaled.lam, solver,
                                       reference_scale(z, a_mat, c, yi, loss), settings)
    if result["status"] != "optimal":
        return f"solver status {result['status']!r}"
    unit = scaled.objective_unit
    objective = result["objective"] * unit
    tol = abs(cert["gap"] or 0.0) + abs(result["gap"] or 0.0) * unit \
        + 1e-12 * max(unit, abs(cert["objective"]))
    if objective - cert["objective"] > tol:
        return (f"objective {exact(objective)} above {exact(cert['objective'])} by more than "
                f"{tol:.3g}")
    if not check.accepted:
        return f"worst violation {check.worst:.3g}, noise {check.noise:.3g}"
    try:
        out, out_cert = finish(net, layer, x, y, scaled.lam_given, prob, result, None,
                               0.0, norm_grids=grids, scaled=scaled)
    except SolveFailed as exc:                       # the NumPy re-evaluation disagreed
        return str(exc)
    keys = ("method", "rounds", "candidate_points", "active_history", "knots_unpolished")
    out_cert.update({key: cert[key] for key in keys}, polish_objective=objective,
                    objective_unpolished=cert["objective"], method_certified=True,
                    **_certificate(check, scaled, out_cert))
    return out, out_cert


def external_reference(check: Optimality, scaled) -> float:
    """The largest lambda_ref_n in lambda's units (internal times T a_n r_n); lambda itself when
    no floor applied."""
    if np.array_equal(check.reference, scaled.lam_tv2):
        return scaled.lam_given
    return float(np.max(check.reference * scaled.unit * scaled.ar * scaled.zr))


UNDECIDED_FLOOR = 1e-9      # `_certificate`: inactive violations above max(10 noise, this)


def _certificate(check: Optimality, scaled, cert: dict | None = None) -> dict:
    """The optimality check's entries of the certificate, lambda_ref (`external_reference`)
    and the gap in the caller's units (internal ones times T^2); with `cert` (its
    knot_rule), the runs of inactive candidates violated beyond max(10 noise,
    UNDECIDED_FLOOR) (where a knot of the exact optimum may sit: accepted within the
    tolerance) added to the possible knots of the bracket (reference.convex._knots)."""
    extra = {}
    if cert is not None and cert.get("knot_rule") and check.active is not None:
        rule = dict(cert["knot_rule"])
        runs = violated_runs(check.violation, check.active,
                             max(10 * check.noise, UNDECIDED_FLOOR))
        bracket = [[c, p + r] for (c, p), r in zip(rule["knots_bracket"], runs)]
        rule.update(knots_bracket=bracket, undecided_candidates=runs,
                    decided=rule["decided"] and not any(runs))
        extra = {"knot_rule": rule, "knots_bracket": bracket}
    return {**extra,"worst_violation": check.worst, "violation_tolerance": check.tolerance,
            "violation_reference": external_reference(check, scaled),
            "optimality_condition": check.condition, "multiplier_noise": check.noise,
            "complementarity_gap": check.gap * scaled.objective_unit}
