"""A certified lower bound on LipSDP's optimum from the solver's dual matrix (`dual_bound`): what
makes the `accuracy` of reference.lipschitz._lipsdp a proven bound on how far its value sits above
the optimum of the SDP actually posed (the exact LMI data of the network as given), not an
estimate.

Notes
-----
Weak duality.  The SDP is min rho s.t. M*(K t, rho) <= 0, t >= 0 (reference.lipschitz._sdp_backends;
M* of the exact data A*, C*), M*(lambda, rho) = C*^T C* + sum_i lambda_i F*_i - rho E_0 with
F*_i = e_i b*_i^T + b*_i e_i^T, b*_i = a*_i - e_i.  For any X = V V^T (V (N, m), any real
matrix: X >= 0) and any feasible (t, rho),

    0 >= <X, M*> = ||C* V||_F^2 + sum_l t_l h_l - rho ||V_0||_F^2,
    h = K^T g,  g_i = <F*_i, X> = 2 ((A* V)_i - V_{psi_i}) . V_{psi_i},

(V_0 the input rows of V, V_{psi_i} the row of psi_i), so when every h_l >= 0,
rho >= ||C* V||_F^2 / ||V_0||_F^2 for every feasible rho: a lower bound on the optimum rho*.
The solver's dual matrix X (NUMPY: its primal iterate of the standard form; CVXOPT: z;
cvxpy: the LMI constraint's dual value; on the reduced LMI mapped back by x^0 = V1 y) meets
h >= 0 only to its tolerance, so it is repaired, in two steps.  (1) Layer after layer, the
psi rows of a multiplier whose constraint fails are scaled by one factor c < 1: since A is
strictly block lower triangular in psi (a neuron's pre-activation does not involve its own
layer), g_i(c) = 2 c ((A V)_i . V_psi_i) - 2 c^2 ||V_psi_i||^2 grows as c shrinks (when the
first term is positive), and the later layers' rows of A V are recomputed after it
(`_shrink`; a violation of 1e-9 costs about 1e-9 of the bound).  (2) What still fails is
mixed with a strictly feasible point, the linearised network with every psi_i = z_i / 2,
G (N, n0) with G_0 = I, whose g_i = ||z_i||^2 / 2 > 0 wherever neuron i's pre-activation
depends on the input: X_t = (1 - t) V V^T / ||V_0||^2 + t G G^T / n0, t the least weight
with every h_l(X_t) >= 0 (everything above is linear in X, so X_t needs no factor of its
own).  On 720 random solves (ReLU, leaky ReLU, PReLU, splines; 1-3 hidden layers; both
variants; NUMPY, CVXOPT, CLARABEL) step (1) sufficed every time (worst accuracy 1.8e-7,
CLARABEL's), and every solver's lower bound was below every other's certified value; with
step (2) alone, a neuron with g_i(G) = 3e-7 and a violation of 2e-9 cost 0.4% of the bound.

Rounding (u = 2^-53, gamma_n of reference._numerics, |A - A*| <= e_A, |C - C*| <= e_C the
data's bounds of reference.lipschitz._lipsdp.data_rounding): with P = fl(C V), Q = fl(A V),
    ||C* V||_F >= ||P||_F (1 - gamma) - || gamma_N |C||V| + e_C |V| ||_F (1 + gamma),
    g_i >= fl(g_i) - 2 sum_k (gamma_N (|A||V|)_ik + (e_A |V|)_ik + gamma_{m+2} |R_ik|)
           |V_{psi_i, k}| (1 + gamma),    R = Q - V_psi,
    ||V_0||_F^2 <= fl(||V_0||_F^2) (1 + gamma),
and K's entries (ratios of squared slope widths, `multiplier_map`) within gamma_3 relative.
Not covered, as in reference.lipschitz._rounding: the slope bounds are taken as computed.
With no dual matrix (SCS), or when the mixture fails (t >= 1: a layer whose every neuron's
pre-activation is constant in the linearised network), no bound is certified.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reference._numerics import UNIT_ROUNDOFF, gamma
from reference.lipschitz._sdp_backends import LmiData


class DualBound(NamedTuple):
    """`dual_bound`'s answer: rho_lower (a proven lower bound on the optimum rho* of the exact
    SDP; 0.0 when nothing is certified), certified, mix (the weight t of the linearised
    network's point), reason (why not certified; "" when certified), and the dual point
    proven feasible, X = (1 - mix) V V^T + mix G G^T: factors (V, G) (None when not
    certified)."""
    rho_lower: float
    certified: bool
    mix: float
    reason: str
    factors: tuple | None = None


class _Side(NamedTuple):
    """The certified quantities of one X = V V^T: obj_low <= ||C* V||_F^2, trace_up >=
    ||V_0||_F^2, h_low <= h (k,) (module docstring)."""
    obj_low: float
    trace_up: float
    h_low: np.ndarray


def dual_factor(dual: np.ndarray, basis: np.ndarray | None) -> np.ndarray:
    """V (N, m) with V V^T = the solver's dual matrix (symmetrised, eigenvalues clipped at 0),
    in the unreduced coordinates: the rows of the reduced input block (r of them) mapped by
    x^0 = V1 y (basis V1 (n0, r); None: not reduced)."""
    w, q = np.linalg.eigh((dual + dual.T) / 2)
    keep = w > 0
    v = q[:, keep] * np.sqrt(w[keep])
    if basis is None:
        return v
    r = basis.shape[1]
    return np.vstack([basis @ v[:r], v[r:]])


def linearised_factor(data: LmiData) -> np.ndarray:
    """G (N, n0): the state v = [x^0; psi] of the network with every psi_i = z_i / 2, for each
    unit input (G_0 = I).  A is strictly block lower triangular in psi (a layer's neurons
    depend on the earlier layers' only), so the layers are filled in order."""
    n0, side = data.n0, data.a_mat.shape[1]
    g = np.zeros((side, n0))
    g[:n0] = np.eye(n0)
    for layer in np.unique(data.layer_of_neuron):
        rows = np.flatnonzero(data.layer_of_neuron == layer)
        g[n0 + rows] = 0.5 * (data.a_mat[rows] @ g)
    return g


def _side(data: LmiData, errors, k_mat: np.ndarray, v: np.ndarray) -> _Side:
    """The certified quantities of X = V V^T on the exact data (module docstring)."""
    e_a, e_c = errors
    n0, (side, m) = data.n0, v.shape
    grow = 1.0 + gamma(side + m + 8)                       # the error terms' own rounding
    v_abs, v_psi = np.abs(v), v[n0:]
    p = data.out_mat @ v
    p_err = np.linalg.norm((gamma(side) * np.abs(data.out_mat) + e_c) @ v_abs) * grow
    p_norm = np.linalg.norm(p) * (1.0 - gamma(p.size + 2))
    obj_low = max(p_norm - p_err, 0.0) ** 2 * (1.0 - 4 * UNIT_ROUNDOFF)
    trace_up = float(np.sum(v[:n0] ** 2)) * (1.0 + gamma(n0 * m + 2))
    r = data.a_mat @ v - v_psi
    r_err = gamma(side) * (np.abs(data.a_mat) @ v_abs) + e_a @ v_abs + gamma(m + 2) * np.abs(r)
    g_low = 2.0 * (np.sum(r * v_psi, axis=1) - np.sum(r_err * np.abs(v_psi), axis=1) * grow)
    h = k_mat.T @ g_low
    h_err = (gamma(3) + gamma(len(g_low) + 1)) * (k_mat.T @ np.abs(g_low)) * grow
    return _Side(obj_low, trace_up, h - h_err)


def _shrink(data: LmiData, errors, k_mat: np.ndarray, v: np.ndarray) -> np.ndarray:
    """V with the psi rows of each multiplier whose constraint fails scaled by one factor
    c in [0, 1] (module docstring), layer after layer (a layer's rows of A V depend on the
    earlier layers' rows only, already final): with a = sum_i K_il (A_i V) . V_psi_i,
    b = sum_i K_il ||V_psi_i||^2 and e their rounding terms, h_l(c) >= 2 c (a - c b - e), so
    c = (a - e) / b (1 - 1e-10), 0 when a <= e (the rows vanish: h_l = 0 exactly)."""
    e_a = errors[0]
    n0, (side, m) = data.n0, v.shape
    v = v.copy()
    grow = 1.0 + gamma(side + m + 8)
    for layer in np.unique(data.layer_of_neuron):
        rows = np.flatnonzero(data.layer_of_neuron == layer)
        psi, k_rows = v[n0 + rows], k_mat[rows]
        q = data.a_mat[rows] @ v
        q_err = gamma(side) * (np.abs(data.a_mat[rows]) @ np.abs(v)) + e_a[rows] @ np.abs(v)
        err = np.sum((q_err + gamma(m + 2) * (np.abs(q) + np.abs(psi))) * np.abs(psi), axis=1)
        a, b, e = (k_rows.T @ x for x in (np.sum(q * psi, axis=1), np.sum(psi * psi, axis=1),
                                          err * grow))
        fails = a - b - e < 0
        if not np.any(fails):
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(fails, np.clip((a - e) / b * (1 - 1e-10), 0.0, 1.0), 1.0)
        v[n0 + rows] *= factor[np.argmax(k_rows > 0, axis=1)][:, None]
    return v


def dual_bound(data: LmiData, errors, k_mat: np.ndarray, dual: np.ndarray | None,
               basis: np.ndarray | None = None) -> DualBound:
    """A proven lower bound on the optimum rho* of the exact SDP (module docstring) from the
    solver's dual matrix `dual` (on the solved LMI: the reduced one when basis V1 is given),
    data the unreduced LMI data, errors its `data_rounding` (e_A, e_C), k_mat the multiplier
    map K (n, k)."""
    if dual is None or not np.all(np.isfinite(dual)):
        return DualBound(0.0, False, 0.0, "the solver gave no dual matrix")
    v = dual_factor(dual, basis)
    trace = float(np.sum(v[:data.n0] ** 2))
    if not trace > 0:
        return DualBound(0.0, False, 0.0, "the dual matrix has no input block")
    v = _shrink(data, errors, k_mat, v / np.sqrt(trace))
    g = linearised_factor(data) / np.sqrt(data.n0)
    ours, lin = _side(data, errors, k_mat, v), _side(data, errors, k_mat, g)
    short = ours.h_low < 0
    if np.any(short & ~(lin.h_low > 0)):
        return DualBound(0.0, False, 1.0, (
            "the dual matrix violates a multiplier's constraint that the linearised network "
            "cannot repair (a layer with constant pre-activations)"))
    mix = 0.0
    if np.any(short):
        need = -ours.h_low[short] / (lin.h_low[short] - ours.h_low[short])
        mix = float(min(1.0, need.max() * (1 + 1e-6) + 1e-300))
        mixed = (1 - mix) * ours.h_low + mix * lin.h_low
        slack = 4 * UNIT_ROUNDOFF * ((1 - mix) * np.abs(ours.h_low) + mix * np.abs(lin.h_low))
        if mix >= 1.0 or np.any(mixed - slack < 0):
            return DualBound(0.0, False, mix, "the mixture with the linearised network failed")
    obj = (1 - mix) * ours.obj_low + mix * lin.obj_low
    trace_up = (1 - mix) * ours.trace_up + mix * lin.trace_up
    return DualBound(obj / trace_up * (1 - 8 * UNIT_ROUNDOFF), True, mix, "", (v, g))
