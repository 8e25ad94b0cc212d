"""A NumPy lower bound on the optimum of a coefficient problem (reference.convex._certify's
verdict), by Fenchel duality from a point's loss gradient: `dual_bound` (`lip_dual_bound` with a
bound on the slopes), every quantity in the internal units of reference.convex._certify.Scaled,
every rounding allowed for.  Also the Gram helpers that the cheap candidates of
reference.convex._certify share with the projection here.  A leaf: NumPy and SciPy only
(reference.convex._active_set's knot_correlation, imported when called).
"""
from __future__ import annotations

import numpy as np

from reference._numerics import EPS
from reference.convex._active_set import (
    bv2_end_weights,
    knot_correlation,
    knot_correlation_error,
)
from reference.nn._losses import get_loss, loss_and_grad
from reference.nn._regularisers import get as get_regulariser

V0_SEARCH = (17, 40)     # lip_dual_bound, BV2: v0 on grids of 17 points, at most 40


def _affine_gram(a_mat: np.ndarray, basis: tuple) -> np.ndarray:
    """K^T K (2N, 2N) for the map K: theta -> outputs (M, N_L) of the splines
    sigma_n = theta_n f0_n + theta_{N+n} f1_n, f0, f1 = basis (each (M, N) at the samples):
    entry ((a, n), (b, n')) = (A^T A)_{n n'} sum_m f_a(z_mn) f_b(z_mn')."""
    ata = a_mat.T @ a_mat
    return np.block([[ata * (fa.T @ fb) for fb in basis] for fa in basis])


def _solve_gram(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """A least-squares solution of gram x = rhs, the columns scaled to unit diagonal first
    (the normal equations square the conditioning; the scaling removes the columns' units)."""
    d = np.sqrt(np.diag(gram))
    d[d == 0] = 1.0
    return np.linalg.lstsq(gram / np.outer(d, d), rhs / d, rcond=None)[0] / d


def _affine_apply(r: np.ndarray, a_mat: np.ndarray, basis: tuple) -> np.ndarray:
    """K^T r (2N,) for r (M, N_L) (see `_affine_gram`)."""
    w = r @ a_mat
    return np.concatenate([(w * f).sum(axis=0) for f in basis])


def dual_bound(scaled, grids: list, sigma_at_z: np.ndarray) -> float | None:
    """A lower bound on the optimum (internal units) from the point with values sigma_at_z
    (M, N), by Fenchel duality: for r (M, N_L) with w = r A,

        F(sigma) >= sum_m (r_m . c - E*(r_m)) + min_sigma (<w, sigma(z)> + lambda R(sigma))

    over the splines sigma of the problem, E* the conjugate of the loss (squared:
    r.y + |r|^2 / 2; logistic: the negative entropy of q = y + r in [0, 1]; cross-entropy:
    sum q log q, q = onehot(y) + r in the simplex).  Without a Lip bound the minimum is 0
    when, per neuron, |phi_n(tau)| <= lambda_n (the internal TV2 weight `Scaled.lam_tv2`) at
    the grid's interior points, phi_n(tau) = sum_m w_mn (z_mn - tau)_+
    (`active_set.knot_correlation`), with for TV2 sum_m w_mn = sum_m w_mn z_mn = 0 (r is
    projected onto these 2N equations; for cross-entropy with A centred over the outputs,
    which keeps sum_l r_ml = 0) and for BV2 the points 0 and p_n as samples of weights v0, v1
    (`active_set.bv2_end_weights`), |v| <= lambda (the point terms' weight); else -inf.  r is
    the loss gradient at the point, multiplied by t = min(1, lambda_n / |phi_n|, lambda / |v|)
    (rounding allowed for); at the optimum t = 1 and the bound equals the optimum.  With a Lip
    bound: `lip_dual_bound`.  None when the projected r leaves the conjugate's domain."""
    z, a_mat, loss = scaled.z, scaled.a_mat, scaled.loss
    _, r = loss_and_grad(loss, sigma_at_z @ a_mat.T + scaled.c[None, :], scaled.y)
    bv2 = bool(get_regulariser(scaled.reg).extra_points)
    gamma = 4.0 * (r.size + 4) * EPS
    if not bv2:
        r = _project_affine(r, z, a_mat - a_mat.mean(axis=0) if get_loss(loss).shift_invariant
                            else a_mat,
                            affine=scaled.lip_max is None)
    if scaled.lip_max is not None:
        return lip_dual_bound(scaled, grids, r, gamma)
    w = r @ a_mat                                                        # (M, N)
    t = 1.0
    for k, g in enumerate(grids):
        pts, wts = z[:, k], w[:, k]
        if bv2:
            p1 = scaled.points[k][1]
            v = np.array(bv2_end_weights(pts, wts, p1))
            rounding = gamma * float(np.abs(wts).sum() + np.abs(wts * pts).sum() / p1)
            t = min(t, _ratio(scaled.lam_points[k], float(np.abs(v).max()) + rounding))
            pts, wts = np.concatenate([pts, [0.0, p1]]), np.concatenate([wts, v])
        if len(g) > 2:
            spread = float(max(pts.max(), g.max()) - min(pts.min(), g.min()))
            peak = float(np.abs(knot_correlation(pts, wts, g[1:-1])).max()) \
                + knot_correlation_error(len(pts), r.shape[1]) * float(np.abs(wts).sum()) \
                * spread
            t = min(t, _ratio(scaled.lam_tv2[k], peak))
    return _conjugate_bound(t * r, scaled, gamma)


def _ratio(lam: float, peak: float) -> float:
    """min(1, lam / peak) (1 for peak 0)."""
    return 1.0 if peak <= lam else lam / peak


def lip_dual_bound(scaled, grids: list, r: np.ndarray, gamma: float) -> float | None:
    """`dual_bound` with the bound |slope| <= L_n (internal units): for r (M, N_L)
    (projected: sum_m w_mn = 0 for TV2, as only constants are then free), per neuron n with
    grid g_0 < ... < g_{P-1}, slopes s_0..s_{P-2} (the end pieces continued),

        <w_n, sigma_n(z_n)> + lambda_n TV2(sigma_n)
            = Phi_0 s_0 + sum_{i>=1} Phi_i (s_i - s_{i-1}) + lambda_n sum_i |s_i - s_{i-1}|,

    Phi_0 = sum_m w_mn (z_mn - g_0), Phi_i = phi_n(g_i).  Its minimum over |s| <= L_n is
    exact by the coarea formula (s = -L + integral of the level sets 1[s > t]):
    -L Phi_0 + 2 L min over 0/1 sequences x of (Phi_0 x_0 + sum_i Phi_i (x_i - x_{i-1}) +
    lambda_n #changes), a two-state dynamic programme (`_chain_minimum`).  For BV2 the points
    0 and p_n enter as samples of weights v0 and v1 = -sum_m w_mn - v0 (so that the value
    sigma_n(g_0), which is free, drops out), lambda |sigma(t)| >= v sigma(t) for |v| <= lambda;
    the bound is concave in v0 and is maximised over the feasible interval
    (`_bv2_chain_maximum`; any v0 gives a valid bound); when sum_m w_mn exceeds 2 lambda in
    size r is first scaled down.  Every Phi is computed to within e = sum |w| spread times
    `knot_correlation_error` (the sums accumulated in extended precision), which is
    allowed for (lambda_n - e in the programme, and e L); None outside the conjugate's
    domain."""
    z, a_mat, mus, lips = scaled.z, scaled.a_mat, scaled.lam_points, scaled.lip_max
    bv2 = bool(get_regulariser(scaled.reg).extra_points)
    w = r @ a_mat
    if bv2:
        t = min(_ratio(2 * mu, abs(float(s)) * (1 + gamma)) for mu, s in zip(mus, w.sum(axis=0)))
        r, w = r * t, w * t
    bound = _conjugate_bound(r, scaled, gamma)
    if bound is None:
        return None
    for k, g in enumerate(grids):
        pts, wts = z[:, k], w[:, k]
        extra = np.concatenate([[0.0, scaled.points[k][1]]] if bv2 else [[]])
        spread = float(np.ptp(np.concatenate([pts, g, extra])))
        e = knot_correlation_error(len(pts) + 2, r.shape[1]) \
            * (float(np.abs(wts).sum()) + 2 * mus[k] * bv2) * spread
        phi0 = float(np.sum(wts.astype(np.longdouble) * (pts - g[0])))    # within e too
        phi = _phi_interior(pts, wts, g)
        if not bv2:
            values = _chain_minimum(np.array([phi0]), phi[None, :], lips[k],
                                    scaled.lam_tv2[k], e)
        else:
            values = _bv2_chain_maximum(pts, wts, g, extra[1], mus[k], lips[k],
                                        scaled.lam_tv2[k], e, phi0, phi)
        bound += float(values.max())
    return bound


def _phi_interior(pts: np.ndarray, wts: np.ndarray, g: np.ndarray) -> np.ndarray:
    """phi(g_i) = sum_m w_m (z_m - g_i)_+ at the interior grid points (P - 2,)."""
    return knot_correlation(pts, wts, g[1:-1]) if len(g) > 2 else np.zeros(0)


def _bv2_chain_maximum(pts, wts, g, p1, lam, lip, lam_tv2, e, phi0, phi) -> np.ndarray:
    """The BV2 part of `lip_dual_bound` for one neuron: the chain minimum at the values of
    v0 tried, (B,), over [max(-lam, -S - lam), min(lam, -S + lam)], S = sum w: the v0 that
    makes Phi_0 vanish (the bound's peak when no knot pays off) and V0_SEARCH[0] points
    across the interval, then grids of as many points between the neighbours of the best
    point so far (the bound is concave in v0: its peak lies there), until they are at
    rounding level (at most V0_SEARCH[1] grids)."""
    total = float(wts.sum())
    lo, hi = max(-lam, -total - lam), min(lam, -total + lam)
    if lo > hi:                                 # only by rounding after the scaling
        lo = hi = float(np.clip(-total / 2, -lam, lam))
    e0 = (0.0 - g[0], np.maximum(0.0 - g[1:-1], 0.0))       # Phi of a unit weight at 0
    e1 = (p1 - g[0], np.maximum(p1 - g[1:-1], 0.0))         # ... and at p1

    def values(v0):
        v1 = -total - v0
        return _chain_minimum(phi0 + v0 * e0[0] + v1 * e1[0],
                              phi[None, :] + v0[:, None] * e0[1] + v1[:, None] * e1[1],
                              lip, lam_tv2, e)
    flat = (phi0 - total * e1[0]) / (e1[0] - e0[0])        # Phi_0 = 0 there
    tried = np.unique(np.clip(np.concatenate([[flat], np.linspace(lo, hi, V0_SEARCH[0])]),
                              lo, hi))
    found = values(tried)
    for _ in range(V0_SEARCH[1]):        # concave: the peak lies between the best's neighbours
        j = int(np.argmax(found))
        left, right = tried[max(j - 1, 0)], tried[min(j + 1, len(tried) - 1)]
        if right - left <= 4 * EPS * max(abs(left), abs(right)):
            break
        grid = np.linspace(left, right, V0_SEARCH[0])[1:-1]
        tried, order = np.unique(np.concatenate([tried, grid]), return_index=True)
        found = np.concatenate([found, values(grid)])[order]
    return found


def _chain_minimum(phi0: np.ndarray, phi: np.ndarray, lip: float, lam: float,
                   e: float) -> np.ndarray:
    """A lower bound (B,) on min over |s_i| <= lip of phi0 s_0 + sum_i phi_i (s_i - s_{i-1})
    + lam sum_i |s_i - s_{i-1}| for each row of phi0 (B,), phi (B, P - 2) known to within e
    (`lip_dual_bound`): -lip phi0 + 2 lip D - lip e - the rounding of D, D the two-state
    programme with change costs lam - e +- phi_i."""
    cost = lam - e
    f0, f1 = np.zeros_like(phi0), phi0.copy()            # x_0 = 0, x_0 = 1
    for i in range(phi.shape[1]):
        f0, f1 = np.minimum(f0, f1 + (cost - phi[:, i])), np.minimum(f1, f0 + (cost + phi[:, i]))
    d = np.minimum(f0, f1)
    top = np.abs(phi).max(axis=1, initial=0.0) if phi.size else np.zeros_like(phi0)
    rounding = 4 * (phi.shape[1] + 4) * EPS * (np.abs(phi0) + np.abs(d) + abs(cost) + top)
    return -lip * phi0 + 2 * lip * (d - rounding) - lip * e


def _project_affine(r: np.ndarray, z: np.ndarray, a_mat: np.ndarray,
                    affine: bool = True) -> np.ndarray:
    """r minus its least-squares component violating sum_m r_m . A_n = 0 and (affine)
    sum_m (r_m . A_n) z_mn = 0 for every n (K^T r = 0 for the basis (1, z), z taken about the
    middle of each neuron's range; (1,) alone when not affine; twice, for accuracy)."""
    centred = z - (z.max(axis=0) + z.min(axis=0)) / 2
    basis = (np.ones_like(z), centred) if affine else (np.ones_like(z),)
    gram = _affine_gram(a_mat, basis)
    n = z.shape[1]
    for _ in range(2):
        mu = _solve_gram(gram, _affine_apply(r, a_mat, basis))
        shift = mu[None, :n] + (mu[None, n:] * centred if affine else 0.0)
        r = r - shift @ a_mat.T
    return r


def _conjugate_bound(r: np.ndarray, scaled, gamma: float) -> float | None:
    """sum_m (r_m . c - E*(r_m)) minus a rounding allowance; None outside E*'s domain (the
    terms: the loss record's conjugate_terms, reference.nn._losses)."""
    terms = get_loss(scaled.loss).conjugate_terms(r, scaled.c[None, :], scaled.y, gamma)
    if terms is None:
        return None
    return float(terms.sum() - gamma * np.abs(terms).sum())
