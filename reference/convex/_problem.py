"""The coefficient problem of one layer, shared by the solves (a leaf of reference.convex:
the full solve, the active set and the certification import it; it imports none of them).

`CoefficientProblem` is the cvxpy problem on given grids (values u_i at the points g_i,
slopes s_i of the pieces between them, tied by u_{i+1} - u_i = h_i s_i), with its
regulariser weights `RegWeights` (the problem in the internal units of
reference.convex._certify); `gauge_basis` the directions on which the objective is
constant (pinned); `finish` builds the model from a solved problem and certifies it (NumPy
re-evaluation `numpy_objective`, knots and Lipschitz constant `knot_counts`, the gauge's
minimum-norm representative).
"""
from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from reference._format import exact
from reference._limits import Deadline
from reference.convex._knots import knot_rule
from reference.convex._solver_settings import solver_attempts
from reference.exceptions import InaccurateSolution, SolveFailed
from reference.nn._linear_spline import LinearSpline
from reference.nn._losses import check_targets, get_loss, loss_and_grad
from reference.nn._network import KnotSplineActivation, Network, SplineActivation
from reference.nn._regularisers import get as get_regulariser


@dataclass(frozen=True)
class RegWeights:
    """The regulariser of a coefficient problem with weights: lam (sum_n tv2[n] TV2(sigma_n)
    + sum_n point[n] sum_{t in points[n]} |sigma_n(t)|), points[n] the regulariser's extra
    points of neuron n (BV2: 0 and 1, or 0 and 1 / r_n in internal units; none for TV2).
    `plain`: the problem as given (weights 1, the points themselves)."""
    tv2: np.ndarray
    point: np.ndarray
    points: list

    @classmethod
    def plain(cls, neurons: int, reg: str) -> RegWeights:
        extra = np.array(get_regulariser(reg).extra_points, dtype=np.float64)
        return cls(np.ones(neurons), np.ones(neurons), [extra] * neurons)

    def penalties(self, lam: float):
        """(lambda_n (N,) = lam tv2, mu_n (N,) = lam point: the point terms' weights)."""
        return lam * self.tv2, lam * self.point


MERGE_RTOL = 1e-9          # data grid: points closer than this * spread are merged


CHECK_RTOL = 1e-6          # |objective - objective_check| <= this * max(|objective|, unit^2)


def _evaluation(grid: np.ndarray, z: np.ndarray):
    """Sparse rows evaluating sigma(z) = u_i + s_i (z - g_i): (rows for u (M, P), rows for s
    (M, P - 1))."""
    p = len(grid)
    i = np.clip(np.searchsorted(grid, z, side="right") - 1, 0, p - 2)
    rows = np.arange(len(z))
    eu = sp.csr_array((np.ones(len(z)), (rows, i)), shape=(len(z), p))
    es = sp.csr_array((z - grid[i], (rows, i)), shape=(len(z), p - 1))
    return eu, es


class CoefficientProblem:
    r"""The convex coefficient problem of one spline layer as a cvxpy problem, built once.

    lambda is a cvxpy Parameter (DPP), so a path of lambdas compiles once (`solve` again;
    CLARABEL itself does not warm-start).

    Parameters
    ----------
    z : ndarray of float64, shape (M, N)
        The pre-activations of the layer's N neurons at the M samples.
    a_mat : ndarray of float64, shape (N_L, N)
        A, the affine map after the layer: outputs = A sigma(z) + c.
    c : ndarray of float64, shape (N_L,)
        Its offset.
    y : ndarray
        The targets in the loss's form: (M, N_L) floats (squared), (M, 1) in {0, 1}
        (logistic) or (M,) class indices (xent).
    loss : {'squared', 'logistic', 'xent'}
        The data term E.
    reg : {'tv2', 'bv2'}
        The regulariser R.
    grids : list of ndarray
        N sorted arrays, the grid points g_{n,i} of each neuron (at least 2 each).
    lip_max : float or array_like of shape (N,), optional
        The slope bound L_max, one number or one per neuron; None: no bound.
    gauge : ndarray, shape (2N, k) or (N, k), optional
        The directions of `gauge_basis` if already computed (TV2; default: computed here).
    pin_gauge : bool, default True
        Pin the gauge directions; False leaves them free (for tests: the optimal set is
        then unbounded along them).
    deadline : Deadline, optional
        A ``reference._limits.Deadline`` that every solve stops at (CLARABEL's own
        time_limit setting; other solvers are only not started once it has passed).
    weights : RegWeights, optional
        The regulariser's weights (w, q, points), a `RegWeights` (default
        ``RegWeights.plain``: 1, 1 and the regulariser's points).

    See Also
    --------
    solve_layer : Builds, solves and certifies this problem for a network.

    Notes
    -----
    With the grid values u_{n,i} = sigma_n(g_{n,i}) and slopes s_{n,i} tied by
    u_{n,i+1} - u_{n,i} = h_{n,i} s_{n,i} (h the grid steps), sigma_n(z) = u_{n,i} +
    s_{n,i} (z - g_{n,i}) on piece i, and the problem is

    .. math::

        \min_{u, s} \sum_m E\big(y_m, A \sigma(z_m) + c\big)
        + \lambda \Big(\sum_n w_n \|\Delta s_n\|_1
        + q \sum_n \sum_{t \in \text{points}_n} |\sigma_n(t)|\Big)
        \quad \text{s.t.} \ |s_{n,i}| \le L_{\max,n},

    ||Delta s_n||_1 = TV(2)(sigma_n) [1]_, the second sum for BV(2) only (its points 0 and
    1, divided by r_n in internal units), the slope bound only with lip_max.  The weights
    state the problem in reference.convex._certify's internal units (neuron n's
    pre-activations divided by r_n: w_n = r_ref / r_n, q = r_ref).

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.
    """

    def __init__(self, z: NDArray[np.float64], a_mat: NDArray[np.float64],
                 c: NDArray[np.float64], y: NDArray, loss: str, reg: str,
                 grids: list[NDArray[np.float64]], lip_max: float | ArrayLike | None = None,
                 gauge: NDArray[np.float64] | None = None, pin_gauge: bool = True,
                 deadline: Deadline | None = None,
                 weights: RegWeights | None = None) -> None:
        import cvxpy as cp

        m, n = z.shape
        regulariser = get_regulariser(reg)
        self.grids, self.loss, self.reg = grids, loss, reg
        self.lip_max = None if lip_max is None else np.broadcast_to(
            np.asarray(lip_max, dtype=np.float64), (n,)).copy()
        self.weights = weights or RegWeights.plain(n, reg)
        self.deadline = deadline
        sizes = np.array([len(g) for g in grids])
        self.u = cp.Variable(int(sizes.sum()))
        self.s = cp.Variable(int((sizes - 1).sum()))
        self.lam = cp.Parameter(nonneg=True)
        u_off = np.concatenate([[0], np.cumsum(sizes)])
        s_off = np.concatenate([[0], np.cumsum(sizes - 1)])
        self.u_off, self.s_off = u_off, s_off
        eu_blocks, es_blocks, du, h, ds, e0u, e0s, epu, eps_ = [], [], [], [], [], [], [], [], []
        for k, g in enumerate(grids):
            eu, es = _evaluation(g, z[:, k])
            eu_blocks.append(eu)
            es_blocks.append(es)
            p = len(g)
            du.append(sp.diags([-np.ones(p - 1), np.ones(p - 1)], [0, 1], shape=(p - 1, p)))
            h.append(np.diff(g))
            ds.append(self.weights.tv2[k] * sp.diags([-np.ones(p - 2), np.ones(p - 2)], [0, 1],
                                                    shape=(p - 2, p - 1))
                      if p > 2 else sp.csr_array((0, p - 1)))
            zu, zs = _evaluation(g, np.array([0.0]))
            e0u.append(zu)
            e0s.append(zs)
            pu, ps = _evaluation(g, self.weights.points[k])
            epu.append(pu)
            eps_.append(ps)
        # sigma at the data, column n of (M, N) stacked as one long vector (neuron-major)
        sig = sp.block_diag(eu_blocks, format="csr") @ self.u \
            + sp.block_diag(es_blocks, format="csr") @ self.s
        sig = cp.reshape(sig, (m, n), order="F")
        out = sig @ a_mat.T + c[None, :]
        cons = [sp.block_diag(du, format="csr") @ self.u
                == cp.multiply(np.concatenate(h), self.s)]
        d2 = sp.block_diag(ds, format="csr")
        tv2 = cp.norm1(d2 @ self.s) if d2.shape[0] else 0.0     # sum_n weight_n TV2_n
        point_weight = sp.diags(np.repeat(self.weights.point,
                                          [len(p) for p in self.weights.points]))
        at_points = point_weight @ (sp.block_diag(epu, format="csr") @ self.u
                                    + sp.block_diag(eps_, format="csr") @ self.s) \
            if regulariser.extra_points else None
        reg_term = regulariser.cvx_term(tv2, at_points)
        if self.lip_max is not None:
            cons.append(cp.abs(self.s) <= np.repeat(self.lip_max, sizes - 1))
        if gauge is None:
            gauge = gauge_basis(z, a_mat, loss, affine=lip_max is None) \
                if regulariser.ignores_affine else np.zeros((n, 0))
        self.gauge = gauge                    # (2N, k) affine or (N, k) constant directions
        if gauge.shape[1] and pin_gauge:
            at_0 = sp.block_diag(e0u, format="csr") @ self.u \
                + sp.block_diag(e0s, format="csr") @ self.s          # sigma_n(0)
            coords = cp.hstack([at_0, self.s[s_off[:-1]]])[: gauge.shape[0]]
            cons.append(gauge.T @ coords == 0)
        self.gauge_directions = gauge.shape[1]
        self.refined: list | None = None     # pieces set by a refinement (`splines`)
        self.problem = cp.Problem(cp.Minimize(get_loss(loss).cvx_expression(out, y)
                                              + self.lam * reg_term),
                                  cons)

    def solve(self, lam: float, solver: str = "CLARABEL", warm_start: bool = True,
              settings: dict | None = None, max_attempts: int | None = None) -> dict:
        """Solve the problem for one lambda, retrying at other settings when it stops short.

        Parameters
        ----------
        lam : float
            The regularisation weight lambda >= 0 (in the problem's units).
        solver : str, default 'CLARABEL'
            A cvxpy solver able to solve the problem's class.
        warm_start : bool, default True
            Passed to the solver interface (CLARABEL ignores it).
        settings : dict, optional
            CLARABEL settings applied to every attempt.
        max_attempts : int, optional
            Run at most this many attempts of `solver_attempts` (None: all); the active set
            takes 1 where Newton's method refines or replaces the point
            (reference.convex._active_set.NEWTON_LOSSES).

        Returns
        -------
        result : dict
            ``status`` (cvxpy's, "time_limit", or "solver error (...)"), ``objective``
            (cvxpy's, None unless optimal), ``gap`` (primal - dual objective of CLARABEL,
            None for other solvers), ``solver``, ``attempts`` (list of str: each attempt and
            its status), ``default_settings`` (bool, below) and ``seconds``.

        Notes
        -----
        A solver failure is a status, never an exception.  The solver is first run at tight
        tolerances (SOLVER_TIGHT of reference.convex._solver_settings, e.g. CLARABEL's 1e-12: in
        reference.convex._certify's internal units the problem's scale is 1, and at CLARABEL's
        default 1e-8 the interior-point solution carries slope changes of up to 1e-3 of the
        largest at points where the optimum has none, which the knot count would see, and
        its gradient gives a loose dual bound; the other variants of SOLVER_TIGHT when it
        stops short), then at its defaults (`solver_attempts`); CLARABEL stopping short
        (optimal_inaccurate, insufficient progress: seen with the exponential cones of the
        logistic and cross-entropy losses) is retried with the settings CLARABEL_RETRIES,
        every attempt reported; `settings` (CLARABEL only) apply to every attempt.  A cvxpy
        SolverError (the solver refuses the problem or fails) is a status too.  Status
        "time_limit" when the deadline has passed (no solution).  default_settings: whether
        the optimal attempt changed nothing but the tolerances (tighter, or the defaults)
        and had no `settings`: not a retry with changed regularisation, equilibration or
        looser tolerances; only then may its gap be trusted on its own
        (reference.convex._certify).  See `solve_layer` for the certificate.
        """
        import cvxpy as cp

        self.lam.value = float(lam)
        self.refined = None                  # a new solve replaces a refined point
        t0 = time.perf_counter()
        raw: Any                  # the solver's own result (None before a solve returns)
        attempts, raw, first = [], None, False
        try:
            data, chain, inverse = self.problem.get_problem_data(solver, solver_opts={})
            retries = solver_attempts(solver, settings)[:max_attempts]
        except cp.error.SolverError as exc:         # the solver cannot take this problem
            retries, status = [], f"solver error ({exc})"
            attempts.append(f"compile: {status}")
        for label, options, trusted in retries:
            raw, run, first = None, dict(options), trusted
            if self.deadline is not None:
                if self.deadline.expired():
                    status = "time_limit"
                    attempts.append(f"{label}: not started (time limit)")
                    break
                if solver == "CLARABEL":
                    run["time_limit"] = self.deadline.remaining()
            try:
                raw = chain.solver.solve_via_data(dict(data), warm_start, False,  # CVXOPT
                                                  run)     # rewrites the dict's entries
                with warnings.catch_warnings():    # the status says it, and is handled
                    warnings.simplefilter("ignore", UserWarning)
                    self.problem.unpack_results(raw, chain, inverse)
                status = self.problem.status
            except cp.error.SolverError as exc:
                status = f"solver error ({getattr(raw, 'status', None) or exc})"
            if status != "optimal" and self.deadline is not None and self.deadline.expired():
                status = "time_limit"
            attempts.append(f"{label}: {status}")
            if status in ("optimal", "time_limit"):
                break
        gap = None
        if status == "optimal" and hasattr(raw, "obj_val_dual"):
            gap = float(raw.obj_val - raw.obj_val_dual)
        return {"status": status, "objective": self.problem.value if status == "optimal"
                else None, "gap": gap, "solver": solver, "attempts": attempts,
                "default_settings": status == "optimal" and first,
                "seconds": time.perf_counter() - t0}

    def splines(self) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
        """The solution as one linear spline per neuron, rebuilt from the solver's slopes.

        Returns
        -------
        pieces : list of tuple of ndarray
            Per neuron n, (grid points g_n, values v_n), both of shape (P_n,).

        Notes
        -----
        The values are rebuilt as v_0 = u_0, v_{i+1} = v_i + h_i s_i (s clipped to
        [-L_n, L_n]), so that the slopes of the stored spline are the solver's up to
        rounding instead of the constraint residuals divided by h_i (which exceeded L_max by
        1e-6 on close points).  The NumPy re-evaluation of the objective checks the rebuilt
        model.  After a Newton refinement of the solution (reference.convex._newton, set in
        ``refined`` by the active set), the refined pieces.
        """
        if self.refined is not None:
            return [(g, v.copy()) for g, v in self.refined]
        u = np.asarray(self.u.value, dtype=np.float64)
        s = np.asarray(self.s.value, dtype=np.float64)
        if self.lip_max is not None:
            bound = np.repeat(self.lip_max, np.diff(self.s_off))
            s = np.clip(s, -bound, bound)
        out = []
        for k, g in enumerate(self.grids):
            slopes = s[self.s_off[k]:self.s_off[k + 1]]
            values = u[self.u_off[k]] + np.concatenate([[0.0], np.cumsum(np.diff(g) * slopes)])
            out.append((g, values))
        return out


def gauge_basis(z: np.ndarray, a_mat: np.ndarray, loss: str, affine: bool,
                null_rtol: float = MERGE_RTOL) -> np.ndarray:
    """Directions along which a TV2 problem's objective is constant, as columns of
    (2N, k) (affine) or (N, k): shifts sigma_n += c_n + b_n z with
    sum_n A[:, n] (c_n + b_n z_{m,n}) = 0 at every sample m (for xent: equal entries,
    since a constant added to every logit changes nothing).  TV2 ignores affine parts, so
    the optimal set is unbounded along them and interior-point solvers stall; the
    constraint basis^T (sigma(0), first slopes) = 0 picks one point of each such line
    without changing the optimal value.  With Lip <= L_max only constants are free (affine=
    False).  Null directions: singular values <= null_rtol (the data grid's merge tolerance:
    a slope seen only across merged points is invisible; floor 1e-13) times the largest of
    the column-scaled map, the slopes taken about the middle of each neuron's range (so
    that only the spread of z counts, not its distance from 0)."""
    m, n = z.shape
    middle = (z.max(axis=0) + z.min(axis=0)) / 2 if m else np.zeros(n)
    g = np.broadcast_to(a_mat[None], (m,) + a_mat.shape)          # (M, N_L, N)
    if affine:
        g = np.concatenate([g, a_mat[None] * (z - middle)[:, None, :]], axis=2)
    if get_loss(loss).shift_invariant:              # a constant added to every output
        g = g - g.mean(axis=1, keepdims=True)
    g = g.reshape(-1, g.shape[2])
    scale = np.linalg.norm(g, axis=0)
    scale[scale == 0] = 1.0
    g = g / scale
    if g.shape[0] < g.shape[1]:                 # economic SVD needs rows >= columns
        g = np.vstack([g, np.zeros((g.shape[1] - g.shape[0], g.shape[1]))])
    _, sv, vt = np.linalg.svd(g, full_matrices=False)
    null = vt[sv <= max(null_rtol, 1e-13) * max(sv.max(), np.finfo(float).tiny)].T
    null = null / scale[:, None]
    if affine:                        # c' + b (z - middle) = (c' - b middle) + b z
        null[:n] -= null[n:] * middle[:, None]
    return null


def _values_at(grid: np.ndarray, values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The piecewise-linear interpolant through (grid, values), continued linearly beyond
    the ends, at t (exact at the grid points)."""
    i = np.clip(np.searchsorted(grid, t, side="right") - 1, 0, len(grid) - 2)
    slope = (values[i + 1] - values[i]) / (grid[i + 1] - grid[i])
    return np.where(t == grid[i], values[i], values[i] + slope * (t - grid[i]))


def min_norm_representative(pieces: list, gauge: np.ndarray, norm_grids: list,
                            value_unit=1.0):
    """(pieces, removed): the splines (grid_n, values_n) moved along the gauge directions
    (columns of `gauge_basis`, (2N, k) for shifts c_n + b_n t or (N, k) for constants)
    to the representative of least sum_n sum_k sigma_n(t_{n,k})^2 over the points t of
    norm_grids (the grid of the problem: the uniform grid's coefficients, or the whole
    data grid, so that an active-set solution and a full one are moved to the same
    representative).  Least squares in the k coordinates; the shift is invisible at the
    data (up to the null-space tolerance of `gauge_basis`) and keeps TV2 and Lip.
    removed: the Euclidean norm of the change of the values at norm_grids, each neuron's
    multiplied by value_unit (a number or (N,): the caller's units of internal values)."""
    n = len(pieces)
    if gauge.shape[1] == 0:
        return pieces, 0.0
    affine = gauge.shape[0] == 2 * n
    values = np.concatenate([_values_at(g, v, t) for (g, v), t in zip(pieces, norm_grids)])
    cols = [np.concatenate([gauge[k, j] + (gauge[n + k, j] * t if affine else 0.0 * t)
                            for k, t in enumerate(norm_grids)]) for j in range(gauge.shape[1])]
    e = np.stack(cols, axis=1)                             # (sum_n |norm grid n|, k)
    coef = np.linalg.lstsq(e, -values, rcond=None)[0]
    shift = gauge @ coef                                   # (c_n..., b_n...) or (c_n...)
    out = [(g, v + shift[k] + (shift[n + k] * g if affine else 0.0))
           for k, (g, v) in enumerate(pieces)]
    units = np.broadcast_to(np.asarray(value_unit, dtype=np.float64), (n,))
    change = e @ coef * np.repeat(units, [len(t) for t in norm_grids])
    return out, float(np.linalg.norm(change))


def numpy_objective(net: Network, layer: int, x, y, loss: str, lam: float, reg: str) -> float:
    """data term + lam * sum_n R(sigma_n) of layer `layer`, evaluated in NumPy on the model."""
    out = net.forward(x)
    data, _ = loss_and_grad(loss, out, check_targets(loss, out.shape, y))
    penalty = get_regulariser(reg).value(net.layers[layer].spline)
    return float(data + lam * penalty.sum())


def problem_for(scaled, grids: list, gauge=None, deadline=None) -> CoefficientProblem:
    """The CoefficientProblem of a reference.convex._certify.Scaled problem on the internal
    grids."""
    return CoefficientProblem(scaled.z, scaled.a_mat, scaled.c, scaled.y, scaled.loss,
                              scaled.reg, grids, scaled.lip_max, gauge=gauge,
                              deadline=deadline, weights=scaled.weights)


def build_model(net: Network, layer: int, pieces: list, unit, uniform,
                zr=None) -> Network:
    """A copy of net whose layer `layer` holds the splines (zr_n grid_n, unit_n values_n)
    (unit: a number or (N,), the values' unit; zr (N,): the pre-activations' units, default
    1; powers of two, so the grid is exact): a uniform-grid layer when uniform =
    (x_min, step, K), else a knot-form layer.  A piece given by two points only is an
    affine spline: a knot-form layer keeps it as one piece, a uniform-grid layer gets the K
    coefficients of `exactly_affine` through its values at the grid's ends (the two points
    must be those ends), so that its TV2 is exactly 0 in both."""
    new = copy.deepcopy(net)
    units = np.broadcast_to(np.asarray(unit, dtype=np.float64), (len(pieces),))
    if uniform is not None:
        x_min, step, size = uniform
        coeffs = np.stack([u * v if len(v) == size else exactly_affine(u * v[0], u * v[-1], size)
                           for (_, v), u in zip(pieces, units)])
        new.layers[layer] = SplineActivation(LinearSpline(coeffs, x_min, step))
    else:
        zr = np.ones(len(pieces)) if zr is None else zr
        new.layers[layer] = KnotSplineActivation([g * r for (g, _), r in zip(pieces, zr)],
                                                 [u * v for (_, v), u in zip(pieces, units)])
    return new


def exactly_affine(first: float, last: float, count: int) -> np.ndarray:
    """count >= 2 values from `first` to `last` in equal steps, whose successive differences
    are all equal in float64 (the second differences, and TV2, are exactly 0).

    Both ends' scale S = max(|first|, |last|) sets q = 2^e with S < 2^51 q; the start and the
    step are rounded to multiples of q (a change of at most q / 2 each, so the values are
    within count q / 2 < count 2^-51 S of the line), so that every product k step (below
    2^53 q) and every value start + k step (below 2^52 q, count < 2^51) is an integer
    multiple of q computed exactly, and so is every difference."""
    if count < 2:
        raise ValueError(f"count: expected at least 2 values, got {count!r}")
    scale = max(abs(first), abs(last))
    if scale == 0:
        return np.zeros(count)
    q = np.ldexp(1.0, int(np.frexp(scale)[1]) - 51)
    start = np.round(first / q) * q
    step = np.round((last - first) / (count - 1) / q) * q
    return start + step * np.arange(count)


def finish(net, layer, x, y, lam, prob, result, uniform, seconds, norm_grids=None, *,
           scaled):
    """Build the new model from a solved problem and certify it (see `solve_layer`); the
    splines are moved to the gauge's minimum-norm representative over norm_grids (default
    the problem's grids).  prob holds the problem in the internal units of `scaled`
    (reference.convex._certify.Scaled): values are multiplied by its value_unit and grid points by
    its zr, objective and gap by T^2; the NumPy check is on the returned model with the caller's
    y and lam.  method_certified: the solve ran with the solver's default settings
    (`CoefficientProblem.solve`: a retry's own word is not trusted).  The knot count is
    decided by reference.convex._knots.knot_rule with the jump accuracy of a Newton
    refinement (result["newton"]) when there is one."""
    loss, reg = prob.loss, prob.reg
    if result["status"] != "optimal":
        raise SolveFailed(f"solve: {result['solver']} ended with status {result['status']!r} "
                          f"(attempts: {'; '.join(result['attempts'])}); no model is returned")
    pieces, removed = min_norm_representative(prob.splines(), prob.gauge,
                                              norm_grids or prob.grids, scaled.value_unit)
    new = build_model(net, layer, pieces, scaled.value_unit, uniform, scaled.zr)
    check = numpy_objective(new, layer, x, y, loss, lam, reg)
    objective = float(result["objective"]) * scaled.objective_unit
    allowed = CHECK_RTOL * max(abs(objective), scaled.objective_unit)
    if abs(check - objective) > allowed:
        raise InaccurateSolution(
            f"inaccurate solution: {result['solver']} reports objective {exact(objective)}, the "
            f"returned model gives {exact(check)} (beyond {allowed:.3g} = {CHECK_RTOL:g} "
            f"max(|objective|, unit^2 {scaled.objective_unit:g}))", pieces)
    knots, tols, lips = knot_counts(new.layers[layer], scaled.slope_unit)
    newton = result.get("newton")
    accuracy = None if not newton or newton.get("jump_accuracy") is None else \
        np.asarray(newton["jump_accuracy"]) * scaled.slope_unit
    rule = knot_rule(new.layers[layer], tols, accuracy)
    lip_max = scaled.lip_given
    if lip_max is not None and lips.max() > lip_max * (1 + CHECK_RTOL):
        raise SolveFailed(f"solve: the returned splines have Lip {exact(lips.max())} > lip_max "
                          f"{exact(lip_max)} beyond tolerance; no model is returned")
    gap = None if result["gap"] is None else result["gap"] * scaled.objective_unit
    trusted = bool(result.get("default_settings"))
    return new, {"solver": result["solver"], "status": result["status"],
                 "attempts": result["attempts"], "method_certified": trusted,
                 **({} if trusted else {"method_note": "the solver's gap came from a retry "
                                        "with changed settings"}),
                 "objective": objective, "objective_check": check, "gap": gap,
                 **({"newton": newton} if newton else {}),
                 "seconds": seconds, "knots": rule["knots"], "knot_tolerance": tols.tolist(),
                 "knots_bracket": rule["knots_bracket"], "knot_rule": rule,
                 "lipschitz": lips.tolist(), "check_rtol": CHECK_RTOL,
                 "grid_points": [len(g) for g in prob.grids],
                 "gauge_directions_pinned": prob.gauge_directions,
                 "gauge_shift_removed": removed, "lam": lam, "reg": reg,
                 "loss": loss, "lip_max": lip_max}


KNOT_RTOL = 1e-6            # knot_counts: |a_k| > KNOT_RTOL max |a| ...


SLOPE_RTOL = 1e-7           # ... and > SLOPE_RTOL max(slope unit, max |slope|)


def knot_counts(layer: SplineActivation | KnotSplineActivation,
                slope_unit: float | ArrayLike = 0.0) -> tuple[NDArray[np.int_],
                                                             NDArray[np.float64],
                                                             NDArray[np.float64]]:
    r"""Count the knots of every spline of a layer, with the tolerance used for each.

    Parameters
    ----------
    layer : SplineActivation or KnotSplineActivation
        A spline layer of N neurons (uniform-grid splines are converted to knot form).
    slope_unit : float or array_like of shape (N,), default 0.0
        The problem's own slope scale, a number or one per neuron: T / r_n for a solve
        (``reference.convex._certify.Scaled.slope_unit``: an internal slope of 1); 0 for a
        model on its own (relative to its own slopes only).

    Returns
    -------
    knots : ndarray of int, shape (N,)
        The number of slope changes |a_k| > tol_n of each spline.
    tolerance : ndarray of float64, shape (N,)
        The tolerance tol_n of each neuron (Notes).
    lipschitz : ndarray of float64, shape (N,)
        Lip(sigma_n), the largest |slope| of each spline.

    Notes
    -----
    A knot is a slope change |a_k| > tol_n with

    .. math::

        \mathrm{tol}_n = \max\big(\mathrm{KNOT\_RTOL} \max_k |a_k|,\
        \mathrm{SLOPE\_RTOL} \max(\mathrm{slope\_unit}_n, \max |\mathrm{slope}|)\big),

    KNOT_RTOL = 1e-6, SLOPE_RTOL = 1e-7, every term in slope units (output per
    pre-activation): the second is the solver's accuracy on the slopes (CLARABEL's default
    tolerances are 1e-8), slope_unit the problem's own slope scale.  Multiplying the
    pre-activations by r and the values by s multiplies every term by s / r: the same knots
    in any units.  The knot count is the sparsity that TV(2) regularisation promotes (the
    number of ReLU-like units of each activation).

    Examples
    --------
    >>> from reference.nn import KnotSplineActivation
    >>> from reference.convex import knot_counts
    >>> layer = KnotSplineActivation([[-1.0, 0.0, 1.0]], [[1.0, 0.0, 1.0]])
    >>> knots, tolerance, lipschitz = knot_counts(layer)
    >>> print(knots, lipschitz)
    [1] [1.]
    """
    spl = layer.knot_spline()
    units = np.broadcast_to(np.asarray(slope_unit, dtype=np.float64), (spl.num_channels,))
    counts, tols, lips = [], [], []
    for k in range(spl.num_channels):
        a = np.abs(spl.jumps[k])
        slopes = np.abs(spl.slopes(k))
        tol = max(KNOT_RTOL * a.max(initial=0.0), SLOPE_RTOL * max(units[k], slopes.max()))
        counts.append(int((a > tol).sum()))
        tols.append(tol)
        lips.append(float(slopes.max()))
    return np.array(counts), np.array(tols), np.array(lips)
