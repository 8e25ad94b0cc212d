"""With the weights fixed, the activations of one spline layer whose downstream map is affine
enter the outputs linearly: the problem in them is convex, and cvxpy solves it to a
certified optimum (the variational problem and representer theorem of Aziznejad et al.,
IEEE TSP 2020, arXiv:2001.06263: the optimal activations are linear splines with their
knots at the data).

    min_sigma  sum_m E(y_m, A sigma(z_m) + c) + lambda * sum_n R(sigma_n)   [|sigma_n'| <= L_max]

z_m = pre-activations of the layer at x_m (M, N), A (N_L, N) and c (N_L,) the affine map
after it, R = TV2 or BV2, E = squared / logistic / cross-entropy summed over samples.

Every grid is parametrised by the values u_i at its sorted points g_i and the slopes s_i of
the pieces between them, tied by u_{i+1} - u_i = h_i s_i (h_i = g_{i+1} - g_i; no matrices
with entries 1/h).  A point z in piece i (the first / last piece beyond the ends) has
sigma(z) = u_i + s_i (z - g_i); TV2 = ||diff(s)||_1; Lip = max |s_i|; BV2 adds |sigma(0)| +
|sigma(1)|.  Grids:
- "data": per neuron its pre-activations at the data (plus 0 and 1 for BV2), points closer
  than merge_rtol * spread (default MERGE_RTOL; spread the range of the neuron's points)
  merged (the first one kept): by the representer theorem the optimum over all
  continuous-domain splines with no knot between merged points, which the certificate
  reports (`merge_report`);
- "uniform": x_min + k*step, k < K, as the DeepSplines grid (the layer's own by default);
- an explicit list of grid points per neuron.
The regulariser R is an entry of reference.nn._regularisers (its extra points, cvxpy term and
NumPy value).  The representer reduction and the interpolation LP live in
reference.convex._representer (still importable from here).  Every solve runs in the internal units
of reference.convex._certify (y, c divided by T = max |y - c|; per neuron n the pre-activations and
its grid by a power of two r_n near their spread, column n of A by a power of two a_n near its
norm; TV2's weight lambda / (T a_n r_n)), and reference.convex._certify gives the verdict ("optimal"
only with a certificate at its tolerance).  The solvers allowed and their settings:
reference.convex._solver_settings.
"""
from __future__ import annotations

import copy
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from reference._checks import as_finite_array, check_choice
from reference._format import exact
from reference.exceptions import InaccurateSolution, SolveFailed, SolveNotCertified
from reference._limits import Deadline, check_time_limit, guard
from reference.nn._losses import LOSSES, check_targets, loss_and_grad
from reference.nn._network import (Dense, Identity, KnotSplineActivation, Network,
                               SplineActivation)
from reference.nn._regularisers import REGULARISERS as REGISTRY, get as get_regulariser
from reference.convex._solver_settings import (LOSS_CLASS, PROBLEM_CLASSES,  # noqa: F401 (re-exported)
                                       check_solver, refine_passes, solver_attempts,
                                       usable_solvers)
from reference.nn._spline import LinearSpline

MERGE_RTOL = 1e-9          # data grid: points closer than this * spread are merged
CHECK_RTOL = 1e-6          # |objective - objective_check| <= this * max(|objective|, unit^2)
TIME_LIMIT = 300.0         # seconds of one solve_layer / solve_path call (time_limit)
REGULARISERS = tuple(REGISTRY)     # ("tv2", "bv2"): the names of reference.nn._regularisers
MAX_PROBLEM_SIZE = 500_000  # size guard: grid points + samples x neurons (see problem_size)


def split_at(net: Network, layer: int):
    """(head, spline layer, A, c): head maps x to the layer's pre-activations (None when the
    layer is first), A (N_L, N) and c (N_L,) the affine map after it.  ValueError when layer
    is not a spline layer or what follows it is not affine (dense and identity layers only)."""
    if not isinstance(layer, (int, np.integer)) or not 0 <= layer < len(net.layers):
        raise ValueError(f"layer: expected an index in [0, {len(net.layers)}), got {layer!r}")
    target = net.layers[layer]
    if not isinstance(target, (SplineActivation, KnotSplineActivation)):
        raise ValueError(f"layer: layer {layer} is a {target.kind} layer, not a spline layer")
    width = target.n_in
    a_mat, c = np.eye(width), np.zeros(width)
    for j, after in enumerate(net.layers[layer + 1:], start=layer + 1):
        if isinstance(after, Dense):
            w = after.params["weight"]
            a_mat, c = w @ a_mat, w @ c + after.params.get("bias", 0.0)
        elif not isinstance(after, Identity):
            raise ValueError(f"layer: the map after layer {layer} is not affine (layer {j} is "
                             f"{after.kind}); the coefficient problem would not be convex")
    head = Network(net.layers[:layer]) if layer > 0 else None
    return head, target, a_mat, c


def merge_points(z: np.ndarray, rtol: float = MERGE_RTOL) -> np.ndarray:
    """Sorted distinct points of z, each point within rtol * spread (max z - min z) of the
    previous kept point dropped (rtol = 0: only equal points)."""
    z = np.sort(z)
    tol = rtol * float(z[-1] - z[0])
    keep, last = [], -np.inf
    for value in np.unique(z):          # sequential: a chain of near points keeps its head
        if value - last > tol:
            keep.append(value)
            last = value
    return np.array(keep)


def data_grid(z: np.ndarray, reg: str, merge_rtol: float = MERGE_RTOL) -> list:
    """The data-adaptive grid per neuron: merged pre-activations (plus the regulariser's
    extra_points: 0 and 1 for BV2; `merge_points` with merge_rtol); a neuron with a single
    point z0 gets a second one at z0 + 2^e, 2^e the power of two nearest |z0| (1 if z0 = 0):
    its spline is then affine, and the second point scales with z."""
    from reference.convex._certify import nearest_power_of_two

    grids = []
    for n in range(z.shape[1]):
        g = merge_points(_neuron_points(z, reg, n), merge_rtol)
        step = np.ldexp(1.0, nearest_power_of_two(abs(float(g[0]))))
        grids.append(g if len(g) >= 2 else np.array([g[0], g[0] + step]))
    return grids


def _neuron_points(z, reg, n) -> np.ndarray:
    """Neuron n's pre-activations plus the regulariser's extra points."""
    extra = get_regulariser(reg).extra_points
    return np.concatenate([z[:, n], extra]) if extra else z[:, n]


def merge_report(z: np.ndarray, reg: str, grids: list, merge_rtol: float) -> dict:
    """What the data grid merged: merged_points per neuron (distinct points of z_n, plus the
    extra points, left out of grid_n because they lie within merge_rtol * spread of a kept
    point), merge_max_distance per neuron (the largest distance from a merged point to the
    kept point below it, 0 if none), merge_rtol.  With merged points the optimum is the one
    over splines with no knot between a merged point and its kept neighbour (an upper bound
    on the unmerged optimum)."""
    counts, dists = [], []
    for n, g in enumerate(grids):
        dropped = np.setdiff1d(np.unique(_neuron_points(z, reg, n)), g)
        below = g[np.clip(np.searchsorted(g, dropped, side="right") - 1, 0, len(g) - 1)]
        counts.append(len(dropped))
        dists.append(float(np.max(dropped - below, initial=0.0)))
    return {"merged_points": counts, "merge_max_distance": dists, "merge_rtol": merge_rtol}


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
        The regulariser's weights (w, q, points), a ``reference.convex._certify.RegWeights``
        (default ``RegWeights.plain``: 1, 1 and the regulariser's points).

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
                 deadline: Deadline | None = None, weights: Any = None) -> None:
        import cvxpy as cp

        from reference.convex._certify import RegWeights

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
        self.problem = cp.Problem(cp.Minimize(_cvx_loss(loss, out, y) + self.lam * reg_term),
                                  cons)

    def solve(self, lam: float, solver: str = "CLARABEL", warm_start: bool = True,
              settings: dict | None = None) -> dict:
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
        t0 = time.perf_counter()
        attempts, raw, first = [], None, False
        try:
            data, chain, inverse = self.problem.get_problem_data(solver, solver_opts={})
            retries = solver_attempts(solver, settings)
        except cp.error.SolverError as exc:         # the solver cannot take this problem
            retries, status = (), f"solver error ({exc})"
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
        model.
        """
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
    if loss == "xent":
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


def _cvx_loss(loss, out, y):
    import cvxpy as cp

    if loss == "squared":
        return 0.5 * cp.sum_squares(out - y)
    if loss == "logistic":
        return cp.sum(cp.logistic(out[:, 0]) - cp.multiply(y.ravel(), out[:, 0]))
    onehot = np.eye(out.shape[1])[y.astype(int)]
    return cp.sum(cp.log_sum_exp(out, axis=1)) - cp.sum(cp.multiply(onehot, out))


def numpy_objective(net: Network, layer: int, x, y, loss: str, lam: float, reg: str) -> float:
    """data term + lam * sum_n R(sigma_n) of layer `layer`, evaluated in NumPy on the model."""
    out = net.forward(x)
    data, _ = loss_and_grad(loss, out, check_targets(loss, out.shape, y))
    penalty = get_regulariser(reg).value(net.layers[layer].spline)
    return float(data + lam * penalty.sum())


def check_samples(net: Network, x) -> np.ndarray:
    """x (M, N_0) as checked by the network, with at least one sample."""
    x = net.check_inputs(x)
    if len(x) == 0:
        raise ValueError(f"x: expected at least one sample, got shape {x.shape}")
    return x


def problem_size(grid_points: int, samples: int, neurons: int) -> int:
    """The size guard's estimate of a coefficient problem: grid points (each a value and a
    slope variable) + samples x neurons (each a row of the evaluation).  For one neuron cvxpy
    and CLARABEL take about 4 KB and 0.2 ms per unit (uniform grid of 1e5 points: 0.5 GB,
    22 s; 3e5 points: 1.3 GB, 69 s; data grid of 20 000 points: 7 s).  Several neurons
    coupled through the outputs solve more slowly than this linear estimate says (2-2-1 on
    8000 samples, size 3.2e4: 190 s), so the guard stops runaway sizes, not every long
    solve.  The largest problem the project's performance bar sets, 2-16-1 on 8000
    samples, is 2.6e5."""
    return int(grid_points) + int(samples) * int(neurons)


def prepare(net: Network, layer: int, x, y, loss: str):
    """Validated (x, y in the loss's form, z, A, c)."""
    check_choice(loss, LOSSES, "loss")
    head, target, a_mat, c = split_at(net, layer)
    x = check_samples(net, x)
    y = check_targets(loss, (x.shape[0], net.n_out), y)
    z = head.forward(x) if head is not None else x
    if z.shape[1] != target.n_in:
        raise ValueError(f"x: gives pre-activations of width {z.shape[1]}, layer {layer} "
                         f"expects {target.n_in}")
    return x, y, z, a_mat, c


def grids_for(net, layer, z, reg, grid, size=None, max_size=MAX_PROBLEM_SIZE,
              merge_rtol=MERGE_RTOL):
    """The grid points per neuron and whether the result is a uniform-grid spline; the size
    guard (problem_size over max_size: TooLarge) is checked before a grid is built."""
    m, n = z.shape

    def check(points):
        guard(f"solve: problem size (grid points {points} + samples x neurons {m} x {n})",
              problem_size(points, m, n), max_size, "max_size")
    if isinstance(grid, str):
        check_choice(grid, ("data", "uniform"), "grid")
        if grid == "data":
            check(n * (m + len(get_regulariser(reg).extra_points)))
            return data_grid(z, reg, merge_rtol), None
        target = net.layers[layer]
        if not isinstance(target, SplineActivation):
            raise ValueError(f"grid: 'uniform' needs a uniform-grid spline layer at {layer}")
        old = target.spline
        k = old.size if size is None else int(size)
        if k < 3:
            raise ValueError(f"size: expected K >= 3 coefficients, got {size!r}")
        check(k * n)
        lo, hi = old.x_min, old.x_min + (old.size - 1) * old.step
        step = (hi - lo) / (k - 1)
        g = lo + step * np.arange(k)
        return [g.copy() for _ in range(n)], (lo, step)
    grids = []
    for k, g in enumerate(grid):
        g = np.unique(as_finite_array(g, f"grid[{k}]", ndim=1))
        if len(g) < 2:
            raise ValueError(f"grid[{k}]: expected at least 2 distinct points")
        grids.append(g)
    if len(grids) != n:
        raise ValueError(f"grid: expected {n} arrays (one per neuron), got {len(grids)}")
    check(sum(len(g) for g in grids))
    return grids, None


def solve_layer(net: Network, layer: int, x: ArrayLike, y: ArrayLike, *, loss: str = "squared",
                lam: float = 1e-3, reg: str = "tv2", grid: str | list[ArrayLike] = "data",
                size: int | None = None, lip_max: float | None = None,
                solver: str = "CLARABEL", max_size: float = MAX_PROBLEM_SIZE,
                method: str | None = None, polish: bool = True,
                merge_rtol: float = MERGE_RTOL, time_limit: float = TIME_LIMIT,
                progress: bool = False) -> tuple[Network, dict]:
    r"""Solve for the activations of one spline layer with every weight fixed, certified.

    Parameters
    ----------
    net : Network
        The network; every weight stays fixed.
    layer : int
        Index in ``net.layers`` of a spline layer (uniform-grid or knot-form) followed by
        dense and identity layers only.
    x : array_like, shape (M, N_0)
        The inputs, at least one sample.
    y : array_like
        The targets in the loss's form: (M, N_L) floats (squared), (M,) or (M, 1) labels in
        {0, 1} (logistic), (M,) class indices (xent).
    loss : {'squared', 'logistic', 'xent'}, default 'squared'
        The data term E, summed over the samples.
    lam : float, default 1e-3
        The regularisation weight lambda >= 0.
    reg : {'tv2', 'bv2'}, default 'tv2'
        The regulariser R: TV(2), or the BV(2) norm TV(2) + |sigma(0)| + |sigma(1)|.
    grid : {'data', 'uniform'} or list of array_like, default 'data'
        The candidate knots: per neuron its pre-activations at the data (merged within
        merge_rtol; the representer theorem's grid), the layer's uniform grid (``size``
        points), or one explicit array of grid points per neuron.
    size : int, optional
        The number K >= 3 of uniform grid points (default: the layer's own).
    lip_max : float, optional
        A bound L_max > 0 on every slope; None: no bound.
    solver : str, default 'CLARABEL'
        A cvxpy solver that can solve the problem's class (squared loss a QP / SOCP,
        logistic and cross-entropy an exponential cone program).
    max_size : float, default MAX_PROBLEM_SIZE (500000)
        Size guard on `problem_size`, checked before the grid is built.
    method : {'active', 'full'}, optional
        "active" (the default for grid="data": knots added where the optimality condition
        fails, reference.convex._active_set) or "full" (every grid point at once; the only
        choice for the other grids).
    polish : bool, default True
        With method "active": re-solve on the knots of the optimum (knot-count polishing).
    merge_rtol : float, default MERGE_RTOL (1e-9)
        The data grid's merge tolerance, in [0, 1), relative to each neuron's spread.
    time_limit : float, default TIME_LIMIT (300.0)
        Seconds for the whole call (building, solving and certifying).
    progress : bool, default False
        A tqdm bar on stderr.

    Returns
    -------
    model : Network
        A copy of net whose layer holds the certified optimum: a uniform-grid spline layer
        for grid="uniform", a knot-form layer (KnotSplineActivation) otherwise.
    certificate : dict
        ``solver``, ``status`` ("optimal"), ``attempts``, ``objective`` (in the problem's
        units), ``objective_check`` (NumPy, on the returned model), ``gap`` (CLARABEL's
        primal - dual objective, else None), ``check_rtol``, ``seconds``, ``knots``,
        ``knot_tolerance`` and ``lipschitz`` (per neuron, `knot_counts`), ``grid_points``,
        ``method``, ``method_certified``, ``gauge_directions_pinned``,
        ``gauge_shift_removed``, ``lam``, ``reg``, ``loss``, ``lip_max``, and the verdict
        of reference.convex._certify: ``certified_by`` ("dual bound" or "solver"),
        ``gap_tolerance``, ``lower_bound`` (a proven lower bound on the optimum, or None)
        with ``lower_bound_note``, ``candidates`` (the cheap feasible points and their
        objectives), ``returned_point``, ``solver_objective``, ``unit`` (the internal scale
        T) and ``objective_unit``; on the data grid ``merged_points``,
        ``merge_max_distance``, ``merge_rtol`` (`merge_report`); with method "active" also
        ``rounds``, ``points_per_neuron``, ``candidate_points``, ``worst_violation`` and
        the polishing fields (`solve_layer_active`).

    Raises
    ------
    ValueError
        When an argument is out of range: layer not a spline layer or not followed by an
        affine map, a bad loss, reg, grid, size, lam, lip_max, merge_rtol or method, or
        targets that do not fit the loss.
    TooLarge
        When `problem_size` exceeds max_size, before the grid is built.
    SolveFailed
        No model: a solver status other than optimal (a cvxpy SolverError included), or
        objective_check off by more than CHECK_RTOL * max(|F|, U).
    SolveNotCertified
        A SolveFailed with ``.model`` (the best feasible point) and ``.certificate``:
        status "time_limit" (time_limit seconds passed; CLARABEL stops inside a solve) or
        "not_optimal" (no certificate at the tolerance, e.g. the zero spline beats the
        solver's point).

    See Also
    --------
    solve_path : The same for a sequence of lambdas.
    reduce_network : The representer reduction of every spline layer.

    Notes
    -----
    With z_m (M, N) the layer's pre-activations at x_m and A, c the affine map after it, the
    problem in the activations sigma_n of the layer is convex [1]_:

    .. math::

        \min_{\sigma} \sum_m E\big(y_m, A \sigma(z_m) + c\big)
        + \lambda \sum_n R(\sigma_n)
        \quad \text{s.t.} \ \mathrm{Lip}(\sigma_n) \le L_{\max},

    R(sigma) = TV(2)(sigma) = ||D^2 sigma||_M (the sum of the slope jumps |a_k| of a linear
    spline) or ||sigma||_BV(2) = TV(2)(sigma) + |sigma(0)| + |sigma(1)|.  On the data grid,
    by the representer theorem of [1]_, the optimum over all continuous-domain activations
    is a linear spline with its knots at the data, so the solve is exact (up to the merging
    of points closer than merge_rtol, reported).  For TV(2), the result is moved along the
    gauge directions (affine shifts invisible at the data, pinned during the solve) to the
    representative of least sum of squared values at the grid points
    (`min_norm_representative`), so that two correct solvers return the same coefficients.
    Every solve runs in the internal units of reference.convex._certify; "optimal" is
    earned by a NumPy dual lower bound (Fenchel duality) or, where none exists, by the
    method's own certificate, each at the gap tolerance.  time_limit covers building,
    solving and certifying, from the moment the data are checked and cvxpy is loaded.

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.

    Examples
    --------
    >>> import numpy as np
    >>> from reference.nn import build_mlp
    >>> from reference.convex import solve_layer
    >>> net = build_mlp([1, 2, 1], activation="spline", rng=0)
    >>> x = np.linspace(-1.0, 1.0, 9)[:, None]
    >>> model, certificate = solve_layer(net, 1, x, np.abs(x), lam=1e-3)
    >>> print(certificate["status"], certificate["certified_by"], certificate["knots"])
    optimal dual bound [0, 1]
    >>> print(round(certificate["objective"], 4))
    0.0074
    """
    (_, new, cert), = _solve_lams(net, layer, x, y, [lam], "lam", loss=loss, reg=reg,
                                  grid=grid, size=size, lip_max=lip_max, solver=solver,
                                  max_size=max_size, method=method, polish=polish,
                                  merge_rtol=merge_rtol, time_limit=time_limit,
                                  progress=progress)
    return new, cert


def solve_path(net: Network, layer: int, x: ArrayLike, y: ArrayLike, lams: Sequence[float], *,
               loss: str = "squared", reg: str = "tv2", grid: str | list[ArrayLike] = "data",
               size: int | None = None, lip_max: float | None = None, solver: str = "CLARABEL",
               max_size: float = MAX_PROBLEM_SIZE, method: str | None = None,
               polish: bool = True, merge_rtol: float = MERGE_RTOL,
               time_limit: float = TIME_LIMIT, progress: bool = False) -> list:
    """Solve the coefficient problem of one spline layer for every lambda of a path.

    Parameters
    ----------
    net : Network
        The network; every weight stays fixed.
    layer : int
        Index in ``net.layers`` of the spline layer (as in `solve_layer`).
    x : array_like, shape (M, N_0)
        The inputs, at least one sample.
    y : array_like
        The targets in the loss's form (as in `solve_layer`).
    lams : sequence of float
        The regularisation weights lambda >= 0, solved in this order (at least one).
    loss : {'squared', 'logistic', 'xent'}, default 'squared'
        As in `solve_layer`.
    reg : {'tv2', 'bv2'}, default 'tv2'
        As in `solve_layer`.
    grid : {'data', 'uniform'} or list of array_like, default 'data'
        As in `solve_layer`.
    size : int, optional
        As in `solve_layer`.
    lip_max : float, optional
        As in `solve_layer`.
    solver : str, default 'CLARABEL'
        As in `solve_layer`.
    max_size : float, default MAX_PROBLEM_SIZE (500000)
        As in `solve_layer`.
    method : {'active', 'full'}, optional
        As in `solve_layer`.
    polish : bool, default True
        As in `solve_layer`.
    merge_rtol : float, default MERGE_RTOL (1e-9)
        As in `solve_layer`.
    time_limit : float, default TIME_LIMIT (300.0)
        Seconds for the whole path (building, solving and certifying every lambda).
    progress : bool, default False
        A tqdm bar on stderr.

    Returns
    -------
    path : list of tuple
        One (lam, model, certificate) per lambda, as `solve_layer` returns them.  Each
        certificate's ``seconds`` run from the end of the previous solve (the first
        includes building the problem).

    Raises
    ------
    ValueError, TooLarge, SolveFailed, SolveNotCertified
        As `solve_layer`, at the first lambda that raises.

    See Also
    --------
    solve_layer : One lambda.

    Notes
    -----
    Method "full": the problem is compiled once (lambda is a DPP Parameter of
    `CoefficientProblem`); "active": each lambda starts from the previous one's active set.
    time_limit bounds the whole path.
    """
    return _solve_lams(net, layer, x, y, lams, "lams", loss=loss, reg=reg, grid=grid,
                       size=size, lip_max=lip_max, solver=solver, max_size=max_size,
                       method=method, polish=polish, merge_rtol=merge_rtol,
                       time_limit=time_limit, progress=progress)


METHODS = ("active", "full")


def check_method(method, grid) -> str:
    """The solve method: None means "active" for the data grid, "full" otherwise."""
    is_data = isinstance(grid, str) and grid == "data"
    if method is None:
        return "active" if is_data else "full"
    check_choice(method, METHODS, "method")
    if method == "active" and not is_data:
        given = grid if isinstance(grid, str) else "a list of grids"
        raise ValueError("method: 'active' works on the data grid only (grid='data'); "
                         f"use method='full' for grid={given!r}")
    return method


def _solve_lams(net, layer, x, y, lams, name, *, loss, reg, grid, size, lip_max, solver,
                max_size, method=None, polish=True, merge_rtol=MERGE_RTOL,
                time_limit=TIME_LIMIT, progress=False):
    """Validate, build the problem once (full) or per lambda (active), solve and certify it
    for every lambda, in the internal units of reference.convex._certify (y by T, the
    pre-activations of neuron n and its grid by the power of two r_n of `certify.z_units`)."""
    from tqdm import tqdm

    from reference.convex import _certify as certify

    lams = [float(lam) for lam in lams]
    if not lams or not all(np.isfinite(lam) and lam >= 0 for lam in lams):
        raise ValueError(f"{name}: expected finite numbers >= 0, got {lams!r}")
    get_regulariser(reg)
    method = check_method(method, grid)
    if lip_max is not None and not (np.isfinite(lip_max) and lip_max > 0):
        raise ValueError(f"lip_max: expected a positive number, got {lip_max!r}")
    if not (np.isfinite(merge_rtol) and 0 <= merge_rtol < 1):
        raise ValueError(f"merge_rtol: expected a number in [0, 1), got {merge_rtol!r}")
    check_time_limit(time_limit)
    x, y, z, a_mat, c = prepare(net, layer, x, y, loss)
    grids, uniform = grids_for(net, layer, z, reg, grid, size, max_size, merge_rtol)
    merged = merge_report(z, reg, grids, merge_rtol) \
        if isinstance(grid, str) and grid == "data" else {}
    solver = check_solver(solver, LOSS_CLASS[loss])            # imports cvxpy
    deadline = Deadline(time_limit)          # from here: building, solving, certifying
    zr = certify.z_units(z, None if uniform is None and isinstance(grid, str) else grids)
    base = certify.Scaled.build(z, a_mat, c, y, loss, reg, 0.0, lip_max, zr,
                                certify.column_units(a_mat))
    grids = base.internal_grids(grids)                  # exact: powers of two
    bar = tqdm(total=len(lams), unit="lambda", desc=f"solve ({method})", leave=False,
               disable=not progress or not sys.stderr.isatty(), file=sys.stderr)
    gauge = gauge_basis(base.z, base.a_mat, loss, lip_max is None, merge_rtol) \
        if get_regulariser(reg).ignores_affine else None
    out, start, prob = [], None, None
    t0 = deadline.start                      # the first lambda's seconds include the setup
    with bar:
        for lam in lams:
            scaled, earlier, refused = base.with_lam(lam), [], None
            passes = refine_passes(solver)
            for index, settings in enumerate(passes):
                try:
                    new, cert, masks, extra, stopped, prob = _solve_once(
                        net, layer, x, y, scaled, grids, uniform, method, solver, start,
                        polish, gauge, deadline, bar, prob, settings)
                except SolveFailed:
                    if refused is None:
                        raise
                    raise refused from None         # the first pass's point and reason
                cert.setdefault("method", method)
                cert.update(merged, seconds=time.perf_counter() - t0)
                if earlier:
                    cert["refined"] = ("the first pass was not certified; solved again with "
                                       f"{settings}")
                try:
                    new, cert = certify.conclude(net, layer, x, y, lam, scaled, grids,
                                                 uniform, new, cert, stopped=stopped,
                                                 extra_points=extra + earlier)
                    break
                except SolveNotCertified as exc:
                    if stopped or index + 1 == len(passes) or deadline.expired() \
                            or exc.certificate["status"] != "not_optimal":
                        raise
                    refused = exc
                    earlier = [("first pass's point", scaled.internal_pieces(
                        exc.model.layers[layer], grids))]
            start = masks
            out.append((lam, new, cert))
            bar.update()
            t0 = time.perf_counter()
    return out


def _solve_once(net, layer, x, y, scaled, grids, uniform, method, solver, start, polish,
                gauge, deadline, bar, prob, settings):
    """One pass of `_solve_lams` for one lambda: (model or None, certificate, active masks,
    extra feasible points, the reason it stopped or None, the full method's problem);
    settings: CLARABEL settings for every solve of the pass (None: `solver_attempts`)."""
    extra, stopped, masks = [], None, start
    try:
        if method == "active":
            from reference.convex import _active_set as active_set

            new, cert, masks, extra, stopped = active_set.solve_layer_active(
                net, layer, x, y, scaled, grids, solver=solver, start=start, polish=polish,
                gauge=gauge, deadline=deadline, bar=bar, settings=settings)
        else:
            bar.set_postfix_str(f"{sum(len(g) for g in grids)} grid points")
            prob = prob or problem_for(scaled, grids, gauge, deadline)
            result = prob.solve(scaled.lam, solver, settings=settings)
            if result["status"] == "time_limit":
                new, cert = None, {"solver": solver, "attempts": result["attempts"]}
                stopped = f"stopped at the time limit {deadline.time_limit:g} s"
            else:
                new, cert = finish(net, layer, x, y, scaled.lam_given, prob, result, uniform,
                                   0.0, scaled=scaled)
    except InaccurateSolution as exc:               # still a feasible point: certify compares
        new, cert = None, {"solver": solver, "rejected": str(exc)}
        extra = [("solver's point (inaccurate)", exc.pieces)]
    return new, cert, masks, extra, stopped, prob


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
    (x_min, step), else a knot-form layer."""
    new = copy.deepcopy(net)
    units = np.broadcast_to(np.asarray(unit, dtype=np.float64), (len(pieces),))
    if uniform is not None:
        coeffs = units[:, None] * np.stack([v for _, v in pieces])
        new.layers[layer] = SplineActivation(LinearSpline(coeffs, uniform[0], uniform[1]))
    else:
        zr = np.ones(len(pieces)) if zr is None else zr
        new.layers[layer] = KnotSplineActivation([g * r for (g, _), r in zip(pieces, zr)],
                                                 [u * v for (_, v), u in zip(pieces, units)])
    return new


def finish(net, layer, x, y, lam, prob, result, uniform, seconds, norm_grids=None, *,
           scaled):
    """Build the new model from a solved problem and certify it (see `solve_layer`); the
    splines are moved to the gauge's minimum-norm representative over norm_grids (default
    the problem's grids).  prob holds the problem in the internal units of `scaled`
    (reference.convex._certify.Scaled): values are multiplied by its value_unit and grid points by
    its zr, objective and gap by T^2; the NumPy check is on the returned model with the caller's
    y and lam.  method_certified: the solve ran with the solver's default settings
    (`CoefficientProblem.solve`: a retry's own word is not trusted)."""
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
                 "seconds": seconds, "knots": knots.tolist(), "knot_tolerance": tols.tolist(),
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
    spl = layer.spline
    if isinstance(layer, SplineActivation):
        spl = spl.to_knot_form()
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


MOVED_TO_REPRESENTER = ("solve_plain_single_neuron", "interpolation_lp", "reduce_network")


def __getattr__(name):
    """`from reference.convex import reduce_network` (and interpolation_lp,
    solve_plain_single_neuron) keeps working: they live in reference.convex._representer, which
    imports this module, so they are looked up on first use (PEP 562), not imported here."""
    if name in MOVED_TO_REPRESENTER:
        from reference.convex import _representer as representer

        return getattr(representer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
