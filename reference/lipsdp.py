"""LipSDP (Fazlyab et al., NeurIPS 2019): l2 Lipschitz upper bounds by semidefinite
programming, in cvxpy, with a certificate re-evaluated in NumPy.

Network x^0 -> z^{i+1} = W_i x^i -> x^{i+1} = phi_i(z^{i+1}) (i < k hidden blocks) ->
f = W_out x^k, every hidden neuron slope-restricted in [alpha_n, beta_n].  With
N = n_0 + n (n hidden neurons), A = [blkdiag(W_0..W_{k-1}), 0] and B = [0, I_n] (n x N):

    M(lambda, rho) = [A; B]^T [[-2 diag(alpha beta) T, diag(alpha + beta) T],
                               [diag(alpha + beta) T,  -2 T]] [A; B]
                     + blkdiag(-rho I_{n_0}, 0, ..., W_out^T W_out)  <=  0,

T = diag(lambda), lambda >= 0: one multiplier per neuron (LipSDP-neuron) or per layer
(LipSDP-layer).  Minimise rho; then Lip_2(f) <= sqrt(rho).  The coupled "network"
variant is left out (its validity as an upper bound has been disputed).

Certificate: with the solver's multipliers lambda (clipped at 0), write
M(lambda, 0) = [[P, Q], [Q^T, R]] (P the input block).  If R < 0 (checked by eigvalsh),
M(lambda, rho) <= 0 iff rho >= lambda_max(P - Q R^{-1} Q^T) (Schur complement), so
sqrt of that is an upper bound certified in NumPy whatever the solver's accuracy.  When
the solver's multipliers leave R slightly indefinite (its tolerance), the SDP is solved again
with M <= -margin I (MARGINS, relative to ||W_out||^2): strictly feasible multipliers,
a bound larger by O(margin); every attempt is reported.

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

import numpy as np
import scipy.linalg

from reference.limits import guard
from reference.lipschitz import blocks, check_finite, slope_bounds
from reference.network import Identity, Network

VARIANTS = ("neuron", "layer")
SDP_SOLVERS = ("CVXOPT", "CLARABEL", "SCS", "MOSEK")
DEFAULT_SOLVER = "CVXOPT"
FALLBACK_SOLVER = "CLARABEL"       # tried when the default one fails (the attempts are reported)
MARGINS = (0.0, 1e-7, 1e-5)        # retries with M <= -margin * max(1, ||W_out||^2) I
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


def lipsdp_data(net: Network):
    """(A, B, alpha, beta, W_out, n_0, layer_of_neuron) for the LMI above."""
    check_finite(net)
    parts = blocks(net)
    if isinstance(parts[-1][1], Identity):
        hidden, w_out = parts[:-1], parts[-1][0]
    else:                                  # an activation on the output: W_out = I
        hidden, w_out = parts, np.eye(parts[-1][0].shape[0])
    if not hidden:
        raise ValueError("model: LipSDP needs at least one hidden activation layer")
    n0 = net.n_in
    widths = [w.shape[0] for w, _ in hidden]
    n = sum(widths)
    a_mat = np.zeros((n, n0 + n))
    a_mat[:, : n0 + n - widths[-1]] = scipy.linalg.block_diag(*[w for w, _ in hidden])
    b_mat = np.hstack([np.zeros((n, n0)), np.eye(n)])
    bounds = [slope_bounds(layer, w.shape[0]) for w, layer in hidden]
    alpha = np.concatenate([lo for lo, _ in bounds])
    beta = np.concatenate([hi for _, hi in bounds])
    layer_of_neuron = np.repeat(np.arange(len(widths)), widths)
    return a_mat, b_mat, alpha, beta, w_out, n0, layer_of_neuron


def lmi_matrix(data, lam: np.ndarray, rho: float) -> np.ndarray:
    """M(lambda, rho) in NumPy, (N, N)."""
    a_mat, b_mat, alpha, beta, w_out, n0, _ = data
    m = (a_mat.T * (-2 * alpha * beta * lam)) @ a_mat
    cross = (a_mat.T * ((alpha + beta) * lam)) @ b_mat
    m += cross + cross.T
    m += (b_mat.T * (-2 * lam)) @ b_mat
    m[:n0, :n0] -= rho * np.eye(n0)
    k = w_out.shape[1]
    m[-k:, -k:] += w_out.T @ w_out
    return m


def certified_rho(data, lam: np.ndarray) -> tuple[float, float]:
    """(rho*, max eigenvalue of R): the least rho with M(lambda, rho) <= 0 when R < 0
    (Schur complement), inf otherwise."""
    n0 = data[5]
    m = lmi_matrix(data, lam, 0.0)
    p_blk, q_blk, r_blk = m[:n0, :n0], m[:n0, n0:], m[n0:, n0:]
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
    status, solver (the one that solved it), attempts (each solver and margin tried with its
    status: when the default CVXOPT fails at every margin, CLARABEL is tried if its own
    estimate passes the size guard), seconds and the certificate details.  No certified bound
    after every attempt: RuntimeError.  Estimated cost (`sdp_cost`) over max_sdp_cost:
    TooLarge before anything is built (or cvxpy imported)."""
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
    a_mat, b_mat, alpha, beta, w_out, n0, layer_of_neuron = data
    n = len(alpha)
    if variant == "neuron":
        lam = cp.Variable(n, nonneg=True)
        lam_full = lam
    else:
        lam = cp.Variable(int(layer_of_neuron.max()) + 1, nonneg=True)
        lam_full = np.eye(lam.shape[0])[layer_of_neuron] @ lam
    rho = cp.Variable()
    # M = A^T diag(u) A + A^T diag(v) B + B^T diag(v) A + B^T diag(w) B + const, all affine
    # in lambda; B = [0, I] so B^T diag(w) B is diag([0, w]).
    u = cp.multiply(-2 * alpha * beta, lam_full)
    v = cp.multiply(alpha + beta, lam_full)
    cross = a_mat.T @ cp.multiply(cp.reshape(v, (n, 1), order="F"), b_mat)
    m_expr = (a_mat.T @ cp.multiply(cp.reshape(u, (n, 1), order="F"), a_mat)
              + cross + cross.T
              + cp.diag(cp.hstack([np.zeros(n0), -2 * lam_full])))
    const = np.zeros((n0 + n, n0 + n))
    k = w_out.shape[1]
    const[-k:, -k:] = w_out.T @ w_out
    e_in = np.zeros((n0 + n, n0 + n))
    e_in[:n0, :n0] = np.eye(n0)
    lmi = m_expr + const - rho * e_in
    margin = cp.Parameter(nonneg=True)
    problem = cp.Problem(cp.Minimize(rho),
                         [(lmi + lmi.T) / 2 + margin * np.eye(n0 + n) << 0])
    build = time.perf_counter() - t0
    scale = max(1.0, float(np.linalg.norm(w_out, 2)) ** 2)
    fallback = (solver == DEFAULT_SOLVER and FALLBACK_SOLVER in cp.installed_solvers()
                and sdp_cost(net, variant, FALLBACK_SOLVER) <= max_sdp_cost)
    solvers = [solver] + ([FALLBACK_SOLVER] if fallback else [])
    tried, rho_cert = [], np.inf
    for name in solvers:                   # the fallback after every margin of the first
        for margin_value in MARGINS:       # M <= -margin I: a strictly feasible retry
            margin.value = margin_value * scale
            try:
                problem.solve(solver=name)
                status = problem.status
            except cp.error.SolverError as exc:
                status = f"solver error ({exc})"
            if status == cp.OPTIMAL:
                lam_value = np.maximum(np.asarray(lam_full.value, dtype=np.float64).ravel(), 0)
                rho_cert, r_max = certified_rho(data, lam_value)
                if not np.isfinite(rho_cert):
                    status += (f", not certified (max eigenvalue of the hidden block "
                               f"{r_max:.3g} >= 0)")
            tried.append(f"{name} margin {margin_value:g}: {status}")
            if np.isfinite(rho_cert):
                solver = name
                break
        if np.isfinite(rho_cert):
            break
    seconds = time.perf_counter() - t0
    if not np.isfinite(rho_cert):
        raise RuntimeError(f"LipSDP-{variant}: no certified bound ({'; '.join(tried)}); "
                           "no bound is reported")
    value = float(np.sqrt(max(rho_cert, 0.0)))
    solver_value = float(np.sqrt(max(rho.value, 0.0)))
    return {"value": value, "solver_value": solver_value,
            "relative_gap": (value - solver_value) / value if value > 0 else 0.0,
            "status": problem.status, "solver": solver, "attempts": tried, "seconds": seconds,
            "build_seconds": build, "certificate": (
                "value = sqrt(lambda_max(P - Q R^-1 Q^T)) at the solver's multipliers, "
                f"hidden block max eigenvalue {r_max:.3g} < 0, re-evaluated in NumPy")}


def lipsdp_neuron(net: Network, solver: str = DEFAULT_SOLVER, **limits) -> dict:
    """LipSDP-neuron: one multiplier per hidden neuron (see `lipsdp`)."""
    return lipsdp(net, "neuron", solver, **limits)


def lipsdp_layer(net: Network, solver: str = DEFAULT_SOLVER, **limits) -> dict:
    """LipSDP-layer: one multiplier per hidden layer (see `lipsdp`)."""
    return lipsdp(net, "layer", solver, **limits)
