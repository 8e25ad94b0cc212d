"""LipSDP (Fazlyab et al., NeurIPS 2019): l2 Lipschitz upper bounds by semidefinite
programming (an interior-point solver in NumPy by default; CVXOPT, cvxpy's solvers), with a
certificate re-evaluated in NumPy on the unreduced LMI.

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
shares the untransformed multiplier: lambda'_n = mu_l (beta_n - alpha_n)^2
(`_sdp_backends.multiplier_map`).

Exact reduction of the input block.  Only the x^0-columns X = [A_x; C_x] ((n + N_L, n0))
of A and C touch x^0 (B and the psi-block do not), and they lie in the row space of the first
weight W_0 (every later row is a product ending in W_0).  With the thin SVD X = U S V1^T
(rank r, V1 (n0, r)) and V2 completing V1 to an orthogonal [V1 V2], the congruence
Q = blkdiag([V1 V2], I_n) gives

    Q^T M(lambda, rho) Q = blkdiag(M_r(lambda, rho), -rho I_{n0 - r}),

M_r the same LMI for the data A_r = [A_x V1, A_psi], C_r = [C_x V1, C_psi] (the network whose
first weight is U S, (n_1, r)), since X V2 = 0 and E_0 becomes I (coordinates ordered
(V1^T x^0, psi, V2^T x^0)).  So M <= 0 iff M_r <= 0 (rho >= 0), for either multiplier
variant and any slope bounds: the SDPs have the same optimum (`reduce_input`; applied when
r < n0).  Rank: singular values <= s_max max(shape) eps (zero
to rounding) are dropped, and the result says how many and the largest one dropped.

Normalisation (the same answer in any units; reference.lipschitz._normalise, which proves it).
`lipsdp` solves and certifies a normalised network: for LipSDP-neuron each hidden neuron is
first equilibrated (its row of W_l times 2^-a, its column of W_{l+1} times 2^a, a chosen to
balance the row and column norms: the same function, and the same LipSDP-neuron optimum,
since one multiplier per neuron absorbs the congruence; not so for LipSDP-layer, whose one
multiplier per layer must fit every neuron's scale), then (both variants) each W_k is divided by
2^e_k <= ||W_k||_2 and each hidden layer's slope bounds by 2^g_l <= its largest slope.  The
optimum of the network is 2^E times the normalised one's, E = sum e_k + sum g_l, exactly; the
scaled data are exact (powers of two; an entry below the normal range is the exception,
with its rounding in `data_rounding` and `Normalisation.lossless` False), and the value and
its proven rounding bound are mapped back by 2^E exactly (the rounding bound rounded up; a
value outside the normal float64 range is an OverflowResult).  So the certificate is the
normalised network's, and it holds for the network as given: -M'*(lambda', rho'_up) >= 0
for the exact normalised data is, by the congruence, -M*(lambda, 4^E rho'_up) >= 0 for the
exact data of the network.  The solver works in units where every weight and slope has norm
in [1, 2) and every neuron is balanced: a network with its layers (or, for LipSDP-neuron,
its neurons) rescaled by any factors is the same problem up to factors in [1/2, 2), and the
tolerances (relative gap, stretch, margins, the rank tolerance) are relative to its own
scale.  Before: at weights x 1e3 every solver failed, at x 1e-6 NUMPY certified 6.5e12 times
the exact value; a neuron's row x 1e4 and column / 1e4 gave LipSDP-neuron 308.7 for an
optimum of 0.6728, stated accuracy 8 (1e8: 1.03e11, accuracy 1.25).

LipSDP against the layer-wise bound L_w = prod_l ||diag(L_l) W_l||_2 (L_n = max(|alpha_n|,
|beta_n|)).  For every neuron with alpha_n < beta_n the 2 x 2 form L_n^2 dz^2 - dx^2 -
tau (dx - alpha_n dz)(beta_n dz - dx) is positive semidefinite for some tau_n >= 0 (S-lemma:
the sector implies |dx| <= L_n |dz|); chaining ||dx_l|| <= ||diag(L_l) W_{l-1} dx_{l-1}||
with the weights c_l = prod_{j > l} ||diag(L_j) W_j||^2 gives a feasible point of
LipSDP-neuron with lambda_n = c_l tau_n and rho = L_w^2: LipSDP-neuron <= L_w in exact
arithmetic.  LipSDP-layer needs one tau for the whole layer, and tau_n depends on
(alpha_n, beta_n) (ReLU [0, 1]: tau = 2 exactly; [0.5, 1]: tau = 4 exactly), so with
heterogeneous slope bounds in a layer (PReLU, splines) it can exceed L_w.  The rule, in one
place (`_at_most_layerwise`): a certified value above L_w is never reported; the result
gives L_w (with its closed-form margin as rounding_bound), says so (capped_by_layerwise) and
keeps both certificates.

Certificate (on the unreduced LMI, whatever was solved): with the solver's multipliers lambda
(clipped at 0), write M(lambda, 0) = [[P, Q], [Q^T, R]] (P the input block, (n0, n0)).  If
R < 0 (eigvalsh, and the Cholesky factorisation of -R), M(lambda, rho) <= 0 iff
rho >= lambda_max(P - Q R^{-1} Q^T) (Schur complement; computed as a Gram matrix,
`schur_rho`), so sqrt of that is an upper bound certified in NumPy whatever the solver's
accuracy and whatever the rank tolerance (dropping a singular value that is not zero could
only make the multipliers less good, never the bound invalid).  It equals the reduced LMI's:
P = V1 P_r V1^T and Q = V1 Q_r (R unchanged), so P - Q R^{-1} Q^T = V1 (P_r - Q_r R^{-1}
Q_r^T) V1^T, whose other eigenvalues are 0.  At the optimum R is often singular (e.g. random
2-H-H-1 ReLU nets: max eigenvalue +2e-12 at the solver's multipliers), so the multipliers are
first stretched: M((1 + e) lambda, (1 + e) rho) = (1 + e) M(lambda, rho) - e C^T C, so a
feasible (lambda, rho) stays feasible with rho (1 + e) and R becomes negative wherever C is
not 0; every e in STRETCHES is evaluated and the least bound kept (each one is certified;
e = 1e-10 moves the bound by ~1e-10, while a solver's slightly infeasible multipliers can
certify less with e = 1e-6 than with 0).  When that fails too (the solver's tolerance), the
SDP is solved again with M <= -margin I (MARGINS, relative to the solver's rho at margin 0):
strictly feasible multipliers, a bound larger by O(margin); every attempt is reported.

Accuracy (how far the value may sit above the SDP's optimum).  The solver's dual matrix X
gives a proven lower bound rho_low <= rho* on the optimum of the exact SDP (weak duality,
with X repaired into exact dual feasibility and every rounding bounded:
reference.lipschitz._lipsdp_dual), so accuracy = (sdp_value - sqrt(rho_low)) / sdp_value, rounded
up, is a certified bound on (sdp_value - optimum) / sdp_value, and optimum_lower = sqrt(rho_low) (in
the network's units) brackets LipSDP's optimum with sdp_value + rounding_bound.  Without a dual
matrix (SCS), or when the repair fails, accuracy is the solver's own estimate (its gap tolerance +
margin + stretch + the certification's loss, and the uncertified dual objective) and
accuracy_certified is False; either way `inaccurate` flags an accuracy above
INACCURATE_RTOL (1e-3).

Solvers (registry SOLVE; every one only proposes multipliers, the certificate is the above):
NUMPY by default (`reference.lipschitz._ipm`: a primal-dual interior-point method in NumPy whose
Newton system uses the rank-2 structure of every multiplier's matrix, O(N^3) per iteration
in NumPy's BLAS); CVXOPT (`reference.lipschitz._sdp_backends`: CVXOPT's conelp called directly with
a KKT solver using the same structure; its own dense N x N work, with the BLAS it ships,
makes it ~10x slower than NUMPY at N = 400); CLARABEL, SCS and MOSEK through cvxpy (CLARABEL
factors a dense block of side N(N+1)/2: 3.4 s on the 2-10-30-20-2 anchor).  When the default
fails at every margin, FALLBACK_SOLVERS are tried in turn, each only when its own estimate
passes the size guard.

Size guard (reference._limits): before anything is built, `sdp_cost` (in _sdp_backends)
estimates the work of the solve from the reduced LMI's side (r bounded by min(n0, n1), no
SVD), the number of multipliers and the widths; over max_sdp_cost (MAX_SDP_COST) it is
refused with TooLarge.  There is no time limit: the cost of the interior-point solves is
predictable (calibration in `sdp_cost`).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from reference._limits import guard
from reference._numerics import UNIT_ROUNDOFF, gamma, product_or_overflow, times_power_of_two_up
from reference.exceptions import OverflowResult, SolveFailed
from reference.lipschitz._blas import LIPSDP_BLAS_THREADS, check_threads
from reference.lipschitz._blas import blas_threads as threads_of_blas
from reference.lipschitz._bound_result import BoundResult
from reference.lipschitz._bounds import (
    CLOSED_FORM_FACTOR,
    check_finite,
    closed_form_rtol,
    layerwise,
)
from reference.lipschitz._ipm import solve_numpy
from reference.lipschitz._lipsdp_dual import DualBound, dual_bound
from reference.lipschitz._normalise import Layers, Normalisation, layers_of, normalise
from reference.lipschitz._rounding import (  # noqa: F401
    ROUNDING_CHECKS,
    USELESS_RTOL,
    RoundingBound,
    rounding_bound,
    rounding_fields,
    rounding_text,
)
from reference.lipschitz._sdp_backends import (
    CVXPY_SOLVERS,
    LmiData,
    SdpSolution,
    lmi_matrix,
    lmi_size,
    multiplier_map,
    sdp_cost,
    solve_cvxopt,
    solve_cvxpy,
)
from reference.nn._network import Network

VARIANTS = ("neuron", "layer")
# name -> (data, K, margin) -> solution
SOLVE: dict[str, Callable[..., SdpSolution]] = {
    "NUMPY": solve_numpy, "CVXOPT": solve_cvxopt,
    **{name: partial(solve_cvxpy, solver=name) for name in CVXPY_SOLVERS}}
SDP_SOLVERS = tuple(SOLVE)
DEFAULT_SOLVER = "NUMPY"
FALLBACK_SOLVERS = ("CVXOPT", "CLARABEL")   # tried in turn when the default one fails
STRETCHES = (0.0, 1e-10, 1e-8, 1e-6)  # certify (1 + e) lambda (module docstring)
MARGINS = (0.0, 1e-7, 1e-5)        # retries with M <= -margin * scale I (scale: see lipsdp)
MAX_SDP_COST = 8e10                # size guard on sdp_cost (units of about 1e-8 s here)
INACCURATE_RTOL = 1e-3             # an accuracy above this is flagged (result's `inaccurate`)


def solver_installed(name: str) -> bool:
    """Whether the solver can run: NUMPY always, CVXOPT importable (it is called directly),
    the others known to cvxpy as installed."""
    if name == "NUMPY":
        return True
    if name == "CVXOPT":
        try:
            import cvxopt  # noqa: F401
        except ImportError:
            return False
        return True
    import cvxpy as cp

    return name in cp.installed_solvers()


def check_solver(solver: str) -> str:
    """The solver name, upper-cased, if it is one of SDP_SOLVERS and installed; else a
    ValueError naming the argument and the choices."""
    name = str(solver).upper()
    if name not in SDP_SOLVERS or not solver_installed(name):
        usable = [s for s in SDP_SOLVERS if solver_installed(s)]
        raise ValueError(f"solver: expected an installed SDP solver, one of {usable}, "
                         f"got {solver!r}")
    return name


def lipsdp_data(net: Network) -> LmiData:
    """The data of LipSDP's LMI after the loop transformation, from the weights as given.

    Parameters
    ----------
    net : Network
        The network f (N_0 inputs, N_L outputs).

    Returns
    -------
    data : LmiData
        A named tuple: ``a_mat`` (n, N) with z = A v the pre-activations of the n nonlinear
        hidden neurons, ``out_mat`` (N_L, N) with f = C v, ``alpha``, ``beta`` and ``scale``
        = beta - alpha (n,) their slope bounds, ``layer_of_neuron`` (n,), ``n0`` (N_0) and
        ``absorbed`` (the number of linear hidden neurons folded into A and C); v = [x^0;
        psi], N = N_0 + n.

    Raises
    ------
    OverflowResult
        When the products of weights and slopes leave the float64 range.

    Notes
    -----
    `lipsdp` solves on `normalised_data`, the same construction on the normalised network.
    Hidden layer l maps y^{l-1} = G v to z = W_l G v (rows of A for
    its nonlinear neurons) and y^l = diag(alpha) W_l G v + D psi_l, D = diag(beta - alpha) on
    the new state entries psi_l of its nonlinear neurons, so the new G is alpha * (W_l G) plus
    those entries; a linear neuron (alpha = beta) gets no entry: it is absorbed exactly.  At
    the end C = W_out G.

    Examples
    --------
    >>> from reference.nn import build_mlp
    >>> from reference.lipschitz import lipsdp_data
    >>> data = lipsdp_data(build_mlp([2, 4, 1], activation="relu", rng=0))
    >>> data.a_mat.shape, data.out_mat.shape
    ((4, 6), (1, 6))
    """
    return _build_data(layers_of(net))[0]


def data_rounding(net: Network) -> tuple[np.ndarray, np.ndarray]:
    """Entrywise bounds (n, N) and (N_L, N) on |A - A*| and |C - C*|, A*, C* the LMI data of
    `lipsdp_data` in exact arithmetic from the same weights and slope bounds, by a running
    error analysis of its products (any summation order):
        Z = W G:  e_Z = |W| e_G + e_W |G| + gamma_k |W| |G|  (k = the inner dimension; e_W
                  the weights' own rounding, 0 except in `normalised_data`'s subnormals);
        G' = alpha Z (one product): e = |alpha| e_Z + u |alpha Z|;  D = beta - alpha: u |D|;
        C = W_out G: as Z (exact for W_out = I)."""
    return _build_data(layers_of(net))[1:]


class NormalisedLmi(NamedTuple):
    """`normalised_data`'s answer: data (LmiData of the normalised network), errors (its
    `data_rounding`: e_A, e_C) and normalisation (`Normalisation`: exponent E)."""
    data: LmiData
    errors: tuple
    normalisation: Normalisation


def normalised_data(net: Network, variant: str) -> NormalisedLmi:
    """The LMI data and rounding bounds of the network normalised for `variant`
    (reference.lipschitz._normalise.normalise: equilibrated per neuron for "neuron"), on which
    `lipsdp` solves and certifies: its value times 2^E is the network's."""
    layers = normalise(layers_of(net), variant)
    data, *errors = _build_data(layers)
    assert layers.normalisation is not None          # normalise always records it
    return NormalisedLmi(data, tuple(errors), layers.normalisation)


def _build_data(layers: Layers) -> tuple[LmiData, np.ndarray, np.ndarray]:
    """(`lipsdp_data`, its `data_rounding`) of the layers: one pass over them."""
    u = UNIT_ROUNDOFF
    nonlinear = [lo != hi for lo, hi in layers.bounds]
    n0 = layers.n0
    side = n0 + sum(int(k.sum()) for k in nonlinear)
    g = np.eye(n0, side)                   # y^0 = x^0 = G v, (n_0, N)
    e_g = np.zeros_like(g)                 # bound on |G - G*|
    rows, e_rows, col = [], [], n0

    def product(w, e_w, g, e_g):           # W G and its error bound
        return w @ g, (np.abs(w) @ e_g + e_w @ np.abs(g)
                       + gamma(w.shape[1]) * (np.abs(w) @ np.abs(g)))
    with np.errstate(over="ignore", invalid="ignore"):          # checked below
        for w, e_w, (lo, hi), keep in zip(layers.weights, layers.weight_errors,
                                          layers.bounds, nonlinear):
            z, e_z = product(w, e_w, g, e_g)    # (n_l, N)
            g = lo[:, None] * z            # y = alpha z + (beta - alpha) psi
            e_g = np.abs(lo)[:, None] * e_z + u * np.abs(g)
            new = np.flatnonzero(keep)
            g[new, col + np.arange(len(new))] = (hi - lo)[new]
            e_g[new, col + np.arange(len(new))] = u * np.abs(hi - lo)[new]
            rows.append(z[new])
            e_rows.append(e_z[new])
            col += len(new)
        out_mat, e_out = ((g, e_g) if layers.w_out is None else
                          product(layers.w_out, layers.w_out_error, g, e_g))
    bounds = layers.bounds
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
    return data, (np.vstack(e_rows) if e_rows else np.zeros((0, side))), e_out


class InputReduction(NamedTuple):
    """The LMI data after the exact reduction of the input block (module docstring): data
    (LmiData with n0 = rank, A_x and C_x replaced by A_x V1 and C_x V1), n0 (the input
    dimension before), rank r, tolerance (singular values <= it counted as zero: s_max
    max(shape) eps), largest_dropped (the largest singular value counted as zero, 0.0 when
    none was computed: the n0 - min(n0, rows) structural ones are exactly 0), basis V1
    (n0, r): x^0 = V1 y on the kept directions."""
    data: LmiData
    n0: int
    rank: int
    tolerance: float
    largest_dropped: float
    basis: np.ndarray

    def summary(self) -> dict:
        """The fields a result reports (JSON-ready)."""
        return {"n0": self.n0, "rank": self.rank, "dropped": self.n0 - self.rank,
                "tolerance": self.tolerance, "largest_dropped": self.largest_dropped,
                "side": self.data.a_mat.shape[1]}


def reduce_input(data: LmiData) -> InputReduction:
    """The exact reduction of the input block: thin SVD of X = [A_x; C_x] ((n + N_L, n0)),
    X = U S V1^T with the singular values above s_max max(shape) eps kept (rank r), and the
    data A_r = [A_x V1, A_psi] (n, r + n), C_r = [C_x V1, C_psi] (N_L, r + n), n0 = r.  The SDP
    on the reduced data has the same optimum (module docstring); r = n0 returns the data
    unchanged, r = 0 means f does not depend on x."""
    n0 = data.n0
    x_cols = np.vstack([data.a_mat[:, :n0], data.out_mat[:, :n0]])
    _, sing, vt = np.linalg.svd(x_cols, full_matrices=False)
    tol = float(sing[0] * max(x_cols.shape) * np.finfo(np.float64).eps) if sing.size else 0.0
    rank = int(np.count_nonzero(sing > tol))
    dropped = float(sing[rank:].max()) if rank < sing.size else 0.0
    if rank == n0:
        return InputReduction(data, n0, n0, tol, dropped, np.eye(n0))
    v1 = vt[:rank].T                                              # (n0, r)
    reduced = data._replace(
        a_mat=np.hstack([data.a_mat[:, :n0] @ v1, data.a_mat[:, n0:]]),
        out_mat=np.hstack([data.out_mat[:, :n0] @ v1, data.out_mat[:, n0:]]), n0=rank)
    return InputReduction(reduced, n0, rank, tol, dropped, v1)


def schur_rho(data: LmiData, lam: np.ndarray) -> float:
    """The least rho with M(lambda, rho) <= 0, inf when -R is not positive definite (its
    Cholesky factorisation -R = L L^T fails).  With P = C_x^T C_x the input block of
    M(lambda, 0), the Schur complement is the Gram matrix
    P - Q R^{-1} Q^T = C_x^T C_x + Q (L L^T)^{-1} Q^T = F^T F,  F = [C_x; L^{-1} Q^T],
    so rho* = ||F||_2^2 (F (N_L + n, n0): an SVD of the small side).  With no nonlinear
    neuron, rho* = ||C||_2^2."""
    from scipy.linalg import LinAlgError, cholesky, solve_triangular

    n0 = data.n0
    m = lmi_matrix(data, lam, 0.0)
    q_blk, r_blk = m[:n0, n0:], m[n0:, n0:]
    try:
        low = cholesky(-r_blk, lower=True)
    except (LinAlgError, ValueError):              # not positive definite, or not finite
        return np.inf
    f = np.vstack([data.out_mat[:, :n0], solve_triangular(low, q_blk.T, lower=True)])
    return float(np.linalg.norm(f, 2)) ** 2


def certified_rho(data: LmiData, lam: NDArray[np.float64]) -> tuple[float, float]:
    r"""The least rho with M(lambda, rho) <= 0 at given multipliers, computed in NumPy.

    Parameters
    ----------
    data : LmiData
        The LMI data (`lipsdp_data`), N = data.n0 + n.
    lam : ndarray of float64, shape (n,)
        The multipliers lambda >= 0 of the n nonlinear hidden neurons (T = diag(lam)).

    Returns
    -------
    rho : float
        The least rho with M(lambda, rho) <= 0 (rho*) when R < 0; inf otherwise.
    r_max : float
        The largest eigenvalue of the hidden block R of M(lambda, 0) (-inf when empty).

    Notes
    -----
    With M(lambda, 0) = [[P, Q], [Q^T, R]] (P the input block), if R < 0 (eigvalsh, and the
    Cholesky factorisation -R = L L^T of `schur_rho`),

    .. math::

        \rho^* = \lambda_{\max}(P - Q R^{-1} Q^T) = \|F\|_2^2, \qquad
        F = \begin{bmatrix} C_x \\ L^{-1} Q^T \end{bmatrix},

    the Schur complement written as a Gram matrix.  sqrt(rho*) bounds Lip_2(f) whatever the
    multipliers (LipSDP [1]_); `rounding_bound` bounds its float64 rounding.

    References
    ----------
    .. [1] M. Fazlyab, A. Robey, H. Hassani, M. Morari, G. Pappas, "Efficient and Accurate
       Estimation of Lipschitz Constants for Deep Neural Networks", NeurIPS 2019.
    """
    r_blk = lmi_matrix(data, lam, 0.0)[data.n0:, data.n0:]
    r_max = float(np.linalg.eigvalsh(r_blk).max()) if r_blk.size else -np.inf
    return (schur_rho(data, lam) if r_max < 0 else np.inf), r_max


def lipsdp(net: Network, variant: str = "neuron", solver: str = DEFAULT_SOLVER,
           max_sdp_cost: float = MAX_SDP_COST, reduce: bool = True,
           blas_threads: int | None = LIPSDP_BLAS_THREADS) -> BoundResult:
    r"""LipSDP upper bound on the l2 Lipschitz constant, certified in NumPy.

    LipSDP-neuron or LipSDP-layer [1]_ (p = 2), solved and certified on the normalised
    network and scaled back exactly: the value of the network with its layers (or, for
    LipSDP-neuron, its neurons) rescaled is the value rescaled, to the solver's relative
    accuracy.

    Parameters
    ----------
    net : Network
        The network f; its parameters must be finite.
    variant : {'neuron', 'layer'}, default 'neuron'
        One multiplier per hidden neuron (LipSDP-neuron) or per hidden layer
        (LipSDP-layer).
    solver : {'NUMPY', 'CVXOPT', 'CLARABEL', 'SCS', 'MOSEK'}, default 'NUMPY'
        The solver proposing the multipliers (case-insensitive; it must be installed).
        When NUMPY fails at every margin, FALLBACK_SOLVERS are tried, each when its own
        cost estimate passes the size guard.
    max_sdp_cost : float, default MAX_SDP_COST (8e10)
        Size guard on `sdp_cost` (units of about 1e-8 s).
    reduce : bool, default True
        Solve on the exactly reduced input block whenever its rank r < N_0 (Notes).
    blas_threads : int or None, default 1
        The BLAS libraries' threads while it runs (reference.lipschitz._blas; one is
        1.1-3x faster than two on the reference machine); None leaves them as they are.

    Returns
    -------
    result : BoundResult
        A dict subclass with attribute access (the keys marked [lipsdp] in `BoundResult`):

        - ``value`` (float): the NumPy-certified bound sqrt(rho*) on the unreduced LMI, or
          the layer-wise bound when that is lower (``capped_by_layerwise`` True; Notes);
        - ``sdp_value`` (float): LipSDP's own certified bound either way;
        - ``layerwise`` (float or None): prod_l ||diag(L_l) W_l||_2 (None outside the
          float64 range: not compared); ``capped_by_layerwise`` (bool);
        - ``rounding_bound`` (float, absolute, on value: LipSDP's proven rounding bound, or
          the closed-form margin of the layer-wise bound when capped), ``rounding_useless``
          (bool: above 1e-3 relative), ``sdp_rounding_bound`` (LipSDP's own);
        - ``solver_value`` (float: sqrt of the solver's rho), ``relative_gap`` ((value -
          solver_value) / value: how far the certified bound sits above the solver's
          optimum);
        - ``accuracy`` (float): a bound on (sdp_value - optimum) / sdp_value, the optimum
          that of the SDP posed (the exact LMI data of the network as given, of the variant
          asked); ``accuracy_certified`` (bool): proven (1 - optimum_lower / sdp_value,
          rounded up, from the solver's dual matrix, reference.lipschitz._lipsdp_dual) or,
          when no dual bound could be certified, the solver's estimate (max(relative_gap,
          0) + its relative gap tolerance on rho + the margin of the retry that certified it
          + the stretch e of the multipliers); ``optimum_lower`` (float or None: a proven
          lower bound on LipSDP's optimum); ``inaccurate`` (bool: accuracy above
          INACCURATE_RTOL = 1e-3); ``dual_certificate`` (str);
        - ``status`` (str), ``solver`` (the one that solved it), ``iterations``,
          ``attempts`` (list: each solver and margin tried, with its status);
        - ``normalisation`` (dict, `Normalisation.summary`: weight_exponents,
          slope_exponents, neuron_exponents, equilibration_sweeps, exponent E, lossless),
          ``reduction`` (dict, `InputReduction.summary`: n0, rank, dropped, tolerance,
          largest_dropped, side; None with reduce=False), ``lmi_side`` (N of the unreduced
          LMI), ``absorbed_neurons`` (linear hidden neurons folded into A and C),
          ``seconds``, ``build_seconds`` and ``certificate`` (str; both, when capped).

    Raises
    ------
    ValueError
        When variant, solver, reduce or blas_threads is not one of the values above, the
        solver is not installed, or a parameter of the network is not finite.
    TooLarge
        When the estimated cost exceeds max_sdp_cost, before anything is built.
    SolveFailed
        When no attempt gives a certified bound (a RuntimeError; no value is returned).
    OverflowResult
        When the value leaves the normal float64 range.

    See Also
    --------
    lipsdp_data : The LMI data M is built from.
    certified_rho : The certificate at given multipliers.
    rounding_bound : The proven rounding bound of that certificate.

    Notes
    -----
    Each hidden neuron is slope-restricted in [alpha_n, beta_n] (`slope_bounds`).  After the
    loop transformation x = alpha z + (beta - alpha) psi (state v = [x^0; psi], z = A v,
    f = C v, B = [0, I_n], T = diag(lambda), lambda >= 0 one multiplier per neuron or per
    layer), LipSDP solves

    .. math::

        \min_{\lambda \ge 0,\ \rho} \rho \quad \text{s.t.} \quad
        M(\lambda, \rho) = A^T T B + B^T T A - 2 B^T T B + C^T C - \rho E_0 \preceq 0,

    E_0 = blkdiag(I_{N_0}, 0), and Lip_2(f) <= sqrt(rho) [1]_.  For ReLU (alpha 0, beta 1)
    this is the published LMI.  A linear neuron (alpha = beta) is absorbed into A and C
    exactly; with every hidden neuron linear the network is affine and the value is
    ||C||_2 with no SDP (solver "none (affine network)"); a network whose output does not
    depend on its input gives 0 exactly.

    Certificate: at the solver's multipliers, with M(lambda, 0) = [[P, Q], [Q^T, R]], if
    R < 0 then M(lambda, rho) <= 0 iff rho >= lambda_max(P - Q R^{-1} Q^T) (Schur
    complement, `certified_rho`), so sqrt of that is an upper bound whatever the solver's
    accuracy; the proven rounding bound of computing it in float64 is `rounding_bound`
    (Higham's gamma_n analysis [2]_).  With `reduce`, the input block is reduced exactly by
    the thin SVD of the x^0-columns (the same optimum).  LipSDP-neuron <= layerwise in
    exact arithmetic (S-lemma); a certified value above the layer-wise bound is never
    reported (``capped_by_layerwise``).  The module docstring gives the derivations.

    References
    ----------
    .. [1] M. Fazlyab, A. Robey, H. Hassani, M. Morari, G. Pappas, "Efficient and Accurate
       Estimation of Lipschitz Constants for Deep Neural Networks", NeurIPS 2019.
    .. [2] N. J. Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., SIAM,
       2002.

    Examples
    --------
    >>> from reference.nn import build_mlp
    >>> from reference.lipschitz import layerwise, lipsdp
    >>> net = build_mlp([2, 4, 1], activation="relu", rng=0)
    >>> result = lipsdp(net)
    >>> print(result["status"], round(result["value"], 4), round(layerwise(net), 4))
    optimal 0.6073 0.8854
    >>> result["rounding_bound"] < 1e-9 * result["value"]
    True
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
    requested = str(solver).upper()
    if requested not in SDP_SOLVERS:
        raise ValueError(f"solver: expected an SDP solver, one of {list(SDP_SOLVERS)}, "
                         f"got {solver!r}")
    if not isinstance(reduce, (bool, np.bool_)):
        raise ValueError(f"reduce: expected True or False, got {reduce!r}")
    blas_threads = check_threads(blas_threads, "blas_threads")
    check_finite(net)
    side = lmi_size(net)[0]
    guard(f"model: LipSDP-{variant} with {requested} (LMI side N = {side}"
          + (f", reduced to at most {lmi_size(net, True)[0]}" if reduce else "")
          + "), cost (about 1e-8 s per unit)", sdp_cost(net, variant, requested, reduce),
          max_sdp_cost, "max_sdp_cost")
    solver = check_solver(requested)                  # installed
    with threads_of_blas(blas_threads):
        return _lipsdp(net, variant, solver, max_sdp_cost, reduce)


def _lipsdp(net: Network, variant: str, solver: str, max_sdp_cost: float,
            reduce: bool) -> BoundResult:
    """`lipsdp` once its arguments are checked: solved and certified on the network normalised
    for the variant (`normalised_data`), scaled back by 2^E (`_in_network_units`), never above
    the layer-wise bound (`_at_most_layerwise`)."""
    t0 = time.perf_counter()
    data, errors, normalisation = normalised_data(net, variant)
    result, rounding = _lipsdp_normalised(net, variant, solver, max_sdp_cost, reduce, data,
                                          errors, t0)
    result = _in_network_units(result, rounding, normalisation, f"LipSDP-{variant}")
    return BoundResult(_at_most_layerwise(net, result))


def _lipsdp_normalised(net: Network, variant: str, solver: str, max_sdp_cost: float,
                       reduce: bool, data: LmiData, errors, t0: float
                       ) -> tuple[dict, RoundingBound]:
    """The result of `lipsdp` for the normalised LMI data (its units: value, solver_value and
    optimum_lower of the normalised network) and the RoundingBound of its value."""
    if len(data.scale) == 0:
        return _affine(data, errors, t0)
    reduction = reduce_input(data) if reduce else None
    if not np.any(data.out_mat) or (reduction is not None and reduction.rank == 0):
        return _closed_form(data, 0.0, "none (constant network)", t0, (
            "the output does not depend on the input (C = 0, or A and C have no input "
            "columns): value = 0 exactly"), 0.0, reduction), RoundingBound(0.0, 0.0, 0.0, 0.0, 0)
    solved = reduction.data if reduction is not None else data
    k_mat = multiplier_map(data, variant)
    build = time.perf_counter() - t0

    def fallback() -> list:
        if solver != DEFAULT_SOLVER:
            return []
        return [name for name in FALLBACK_SOLVERS if solver_installed(name)
                and sdp_cost(net, variant, name, reduce) <= max_sdp_cost]
    found, tried = _solve_certified(data, solved, k_mat, solver, fallback)
    if found is None:
        raise SolveFailed(f"LipSDP-{variant}: no certified bound ({'; '.join(tried)}); "
                          "no bound is reported")
    solver, sol = found.solver, found.solution
    value = float(np.sqrt(max(found.rho, 0.0)))
    rounding = rounding_bound(data, errors, found.lam, found.rho, found.r_max)
    dual = dual_bound(data, errors, k_mat, sol.dual,
                      None if reduction is None or reduction.rank == reduction.n0
                      else reduction.basis)
    solver_value = float(np.sqrt(max(sol.rho, 0.0)))
    gap = (value - solver_value) / value if value > 0 else 0.0
    accuracy = _accuracy(value, dual, max(gap, 0.0) + sol.rtol + found.margin + found.stretch)
    reduced_text = ("" if reduction is None or reduction.rank == reduction.n0 else
                    f"; solved on the reduced LMI (input block rank {reduction.rank} of "
                    f"{reduction.n0}, side {solved.a_mat.shape[1]}, singular values <= "
                    f"{reduction.tolerance:.3g} dropped, largest {reduction.largest_dropped:.3g})")
    return {"value": value, "solver_value": solver_value, "relative_gap": gap, **accuracy,
            "status": sol.status, "solver": solver, "iterations": sol.iterations,
            "attempts": tried, "seconds": time.perf_counter() - t0, "build_seconds": build,
            "reduction": None if reduction is None else reduction.summary(),
            "lmi_side": data.a_mat.shape[1], "absorbed_neurons": data.absorbed,
            "certificate": (
                "sqrt(lambda_max(P - Q R^-1 Q^T)) at the solver's multipliers (times "
                f"1 + {found.stretch:g}) on its unreduced LMI (N = {data.a_mat.shape[1]}), "
                f"hidden block max eigenvalue {found.r_max:.3g} < 0, re-evaluated in NumPy"
                + reduced_text)}, rounding


def _accuracy(value: float, dual: DualBound, estimate: float) -> dict:
    """The accuracy fields of a result (module docstring): accuracy, accuracy_certified,
    optimum_lower (in the normalised network's units; None when not certified), inaccurate
    (accuracy above INACCURATE_RTOL) and dual_certificate (the sentence)."""
    if dual.certified and value > 0:
        lower = float(np.sqrt(dual.rho_lower))
        accuracy = max((value - lower) / value, 0.0) * (1 + 4 * UNIT_ROUNDOFF)
        text = ("proven by the solver's dual matrix (weak duality on the exact LMI data, "
                "rounding bounded" + (f", mixed with weight {dual.mix:.3g} with the linearised "
                                      "network's strictly feasible point" if dual.mix else "")
                + ")")
    else:
        lower, accuracy = None, estimate
        text = (f"accuracy NOT CERTIFIED ({dual.reason}): the solver's estimate (gap "
                "tolerance + margin + stretch + certification loss)")
    return {"accuracy": accuracy, "accuracy_certified": lower is not None,
            "optimum_lower": lower, "inaccurate": not accuracy <= INACCURATE_RTOL,
            "dual_certificate": text}


def _in_network_units(result: dict, rounding: RoundingBound, normalisation: Normalisation,
                      what: str) -> dict:
    """The result of the normalised network (`_lipsdp_normalised`) in the network's units:
    value, solver_value, optimum_lower and the rounding bound times 2^E (E =
    normalisation.exponent; exact, the value rounded as `floats.product_or_overflow` rounds:
    outside the normal float64 range an OverflowResult naming `what`; the rounding bound
    rounded up, optimum_lower rounded down), the rounding fields (`rounding_fields`), the
    certificate sentence completed, and the normalisation reported."""
    e = normalisation.exponent
    value = product_or_overflow([(result["value"], e)], what)
    rounding = rounding._replace(bound=times_power_of_two_up(rounding.bound, e))
    with np.errstate(over="ignore", under="ignore"):
        solver_value = float(np.ldexp(result["solver_value"], e))
        lower = result["optimum_lower"]                      # >= 0: rounded down
        if lower is not None:
            lower = float(np.ldexp(lower, e))
            if float(np.ldexp(lower, -e)) > result["optimum_lower"]:
                lower = float(np.nextafter(lower, -np.inf))
    return {**result, "value": value, "solver_value": solver_value, "optimum_lower": lower,
            **rounding_fields(rounding, value), "normalisation": normalisation.summary(),
            "certificate": (
                f"value = 2^{e} x {result['value']!r}, the latter certified on the normalised "
                "network (powers of two: exact, the value scales by exactly 2^E, "
                f"E = {e}): " + result["certificate"] + "; " + rounding_text(rounding, value)
                + "; " + ("" if lower is None else f"LipSDP's optimum >= {lower!r}, ")
                + result["dual_certificate"])}


def _at_most_layerwise(net: Network, result: dict) -> dict:
    """The rule "a LipSDP value is never reported above the layer-wise bound", in one place.
    LipSDP-neuron's optimum is <= prod_l ||diag(L_l) W_l||_2 in exact arithmetic (module
    docstring), LipSDP-layer's need not be (heterogeneous slope bounds in a layer).  When the
    certified value is above the layer-wise bound (`lipschitz.layerwise`), the result
    reports the layer-wise bound as value, with its closed-form rounding margin as
    rounding_bound (`lipschitz.closed_form_rtol`), capped_by_layerwise True, and both
    certificates; sdp_value and sdp_rounding_bound keep LipSDP's own, layerwise the bound
    (None outside the float64 range: not compared)."""
    try:
        layer_wise = layerwise(net, 2)
    except OverflowResult:
        layer_wise = None
    out = {**result, "sdp_value": result["value"], "sdp_rounding_bound": result[
        "rounding_bound"], "layerwise": layer_wise, "capped_by_layerwise": False}
    if layer_wise is None or not result["value"] > layer_wise:
        return out
    rtol, rtol_text = closed_form_rtol(net)
    return {**out, "value": layer_wise, "rounding_bound": layer_wise * rtol,
            "rounding_useless": False, "capped_by_layerwise": True, "certificate": (
                f"LipSDP's certified value {result['value']!r} is above the layer-wise bound "
                f"{layer_wise!r}: the layer-wise bound is reported (prod_l ||diag(L_l) W_l||_2, "
                f"closed form, margin {rtol_text}); LipSDP's certificate: "
                + result["certificate"])}


class Certified(NamedTuple):
    """A certified solve: rho (the least rho with M(lambda, rho) <= 0 on the unreduced LMI),
    r_max (max eigenvalue of its hidden block, < 0), solver, margin (of the solve, relative
    to rho) and stretch (lambda = (1 + stretch) x the solver's multipliers), solution,
    lam (n,): the multipliers certified."""
    rho: float
    r_max: float
    solver: str
    margin: float
    stretch: float
    solution: SdpSolution
    lam: np.ndarray


def _solve_certified(data: LmiData, solved: LmiData, k_mat: np.ndarray, solver: str,
                     fallback):
    """Solve the SDP on `solved` (the data itself or its reduction) with `solver`, at every
    margin of MARGINS (M <= -margin * scale I, scale the solver's rho at margin 0: a strictly
    feasible retry), then with the solvers fallback() returns (asked only when the first one
    failed), until the multipliers, stretched by 1 + e (the e in STRETCHES with the least
    `schur_rho`), certify a bound on the unreduced `data` (`certified_rho`).  Returns
    (Certified or None, the attempts as text)."""
    scale = float(np.linalg.norm(data.out_mat, 2)) ** 2 or 1.0   # until a solve gives rho
    tried, queue = [], [solver]
    while queue:
        name = queue.pop(0)
        for margin_value in MARGINS:
            sol: SdpSolution = SOLVE[name](solved, k_mat, margin_value * scale)
            status = sol.status
            if margin_value == 0 and sol.rho is not None and 0 < sol.rho < np.inf:
                scale = float(sol.rho)
            if status == "optimal" and not np.all(np.isfinite(
                    sol.lam)):  # type: ignore[arg-type]  # an optimal solution carries lam
                status += ", but multipliers not finite"
            elif status == "optimal":
                assert sol.lam is not None             # every back-end returns it when optimal
                lam = np.maximum(sol.lam, 0.0)
                stretch = min(STRETCHES, key=lambda e: schur_rho(data, lam * (1.0 + e)))
                lam = lam * (1.0 + stretch)
                rho_cert, r_max = certified_rho(data, lam)
                if np.isfinite(rho_cert):
                    tried.append(f"{name} margin {margin_value:g}: {status}" + (
                        f", multipliers x (1 + {stretch:g})" if stretch else ""))
                    return Certified(rho_cert, r_max, name, margin_value, stretch, sol,
                                     lam), tried
                status += (f", not certified (max eigenvalue of the hidden block {r_max:.3g} "
                           ">= 0)")
            tried.append(f"{name} margin {margin_value:g}: {status}")
        if name == solver:
            queue += fallback()
    return None, tried


def _affine(data: LmiData, errors, t0: float) -> tuple[dict, RoundingBound]:
    """The result of `lipsdp` when every hidden neuron is linear: the network is affine,
    f(x) = C x + c, and LipSDP is exact: Lip_2(f) = ||C||_2 (largest singular value)."""
    value = float(np.linalg.norm(data.out_mat, 2))
    if not np.isfinite(value):
        raise OverflowResult("model: LipSDP: ||C||_2 leaves the float64 range for these "
                             "finite parameters")
    rounding = rounding_bound(data, errors, np.zeros(0), value ** 2, -np.inf)
    lower = max(value * (1 - _svd_rtol(data)) - float(np.linalg.norm(errors[1])),
                0.0) * (1 - 4 * UNIT_ROUNDOFF)
    return _closed_form(data, value, "none (affine network)", t0, (
        "the network is affine (every hidden neuron has alpha_n = beta_n), f(x) = C x "
        "+ c: value = ||C||_2, its largest singular value (numpy.linalg.norm), the "
        "exact Lipschitz constant and the optimum of both LipSDP variants"), lower,
        None), rounding


def _svd_rtol(data: LmiData) -> float:
    """The relative rounding of ||C||_2 computed by LAPACK's SVD (backward stable, no sharp
    constant: CLOSED_FORM_FACTOR gamma_n, n = N_L + N, as `lipschitz.closed_form_rtol`)."""
    return CLOSED_FORM_FACTOR * gamma(sum(data.out_mat.shape))


def _closed_form(data: LmiData, value: float, solver: str, t0: float, certificate: str,
                 lower: float, reduction) -> dict:
    """A result of `lipsdp` known without an SDP (affine or constant network): the optimum is
    ||C*||_2 of the exact data, at least `lower` (||C||_2 less its rounding and ||e_C||_F), so
    the accuracy is (value - lower) / value (0 for value 0)."""
    accuracy = (value - lower) / value * (1 + 4 * UNIT_ROUNDOFF) if value > 0 else 0.0
    return {"value": value, "solver_value": value, "relative_gap": 0.0, "accuracy": accuracy,
            "accuracy_certified": True, "optimum_lower": lower,
            "inaccurate": not accuracy <= INACCURATE_RTOL,
            "dual_certificate": "in closed form (||C||_2 less its rounding)",
            "status": "optimal", "solver": solver, "iterations": 0, "attempts": [],
            "seconds": time.perf_counter() - t0, "build_seconds": 0.0,
            "reduction": None if reduction is None else reduction.summary(),
            "lmi_side": data.a_mat.shape[1], "absorbed_neurons": data.absorbed,
            "certificate": certificate}


def lipsdp_neuron(net: Network, solver: str = DEFAULT_SOLVER, **limits) -> BoundResult:
    """LipSDP-neuron: one multiplier per hidden neuron (see `lipsdp`; a BoundResult)."""
    return lipsdp(net, "neuron", solver, **limits)


def lipsdp_layer(net: Network, solver: str = DEFAULT_SOLVER, **limits) -> BoundResult:
    """LipSDP-layer: one multiplier per hidden layer (see `lipsdp`; a BoundResult)."""
    return lipsdp(net, "layer", solver, **limits)
