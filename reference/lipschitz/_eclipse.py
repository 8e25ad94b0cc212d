"""ECLipsE and ECLipsE-Fast (Xu and Sivaranjani, NeurIPS 2024): compositional l2 Lipschitz
upper bounds that choose LipSDP-neuron multipliers one layer at a time, each certified in
NumPy.

Network (reference.lipschitz._normalise.layers_of): x^0 in R^{d_0}; hidden layer i = 1..l-1,
z^i = W_i x^{i-1} + b_i, x^i = phi_i(z^i), neuron n slope-restricted in [alpha_n, beta_n];
f = W_l x^{l-1} (W_l = I when the network has an activation on its output).  With
p = alpha beta, m = (alpha + beta) / 2 per neuron and diagonal multipliers Lambda_i >= 0, the
LipSDP-neuron inequality ||df||^2 <= (1/F) ||dx^0||^2 holds when the block-tridiagonal
matrix Q_F over (v_0, ..., v_{l-1}) is positive semidefinite:

    Q_00 = I + W_1^T Lambda_1 D_{p_1} W_1,
    Q_ii = Lambda_i + W_{i+1}^T Lambda_{i+1} D_{p_{i+1}} W_{i+1}   (1 <= i <= l-2),
    Q_{l-1,l-1} = Lambda_{l-1} - F W_l^T W_l,    Q_{i-1,i} = -W_i^T Lambda_i D_{m_i}

(D_v = diag(v); the S-procedure on (dx - alpha dz)(beta dz - dx) >= 0 per neuron).  Its
block LDL^T from the input side is the recursion of [1]_, here in its general form, valid for
any slopes alpha <= beta (also alpha < 0 < beta, where dropping p, as the published package
does, is not valid):

    M_0 = I,  X_{i-1} = M_{i-1} + W_i^T Lambda_i D_{p_i} W_i  (> 0),
    M_i = Lambda_i - Lambda_i D_{m_i} W_i X_{i-1}^{-1} W_i^T D_{m_i} Lambda_i,
    Q_F >= 0  iff  M_{l-1} - F W_l^T W_l >= 0,  so  Lip_2(f) <= L = ||W_l C^{-T}||_2,
    M_{l-1} = C C^T.

The only approximation is the greedy choice of Lambda_i:

- ECLipsE-Fast (`eclipse_fast`, closed form): every interval widened to [min(alpha, 0),
  max(beta, 0)] (p = 0 exactly; needs alpha beta >= 0 per neuron), m~ its midpoint,
  K_i = D_{m~} W_i M_{i-1}^{-1} W_i^T D_{m~}, Lambda_i = lambda_i I, lambda_i = 1 / (2
  lambda_max(K_i)) (the lambda that maximises lambda_min(M_i)), M_i = lambda_i I - lambda_i^2
  K_i, whose eigenvalues lie in [lambda_i / 2, lambda_i].  In exact arithmetic it is never
  above the layer-wise bound: ||M_i^{-1}|| <= 4 lambda_max(K_i) <= ||D_{2 m~} W_i||^2
  ||M_{i-1}^{-1}||, and |2 m~_n| = max(|alpha_n|, |beta_n|).
- ECLipsE (`eclipse`, one small SDP per layer): Lambda_i maximises c subject to
  M_i(Lambda_i) - c W_{i+1}^T W_{i+1} >= 0 (W_{i+1} the next weight, W_l at the last stage).
  That stage problem is LipSDP-neuron of the one-hidden-layer network y -> W_{i+1}
  phi(W_i C_{i-1}^{-T} y), M_{i-1} = C_{i-1} C_{i-1}^T (substitute v_0 = C^{-T} y): it is
  solved by the project's LipSDP solvers (`reference.lipschitz._lipsdp.SOLVE`, NUMPY by
  default, or cvxpy's CLARABEL), with Lambda_i = lambda~ / rho from its multipliers.  The
  stage solve only proposes Lambda_i: validity rests on the recursion at the Lambda_i used.

Both are >= LipSDP-neuron's optimum (their Lambda_i are feasible LipSDP-neuron multipliers
with rho = L^2).  Neither ECLipsE <= ECLipsE-Fast nor ECLipsE <= layer-wise is a theorem
(greedy stages); ECLipsE-Fast <= layer-wise is (above).  p = 2 only.

Units.  Both run on the network normalised by powers of two per layer
(reference.lipschitz._normalise.normalise, variant "layer": the value scales by exactly 2^E),
and every M_i is divided by a power of four 4^k_i (the recursion is homogeneous of degree 1
in (M_{i-1}, Lambda_i)), so nothing over- or underflows with depth and a network with its
layers rescaled by powers of two gives the same bits, scaled.

Certificate (`certify`).  The claim Lip_2(f) <= L_up is proven by Q_F >= 0 at F = 1/L_up^2,
L_up = L (1 + delta), for the exact data (weights, slope bounds, multipliers as floats):
Q_F is formed block by block in the recursion's scaled coordinates (a congruence by powers
of two), with an entrywise bound E on its rounding, scaled on the diagonal by powers of two
to a diagonal in [1, 4), and a block Cholesky factorisation of fl(Q~) - c I (no fill
outside the block tridiagonal; O(sum_i d_i^3)) must run to completion with

    c >= (gamma_{N+1} / (1 - gamma_{N+1}) tr(Q~) + ||E~||_inf + u max diag) / (1 - u)

(Higham, Accuracy and Stability of Numerical Algorithms, Thm 10.3, in any summation order;
the test of `reference.lipschitz._rounding.rounding_bound`).  delta = c, 4c, 16c, ... until
one passes; none up to MAX_DELTA = 1e-3: the value is not reported (SolveFailed).  The dense
matrix is never formed: on deep networks the multipliers span many orders of magnitude and the dense
check is useless (rounding bound inf), the scaled blockwise one is not.

References
----------
.. [1] Y. Xu and S. Sivaranjani, "ECLipsE: Efficient Compositional Lipschitz Constant
   Estimation for Deep Neural Networks", NeurIPS 2024, arXiv:2404.04375.
"""
from __future__ import annotations

import time
from functools import partial
from typing import NamedTuple

import numpy as np
from scipy.linalg import LinAlgError, cholesky, solve_triangular

from reference._limits import guard
from reference._numerics import UNIT_ROUNDOFF, exponent_below, gamma, product_or_overflow
from reference.exceptions import NotApplicable, SolveFailed
from reference.lipschitz._blas import LIPSDP_BLAS_THREADS, blas_threads
from reference.lipschitz._bound_result import BoundResult
from reference.lipschitz._lipsdp import SOLVE, check_solver, reduce_input
from reference.lipschitz._normalise import layers_of, normalise
from reference.lipschitz._sdp_backends import LmiData, sdp_cost
from reference.nn._network import Dense, Network, ReLU

DELTA_STEPS = 40           # certificate attempts, delta = c 4^t (stops past MAX_DELTA)
MAX_DELTA = 1e-3           # a value that needs a larger relative margin is not certified
USELESS_RTOL = 1e-3        # a margin above this relative to the value is flagged
# Lambda_i x t (eclipse): near 1 first (tightness), then halvings (a linear neuron's best
# multiplier is infinite: M_i -> (W M_{i-1}^{-1} W^T)^{-1}, singular when the layer widens)
SHRINKS = (1.0, 1 - 1e-6, 1 - 1e-4, 1 - 1e-2) + tuple(2.0 ** -k for k in range(1, 41))
CONDITION_FLOOR = 1e-6     # eclipse keeps lambda_min(M_i) >= this x lambda_max(M_i)
MULTIPLIER_FLOOR = 1e-6    # eclipse floors lambda_n at this x max(lambda)
LINEAR_WIDTH = 2.0 ** -20  # a linear neuron's interval widened by this, for the stage solve


class Chain(NamedTuple):
    """The normalised network as the recursion sees it: hidden (a list of (W, e_W, alpha,
    beta) per hidden layer, W (d_i, d_{i-1}), e_W an entrywise bound on its rounding),
    last (W_l, (d_l, d_{l-1}); the identity for W_out = I), last_error, n0 and exponent E
    (the network's value is 2^E times the chain's)."""
    hidden: list
    last: np.ndarray
    last_error: np.ndarray
    n0: int
    exponent: int
    normalisation: dict


class Recursion(NamedTuple):
    """The recursion's outcome in the chain's scaled units: value L'' (the chain's value is
    L'' 2^-K, K = sum(exponents)), multipliers Lambda'_i (one array per hidden layer),
    exponents k_i (M_i divided by 4^k_i), slopes (alpha, beta) per hidden layer as used
    (ECLipsE-Fast: widened), stages (text per stage)."""
    value: float
    multipliers: list
    exponents: list
    slopes: list
    stages: list


def chain_of(net: Network) -> Chain:
    """The network normalised by powers of two per layer (`normalise`, variant "layer"),
    as a `Chain`."""
    layers = normalise(layers_of(net), "layer")
    hidden = [(w, e, lo, hi) for w, e, (lo, hi) in zip(layers.weights, layers.weight_errors,
                                                        layers.bounds)]
    width = layers.weights[-1].shape[0] if layers.weights else layers.n0
    last = np.eye(width) if layers.w_out is None else layers.w_out
    last_error = (np.zeros_like(last) if layers.w_out_error is None else layers.w_out_error)
    assert layers.normalisation is not None
    return Chain(hidden, last, last_error, layers.n0, layers.normalisation.exponent,
                 layers.normalisation.summary())


def _constant(chain: Chain) -> bool:
    """Whether some layer makes f constant: every neuron of a hidden layer has slopes
    [0, 0] or a zero row, or W_l = 0."""
    for w, _, lo, hi in chain.hidden:
        dead = ((lo == 0) & (hi == 0)) | ~np.any(w, axis=1)
        if np.all(dead):
            return True
    return not np.any(chain.last)


def _next_m(m_chol: np.ndarray, m_prev: np.ndarray, w: np.ndarray, lam: np.ndarray,
            p: np.ndarray, m: np.ndarray) -> np.ndarray | None:
    """M_i = Lambda - Lambda D_m W X^{-1} W^T D_m Lambda, X = M_{i-1} + W^T Lambda D_p W
    (symmetrised), or None when X or M_i is not positive definite (Cholesky)."""
    try:
        if np.any(p * lam):
            x_chol = cholesky(m_prev + w.T @ ((lam * p)[:, None] * w), lower=True)
        else:
            x_chol = m_chol
        h = solve_triangular(x_chol, w.T * (lam * m), lower=True)     # (d_{i-1}, d_i)
        m_new = np.diag(lam) - h.T @ h
        m_new = (m_new + m_new.T) / 2
        cholesky(m_new, lower=True)
    except (LinAlgError, ValueError):
        return None
    return m_new


def _power_of_four(m_new: np.ndarray) -> int:
    """k with 4^k <= max diag(M_i) < 4^(k + 1) (the scale M_i is divided by)."""
    return exponent_below(float(np.max(np.diag(m_new)))) // 2


def _finish(chain: Chain, m_last: np.ndarray) -> float:
    """L'' = ||W_l C^{-T}||_2, M'' = C C^T (the chain's scaled value)."""
    g = solve_triangular(cholesky(m_last, lower=True), chain.last.T, lower=True)
    return float(np.linalg.norm(g, 2))


def fast_recursion(chain: Chain) -> Recursion:
    """ECLipsE-Fast on the chain (module docstring): Lambda_i = lambda_i I in closed form.

    Raises
    ------
    NotApplicable
        When a hidden neuron has alpha < 0 < beta (no closed form: use ECLipsE).
    """
    m_prev = np.eye(chain.n0)
    lams, exps, slopes, stages = [], [], [], []
    for i, (w, _, lo, hi) in enumerate(chain.hidden):
        if np.any((lo < 0) & (hi > 0)):
            raise NotApplicable(
                f"ECLipsE-Fast: hidden layer {i + 1} has neurons with slopes of both signs "
                "(alpha < 0 < beta), where its closed form (p = alpha beta dropped) is not "
                "valid; use eclipse (the general recursion)")
        lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)           # p = 0 exactly
        mid = (lo + hi) / 2
        g = solve_triangular(cholesky(m_prev, lower=True), w.T * mid, lower=True)
        k_max = float(np.linalg.norm(g, 2)) ** 2
        lam = 1.0 / (2.0 * k_max)
        m_new = lam * np.eye(w.shape[0]) - lam ** 2 * (g.T @ g)
        m_new = (m_new + m_new.T) / 2
        k = _power_of_four(m_new)
        lams.append(np.full(w.shape[0], lam))
        exps.append(k)
        slopes.append((lo, hi))
        stages.append(f"layer {i + 1}: lambda = 1/(2 x {k_max:.6g}) (closed form)")
        m_prev = np.ldexp(m_new, -2 * k)
    return Recursion(_finish(chain, m_prev), lams, exps, slopes, stages)


def _stage_data(m_chol: np.ndarray, w: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                w_next: np.ndarray):
    """The stage problem as LipSDP-neuron data (psi-form, reference.lipschitz._sdp_backends
    .LmiData) of the network y -> W_next phi(W C^{-T} y), the weights divided by powers of
    two (a on the first, returned: Lambda_i = lambda~ / (rho 4^a)); a linear neuron's
    interval widened by LINEAR_WIDTH (the solve only proposes multipliers)."""
    wp = solve_triangular(m_chol, w.T, lower=True).T                 # W C^{-T}, (n, d)
    a = exponent_below(float(np.linalg.norm(wp, 2)) or 1.0)
    b = exponent_below(float(np.linalg.norm(w_next, 2)) or 1.0)
    wp, wn = np.ldexp(wp, -a), np.ldexp(w_next, -b)
    width = np.maximum(np.maximum(np.abs(lo), np.abs(hi)), 1.0) * LINEAR_WIDTH
    lo = np.where(lo == hi, lo - width, lo)
    n, d = wp.shape
    a_mat = np.hstack([wp, np.zeros((n, n))])
    out_mat = np.hstack([wn @ (lo[:, None] * wp), wn * (hi - lo)])
    data = LmiData(a_mat, out_mat, lo, hi, hi - lo, np.zeros(n, dtype=int), d, 0)
    return data, a


def _stage_multipliers(m_chol, w, lo, hi, w_next, solver: str) -> tuple[np.ndarray | None, str]:
    """Lambda_i from the stage SDP (module docstring), or None with the solver's status."""
    data, a = _stage_data(m_chol, w, lo, hi, w_next)
    if not np.any(data.out_mat):
        return np.zeros(w.shape[0]), "next weight zero"
    reduced = reduce_input(data).data
    sol = SOLVE[solver](reduced, np.eye(len(lo)), 0.0)
    if sol.status != "optimal" or sol.lam is None or not (sol.rho is not None and sol.rho > 0):
        return None, f"{solver}: {sol.status}"
    lam_t = 2.0 * np.maximum(np.asarray(sol.lam, dtype=float), 0.0) / data.scale ** 2
    return np.ldexp(lam_t / float(sol.rho), -2 * a), f"{solver}: optimal"


def sdp_recursion(chain: Chain, solver: str) -> Recursion:
    """ECLipsE on the chain (module docstring): Lambda_i from the stage SDP, floored at
    MULTIPLIER_FLOOR x its largest and shrunk by the factors SHRINKS until X_{i-1} > 0 and
    M_i > 0 with lambda_min(M_i) >= CONDITION_FLOOR lambda_max(M_i) (tightness only: the
    value is the recursion's at the Lambda_i kept, certified by `certify`).

    Raises
    ------
    SolveFailed
        When a stage SDP fails or no shrink of its multipliers gives M_i > 0.
    """
    m_prev = np.eye(chain.n0)
    lams, exps, slopes, stages = [], [], [], []
    nexts = [w for w, *_ in chain.hidden[1:]] + [chain.last]
    for i, ((w, _, lo, hi), w_next) in enumerate(zip(chain.hidden, nexts)):
        m_chol = cholesky(m_prev, lower=True)
        lam, status = _stage_multipliers(m_chol, w, lo, hi, w_next, solver)
        if lam is None:
            raise SolveFailed(f"ECLipsE: the SDP of stage {i + 1} failed ({status}); no "
                              "bound is reported")
        top = float(np.max(lam, initial=0.0))
        lam = np.maximum(lam, MULTIPLIER_FLOOR * top) if top > 0 else np.ones_like(lam)
        p, mid = lo * hi, (lo + hi) / 2
        for t in SHRINKS:
            m_new = _next_m(m_chol, m_prev, w, lam * t, p, mid)
            if m_new is not None:
                ev = np.linalg.eigvalsh(m_new)
                if ev[0] >= CONDITION_FLOOR * ev[-1]:
                    break
        else:
            raise SolveFailed(f"ECLipsE: stage {i + 1}: no multipliers with M_{i + 1} > 0 "
                              "(X or M not positive definite at every shrink); no bound is "
                              "reported")
        k = _power_of_four(m_new)
        lams.append(lam * t)
        exps.append(k)
        slopes.append((lo, hi))
        stages.append(f"layer {i + 1}: {status}" + (f", multipliers x {t:g}" if t != 1 else ""))
        m_prev = np.ldexp(m_new, -2 * k)
    return Recursion(_finish(chain, m_prev), lams, exps, slopes, stages)


def scaled_blocks(chain: Chain, rec: Recursion, f_hat: float):
    """Q_F in the recursion's scaled coordinates (module docstring), with entrywise bounds on
    its rounding: (diag, diag_err, off, off_err), off[j] the block (j-1, j) (off[0] None).
    Block j >= 1 is scaled by 2^-K_{j-1}: diag_j = Lambda'_j + 4^k_j W_{j+1}^T Lambda'_{j+1}
    D_p W_{j+1}, off_j = -2^k_{j-1} W_j^T Lambda'_j D_m, the last diag Lambda'_{l-1} - F^
    W_l^T W_l with F^ = F 4^-K_{l-2} (k_0 = 0)."""
    hidden, exps = chain.hidden, [0] + list(rec.exponents)
    n_blocks = len(hidden) + 1
    diag, diag_err, off, off_err = [], [], [None], [None]
    for j in range(n_blocks):
        base = np.eye(chain.n0) if j == 0 else np.diag(rec.multipliers[j - 1])
        absum, err = np.abs(base), np.zeros_like(base)
        if j < n_blocks - 1:
            w, e_w, _ = hidden[j][0], hidden[j][1], None
            lo, hi = rec.slopes[j]
            c = np.ldexp(rec.multipliers[j] * (lo * hi), 2 * exps[j])
            term = w.T @ (c[:, None] * w)
            width = w.shape[0]
        else:
            w, e_w, c = chain.last, chain.last_error, None
            term = -f_hat * (w.T @ w)
            width = w.shape[0]
        c_abs = np.abs(c) if c is not None else np.full(w.shape[0], abs(f_hat))
        w_abs = np.abs(w) + e_w
        absum = absum + w_abs.T @ (c_abs[:, None] * w_abs)
        if np.any(e_w):
            err = err + 2 * (e_w.T @ (c_abs[:, None] * w_abs))
        diag.append(base + term)
        diag_err.append(err + gamma(width + 8) * absum)
        if j >= 1:
            w, e_w = hidden[j - 1][0], hidden[j - 1][1]
            lo, hi = rec.slopes[j - 1]
            lm = rec.multipliers[j - 1] * ((lo + hi) / 2)
            block = -np.ldexp(w.T * lm, exps[j - 1])
            off.append(block)
            off_err.append(gamma(4) * np.abs(block)
                           + np.ldexp(e_w.T * np.abs(lm), exps[j - 1]) * (1 + gamma(4)))
    return diag, diag_err, off, off_err


def _scaled_cholesky_passes(diag, diag_err, off, off_err) -> tuple[bool, float]:
    """Whether the shifted block Cholesky test (module docstring) proves the exact matrix
    >= 0; and the shift c used.  Each row and column j is scaled by 2^-s_j, s_j =
    floor(log2(a_jj) / 2) (exact), so the scaled diagonal lies in [1, 4)."""
    u = UNIT_ROUNDOFF
    d_all = np.concatenate([np.diag(d) for d in diag])
    if not np.all(d_all > 0) or not np.all(np.isfinite(d_all)):
        return False, np.inf
    side = d_all.size
    shifts = [np.asarray(exponent_below(np.diag(d)), dtype=int) // 2 for d in diag]
    sd = [np.ldexp(d, -(s[:, None] + s[None, :])) for d, s in zip(diag, shifts)]
    se = [np.ldexp(e, -(s[:, None] + s[None, :])) for e, s in zip(diag_err, shifts)]
    pair = [-(shifts[j - 1][:, None] + shifts[j][None, :]) for j in range(1, len(diag))]
    so = [np.ldexp(o, e) for o, e in zip(off[1:], pair)]        # so[j - 1]: block (j-1, j)
    soe = [np.ldexp(o, e) for o, e in zip(off_err[1:], pair)]
    rows = [e.sum(axis=1) for e in se]
    for j in range(1, len(sd)):
        rows[j - 1] = rows[j - 1] + soe[j - 1].sum(axis=1)
        rows[j] = rows[j] + soe[j - 1].sum(axis=0)
    delta_e = float(np.max(np.concatenate(rows))) * (1 + gamma(side + 2))
    diag_scaled = np.concatenate([np.diag(d) for d in sd])
    g = gamma(side + 1) / (1 - gamma(side + 1))
    c = ((g * diag_scaled.sum() + delta_e + u * diag_scaled.max()) / (1 - u) * 1.01
         + 4 * side * (2 * (side + 2) + diag_scaled.max()) * 2.0 ** -1074)
    try:
        low = cholesky(sd[0] - c * np.eye(sd[0].shape[0]), lower=True)
        for j in range(1, len(sd)):
            g_blk = solve_triangular(low, so[j - 1], lower=True)          # L_{j-1}^{-1} A_{j-1,j}
            low = cholesky(sd[j] - c * np.eye(sd[j].shape[0]) - g_blk.T @ g_blk, lower=True)
    except (LinAlgError, ValueError):
        return False, c
    return True, c


class Certificate(NamedTuple):
    """`certify`'s answer: upper (a proven bound on the chain's Lipschitz constant, in the
    chain's units: Lip <= upper 2^E; inf when no check passed), delta (the relative margin
    that passed), shift (the Cholesky shift c), checks (attempts run)."""
    upper: float
    delta: float
    shift: float
    checks: int


def certify(chain: Chain, rec: Recursion) -> Certificate:
    """Prove Lip_2 <= L'' (1 + delta) 2^-K for the chain (module docstring): delta = c, 4c,
    ... (c the first shift), the first one whose shifted block Cholesky test passes.  The
    recursion's slope intervals must contain the network's own (`chain.hidden`), else no
    check runs (checks 0, upper inf): Q_F is built from the recursion's slopes."""
    k_total = int(sum(rec.exponents))
    k_last = rec.exponents[-1] if rec.exponents else 0
    delta, shift = 0.0, 0.0
    for (_, _, alpha, beta), (lo, hi) in zip(chain.hidden, rec.slopes, strict=True):
        if not (np.all(np.asarray(lo) <= alpha) and np.all(np.asarray(hi) >= beta)):
            return Certificate(np.inf, delta, shift, 0)   # slopes narrower than the network's
    for check in range(1, DELTA_STEPS + 1):
        up = rec.value * (1 + delta)
        f_hat = float(np.ldexp(1.0 / (up * up), 2 * k_last))
        passed, shift = _scaled_cholesky_passes(*scaled_blocks(chain, rec, f_hat))
        if passed:
            upper = float(np.ldexp(1.0 / np.sqrt(f_hat), k_last - k_total)) * (
                1 + 4 * UNIT_ROUNDOFF)
            return Certificate(upper, delta, shift, check)
        if not np.isfinite(shift):
            break
        delta = max(4 * delta, shift)
        if delta > MAX_DELTA:
            break
    return Certificate(np.inf, delta, shift, DELTA_STEPS)


def _result(net: Network, chain: Chain, rec: Recursion, name: str, t0: float) -> BoundResult:
    """The certified result of a recursion in the network's units (value 2^(E - K) L'',
    rounding_bound the certified upper end minus it), or SolveFailed when not certified."""
    k_total = int(sum(rec.exponents))
    cert = certify(chain, rec)
    if cert.checks == 0:
        raise SolveFailed(f"{name}: the recursion's slope intervals do not contain the "
                          "network's; no bound is reported")
    if not np.isfinite(cert.upper):
        raise SolveFailed(
            f"{name}: the value {rec.value!r} (scaled) is NOT CERTIFIED: no shifted block "
            f"Cholesky test of Q(1/L^2) passed up to a relative margin {MAX_DELTA:g} (last "
            f"shift {cert.shift:.3g}); no bound is reported")
    value = product_or_overflow([(rec.value, chain.exponent - k_total)], name)
    upper = product_or_overflow([(cert.upper, chain.exponent)], name)
    margin = float(np.nextafter(max(upper - value, 0.0), np.inf))
    return BoundResult({
        "value": value, "rounding_bound": margin,
        "rounding_useless": not margin <= USELESS_RTOL * value,
        "stages": rec.stages, "normalisation": chain.normalisation,
        "seconds": time.perf_counter() - t0,
        "certificate": (
            f"Q(F) >= 0 at F = 1/L_up^2, L_up = {upper!r} = value x (1 + {cert.delta:.3g}): "
            "the block-tridiagonal LipSDP-neuron matrix at the chosen multipliers, formed "
            "blockwise with entrywise rounding bounds, scaled by powers of two, and a shifted "
            f"block Cholesky factorisation (shift {cert.shift:.3g}, Higham Thm 10.3) run to "
            f"completion ({cert.checks} check(s)); network normalised by 2^{chain.exponent}")})


def eclipse_fast(net: Network) -> BoundResult:
    """ECLipsE-Fast [1]_: a closed-form compositional l2 Lipschitz upper bound, certified.

    Parameters
    ----------
    net : Network
        The network f; its parameters must be finite.

    Returns
    -------
    result : BoundResult
        ``value`` (the recursion's bound), ``rounding_bound`` (value + it is proven >= Lip_2
        (f)), ``rounding_useless``, ``stages`` (per hidden layer), ``normalisation``,
        ``certificate`` and ``seconds``.

    Raises
    ------
    NotApplicable
        When a hidden neuron has slopes of both signs (alpha < 0 < beta).
    SolveFailed
        When the certificate check fails (the value is not reported).

    Notes
    -----
    With every slope interval widened to [min(alpha, 0), max(beta, 0)] and m~ its midpoint,

    .. math::

        K_i = D_{\\tilde m} W_i M_{i-1}^{-1} W_i^T D_{\\tilde m}, \\quad
        \\lambda_i = \\frac{1}{2\\lambda_{\\max}(K_i)}, \\quad
        M_i = \\lambda_i I - \\lambda_i^2 K_i, \\quad
        L = \\|W_l M_{l-1}^{-1/2}\\|_2,

    M_0 = I; never above the layer-wise bound (module docstring).

    References
    ----------
    .. [1] Y. Xu and S. Sivaranjani, "ECLipsE: Efficient Compositional Lipschitz Constant
       Estimation for Deep Neural Networks", NeurIPS 2024.
    """
    return _run(net, fast_recursion, "ECLipsE-Fast")


def eclipse(net: Network, solver: str = "NUMPY", max_sdp_cost: float = 8e10) -> BoundResult:
    """ECLipsE [1]_: a compositional l2 Lipschitz upper bound, one small SDP per layer,
    certified.

    Parameters
    ----------
    net : Network
        The network f; its parameters must be finite.
    solver : str, default 'NUMPY'
        The LipSDP solver of the stage SDPs (`reference.lipschitz._lipsdp.SDP_SOLVERS`).
    max_sdp_cost : float, default 8e10
        Size guard on the summed `sdp_cost` of the stage SDPs (units of about 1e-8 s).

    Returns
    -------
    result : BoundResult
        As `eclipse_fast`, ``stages`` with each stage solve's status.

    Raises
    ------
    TooLarge
        When the stage SDPs' estimated cost exceeds max_sdp_cost.
    SolveFailed
        When a stage SDP fails or the certificate check fails.

    Notes
    -----
    Stage i maximises c over Lambda_i >= 0 subject to M_i(Lambda_i) - c W_{i+1}^T W_{i+1}
    >= 0 (general recursion of the module docstring, any slopes alpha <= beta).

    See Also
    --------
    eclipse_fast : The closed-form variant (one multiplier per layer, no SDP).

    References
    ----------
    .. [1] Y. Xu, S. Sivaranjani, "ECLipsE: Efficient Compositional Lipschitz Constant
       Estimation for Deep Neural Networks", NeurIPS 2024, arXiv:2404.04375.
    """
    solver = check_solver(solver)
    guard(f"model: ECLipsE with {solver} (one LipSDP-neuron SDP per hidden layer), cost "
          "(about 1e-8 s per unit)", stage_cost(net, solver), max_sdp_cost, "max_sdp_cost")
    return _run(net, partial(sdp_recursion, solver=solver), "ECLipsE")


def _run(net: Network, recursion, name: str) -> BoundResult:
    """The recursion on the network's chain (`chain_of`), certified (`_result`), with one BLAS
    thread (as LipSDP); a constant network gives 0 (`_zero`)."""
    t0 = time.perf_counter()
    with blas_threads(LIPSDP_BLAS_THREADS):
        chain = chain_of(net)
        if _constant(chain):
            return _zero(chain, t0)
        return _result(net, chain, recursion(chain), name, t0)


def stage_cost(net: Network, solver: str) -> float:
    """The summed `sdp_cost` of ECLipsE's stage SDPs: LipSDP-neuron of a d_{i-1} -> d_i ->
    d_{i+1} network per hidden layer, input reduced to min(d_{i-1}, d_i)."""
    layers = layers_of(net)
    widths = [layers.n0] + [w.shape[0] for w in layers.weights]
    outs = widths[2:] + [widths[-1] if layers.w_out is None else layers.w_out.shape[0]]
    return float(sum(
        sdp_cost(Network([Dense(np.zeros((n, d))), ReLU(), Dense(np.zeros((o, n)))]),
                 "neuron", solver)
        for d, n, o in zip(widths[:-1], widths[1:], outs)))


def _zero(chain: Chain, t0: float) -> BoundResult:
    """The result for a network that is constant (`_constant`): 0, exactly."""
    return BoundResult({
        "value": 0.0, "rounding_bound": 0.0, "rounding_useless": False, "stages": [],
        "normalisation": chain.normalisation, "seconds": time.perf_counter() - t0,
        "certificate": "f is constant (a hidden layer with every neuron of slopes [0, 0] or "
                       "with a zero row, or a zero output weight): Lip = 0 exactly"})
