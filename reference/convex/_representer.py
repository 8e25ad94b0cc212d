"""The representer reduction and the interpolation problems (the representer theorem of
Aziznejad et al., IEEE TSP 2020, arXiv:2001.06263: with TV(2) or BV(2) regularisation some
optimal activations are linear splines with their knots at the data), beside the coefficient
problems of reference.convex:

- `reduce_network`: every spline replaced by its interpolant through its values at the data
  (plus the regulariser's extra points), which keeps the outputs at the data and does not
  increase TV2, BV2 or Lip;
- `interpolation_lp`: the least-R spline through given points (an LP);
- `solve_plain_single_neuron`: the textbook one-neuron formulation, for cross-checks only.

Also importable from reference.convex (re-exported there).
"""
from __future__ import annotations

import copy
import time

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from reference._limits import guard
from reference._numerics import as_finite_array
from reference.convex._problem import knot_counts
from reference.convex._solve import MAX_PROBLEM_SIZE, check_samples, data_grid
from reference.convex._solver_settings import check_solver
from reference.exceptions import SolveFailed
from reference.nn._network import KnotSplineActivation, Network
from reference.nn._regularisers import get as get_regulariser


def solve_plain_single_neuron(z, y, lam: float, solver: str = "CLARABEL") -> dict:
    """The textbook formulation, for cross-checks only: one neuron, sigma(z_m) fitted to y_m
    (squared loss, TV2), unknowns the values u at the sorted distinct points, slopes
    diff(u) / h (a matrix with entries 1/h), TV2 = ||diff(diff(u) / h)||_1.  Returns
    status, objective, points, values, seconds.  Ill-conditioned for close points (the
    entries 1/h grow without bound as two points meet); reference.convex.solve_layer, with
    values and slopes tied by u_{i+1} - u_i = h_i s_i, is the reference."""
    import cvxpy as cp

    solver = check_solver(solver, "qp")
    z = as_finite_array(z, "z", ndim=1)
    g, idx = np.unique(z, return_inverse=True)
    h = np.diff(g)
    p = len(g)
    slope = sp.diags(1.0 / h) @ sp.diags([-np.ones(p - 1), np.ones(p - 1)], [0, 1],
                                          shape=(p - 1, p))
    d1 = sp.diags([-np.ones(p - 2), np.ones(p - 2)], [0, 1], shape=(p - 2, p - 1))
    u = cp.Variable(p)
    select = sp.csr_array((np.ones(len(z)), (np.arange(len(z)), idx)), shape=(len(z), p))
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(select @ u - y)
                                     + lam * cp.norm1(d1 @ (slope @ u))))
    t0 = time.perf_counter()
    try:
        problem.solve(solver=solver)
        status = problem.status
    except cp.error.SolverError as exc:
        status = f"solver error ({exc})"
    return {"status": status, "objective": problem.value, "points": g,
            "values": None if u.value is None else np.asarray(u.value),
            "seconds": time.perf_counter() - t0}


def interpolation_lp(points: ArrayLike, values: ArrayLike, reg: str = "tv2",
                     lip_max: float | None = None, solver: str = "CLARABEL",
                     max_size: float = MAX_PROBLEM_SIZE) -> dict:
    r"""The interpolating linear spline of least TV(2) or BV(2) norm, by linear programming.

    Parameters
    ----------
    points : array_like, shape (P,)
        The distinct interpolation points t_i, P >= 2.
    values : array_like, shape (P,)
        The values sigma(t_i) prescribed there.
    reg : {'tv2', 'bv2'}, default 'tv2'
        The regulariser R: TV(2), or BV(2) = TV(2) + |sigma(0)| + |sigma(1)|.
    lip_max : float, optional
        A bound on every slope; None: no bound.
    solver : str, default 'CLARABEL'
        A cvxpy solver for LPs.
    max_size : float, default MAX_PROBLEM_SIZE (500000)
        Size guard on the number of grid points.

    Returns
    -------
    result : dict
        ``status`` ("optimal"), ``objective`` (float: the least R, cvxpy's),
        ``objective_check`` (R of the returned spline, in NumPy), ``grid`` (ndarray, shape
        (G,): the sorted points, plus 0 and 1 for BV2), ``values`` (ndarray, shape (G,):
        the spline's values there) and ``lipschitz`` (float: its largest |slope|).

    Raises
    ------
    ValueError
        When points and values are not finite 1-D arrays of one value per distinct point
        (at least 2), or reg or solver is not a known one.
    TooLarge
        Over max_size grid points, before anything is built.
    SolveFailed
        When the status is not optimal (a cvxpy SolverError included).

    Notes
    -----
    With grid values u_i and slopes s_i tied by u_{i+1} - u_i = h_i s_i, the LP is

    .. math::

        \min_{u, s} \sum_i |s_{i+1} - s_i|
        \ \big(+ |\sigma(0)| + |\sigma(1)| \text{ for BV(2)}\big)
        \quad \text{s.t.} \quad u_{j(i)} = v_i, \ |s_i| \le L_{\max},

    values fixed at the points and free at 0 and 1.  By the representer theorem of [1]_ no
    continuous-domain spline through the points does better.

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.

    Examples
    --------
    >>> import numpy as np
    >>> from reference.convex import interpolation_lp
    >>> result = interpolation_lp([0.0, 1.0, 2.0], [0.0, 1.0, 0.0])
    >>> print(result["status"], round(result["objective"], 6), np.round(result["values"], 6))
    optimal 2.0 [0. 1. 0.]
    """
    import cvxpy as cp

    regulariser = get_regulariser(reg)
    solver = check_solver(solver, "lp")
    p = as_finite_array(points, "points", ndim=1)
    v = as_finite_array(values, "values", ndim=1)
    if p.shape != v.shape or len(np.unique(p)) != len(p) or len(p) < 2:
        raise ValueError("points: expected >= 2 distinct points with one value each")
    guard("interpolation_lp: grid points", len(p) + 2, max_size, "max_size")
    extra = regulariser.extra_points
    g = np.unique(np.concatenate([p, extra])) if extra else np.sort(p)
    n = len(g)
    u, s = cp.Variable(n), cp.Variable(n - 1)
    fixed = np.searchsorted(g, p)
    cons = [u[1:] - u[:-1] == cp.multiply(np.diff(g), s), u[fixed] == v]
    if lip_max is not None:
        cons.append(cp.abs(s) <= lip_max)
    tv2 = cp.norm1(s[1:] - s[:-1]) if n > 2 else 0.0
    at_extra = u[np.searchsorted(g, extra)] if extra else None      # sigma(t), t in extra
    problem = cp.Problem(cp.Minimize(regulariser.cvx_term(tv2, at_extra)), cons)
    try:
        problem.solve(solver=solver)
        status = problem.status
    except cp.error.SolverError as exc:
        status = f"solver error ({exc})"
    if status != "optimal":
        raise SolveFailed(f"interpolation_lp: {solver} status {status!r}; no spline returned")
    layer = KnotSplineActivation([g], [np.asarray(u.value)])
    spl = layer.spline
    check = float(regulariser.value(spl)[0])
    return {"status": problem.status, "objective": float(problem.value),
            "objective_check": check, "grid": g, "values": np.asarray(u.value),
            "lipschitz": float(spl.lipschitz()[0])}


def reduce_network(net: Network, x: ArrayLike, reg: str = "tv2") -> tuple[Network, dict]:
    """Replace every spline by its interpolant at the data: the representer reduction.

    Parameters
    ----------
    net : Network
        The network; its spline layers (uniform-grid or knot-form) are reduced.
    x : array_like, shape (M, N_0)
        The data, at least one sample.
    reg : {'tv2', 'bv2'}, default 'tv2'
        The regulariser whose extra points join the data (0 and 1 for BV2).

    Returns
    -------
    model : Network
        A copy of net whose spline layers are knot-form layers (KnotSplineActivation).
    report : dict
        ``neurons``: per neuron a dict (``layer``, ``neuron``, ``points``,
        ``knots_before`` / ``knots_after`` with ``knot_tolerance_before`` / ``_after``,
        ``tv2_before`` / ``_after``, ``bv2_before`` / ``_after``, ``lipschitz_before`` /
        ``_after``); ``max_output_change``: the largest |f_new - f_old| on x over
        max(1, max |f_old|).

    Raises
    ------
    ValueError
        When reg is not a known regulariser or x does not fit the network.

    Notes
    -----
    Every spline layer, first to last, is replaced by the piecewise-linear interpolants of
    its splines through their values at the neuron's pre-activations on x (merged as in
    `merge_points`; plus 0 and 1 for BV2).  The interpolant of sigma at points t_1 < ... <
    t_P agrees with sigma there, and on each [t_i, t_{i+1}] its slope is a mean of sigma's,
    so its slope changes sum to at most TV(2)(sigma): outputs at x are unchanged (up to the
    merging) and TV(2), BV(2) and Lip of every neuron do not increase.  This is the
    reduction behind the representer theorem of [1]_ (knots at the data suffice).

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.

    Examples
    --------
    >>> import numpy as np
    >>> from reference.nn import build_mlp
    >>> from reference.convex import reduce_network
    >>> net = build_mlp([1, 3, 1], activation="spline", rng=0)
    >>> x = np.linspace(-1.0, 1.0, 5)[:, None]
    >>> model, report = reduce_network(net, x)
    >>> print(len(report["neurons"]), report["max_output_change"] < 1e-12)
    3 True
    >>> all(n["tv2_after"] <= n["tv2_before"] + 1e-12 for n in report["neurons"])
    True
    """
    get_regulariser(reg)
    x = check_samples(net, x)
    new = copy.deepcopy(net)
    report = []
    before_out = net.forward(x)
    for i, layer in enumerate(net.layers):
        if not layer.is_spline:
            continue
        z = Network(new.layers[:i]).forward(x) if i > 0 else x
        grids = data_grid(z, reg)
        longest = max(len(g) for g in grids)
        probe = np.stack([np.pad(g, (0, longest - len(g)), mode="edge")
                          for g in grids], axis=1)            # (<= M + 2, N): one pass
        at_grid = layer.forward(probe)[0]
        values = [at_grid[:len(g), n] for n, g in enumerate(grids)]
        new.layers[i] = KnotSplineActivation(grids, values)
        old_counts, old_tols, _ = knot_counts(layer)
        new_counts, new_tols, _ = knot_counts(new.layers[i])
        old_s, new_s = layer.spline, new.layers[i].spline
        for n in range(layer.n_in):
            report.append({"layer": i, "neuron": n, "points": len(grids[n]),
                           "knots_before": int(old_counts[n]), "knots_after": int(new_counts[n]),
                           "knot_tolerance_before": float(old_tols[n]),
                           "knot_tolerance_after": float(new_tols[n]),
                           **{f"{key}_{when}": float(getattr(s, key)()[n])
                              for key in ("tv2", "bv2", "lipschitz")
                              for when, s in (("before", old_s), ("after", new_s))}})
    after_out = new.forward(x)
    change = float(np.abs(after_out - before_out).max() / max(1.0, np.abs(before_out).max()))
    return new, {"neurons": report, "max_output_change": change}
