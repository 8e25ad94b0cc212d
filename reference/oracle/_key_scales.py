"""The scale S of an answer key: what `check` (reference.oracle) and the conformance grader
(reference.conformance) multiply atol by, |theirs - ours| <= atol S + rtol |ours|.

    S = max(max |ours| over the key, the key's magnitude)

The magnitude of a key is the scale of the terms a correct implementation sums to compute it,
hence of its float64 rounding (reference.oracle._magnitudes: the same quantity computed with |W|,
|b|, Lip and |x|, or the unit a solve is certified in):
    outputs, layer{i}/output       max of the twin's magnitude of that output
    input_jacobian*, lipschitz_*   max entry of prod_l |W_l| diag(Lip_l) (`jacobian_scale`)
    tv2/{i}, bv2/{i}               max Lip over the layer's neurons
    param_gradients/NAME           the twin's backward pass with |dE/df| (`parameter_scales`;
    objective_gradients/NAME       dE/df = 1 for param_gradients), plus max |the weight
                                   decay's and regulariser's own gradient|
    objective, objective/*         0: each is a sum of terms >= 0, its own scale (where it
                                   is 0, e.g. mu = 0: J, the largest of the objective keys)
    solve/objective                U = T^2, T = reference.certify.output_scale of the solve
    solve/* (fitted values, ...)   T (the solve's own unit: its certificate is relative to U)
    on_kink, any other key         0 (S = max |ours|)
Where the terms of a key cancel (outputs ~5e-9 summed from terms ~5), max |ours| alone gave a
tolerance far below the rounding of another correct float64 implementation (6e-18 against a
difference of 9e-16); with the magnitude, atol is a fraction of the rounding's scale.  Such
a key cannot then tell a zero answer from a right one at that atol: the comparison marks the
row unresolved (reference.oracle.compare) rather than passing it silently.  Every magnitude
scales with the network as its quantity does, so S does too, and a zero or negated answer
fails on a network whose outputs are 1e-12 exactly as on one whose outputs are 1.
"""
from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from reference.convex._certify import output_scale
from reference.convex._solve import split_at
from reference.nn._losses import check_targets
from reference.nn._network import Network
from reference.oracle._magnitudes import (
    Magnitudes,
    clamp,
    forward_magnitudes,
    jacobian_scale,
    parameter_scales,
)

SOURCES = ("reference", "magnitude")     # which side of max(max |ours|, magnitude) S is


def array_scale(values) -> float:
    """max |values| (0 for an empty array), as a float."""
    return float(np.max(np.abs(np.asarray(values, dtype=np.float64)), initial=0.0))


def is_objective_key(key: str) -> bool:
    return key == "objective" or key.startswith(("objective/", "objective_gradients/"))


def solve_unit(net: Network, layer: int, loss: str, targets) -> float:
    """T = reference.certify.output_scale(loss, y, c) of the coefficient solve of `layer`
    (c the bias of the affine map after it; y the targets as (M, N_L)): the unit of the
    solve's outputs, U = T^2 that of its objective."""
    _, _, _, c = split_at(net, layer)
    y = np.asarray(targets, dtype=np.float64)
    return output_scale(loss, check_targets(loss, (len(y), net.n_out), y), c)


class KeyScales:
    """scales[key] -> (S, source): S = max(max |ours[key]|, `magnitude(key)`), source
    'reference' when max |ours| is the larger, else 'magnitude' (see the module docstring).

    Parameters
    ----------
    net : Network
    x : array (M, N_0)
        The inputs the answers are for.
    ours : mapping
        key -> this reference's answer (reference.oracle.reference_answers, or a
        conformance case's answers).
    mags : Magnitudes, optional
        forward_magnitudes(net, x) when the caller has it.
    own_names : dict, optional
        file name -> own parameter name 'layer{i}.{key}' (identity when None).
    objective_gradient : (grad_out (M, N_L), extra {own name: array}), optional
        dE/df of the objective's loss at the outputs, and the part of dJ/dNAME that does not
        pass through the outputs (reference.oracle.objective_extra_grads).
    unit : float, optional
        T of a solve case (`solve_unit`)."""

    def __init__(self, net: Network, x, ours: Mapping, *, mags: Magnitudes | None = None,
                 own_names: dict | None = None, objective_gradient: tuple | None = None,
                 unit: float | None = None):
        self.net, self.x, self.ours = net, x, ours
        self._mags = mags
        self.own_names = own_names
        self.objective_gradient, self.unit = objective_gradient, unit
        self._parameters: dict[str, dict[str, float]] = {}
        self._jacobian: float | None = None

    @property
    def mags(self) -> Magnitudes:
        """forward_magnitudes(net, x), computed when first needed."""
        if self._mags is None:
            self._mags = forward_magnitudes(self.net, self.x)
        return self._mags

    def __getitem__(self, key: str) -> tuple:
        ours, magnitude = array_scale(self.ours[key]), self.magnitude(key)
        return (ours, SOURCES[0]) if ours >= magnitude else (magnitude, SOURCES[1])

    def magnitude(self, key: str) -> float:
        """The magnitude of the quantity `key` (0 for on_kink and unknown keys)."""
        if key.startswith("solve/"):
            return (0.0 if self.unit is None
                    else float(clamp(self.unit ** 2 if key == "solve/objective" else self.unit)))
        if is_objective_key(key) and not key.startswith("objective_gradients/"):
            if array_scale(self.ours[key]) > 0:
                return 0.0                           # a sum of terms >= 0: its own scale
            return max(array_scale(v) for k, v in self.ours.items()
                       if k == "objective" or k.startswith("objective/"))
        mags = self.mags
        if key == "outputs":
            return float(mags.outputs.max(initial=0.0))
        if re.fullmatch(r"layer\d+/output", key):
            i = int(key[len("layer"):].split("/")[0])
            return float((mags.inputs + [mags.outputs])[i + 1].max(initial=0.0))
        if key.startswith(("input_jacobian", "lipschitz_")):
            if self._jacobian is None:
                self._jacobian = jacobian_scale(self.net, mags)
            return self._jacobian
        if key.startswith(("tv2/", "bv2/")):
            return float(mags.lip[int(key.split("/")[1])].max(initial=0.0))
        if key.startswith(("param_gradients/", "objective_gradients/")):
            prefix, name = key.split("/", 1)
            own = name if self.own_names is None else self.own_names[name]
            return self._parameter_scales(prefix)[own]
        return 0.0

    def _parameter_scales(self, prefix: str) -> dict:
        if prefix not in self._parameters:
            if prefix == "param_gradients":
                grad_out, extra = np.ones_like(self.mags.outputs), {}
            elif self.objective_gradient is None:
                raise ValueError(f"{prefix}: the scale of an objective gradient needs the "
                                 "objective (objective_gradient)")
            else:
                grad_out, extra = self.objective_gradient
            scales = parameter_scales(self.net, self.mags, grad_out)
            with np.errstate(over="ignore"):
                self._parameters[prefix] = {k: float(clamp(v + array_scale(extra.get(k, 0.0))))
                                            for k, v in scales.items()}
        return self._parameters[prefix]
