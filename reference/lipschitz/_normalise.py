"""The power-of-two normalisation LipSDP is solved and certified on (reference.lipschitz._lipsdp):
the same answer in any units, and for LipSDP-neuron whatever the scale of each neuron.

Notes
-----
Scaling law.  Let the network's hidden neuron i have its pre-activation multiplied by
1 / sigma_i and the output by 1 / c (sigma_i, c > 0), with the slope bounds of hidden layer l
divided by d_l (d_l > 0; for a slope-restricted phi in [alpha, beta], z -> phi(s z) / (s d)
is slope-restricted in [alpha / d, beta / d], so the scaled data are again a network's LMI
data).  In LipSDP's loop-transformed variables v = [x^0; psi] (reference.lipschitz._lipsdp), psi_i
(the [0, 1]-sector part of neuron i) scales as its z_i: v = D v' with S = diag(sigma_i),
D = blkdiag(I_{n0}, S).  The data of the scaled network are A' = S^{-1} A D, C' = C D / c,
and B D = S B (B = [0, I_n]), so, term by term (A'^T T' B = D^T A^T S^{-1} T' S^{-1} B D, the
same for B^T T' A' and B^T T' B, C'^T C' = D^T C^T C D / c^2, D^T E_0 D = E_0),

    M(lambda, rho) = c^2 D^{-T} M'(lambda', rho / c^2) D^{-1},
    lambda'_i = lambda_i sigma_i^2 / c^2:

a congruence, so M <= 0 iff M' <= 0 with the multipliers mapped, and the optimum scales by
exactly c: sqrt(rho) = c sqrt(rho').  Which sigma are allowed:
- LipSDP-neuron (one multiplier per neuron): any sigma > 0; lambda >= 0 iff lambda' >= 0,
  a bijection of the feasible sets.
- LipSDP-layer (one multiplier mu_l per layer, lambda_i = mu_l (beta_i - alpha_i)^2): the map
  keeps the multipliers of a layer shared only when sigma is constant on the layer.  Scaling
  one neuron's row by s and the next layer's column by 1 / s leaves the network's function
  unchanged but NOT LipSDP-layer's optimum (its one multiplier must fit neurons of different
  scales): on a ReLU 2-8-1 network with row 0 x r and column 0 / r (row 1 the reverse),
  LipSDP-neuron is 0.6728 for every r, LipSDP-layer 2.106 at r = 1 and 2.946e7 at r = 1e4
  (NUMPY, CVXOPT and CLARABEL agree; the dual certificate of reference.lipschitz._lipsdp_dual proves
  it to 1e-8).  So only the per-layer normalisation applies to LipSDP-layer.

Per-layer normalisation (both variants; `normalise`).  W_k divided by 2^e_k <= ||W_k||_2 <
2^(e_k + 1) (after the per-neuron scaling below), the slope bounds of hidden layer l by 2^g_l
<= max_n max(|alpha_n|, |beta_n|) < 2^(g_l + 1): sigma is constant on each layer (the
product of the e_k and g_k before it), c = 2^E, E = sum e_k + sum g_l.

Per-neuron equilibration (LipSDP-neuron only; `equilibrate`).  Neuron i of hidden layer l
gets a_{l,i}: its row of W_l (and bias) times 2^-a_{l,i}, its column of W_{l+1} (or of the
output weight) times 2^a_{l,i}; the slope bounds are unchanged (z -> 2^-a phi(2^a z) has the
slopes of phi), the network's function is unchanged, and with the per-layer normalisation
after it, sigma_i = 2^(a_{l,i} + sum_{k <= l} e_k + sum_{k < l} g_k).  The exponents balance,
per neuron, the row norm of W_l against the column norm of diag(L) W_{l+1} (L_n = max(|alpha_n|,
|beta_n|) the neuron's largest slope): a_{l,i} moves by the nearest integer to
log2(row / column) / 2 (only when that is >= 1 in magnitude, so each move strictly lowers
sum_k ||diag(2^-a_k) U_k diag(2^a_{k-1})||_F^2, U_k = W_k diag(L_{k-1}), a convex function of
the exponents: the "equi-normalisation" of Stock et al., ICLR 2019, rounded to powers of
two), layer after layer, until a sweep moves nothing or after MAX_SWEEPS sweeps.  A neuron
with a zero row (constant pre-activation) or a zero column (unused output) has no balance:
its nonzero side is set to the geometric mean of its layer's balanced norms.  The last hidden
layer of a network with an activation on its output (W_out = I) is not equilibrated (its
scale is the output's).  Why: a neuron whose row is 1e4 times larger and column 1e4 times
smaller is the same network, but unbalanced it left the solvers' multipliers spanning
1e16: NUMPY certified 308.7 with an optimum of 0.6728 and stated accuracy 8 (1e8: 1.03e11).

Every scaling is by a power of two, so the normalised weights are the exact scaled ones: an
entry falling below the normal float64 range is the exception (its rounding enters
`Layers.weight_errors`, slope bounds are rounded outwards, and `Normalisation.lossless`
says so).  The value and the proven rounding bound are mapped back by 2^E exactly
(reference._numerics).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reference._numerics import exponent_below, scale_by_powers_of_two, scale_outwards
from reference.lipschitz._bounds import blocks, check_finite, slope_bounds
from reference.nn._network import Network

MAX_SWEEPS = 50          # equilibration sweeps over the hidden layers (each O(weights))


class Normalisation(NamedTuple):
    """What the network was normalised by (module docstring): weight_exponents e_k (one per
    hidden layer, then the output layer's; 0 for W_out = I), slope_exponents g_l (one per
    hidden layer), neuron_exponents a_{l,i} (a tuple per hidden layer; all 0 for
    LipSDP-layer), sweeps (of the equilibration, 0 when not run), exponent E = sum e_k +
    sum g_l (the value of the network is 2^E times that of the normalised one), lossless (no
    scaled entry fell below the normal float64 range: the scaled weights and slope bounds
    are exact; otherwise the weights' rounding (<= 2^-1074 an entry) is in
    `Layers.weight_errors` and the slope bounds are rounded outwards)."""
    weight_exponents: tuple
    slope_exponents: tuple
    neuron_exponents: tuple
    sweeps: int
    exponent: int
    lossless: bool

    def summary(self) -> dict:
        """The fields a result reports (JSON-ready)."""
        return {"weight_exponents": list(self.weight_exponents),
                "slope_exponents": list(self.slope_exponents),
                "neuron_exponents": [list(a) for a in self.neuron_exponents],
                "equilibration_sweeps": self.sweeps, "exponent": self.exponent,
                "lossless": self.lossless}

    def pre_activation_exponents(self) -> list:
        """log2 sigma_i per hidden layer (int arrays, (n_l,)): neuron i's pre-activation in
        the normalised network is z_i / sigma_i, and lambda_i = lambda'_i 4^(E - log2 sigma_i)
        maps its multipliers back (module docstring)."""
        out, before = [], 0
        for e, g, a in zip(self.weight_exponents, self.slope_exponents, self.neuron_exponents):
            out.append(before + e + np.asarray(a, dtype=int))
            before += e + g
        return out


class Layers(NamedTuple):
    """What the LMI is built from: the hidden layers' weights (n_l, n_{l-1}) with entrywise
    bounds on their rounding (0 unless normalised into subnormals), their slope bounds
    (alpha, beta), each (n_l,), the output weight (None: W_out = I) and its rounding bound,
    n0, and the normalisation (None: the weights as given)."""
    weights: list
    weight_errors: list
    bounds: list
    w_out: np.ndarray | None
    w_out_error: np.ndarray | None
    n0: int
    normalisation: Normalisation | None


def layers_of(net: Network) -> Layers:
    """The network's hidden layers (weights and slope bounds) and output weight, as given."""
    check_finite(net)
    parts = blocks(net)
    if parts[-1][1].is_identity:
        hidden, w_out = parts[:-1], parts[-1][0]
    else:                                  # an activation on the output: W_out = I
        hidden, w_out = parts, None
    weights = [w for w, _ in hidden]
    return Layers(weights, [np.zeros_like(w) for w in weights],
                  [slope_bounds(layer, w.shape[0]) for w, layer in hidden], w_out,
                  None if w_out is None else np.zeros_like(w_out), net.n_in, None)


def _log2_norms(w: np.ndarray, exponents, axis: int) -> np.ndarray:
    """log2 of the l2 norms along `axis` of W 2^E (E broadcast against W), -inf for a zero
    norm, without over- or underflow (mantissas and exponents apart, np.frexp)."""
    mantissa, power = np.frexp(w)
    power = power + exponents
    if not np.any(mantissa):
        return np.full(w.shape[1 - axis], -np.inf)
    top = int(power[mantissa != 0].max())
    with np.errstate(under="ignore", divide="ignore"):
        return np.log2(np.linalg.norm(np.ldexp(mantissa, power - top), axis=axis)) + top


def _largest_slopes(bounds) -> list:
    """L_n = max(|alpha_n|, |beta_n|) per hidden layer."""
    return [np.maximum(np.abs(lo), np.abs(hi)) for lo, hi in bounds]


def _moves(log_row: np.ndarray, log_col: np.ndarray) -> np.ndarray:
    """The integer moves of one layer's exponents (module docstring): the nearest integer to
    (log2 row - log2 column) / 2 where that is >= 1 in magnitude; a neuron with one side zero
    puts its other side at the mean log2 norm of its layer's balanced neurons; 0 when both
    sides are zero."""
    live = np.isfinite(log_row) & np.isfinite(log_col)
    half = np.zeros(log_row.shape)
    half[live] = (log_row[live] - log_col[live]) / 2
    target = float(np.mean((log_row + log_col)[live] / 2)) if live.any() else 0.0
    half = np.where(np.isfinite(log_row) & ~live, log_row - target, half)
    half = np.where(np.isfinite(log_col) & ~live, target - log_col, half)
    step = np.sign(half) * np.floor(np.abs(half) + 0.5)
    return np.where(np.abs(half) > 0.5, step, 0.0).astype(int)


def equilibrate(layers: Layers) -> tuple[list, int]:
    """The per-neuron exponents a_l (int arrays (n_l,), one per hidden layer) that balance the
    row norms of W_l against the column norms of diag(L_l) W_{l+1} (module docstring), and
    the number of sweeps run (<= MAX_SWEEPS).  The last hidden layer stays 0 when W_out = I."""
    weights = list(layers.weights)
    slopes = _largest_slopes(layers.bounds)
    nxt = weights[1:] + ([layers.w_out] if layers.w_out is not None and weights else [])
    exps = [np.zeros(w.shape[0], dtype=int) for w in weights]
    with np.errstate(divide="ignore"):
        log_slope = [np.log2(s) for s in slopes]
    sweeps = 0
    for sweeps in range(1, MAX_SWEEPS + 1):
        moved = False
        for l_idx, next_w in enumerate(nxt):
            before = exps[l_idx - 1][None, :] if l_idx else 0
            log_row = _log2_norms(weights[l_idx], -exps[l_idx][:, None] + before, axis=1)
            after = -exps[l_idx + 1][:, None] if l_idx + 1 < len(exps) else 0
            log_col = _log2_norms(next_w, exps[l_idx][None, :] + after, axis=0) + log_slope[
                l_idx]
            step = _moves(log_row, log_col)
            if np.any(step):
                exps[l_idx] = exps[l_idx] + step
                moved = True
        if not moved:
            break
    return exps, (sweeps if nxt else 0)


def _spectral_exponent(w: np.ndarray, exponents) -> int:
    """e with 2^e <= ||W 2^E||_2 < 2^(e + 1) (E broadcast against W; 0 for W = 0), without
    overflow: the matrix carried as mantissas times the power of two of its largest entry."""
    mantissa, power = np.frexp(w)
    power = power + exponents
    if not np.any(mantissa):
        return 0
    top = int(power[mantissa != 0].max())
    with np.errstate(under="ignore"):
        return top + exponent_below(float(np.linalg.norm(np.ldexp(mantissa, power - top), 2)))


def normalise(layers: Layers, variant: str) -> Layers:
    """The layers normalised by powers of two (module docstring): every weight divided by
    2^e_k <= its spectral norm and every hidden layer's slope bounds by 2^g_l <= its largest
    slope; for LipSDP-neuron (variant "neuron") the neurons of these are then equilibrated
    (`equilibrate`) and each weight divided again by the power of two of its new spectral
    norm (e_k is the sum of both; the equilibration sees the per-layer normalised network,
    so a network with its layers rescaled by powers of two gets the same bits).  The value
    scales by exactly 2^E (`Normalisation`); every entry is scaled once, from the weights as
    given."""
    first = [_spectral_exponent(w, 0) for w in layers.weights]
    first_out = 0 if layers.w_out is None else _spectral_exponent(layers.w_out, 0)
    g = [exponent_below(float(np.max(s, initial=0.0))) for s in _largest_slopes(layers.bounds)]
    bounds = [scale_outwards(lo, hi, gl) for (lo, hi), gl in zip(layers.bounds, g)]
    if variant == "neuron":
        neuron, sweeps = equilibrate(layers._replace(
            weights=[np.ldexp(w, -e) for w, e in zip(layers.weights, first)], bounds=bounds,
            w_out=None if layers.w_out is None else np.ldexp(layers.w_out, -first_out)))
    else:
        neuron, sweeps = [np.zeros(w.shape[0], dtype=int) for w in layers.weights], 0
    entry = [-a[:, None] + (neuron[k - 1][None, :] if k else 0) - e
             for k, (a, e) in enumerate(zip(neuron, first))]
    out_entry = (neuron[-1][None, :] if neuron else 0) - first_out
    e_w = [e + _spectral_exponent(w, x) for w, x, e in zip(layers.weights, entry, first)]
    e_out = (0 if layers.w_out is None else
             first_out + _spectral_exponent(layers.w_out, out_entry))
    weights = [scale_by_powers_of_two(w, x - (e - e0))
               for w, x, e, e0 in zip(layers.weights, entry, e_w, first)]
    w_out = (None if layers.w_out is None else
             scale_by_powers_of_two(layers.w_out, out_entry - (e_out - first_out)))
    lossless = (all(not err.any() for _, err in weights + ([w_out] if w_out else []))
                and all(np.array_equal(np.ldexp(lo, gl), lo0) and np.array_equal(
                    np.ldexp(hi, gl), hi0) for (lo, hi), (lo0, hi0), gl in zip(
                        bounds, layers.bounds, g)))
    normalisation = Normalisation(
        tuple(e_w + ([] if w_out is None else [e_out])), tuple(g),
        tuple(tuple(int(v) for v in a) for a in neuron), sweeps, sum(e_w) + e_out + sum(g),
        lossless)
    return Layers([w for w, _ in weights], [err for _, err in weights], bounds,
                  None if w_out is None else w_out[0], None if w_out is None else w_out[1],
                  layers.n0, normalisation)
