"""Lipschitz bounds of a network in the l_p norm (p in {1, 2, inf}) on inputs and outputs.

This module holds the global Theorem-1 bounds of the paper; the tighter ladder (layer-wise,
LipSDP, exact values, lower bounds) builds on `blocks` and `activation_constants` here.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reference._limits import check_box, guard
from reference._numerics import gamma, product_or_overflow, scaled_product
from reference.exceptions import OverflowResult
from reference.lipschitz._bound_result import BoundResult
from reference.nn._network import Activation, Identity, Network

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
    if not getattr(layer, "is_activation", False):
        raise TypeError(f"layer: not an activation layer ({type(layer).__name__})")
    return layer


def blocks(net: Network) -> list:
    """The network as blocks (W (N_out, N_in), activation layer): each dense layer with
    the activation after it (Identity if none); an activation with no dense layer before
    it gets W = I.  Biases do not enter any Lipschitz bound."""
    out, weight, width = [], None, net.n_in
    for layer in net.layers:
        if not layer.is_activation:
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


def theorem1(net: Network, p: float | str = 2) -> float:
    r"""Global Lipschitz bound of Theorem 1 with the exact Lipschitz constants of the activations.

    Parameters
    ----------
    net : Network
        The network f, N_0 inputs, N_L outputs; its parameters must be finite.
    p : {1, 2, inf} or str, default 2
        The l_p norm on inputs and outputs (a number, or a string such as ``"inf"``).

    Returns
    -------
    bound : float
        An upper bound on Lip_p(f) over R^N_0 (see Notes).

    Raises
    ------
    ValueError
        When p is not 1, 2 or inf, or a parameter holds NaN or inf.
    OverflowResult
        When the bound leaves the float64 range for finite parameters (two layers of slope
        2e150 and weights 1e10 give 1e320): never inf or 0.

    See Also
    --------
    theorem1_bv2 : The same bound with the BV(2) norms of the activations.
    layerwise : The tighter product of layer-wise operator norms.

    Notes
    -----
    Theorem 1 of [1]_: with q = p / (p - 1) the dual exponent, w_{n,l} the n-th row of W_l
    and sigma_{n,l} the activation of neuron n of layer l (each dense layer paired with the
    activation after it, the identity if none),

    .. math::

        \mathrm{Lip}_p(f) \le \prod_l \Big(\max_n \|w_{n,l}\|_q\Big)
        \,\big\|(\mathrm{Lip}(\sigma_{n,l}))_n\big\|_p .

    The product is carried as mantissas and powers of two (`product_or_overflow`), without
    intermediate over- or underflow.

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.

    Examples
    --------
    >>> from reference.nn import Dense, Network, ReLU
    >>> from reference.lipschitz import layerwise, theorem1
    >>> net = Network([Dense([[1.0], [-2.0]]), ReLU(), Dense([[1.0, 1.0]])])
    >>> print(round(theorem1(net), 6), round(layerwise(net), 6))
    4.0 3.162278
    """
    return _theorem1(net, p, "lip", "theorem1")


def theorem1_bv2(net: Network, p: float | str = 2) -> float:
    r"""Global Lipschitz bound of Theorem 1 with the BV(2) norms of the activations.

    Parameters
    ----------
    net : Network
        The network f; its parameters must be finite.
    p : {1, 2, inf} or str, default 2
        The l_p norm on inputs and outputs.

    Returns
    -------
    bound : float
        An upper bound on Lip_p(f) over R^N_0, never below `theorem1`'s.

    Raises
    ------
    ValueError
        When p is not 1, 2 or inf, or a parameter holds NaN or inf.
    OverflowResult
        When the bound leaves the float64 range (see `theorem1`).

    See Also
    --------
    theorem1 : The same product with the exact Lipschitz constants.

    Notes
    -----
    Since Lip(sigma) <= ||sigma||_BV(2) = TV(2)(sigma) + |sigma(0)| + |sigma(1)| [1]_,

    .. math::

        \mathrm{Lip}_p(f) \le \prod_l \Big(\max_n \|w_{n,l}\|_q\Big)
        \,\big\|(\|\sigma_{n,l}\|_{\mathrm{BV}^{(2)}})_n\big\|_p .

    With p = 1 this is DeepSplines' ``lipschitz_bound()`` except that DeepSplines drops the
    factor N_L of an identity last layer with N_L outputs.

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.
    """
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


def operator_norm(matrix: ArrayLike, p: float) -> float:
    """Operator norm ||A||_{p->p} of a matrix.

    Parameters
    ----------
    matrix : array_like, shape (m, n)
        The matrix A.
    p : {1.0, 2.0, inf}
        The norm, as a float (`parse_p`'s form).

    Returns
    -------
    norm : float
        The largest column l1 sum (p = 1), the largest singular value (p = 2) or the
        largest row l1 sum (p = inf).
    """
    return float(np.linalg.norm(matrix, ord={1.0: 1, 2.0: 2, np.inf: np.inf}[p]))


def layerwise(net: Network, p: float | str = 2) -> float:
    r"""Layer-wise Lipschitz bound: the product of the operator norms of the scaled layers.

    Parameters
    ----------
    net : Network
        The network f; its parameters must be finite.
    p : {1, 2, inf} or str, default 2
        The l_p norm on inputs and outputs.

    Returns
    -------
    bound : float
        An upper bound on Lip_p(f) over R^N_0, never above `theorem1`'s.

    Raises
    ------
    ValueError
        When p is not 1, 2 or inf, or a parameter holds NaN or inf.
    OverflowResult
        When the bound leaves the float64 range for finite parameters.

    See Also
    --------
    theorem1 : The looser closed form of [1]_.
    reference.lipschitz.lipsdp : The SDP bound, never above this one for p = 2.

    Notes
    -----
    With L_{n,l} = Lip(sigma_{n,l}) and ||.||_{p->p} the operator norm (`operator_norm`),

    .. math::

        \mathrm{Lip}_p(f) \le \prod_l \big\|\mathrm{diag}(L_{\cdot,l})\, W_l
        \big\|_{p\to p},

    the simplest compositional bound: a product of per-layer constants.  Compositional
    estimates such as [2]_ chain per-layer certificates into tighter bounds for p = 2
    (`reference.lipschitz.eclipse_fast`, never above this bound, and
    `reference.lipschitz.eclipse`).  Each matrix is formed as S 2^e (`scaled_product`) and
    the product carried as in `theorem1`.

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.
    .. [2] Y. Xu and S. Sivaranjani, "ECLipsE: Efficient Compositional Lipschitz Constant
       Estimation for Deep Neural Networks", NeurIPS 2024.

    Examples
    --------
    >>> from reference.nn import Dense, Network, ReLU
    >>> from reference.lipschitz import layerwise
    >>> net = Network([Dense([[1.0], [-2.0]]), ReLU(), Dense([[1.0, 1.0]])])
    >>> print(round(layerwise(net, p=2), 6), round(layerwise(net, p=1), 6))
    3.162278 3.0
    """
    p = parse_p(p)
    check_finite(net)
    factors = []
    for weight, layer in blocks(net):
        lip = activation_constants(layer, weight.shape[0])["lip"]      # (N_out,)
        scaled, power = scaled_product(lip[:, None], weight)          # (N_out, N_in)
        factors.append((operator_norm(scaled, p), power))
    return product_or_overflow(factors, f"layerwise (p = {p:g})")


def slope_bounds(layer: Activation, width: int) -> tuple[NDArray[np.float64],
                                                         NDArray[np.float64]]:
    """Per-neuron slope restriction [alpha_n, beta_n] of an activation layer.

    Parameters
    ----------
    layer : Activation
        An activation layer (``reference.nn.Activation``).
    width : int
        The number of neurons N of the layer (a scalar activation has no width of its own).

    Returns
    -------
    alpha : ndarray of float64, shape (width,)
        The least slope of each neuron's activation.
    beta : ndarray of float64, shape (width,)
        The largest slope of each neuron's activation.

    Raises
    ------
    TypeError
        When `layer` is not an activation layer.

    Notes
    -----
    Every activation is slope-restricted: alpha_n <= (sigma(a) - sigma(b)) / (a - b) <=
    beta_n.  ReLU [0, 1], LeakyReLU / PReLU [min(a, 1), max(a, 1)], identity [1, 1],
    splines [min slope, max slope] over all their pieces (unbounded ends included).  Each
    activation class gives its own (`Activation.slope_range`, reference.nn).  These are the
    sector bounds of LipSDP (`reference.lipschitz.lipsdp`).
    """
    return _activation(layer).slope_range(width)


def jacobian_norms(jac: NDArray[np.float64], p: float) -> NDArray[np.float64]:
    """Operator norms ||J_m||_{p->p} of a stack of Jacobians.

    Parameters
    ----------
    jac : ndarray of float64, shape (M, N_L, N_0)
        The Jacobians J_m.
    p : {1.0, 2.0, inf}
        The norm, as a float (`parse_p`'s form).

    Returns
    -------
    norms : ndarray of float64, shape (M,)
        ||J_m||_{p->p}: largest singular value (p = 2), largest column l1 sum (p = 1) or
        largest row l1 sum (p = inf).
    """
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
        if not layer.is_activation:
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


def lower(net: Network, p: float | str = 2, box: float = 1.0, num_points: int = NUM_POINTS,
          rounds: int = ROUNDS, seed: int = 0,
          max_lower_cost: float = MAX_LOWER_COST) -> BoundResult:
    """A lower bound on Lip_p(f) over the box [-box, box]^N_0 by a seeded search of Jacobians.

    Parameters
    ----------
    net : Network
        The network f, N_0 inputs; its parameters must be finite.
    p : {1, 2, inf} or str, default 2
        The l_p norm on inputs and outputs.
    box : float, default 1.0
        The half-width R > 0 of the box [-R, R]^N_0.
    num_points : int, default NUM_POINTS (2000)
        Random points of the first round, >= 1.
    rounds : int, default ROUNDS (20)
        Rounds of local search around the best tenth, >= 0 (a tenth more points each).
    seed : int, default 0
        Seed of ``numpy.random.default_rng``.
    max_lower_cost : float, default MAX_LOWER_COST (1e11)
        Size guard: the most flops of Jacobian evaluations allowed (`jacobian_flops`).

    Returns
    -------
    result : BoundResult
        A dict subclass with attribute access (the keys marked [lower] in `BoundResult`):
        ``value`` (float: the largest ||J(x)||_{p->p} found, a lower bound on Lip_p(f) over
        the box), ``jacobian_norm`` (the same number), ``pair_ratio`` (float: the secant
        ratio of the pair below), ``x`` and ``x_pair`` (ndarray, shape (N_0,): two points of
        the box along the steepest direction at the best point), ``points_evaluated``
        (int), ``seed`` (int) and ``box`` (float).

    Raises
    ------
    ValueError
        When p, box, num_points or rounds is out of range, or a parameter is not finite.
    TooLarge
        When the estimated cost exceeds max_lower_cost, before any evaluation.
    OverflowResult
        When the Jacobian leaves the float64 range at the best point.

    Notes
    -----
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
    about LOWER_CHUNK_BYTES, so memory stays bounded whatever num_points.

    Examples
    --------
    >>> from reference.nn import Dense, Network, ReLU
    >>> from reference.lipschitz import lower
    >>> net = Network([Dense([[1.0], [-2.0]]), ReLU(), Dense([[1.0, 1.0]])])
    >>> result = lower(net, num_points=100, rounds=2)
    >>> print(round(result["value"], 6), round(result["pair_ratio"], 6))
    2.0 2.0
    """
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
    return BoundResult(value=float(norms[best]), jacobian_norm=float(norms[best]),
                       pair_ratio=pair_ratio, x=x_pair_start, x_pair=x_pair,
                       points_evaluated=len(x), seed=seed, box=box)
