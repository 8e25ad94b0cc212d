"""Exact Lipschitz constants of a network, which is continuous and piecewise linear (CPWL).

Three cases are computable, each in its module:

- 1-D input (N_0 = 1): `reference.lipschitz._exact1d.exact_1d` propagates the breakpoints layer by
  layer and takes Lip_p(f) = max over the linear pieces of ||f'||_p, over the whole real
  line (`exact_1d_on_box`: the same over [-R, R]);
- 2-D input (N_0 = 2), every p, a box [-R, R]^2: `reference.lipschitz.regions_2d`
  enumerates the linear regions (polygons split layer by layer);
- p in {1, inf}, a small network, a box [-R, R]^N_0: `reference.lipschitz.exact_milp` solves a
  mixed-integer LP (HiGHS).
They import this module (it imports none of them).  The first two share their machinery
(reference.lipschitz._partition): a region counts whatever its size, and where floating point
cannot decide a cut, exact rational arithmetic does (reference.lipschitz._rational).

This module keeps what they all share: the knot form and the piece tables of every
activation (`knot_form`, `piece_tables`, reference.lipschitz._pieces), the Jacobian of an activation
pattern (`pattern_jacobian`), the normalisation of the box (`input_scale`,
`scaled_input`), the layer-wise tail bounds of an interrupted run (`tail_bounds`), the
rounding bound of a computed Jacobian norm (`jacobian_rounding`) and witness pairs inside a
linear region (`chord_pair`).

Every activation enters through its knot form sigma(z) = b0 + b1 z + sum_k a_k (z - tau_k)_+
(`knot_form`): splines exactly, ReLU as a single knot at 0, LeakyReLU / PReLU(a) as a knot at
0 with jump 1 - a, the identity without knots.
"""
from __future__ import annotations

import ctypes
import os
import sys
from contextlib import contextmanager

import numpy as np
import scipy.optimize

from reference._numerics import gamma
from reference.exceptions import NotApplicable
from reference.lipschitz._bounds import (
    activation_constants,
    blocks,
    operator_norm,
    steepest_direction,
    vector_norm,
)
from reference.lipschitz._pieces import piece_table
from reference.nn._knot_spline import KnotSpline
from reference.nn._network import Dense, Network

MAX_PIECES = 1_000_000     # exact_1d: segments of the partition (stops with a bracket)
TIME_LIMIT = 60.0          # seconds, every exact method (they return a bracket at the limit)
CHORD_SHRINK = 0.5         # chord_pair: the pair spans this fraction of the chord
# `upper_margin_kind` of an exact method's result: what its upper end is, hence the rounding
# margin that makes it a certified bound (reference.lipschitz._verdict.upper_margin):
#   jacobian_rounding  a computed Jacobian norm (exact_1d; box_value over the box): add
#                      jacobian_rounding(net, p);
#   rounding_bound     upper_bound holds that margin already, stated as `rounding_bound`
#                      (regions_2d);
#   tolerance          upper_bound holds HiGHS's tolerance, stated as `tolerance` (MILP);
#   closed_form        a product with layer-wise closed forms (interrupted runs, fallbacks):
#                      trusted to a relative multiple of gamma_n, as the closed forms.
UPPER_MARGIN_KINDS = ("jacobian_rounding", "rounding_bound", "tolerance", "closed_form")




def _flush_c_stdio() -> None:
    """fflush(NULL): C's own stdout buffer, where a solver's printf may wait (a pipe is
    fully buffered), goes out now, to wherever file descriptor 1 points now."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):           # no C library to ask: nothing buffered there
        pass


@contextmanager
def solver_output_silenced():
    """Run a solver with file descriptor 1 on /dev/null: whatever it writes to stdout from C
    (HiGHS prints debug lines such as 'HighsMipSolverData::transformNewIntegerFeasibleSolution
    tmpSolver.run();' on some MILPs) never reaches the command's stdout, which must hold the
    JSON alone.  Python's and C's buffers are flushed before and after the switch; a process
    without a file descriptor 1 runs the solver as it is."""
    sys.stdout.flush()
    _flush_c_stdio()
    try:
        saved = os.dup(1)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        _flush_c_stdio()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def knot_form(layer, width: int) -> KnotSpline:
    """The activation layer as C = width knot-form splines, with the knots where the exact
    slope changes (reference.lipschitz._pieces: a bend of one ulp is kept, a grid point without bend
    dropped): b0, b1 the line of the first piece, jumps the differences of the slopes."""
    table = piece_table(layer, width)
    sizes = [len(k) + 1 for k in table.knots]
    return KnotSpline(table.offsets[:, 0], table.slopes[:, 0], list(table.knots),
                      [np.diff(table.slopes[n, :size]) for n, size in enumerate(sizes)])


def piece_tables(net: Network) -> dict:
    """{layer index: reference.lipschitz._pieces.PieceTable} for every activation layer of net."""
    tables, width = {}, net.n_in
    for i, layer in enumerate(net.layers):
        if not layer.is_activation:
            width = layer.n_out
        else:
            tables[i] = piece_table(layer, width)
    return tables


def pattern_jacobian(net: Network, tables: dict, pattern: list) -> np.ndarray:
    """The Jacobian (N_L, N_0) of f on the region of an activation pattern (per activation
    layer, the piece of every neuron), from the float64 tables: W_L S_{L-1} ... S_1 W_1."""
    jac, depth = np.eye(net.n_in), 0
    for i, layer in enumerate(net.layers):
        if not layer.is_activation:
            jac = layer.params["weight"] @ jac
        else:
            pieces = np.asarray(pattern[depth], dtype=np.int64)
            jac = tables[i].slopes[np.arange(len(pieces)), pieces][:, None] * jac
            depth += 1
    return jac


def input_scale(box: float) -> float:
    """The power of two 2^e with box = m 2^e, 1/2 <= m < 1: the exact methods work on the
    box [-m, m]^N_0 of the network `scaled_input(net, 2^e)` (every product by 2^e exact),
    so that their geometry, areas and LPs see numbers near 1 whatever the box."""
    return float(np.ldexp(1.0, np.frexp(box)[1]))


def scaled_input(net: Network, scale: float) -> Network:
    """The network u -> f(scale u): the first dense layer's weight times `scale` (a power of
    two: exact), or a dense layer scale I put in front.  Jacobians are multiplied by scale,
    Lipschitz constants too.  NotApplicable (a ValueError) naming box when a nonzero weight
    would leave the normal float64 range (the box is then too small or too large for these
    weights: the ladder reports the exact method as not applicable, the others run)."""
    first = net.layers[0]
    if scale == 1.0:
        return net
    if first.is_activation:
        return Network([Dense(scale * np.eye(net.n_in)), *net.layers])
    w = first.params["weight"]
    scaled = w * scale
    nonzero = w != 0
    tiny = np.finfo(float).tiny
    if not np.all(np.isfinite(scaled)) or np.any(np.abs(scaled[nonzero]) < tiny):
        low, high = np.abs(w[nonzero]).min(), np.abs(w).max()
        raise NotApplicable(f"box: the first layer's weights (|w| in [{low:.3g}, {high:.3g}]) "
                            f"times the box scale {scale:.3g} leave the normal float64 range; "
                            "the exact methods cannot work at this box")
    return Network([Dense(scaled, first.params.get("bias")), *net.layers[1:]])


def _scaled_activation(layer, factor: float):
    """sigma_hat(t) = sigma(factor t) / factor for a power of two `factor` (exact), as the
    layer builds it (`Activation.rescaled`): a spline with its grid and values divided by
    factor, a knot spline with its points and values; the ReLU family and the identity are
    positively homogeneous (the same layer).  None when the scaled parameters would leave
    the spline's supported range or the normal float64 range (or the layer cannot be
    rescaled exactly)."""
    return layer.rescaled(factor)


def normalized_network(net: Network, box: float) -> tuple[Network, float, float, float]:
    """The network with every layer's values near 1 on the box, for solvers whose
    tolerances are absolute (HiGHS: 1e-6 on every row): (net_hat, box_hat, input scale a_0,
    output scale a_L) with f(x) = a_L f_hat(x / a_0) exactly, so Lip_p(f) = (a_L / a_0)
    Lip_p(f_hat) and a point u of [-box_hat, box_hat]^N_0 is x = a_0 u of the box.  a_0 =
    `input_scale(box)`; the pre-activations of dense layer l are divided by a power of two
    a_l near the largest interval bound of their |z_l| on the box, every activation up to
    the next dense layer replaced by sigma_hat(t) = sigma(a_l t) / a_l
    (`_scaled_activation`: same slopes, knots and values / a_l) and the next weights
    multiplied by a_l: every factor a power of two, every product exact (a block whose
    scaling would leave the float64 normal range keeps a_l = 1).  a_L is the last one."""
    a_in = input_scale(box)
    layers = list(scaled_input(net, a_in).layers)
    if layers[0].is_activation:               # an activation first: its block starts at I
        layers.insert(0, Dense(np.eye(net.n_in)))
    box_hat = box / a_in
    lo, hi = np.full(net.n_in, -box_hat), np.full(net.n_in, box_hat)
    carry, out, i = 1.0, [], 0                # carry: the scale of the values entering
    while i < len(layers):
        w = layers[i].params["weight"] * carry
        b = layers[i].params.get("bias")
        j = i + 1
        while j < len(layers) and layers[j].is_activation:
            j += 1                            # the block: a dense layer, its activations
        centre = w @ ((lo + hi) / 2) + (0.0 if b is None else b)
        spread = np.abs(w) @ ((hi - lo) / 2)
        size = float(np.max(np.abs(centre) + spread, initial=0.0))
        factor = float(np.ldexp(1.0, int(np.round(np.log2(size))))) if size > 0 else 1.0
        scaled = [_scaled_activation(layer, factor) for layer in layers[i + 1:j]]
        if (any(layer is None for layer in scaled) or not _fits(w / factor)
                or (b is not None and not _fits(b / factor))):
            factor, scaled = 1.0, layers[i + 1:j]
        out.append(Dense(w / factor, None if b is None else b / factor))
        lo, hi = (centre - spread) / factor, (centre + spread) / factor
        for layer in scaled:
            out.append(layer)
            spl = knot_form(layer, len(lo))
            lo, hi = (np.array(v) for v in zip(*(_range(spl, n, lo[n], hi[n])
                                                 for n in range(len(lo)))))
        carry, i = factor, j
    return Network(out), box_hat, a_in, carry


def _fits(values: np.ndarray) -> bool:
    """Whether every nonzero value is a normal float64 (a scaling by a power of two was
    exact)."""
    values = np.asarray(values)
    return bool(np.all(np.isfinite(values))
                and not np.any((values != 0) & (np.abs(values) < np.finfo(float).tiny)))


def _range(spl: KnotSpline, n: int, lo: float, hi: float) -> tuple[float, float]:
    """min and max of sigma_n over [lo, hi] (at the ends and the knots inside)."""
    tau = spl.knots[n]
    pts = np.concatenate([[lo, hi], tau[(tau > lo) & (tau < hi)]])
    vals = spl.b0[n] + spl.b1[n] * pts + np.maximum(pts[:, None] - tau, 0.0) @ spl.jumps[n]
    return float(vals.min()), float(vals.max())


def tail_products(net: Network, p: float) -> tuple[np.ndarray, list, float]:
    """Per activation layer k (in order), the layer-wise bound of the map from its outputs to
    the network's output, prod_{j > k} ||diag(L_j) W_j||_{p->p} over the blocks of
    lipschitz.blocks (one per activation layer, a last one for a final dense layer without
    activation); the activation constants L_k (per block); and layerwise(net, p) = prod_j
    ||diag(L_j) W_j||_{p->p}.  Each block's norm is computed once."""
    parts = blocks(net)
    lips = [activation_constants(layer, w.shape[0])["lip"] for w, layer in parts]
    norms = [operator_norm(lip[:, None] * w, p) for lip, (w, _) in zip(lips, parts)]
    after = np.append(np.cumprod(norms[::-1])[::-1][1:], 1.0)            # prod_{j > k}
    return after, lips, float(np.prod(norms))


def tail_bounds(net: Network, p: float) -> tuple[np.ndarray, float]:
    """Per activation layer k (in order), the layer-wise bound of the map from its
    pre-activations to the output: max_n Lip(sigma_{n,k}) * prod_{j > k} ||diag(L_j) W_j||_{p->p}
    (`tail_products`); and layerwise(net, p)."""
    after, lips, total = tail_products(net, p)
    return np.array([float(np.max(lip)) for lip in lips]) * after, total


def finite_or_none(bound: float):
    """An upper bound as a float, or None when it is not finite (a closed-form bound beyond
    the float64 range: no upper bound is claimed)."""
    return float(bound) if np.isfinite(bound) else None


def jacobian_rounding(net: Network, p: float) -> float:
    """A bound on the rounding error of ||J||_{p->p} for any Jacobian of f computed in
    float64 as the product of its factors, J = W_L S_{L-1} W_{L-1} ... S_1 W_1 (S_l the
    diagonal of the activations' slopes on one linear region):
        | fl(||J||) - ||J|| | <= 2 gamma_n prod_l || diag(L_l) |W_l| ||_{p->p},
    gamma_n = n u / (1 - n u), u = 2^-53, n = sum_l (N_in,l + 3) + N_0 + N_L: the product's
    error is <= gamma |W_L| |S| ... |W_1| entrywise (each dot product of length N_in, each
    slope computed with relative error <= gamma_3), the norm of a nonnegative matrix is
    monotone in its entries and at most the product of the blocks' norms (|S_l| <= L_l), and
    the norm itself adds N_0 + N_L roundings; the factor 2 covers the rounding of this bound.
    For p in {1, inf} the product equals the layer-wise bound; inf when it overflows."""
    parts = blocks(net)
    n = sum(w.shape[1] + 3 for w, _ in parts) + net.n_in + net.n_out
    with np.errstate(over="ignore"):
        product = np.prod([operator_norm(activation_constants(layer, w.shape[0])["lip"][:, None]
                                         * np.abs(w), p) for w, layer in parts])
    return float(2 * gamma(n) * product)


def box_halfspaces(box: float, n0: int) -> tuple[np.ndarray, np.ndarray]:
    """The box [-box, box]^N_0 as A x <= b: A (2 N_0, N_0), b (2 N_0,)."""
    return np.vstack([np.eye(n0), -np.eye(n0)]), np.full(2 * n0, float(box))


def chebyshev_center(a_mat: np.ndarray, b_vec: np.ndarray) -> tuple[np.ndarray, float]:
    """The centre x and radius r of the largest l2 ball inside {y : A y <= b}: the LP
    max r s.t. A_i x + r ||A_i||_2 <= b_i (scipy.optimize.linprog, HiGHS).  A (R, N_0),
    b (R,); rows of A equal to 0 are left out (they hold or fail whatever x).  A region without
    interior (or an LP failure): ValueError."""
    norms = np.linalg.norm(a_mat, axis=1)
    keep = norms > 0
    n0 = a_mat.shape[1]
    with solver_output_silenced():
        res = scipy.optimize.linprog(np.r_[np.zeros(n0), -1.0],
                                     A_ub=np.column_stack([a_mat[keep], norms[keep]]),
                                     b_ub=b_vec[keep], bounds=[(None, None)] * n0 + [(0, None)],
                                     method="highs")
    if res.status != 0 or not res.x[-1] > 0:
        raise ValueError(f"a_mat, b_vec: expected a bounded region with an interior point "
                         f"({res.message})")
    return res.x[:-1], float(res.x[-1])


def chord_pair(net: Network, p: float, a_mat: np.ndarray, b_vec: np.ndarray,
               shrink: float = CHORD_SHRINK,
               x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """A witness pair inside a linear region R = {y : A y <= b} of f (convex, bounded, with an
    interior; f affine on it): x = its Chebyshev centre (`chebyshev_center`), v = the
    steepest direction of J(x) (`steepest_direction`), [t_lo, t_hi] = {t : A (x + t v) <= b}
    the chord of R through x, and
        x_a = x + shrink t_lo v,   x_b = x + shrink t_hi v,
    both in R (convex; shrink < 1 keeps them off its faces, against rounding), so that f is
    affine between them and ratio = ||f(x_b) - f(x_a)||_p / ||x_b - x_a||_p = ||J v||_p /
    ||v||_p = ||J||_{p->p} up to rounding, with a long difference (a small relative
    rounding).  A (R, N_0), b (R,) must bound R (add `box_halfspaces`).  x: a point strictly
    inside R to use instead of the Chebyshev centre (a region too thin for the LP's
    tolerances).  Returns (x_a, x_b, ratio re-evaluated with Network.forward, one point at a
    time)."""
    x = chebyshev_center(a_mat, b_vec)[0] if x is None else np.asarray(x, dtype=np.float64)
    v = steepest_direction(net.input_jacobian(x[None])[0], p)
    av, room = a_mat @ v, np.maximum(b_vec - a_mat @ x, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = room / av
    t_hi = float(np.min(steps[av > 0], initial=np.inf))
    t_lo = float(np.max(steps[av < 0], initial=-np.inf))
    if not (np.isfinite(t_hi) and np.isfinite(t_lo) and t_hi > t_lo):
        raise ValueError("a_mat, b_vec: expected a bounded region with an interior point")
    x_a, x_b = x + shrink * t_lo * v, x + shrink * t_hi * v
    if np.all(x_a == x_b):
        raise ValueError("a_mat, b_vec: the region's chord is shorter than float64 resolves")
    diff = net.forward(x_b[None])[0] - net.forward(x_a[None])[0]
    return x_a, x_b, vector_norm(diff, p) / vector_norm(x_b - x_a, p)
