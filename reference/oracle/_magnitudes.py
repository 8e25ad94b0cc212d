"""Magnitudes: the scale of every quantity of a network's forward and backward pass, from its
parameters and inputs alone (reference.oracle's tolerances and kink windows).

The magnitude twin of a network replaces every dense layer z = W y + b by |W| y + |b| and every
activation sigma_n by the bound |sigma_n(z)| <= |sigma_n(0)| + Lip(sigma_n) |z|; run on |x| it
gives, per sample and neuron, an upper bound of |z| and |y|.  It is also the scale of the
rounding of any float64 implementation: computing z = W y + b rounds by at most
gamma_n (|W| |y| + |b|), and those errors propagate through |W| and Lip, so that the error of
a correct implementation in layer k is a small multiple of eps times the twin's magnitude
there (gamma_n = n eps / (1 - n eps)).  Backwards, |W|^T and Lip carry the magnitude of the
output gradient, which bounds the terms summed in every parameter gradient.

Where the twin leaves the float64 range (W = [1e308, -1e308] on two equal neurons: the
outputs cancel to 0, the magnitude is 3e308), it is clamped at the largest float64, FLOAT_MAX
(`clamp`), and `Magnitudes.clamped` names the layers: a tolerance or kink window taken from
a clamped magnitude is at most as wide as the true one (a stricter check, never a looser
one), and the reports say so.

Every magnitude scales as its quantity does: multiplying the inputs by a, the pre-activations
of layer k by s_k and its outputs by t_k (dense weights by s_k / t_{k-1}, biases by s_k,
spline grids by s_k and values by t_k) multiplies the magnitude of z_k by s_k, of y_k by t_k,
of the input Jacobian by t_L / a and of each parameter gradient by t_L / (the parameter's
factor), exactly as the quantities themselves.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reference.nn._network import Network

VALUE_PARAMETERS = ("coefficients", "values")   # enter sigma linearly: sum_m |delta| bounds them
FLOAT_MAX = float(np.finfo(np.float64).max)


def clamp(values):
    """values (>= 0, inf where a sum overflowed) with inf replaced by FLOAT_MAX."""
    return np.minimum(values, FLOAT_MAX)


def layer_widths(net: Network) -> list:
    """The width of every layer's input, (len(layers),), and then of the outputs."""
    widths, width = [], net.n_in
    for layer in net.layers:
        widths.append(width)
        width = layer.n_out if layer.n_out is not None else width
    return widths + [width]


class Magnitudes(NamedTuple):
    """The magnitude twin's forward pass: inputs[i] (M, N_i) bounds |input of layer i| (for an
    activation layer: the pre-activations), outputs (M, N_L) bounds |f(x)|; per activation
    layer i, value0[i] = |sigma_n(0)| and lip[i] = Lip(sigma_n), each (N_i,) (None for a
    dense layer); clamped: the indices of the layers whose output magnitude left the
    float64 range and was clamped at FLOAT_MAX (see the module docstring)."""
    inputs: list
    outputs: np.ndarray
    value0: list
    lip: list
    clamped: tuple = ()

    def clamped_note(self, net: Network) -> str | None:
        """The sentence a report prints when some magnitude was clamped (None otherwise)."""
        if not self.clamped:
            return None
        layers = ", ".join(f"{i} ({net.layers[i].kind})" for i in self.clamped)
        return (f"the magnitude |W| |y| + |b| leaves the float64 range after layer {layers}: "
                f"clamped at {FLOAT_MAX:.2g} there, so the tolerances and kink windows taken "
                "from it are at most that wide (stricter than the true magnitude's)")


def forward_magnitudes(net: Network, x) -> Magnitudes:
    """The twin's forward pass on |x| (M, N_0) (see the module docstring); a magnitude beyond
    the float64 range is clamped at FLOAT_MAX and its layer listed in `clamped`."""
    x = net.check_inputs(x)
    widths = layer_widths(net)
    a, inputs, value0, lip, clamped = np.abs(x), [], [], [], []
    for i, layer in enumerate(net.layers):
        inputs.append(a)
        with np.errstate(over="ignore"):
            if not layer.is_activation:
                value0.append(None)
                lip.append(None)
                a = a @ np.abs(layer.params["weight"]).T
                if "bias" in layer.params:
                    a = a + np.abs(layer.params["bias"])
            else:
                c0 = clamp(np.abs(layer.forward(np.zeros((1, widths[i])))[0][0]))
                slope = clamp(np.asarray(layer.constants(widths[i])["lip"], dtype=np.float64))
                value0.append(c0)
                lip.append(slope)
                a = c0 + slope * a
        if not np.all(np.isfinite(a)):
            a = clamp(a)                   # finite inputs: only +inf, never NaN
            clamped.append(i)
    return Magnitudes(inputs, a, value0, lip, tuple(clamped))


def jacobian_scale(net: Network, mags: Magnitudes) -> float:
    """max entry of prod_l |W_l| diag(Lip_l), (N_L, N_0): the magnitude of d f / dx."""
    product = np.eye(net.n_in)
    with np.errstate(over="ignore"):
        for layer, slope in zip(net.layers, mags.lip):
            product = clamp(np.abs(layer.params["weight"]) @ product
                            if not layer.is_activation else slope[:, None] * product)
    return float(product.max(initial=0.0))


def parameter_scales(net: Network, mags: Magnitudes, grad_out) -> dict:
    """Own parameter name 'layer{i}.{key}' -> the magnitude of the gradient of
    sum_m g_m . f(x_m) with respect to it, g = grad_out (M, N_L): the twin's backward pass
    with |g|.  Dense weight: max of delta^T a (a the twin's inputs, delta its gradients at
    the layer's outputs); bias, spline coefficients, knot-form values: max sum_m delta;
    PReLU slope: max sum_m delta a; knot-form points: max Lip sum_m delta."""
    delta = clamp(np.abs(np.asarray(grad_out, dtype=np.float64)))
    scales = {}
    with np.errstate(over="ignore"):
        for i in reversed(range(len(net.layers))):
            layer, a = net.layers[i], mags.inputs[i]
            summed = delta.sum(axis=0)
            for key in layer.params:
                if not layer.is_activation:
                    value = delta.T @ a if key == "weight" else summed
                elif key in VALUE_PARAMETERS:
                    value = summed
                elif key == "points":
                    value = mags.lip[i] * summed
                else:                                   # a slope: d sigma / d a = min(z, 0)
                    value = (delta * a).sum(axis=0)
                scales[f"layer{i}.{key}"] = float(np.max(clamp(value), initial=0.0))
            delta = clamp(delta @ np.abs(layer.params["weight"]) if not layer.is_activation
                          else delta * mags.lip[i])
    return scales
