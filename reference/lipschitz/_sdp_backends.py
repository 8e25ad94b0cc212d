"""The SDP solves behind `reference.lipschitz._lipsdp` through other packages (CVXOPT, and cvxpy's
solvers; the NumPy interior-point solver is `reference.lipschitz._ipm`): one function per route,
each taking the LMI data (`LmiData`), the multiplier map K and a margin, and returning
the solver's multipliers (`SdpSolution`); `lipsdp.SOLVE` maps the solver names to them.
Nothing here certifies a bound: `lipsdp` re-evaluates the multipliers in NumPy (Schur
complement) on the unreduced LMI, whatever the solver.  The size guard's estimate of each
solver's work (`sdp_cost`, from the widths alone: `lmi_size`) lives here too.

The problem (module docstring of `lipsdp`): with v = [x^0; psi] (N = n0 + n entries),
lambda = K t (K (n, k): the identity for LipSDP-neuron, one column per layer for -layer),

    minimise rho  s.t.  M(K t, rho) + margin I <= 0,  t >= 0,
    M(lambda, rho) = sum_i lambda_i F_i + C^T C - rho E_0,   F_i = e_i b_i^T + b_i e_i^T,

where e_i is the unit vector of psi_i (entry n0 + i) and b_i = a_i - e_i (a_i the i-th row of
A, (N,)): A^T T B + B^T T A - 2 B^T T B = sum_i lambda_i (e_i a_i^T + a_i e_i^T - 2 e_i e_i^T).
Every multiplier's matrix F_i has rank 2.

Routes (function(data, k_mat, margin) -> SdpSolution):
- "CVXOPT" (`solve_cvxopt`): CVXOPT's cone LP solver (conelp) called directly, with a KKT
  solver that uses the rank-2 structure.  CVXOPT solves each Newton system through the
  (k + 1) x (k + 1) matrix H = G^T (W^T W)^{-1} G; cvxpy's generic route builds every column
  W^{-T} F_i W^{-1} as a dense N x N matrix (k N^3 work per iteration: 304 s on the MNIST LMI).
  Here, with the Nesterov-Todd scaling W^{-T} X W^{-1} = R^T X R (R = W['rti'], (N, N)),
  r_i = R^T b_i, q_i = R^T e_i and R^T F_i R = q_i r_i^T + r_i q_i^T:

      <R^T F_i R, R^T F_j R> = 2 (r_i.r_j)(q_i.q_j) + 2 (r_i.q_j)(q_i.r_j),

  i.e. H_lambda = 2 (Y o Z + X o X^T) with Y = Rb^T Rb, Z = Rq^T Rq, X = Rb^T Rq (o: the
  entrywise product), O(n N^2) work; rho's column -E_0 likewise (`_CvxoptLmi.kkt`).
  The per-iteration cost is then CVXOPT's own dense N x N work (its scalings, an SVD and the
  step lengths), O(N^3).  Tolerances: relative gap 1e-8 (CVXOPT's default 1e-6 left the
  certified values of reduced and unreduced LMIs of small random networks up to 6e-8 apart;
  1e-8: 3e-10), and when that ends "unknown" (784-30-30-10) CVXOPT's default 1e-6
  (CVXOPT_GAPS); feasibility CVXOPT's default 1e-7 (1e-8 left the MNIST LipSDP-layer
  "unknown" after 100 iterations: near the optimum the normal equations lose accuracy),
  iterative refinement 2 (with 1, the 2-10-30-20-2 anchor ended "unknown").  The
  LMI is divided by ||C||_2^2 first (an exact rescaling: lambda and rho scale with it), so
  that the tolerances are relative to the bound.
- "CLARABEL", "SCS", "MOSEK" (`solve_cvxpy`): the same problem as a cvxpy model.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reference.lipschitz._bounds import blocks
from reference.nn._network import Network

CVXOPT_OPTIONS = {"show_progress": False, "feastol": 1e-7, "refinement": 2, "maxiters": 100}
CVXOPT_GAPS = ((1e-9, 1e-8), (1e-7, 1e-6))   # (abstol, reltol) in turn: tight, then default
CVXPY_RTOL = {"CLARABEL": 1e-8, "SCS": 1e-4, "MOSEK": 1e-8}  # their default gap tolerances,
                                              # absolute and relative: rtol = tol (1 + rho) / rho
CVXPY_SOLVERS = tuple(CVXPY_RTOL)


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


class SdpSolution(NamedTuple):
    """One solve: status ("optimal" or the solver's word for what went wrong), lam (n,) the
    multipliers of psi (lambda = K t, unscaled) and rho (the solver's optimum) when it returned
    numbers (else None), iterations (None when the solver does not say), rtol (the gap
    tolerance the solver met, when "optimal", relative to rho: a solver's absolute tolerance
    is divided by the rho it saw), dual (None when not known): the solver's dual matrix X
    (N, N) of the LMI it solved, dual feasible to its tolerance (X >= 0, tr X_00 = 1,
    K^T (<F_i, X>)_i >= 0; the same at every scale of the LMI and margin), from which
    reference.lipschitz._lipsdp_dual certifies a lower bound on the optimum."""
    status: str
    lam: np.ndarray | None
    rho: float | None
    iterations: int | None
    rtol: float | None = None
    dual: np.ndarray | None = None


def multiplier_map(data, variant: str) -> np.ndarray:
    """K (n, k) with lambda = K t, t >= 0: the identity (LipSDP-neuron), or for LipSDP-layer
    one column per layer, K_{n,l} = (beta_n - alpha_n)^2 / max_{j in l} (beta_j - alpha_j)^2
    for the neurons n of layer l (the untransformed shared multiplier, lambda'_n = mu_l
    (beta_n - alpha_n)^2, scaled so that the solver sees entries of order 1)."""
    n = len(data.scale)
    if variant == "neuron":
        return np.eye(n)
    layers = int(data.layer_of_neuron.max()) + 1
    weight = data.scale ** 2                                  # (n,), > 0
    top = np.zeros(layers)
    np.maximum.at(top, data.layer_of_neuron, weight)
    k_mat = np.zeros((n, layers))
    k_mat[np.arange(n), data.layer_of_neuron] = weight / top[data.layer_of_neuron]
    return k_mat


class RankTwoLmi:
    """The multiplier part of the LMI and its adjoint, shared by the structured solvers:
    b_mat (N, n) with columns b_i, n0, k_mat K (n, k) (identity: K = I), ctc = C^T C (N, N)."""

    def __init__(self, a_mat: np.ndarray, out_mat: np.ndarray, n0: int, k_mat: np.ndarray):
        self.n, self.side = a_mat.shape
        self.n0, self.k_mat, self.k = n0, k_mat, k_mat.shape[1]
        self.identity = k_mat.shape == (self.n, self.n) and np.array_equal(k_mat,
                                                                          np.eye(self.n))
        self.b_mat = a_mat.T.copy()                                   # (N, n): columns b_i
        self.b_mat[n0 + np.arange(self.n), np.arange(self.n)] -= 1.0
        self.ctc = out_mat.T @ out_mat

    def lam(self, t: np.ndarray) -> np.ndarray:
        return t if self.identity else self.k_mat @ t

    def k_adjoint(self, g: np.ndarray) -> np.ndarray:
        return g if self.identity else self.k_mat.T @ g

    def lmi(self, x: np.ndarray) -> np.ndarray:
        """sum_i lambda_i F_i - rho E_0 for x = [t; rho], (N, N)."""
        lam, n0 = self.lam(x[:self.k]), self.n0
        s = np.zeros((self.side, self.side))
        s[n0:, :] = lam[:, None] * self.b_mat.T
        s += s.T
        s[np.arange(n0), np.arange(n0)] -= x[self.k]
        return s

    def adjoint(self, u: np.ndarray) -> np.ndarray:
        """The adjoint of `lmi` at a symmetric u (N, N): [K^T (<F_i, u>)_i; -trace(u_00)],
        (k + 1,), <F_i, u> = 2 b_i^T u e_i."""
        g = 2.0 * np.einsum("ji,ji->i", self.b_mat, u[:, self.n0:])
        return np.concatenate([self.k_adjoint(g), [-np.trace(u[:self.n0, :self.n0])]])


class _CvxoptLmi(RankTwoLmi):
    """The conelp data of the problem in the module docstring, variables x = [t (k); rho],
    cone R^k_+ x S^N_+: G x + s = h with s_l = t (G_l = [-I, 0], h_l = 0) and
    s_s = -M(K t, rho) - margin I (G_s x = vec(`lmi`(x)), h_s = -vec(C^T C + margin I));
    vec: column-major, CVXOPT reads the lower triangle."""

    def symmetric(self, vec: np.ndarray) -> np.ndarray:
        """The symmetric matrix whose lower triangle is stored column-major in vec (N^2,)."""
        u = vec.reshape(self.side, self.side, order="F")
        return np.tril(u) + np.tril(u, -1).T

    def g_operator(self, u, v, alpha=1.0, beta=0.0, trans="N"):
        """CVXOPT's G(u, v, alpha, beta, trans): v := alpha G u + beta v (or G^T u)."""
        un, vn, k = np.asarray(u)[:, 0], np.asarray(v)[:, 0], self.k
        if trans == "N":
            out = np.concatenate([-un[:k], self.lmi(un).ravel(order="F")])
        else:
            out = self.adjoint(self.symmetric(un[k:]))
            out[:k] -= un[:k]
        if beta == 0.0:
            vn[:] = alpha * out
        else:
            vn *= beta
            vn += alpha * out

    def kkt(self, w):
        """CVXOPT's kktsolver(W): a function f(x, y, z) that overwrites x with ux and z with
        W uz, the solution of [[0, G^T], [G, -W^T W]] [ux; uz] = [bx; bz].  With R = W['rti'],
        W^{-T} u = R^T u R on the 's' block and 1/d on the 'l' block (d = W['d']):
        H ux = bx + G^T W^{-1} W^{-T} bz,  W uz = W^{-T} (G ux - bz),
        H = K^T H_lambda K + diag(1/d^2) on t (module docstring), H_{t rho} = K^T h with
        h_i = <R^T F_i R, -R^T E_0 R> = -2 (r_i^T P)(P^T q_i), P = R^T[:, :n0] (N, n0),
        H_{rho rho} = ||P^T P||_F^2."""
        k, n0 = self.k, self.n0
        d = np.asarray(w["d"])[:, 0]
        rti = np.asarray(w["rti"][0])
        rb = rti.T @ self.b_mat                   # (N, n): r_i
        rq = rti[n0:, :].T                        # (N, n): q_i = R^T e_i
        rx = rti[:n0, :].T                        # (N, n0)
        x_mat = rb.T @ rq
        h_lam = 2.0 * (x_mat * x_mat.T + (rb.T @ rb) * (rq.T @ rq))
        h_rho = -2.0 * np.sum((rb.T @ rx) * (rq.T @ rx), axis=1)
        xx = rx.T @ rx
        hmat = np.empty((k + 1, k + 1))
        hmat[:k, :k] = (h_lam if self.identity else self.k_mat.T @ h_lam @ self.k_mat)
        hmat[np.arange(k), np.arange(k)] += 1.0 / d ** 2
        hmat[:k, k] = hmat[k, :k] = self.k_adjoint(h_rho)
        hmat[k, k] = np.sum(xx * xx)
        factor = _cholesky(hmat)

        def scaled_lmi(x):                        # R^T (G_s x) R, structured
            lam = self.lam(x[:k])
            half = (rq * lam) @ rb.T
            return half + half.T - x[k] * (rx @ rx.T)

        def solve(xv, yv, zv):
            from scipy.linalg import cho_solve

            xn, zn = np.asarray(xv)[:, 0], np.asarray(zv)[:, 0]
            z_l = zn[:k].copy()
            sbz = rti.T @ self.symmetric(zn[k:]) @ rti          # W^{-T} bz, (N, N)
            rhs = xn + np.concatenate([self.k_adjoint(2.0 * np.einsum(
                "ji,ji->i", rb, sbz @ rq)), [-np.sum(rx * (sbz @ rx))]])
            rhs[:k] -= z_l / d ** 2
            ux = cho_solve(factor, rhs)
            xn[:] = ux
            zn[:k] = (-ux[:k] - z_l) / d
            zn[k:] = (scaled_lmi(ux) - sbz).ravel(order="F")
        return solve


def _cholesky(hmat: np.ndarray):
    """scipy's Cholesky factor of the Newton system; a failure is an ArithmeticError (what
    CVXOPT expects from a KKT solver: it then reports a singular KKT system)."""
    from scipy.linalg import cho_factor

    try:
        return cho_factor(hmat)
    except np.linalg.LinAlgError as exc:
        raise ArithmeticError(f"Newton system not positive definite ({exc})") from None


def solve_cvxopt(data, k_mat: np.ndarray, margin: float) -> SdpSolution:
    """The structured CVXOPT solve (module docstring) of min rho s.t. M(K t, rho) + margin I
    <= 0, t >= 0 on the LMI data `data` (LmiData, ||C|| > 0).  CVXOPT's exceptions on
    degenerate problems (ValueError 'Rank(A) < p or Rank([G; A]) < n', ArithmeticError) are
    returned as a status."""
    from cvxopt import matrix, solvers

    scale = float(np.linalg.norm(data.out_mat, 2)) ** 2          # M / scale: exact rescaling
    lmi = _CvxoptLmi(data.a_mat, data.out_mat / np.sqrt(scale), data.n0, k_mat)
    side, k = lmi.side, lmi.k
    h = np.zeros(k + side * side)
    h[k:] = -(lmi.ctc + (margin / scale) * np.eye(side)).ravel(order="F")
    c = np.zeros(k + 1)
    c[k] = 1.0
    statuses, iterations = [], 0
    for abstol, reltol in CVXOPT_GAPS:
        try:
            sol = solvers.conelp(matrix(c), lmi.g_operator, matrix(h),
                                 {"l": k, "q": [], "s": [side]}, kktsolver=lmi.kkt,
                                 options={**CVXOPT_OPTIONS, "abstol": abstol, "reltol": reltol})
        except (ValueError, ArithmeticError) as exc:
            return SdpSolution(f"solver error ({type(exc).__name__}: {exc})", None, None, None)
        iterations += sol["iterations"]
        if sol["status"] == "optimal":
            x = np.asarray(sol["x"])[:, 0]
            dual = lmi.symmetric(np.asarray(sol["z"])[k:, 0])          # X, (N, N)
            rho = float(x[k])              # optimal: gap <= abstol or relative gap <= reltol
            rtol = max(reltol, abstol / abs(rho)) if rho != 0 else np.inf
            return SdpSolution("optimal", scale * lmi.lam(x[:k]), scale * rho, iterations,
                               rtol, dual)
        statuses.append(f"{sol['status']} at reltol {reltol:g}")
    return SdpSolution(", ".join(statuses), None, None, iterations)


def solve_cvxpy(data, k_mat: np.ndarray, margin: float, solver: str) -> SdpSolution:
    """The problem as a cvxpy model solved by `solver` (CLARABEL, SCS, MOSEK): min rho s.t.
    (M + M^T)/2 + margin I <= 0, t >= 0, M = B^T diag(lambda) A + A^T diag(lambda) B
    - 2 diag([0, lambda]) + C^T C - rho E_0, on the LMI divided by ||C||_2^2 as the other
    routes (an exact rescaling: lambda and rho are returned in the original scale; without it
    CLARABEL's absolute tolerances left a bound 1e-7 certified at 1.5e-5).  dual: the dual
    value of the LMI constraint.  cvxpy's SolverError is a status, and so is an inaccurate
    solve ("optimal_inaccurate", which lipsdp does not certify): cvxpy's UserWarning
    "Solution may be inaccurate" is not printed."""
    import warnings

    import cvxpy as cp

    scale = float(np.linalg.norm(data.out_mat, 2)) ** 2
    out_mat, margin = data.out_mat / np.sqrt(scale), margin / scale
    a_mat, n0 = data.a_mat, data.n0
    n, side = a_mat.shape
    t = cp.Variable(k_mat.shape[1], nonneg=True)
    lam = k_mat @ t
    rho = cp.Variable()
    cross = np.eye(side)[n0:].T @ cp.multiply(cp.reshape(lam, (n, 1), order="F"), a_mat)
    e_in = np.zeros((side, side))
    e_in[:n0, :n0] = np.eye(n0)
    ctc = out_mat.T @ out_mat
    lmi = cross + cross.T - 2 * cp.diag(cp.hstack([np.zeros(n0), lam])) + ctc - rho * e_in
    constraint = (lmi + lmi.T) / 2 + margin * np.eye(side) << 0
    problem = cp.Problem(cp.Minimize(rho), [constraint])
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Solution may be inaccurate",
                                    category=UserWarning)
            problem.solve(solver=solver)
    except (cp.error.SolverError, ArithmeticError) as exc:
        return SdpSolution(f"solver error ({type(exc).__name__}: {exc})", None, None, None)
    if t.value is None or rho.value is None:
        return SdpSolution(problem.status, None, None, None)
    iterations = problem.solver_stats.num_iters if problem.solver_stats else None
    dual, rho_s, tol = constraint.dual_value, float(rho.value), CVXPY_RTOL[solver]
    rtol = tol * (1.0 + abs(rho_s)) / abs(rho_s) if rho_s != 0 else np.inf  # abs + rel gaps
    return SdpSolution(problem.status,
                       scale * (k_mat @ np.asarray(t.value, dtype=np.float64).ravel()),
                       scale * rho_s, iterations, rtol,
                       None if dual is None else np.asarray(dual, dtype=np.float64))


def lmi_size(net: Network, reduce: bool = False) -> tuple[int, list, int]:
    """(N, hidden widths [n_1, ...], C = sum over hidden layers of n_l n_{l-1}^2), from the
    widths alone (nothing is built).  With reduce, n0 is replaced by min(n0, n1), the bound on
    the rank r of the input block (`lipsdp.reduce_input`: r <= rank W_0): the reduced LMI's
    side is at most that N."""
    parts = blocks(net)
    hidden = parts[:-1] if parts[-1][1].is_identity else parts
    widths = [net.n_in] + [w.shape[0] for w, _ in hidden]
    if reduce and len(widths) > 1:
        widths[0] = min(widths[:2])
    return (sum(widths), widths[1:],
            sum(a * b * b for a, b in zip(widths[1:], widths[:-1])))


def sdp_cost(net: Network, variant: str, solver: str, reduce: bool = True) -> float:
    """Estimated work of one LipSDP solve, in units of about 1e-8 s on the reference
    machine (2 cores), from the side N of the LMI that is solved (the reduced one by default,
    `lmi_size`), the number n of hidden neurons, the number of multipliers k (neurons or
    layers) and C = sum_l n_l n_{l-1}^2 over the hidden layers (what cvxpy handles when it
    compiles A^T diag(u) A):

        NUMPY:                8 N^3 + k^3
        CVXOPT (structured):  65 N^3 + 6 n N^2 + k^3
        CLARABEL:             0.045 s^3 + 40 C,   s = N(N+1)/2
        SCS, MOSEK:           (k + 21) N^3 + 40 C

    NUMPY: 16-36 iterations of ~40 N^3 flops (Cholesky factorisations, products, two
    smallest eigenvalues per step length) and a Cholesky factorisation of the k x k Newton
    system; it holds about 20 N x N arrays (N = 2000: 0.6 GB).  Measured (one solve, ReLU,
    loaded 2-core machine, one BLAS thread): 2-H-H-1 H = 100, 200, 300, 400, 500: 0.72, 5.1,
    16, 31, 70 s (0.7-0.9e-8 s per unit); 784-H-H-10 (reduced side 3H) H = 100, 300, 500:
    1.5, 14, 63 s (0.2-0.7e-8 s per unit).  CVXOPT: about 20 iterations of CVXOPT's own dense
    N x N work (its scalings, an SVD and the step lengths, with the BLAS it ships): 2-H-H-1
    H = 200 42 s (NUMPY 4.2 s in the same conditions).  CLARABEL factors a dense block of
    side s: 2-50-50-1 neuron (s 5253) 66 s and 1.5 GB.  The cvxpy route scales each
    multiplier's N x N matrix per iteration: 2-100-100-1 neuron (N 202, k 200) 15 s,
    2-150-150-1 85 s, MNIST 784-50-10 unreduced (N 834) layer 11 s compile + 100 s solve."""
    side, hidden, compiled = lmi_size(net, reduce)
    neurons = sum(hidden)
    multipliers = float(neurons if variant == "neuron" else len(hidden))
    if solver == "NUMPY":
        return 8.0 * side ** 3 + multipliers ** 3
    if solver == "CVXOPT":
        return 65.0 * side ** 3 + 6.0 * neurons * side ** 2 + multipliers ** 3
    if solver == "CLARABEL":
        return 0.045 * (side * (side + 1) / 2) ** 3 + 40.0 * compiled
    return (multipliers + 21.0) * side ** 3 + 40.0 * compiled
