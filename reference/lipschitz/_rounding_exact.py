"""Rounding-error bounds of the forward pass, for the certificates of the exact methods and
of the verdicts (a leaf: reference.lipschitz._verdict, reference.lipschitz._regions2d,
reference.lipschitz._exact and reference.lipschitz._milp import it).

`forward_errors` runs Network.forward's own layers on exact (float64) inputs and carries a
running error analysis: after every layer, the computed values and a bound on their distance
to the exact model's values (reference.lipschitz._pieces: the float64 parameters read as rationals).
`forward_error_bound` is its last layer, doubled; `robust_pieces` uses the pre-activations
to decide, at given points, the exact model's activation pattern: where every
pre-activation lies inside a piece by more than its error bound, the exact pattern at the
point is the computed one (and f is affine with that pattern's Jacobian around it).
"""
from __future__ import annotations

import numpy as np

from reference._numerics import gamma
from reference.lipschitz._bounds import activation_constants
from reference.nn._network import Network


def activation_error(layer, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A bound on |computed sigma(z) - sigma(z)| for the computed input z (M, N), output y,
    as the layer states it (`Activation.forward_error`): ReLU and identity exact; LeakyReLU
    / PReLU one product, u |y|; uniform splines the kernels' stated bound
    (reference.nn._linear_spline); knot splines gamma_6 (max|v| + max|s| (|z| + max|p|)).
    TypeError for a layer that states none."""
    return layer.forward_error(z, y)


def forward_errors(net: Network, x: np.ndarray):
    """Yield (layer index, layer, computed input y (M, N_in), its error bound, computed
    output (M, N_out), its error bound) for every layer of Network.forward at exact inputs
    x (M, N_0), by a running error analysis:
        dense      e_z = |W| e_y + gamma_{N_in + 1} (|W| (|y| + e_y) + |b|)
                   (any summation order, fused or not);
        activation e_y = Lip(sigma_n) e_z + the evaluation error at the computed z
                   (`activation_error`)."""
    y = np.asarray(x, dtype=np.float64)
    err = np.zeros_like(y)
    for i, layer in enumerate(net.layers):
        out = layer.forward(y)[0]
        if not layer.is_activation:
            w = np.abs(layer.params["weight"])
            b = np.abs(layer.params.get("bias", 0.0))
            new = err @ w.T + gamma(w.shape[1] + 1) * ((np.abs(y) + err) @ w.T + b)
        else:
            lip = activation_constants(layer, y.shape[1])["lip"]
            new = lip * err + activation_error(layer, y, out)
        yield i, layer, y, err, out, new
        y, err = out, new


def forward_error_bound(net: Network, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f(x) as Network.forward computes it, (M, N_L), and a bound on its rounding error,
    entrywise (M, N_L) (`forward_errors`); the bound is doubled to cover the rounding of
    its own computation."""
    out, err = np.asarray(x, dtype=np.float64), np.zeros(np.shape(x))
    for *_, out, err in forward_errors(net, x):
        pass
    return out, 2.0 * err


def robust_pieces(net: Network, x: np.ndarray, tables: dict,
                  flat: list | None = None) -> tuple[list, np.ndarray]:
    """The exact model's activation pattern at the points x (M, N_0), where floating point
    decides it: per activation layer the piece of every neuron (M, W) (searchsorted on the
    computed pre-activation), and robust (M,) bool, True where every pre-activation z lies
    inside its piece by more than 2 e + gamma_4 (|z| + max|knot|) + knot error (+ the
    kernels' snap width below a knot), e its running error bound (`forward_errors`).  There
    the exact pre-activations lie strictly inside the same pieces: f is affine near x with
    that pattern's Jacobian, and the network's computed Jacobian takes the same pieces.  tables:
    {layer index: reference.lipschitz._pieces.PieceTable}; flat: per activation layer, (M, W) bool,
    True for a neuron whose pre-activation is constant around the point in the exact model (its
    weight row through the pattern is exactly 0): it needs no margin (f is affine around x whichever
    piece it takes, and it takes the piece right of a knot it sits on, as everywhere)."""
    robust = np.ones(len(x), dtype=bool)
    patterns: list[np.ndarray] = []
    for i, layer, z, err, _, _ in forward_errors(net, x):
        if not layer.is_activation:
            continue
        table = tables[i]
        pieces = np.zeros(z.shape, dtype=np.int64)
        for n in range(table.width):
            knots, knot_error = table.knots[n], table.knot_error[n]
            k = np.searchsorted(knots, z[:, n], side="right")
            pieces[:, n] = k
            if len(knots) == 0:
                continue
            margin = 2 * err[:, n] + gamma(4) * (np.abs(z[:, n]) + np.abs(knots).max())
            below = np.where(k > 0, z[:, n] - knots[np.maximum(k - 1, 0)]
                             - knot_error[np.maximum(k - 1, 0)], np.inf)
            above = np.where(k < len(knots), knots[np.minimum(k, len(knots) - 1)]
                             - knot_error[np.minimum(k, len(knots) - 1)] - z[:, n]
                             - table.snap[n], np.inf)
            ok = (below > margin) & (above > margin)
            if flat is not None:
                ok |= flat[len(patterns)][:, n]
            robust &= ok
        patterns.append(pieces)
    return patterns, robust
