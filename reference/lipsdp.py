"""LipSDP (Fazlyab et al., NeurIPS 2019): l2 Lipschitz upper bounds by semidefinite
programming, in cvxpy, with a certificate re-evaluated in NumPy.

Network x^0 -> z^{i+1} = W_i x^i -> x^{i+1} = phi_i(z^{i+1}) (i < k hidden blocks) ->
f = W_out x^k, every hidden neuron slope-restricted in [alpha_n, beta_n]: for two inputs,
the increments satisfy (dx - alpha dz)(beta dz - dx) >= 0 per neuron.  LipSDP multiplies
each by lambda >= 0 (T = diag(lambda)); M(lambda, rho) <= 0 below gives
||df||^2 <= rho ||dx^0||^2, so Lip_2(f) <= sqrt(rho); minimise rho.  One multiplier per
neuron (LipSDP-neuron) or per layer (LipSDP-layer).  The coupled "network" variant is left
out (its validity as an upper bound has been disputed).

Loop transformation (an exact change of variables): write every neuron as
x = alpha z + (beta - alpha) psi, psi slope-restricted in [0, 1], i.e. dpsi (dz - dpsi) >= 0,
which is the QC above divided by (beta - alpha)^2 (multiplier lambda' = lambda (beta -
alpha)^2).  The state is v = [x^0; psi] (N = n_0 + n, n the nonlinear neurons), z = A v,
f = C v (A, C: the weights with the linear parts alpha z folded in), B = [0, I_n], and

    M(lambda, rho) = A^T T B + B^T T A - 2 B^T T B + C^T C - rho E_0  <=  0,

E_0 = blkdiag(I_{n_0}, 0).  For ReLU (alpha 0, beta 1) this is the published LMI.  A neuron
with alpha = beta (identity, PReLU slope 1, a spline with K = 2) is linear: its QC reads
-(dx - alpha dz)^2 >= 0 and the untransformed SDP needs lambda -> infinity to use it (CVXOPT
failed with ZeroDivisionError there); here it has no psi and is absorbed into A and C
exactly (`lipsdp_data`), which is that limit.  With every hidden neuron linear the network is
affine and the value is ||C||_2 with no SDP.  A nearly linear neuron keeps lambda' of order
1 (the untransformed lambda ~ 1/(beta - alpha)^2 left the solvers inaccurate).  LipSDP-layer
shares the untransformed multiplier: lambda'_n = mu_l (beta_n - alpha_n)^2 (`_problem`).

Certificate: with the solver's multipliers lambda (clipped at 0), write
M(lambda, 0) = [[P, Q], [Q^T, R]] (P the input block).  If R < 0 (checked by eigvalsh),
M(lambda, rho) <= 0 iff rho >= lambda_max(P - Q R^{-1} Q^T) (Schur complement), so
sqrt of that is an upper bound certified in NumPy whatever the solver's accuracy.  When
the solver's multipliers leave R slightly indefinite (its tolerance), the SDP is solved again
with M <= -margin I (MARGINS, relative to the solver's rho at margin 0): strictly feasible
multipliers, a bound larger by O(margin); every attempt is reported.

Solver: CVXOPT by default.  Its SDP method forms the m x m Schur complement of the
multipliers (m = number of neurons + 1), 0.1-0.4 s on the 2-10-30-20-2 anchor.  CLARABEL
gets the same optimum but factors a KKT system with a dense block of side
N(N+1)/2 = 1953 for the 62 x 62 cone (about 3.4 s); any SDP solver cvxpy knows can be named.

Size guard (reference.limits): before anything is built, `sdp_cost` estimates the work of
the solve from N, m and the widths; over max_sdp_cost (MAX_SDP_COST) it is refused with
TooLarge.  There is no time limit: CVXOPT has no time-limit option, and its cost is
predictable (calibration in `sdp_cost`).  The CLARABEL fallback is only tried when its own
estimate passes the guard.
"""
from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from reference._checks import OverflowResult
from reference.limits import guard
from reference.lipschitz import blocks, check_finite, slope_bounds
from reference.network import Identity, Network

VARIANTS = ("neuron", "layer")
SDP_SOLVERS = ("CVXOPT", "CLARABEL", "SCS", "MOSEK")
DEFAULT_SOLVER = "CVXOPT"
FALLBACK_SOLVER = "CLARABEL"       # tried when the default one fails (the attempts are reported)
SOLVER_RTOL = {"CVXOPT": 1e-6, "CLARABEL": 1e-8, "SCS": 1e-4, "MOSEK": 1e-8}  # default gap tols
MARGINS = (0.0, 1e-7, 1e-5)        # retries with M <= -margin * scale I (scale: see lipsdp)
MAX_SDP_COST = 8e10                # size guard on sdp_cost (units of about 1e-8 s here)


def check_solver(solver: str) -> str:
    """The solver name, upper-cased, if cvxpy has it installed and it takes SDPs; else a
    ValueError naming the argument and the choices."""
    import cvxpy as cp

    name = str(solver).upper()
    usable = [s for s in SDP_SOLVERS if s in cp.installed_solvers()]
    if name not in usable:
        raise ValueError(f"solver: expected an installed SDP solver, one of {usable}, "
                         f"got {solver!r}")
    return name


def lmi_size(net: Network) -> tuple[int, list, int]:
    """(N, hidden widths [n_1, ...], C = sum over hidden layers of n_l n_{l-1}^2), from the
    widths alone (nothing is built)."""
    parts = blocks(net)
    hidden = parts[:-1] if isinstance(parts[-1][1], Identity) else parts
    widths = [net.n_in] + [w.shape[0] for w, _ in hidden]
    return (sum(widths), widths[1:],
            sum(a * b * b for a, b in zip(widths[1:], widths[:-1])))


def sdp_cost(net: Network, variant: str, solver: str) -> float:
    """Estimated work of one LipSDP solve, in units of about 1e-8 s on the reference
    machine (2 cores), from the LMI side N, the number of variables m (multipliers and rho)
    and C = sum_l n_l n_{l-1}^2 over the hidden layers (nonzeros cvxpy handles when it
    compiles A^T diag(u) A):

        CVXOPT (and any other solver):  (m + 20) N^3 + 40 C
        CLARABEL:                       0.045 s^3 + 40 C,   s = N(N+1)/2

    CVXOPT scales each multiplier's N x N matrix per iteration (m N^3) plus factorisations
    (about 20 N^3); CLARABEL factors a dense block of side s.  Measured (ReLU nets, CVXOPT,
    one solve): 2-100-100-1 neuron (N 202, m 201) 15 s, 2-150-150-1 neuron 85 s, layer (m 3)
    5.6 s; MNIST 784-50-10 layer (N 834) 11 s compile + 100 s solve; CLARABEL 2-50-50-1
    neuron (s 5253) 66 s and 1.5 GB.  Memory follows: CVXOPT holds about 16 m N^2 bytes."""
    side, hidden, compiled = lmi_size(net)
    multipliers = (sum(hidden) if variant == "neuron" else len(hidden)) + 1
    if solver == "CLARABEL":
        return 0.045 * (side * (side + 1) / 2) ** 3 + 40.0 * compiled
    return (multipliers + 20.0) * side ** 3 + 40.0 * compiled


class LmiData(NamedTuple):
    """The LMI of `lipsdp` after the loop transformation (module docstring), with
    v = [x^0; psi] (N = n_0 + n entries, n the nonlinear hidden neurons, in layer order):
    a_mat (n, N): z = A v, the pre-activations of the nonlinear neurons; out_mat (N_L, N):
    f = C v (up to a constant); alpha, beta, scale = beta - alpha (n,): their slope bounds;
    layer_of_neuron (n,): the index of each one's layer among the layers that have one;
    n0; absorbed: the number of linear hidden neurons (alpha = beta) folded into A and C."""
    a_mat: np.ndarray
    out_mat: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    scale: np.ndarray
    layer_of_neuron: np.ndarray
    n0: int
    absorbed: int


def lipsdp_data(net: Network) -> LmiData:
    """The LMI data of the network (see LmiData).  Hidden layer l maps y^{l-1} = G v to
    z = W_l G v (rows of A for its nonlinear neurons) and y^l = diag(alpha) W_l G v + D psi_l,
    D = diag(beta - alpha) on the new state entries psi_l of its nonlinear neurons, so the new
    G is alpha * (W_l G) plus those entries; a linear neuron (alpha = beta) gets no entry: it
    is absorbed exactly.  At the end C = W_out G."""
    check_finite(net)
    parts = blocks(net)
    if isinstance(parts[-1][1], Identity):
        hidden, w_out = parts[:-1], parts[-1][0]
    else:                                  # an activation on the output: W_out = I
        hidden, w_out = parts, np.eye(parts[-1][0].shape[0])
    bounds = [slope_bounds(layer, w.shape[0]) for w, layer in hidden]
    nonlinear = [lo != hi for lo, hi in bounds]
    n0 = net.n_in
    side = n0 + sum(int(k.sum()) for k in nonlinear)
    g = np.eye(n0, side)                   # y^0 = x^0 = G v, (n_0, N)
    rows, col = [], n0
    with np.errstate(over="ignore", invalid="ignore"):          # checked below
        for (w, _), (lo, hi), keep in zip(hidden, bounds, nonlinear):
            z = w @ g                      # (n_l, N)
            g = lo[:, None] * z            # y = alpha z + (beta - alpha) psi
            new = np.flatnonzero(keep)
            g[new, col + np.arange(len(new))] = (hi - lo)[new]
            rows.append(z[new])
            col += len(new)
        out_mat = w_out @ g
    alpha = np.concatenate([lo[k] for (lo, _), k in zip(bounds, nonlinear)] or [np.zeros(0)])
    beta = np.concatenate([hi[k] for (_, hi), k in zip(bounds, nonlinear)] or [np.zeros(0)])
    layer_ids = np.concatenate([np.full(int(k.sum()), i) for i, k in enumerate(nonlinear)]
                               or [np.zeros(0, int)])
    data = LmiData(np.vstack(rows) if rows else np.zeros((0, side)), out_mat, alpha, beta,
                   beta - alpha, np.unique(layer_ids, return_inverse=True)[1].astype(int),
                   n0, sum(int((~k).sum()) for k in nonlinear))
    if not (np.all(np.isfinite(data.a_mat)) and np.all(np.isfinite(data.out_mat))):
        raise OverflowResult("model: LipSDP's matrices (products of weights and slopes) leave "
                             "the float64 range for these finite parameters")
    return data


def lmi_matrix(data: LmiData, lam: np.ndarray, rho: float) -> np.ndarray:
    """M(lambda, rho) = A^T T B + B^T T A - 2 B^T T B + C^T C - rho E_0 in NumPy, (N, N);
    lam (n,) the multipliers of psi (T = diag(lam)), B = [0, I_n]."""
    n0 = data.n0
    m = data.out_mat.T @ data.out_mat
    m[n0:, :] += lam[:, None] * data.a_mat           # B^T T A
    m[:, n0:] += (lam[:, None] * data.a_mat).T       # A^T T B
    m[n0:, n0:] -= 2 * np.diag(lam)
    m[:n0, :n0] -= rho * np.eye(n0)
    return m


def certified_rho(data: LmiData, lam: np.ndarray) -> tuple[float, float]:
    """(rho*, max eigenvalue of R): the least rho with M(lambda, rho) <= 0 when R < 0
    (Schur complement), inf otherwise.  With no nonlinear neuron, rho* = ||C||_2^2."""
    n0 = data.n0
    m = lmi_matrix(data, lam, 0.0)
    p_blk, q_blk, r_blk = m[:n0, :n0], m[:n0, n0:], m[n0:, n0:]
    if r_blk.size == 0:
        return float(np.linalg.eigvalsh(p_blk).max()), -np.inf
    r_max = float(np.linalg.eigvalsh(r_blk).max())
    if r_max >= 0:
        return np.inf, r_max
    schur = p_blk - q_blk @ np.linalg.solve(r_blk, q_blk.T)
    return float(np.linalg.eigvalsh((schur + schur.T) / 2).max()), r_max


def lipsdp(net: Network, variant: str = "neuron", solver: str = DEFAULT_SOLVER,
           max_sdp_cost: float = MAX_SDP_COST) -> dict:
    """LipSDP-neuron or LipSDP-layer (p = 2).  Returns value (the NumPy-certified bound
    sqrt(rho*)), solver_value (sqrt of the solver's rho), relative_gap (value -
    solver_value) / value (how far the certified bound sits above the solver's optimum),
    accuracy (an estimate, not a certificate, of how far value may sit above the SDP's
    optimum, relative: max(relative_gap, 0) + the solver's default relative gap tolerance on
    rho (SOLVER_RTOL: CVXOPT 1e-6) + the margin of the retry that certified it; measured
    relative_gap: up to 1.5e-6 with CVXOPT on a 3-20-20-2 spline network), status, solver
    (the one that solved it), attempts (each solver and margin tried with its status: when
    the default CVXOPT fails at every margin, CLARABEL is tried if its own estimate passes
    the size guard), absorbed_neurons (linear hidden neurons folded into A and C), seconds
    and the certificate details.  An affine network (no nonlinear hidden neuron, e.g. no
    hidden layer at all): value = ||C||_2 exactly, solver "none (affine network)".  No
    certified bound after every attempt: RuntimeError.  Estimated cost (`sdp_cost`) over
    max_sdp_cost: TooLarge before anything is built (or cvxpy imported)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
    requested = str(solver).upper()
    if requested not in SDP_SOLVERS:
        raise ValueError(f"solver: expected an SDP solver, one of {list(SDP_SOLVERS)}, "
                         f"got {solver!r}")
    check_finite(net)
    guard(f"model: LipSDP-{variant} with {requested} (LMI side N = {lmi_size(net)[0]}), "
          "cost (about 1e-8 s per unit)", sdp_cost(net, variant, requested), max_sdp_cost,
          "max_sdp_cost")
    solver = check_solver(requested)                  # installed (imports cvxpy)
    import cvxpy as cp

    t0 = time.perf_counter()
    data = lipsdp_data(net)
    if len(data.scale) == 0:
        return _affine(data, t0)
    problem, lam_full, rho, margin = _problem(data, variant)
    build = time.perf_counter() - t0
    fallback = (solver == DEFAULT_SOLVER and FALLBACK_SOLVER in cp.installed_solvers()
                and sdp_cost(net, variant, FALLBACK_SOLVER) <= max_sdp_cost)
    solvers = [solver] + ([FALLBACK_SOLVER] if fallback else [])
    found, tried = _solve_certified(data, (problem, lam_full, rho, margin), solvers)
    seconds = time.perf_counter() - t0
    if found is None:
        raise RuntimeError(f"LipSDP-{variant}: no certified bound ({'; '.join(tried)}); "
                           "no bound is reported")
    rho_cert, r_max, solver, margin_value = found
    value = float(np.sqrt(max(rho_cert, 0.0)))
    solver_value = float(np.sqrt(max(rho.value, 0.0)))
    gap = (value - solver_value) / value if value > 0 else 0.0
    return {"value": value, "solver_value": solver_value, "relative_gap": gap,
            "accuracy": max(gap, 0.0) + SOLVER_RTOL[solver] + margin_value,
            "status": problem.status, "solver": solver, "attempts": tried, "seconds": seconds,
            "build_seconds": build, "absorbed_neurons": data.absorbed, "certificate": (
                "value = sqrt(lambda_max(P - Q R^-1 Q^T)) at the solver's multipliers, "
                f"hidden block max eigenvalue {r_max:.3g} < 0, re-evaluated in NumPy")}


def _solve_certified(data: LmiData, sdp, solvers: list):
    """Solve the SDP (problem, lambda, rho, margin parameter of `_problem`) with each solver
    in turn, each at every margin of MARGINS (M <= -margin * scale I, scale the solver's rho
    at margin 0: a strictly feasible retry), until the multipliers certify a bound
    (`certified_rho`).  A solver's exception (cvxpy's SolverError; CVXOPT's ZeroDivisionError
    on degenerate problems) is a failed attempt.  Returns ((rho*, max eigenvalue of R, solver,
    margin) or None, the attempts as text)."""
    import cvxpy as cp

    problem, lam_full, rho, margin = sdp
    scale = float(np.linalg.norm(data.out_mat, 2)) ** 2 or 1.0   # until a solve gives rho
    tried = []
    for name in solvers:                   # the fallback after every margin of the first
        for margin_value in MARGINS:
            margin.value = margin_value * scale
            try:
                problem.solve(solver=name)
                status = problem.status
            except (cp.error.SolverError, ArithmeticError) as exc:
                status = f"solver error ({type(exc).__name__}: {exc})"
            if margin_value == 0 and rho.value is not None and 0 < rho.value < np.inf:
                scale = float(rho.value)
            if status == cp.OPTIMAL:
                lam_value = np.maximum(np.asarray(lam_full.value, dtype=np.float64).ravel(), 0)
                rho_cert, r_max = certified_rho(data, lam_value)
                if np.isfinite(rho_cert):
                    tried.append(f"{name} margin {margin_value:g}: {status}")
                    return (rho_cert, r_max, name, margin_value), tried
                status += f", not certified (max eigenvalue of the hidden block {r_max:.3g} >= 0)"
            tried.append(f"{name} margin {margin_value:g}: {status}")
    return None, tried


def _affine(data: LmiData, t0: float) -> dict:
    """The result of `lipsdp` when every hidden neuron is linear: the network is affine,
    f(x) = C x + c, and LipSDP is exact: Lip_2(f) = ||C||_2 (largest singular value)."""
    value = float(np.linalg.norm(data.out_mat, 2))
    if not np.isfinite(value):
        raise OverflowResult("model: LipSDP: ||C||_2 leaves the float64 range for these "
                             "finite parameters")
    return {"value": value, "solver_value": value, "relative_gap": 0.0, "accuracy": 0.0,
            "status": "optimal", "solver": "none (affine network)", "attempts": [],
            "seconds": time.perf_counter() - t0, "build_seconds": 0.0,
            "absorbed_neurons": data.absorbed, "certificate": (
                "the network is affine (every hidden neuron has alpha_n = beta_n), f(x) = C x "
                "+ c: value = ||C||_2, its largest singular value (numpy.linalg.norm), the "
                "exact Lipschitz constant and the optimum of both LipSDP variants")}


def _problem(data: LmiData, variant: str):
    """The cvxpy problem min rho s.t. M(lambda, rho) + margin I <= 0 (symmetrised), lambda
    >= 0: per neuron, or lambda_n = mu_l (beta_n - alpha_n)^2 / max_{k in l} (beta_k -
    alpha_k)^2 with one mu_l >= 0 per layer (LipSDP-layer's shared multiplier of the
    untransformed QC, scaled so that the solver sees entries of order 1).  Returns (problem,
    lambda (n,) expression, rho, margin parameter)."""
    import cvxpy as cp

    a_mat, n0 = data.a_mat, data.n0
    n, side = a_mat.shape
    if variant == "neuron":
        lam_full = cp.Variable(n, nonneg=True)
    else:
        layers = int(data.layer_of_neuron.max()) + 1
        weight = data.scale ** 2                                  # (n,), > 0
        top = np.zeros(layers)
        np.maximum.at(top, data.layer_of_neuron, weight)          # per layer
        mu = cp.Variable(layers, nonneg=True)
        lam_full = ((weight / top[data.layer_of_neuron])[:, None]
                    * np.eye(layers)[data.layer_of_neuron]) @ mu
    rho = cp.Variable()
    # B^T T A = [0; diag(lambda) A] (B = [0, I_n]), B^T T B = diag([0, lambda])
    b_mat = np.eye(n0 + n)[n0:]
    cross = b_mat.T @ cp.multiply(cp.reshape(lam_full, (n, 1), order="F"), a_mat)
    m_expr = cross + cross.T - 2 * cp.diag(cp.hstack([np.zeros(n0), lam_full]))
    e_in = np.zeros((side, side))
    e_in[:n0, :n0] = np.eye(n0)
    lmi = m_expr + data.out_mat.T @ data.out_mat - rho * e_in
    margin = cp.Parameter(nonneg=True)
    problem = cp.Problem(cp.Minimize(rho), [(lmi + lmi.T) / 2 + margin * np.eye(side) << 0])
    return problem, lam_full, rho, margin


def lipsdp_neuron(net: Network, solver: str = DEFAULT_SOLVER, **limits) -> dict:
    """LipSDP-neuron: one multiplier per hidden neuron (see `lipsdp`)."""
    return lipsdp(net, "neuron", solver, **limits)


def lipsdp_layer(net: Network, solver: str = DEFAULT_SOLVER, **limits) -> dict:
    """LipSDP-layer: one multiplier per hidden layer (see `lipsdp`)."""
    return lipsdp(net, "layer", solver, **limits)
