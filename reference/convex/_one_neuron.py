"""The data-grid coefficient problem of a layer with ONE spline neuron, by an active set of
knots whose restricted problems do not grow with the number of samples
(``reference.convex.solve_layer(method="one_neuron")``, the default for such a layer).
The squared loss is compressed exactly (below); the logistic and cross-entropy losses by
proximal Newton steps whose quadratic models are compressed the same way (`NewtonProblem`).

With one neuron the outputs are f_m = a sigma(z_m) + c (a = A[:, 0]), and the squared loss
separates:

    1/2 sum_m |a sigma(z_m) + c - y_m|^2 = alpha/2 sum_m (sigma(z_m) - t_m)^2 + C0,
    alpha = |a|^2,  t_m = a . (y_m - c) / alpha,  C0 = 1/2 sum_m |y_m - c - a t_m|^2 .

On a restricted grid S_0 < ... < S_{K-1} (the active candidates of the data grid) the spline
is sigma(z) = u_j + s_j (z - S_j) on piece j (the end pieces continued), and the samples of
piece j enter only through six sums: with d_m = z_m - S_j, their count n_j, mean offset mu_j,
mean target tbar_j, V_j = sum (d - mu_j)^2, beta_j = sum (d - mu_j)(t - tbar_j) / V_j and the
residual rho_j = sum (t - tbar_j - beta_j (d - mu_j))^2,

    sum_{m in j} (u_j + s_j d_m - t_m)^2
        = n_j (u_j + mu_j s_j - tbar_j)^2 + V_j (s_j - beta_j)^2 + rho_j      (exactly).

So a restricted problem has 2K - 1 unknowns and 2K - 2 squared terms whatever M is
(`CompressedProblem`, a `CoefficientProblem` with the same variables, constraints,
regulariser, slope bound and gauge pin, and the same `solve` / `splines`); the sums are
centred per piece (two passes of np.bincount over the samples, no cancellation).  A round
costs O(M) for the sums and the optimality check over all M candidates
(reference.convex._active_set.optimality: the KKT system of the full data-grid problem), and
a CLARABEL solve of size O(K).  The rounds, the rules for adding and dropping candidates,
the polishing on the knots alone and the certificate are the active set's
(reference.convex._active_set); the verdict is reference.convex._certify.conclude's (the
NumPy dual bound).
"""
from __future__ import annotations

import time

import numpy as np
from scipy.special import expit, softmax

from reference.convex import _active_set as active_set
from reference.convex._problem import CoefficientProblem, _evaluation, finish
from reference.exceptions import SolveFailed
from reference.nn._losses import get_loss, loss_and_grad
from reference.nn._network import KnotSplineActivation
from reference.nn._regularisers import get as get_regulariser

LOSSES = ("squared", "logistic", "xent")     # squared: compressed exactly; others: Newton
SIZE_FACTOR = 0.1            # problem_size of this method: samples x SIZE_FACTOR (see `size`)


def supports(a_mat: np.ndarray, loss: str, reg: str, grid) -> bool:
    """Whether `solve_layer` may use this method: one neuron whose map A (N_L, 1) after it is
    not zero, a loss of LOSSES, the data grid, a regulariser whose extra points the active
    set's certificate handles (TV2, BV2)."""
    seen = np.ptp(a_mat) if get_loss(loss).shift_invariant else np.abs(a_mat).max()
    return (a_mat.shape[1] == 1 and bool(seen > 0) and loss in LOSSES
            and isinstance(grid, str) and grid == "data"
            and get_regulariser(reg).extra_points in ((), (0.0, 1.0)))


def size(samples: int) -> int:
    """The size guard's estimate of a one-neuron solve on `samples` samples, in the units of
    reference.convex._solve.problem_size (about 0.2 ms and 4 KB of a cvxpy solve each):
    SIZE_FACTOR per sample.  Measured (benchmarks/bench_convex.py, part one_neuron): time
    and memory grow linearly with M, the peak about 285 bytes per sample (10^6 samples:
    285 MB, a few seconds), about 0.07 of a unit's 4 KB; the default max_size (500 000)
    then admits M <= 5 10^6 (about 1.4 GB)."""
    return int(np.ceil(samples * SIZE_FACTOR))


class SortedTargets:
    """The samples of a one-neuron problem sorted by z: z (M,), and the internal problem's
    z (M, 1) and y in that order (`sorted_z`, `sorted_y`: the optimality check's sorts are
    then O(M) instead of O(M log M)); for the squared loss also the targets t (M,), the
    weight alpha and the constant C0 (module docstring)."""

    def __init__(self, scaled) -> None:
        a = scaled.a_mat[:, 0]
        self.a, self.c, self.loss = a, scaled.c, scaled.loss
        self.alpha = float(a @ a)
        if not self.alpha > 0:
            raise ValueError("a: the map after the neuron is zero (no data term)")
        order = np.argsort(scaled.z[:, 0], kind="stable")
        self.z = scaled.z[order, 0]
        self.sorted_z, self.sorted_y = scaled.z[order], scaled.y[order]
        if get_loss(scaled.loss).output_scaled:                     # the squared loss
            residual = self.sorted_y - scaled.c[None, :]                # (M, N_L)
            self.t = residual @ a / self.alpha
            self.constant = 0.5 * float(np.sum((residual - self.t[:, None] * a[None, :]) ** 2))

    def split(self, grid: np.ndarray):
        """(j (M,): the piece of `grid` (K,) of every sample, d (M,): its offset z - S_j)."""
        j = np.clip(np.searchsorted(grid, self.z, side="right") - 1, 0, len(grid) - 2)
        return j, self.z - grid[j]

    def pieces(self, grid: np.ndarray):
        """(n, mu, tbar, v, beta, rho), each (K - 1,), of the pieces of `grid` (K,)."""
        k = len(grid) - 1
        j, d = self.split(grid)
        n, mu, v = weighted_moments(j, d, np.ones(len(d)), k)
        tbar = np.bincount(j, self.t, k) / np.maximum(n, 1.0)
        dc, tc = d - mu[j], self.t - tbar[j]
        cov = np.bincount(j, dc * tc, k)
        beta = np.divide(cov, v, out=np.zeros(k), where=v > 0)
        rho = np.bincount(j, (tc - beta[j] * dc) ** 2, k)
        return n, mu, tbar, v, beta, rho

    def loss_terms(self, sigma: np.ndarray):
        """(value, g (M,), h (M,)): the data term at sigma(z_m) = sigma (M,) and its first and
        second derivatives in each sigma_m (f_m = a sigma_m + c; squared: h = |a|^2;
        logistic: p (1 - p) a^2, p = sigmoid(f); cross-entropy: a^T (diag P - P P^T) a,
        P = softmax(f))."""
        out = sigma[:, None] * self.a[None, :] + self.c[None, :]
        value, r = loss_and_grad(self.loss, out, self.sorted_y)
        if self.loss == "logistic":
            p = expit(out[:, 0])
            h = p * (1.0 - p) * self.a[0] ** 2
        elif self.loss == "xent":
            prob = softmax(out, axis=1)
            h = prob @ (self.a * self.a) - (prob @ self.a) ** 2
        else:
            h = np.full(len(sigma), self.alpha)
        return value, r @ self.a, np.maximum(h, 0.0)


def weighted_moments(j: np.ndarray, d: np.ndarray, h: np.ndarray, k: int):
    """(H, mu, V), each (k,): per piece the weight H_j = sum h, the weighted mean offset
    mu_j = sum h d / H_j and V_j = sum h (d - mu_j)^2 (centred: no cancellation)."""
    weight = np.bincount(j, h, k)
    mu = np.bincount(j, h * d, k) / np.where(weight > 0, weight, 1.0)
    dc = d - mu[j]
    return weight, mu, np.bincount(j, h * dc * dc, k)


class RestrictedProblem(CoefficientProblem):
    """A `CoefficientProblem` of one neuron on a restricted grid whose data term is given
    (`CompressedProblem`, `NewtonProblem`): the same variables u, s, constraints,
    regulariser, slope bound and gauge pin, the same `solve` and `splines`."""

    def _build(self, scaled, grid: np.ndarray, gauge: np.ndarray, deadline, data_term) -> None:
        import cvxpy as cp

        regulariser = get_regulariser(scaled.reg)
        k = len(grid)
        self.grids, self.loss, self.reg = [grid], scaled.loss, scaled.reg
        self.lip_max = None if scaled.lip_max is None else np.asarray(scaled.lip_max).copy()
        self.weights = scaled.weights
        self.deadline = deadline
        self.u, self.s = cp.Variable(k), cp.Variable(k - 1)
        self.lam = cp.Parameter(nonneg=True)
        self.u_off, self.s_off = np.array([0, k]), np.array([0, k - 1])
        cons = [self.u[1:] - self.u[:-1] == cp.multiply(np.diff(grid), self.s)]
        tv2 = self.weights.tv2[0] * cp.norm1(cp.diff(self.s)) if k > 2 else 0.0
        at_points = None
        if regulariser.extra_points:
            pu, ps = _evaluation(grid, self.weights.points[0])
            at_points = self.weights.point[0] * (pu @ self.u + ps @ self.s)
        self.reg_term = cp.Constant(0.0) + regulariser.cvx_term(tv2, at_points)  # (K = 2: 0)
        if self.lip_max is not None:
            cons.append(cp.abs(self.s) <= self.lip_max[0])
        self.gauge = gauge
        if gauge.shape[1]:
            eu, es = _evaluation(grid, np.array([0.0]))
            coords = cp.hstack([eu @ self.u + es @ self.s, self.s[:1]])[: gauge.shape[0]]
            cons.append(gauge.T @ coords == 0)
        self.gauge_directions = gauge.shape[1]
        self.problem = cp.Problem(cp.Minimize(data_term(self.u, self.s)
                                              + self.lam * self.reg_term), cons)


class CompressedProblem(RestrictedProblem):
    r"""The restricted one-neuron problem with the squared loss compressed per piece.

    Parameters
    ----------
    data : SortedTargets
        The samples' targets, sorted.
    scaled : Scaled
        The problem in reference.convex._certify's internal units (its regulariser weights,
        BV2's points, L_max).
    grid : ndarray, shape (K,)
        The restricted grid S (sorted, K >= 2).
    gauge : ndarray, shape (2, k) or (1, k)
        The gauge directions (`gauge_basis`), pinned as `CoefficientProblem` pins them.
    deadline : Deadline, optional
        As for `CoefficientProblem`.

    Notes
    -----
    The objective, with u_j, s_j the values and slopes on S (u_{j+1} - u_j = H_j s_j):

    .. math::

        \frac{\alpha}{2} \sum_j \big(n_j (u_j + \mu_j s_j - \bar t_j)^2
        + V_j (s_j - \beta_j)^2 + \rho_j\big) + C_0
        + \lambda \big(w \|\Delta s\|_1 + q \sum_{t \in \text{points}} |\sigma(t)|\big),

    equal to `CoefficientProblem`'s on the grid S (module docstring); the same solve, the
    same `splines`.
    """

    def __init__(self, data: SortedTargets, scaled, grid: np.ndarray, gauge: np.ndarray,
                 deadline=None, start=None) -> None:
        import cvxpy as cp

        n, mu, tbar, v, beta, rho = data.pieces(grid)

        def data_term(u, s):
            fit = cp.multiply(np.sqrt(n), u[:-1] + cp.multiply(mu, s) - tbar)
            spread = cp.multiply(np.sqrt(v), s - beta)
            return data.alpha / 2 * (cp.sum_squares(fit) + cp.sum_squares(spread)) \
                + (data.alpha / 2 * float(rho.sum()) + data.constant)
        self._build(scaled, grid, gauge, deadline, data_term)


NEWTON_STEPS = 60            # NewtonProblem: the most proximal Newton steps of one solve
NEWTON_RTOL = 1e-15          # ... stopped when the predicted decrease is below this * max(|F|, 1)
ARMIJO = 0.25                # ... a step is accepted when it gains this share of the prediction


class NewtonProblem(RestrictedProblem):
    r"""The restricted one-neuron problem of a smooth loss (logistic, cross-entropy; also the
    squared loss, in one step), solved by proximal Newton steps whose quadratic models are
    compressed per piece.

    Parameters
    ----------
    data : SortedTargets
        The samples, sorted.
    scaled : Scaled
        The problem in internal units.
    grid : ndarray, shape (K,)
        The restricted grid S.
    gauge : ndarray, shape (2, k) or (1, k)
        The gauge directions, pinned.
    deadline : Deadline, optional
        As for `CoefficientProblem`.
    start : tuple of ndarray, optional
        (values (K,), slopes (K - 1,)) of the first iterate on S (default: the zero spline).

    Notes
    -----
    At the iterate sigma^k, each sample's loss is replaced by its second-order expansion
    g_m e_m + h_m e_m^2 / 2 in e_m = sigma(z_m) - sigma^k(z_m) (g, h the derivatives of
    `SortedTargets.loss_terms`), which on piece j is e_m = du_j + ds_j d_m, so

    .. math::

        \sum_{m \in j} \big(g_m e_m + \tfrac12 h_m e_m^2\big) = G_j du_j + G^d_j ds_j
        + \tfrac12 \big(H_j (du_j + \mu_j ds_j)^2 + V_j ds_j^2\big)

    with H_j = sum h, mu_j = sum h d / H_j, V_j = sum h (d - mu_j)^2, G_j = sum g,
    G^d_j = sum g d (`weighted_moments`).  The model plus lambda R is solved by CLARABEL
    (the parameters change, the problem is compiled once per grid: DPP); a backtracking line
    search on the true objective (ARMIJO share of the predicted decrease Delta) gives the
    next iterate, until -Delta <= NEWTON_RTOL max(|F|, 1).  A proximal Newton method on a
    smooth convex loss plus a convex regulariser: converges, quadratically near the optimum.
    """

    def __init__(self, data: SortedTargets, scaled, grid: np.ndarray, gauge: np.ndarray,
                 deadline=None, start=None) -> None:
        import cvxpy as cp

        k = len(grid)
        self.data = data
        self.split_at = data.split(grid)
        self.params = {name: cp.Parameter(k - 1) for name in ("p1", "p2", "b1", "pv", "bv",
                                                              "gu", "gs")}
        par = self.params

        def data_term(u, s):
            fit = cp.multiply(par["p1"], u[:-1]) + cp.multiply(par["p2"], s) - par["b1"]
            spread = cp.multiply(par["pv"], s) - par["bv"]
            return 0.5 * (cp.sum_squares(fit) + cp.sum_squares(spread)) \
                + par["gu"] @ u[:-1] + par["gs"] @ s
        self._build(scaled, grid, gauge, deadline, data_term)
        self.current = start if start is not None else (np.zeros(k), np.zeros(k - 1))

    def _objective(self, u, s, lam):
        """(F, data value, g, h) at the spline (u, s) on the grid: F = data + lam R."""
        j, d = self.split_at
        value, g, h = self.data.loss_terms(u[j] + s[j] * d)
        self.u.value, self.s.value = u, s
        return value + lam * float(self.reg_term.value), g, h

    def solve(self, lam: float, solver: str = "CLARABEL", warm_start: bool = True,
              settings: dict | None = None, max_attempts: int | None = None) -> dict:
        """`CoefficientProblem.solve`'s result for the restricted problem, by proximal Newton
        steps (class Notes): objective F at the last iterate (NumPy), gap None, status
        "optimal" when the predicted decrease fell below the tolerance, else the reason."""
        import time as clock

        t0 = clock.perf_counter()
        j, d = self.split_at
        k = len(self.grids[0]) - 1
        u, s = (np.asarray(v, dtype=np.float64).copy() for v in self.current)
        f, g, h = self._objective(u, s, lam)
        attempts, status, trusted = [], "newton: step limit", True
        for step in range(1, NEWTON_STEPS + 1):
            weight, mu, v = weighted_moments(j, d, h, k)
            grad_u, grad_s = np.bincount(j, g, k), np.bincount(j, g * d, k)
            root_h, root_v = np.sqrt(weight), np.sqrt(v)
            values = {"p1": root_h, "p2": root_h * mu, "pv": root_v, "gu": grad_u,
                      "gs": grad_s, "b1": root_h * (u[:-1] + mu * s), "bv": root_v * s}
            for name, value in values.items():
                self.params[name].value = value
            result = super().solve(lam, solver, warm_start, settings)
            attempts.append(f"step {step}: " + ", ".join(result["attempts"]))
            trusted = trusted and bool(result["default_settings"])
            if result["status"] != "optimal":
                status = result["status"]
                break
            u_new, s_new = np.asarray(self.u.value), np.asarray(self.s.value)
            du, ds = u_new - u, s_new - s
            reg_new = float(self.reg_term.value)
            self.u.value, self.s.value = u, s
            predicted = float(grad_u @ du[:-1] + grad_s @ ds + 0.5 * np.sum(
                weight * (du[:-1] + mu * ds) ** 2 + v * ds * ds)) \
                + lam * (reg_new - float(self.reg_term.value))
            if predicted >= -NEWTON_RTOL * max(abs(f), 1.0):
                status = "optimal"
                break
            step_size = 1.0
            while step_size > 1e-12:
                f_try, g_try, h_try = self._objective(u + step_size * du, s + step_size * ds,
                                                      lam)
                if f_try <= f + ARMIJO * step_size * predicted:
                    break
                step_size /= 2
            else:
                status = "optimal" if -predicted <= 1e-9 * max(abs(f), 1.0) else \
                    "newton: line search failed"
                break
            u, s, f, g, h = u + step_size * du, s + step_size * ds, f_try, g_try, h_try
        self.current = (u, s)
        self.u.value, self.s.value = u, s
        return {"status": status, "objective": f if status == "optimal" else None,
                "gap": None, "solver": solver, "attempts": attempts,
                "default_settings": status == "optimal" and trusted,
                "seconds": clock.perf_counter() - t0}


def _restricted(data, scaled, grid, gauge, deadline, last):
    """The restricted problem on `grid`: `CompressedProblem` (squared loss), else a
    `NewtonProblem` starting from the last restricted solution `last` (None: zero)."""
    if get_loss(scaled.loss).output_scaled:
        return CompressedProblem(data, scaled, grid, gauge, deadline)
    return NewtonProblem(data, scaled, grid, gauge, deadline,
                         None if last is None else _restart(last, grid))


def _restart(layer, grid: np.ndarray):
    """(values, slopes) on `grid` of a restricted solution `layer` (internal units, knots
    among the grid's points): the next grid's first Newton iterate."""
    points, values = layer.points[0], layer.values[0]
    slopes = layer.slopes[0]
    i = np.clip(np.searchsorted(points, grid[:-1], side="right") - 1, 0, len(slopes) - 1)
    at = np.interp(grid, points, values)
    outside = (grid < points[0]) | (grid > points[-1])
    if outside.any():                       # continued linearly beyond the ends
        k = np.clip(np.searchsorted(points, grid[outside], side="right") - 1, 0,
                    len(slopes) - 1)
        at[outside] = values[k] + slopes[k] * (grid[outside] - points[k])
    return at, slopes[i]


def solve_layer_one_neuron(net, layer, x, y, scaled, grids, *, solver, start=None,
                           polish=True, gauge=None, deadline=None, bar=None, settings=None):
    r"""Solve the data-grid problem of a one-neuron layer (squared, logistic or cross-entropy).

    The engine of ``reference.convex.solve_layer(method="one_neuron")``; the same arguments
    and returns as ``reference.convex._active_set.solve_layer_active`` (whose rounds,
    optimality check, polishing and certificate fields it shares).

    Parameters
    ----------
    net : Network
        The network; every weight stays fixed.
    layer : int
        Index of the spline layer (one neuron) in ``net.layers``.
    x : ndarray of float64, shape (M, N_0)
        The inputs, as checked by `solve_layer`.
    y : ndarray
        The caller's targets, for the NumPy re-evaluation.
    scaled : Scaled
        The problem in reference.convex._certify's internal units.
    grids : list of ndarray
        One sorted array: the neuron's candidate points (the internal data grid).
    solver : str
        The cvxpy solver of the restricted problems.
    start : list of ndarray of bool, optional
        The active candidates to start from; default the active set's quantile points.
    polish : bool, default True
        Re-solve on the knots of the optimum only, kept when its optimality check passes.
    gauge : ndarray, shape (2, k) or (1, k), optional
        The gauge directions (`gauge_basis`); none pinned when None.
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
        As `solve_layer_active`'s, with ``method`` "one_neuron".
    masks : list of ndarray of bool
        The active candidates at the end.
    extra_points : list of tuple
        [("last restricted solution", pieces)] when not converged, else [].
    stopped : str or None
        The reason at the deadline, else None.

    Raises
    ------
    SolveFailed
        When a solver fails: no model.

    Notes
    -----
    The restricted problem is `CompressedProblem` for the squared loss and `NewtonProblem`
    for the logistic and cross-entropy losses (its size is the number of active candidates,
    not M); each round checks the optimality condition of the full data-grid
    problem at every candidate (``_active_set.optimality``) and adds candidates where it
    fails (``_active_set.points_to_add``), until

    .. math::

        \max_k \frac{|\lambda \xi_k| - \lambda}{\lambda_{\mathrm{ref}}}
        \le \mathrm{VIOLATION\_RTOL} + \text{noise}.

    Cost per round: O(M) for the sums and the check (after one O(M log M) sort), plus the
    restricted solve.
    """
    t0 = time.perf_counter()
    gauge = np.zeros((1, 0)) if gauge is None else gauge
    data = SortedTargets(scaled)
    z, a_mat, c, yi, lam = data.sorted_z, scaled.a_mat, scaled.c, data.sorted_y, scaled.lam
    scale = active_set.reference_scale(z, a_mat, c, yi, scaled.loss)
    active = [m.copy() for m in (start or active_set.initial_active(grids))]
    history, check, last, prob, result, status = [], None, None, None, {}, "round limit"
    rounds = 0
    for rounds in range(1, active_set.MAX_ROUNDS + 1):
        if deadline is not None and deadline.expired():
            status = "time_limit"
            break
        prob = _restricted(data, scaled, grids[0][active[0]], gauge, deadline, last)
        result, solution, check = active_set.solve_and_check(
            prob, z, a_mat, c, yi, grids, active, lam, solver, scale, settings)
        last = solution or last
        if result["status"] != "optimal":
            status = result["status"]
            break
        history.append({"points": [int(active[0].sum())], "worst": check.worst,
                        "noise": check.noise})
        if bar is not None:
            bar.set_postfix_str(f"round {rounds}: {int(active[0].sum())} points, worst "
                                f"violation {check.worst:.1e}, noise {check.noise:.1e}")
        if check.accepted:
            status = "converged"
            break
        grown = active_set.points_to_add(check.violation, active, check.tolerance)
        if int(grown[0].sum()) == int(active[0].sum()):
            status = "stalled"
            break
        if rounds == active_set.MAX_ROUNDS:
            break
        drop = active_set.points_to_drop(solution, check, active)
        active = [grown[0] & ~drop[0]]
    base = {"method": "one_neuron", "rounds": rounds, "solver": solver,
            "candidate_points": [len(grids[0])],
            "active_history": [{"points": h["points"], "worst": h["worst"]} for h in history]}
    if status != "converged":
        extra = [] if last is None else \
            [("last restricted solution", list(zip(last.points, last.values)))]
        base["attempts"] = result.get("attempts", [])
        if status == "time_limit":
            return None, base, active, extra, \
                f"stopped at the time limit {deadline.time_limit:g} s in round {rounds}"
        if status not in ("round limit", "stalled"):
            raise SolveFailed(f"solve: {solver} ended with status {status!r} on a restricted "
                              f"one-neuron problem (attempts: {'; '.join(base['attempts'])}); "
                              "no model is returned")
        base["rejected"] = (f"the one-neuron active set did not converge (status {status!r} "
                            f"after {rounds} rounds, worst violation {check.worst:.3g}, "
                            f"multiplier noise {check.noise:.3g}, {int(active[0].sum())} "
                            "points)")
        return None, base, active, extra, None
    new, cert = finish(net, layer, x, y, scaled.lam_given, prob, result, None, 0.0,
                       norm_grids=grids, scaled=scaled)
    cert.update(base, knots_unpolished=cert["knots"], polish="off", polish_objective=None,
                method_certified=check.accepted,
                **active_set._certificate(check, scaled))
    if polish and not (deadline is not None and deadline.expired()):
        new, cert = _polish(net, layer, x, y, scaled, grids, new, cert, data, gauge, scale,
                            solver=solver, deadline=deadline, settings=settings)
    cert["points_per_neuron"] = [len(p) for p in new.layers[layer].points]
    cert["seconds"] = time.perf_counter() - t0
    return new, cert, active, [], None


def _polish(net, layer, x, y, scaled, grids, new, cert, data, gauge, scale, *, solver,
            deadline, settings):
    """Re-solve on the ends and the knots of the solution (above the knot tolerance of
    `knot_counts`); kept when its own optimality check over every candidate passes (it is
    then an optimum on the knots alone, and the knot count that of such an optimum)."""
    keep = active_set._knot_grids(new.layers[layer], grids, None, scaled)
    z, a_mat, c, yi = data.sorted_z, scaled.a_mat, scaled.c, data.sorted_y
    unpolished = KnotSplineActivation(*zip(*scaled.internal_pieces(new.layers[layer], grids)))
    prob = _restricted(data, scaled, grids[0][keep[0]], gauge, deadline, unpolished)
    result, _, check = active_set.solve_and_check(prob, z, a_mat, c, yi, grids, keep,
                                                  scaled.lam, solver, scale, settings)
    if result["status"] != "optimal":
        cert["polish"] = f"rejected: solver status {result['status']!r}"
        return new, cert
    if not check.accepted:
        cert["polish"] = (f"rejected: worst violation {check.worst:.3g}, noise "
                          f"{check.noise:.3g}")
        return new, cert
    try:
        out, out_cert = finish(net, layer, x, y, scaled.lam_given, prob, result, None, 0.0,
                               norm_grids=grids, scaled=scaled)
    except SolveFailed as exc:                       # the NumPy re-evaluation disagreed
        cert["polish"] = f"rejected: {exc}"
        return new, cert
    keys = ("method", "rounds", "candidate_points", "active_history", "knots_unpolished")
    out_cert.update({key: cert[key] for key in keys}, polish="accepted (knots above the knot "
                    "tolerance)", polish_objective=out_cert["objective"],
                    objective_unpolished=cert["objective"], method_certified=True,
                    **active_set._certificate(check, scaled))
    return out, out_cert
