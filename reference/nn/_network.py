"""Layers and networks with hand-written backpropagation (the losses: reference.losses).

Network: z_l = W_l y_{l-1} + b_l, y_l = sigma_l(z_l), stored as a flat list of layers
(Dense, then an activation, ...).  Arrays are row-major batches: an input batch is (M, N_0).
Every layer implements
    forward(x) -> (y, cache)                 x (M, N_in), y (M, N_out)
    backward(cache, grad_y, side=None) -> (grad_x, {param_name: grad})
    jacobian_step(cache, J, side=None) -> J'  J (M, N_in, N_0) -> (M, N_out, N_0)
and exposes `params` (name -> array, updated in place by optimisers).

The activation layers and their registry live in reference.activations; every public name
there is re-exported here (`from reference.network import ReLU` works).  Dense has `to_entry` /
`from_entry` like the activations (`layer_types()` lists every kind of the model file).
"""
from __future__ import annotations

import numpy as np

from reference._checks import OverflowResult, as_finite_array, check_choice
from reference.nn._activations import (  # noqa: F401  (re-exported)
    ACTIVATION_TYPES, ACTIVATIONS, NO_PARAMS, Activation, Identity, KnotSplineActivation,
    LeakyReLU, PReLU, Ramp, ReLU, SplineActivation, kinks_from_slopes,
    make_activation, nearest_index, register)


class Dense:
    """z = x W^T + b; weight (N_out, N_in), bias (N_out,) or None."""
    kind = "dense"
    format_version = 1       # the model-file format version that introduced the kind
    # the layer protocol (see reference.nn._activations.Activation): not neuron-wise
    is_activation = is_identity = is_spline = uniform_grid = False

    def __init__(self, weight, bias=None):
        weight = as_finite_array(weight, "weight", ndim=2)
        if min(weight.shape) < 1:
            raise ValueError(f"weight: expected shape (N_out, N_in) with N_out, N_in >= 1, "
                             f"got {weight.shape}")
        self.params = {"weight": weight}
        if bias is not None:
            bias = as_finite_array(bias, "bias", ndim=1)
            if bias.shape != (weight.shape[0],):
                raise ValueError(f"bias: expected shape ({weight.shape[0]},), got {bias.shape}")
            self.params["bias"] = bias

    @property
    def n_in(self):
        return self.params["weight"].shape[1]

    @property
    def n_out(self):
        return self.params["weight"].shape[0]

    def forward(self, x):
        z = x @ self.params["weight"].T
        if "bias" in self.params:
            z += self.params["bias"]
        return z, x

    def backward(self, x, grad_z, side=None):
        """grad_x = grad_z W, grad_W = grad_z^T x, grad_b = sum_m grad_z (no kinks: `side`
        is ignored)."""
        grads = {"weight": grad_z.T @ x}
        if "bias" in self.params:
            grads["bias"] = grad_z.sum(axis=0)
        return grad_z @ self.params["weight"], grads

    def jacobian_step(self, x, jac, side=None):
        return np.einsum("oi,mij->moj", self.params["weight"], jac)

    def describe_entry(self, param: str, entry: tuple) -> str:
        """What entry `entry` of the parameter array `param` is, in words.

        Parameters
        ----------
        param : str
            'weight' or 'bias'.
        entry : tuple of int
            (output neuron, input) for the weight, (output neuron,) for the bias.

        Returns
        -------
        str
            'output neuron i, input j' or 'output neuron i (bias)'.
        """
        return (f"output neuron {entry[0]}"
                + (f", input {entry[1]}" if param == "weight" else " (bias)"))

    def to_entry(self, put) -> dict:
        """The model-file entry; put(key, array) stores an array and returns its NAME."""
        bias = put("bias", self.params["bias"]) if "bias" in self.params else None
        return {"type": "dense", "weight": put("weight", self.params["weight"]), "bias": bias}

    @classmethod
    def from_entry(cls, read):
        """The layer of a model-file entry; read.array(key, ndim) / read.number(key) are the
        validated fields, read.error(message) the error naming the layer."""
        weight = read.array("weight", 2)
        bias = read.entry.get("bias")
        if bias is not None:
            bias = read.array("bias", 1)
            if bias.shape != (weight.shape[0],):
                raise read.error(f"bias has shape {bias.shape}, expected "
                                 f"({weight.shape[0]},) to match weight {weight.shape}")
        return cls(weight, bias)



def layer_types() -> dict:
    """Every layer kind of the model file: dense, then the activations (the registry as it
    is now, kinds registered later included)."""
    return {Dense.kind: Dense, **ACTIVATION_TYPES}


class Network:
    """f(x) = layers[-1](...layers[0](x)); widths are checked when the network is built."""

    def __init__(self, layers):
        layers = list(layers)
        if not layers:
            raise ValueError("layers: expected at least one layer")
        width = None
        for i, layer in enumerate(layers):
            if width is not None and layer.n_in is not None and layer.n_in != width:
                raise ValueError(f"layers[{i}] ({layer.kind}): expected input width "
                                 f"{layer.n_in}, but the previous layer gives {width}")
            width = layer.n_out if layer.n_out is not None else width
        if layers[0].n_in is None:
            raise ValueError("layers[0]: the first layer must fix the input width "
                             "(a dense, spline or prelu layer)")
        self.layers = layers
        self.n_out = width

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    def named_params(self):
        """(name, array) for every parameter, names 'layer{i}.{param}' as in the model file."""
        for i, layer in enumerate(self.layers):
            for key, value in layer.params.items():
                yield f"layer{i}.{key}", value

    def check_inputs(self, x) -> np.ndarray:
        x = as_finite_array(x, "x", ndim=2)
        if x.shape[1] != self.n_in:
            raise ValueError(f"x: expected shape (M, {self.n_in}), got {x.shape}")
        return x

    def forward(self, x, keep_cache: bool = False):
        """f(x) for x (M, N_0) -> (M, N_L); with keep_cache, also the per-layer caches."""
        x = self.check_inputs(x)
        y, caches = x, []
        for layer in self.layers:
            y, cache = layer.forward(y)
            caches.append(cache)
        if not np.all(np.isfinite(y)):
            self._report_overflow(x)
        return (y, caches) if keep_cache else y

    def _report_overflow(self, x):
        """Raise OverflowResult naming the first layer and row whose output is not finite."""
        y = x
        for i, layer in enumerate(self.layers):
            y = layer.forward(y)[0]
            bad = ~np.all(np.isfinite(y), axis=1)
            if np.any(bad):
                raise OverflowResult(
                    f"x: layer {i} ({layer.kind}) overflows the float64 range at input row "
                    f"{int(np.argmax(bad))} (finite inputs and parameters, result beyond "
                    f"+-1.8e308); rescale the inputs or the parameters")

    __call__ = forward

    def backward(self, caches, grad_out, sides=None):
        """Backpropagate grad_out = dE/df (M, N_L) through the cached forward pass; `sides`
        (one per layer: None or (M, N_i) int8, see reference.one_sided.kink_masks) picks
        one-sided slopes.

        Returns (grad_x (M, N_0), {param name: gradient of the same shape})."""
        grads = {}
        g = grad_out
        sides = sides or [None] * len(self.layers)
        for i in reversed(range(len(self.layers))):
            g, layer_grads = self.layers[i].backward(caches[i], g, sides[i])
            for key, value in layer_grads.items():
                grads[f"layer{i}.{key}"] = value
        return g, grads

    def input_jacobian(self, x, sides=None) -> np.ndarray:
        """J[m] = d f(x_m) / d x, shape (M, N_L, N_0), by forward-mode propagation; `sides`
        as in `backward`."""
        y = self.check_inputs(x)
        layers = list(zip(self.layers, sides or [None] * len(self.layers)))
        if isinstance(self.layers[0], Dense):  # start from W_1: no (M, N_0, N_0) identity
            weight = self.layers[0].params["weight"]
            jac = np.broadcast_to(weight, (y.shape[0],) + weight.shape)
            y = self.layers[0].forward(y)[0]
            layers = layers[1:]
        else:
            jac = np.broadcast_to(np.eye(self.n_in), (y.shape[0], self.n_in, self.n_in))
        for layer, side in layers:
            y_next, cache = layer.forward(y)
            jac = layer.jacobian_step(cache, jac, side)
            y = y_next
        return np.array(jac)



def build_mlp(widths, activation="spline", rng=None, last="identity", **activation_options):
    """Dense layers widths[0] -> widths[1] -> ... -> widths[-1], an activation after each
    hidden layer and `last` after the output layer.  Weights and biases ~ U(-1/sqrt(n_in),
    1/sqrt(n_in)) (PyTorch's default for nn.Linear), drawn from rng (seeded Generator)."""
    check_choice(activation, ACTIVATIONS, "activation")
    check_choice(last, ACTIVATIONS, "last")
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"widths: expected at least two positive widths, got {widths}")
    rng = np.random.default_rng(rng)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        bound = 1.0 / np.sqrt(n_in)
        layers.append(Dense(rng.uniform(-bound, bound, (n_out, n_in)),
                            rng.uniform(-bound, bound, n_out)))
        kind = activation if i < len(widths) - 2 else last
        layers.append(make_activation(kind, n_out, **activation_options))
    return Network(layers)
