"""The one-sided rule of the oracle (reference.oracle): at a kink an implementation may take the
piece on either side, so a Jacobian row or a parameter gradient with a pre-activation on a
kink is compared with the reference's answer for each choice of side.

A pre-activation z is on a kink tau when |z - tau| <= max(knot_tol max(|z|_mag, |tau|), snap),
with |z|_mag the magnitude of z (|W| |y| + |b| propagated from |x|,
reference.oracle._magnitudes: the scale of z's rounding in any float64 implementation) and snap
= knot_snap T, the width below a grid point that a uniform spline of step T puts on it
(reference.nn._linear_spline; 0 for the other
layers) (`kink_masks`): the window is relative to the pre-activation's own scale and to the
knot's position, so a ReLU network whose pre-activations are all 1e-12 has windows ~1e-21,
not a window of 1e-9 that holds every sample.  A Jacobian row with such a pre-activation
passes when it matches the Jacobian of some choice of left / right piece at each of its kinks
(`kink_choices`: every choice when the row has <= MAX_ENUMERATED_KINKS kinks, else all-left
and all-right; `jacobian_candidates`); a
parameter-gradient entry passes when it lies (within the tolerance) in the range of the sums
of such per-row choices (`gradient_range`, `Spread`).  knot_tol is refused above
KNOT_TOL_MAX, or when the window reaches KNOT_TOL_SPACING of the distance between two kinks
of a neuron (`check_knot_tol` for the part of the window the model fixes, |tau| and T;
`kink_masks` for each pre-activation on a kink, whose magnitude enters too): it stands for
rounding, and a wider window would let a wrong piece near a kink pass as a one-sided choice.
The comparisons themselves (compare_jacobian, compare_gradient) stay in reference.oracle
beside `compare`.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from reference._numerics import check_nonnegative
from reference.nn._network import Network
from reference.oracle._magnitudes import Magnitudes, forward_magnitudes, layer_widths

KNOT_TOL = 1e-9
KNOT_TOL_MAX = 1e-3           # a float32 implementation rounds at ~1e-7: the window is rounding
KNOT_TOL_SPACING = 0.01       # the window stays below 1% of the distance between two kinks
MAX_ENUMERATED_KINKS = 6      # rows with more kinks: only all-left and all-right are tried


def sides_from_masks(masks: list, side: int) -> list:
    """`sides` for Network.backward / input_jacobian: side (-1 or +1) on every kink."""
    return [None if m is None else (side * m).astype(np.int8) for m in masks]


def kink_rows(masks: list, m: int) -> np.ndarray:
    """(M,) bool: some pre-activation of the row is on a kink (masks: Network.kink_masks)."""
    return np.logical_or.reduce([np.zeros(m, bool)] + [k.any(axis=1) for k in masks
                                                          if k is not None])


def check_tolerance(value, name: str) -> float:
    """value as a float: a finite number >= 0 (ValueError naming `name` otherwise)."""
    return check_nonnegative(value, name)


def check_knot_tol(net: Network, knot_tol, name: str = "knot_tol") -> float:
    """knot_tol as a float, refused (ValueError naming `name`) when it is not a finite number
    in [0, KNOT_TOL_MAX] or when the part of the window the model fixes, max(knot_tol |tau|,
    snap) at some kink tau, reaches KNOT_TOL_SPACING times the distance to the next kink of
    its neuron (the part the inputs add is checked by `kink_masks`)."""
    knot_tol = check_tolerance(knot_tol, name)
    if knot_tol > KNOT_TOL_MAX:
        raise ValueError(f"{name}: expected at most {KNOT_TOL_MAX:g} (the kink window stands for "
                         f"rounding; a float32 implementation needs ~1e-7), got {knot_tol:g}")
    widths = layer_widths(net)
    for i, layer in enumerate(net.layers):
        if not layer.is_activation:
            continue
        for n, (tau, _, _) in enumerate(layer.kinks(widths[i])):
            if len(tau) < 2:
                continue
            gap = np.diff(tau)
            nearest = np.minimum(np.r_[np.inf, gap], np.r_[gap, np.inf])     # (n_k,)
            window = np.maximum(knot_tol * np.abs(tau), layer.kink_snap)
            if np.any(window >= KNOT_TOL_SPACING * nearest):
                j = int(np.argmax(window / nearest))
                with np.errstate(divide="ignore"):
                    limit = float(np.min(KNOT_TOL_SPACING * nearest / np.abs(tau)))
                raise ValueError(
                    f"{name}: {knot_tol:g} makes the kink window of layer {i} ({layer.kind}), "
                    f"neuron {n}, at tau = {tau[j]:.6g} ({window[j]:.3g}) reach "
                    f"{KNOT_TOL_SPACING:g} of the distance {nearest[j]:.3g} to the next kink: "
                    "pre-activations near a kink would pass with either side; expected "
                    f"{name} < {limit:.3g} for this model")
    return knot_tol


def kink_masks(net: Network, caches: list, mags: Magnitudes, knot_tol: float,
               name: str = "knot_tol") -> list:
    """Per layer: None (dense) or the (M, N_i) bool mask of pre-activations on a kink,
    |z - tau| <= max(knot_tol max(|z|_mag, |tau|), snap) (Activation.kink_windows with the
    magnitudes `mags` of reference.oracle._magnitudes); -mask / +mask as int8 are the `sides` of the
    left / right one-sided derivatives.

    Raises
    ------
    ValueError
        naming `name`, the layer, neuron and sample, when the window of a pre-activation on
        a kink reaches KNOT_TOL_SPACING of the distance to the next kink of its neuron."""
    masks: list[np.ndarray | None] = []
    for i, (layer, z) in enumerate(zip(net.layers, caches)):
        if not layer.is_activation:
            masks.append(None)
            continue
        mask, window, spacing = layer.kink_windows(z, knot_tol, mags.inputs[i])
        wide = mask & (window >= KNOT_TOL_SPACING * spacing)
        if np.any(wide):
            m, n = (int(k) for k in np.argwhere(wide)[0])
            limit = np.min(KNOT_TOL_SPACING * spacing[wide] / (window[wide] / knot_tol))
            raise ValueError(
                f"{name}: {knot_tol:g} makes the kink window of layer {i} ({layer.kind}), "
                f"neuron {n}, at sample {m} ({window[m, n]:.3g}: z = {z[m, n]:.6g}, of "
                f"magnitude |W| |y| + |b| = {mags.inputs[i][m, n]:.3g}) reach "
                f"{KNOT_TOL_SPACING:g} of the distance {spacing[m, n]:.3g} to the next kink: "
                f"that sample would pass with either side; expected {name} < {limit:.3g} for "
                "these inputs")
        masks.append(mask)
    return masks


class ForwardPass:
    """One forward pass of net at x, shared by the reference answers and the check (and a
    command's --knot-tol check): x (M, N_0) as checked, outputs (M, N_L), caches (per layer,
    its input: Network.forward(keep_cache=True)); `mags` (reference.oracle._magnitudes) and `masks`
    (`kink_masks` at knot_tol, errors naming `name`) computed when first asked for.

    Raises
    ------
    ValueError
        naming `name`, for a knot_tol `check_knot_tol` refuses (and, from `masks`, one whose
        window reaches KNOT_TOL_SPACING of the distance between two kinks at some sample).
    OverflowResult
        from the forward pass, naming x and the layer."""

    def __init__(self, net: Network, x, knot_tol: float = KNOT_TOL, name: str = "knot_tol"):
        self.net, self.name = net, name
        self.knot_tol = check_knot_tol(net, knot_tol, name)
        self.x = net.check_inputs(x)
        self.outputs, self.caches = net.forward(self.x, keep_cache=True)
        self._mags: Magnitudes | None = None
        self._masks: list | None = None

    @property
    def mags(self) -> Magnitudes:
        if self._mags is None:
            self._mags = forward_magnitudes(self.net, self.x)
        return self._mags

    @property
    def masks(self) -> list:
        if self._masks is None:
            self._masks = kink_masks(self.net, self.caches, self.mags, self.knot_tol, self.name)
        return self._masks

    def match_knot_tol(self, knot_tol) -> None:
        """ValueError when a caller's knot_tol is not the one this pass was made with."""
        if check_tolerance(knot_tol, "knot_tol") != self.knot_tol:
            raise ValueError(f"forward: computed with knot_tol {self.knot_tol:g}, asked for "
                             f"{float(knot_tol):g}")


def kink_choices(masks: list) -> dict:
    """Per row with kinks: (elements [(layer, neuron)], choices (C, k) of -1 / +1): every
    choice for k <= MAX_ENUMERATED_KINKS kinks, else all-left and all-right."""
    rows: dict[int, list[tuple[int, int]]] = {}
    for i, m in enumerate(masks):
        if m is not None:
            for row, neuron in zip(*np.nonzero(m)):
                rows.setdefault(int(row), []).append((i, int(neuron)))
    result = {}
    for row, elements in rows.items():
        k = len(elements)
        choices = (np.array(list(itertools.product((1, -1), repeat=k)), dtype=np.int8)
                   if k <= MAX_ENUMERATED_KINKS else np.array([[1] * k, [-1] * k], np.int8))
        result[row] = (elements, choices)
    return result


def _choice_sides(net: Network, widths: list, elements, choices) -> list:
    """`sides` (C, N_i) per layer for the choices of one row."""
    sides = [None if not l.is_activation else np.zeros((len(choices), w), np.int8)
             for l, w in zip(net.layers, widths)]
    for col, (layer, neuron) in enumerate(elements):
        sides[layer][:, neuron] = choices[:, col]
    return sides


def choice_label(choice) -> str:
    return "right" if np.all(choice > 0) else "left" if np.all(choice < 0) else "mixed"


def jacobian_candidates(net, x, caches, choices: dict) -> dict:
    """row -> (labels, Jacobians (C, N_L, N_0)) of its one-sided choices."""
    widths = [c.shape[1] for c in caches]
    result = {}
    for row, (elements, options) in choices.items():
        sides = _choice_sides(net, widths, elements, options)
        jac = net.input_jacobian(np.repeat(x[row:row + 1], len(options), axis=0), sides)
        result[row] = ([choice_label(c) for c in options], jac)
    return result


class Spread(NamedTuple):
    """The one-sided choices of a parameter-gradient array: center, the full gradient with
    the side of every row that input_jacobian pins to one choice (the reference's own side
    elsewhere); low, high (like the array): the range, relative to center, of the sums over
    the other kink rows of their choices; affected: some choice changes the array at all;
    pinned: kink rows whose choices input_jacobian narrowed."""
    center: np.ndarray
    low: np.ndarray
    high: np.ndarray
    affected: bool
    pinned: int


def gradient_range(net: Network, caches: Sequence[NDArray[np.float64]],
                   grad_out: NDArray[np.float64],
                   choices: Mapping[int, tuple[list, NDArray[np.int8]]],
                   names: Mapping[str, str],
                   allowed: Mapping[int, NDArray[np.bool_]] | None = None,
                   extra: Mapping[str, NDArray[np.float64]] | None = None) -> dict[str, Spread]:
    r"""The range of a parameter gradient over the one-sided choices at the kinks.

    Parameters
    ----------
    net : Network
        The network.
    caches : sequence of ndarray
        The input of each layer, (n_samples, N_i) (``Network.forward(keep_cache=True)``).
    grad_out : ndarray of shape (n_samples, n_out)
        The weights g_m of the outputs: the gradient is that of
        :math:`\sum_m g_m \cdot f(x_m)` (ones for param_gradients, dE/df for the objective).
    choices : mapping of int to tuple
        Row m -> (elements, options) of `kink_choices`: the (layer, neuron) pairs on a
        kink and the side choices, an int8 array of shape (n_choices, n_kinks) of -1 / +1.
    names : mapping of str to str
        Own parameter name -> the name used for it in the result.
    allowed : mapping of int to ndarray, optional
        Row -> (1 + n_choices,) bool: the choices of that row (index 0 the reference's own)
        its input_jacobian matched; the other rows range over every choice.
    extra : mapping of str to ndarray, optional
        Own name -> a gradient added to the center (the objective's 2 mu W and
        lambda grad R).

    Returns
    -------
    spreads : dict of str to Spread
        Name -> ``Spread(center, low, high, affected, pinned)``: the gradient with the side
        of every pinned row (the reference's own side elsewhere), the range [low, high]
        relative to center (like the array) of the sums over the other kink rows of their
        choices, whether any choice changes the array, and the number of pinned rows.

    Notes
    -----
    With :math:`\delta_m^{(c)}` the change of row m's gradient when it takes choice c, an
    entry passes the one-sided rule when it lies, within the tolerance, in

    .. math::

        \Bigl[\mathrm{center} + \sum_m \min_{c} \delta_m^{(c)},\
        \mathrm{center} + \sum_m \max_{c} \delta_m^{(c)}\Bigr].

    A row pinned to one choice enters the center through one backward pass of all rows
    with their sides, so an exact comparison carries no rounding of per-row differences.
    """
    widths = [c.shape[1] for c in caches]
    allowed = allowed or {}
    sides = [None if not l.is_activation else np.zeros((len(grad_out), w), np.int8)
             for l, w in zip(net.layers, widths)]
    low: dict[str, np.ndarray]                       # entry-wise bounds of the gradients
    high: dict[str, np.ndarray]
    affected: dict[str, bool]
    low, high, affected = {}, {}, {}
    for row, (elements, options) in choices.items():
        one = [c[row:row + 1] for c in caches]
        _, base = net.backward(one, grad_out[row:row + 1])
        keep = allowed.get(row, np.ones(1 + len(options), dtype=bool))
        deltas = {k: [np.zeros_like(v)] for k, v in base.items()}   # the reference's choice
        for option in options:
            _, grads = net.backward(one, grad_out[row:row + 1],
                                    _choice_sides(net, widths, elements, option[None, :]))
            for k in base:
                deltas[k].append(grads[k] - base[k])
        unique = int(np.flatnonzero(keep)[0]) if keep.sum() == 1 else None
        if unique:                                        # one choice, not the reference's
            for col, (layer, neuron) in enumerate(elements):
                sides[layer][row, neuron] = options[unique - 1][col]
        for k, parts in deltas.items():
            d = np.stack(parts)
            affected[k] = affected.get(k, False) or bool(np.any(d != 0))
            spread = np.zeros_like(d[0]) if unique is not None else d[keep]
            low[k] = low.get(k, 0) + spread.min(axis=0)
            high[k] = high.get(k, 0) + spread.max(axis=0)
    _, center = net.backward(caches, grad_out, sides)
    for k, g in (extra or {}).items():
        center[k] = center[k] + g
    pinned = sum(row in allowed for row in choices)
    return {names[k]: Spread(center[k], low[k], high[k], affected[k], pinned) for k in low}
