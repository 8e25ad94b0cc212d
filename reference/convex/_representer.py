"""The representer reduction and the interpolation problems (DESIGN section 2, "Variational
problem and representer theorem"), beside the coefficient problems of reference.convex:

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

from reference._numerics import as_finite_array
from reference.convex._solve import MAX_PROBLEM_SIZE, check_samples, data_grid
from reference.convex._solver_settings import check_solver
from reference.convex._problem import knot_counts
from reference.exceptions import SolveFailed
from reference._limits import guard
from reference.nn._network import KnotSplineActivation, Network
from reference.nn._regularisers import get as get_regulariser


def solve_plain_single_neuron(z, y, lam: float, solver: str = "CLARABEL") -> dict:
    """The textbook formulation, for cross-checks only: one neuron, sigma(z_m) fitted to y_m
    (squared loss, TV2), unknowns the values u at the sorted distinct points, slopes
    diff(u) / h (a matrix with entries 1/h), TV2 = ||diff(diff(u) / h)||_1.  Returns
    status, objective, points, values, seconds.  Ill-conditioned for close points (DESIGN
    section 2); reference.convex.solve_layer is the reference."""
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


def interpolation_lp(points, values, reg: str = "tv2", lip_max=None,
                     solver: str = "CLARABEL", max_size: float = MAX_PROBLEM_SIZE) -> dict:
    """Among all linear splines through (points_i, values_i), one with least R (TV2, or BV2
    = TV2 + |sigma(0)| + |sigma(1)|), optionally with Lip <= lip_max: an LP in cvxpy on the
    grid points (plus 0 and 1 for BV2), values fixed at the points, free at 0 and 1; by the
    representer theorem no continuous-domain spline does better.  Returns status, objective,
    the solution as (grid, values), and objective_check (R of the returned spline in NumPy).
    A status other than optimal (a cvxpy SolverError included) raises SolveFailed (a
    RuntimeError); more than
    max_size points: TooLarge before anything is built."""
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


def reduce_network(net: Network, x, reg: str = "tv2") -> tuple[Network, dict]:
    """The representer reduction: every spline layer, first to last, is replaced by the
    piecewise-linear interpolants of its splines through their values at the neuron's
    pre-activations on x (merged as in `merge_points`; plus 0 and 1 for BV2).  Outputs at x
    are unchanged (up to the merging) and TV2, BV2 and Lip of every neuron do not increase.
    Returns (new network, report): report["neurons"] per neuron (layer, neuron, points, knots
    before / after with their tolerances, tv2 / bv2 / lipschitz before / after) and
    report["max_output_change"], the largest |f_new - f_old| on x over max(1, max |f_old|)."""
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
