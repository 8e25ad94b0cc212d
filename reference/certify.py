"""The scale and the verdict of a coefficient solve (reference.convex, reference.active_set).

Internal units (`Scaled`).  The squared loss is solved on y / T, c / T, lambda / T and
L_max / T with T = max |y - c| (1 if y = c; c the bias after the layer): sigma =
T sigma_internal and the objective is T^2 times the internal one.  With y - c, lambda and
L_max multiplied by any s > 0, the optimum's splines are multiplied by s, its objective by
s^2 and its knots are unchanged, and the internal problem is the same up to rounding (3 ulp;
bit for bit when s is a power of two), so the solver takes the same path at every scale.
The logistic and cross-entropy losses fix the outputs' scale (T = 1).  Every tolerance of
the solve is stated in internal units, where 1 is the problem's own scale (objective unit
U = T^2).

Verdict (`conclude`).  "optimal" is earned by one of two certificates, each at
GAP_RTOL * max(F, U) (F the NumPy re-evaluation of the returned model):
- "dual bound": F - LB, LB a lower bound on the optimum built in NumPy from the point's
  loss gradient (`dual_bound`, Fenchel duality; not with a Lip bound);
- "solver": the method's own certificate (CLARABEL's primal - dual gap; for the active set
  also the optimality condition at every candidate and its complementarity gap), with every
  gap at the tolerance, and F no higher than any cheap feasible point's (`candidates`: the
  zero spline and the best affine splines) by more than the tolerance.
Otherwise the best feasible point known is returned as "not_optimal" (a cheap candidate beat
the solver's point, or no certificate holds at the tolerance) or "time_limit", with its
objective (an upper bound) and LB where available, by raising SolveNotCertified.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from scipy.special import xlogy

from reference.errors import SolveNotCertified
from reference.losses import loss_and_grad
from reference.regularisers import get as get_regulariser

GAP_RTOL = 1e-6          # "optimal": every gap <= GAP_RTOL * max(F, U)
LASSO_SWEEPS = 2000      # coordinate-descent sweeps of the BV2 affine candidate (at most)
EPS = np.finfo(np.float64).eps


def output_scale(loss: str, y: np.ndarray, c: np.ndarray) -> float:
    """T = max |y - c| for the squared loss (1 if y = c), else 1."""
    if loss != "squared":
        return 1.0
    spread = float(np.max(np.abs(y - c[None, :]))) if y.size else 0.0
    return spread if spread > 0 else 1.0


@dataclass
class Scaled:
    """The problem in internal units: z (M, N), a_mat (N_L, N), c (N_L,) / T, y / T (the
    loss's form), lam / T, lip_max / T, unit T (`output_scale`); objective_unit U = T^2;
    lam_given: lambda as given (external units)."""
    z: np.ndarray
    a_mat: np.ndarray
    c: np.ndarray
    y: np.ndarray
    lam: float
    lip_max: float | None
    unit: float
    loss: str
    reg: str
    lam_given: float

    @classmethod
    def build(cls, z, a_mat, c, y, loss, reg, lam, lip_max):
        t = output_scale(loss, y, c)
        y_in = y / t if loss == "squared" else y
        return cls(z, a_mat, c / t, y_in, lam / t, None if lip_max is None else lip_max / t,
                   t, loss, reg, lam)

    @property
    def objective_unit(self) -> float:
        return self.unit ** 2

    def tolerance(self, objective: float) -> float:
        """GAP_RTOL * max(|F|, U) in external units."""
        return GAP_RTOL * max(abs(objective), self.objective_unit)


# ------------------------------------------------------------------- cheap feasible points
def candidates(scaled: Scaled, grids: list) -> list:
    """[(name, pieces)]: feasible points known without a solve, in internal units, each as
    per neuron (grid, values at the grid): the zero spline, and for the squared loss the
    affine spline of least squares (R-free; for BV2 also the affine spline of least
    squares + lambda (|sigma(0)| + |sigma(1)|), a lasso in (sigma_n(0), sigma_n(1)) solved
    by coordinate descent and its sign pattern).  With L_max the slopes are clipped to
    [-L_max, L_max] (still feasible)."""
    out = [("zero spline", [(g, np.zeros(len(g))) for g in grids])]
    if scaled.loss != "squared":
        return out
    z, a_mat, n = scaled.z, scaled.a_mat, scaled.z.shape[1]
    residual = scaled.y - scaled.c[None, :]
    middle = (z.max(axis=0) + z.min(axis=0)) / 2
    centred = (np.ones_like(z), z - middle)      # sigma_n(t) = c_n + b_n (t - middle_n)
    cb = _solve_gram(_affine_gram(a_mat, centred), _affine_apply(residual, a_mat, centred))
    fits = [("affine (least squares)", np.concatenate([cb[:n] - cb[n:] * middle, cb[n:]]))]
    if get_regulariser(scaled.reg).extra_points:
        basis = (1.0 - z, z)                     # sigma_n(t) = p_n (1 - t) + q_n t
        pq = _lasso(_affine_gram(a_mat, basis), _affine_apply(residual, a_mat, basis),
                    scaled.lam)
        fits.append(("affine (least squares + lambda BV2)",
                     np.concatenate([pq[:n], pq[n:] - pq[:n]])))
    for name, theta in fits:                     # theta = (sigma_n(0), slope_n)
        p, slope = theta[:n], theta[n:]
        if scaled.lip_max is not None:
            slope = np.clip(slope, -scaled.lip_max, scaled.lip_max)
        out.append((name, [(g, p[k] + slope[k] * g) for k, g in enumerate(grids)]))
    return out


def _affine_gram(a_mat: np.ndarray, basis: tuple) -> np.ndarray:
    """K^T K (2N, 2N) for the map K: theta -> outputs (M, N_L) of the splines
    sigma_n = theta_n f0_n + theta_{N+n} f1_n, f0, f1 = basis (each (M, N) at the samples):
    entry ((a, n), (b, n')) = (A^T A)_{n n'} sum_m f_a(z_mn) f_b(z_mn')."""
    ata = a_mat.T @ a_mat
    return np.block([[ata * (fa.T @ fb) for fb in basis] for fa in basis])


def _solve_gram(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """A least-squares solution of gram x = rhs, the columns scaled to unit diagonal first
    (the normal equations square the conditioning; the scaling removes the columns' units)."""
    d = np.sqrt(np.diag(gram))
    d[d == 0] = 1.0
    return np.linalg.lstsq(gram / np.outer(d, d), rhs / d, rcond=None)[0] / d


def _affine_apply(r: np.ndarray, a_mat: np.ndarray, basis: tuple) -> np.ndarray:
    """K^T r (2N,) for r (M, N_L) (see `_affine_gram`)."""
    w = r @ a_mat
    return np.concatenate([(w * f).sum(axis=0) for f in basis])


def _lasso(gram: np.ndarray, b: np.ndarray, lam: float) -> np.ndarray:
    """argmin 1/2 x^T G x - b^T x + lam ||x||_1 (G = F^T F): coordinate descent, then the
    linear system of its sign pattern, kept when it is consistent (any x is feasible: the
    caller compares objectives)."""
    x = np.zeros(len(b))
    diag = np.diag(gram)
    for _ in range(LASSO_SWEEPS):
        change = 0.0
        for j in np.flatnonzero(diag > 0):
            rho = b[j] - gram[j] @ x + diag[j] * x[j]
            new = np.sign(rho) * max(abs(rho) - lam, 0.0) / diag[j]
            change = max(change, abs(new - x[j]))
            x[j] = new
        if change <= 4 * EPS * max(np.abs(x).max(initial=0.0), EPS):
            break
    support = np.flatnonzero(x)
    if len(support):
        sign = np.sign(x[support])
        try:
            exact = np.linalg.solve(gram[np.ix_(support, support)], b[support] - lam * sign)
        except np.linalg.LinAlgError:
            return x
        if np.all(np.sign(exact) == sign):
            x = x.copy()
            x[support] = exact
    return x


# ------------------------------------------------------------------------ the dual bound
def dual_bound(scaled: Scaled, grids: list, sigma_at_z: np.ndarray) -> float | None:
    """A lower bound on the optimum (internal units) from the point with values sigma_at_z
    (M, N), by Fenchel duality: for r (M, N_L) with w = r A,

        F(sigma) >= sum_m (r_m . c - E*(r_m))   whenever |<w, sigma(z)>| <= lambda R(sigma)
                                                for every spline sigma of the problem,

    E* the conjugate of the loss (squared: r.y + |r|^2 / 2; logistic: the negative entropy of
    q = y + r in [0, 1]; cross-entropy: sum q log q, q = onehot(y) + r in the simplex).  The
    condition reads, per neuron, |phi_n(tau)| <= lambda at the grid's interior points,
    phi_n(tau) = sum_m w_mn (z_mn - tau)_+ (`active_set.knot_correlation`), with for TV2
    sum_m w_mn = sum_m w_mn z_mn = 0 (r is projected onto these 2N equations; for
    cross-entropy with A centred over the outputs, which keeps sum_l r_ml = 0) and for BV2
    the points 0 and 1 as samples of weights v0, v1 (`active_set.bv2_end_weights`),
    |v| <= lambda.  r is the loss gradient at the point, multiplied by
    t = min(1, lambda / max(|phi|, |v|)) (rounding of phi allowed for); at the optimum t = 1
    and the bound equals the optimum.  None with a Lip bound (not derived), or when the
    projected r leaves the conjugate's domain."""
    from reference.active_set import bv2_end_weights, knot_correlation

    if scaled.lip_max is not None:
        return None
    z, a_mat, loss = scaled.z, scaled.a_mat, scaled.loss
    _, r = loss_and_grad(loss, sigma_at_z @ a_mat.T + scaled.c[None, :], scaled.y)
    bv2 = bool(get_regulariser(scaled.reg).extra_points)
    gamma = 4.0 * (r.size + 4) * EPS
    if not bv2:
        r = _project_affine(r, z, a_mat - a_mat.mean(axis=0) if loss == "xent" else a_mat)
    w = r @ a_mat                                                        # (M, N)
    peak, slack = 0.0, 0.0
    for k, g in enumerate(grids):
        pts, wts = z[:, k], w[:, k]
        if bv2:
            v = np.array(bv2_end_weights(pts, wts))
            peak = max(peak, float(np.abs(v).max()))
            pts, wts = np.concatenate([pts, [0.0, 1.0]]), np.concatenate([wts, v])
        spread = float(max(pts.max(), g.max()) - min(pts.min(), g.min()))
        slack = max(slack, gamma * float(np.abs(wts).sum()) * spread)
        if len(g) > 2:
            peak = max(peak, float(np.abs(knot_correlation(pts, wts, g[1:-1])).max()))
    peak += slack
    t = 1.0 if peak <= scaled.lam else (scaled.lam / peak if peak > 0 else 1.0)
    return _conjugate_bound(t * r, scaled, gamma)


def _project_affine(r: np.ndarray, z: np.ndarray, a_mat: np.ndarray) -> np.ndarray:
    """r minus its least-squares component violating sum_m r_m . A_n = 0 and
    sum_m (r_m . A_n) z_mn = 0 for every n (K^T r = 0 for the affine basis (1, z), taken
    about the middle of each neuron's range; twice, for accuracy)."""
    centred = z - (z.max(axis=0) + z.min(axis=0)) / 2
    basis = (np.ones_like(z), centred)
    gram = _affine_gram(a_mat, basis)
    n = z.shape[1]
    for _ in range(2):
        mu = _solve_gram(gram, _affine_apply(r, a_mat, basis))
        r = r - (mu[None, :n] + mu[None, n:] * centred) @ a_mat.T
    return r


def _conjugate_bound(r: np.ndarray, scaled: Scaled, gamma: float) -> float | None:
    """sum_m (r_m . c - E*(r_m)) minus a rounding allowance; None outside E*'s domain."""
    c, y, loss = scaled.c[None, :], scaled.y, scaled.loss
    if loss == "squared":
        terms = np.concatenate([(r * (c - y)).ravel(), -0.5 * (r * r).ravel()])
    else:
        q = y + r if loss == "logistic" else r + np.eye(r.shape[1])[y]
        if np.any(q < 0) or np.any(q > 1) or (loss == "xent" and np.abs(q.sum(axis=1) - 1)
                                             .max(initial=0.0) > gamma):
            return None
        entropy = xlogy(q, q) + (xlogy(1 - q, 1 - q) if loss == "logistic" else 0.0)
        terms = np.concatenate([(r * c).ravel(), -entropy.ravel()])
    return float(terms.sum() - gamma * np.abs(terms).sum())


# ------------------------------------------------------------------------------ verdict
def spline_values_at(pieces: list, z: np.ndarray) -> np.ndarray:
    """sigma_n(z_mn) (M, N) of the splines (grid_n, values_n), continued linearly."""
    from reference.convex import _values_at

    return np.stack([_values_at(g, v, z[:, k]) for k, (g, v) in enumerate(pieces)], axis=1)


def conclude(net, layer, x, y, lam, scaled: Scaled, grids, uniform, new, cert, *,
             stopped: str | None = None, extra_points=()):
    """The verdict on a solve (module docstring).  new, cert: the solver's model and
    certificate (new None when it gave no accepted point: stopped at the time limit, or its
    objective disagreed with NumPy, cert["rejected"]); cert["method_certified"]: whether the
    method's own certificate holds; stopped: a reason (e.g. the time limit) that makes the
    result "time_limit"; extra_points: [(name, pieces)] further feasible points in internal
    units (the active set's last restricted solution, a rejected solver point).  The point
    returned is the solver's when its certificate holds and no other point is lower by more
    than the tolerance, else the lowest point known; the lower bound is the largest of
    `dual_bound` at the solver's point and at the lowest one.  Returns (model, certificate)
    with status "optimal"; otherwise raises SolveNotCertified carrying the point."""
    from reference.convex import build_model, knot_counts, numpy_objective

    points = []                                     # (objective, name, model, sigma at z)
    for name, pieces in candidates(scaled, grids) + list(extra_points):
        model = build_model(net, layer, pieces, scaled.unit, uniform)
        points.append((numpy_objective(model, layer, x, y, scaled.loss, lam, scaled.reg),
                       name, model, spline_values_at(pieces, scaled.z)))
    others = min(points, key=lambda p: p[0])
    base = dict(cert)
    if new is not None:
        points.append((cert["objective_check"], "solver", new,
                       new.layers[layer].forward(scaled.z)[0] / scaled.unit))
    lowest = min(points, key=lambda p: p[0])
    bounds = [dual_bound(scaled, grids, p[3]) for p in {id(p): p for p in
                                                          (lowest, points[-1])}.values()]
    lower = None if None in bounds else max(bounds) * scaled.objective_unit
    why_no_bound = None if lower is not None else (
        "not derived with a Lip bound" if scaled.lip_max is not None else
        "the loss gradient, projected to be orthogonal to affine shifts, leaves the "
        "conjugate's domain")
    gaps = [abs(g) for g in (base.get("gap"), base.get("complementarity_gap"))
            if g is not None]
    solver_ok = (new is not None and stopped is None and base.get("method_certified")
                 and cert["objective_check"] <= others[0] + scaled.tolerance(others[0])
                 and all(g <= scaled.tolerance(cert["objective_check"]) for g in gaps))
    if stopped is None and lower is not None \
            and lowest[0] - lower <= scaled.tolerance(lowest[0]):
        chosen, by = lowest, "dual bound"
    elif solver_ok:
        chosen, by = points[-1], "solver"
    else:
        chosen, by = lowest, None
    best_f, best_name, best_model, _ = chosen
    base.update(candidates=[{"point": p[1], "objective": p[0]} for p in points
                            if p[1] != "solver"],
                lower_bound=lower, lower_bound_note=why_no_bound, certified_by=by,
                gap_tolerance=scaled.tolerance(best_f),
                returned_point=best_name, objective_unit=scaled.objective_unit,
                unit=scaled.unit,
                solver_objective=None if new is None else cert["objective_check"])
    if best_name != "solver":
        knots, tols, lips = knot_counts(best_model.layers[layer], scaled.unit)
        base.update(objective=best_f, objective_check=best_f, knots=knots.tolist(),
                    knot_tolerance=tols.tolist(), lipschitz=lips.tolist(),
                    grid_points=[len(p) for p in getattr(best_model.layers[layer], "points",
                                                         grids)])
    if by is not None:
        base["status"] = "optimal"
        return best_model, base
    base["status"] = "time_limit" if stopped else "not_optimal"
    why = stopped or base.get("rejected") or _why_not(new, cert, others, gaps, scaled)
    raise SolveNotCertified(
        f"solve: not certified optimal ({why}); best feasible point: {best_name}, objective "
        f"{best_f:.10g}" + ("" if lower is None else f", lower bound {lower:.10g}"),
        copy.deepcopy(best_model), base)


def _why_not(new, cert, others, gaps, scaled) -> str:
    """The reason the solver's point was not certified, for the message."""
    if new is None:
        return "the solver gave no point"
    solver_f = cert["objective_check"]
    tol = scaled.tolerance(solver_f)
    if solver_f > others[0] + scaled.tolerance(others[0]):
        return (f"the {others[1]} has objective {others[0]:.10g}, below the solver's "
                f"{solver_f:.10g} by more than the tolerance, and no bound certifies it")
    if not cert.get("method_certified"):
        return "the method's certificate does not hold"
    return (f"gaps {', '.join(f'{g:.3g}' for g in gaps)} above the tolerance {tol:.3g} and "
            "no dual bound within it")
