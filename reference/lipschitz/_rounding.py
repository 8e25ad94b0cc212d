"""The proven rounding bound of a LipSDP certificate: how far sqrt(rho) computed in float64
(`reference.lipschitz._lipsdp.schur_rho`) may sit below sqrt(rho*) of the exact LMI (the products of
the weights and slopes without rounding) at the same multipliers (`rounding_bound`), and the
result fields and certificate sentence it gives (`rounding_fields`, `rounding_text`).
UNIT_ROUNDOFF and gamma_n (reference._numerics) are those of reference.lipschitz._lipsdp's running
error analysis of the LMI data (`data_rounding`) and of the dual bound
(reference.lipschitz._lipsdp_dual)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from reference._numerics import UNIT_ROUNDOFF, gamma
from reference.lipschitz._sdp_backends import LmiData, lmi_matrix

USELESS_RTOL = 1e-3        # a rounding bound above this relative to the value is flagged
ROUNDING_CHECKS = 60       # shifted Cholesky checks of `rounding_bound` (delta x 2 each)


class RoundingBound(NamedTuple):
    """The answer of `rounding_bound`: a proven bound on the rounding of a LipSDP value.

    Parameters
    ----------
    bound : float
        Added to the value sqrt(rho) it was asked about, an upper bound on sqrt(rho*) of the
        exact LMI; inf when no check passed.
    rho_up : float
        A rho with -M*(lambda, rho_up) >= 0 proven (inf when none).
    delta_m : float
        A bound on ||M - M*||_2, the error of forming the LMI in float64.
    shift : float
        The shift c of the Cholesky check that passed (or of the last one tried).
    checks : int
        The number of shifted Cholesky factorisations run.
    """
    bound: float
    rho_up: float
    delta_m: float
    shift: float
    checks: int


def rounding_bound(data: LmiData, errors: tuple[NDArray[np.float64], NDArray[np.float64]],
                   lam: NDArray[np.float64], rho: float, r_max: float) -> RoundingBound:
    r"""A proven bound on how far a LipSDP value computed in float64 sits below the exact one.

    Parameters
    ----------
    data : LmiData
        The LMI data as computed (`lipsdp_data`), N = data.n0 + n its side.
    errors : tuple of ndarray
        (e_A, e_C), entrywise bounds of shapes (n, N) and (N_L, N) on |A - A*| and
        |C - C*| (`data_rounding`), A*, C* the products of `lipsdp_data` without rounding.
    lam : ndarray of float64, shape (n,)
        The float64 multipliers lambda >= 0.
    rho : float
        The computed rho (`schur_rho`, `certified_rho`).
    r_max : float
        The largest eigenvalue of the hidden block R (`certified_rho`); the check needs
        mu = -r_max > 0.

    Returns
    -------
    RoundingBound
        ``bound`` >= sqrt(rho*) - sqrt(rho), rho* the least rho with M*(lambda, rho) <= 0
        for the exact data (inf when no check passed), with ``rho_up``, ``delta_m``,
        ``shift`` and ``checks``.

    Notes
    -----
    A posteriori, with N = LMI side, u = 2^-53 and gamma_n = n u / (1 - n u) [1]_:

    1. ||M - M*||_2 <= delta_m = the largest row sum of E, where E >= |M - M*| entrywise
       (symmetric) is

       .. math::

           E = \gamma_{N_L + 4} \big(|C|^T |C| + |B^T T A| + |A^T T B| + 2 T_B
           + \rho E_0\big) + |C|^T e_C + e_C^T |C| + e_C^T e_C
           + (T e_A \text{ placed as } T A);

    2. if the floating-point Cholesky factorisation of fl(-M(lambda, rho_up) - c I) runs to
       completion, -M*(lambda, rho_up) >= 0, hence rho* <= rho_up (Higham, Thm 10.3: G^T G
       = T + dT, |dT| <= gamma_{N+1} |G^T| |G|, so ||dT||_2 <= gamma_{N+1} / (1 -
       gamma_{N+1}) tr(T); Rump's test) when

       .. math::

           c \ge \Big(\frac{\gamma_{N+1}}{1 - \gamma_{N+1}} \operatorname{tr}|D|
           + \delta_m + u \max |D|\Big) / (1 - u),

       D the diagonal of -M(lambda, rho_up) (times 1.01 for this sum's own roundings, plus
       the underflow term 4N(2(N + 2) + max|D|) 2^-1074);

    3. rho_up = rho + delta, delta = c, 2c, 4c, ... (ROUNDING_CHECKS checks) until one
       passes; mu = -r_max <= c: inf.  With the Schur complement >= 0 at rho*,
       lambda_min(-M*(lambda, rho* + delta)) >= min(delta / 2, mu delta / (2 ||Q||^2 / mu +
       delta)), so delta about 4 c max(1, ||Q||_2^2 / (mu (mu - c))) (+ the error of rho)
       passes: the bound grows like ||Q||^2 / mu^2 as R nears singular.

    Then

    .. math::

        \text{bound} = \mathrm{fl}\big(\sqrt{\rho_{\mathrm{up}}}\big) (1 + 4u) - \sqrt{\rho}

    (sqrt correctly rounded; the 4u covers the verdict's addition).  Not covered: the slope
    bounds [alpha, beta] are taken as computed (exact for ReLU, leaky ReLU, PReLU, identity;
    splines' slopes are rounded differences).  The LMI is LipSDP's [2]_.

    References
    ----------
    .. [1] N. J. Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., SIAM,
       2002 (Theorem 10.3, the backward error of Cholesky factorisation).
    .. [2] M. Fazlyab, A. Robey, H. Hassani, M. Morari, G. Pappas, "Efficient and Accurate
       Estimation of Lipschitz Constants for Deep Neural Networks", NeurIPS 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from reference.nn import build_mlp
    >>> from reference.lipschitz import certified_rho, lipsdp_data, rounding_bound
    >>> from reference.lipschitz._lipsdp import data_rounding
    >>> net = build_mlp([2, 4, 1], activation="relu", rng=0)
    >>> data = lipsdp_data(net)
    >>> rho, r_max = certified_rho(data, np.ones(4))
    >>> rounding = rounding_bound(data, data_rounding(net), np.ones(4), rho, r_max)
    >>> print(round(float(np.sqrt(rho)), 4), bool(0 < rounding.bound < 1e-12))
    0.9197 True
    """
    from scipy.linalg import LinAlgError, cholesky

    u, n0, side = UNIT_ROUNDOFF, data.n0, data.a_mat.shape[1]
    e_a, e_c = errors
    c_abs, lam = np.abs(data.out_mat), np.asarray(lam, dtype=np.float64)
    base = c_abs.T @ c_abs                                      # (N, N)
    base[n0:, :] += lam[:, None] * np.abs(data.a_mat)
    base[:, n0:] += (lam[:, None] * np.abs(data.a_mat)).T
    base[n0:, n0:] += 2 * np.diag(lam)
    pert = c_abs.T @ e_c + e_c.T @ c_abs + e_c.T @ e_c
    pert[n0:, :] += lam[:, None] * e_a
    pert[:, n0:] += (lam[:, None] * e_a).T
    g_chol = gamma(side + 1) / (1 - gamma(side + 1))
    rho = max(float(rho), 0.0)
    mu = -float(r_max)

    def shift(rho_up: float) -> tuple[float, float, np.ndarray]:
        e_mat = gamma(data.out_mat.shape[0] + 4) * base + pert
        e_mat[:n0, :n0] += gamma(data.out_mat.shape[0] + 4) * rho_up * np.eye(n0)
        delta_m = float(e_mat.sum(axis=1).max()) * (1 + gamma(side + 2))
        n_hat = -lmi_matrix(data, lam, rho_up)
        diag = np.abs(np.diag(n_hat))
        c = ((g_chol * diag.sum() + delta_m + u * diag.max()) / (1 - u) * 1.01
             + 4 * side * (2 * (side + 2) + diag.max()) * 2.0 ** -1074)
        return c, delta_m, n_hat

    if not (np.isfinite(rho) and mu > 0):
        return RoundingBound(np.inf, np.inf, np.inf, np.inf, 0)
    c, delta_m, _ = shift(rho)
    if not mu > c:
        return RoundingBound(np.inf, np.inf, delta_m, c, 0)
    delta = c
    for check in range(1, ROUNDING_CHECKS + 1):
        rho_up = rho + delta
        c, delta_m, n_hat = shift(rho_up)
        try:
            cholesky(n_hat - c * np.eye(side), lower=True)
        except (LinAlgError, ValueError):
            delta *= 2
            continue
        bound = float(np.sqrt(rho_up)) * (1 + 4 * u) - float(np.sqrt(rho))
        return RoundingBound(bound, rho_up, delta_m, c, check)
    return RoundingBound(np.inf, np.inf, delta_m, c, ROUNDING_CHECKS)


def rounding_fields(rounding: RoundingBound, value: float) -> dict:
    """The result fields of a `rounding_bound`: rounding_bound (absolute, on value),
    rounding_useless (above USELESS_RTOL relative, or inf)."""
    return {"rounding_bound": rounding.bound,
            "rounding_useless": not rounding.bound <= USELESS_RTOL * value}


def rounding_text(rounding: RoundingBound, value: float) -> str:
    """The certificate's sentence on the rounding bound (`rounding_bound`), its bound in the
    network's units and delta_m in the normalised LMI's (reference.lipschitz._lipsdp)."""
    if not np.isfinite(rounding.bound):
        return ("rounding bound: NOT PROVEN (the hidden block R is too close to singular for "
                "the shifted Cholesky check; no rigorous margin)")
    rel = rounding.bound / value if value > 0 else (0.0 if rounding.bound == 0 else np.inf)
    return (f"rounding bound {rounding.bound:.3g} ({rel:.3g} relative; -M(lambda, rho_up) >= 0 "
            f"proven by a shifted Cholesky check, ||M - M*|| <= {rounding.delta_m:.3g} on the "
            "normalised LMI)"
            + (" -- USELESS: above 1e-3 relative, R ill-conditioned" if rel > USELESS_RTOL
               else ""))
