"""Lipschitz bounds of a network in the l_p norm (p in {1, 2, inf}) on inputs and outputs.

This module holds the global Theorem-1 bounds of the paper; the tighter ladder (layer-wise,
LipSDP, exact values, lower bounds) builds on `blocks` and `activation_constants` here.
"""
from __future__ import annotations

import numpy as np

from reference._checks import OverflowResult
from reference._limits import check_box, guard
from reference._numerics import gamma, product_or_overflow, scaled_product
from reference.nn._network import Activation, Dense, Identity, Network

NUM_POINTS = 2000            # lower: seeded random points of the first round
ROUNDS = 20                  # lower: refinement rounds (a tenth more points each)
MAX_LOWER_COST = 1e11        # lower: estimated flops of its Jacobians (see jacobian_flops)
LOWER_CHUNK_BYTES = 2 ** 25  # lower: Jacobians evaluated in chunks of about 32 MB
CLOSED_FORM_FACTOR = 16     # closed forms trusted to 16 gamma_n relative (closed_form_rtol)


def parse_p(p) -> float:
    """p as 1.0, 2.0 or inf (from a number or a string such as "2" or "inf"); anything
    else is a ValueError naming p."""
    try:
        value = float(p)
    except (TypeError, ValueError):
        value = None
    if value not in (1.0, 2.0, np.inf):
        raise ValueError(f"p: expected one of 1, 2, inf, got {p!r}")
    return value


def dual_exponent(p: float) -> float:
    """q = p / (p - 1): 1 -> inf, 2 -> 2, inf -> 1."""
    return {1.0: np.inf, 2.0: 2.0, np.inf: 1.0}[p]


def activation_constants(layer, width: int) -> dict:
    """Per-neuron Lip, TV2 and BV2 = TV2 + |sigma(0)| + |sigma(1)| of an activation layer,
    each of shape (width,).  ReLU: 1, 1, 2; LeakyReLU(a) and PReLU(a): max(1, |a|), |1 - a|,
    |1 - a| + 1; identity: 1, 0, 1; splines: exact from their coefficients.  Each activation
    class gives its own (`Activation.constants`, reference.nn)."""
    return _activation(layer).constants(width)


def _activation(layer) -> Activation:
    """layer, which must be an activation layer (TypeError otherwise)."""
    if not isinstance(layer, Activation):
        raise TypeError(f"layer: not an activation layer ({type(layer).__name__})")
    return layer


def blocks(net: Network) -> list:
    """The network as blocks (W (N_out, N_in), activation layer): each dense layer with
    the activation after it (Identity if none); an activation with no dense layer before
    it gets W = I.  Biases do not enter any Lipschitz bound."""
    out, weight, width = [], None, net.n_in
    for layer in net.layers:
        if isinstance(layer, Dense):
            if weight is not None:
                out.append((weight, Identity()))
            weight, width = layer.params["weight"], layer.n_out
        else:
            out.append((weight if weight is not None else np.eye(width), layer))
            weight = None
    if weight is not None:
        out.append((weight, Identity()))
    return out


def _theorem1(net: Network, p, key: str, what: str) -> float:
    """prod over the blocks of (max_n ||w_n||_q) * ||(constant key of sigma_n)_n||_p."""
    p = parse_p(p)
    q = dual_exponent(p)
    check_finite(net)
    factors = []
    for weight, layer in blocks(net):
        scaled, power = scaled_product(weight)                   # (N_out, N_in)
        factors.append((np.linalg.norm(scaled, ord=q, axis=1).max(), power))
        scaled, power = scaled_product(activation_constants(layer, weight.shape[0])[key])
        factors.append((np.linalg.norm(scaled, ord=p), power))
    return product_or_overflow(factors, f"{what} (p = {p:g})")


def theorem1(net: Network, p=2) -> float:
    """prod_l (max_n ||w_{n,l}||_q) * ||(Lip(sigma_{n,l}))_n||_p  (Theorem 1, exact slopes).

    Computed without intermediate over- or underflow (`product_or_overflow`); a bound outside
    the float64 range (two layers of slope 2e150 and weights 1e10 give 1e320) is an
    OverflowResult, never inf or 0."""
    return _theorem1(net, p, "lip", "theorem1")


def theorem1_bv2(net: Network, p=2) -> float:
    """prod_l (max_n ||w_{n,l}||_q) * ||(||sigma_{n,l}||_BV2)_n||_p  (Theorem 1, BV2 form).

    With p = 1 this is DeepSplines' lipschitz_bound() except that DeepSplines drops the
    factor N_L of an identity last layer with N_L outputs.  Out of range: OverflowResult
    (see `theorem1`)."""
    return _theorem1(net, p, "bv2", "theorem1_bv2")


def check_finite(net: Network) -> None:
    for name, value in net.named_params():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"model: parameter {name} holds NaN or inf")


def closed_form_rtol(net: Network) -> tuple[float, str]:
    """(relative rounding margin of the closed-form bounds theorem1, theorem1_bv2 and
    layerwise as computed here, what it is): CLOSED_FORM_FACTOR gamma_n, n = sum over the
    blocks of (N_in + 2) + N_0 + N_L (sums of at most n terms and one product per block;
    16 for LAPACK's SVD, backward stable with no sharp constant)."""
    n = sum(w.shape[1] + 2 for w, _ in blocks(net)) + net.n_in + net.n_out
    rtol = CLOSED_FORM_FACTOR * gamma(n)
    return rtol, f"{CLOSED_FORM_FACTOR} gamma_{n} = {rtol:.3g} relative"


def operator_norm(matrix: np.ndarray, p: float) -> float:
    """||A||_{p->p}: max column l1 sum (p = 1), largest singular value (p = 2), max row l1
    sum (p = inf)."""
    return float(np.linalg.norm(matrix, ord={1.0: 1, 2.0: 2, np.inf: np.inf}[p]))


def layerwise(net: Network, p=2) -> float:
    """prod_l || diag(L_{.,l}) W_l ||_{p->p}; never above the Theorem-1 form.  Each matrix is
    formed as S 2^e (`scaled_product`) and the product carried as in `theorem1`: out of the
    float64 range, OverflowResult."""
    p = parse_p(p)
    check_finite(net)
    factors = []
    for weight, layer in blocks(net):
        lip = activation_constants(layer, weight.shape[0])["lip"]      # (N_out,)
        scaled, power = scaled_product(lip[:, None], weight)          # (N_out, N_in)
        factors.append((operator_norm(scaled, p), power))
    return product_or_overflow(factors, f"layerwise (p = {p:g})")


def slope_bounds(layer, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron slope restriction [alpha_n, beta_n] of an activation layer, each (width,):
    ReLU [0, 1], LeakyReLU / PReLU [min(a, 1), max(a, 1)], identity [1, 1], splines
    [min slope, max slope] over all their pieces (unbounded ends included).  Each
    activation class gives its own (`Activation.slope_range`, reference.nn)."""
    return _activation(layer).slope_range(width)


def jacobian_norms(jac: np.ndarray, p: float) -> np.ndarray:
    """||J_m||_{p->p} for a stack J (M, N_L, N_0)."""
    if p == 2.0:
        return np.linalg.norm(jac, ord=2, axis=(1, 2))
    axis = 1 if p == 1.0 else 2               # max column sum (p = 1), max row sum (inf)
    return np.abs(jac).sum(axis=axis).max(axis=1)


def steepest_direction(jac: np.ndarray, p: float) -> np.ndarray:
    """A unit vector v (in l_p) with ||J v||_p = ||J||_{p->p} for J (N_L, N_0); every
    |v_i| <= 1.  p = 2: the first right singular vector; p = 1: the unit vector of the
    largest column l1 sum; p = inf: the signs of the row of largest l1 sum."""
    n0 = jac.shape[1]
    if p == 2.0:
        return np.linalg.svd(jac)[2][0]
    if p == 1.0:
        return np.eye(n0)[np.argmax(np.abs(jac).sum(axis=0))]
    row = np.argmax(np.abs(jac).sum(axis=1))
    return np.where(jac[row] >= 0, 1.0, -1.0)


def vector_norm(v, p: float):
    """||v||_p along the last axis of v, without the underflow (or overflow) of the squares
    for p = 2: each vector is divided by the power of two just above its largest |v_i|
    (exact), normed, and multiplied back.  Two points 1e-160 apart have a distance of 1e-160,
    not 0 (np.linalg.norm squares it to 0)."""
    v = np.asarray(v, dtype=np.float64)
    top = np.max(np.abs(v), axis=-1, keepdims=True, initial=0.0)
    usable = (top > 0) & np.isfinite(top)
    scale = np.where(usable, np.ldexp(1.0, np.frexp(np.where(usable, top, 1.0))[1]), 1.0)
    out = np.linalg.norm(v / scale, ord=p, axis=-1) * scale[..., 0]
    return float(out) if out.ndim == 0 else out


def secant_pair(net: Network, x: np.ndarray, p: float, box: float,
                h: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """A pair of points of the box [-box, box]^N_0 along the steepest direction v of J(x)
    (`steepest_direction`, |v_i| <= 1), and their secant ratio:
        x0 = clip(x, -box + h, box - h)   (x moved inside by at most h per coordinate),
        x1 = clip(x0 + h v, -box, box),
        ratio = ||f(x1) - f(x0)||_p / ||x1 - x0||_p,
    a lower bound on Lip_p(f) over the box (both points lie in it; up to the rounding of
    the difference, see reference.lipschitz._verdict.certified_ratio).  h defaults to 1e-6 box.  x
    (N_0,); returns (x0, x1, ratio)."""
    h = 1e-6 * box if h is None else float(h)
    x0 = np.clip(np.asarray(x, dtype=np.float64), -box + h, box - h)
    v = steepest_direction(net.input_jacobian(x0[None])[0], p)
    x1 = np.clip(x0 + h * v, -box, box)
    diff = net.forward(x1[None])[0] - net.forward(x0[None])[0]
    return x0, x1, vector_norm(diff, p) / vector_norm(x1 - x0, p)


def jacobian_flops(net: Network) -> tuple[float, int]:
    """(flops, floats) of one input Jacobian by forward-mode propagation, per point: the
    forward pass 2 sum_l N_l N_{l-1}, the Jacobian through every dense layer after the first
    2 N_l N_{l-1} N_0 and through every activation N_l N_0; floats = the largest Jacobian held,
    max_l N_l N_0."""
    n0, width, first = net.n_in, net.n_in, True
    flops, floats = 0.0, n0 * n0
    for layer in net.layers:
        if isinstance(layer, Dense):
            flops += 2.0 * layer.n_out * width * (1 + (0 if first else n0))
            width, first = layer.n_out, False
        else:
            flops += width * n0
        floats = max(floats, width * n0)
    return flops, floats


def _search_points(num_points: int, rounds: int) -> int:
    """How many points `lower` evaluates: num_points, then a tenth of all so far per round."""
    total = num_points
    for _ in range(rounds):
        total += max(1, total // 10)
    return total


def _chunked_norms(net: Network, x: np.ndarray, p: float, chunk: int) -> np.ndarray:
    """||J(x_m)||_{p->p} for x (M, N_0), `chunk` points at a time; (M,)."""
    return np.concatenate([jacobian_norms(net.input_jacobian(x[a:a + chunk]), p)
                           for a in range(0, len(x), chunk)])


def lower(net: Network, p=2, box: float = 1.0, num_points: int = NUM_POINTS,
          rounds: int = ROUNDS, seed: int = 0, max_lower_cost: float = MAX_LOWER_COST) -> dict:
    """A lower bound on Lip_p(f) over [-box, box]^N_0: value = max ||J(x)||_{p->p} found.

    The network is piecewise linear, so its Jacobian is piecewise constant and gradient
    ascent on ||J(x)|| has nothing to follow: instead, seeded random points, then `rounds`
    of local search around the best tenth with shrinking steps.  The points are drawn from
    continuous distributions, so f is differentiable at them (probability 1) and J(x) is a
    slope of f: ||J(x)|| <= Lip_p(f) up to float rounding (1e-15 relative).  The best point x*
    also gives a pair inside the box (`secant_pair`: x = x* moved inside by at most h = 1e-6
    box where it lies within h of a face, x_pair = x + h v, v the steepest direction of J
    there), evaluated directly: pair_ratio = ||f(x_pair) - f(x)||_p / ||x_pair - x||_p, a
    secant slope of f between two points of the box, equal to value up to the rounding of
    the difference (about 1e-9 relative) unless a kink lies between them.

    Size guard: the estimate points x jacobian_flops(net) must not exceed max_lower_cost
    (TooLarge otherwise, before any evaluation); the Jacobians are evaluated in chunks of
    about LOWER_CHUNK_BYTES, so memory stays bounded whatever num_points."""
    p = parse_p(p)
    check_finite(net)
    box = check_box(box)
    num_points, rounds = int(num_points), int(rounds)
    if num_points < 1 or rounds < 0:
        raise ValueError(f"num_points, rounds: expected >= 1 and >= 0, got {num_points}, "
                         f"{rounds}")
    flops, floats = jacobian_flops(net)
    guard("lower: Jacobian flops", _search_points(num_points, rounds) * flops, max_lower_cost,
          "max_lower_cost")
    chunk = max(1, LOWER_CHUNK_BYTES // (8 * floats))
    rng = np.random.default_rng(seed)
    x = rng.uniform(-box, box, (num_points, net.n_in))
    norms = _chunked_norms(net, x, p, chunk)
    scale = 0.25 * box
    for _ in range(rounds):
        top = x[np.argsort(norms)[-max(1, len(x) // 10):]]
        cand = np.clip(top + scale * rng.normal(size=top.shape), -box, box)
        x = np.concatenate([x, cand])
        norms = np.concatenate([norms, _chunked_norms(net, cand, p, chunk)])
        scale *= 0.7
    best = int(np.argmax(norms))
    if not np.isfinite(norms[best]):
        raise OverflowResult(f"model: lower: the input Jacobian leaves the float64 range at "
                             f"x = {x[best].tolist()} for these finite parameters; no bound "
                             "is reported")
    x_pair_start, x_pair, pair_ratio = secant_pair(net, x[best], p, box)
    return {"value": float(norms[best]), "jacobian_norm": float(norms[best]),
            "pair_ratio": pair_ratio, "x": x_pair_start, "x_pair": x_pair,
            "points_evaluated": len(x), "seed": seed, "box": box}
