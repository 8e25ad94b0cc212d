"""The scale and the verdict of a coefficient solve (reference.convex,
reference.convex._active_set).

Internal units (`Scaled`).  Three scales are divided out before a solve, each exactly:
- the outputs': for the squared loss y / T, c / T with T = max |y - c| (1 if y = c; c the
  bias after the layer); the logistic and cross-entropy losses fix the outputs' scale
  (T = 1).  The objective is T^2 times the internal one (objective unit U = T^2).
- the pre-activations', per neuron: z_n / r_n, r_n = 2^e the power of two nearest the
  spread of neuron n's points (`z_units`: its pre-activations, and the grid when the grid
  is given);
- the map after the layer, per neuron: A_n / a_n, a_n the power of two nearest ||A_n||_2
  (`column_units`; 1 for a zero column), so that neuron n's values are in the value unit
  q_n = T / a_n: sigma_n(z) = q_n sigma'_n(z / r_n).
Then sigma'_n's slopes are r_n / q_n times sigma_n's and its TV2 too, so the internal problem
has the TV2 weight lambda / (T a_n r_n) per neuron, the slope bound L_max a_n r_n / T, and
for BV2 the points 0 and 1 at 0 and 1 / r_n with the weight lambda / (T a_n)
(`Scaled.weights`: lambda enters the solver as lambda / (T w_ref), w_ref the power of two
nearest the geometric mean of a_n r_n, so that every weight is near 1).
Laws.  With y - c, lambda and L_max multiplied by s > 0, the optimum's splines are
multiplied by s, its objective by s^2, and the internal problem is the same up to rounding
(3 ulp; bit for bit when s is a power of two).  With the pre-activations of neuron n, its
grid and lambda multiplied by r (the same r for every neuron, as lambda is one number; per
neuron r_n when lambda = 0), the optimum is the same function of z / r: the same objective,
the knots at r times theirs, the same status; with A multiplied by c and the values by
1 / c, likewise.  With r and c powers of two the internal problem is bit for bit the same.
BV2 has no such law: |sigma(0)| + |sigma(1)| looks at the fixed points 0 and 1 of z; its
internal problem is still exact (the points at 0 and 1 / r_n).  Every tolerance of the
solve is stated in internal units, where 1 is the problem's own scale: objective unit U,
value unit q_n, slope unit q_n / r_n (`Scaled.slope_unit`).

Verdict (`conclude`).  "optimal" is earned by one of two certificates, each at
GAP_RTOL * max(F, U) (F the NumPy re-evaluation of the returned model):
- "dual bound": F - LB, LB a lower bound on the optimum built in NumPy from the point's
  loss gradient (reference.convex._dual_bound: Fenchel duality, also with a Lip bound).  Where
  LB exists it decides: a solver's word never overrules it;
- "solver", only where no LB exists (a projected gradient outside the loss conjugate's
  domain): the method's own certificate checked in NumPy (the active set's optimality
  condition at every candidate and its complementarity gap) or, for the full method,
  CLARABEL's primal - dual gap from a solve with its default settings (a retry with changed
  regularisation or looser tolerances is never trusted on its own word), with every gap at
  the tolerance, and F no higher than any cheap feasible point's (`candidates`: the zero
  spline and the best affine splines) by more than the tolerance.
Otherwise the best feasible point known is returned as "not_optimal" (a cheap candidate beat
the solver's point, or no certificate holds at the tolerance) or "time_limit", with its
objective (an upper bound) and LB where available, by raising SolveNotCertified.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np

from reference._numerics import EPS
from reference.convex._certificate import SolveCertificate
from reference.convex._dual_bound import _affine_apply, _affine_gram, _solve_gram, dual_bound
from reference.convex._knots import knot_rule
from reference.convex._problem import (
    RegWeights,
    _values_at,
    build_model,
    knot_counts,
    numpy_objective,
)
from reference.exceptions import SolveNotCertified
from reference.nn._losses import get_loss
from reference.nn._regularisers import get as get_regulariser

GAP_RTOL = 1e-6          # "optimal": every gap <= GAP_RTOL * max(F, U)
LASSO_SWEEPS = 2000      # coordinate-descent sweeps of the BV2 affine candidate (at most)


def output_scale(loss: str, y: np.ndarray, c: np.ndarray) -> float:
    """T = max |y - c| for the squared loss (a loss whose record is output_scaled; 1 if
    y = c), else 1."""
    if not get_loss(loss).output_scaled:
        return 1.0
    spread = float(np.max(np.abs(y - c[None, :]))) if y.size else 0.0
    return spread if spread > 0 else 1.0


def nearest_power_of_two(x: float) -> int:
    """e with 2^e the power of two nearest x > 0 (in ratio: x / 2^e in [1/sqrt 2, sqrt 2)),
    clipped to the normal range [-1022, 1023]; 0 for x = 0 or x not finite."""
    if not (np.isfinite(x) and x > 0):
        return 0
    mantissa, e = np.frexp(x)                        # x = mantissa 2^e, mantissa in [1/2, 1)
    return int(np.clip(e if mantissa >= np.sqrt(0.5) else e - 1, -1022, 1023))


def z_units(z: np.ndarray, grids: list | None = None) -> np.ndarray:
    """r (N,): per neuron 2^e_n, e_n = `nearest_power_of_two` of the spread (max - min) of
    its pre-activations z[:, n] together with grids[n] (a grid given by the caller, None for
    the data grid, whose extra points 0 and 1 are not the data's scale); of max |.| when the
    spread is 0; 1 when both are 0.  Multiplying z (and a given grid) by a power of two
    multiplies r by it exactly, so the internal z / r is the same bit for bit."""
    out = []
    for n in range(z.shape[1]):
        pts = z[:, n] if grids is None else np.concatenate([z[:, n], grids[n]])
        spread = float(np.ptp(pts)) if pts.size else 0.0
        if not (np.isfinite(spread) and spread > 0):
            spread = float(np.abs(pts).max(initial=0.0))
        out.append(np.ldexp(1.0, nearest_power_of_two(spread)))
    return np.array(out)


def column_units(a_mat: np.ndarray) -> np.ndarray:
    """a (N,): per column of A the power of two nearest its 2-norm (1 for a zero column)."""
    return np.array([np.ldexp(1.0, nearest_power_of_two(float(np.linalg.norm(col))))
                     for col in a_mat.T])


def _geometric_power_of_two(units: np.ndarray) -> float:
    """The power of two nearest the geometric mean of powers of two."""
    return float(np.ldexp(1.0, int(np.round(np.mean(np.frexp(units)[1] - 1)))))


@dataclass
class Scaled:
    """The problem in internal units (module docstring): z (M, N) = z_given / zr, a_mat
    (N_L, N) = A / ar (columns), c (N_L,) / T, y / T (the loss's form), lam = lambda /
    (T w_ref) (the value of the solver's lambda parameter; the penalties are
    `weights`.penalties(lam)), lip_max (N,) = L_max ar zr / T or None, unit T
    (`output_scale`), zr (N,) the powers of two of `z_units`, ar (N,) those of
    `column_units`; lam_given, lip_given: lambda and L_max as given."""
    z: np.ndarray
    a_mat: np.ndarray
    c: np.ndarray
    y: np.ndarray
    lam: float
    lip_max: np.ndarray | None
    unit: float
    loss: str
    reg: str
    lam_given: float
    zr: np.ndarray
    ar: np.ndarray
    lip_given: float | None = None

    @classmethod
    def build(cls, z, a_mat, c, y, loss, reg, lam, lip_max, zr=None, ar=None):
        """From the caller's units; zr, ar None: no such scaling (all 1)."""
        t = output_scale(loss, y, c)
        zr = np.ones(z.shape[1]) if zr is None else np.asarray(zr, dtype=np.float64)
        ar = np.ones(z.shape[1]) if ar is None else np.asarray(ar, dtype=np.float64)
        y_in = y / t if get_loss(loss).output_scaled else y
        return cls(z / zr, a_mat / ar, c / t, y_in, 0.0, None if lip_max is None
                   else lip_max * ar * zr / t, t, loss, reg, 0.0, zr, ar,
                   lip_max).with_lam(lam)

    def with_lam(self, lam: float) -> Scaled:
        """The same problem with lambda = lam (caller's units)."""
        return dataclasses.replace(self, lam=lam / self.unit / self.w_ref, lam_given=lam)

    @property
    def w_ref(self) -> float:
        return _geometric_power_of_two(self.ar * self.zr)

    @property
    def objective_unit(self) -> float:
        return self.unit ** 2

    @property
    def value_unit(self) -> np.ndarray:
        """(N,) T / a_n: an internal value of 1 in the caller's units."""
        return self.unit / self.ar

    @property
    def slope_unit(self) -> np.ndarray:
        """(N,) T / (a_n r_n): an internal slope of 1 in the caller's units."""
        return self.value_unit / self.zr

    @property
    def weights(self) -> RegWeights:
        """TV2 weight w_ref / (a_n r_n), point weight w_ref / a_n per neuron, BV2's points 0
        and 1 / r_n."""
        extra = np.array(get_regulariser(self.reg).extra_points, dtype=np.float64)
        return RegWeights(self.w_ref / (self.ar * self.zr), self.w_ref / self.ar,
                          [extra / r for r in self.zr])

    @property
    def lam_tv2(self) -> np.ndarray:
        """(N,) the internal TV2 weight lambda / (T a_n r_n) of every neuron."""
        return self.weights.penalties(self.lam)[0]

    @property
    def lam_points(self) -> np.ndarray:
        """(N,) the internal weight lambda / (T a_n) of BV2's point terms."""
        return self.weights.penalties(self.lam)[1]

    @property
    def points(self) -> list:
        return self.weights.points

    @property
    def z_given(self) -> np.ndarray:
        return self.z * self.zr

    def internal_pieces(self, layer, grids: list) -> list:
        """A solved layer in the caller's units (knot form, or uniform on `grids`, the
        internal grids) as internal pieces [(grid_n, values_n)]."""
        if hasattr(layer, "points"):
            return [(p / r, v / q) for p, v, r, q in zip(layer.points, layer.values, self.zr,
                                                          self.value_unit)]
        coeffs = layer.spline.coefficients
        return [(g, coeffs[n] / q) for n, (g, q) in enumerate(zip(grids, self.value_unit))]

    def internal_grids(self, grids: list) -> list:
        """The caller's grids per neuron divided by zr (exact)."""
        return [g / r for g, r in zip(grids, self.zr)]

    def tolerance(self, objective: float) -> float:
        """GAP_RTOL * max(|F|, U) in external units."""
        return GAP_RTOL * max(abs(objective), self.objective_unit)


# ------------------------------------------------------------------- cheap feasible points
def candidates(scaled: Scaled, grids: list) -> list:
    """[(name, pieces)]: feasible points known without a solve, in internal units, each as
    per neuron (grid, values at the grid): the zero spline, and for the squared loss the
    affine spline of least squares (R-free; for BV2 also the affine spline of least
    squares + lambda (|sigma(0)| + |sigma(1)|), a lasso in the values at BV2's two points
    (0 and p_n = 1 / r_n internally) solved by coordinate descent and its sign pattern).
    With L_max the slopes are clipped to [-L_max, L_max] per neuron (still feasible).  An
    affine spline is given by its values at its grid's two ends only (one piece): on the
    whole grid, rounding gave it slope changes of ~1e-11 relative, which a huge lambda
    multiplies (TV2 at lambda = 1e12: 13 above the optimum it is)."""
    out = [("zero spline", [(g, np.zeros(len(g))) for g in grids])]
    if not get_loss(scaled.loss).output_scaled:        # least squares: a squared loss
        return out
    z, a_mat, n = scaled.z, scaled.a_mat, scaled.z.shape[1]
    residual = scaled.y - scaled.c[None, :]
    middle = (z.max(axis=0) + z.min(axis=0)) / 2
    centred = (np.ones_like(z), z - middle)      # sigma_n(t) = c_n + b_n (t - middle_n)
    cb = _solve_gram(_affine_gram(a_mat, centred), _affine_apply(residual, a_mat, centred))
    fits = [("affine (least squares)", np.concatenate([cb[:n] - cb[n:] * middle, cb[n:]]))]
    if get_regulariser(scaled.reg).extra_points:
        p1 = np.array([p[1] for p in scaled.points])
        basis = (1.0 - z / p1, z / p1)           # sigma_n(t) = P_n (1 - t / p_n) + Q_n t / p_n
        pq = _lasso(_affine_gram(a_mat, basis), _affine_apply(residual, a_mat, basis),
                    np.concatenate([scaled.lam_points] * 2))
        fits.append(("affine (least squares + lambda BV2)",
                     np.concatenate([pq[:n], (pq[n:] - pq[:n]) / p1])))
    for name, theta in fits:                     # theta = (sigma_n(0), slope_n)
        p, slope = theta[:n], theta[n:]
        if scaled.lip_max is not None:
            slope = np.clip(slope, -scaled.lip_max, scaled.lip_max)
        ends = [g[[0, -1]] for g in grids]       # one piece: TV2 exactly 0 (build_model)
        out.append((name, [(e, p[k] + slope[k] * e) for k, e in enumerate(ends)]))
    return out


def _lasso(gram: np.ndarray, b: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """argmin 1/2 x^T G x - b^T x + sum_j lam_j |x_j| (G = F^T F; lam a number or one per
    coordinate): coordinate descent, then the
    linear system of its sign pattern, kept when it is consistent (any x is feasible: the
    caller compares objectives)."""
    x = np.zeros(len(b))
    diag = np.diag(gram)
    for _ in range(LASSO_SWEEPS):
        change = 0.0
        for j in np.flatnonzero(diag > 0):
            rho = b[j] - gram[j] @ x + diag[j] * x[j]
            new = np.sign(rho) * max(abs(rho) - lam[j], 0.0) / diag[j]
            change = max(change, abs(new - x[j]))
            x[j] = new
        if change <= 4 * EPS * max(np.abs(x).max(initial=0.0), EPS):
            break
    support = np.flatnonzero(x)
    if len(support):
        sign = np.sign(x[support])
        try:
            exact = np.linalg.solve(gram[np.ix_(support, support)],
                                    b[support] - lam[support] * sign)
        except np.linalg.LinAlgError:
            return x
        if np.all(np.sign(exact) == sign):
            x = x.copy()
            x[support] = exact
    return x


# ------------------------------------------------------------------------------ verdict
def spline_values_at(pieces: list, z: np.ndarray) -> np.ndarray:
    """sigma_n(z_mn) (M, N) of the splines (grid_n, values_n), continued linearly."""
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
    `dual_bound` at the solver's point and at the lowest one (None where neither has one):
    where it exists it alone certifies.  Returns (model, certificate) with status "optimal";
    otherwise raises SolveNotCertified carrying the point.

    Returns
    -------
    model : Network
        The returned point.
    certificate : SolveCertificate
        The solver's certificate `cert` completed by the verdict (candidates, lower_bound,
        lower_bound_note, certified_by, gap_tolerance, returned_point, objective_unit, unit,
        solver_objective, status).
    """
    points = []                                     # (objective, name, model, sigma at z)
    for name, pieces in candidates(scaled, grids) + list(extra_points):
        model = build_model(net, layer, pieces, scaled.value_unit, uniform, scaled.zr)
        points.append((numpy_objective(model, layer, x, y, scaled.loss, lam, scaled.reg),
                       name, model, spline_values_at(pieces, scaled.z)))
    others = min(points, key=lambda p: p[0])
    base = SolveCertificate(cert)
    if new is not None:
        points.append((cert["objective_check"], "solver", new,
                       new.layers[layer].forward(scaled.z_given)[0] / scaled.value_unit))
    lowest = min(points, key=lambda p: p[0])
    computed = [dual_bound(scaled, grids, p[3]) for p in {id(p): p for p in
                                                            (lowest, points[-1])}.values()]
    bounds = [b for b in computed if b is not None]
    lower = max(bounds) * scaled.objective_unit if bounds else None
    why_no_bound = None if lower is not None else (
        "the loss gradient, projected to be orthogonal to the shifts the regulariser "
        "ignores, leaves the conjugate's domain")
    gaps = [abs(g) for g in (base.get("gap"), base.get("complementarity_gap"))
            if g is not None]
    solver_ok = (new is not None and stopped is None and base.get("method_certified")
                 and cert["objective_check"] <= others[0] + scaled.tolerance(others[0])
                 and all(g <= scaled.tolerance(cert["objective_check"]) for g in gaps))
    if stopped is None and lower is not None \
            and lowest[0] - lower <= scaled.tolerance(lowest[0]):
        chosen, by = lowest, "dual bound"
    elif solver_ok and lower is None:
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
        knots, tols, lips = knot_counts(best_model.layers[layer], scaled.slope_unit)
        exact_point = best_name.startswith(("zero", "affine"))     # no slope change at all
        rule = knot_rule(best_model.layers[layer], tols,
                         np.zeros(len(tols)) if exact_point else None)
        base.update(objective=best_f, objective_check=best_f, knots=rule["knots"],
                    knots_bracket=rule["knots_bracket"], knot_rule=rule,
                    knot_tolerance=tols.tolist(), lipschitz=lips.tolist(),
                    grid_points=[len(p) for p in getattr(best_model.layers[layer], "points",
                                                         grids)])
    if by is not None:
        base["status"] = "optimal"
        return best_model, base
    base["status"] = "time_limit" if stopped else "not_optimal"
    why = stopped or base.get("rejected") or _why_not(new, cert, others, gaps, scaled, lower)
    raise SolveNotCertified(
        f"solve: not certified optimal ({why}); best feasible point: {best_name}, objective "
        f"{best_f:.10g}" + ("" if lower is None else f", lower bound {lower:.10g}"),
        copy.deepcopy(best_model), base)


def _why_not(new, cert, others, gaps, scaled, lower) -> str:
    """The reason the solver's point was not certified, for the message."""
    if new is None:
        return "the solver gave no point"
    solver_f = cert["objective_check"]
    tol = scaled.tolerance(solver_f)
    if solver_f > others[0] + scaled.tolerance(others[0]):
        return (f"the {others[1]} has objective {others[0]:.10g}, below the solver's "
                f"{solver_f:.10g} by more than the tolerance, and no bound certifies it")
    if lower is not None:
        return (f"the dual lower bound {lower:.10g} is below the objective {solver_f:.10g} by "
                f"more than the tolerance {tol:.3g}")
    if not cert.get("method_certified"):
        return ("the method's certificate does not hold (" + cert.get(
            "method_note", "its optimality check failed") + ")")
    return f"gaps {', '.join(f'{g:.3g}' for g in gaps)} above the tolerance {tol:.3g}"
