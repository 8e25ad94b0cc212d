"""Layers, networks with hand-written backpropagation, and losses.

Network: z_l = W_l y_{l-1} + b_l, y_l = sigma_l(z_l), stored as a flat list of layers
(Dense, then an activation, ...).  Arrays are row-major batches: an input batch is (M, N_0).
Every layer implements
    forward(x) -> (y, cache)                 x (M, N_in), y (M, N_out)
    backward(cache, grad_y) -> (grad_x, {param_name: grad})
    jacobian_step(cache, J) -> J'             J (M, N_in, N_0) -> (M, N_out, N_0)
and exposes `params` (name -> array, updated in place by optimisers).
Knows nothing of optimisers or cvxpy.
"""
from __future__ import annotations

from types import MappingProxyType

import numpy as np
from scipy.special import expit, log_softmax, softmax

from reference._checks import OverflowResult, as_finite_array, check_choice
from reference.spline import KnotSpline, LinearSpline

ACTIVATIONS = ("spline", "relu", "leaky_relu", "prelu", "identity")
NO_PARAMS = MappingProxyType({})      # shared by the parameter-free layers, read-only


class Dense:
    """z = x W^T + b; weight (N_out, N_in), bias (N_out,) or None."""
    kind = "dense"

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

    def backward(self, x, grad_z):
        """grad_x = grad_z W, grad_W = grad_z^T x, grad_b = sum_m grad_z."""
        grads = {"weight": grad_z.T @ x}
        if "bias" in self.params:
            grads["bias"] = grad_z.sum(axis=0)
        return grad_z @ self.params["weight"], grads

    def jacobian_step(self, x, jac):
        return np.einsum("oi,mij->moj", self.params["weight"], jac)


class Activation:
    """Neuron-wise activation: y = sigma(z); subclasses give sigma, sigma' and parameters.

    `derivative(z)` is sigma'(z) (M, N); at a breakpoint, the slope of the right piece."""
    n_in = n_out = None      # any width (spline and prelu fix theirs)

    def backward(self, z, grad_y):
        return grad_y * self.derivative(z), {}

    def jacobian_step(self, z, jac):
        return self.derivative(z)[:, :, None] * jac

    def check_width(self, width):
        if self.n_in is not None and width != self.n_in:
            raise ValueError(f"{self.kind}: expected inputs of width {self.n_in}, got {width}")


class SplineActivation(Activation):
    """One linear spline per neuron (reference.spline.LinearSpline); params: coefficients."""
    kind = "spline"

    def __init__(self, spline: LinearSpline):
        self._spline = spline
        self.params = {"coefficients": spline.coefficients}

    @property
    def spline(self) -> LinearSpline:
        """The layer's splines, always on the current params['coefficients']."""
        self._spline.coefficients = self.params["coefficients"]
        return self._spline

    @property
    def n_in(self):
        return self._spline.num_channels

    n_out = n_in

    def forward(self, z):
        return self.spline.forward_unchecked(z), z

    def derivative(self, z):
        return self.spline.derivative_unchecked(z)

    def backward(self, z, grad_y):
        grad_z, grad_c = self.spline.backward_unchecked(z, grad_y)
        return grad_z, {"coefficients": grad_c}


class KnotSplineActivation(Activation):
    """One free-knot linear spline per neuron, fixed (no trainable parameters): the
    piecewise-linear interpolant through (points[n][i], values[n][i]), points strictly
    increasing (>= 2 per neuron), continued linearly beyond the end points with the end
    slopes.  This is how the exact (data-grid) solutions of reference.convex are stored.

    sigma_n(z) = v_i + s_i (z - p_i) with i = the piece of z (clipped to the first / last
    piece outside), s_i = (v_{i+1} - v_i) / (p_{i+1} - p_i); sigma'(z) = s_i (the right
    piece at a point)."""
    kind = "knot_spline"
    params = NO_PARAMS

    def __init__(self, points, values):
        if len(points) != len(values) or len(points) == 0:
            raise ValueError(f"values: expected one array per neuron like points "
                             f"({len(points)}), got {len(values)}")
        self.points, self.values, self.slopes = [], [], []
        for n, (p, v) in enumerate(zip(points, values)):
            p = as_finite_array(p, f"points[{n}]", ndim=1)
            v = as_finite_array(v, f"values[{n}]", ndim=1)
            if p.shape != v.shape or len(p) < 2 or np.any(np.diff(p) <= 0):
                raise ValueError(f"points[{n}]: expected >= 2 strictly increasing points with "
                                 f"as many values, got shapes {p.shape} and {v.shape}")
            self.points.append(p)
            self.values.append(v)
            self.slopes.append(np.diff(v) / np.diff(p))

    @property
    def n_in(self):
        return len(self.points)

    n_out = n_in

    @property
    def spline(self) -> KnotSpline:
        """The same splines in knot form (knots at the interior points)."""
        return KnotSpline.interpolant(self.points, self.values)

    def _piece(self, n: int, z: np.ndarray) -> np.ndarray:
        p = self.points[n]
        return np.clip(np.searchsorted(p, z, side="right") - 1, 0, len(p) - 2)

    def forward(self, z):
        y = np.empty_like(z)
        for n in range(self.n_in):
            i = self._piece(n, z[:, n])
            y[:, n] = self.values[n][i] + self.slopes[n][i] * (z[:, n] - self.points[n][i])
        return y, z

    def derivative(self, z):
        return np.stack([self.slopes[n][self._piece(n, z[:, n])] for n in range(self.n_in)],
                        axis=1)


class ReLU(Activation):
    """sigma(z) = max(z, 0)."""
    kind = "relu"
    params = NO_PARAMS

    def forward(self, z):
        return np.maximum(z, 0.0), z

    def derivative(self, z):
        return (z >= 0).astype(np.float64)


class LeakyReLU(Activation):
    """sigma(z) = z for z >= 0, slope*z otherwise (one fixed slope)."""
    kind = "leaky_relu"
    params = NO_PARAMS

    def __init__(self, slope: float = 0.01):
        slope = float(slope)
        if not np.isfinite(slope):
            raise ValueError(f"slope: expected a finite number, got {slope}")
        self.slope = slope

    def forward(self, z):
        return np.where(z >= 0, z, self.slope * z), z

    def derivative(self, z):
        return np.where(z >= 0, 1.0, self.slope)


class PReLU(Activation):
    """sigma_n(z) = z for z >= 0, a_n*z otherwise; slope a (N,) learned per neuron."""
    kind = "prelu"

    def __init__(self, slope):
        slope = as_finite_array(slope, "slope", ndim=1)
        if slope.shape[0] < 1:
            raise ValueError("slope: expected one slope per neuron, at least one (N >= 1)")
        self.params = {"slope": slope}

    @property
    def n_in(self):
        return self.params["slope"].shape[0]

    n_out = n_in

    def forward(self, z):
        return np.where(z >= 0, z, self.params["slope"] * z), z

    def derivative(self, z):
        return np.where(z >= 0, 1.0, self.params["slope"])

    def backward(self, z, grad_y):
        """d sigma_n / d a_n = min(z, 0)."""
        return grad_y * self.derivative(z), {"slope": (grad_y * np.minimum(z, 0.0)).sum(axis=0)}


class Identity(Activation):
    """sigma(z) = z."""
    kind = "identity"
    params = NO_PARAMS

    def forward(self, z):
        return z, z

    def derivative(self, z):
        return np.ones_like(z)

    def backward(self, z, grad_y):
        return grad_y, {}

    def jacobian_step(self, z, jac):
        return jac


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

    def backward(self, caches, grad_out):
        """Backpropagate grad_out = dE/df (M, N_L) through the cached forward pass.

        Returns (grad_x (M, N_0), {param name: gradient of the same shape})."""
        grads = {}
        g = grad_out
        for i in reversed(range(len(self.layers))):
            g, layer_grads = self.layers[i].backward(caches[i], g)
            for key, value in layer_grads.items():
                grads[f"layer{i}.{key}"] = value
        return g, grads

    def input_jacobian(self, x) -> np.ndarray:
        """J[m] = d f(x_m) / d x, shape (M, N_L, N_0), by forward-mode propagation."""
        y = self.check_inputs(x)
        layers = self.layers
        if isinstance(layers[0], Dense):       # start from W_1: no (M, N_0, N_0) identity
            weight = layers[0].params["weight"]
            jac = np.broadcast_to(weight, (y.shape[0],) + weight.shape)
            y = layers[0].forward(y)[0]
            layers = layers[1:]
        else:
            jac = np.broadcast_to(np.eye(self.n_in), (y.shape[0], self.n_in, self.n_in))
        for layer in layers:
            y_next, cache = layer.forward(y)
            jac = layer.jacobian_step(cache, jac)
            y = y_next
        return np.array(jac)


# ---------------------------------------------------------------------------- losses
LOSSES = ("squared", "logistic", "xent")


def check_targets(loss: str, outputs_shape: tuple, y) -> np.ndarray:
    """Targets in the loss's domain, shaped for `loss_and_grad`; outputs_shape = (M, N_L).

    squared: y (M,) or (M, N_L) real; logistic: y (M,) in {0, 1} and N_L = 1;
    xent: y (M,) integer class labels in [0, N_L)."""
    check_choice(loss, LOSSES, "loss")
    m, n_out = outputs_shape
    y = np.asarray(y)
    if y.shape[0] != m:
        raise ValueError(f"y: expected {m} targets (one per input), got shape {y.shape}")
    if loss == "squared":
        y = as_finite_array(y, "y").reshape(m, -1)
        if y.shape[1] != n_out:
            raise ValueError(f"y: expected shape ({m},) or ({m}, {n_out}), got {np.shape(y)}")
        return y
    if loss == "logistic":
        if n_out != 1:
            raise ValueError(f"loss: 'logistic' needs a network with one output, got {n_out}")
        y = as_finite_array(y, "y").reshape(-1)
        if y.shape != (m,) or not np.all((y == 0) | (y == 1)):
            raise ValueError("y: expected labels in {0, 1} of shape (M,) for the logistic loss")
        return y[:, None]
    y = as_finite_array(y, "y").reshape(-1)
    if y.shape != (m,) or not np.all((y == np.round(y)) & (y >= 0) & (y < n_out)):
        raise ValueError(f"y: expected integer class labels in [0, {n_out}) of shape (M,) "
                         "for the cross-entropy loss")
    return y.astype(np.intp)


def loss_and_grad(loss: str, outputs: np.ndarray, y: np.ndarray):
    """Loss summed over samples and its gradient in the outputs (M, N_L).

    squared:  sum (1/2)(f - y)^2,               grad f - y
    logistic: sum log(1 + e^f) - y f,           grad sigmoid(f) - y     (f a logit)
    xent:     sum logsumexp(f) - f[y],          grad softmax(f) - onehot(y)
    y as returned by `check_targets`, outputs (M, N_L)."""
    if loss == "squared":
        r = outputs - y
        return 0.5 * float(np.sum(r * r)), r
    if loss == "logistic":
        return float(np.sum(np.logaddexp(0.0, outputs) - y * outputs)), expit(outputs) - y
    rows = np.arange(outputs.shape[0])
    value = -float(np.sum(log_softmax(outputs, axis=1)[rows, y]))
    grad = softmax(outputs, axis=1)
    grad[rows, y] -= 1.0
    return value, grad


def predict_labels(loss: str, outputs: np.ndarray) -> np.ndarray:
    """Class predictions: logit > 0 (logistic), argmax (xent)."""
    if loss == "logistic":
        return (outputs[:, 0] > 0).astype(np.intp)
    return np.argmax(outputs, axis=1)


def make_activation(kind: str, width: int, *, spline_init="leaky_relu", size=51, range_=4.0,
                    slope=0.01, prelu_init=0.25):
    """A fresh activation layer of the given kind and width."""
    check_choice(kind, ACTIVATIONS, "activation")
    if kind == "spline":
        return SplineActivation(LinearSpline.initialise(spline_init, width, size, range_,
                                                        slope=slope))
    if kind == "relu":
        return ReLU()
    if kind == "leaky_relu":
        return LeakyReLU(slope)
    if kind == "prelu":
        return PReLU(np.full(width, float(prelu_init)))
    return Identity()


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
