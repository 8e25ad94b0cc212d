"""Layers and networks with hand-written backpropagation (the losses: reference.nn._losses).

Network: z_l = W_l y_{l-1} + b_l, y_l = sigma_l(z_l), stored as a flat list of layers
(Dense, then an activation, ...).  Arrays are row-major batches: an input batch is (M, N_0).
Every layer implements
    forward(x) -> (y, cache)                 x (M, N_in), y (M, N_out)
    backward(cache, grad_y, side=None) -> (grad_x, {param_name: grad})
    jacobian_step(cache, J, side=None) -> J'  J (M, N_in, N_0) -> (M, N_out, N_0)
and exposes `params` (name -> array, updated in place by optimisers).

The activation layers and their registry live in reference.nn._activations; the names this
module uses are imported here.  Dense has `to_entry` / `from_entry` like the activations
(`layer_types()` lists every kind of the model file).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from reference._numerics import as_finite_array, check_choice
from reference.exceptions import OverflowResult
from reference.nn._activations import (  # noqa: F401  (re-exported)
    ACTIVATION_TYPES,
    ACTIVATIONS,
    NO_PARAMS,
    Activation,
    Identity,
    KnotSplineActivation,
    LeakyReLU,
    PReLU,
    Ramp,
    ReLU,
    SplineActivation,
    kinks_from_slopes,
    make_activation,
    nearest_index,
    register,
)


class Dense:
    r"""A dense (fully connected) layer, :math:`z = x W^\top + b`.

    Parameters
    ----------
    weight : array_like of shape (n_out, n_in)
        The weight matrix W, finite, n_out, n_in >= 1.
    bias : array_like of shape (n_out,) or None, default=None
        The bias b; None: no bias (and no ``'bias'`` parameter).

    Attributes
    ----------
    params : dict of str to ndarray
        ``'weight'`` and, with a bias, ``'bias'`` (float64, updated in place by the
        optimisers).
    kind : str
        ``'dense'``, the layer's type in the model file.

    Raises
    ------
    ValueError
        If an array is not finite or the shapes are not as above.

    Examples
    --------
    >>> from reference.nn import Dense
    >>> layer = Dense([[1.0, 2.0]], bias=[0.5])
    >>> layer.forward([[1.0, 1.0]])[0]
    array([[3.5]])
    """
    kind = "dense"
    format_version = 1       # the model-file format version that introduced the kind
    # the layer protocol (see reference.nn._activations.Activation): not neuron-wise
    is_activation = is_identity = is_spline = uniform_grid = False

    def __init__(self, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None):
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
    def n_in(self) -> int:
        """The input width n_in."""
        return self.params["weight"].shape[1]

    @property
    def n_out(self) -> int:
        """The output width n_out."""
        return self.params["weight"].shape[0]

    def forward(self, x: npt.NDArray[np.float64]
                ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Apply the layer.

        Parameters
        ----------
        x : ndarray of shape (n_samples, n_in)
            The inputs.

        Returns
        -------
        z : ndarray of shape (n_samples, n_out)
            :math:`x W^\\top + b`.
        cache : ndarray of shape (n_samples, n_in)
            `x`, for `backward` and `jacobian_step`.
        """
        z = x @ self.params["weight"].T
        if "bias" in self.params:
            z += self.params["bias"]
        return z, x

    def backward(self, x: npt.NDArray[np.float64], grad_z: npt.NDArray[np.float64],
                 side: Any = None) -> tuple[npt.NDArray[np.float64],
                                            dict[str, npt.NDArray[np.float64]]]:
        """Backpropagate a gradient through the layer.

        Parameters
        ----------
        x : ndarray of shape (n_samples, n_in)
            The cache of `forward` (its inputs).
        grad_z : ndarray of shape (n_samples, n_out)
            The gradient of the objective in z.
        side : None
            Ignored (a dense layer has no kinks); there for the layer interface.

        Returns
        -------
        grad_x : ndarray of shape (n_samples, n_in)
            :math:`G W`, with G = `grad_z`.
        grads : dict of str to ndarray
            ``'weight'``: :math:`G^\\top x`, shape (n_out, n_in); ``'bias'`` (with a bias):
            :math:`\\sum_m G_m`, shape (n_out,).
        """
        grads = {"weight": grad_z.T @ x}
        if "bias" in self.params:
            grads["bias"] = grad_z.sum(axis=0)
        return grad_z @ self.params["weight"], grads

    def jacobian_step(self, x: npt.NDArray[np.float64], jac: npt.NDArray[np.float64],
                      side: Any = None) -> npt.NDArray[np.float64]:
        """Propagate an input Jacobian through the layer (forward mode).

        Parameters
        ----------
        x : ndarray of shape (n_samples, n_in)
            The cache of `forward` (unused: the layer is linear).
        jac : ndarray of shape (n_samples, n_in, n_0)
            The Jacobian of the layer's inputs in the network's inputs.
        side : None
            Ignored (no kinks).

        Returns
        -------
        jac : ndarray of shape (n_samples, n_out, n_0)
            :math:`W J_m` for every sample m.
        """
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

    def to_entry(self, put: Callable[[str, npt.ArrayLike], str]) -> dict[str, Any]:
        """Return the layer's model-file entry.

        Parameters
        ----------
        put : callable
            ``put(key, array)`` stores an array in the file and returns its NAME.

        Returns
        -------
        entry : dict
            ``{"type": "dense", "weight": NAME, "bias": NAME or None}``.
        """
        bias = put("bias", self.params["bias"]) if "bias" in self.params else None
        return {"type": "dense", "weight": put("weight", self.params["weight"]), "bias": bias}

    @classmethod
    def from_entry(cls, read: Any) -> "Dense":
        """Build the layer of a model-file entry.

        Parameters
        ----------
        read : EntryReader
            The entry being read: ``read.array(key, ndim)`` and ``read.number(key)`` are
            its validated fields, ``read.error(message)`` the error naming the layer.

        Returns
        -------
        layer : Dense
            The layer.

        Raises
        ------
        ModelFileError
            If an array is missing, not finite, or of the wrong shape.
        """
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
    r"""A feed-forward network: a chain of layers with hand-written backpropagation.

    Parameters
    ----------
    layers : iterable of layer
        Dense and activation layers, in order; at least one, the first fixing the input
        width (a dense, spline or prelu layer).  Widths must chain.

    Attributes
    ----------
    layers : list of layer
        The layers.
    n_out : int
        The output width :math:`N_L`.

    Raises
    ------
    ValueError
        If `layers` is empty, the first layer does not fix the input width, or the widths
        do not chain (the message names the layer).

    See Also
    --------
    build_mlp : A multilayer perceptron with fresh parameters.
    reference.io.load_model : A network from a model file.

    Notes
    -----
    With :math:`y_0 = x`, for :math:`l = 1, \dots, L`:

    .. math::

        z_l = W_l\, y_{l-1} + b_l, \qquad y_l = \sigma_l(z_l), \qquad f(x) = y_L,

    where :math:`\sigma_l` acts neuron-wise, one scalar function :math:`\sigma_{n,l}` per
    neuron.  Inputs are row-major batches: an input x has shape (n_samples, n_in).

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With
       Trainable Activations and Controlled Lipschitz Constant", IEEE Trans. Signal
       Process. 68, 2020, arXiv:2001.06263.

    Examples
    --------
    >>> import numpy as np
    >>> from reference.nn import Dense, Network, ReLU
    >>> net = Network([Dense([[1.0, -1.0]]), ReLU()])
    >>> net(np.array([[2.0, 0.5], [0.0, 1.0]]))
    array([[1.5],
           [0. ]])
    """

    def __init__(self, layers: Iterable[Any]):
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
        assert width is not None           # the first layer fixes its width, in and out
        self.n_out = width

    @property
    def n_in(self) -> int:
        """The input width :math:`N_0`."""
        return self.layers[0].n_in

    def named_params(self) -> Iterator[tuple[str, npt.NDArray[np.float64]]]:
        """Iterate over every parameter of the network.

        Yields
        ------
        name : str
            ``'layer{i}.{param}'``, as in the model file.
        array : ndarray
            The parameter itself (not a copy).
        """
        for i, layer in enumerate(self.layers):
            for key, value in layer.params.items():
                yield f"layer{i}.{key}", value

    def check_inputs(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Check inputs for the network.

        Parameters
        ----------
        x : array_like of shape (n_samples, n_in)
            The inputs.

        Returns
        -------
        x : ndarray of shape (n_samples, n_in)
            The inputs as a finite float64 array.

        Raises
        ------
        ValueError
            If `x` is not 2-D and finite with n_in columns.
        """
        x = as_finite_array(x, "x", ndim=2)
        if x.shape[1] != self.n_in:
            raise ValueError(f"x: expected shape (M, {self.n_in}), got {x.shape}")
        return x

    @overload
    def forward(self, x: npt.ArrayLike,
                keep_cache: Literal[False] = False) -> npt.NDArray[np.float64]: ...
    @overload
    def forward(self, x: npt.ArrayLike,
                keep_cache: Literal[True]) -> tuple[npt.NDArray[np.float64], list[Any]]: ...
    @overload
    def forward(self, x: npt.ArrayLike, keep_cache: bool = False
                ) -> npt.NDArray[np.float64] | tuple[npt.NDArray[np.float64], list[Any]]: ...
    def forward(self, x: npt.ArrayLike, keep_cache: bool = False
                ) -> npt.NDArray[np.float64] | tuple[npt.NDArray[np.float64], list[Any]]:
        """Evaluate the network; ``net(x)`` is the same.

        Parameters
        ----------
        x : array_like of shape (n_samples, n_in)
            Finite inputs.
        keep_cache : bool, default=False
            Also return the per-layer caches, for `backward`.

        Returns
        -------
        y : ndarray of shape (n_samples, n_out)
            f(x).
        caches : list
            Only with `keep_cache`: one cache per layer.

        Raises
        ------
        ValueError
            If `x` is not finite or not of shape (n_samples, n_in).
        OverflowResult
            If an output is beyond the float64 range (the message names the first layer
            and row that overflow).

        Examples
        --------
        >>> from reference.nn import build_mlp
        >>> net = build_mlp([2, 4, 1], activation="relu", rng=0)
        >>> y, caches = net.forward([[0.5, -1.0], [1.0, 2.0]], keep_cache=True)
        >>> y.shape, len(caches)
        ((2, 1), 4)
        """
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

    def backward(self, caches: Sequence[Any], grad_out: npt.NDArray[np.float64],
                 sides: Sequence[npt.NDArray[np.int8] | None] | None = None
                 ) -> tuple[npt.NDArray[np.float64], dict[str, npt.NDArray[np.float64]]]:
        """Backpropagate a gradient through the cached forward pass.

        Parameters
        ----------
        caches : list
            The caches of ``forward(x, keep_cache=True)``.
        grad_out : ndarray of shape (n_samples, n_out)
            :math:`\\partial E / \\partial f`, the gradient of the objective in the outputs.
        sides : list of (ndarray of shape (n_samples, n_i), dtype int8, or None) or None, \
default=None
            One per layer: where -1 / +1, the slope left / right of the nearest kink is
            used instead of the layer's own convention (the right piece); None: no
            one-sided slopes (see `reference.oracle`).

        Returns
        -------
        grad_x : ndarray of shape (n_samples, n_in)
            The gradient in the inputs.
        grads : dict of str to ndarray
            ``'layer{i}.{param}'`` -> the gradient, of the parameter's shape.

        Examples
        --------
        >>> import numpy as np
        >>> from reference.nn import build_mlp
        >>> net = build_mlp([2, 4, 1], activation="relu", rng=0)
        >>> y, caches = net.forward(np.ones((3, 2)), keep_cache=True)
        >>> grad_x, grads = net.backward(caches, np.ones_like(y))
        >>> grad_x.shape, sorted(grads)
        ((3, 2), ['layer0.bias', 'layer0.weight', 'layer2.bias', 'layer2.weight'])
        """
        grads = {}
        g = grad_out
        sides = sides or [None] * len(self.layers)
        for i in reversed(range(len(self.layers))):
            g, layer_grads = self.layers[i].backward(caches[i], g, sides[i])
            for key, value in layer_grads.items():
                grads[f"layer{i}.{key}"] = value
        return g, grads

    def input_jacobian(self, x: npt.ArrayLike,
                       sides: Sequence[npt.NDArray[np.int8] | None] | None = None
                       ) -> npt.NDArray[np.float64]:
        """Return the Jacobian of the network in its inputs, by forward-mode propagation.

        Parameters
        ----------
        x : array_like of shape (n_samples, n_in)
            Finite inputs.
        sides : list of (ndarray of shape (n_samples, n_i), dtype int8, or None) or None, \
default=None
            One-sided slopes at kinks, as in `backward`.

        Returns
        -------
        jac : ndarray of shape (n_samples, n_out, n_in)
            :math:`J_m = \\partial f(x_m) / \\partial x`.

        Raises
        ------
        ValueError
            If `x` is not finite or not of shape (n_samples, n_in).
        """
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



def build_mlp(widths: Sequence[int], activation: str = "spline",
              rng: int | np.random.Generator | None = None, last: str = "identity",
              first_bias: bool = True, **activation_options: Any) -> Network:
    """Build a multilayer perceptron with fresh parameters.

    Parameters
    ----------
    widths : sequence of int
        The widths :math:`N_0, N_1, \\dots, N_L`, at least two, each >= 1: dense layers
        ``widths[0] -> widths[1] -> ... -> widths[-1]``.
    activation : str, default='spline'
        The activation after each hidden layer, one of `ACTIVATIONS`
        (``'spline'``, ``'relu'``, ``'leaky_relu'``, ``'prelu'``, ``'identity'``).
    rng : int or numpy.random.Generator or None, default=None
        The seed or generator of the weights (``np.random.default_rng(rng)``); None draws
        fresh entropy (not reproducible).
    last : str, default='identity'
        The activation after the output layer, one of `ACTIVATIONS`.
    first_bias : bool, default=True
        Whether the first dense layer has a bias (DeepSplines' ``TwoDNet`` with spline
        activations has none; no bias is drawn then).
    **activation_options
        Options of `make_activation` (``spline_init``, ``size``, ``range_``, ``slope``,
        ``prelu_init``).

    Returns
    -------
    net : Network
        Dense and activation layers alternating, 2 L layers.

    Raises
    ------
    ValueError
        If `activation` or `last` is not a known kind, or `widths` has fewer than two
        entries or one below 1.

    Notes
    -----
    Weights and biases are drawn from
    :math:`\\mathcal{U}(-1/\\sqrt{n_{in}}, 1/\\sqrt{n_{in}})`, PyTorch's default for
    ``nn.Linear``, layer by layer, weight before bias.

    Examples
    --------
    >>> from reference.nn import build_mlp
    >>> net = build_mlp([2, 8, 1], activation="spline", rng=0, size=21, range_=2.0)
    >>> [layer.kind for layer in net.layers]
    ['dense', 'spline', 'dense', 'identity']
    >>> net.layers[1].spline.coefficients.shape
    (8, 21)
    >>> net([[0.0, 1.0]]).shape
    (1, 1)
    """
    check_choice(activation, ACTIVATIONS, "activation")
    check_choice(last, ACTIVATIONS, "last")
    if not isinstance(first_bias, (bool, np.bool_)):
        raise ValueError(f"first_bias: expected True or False, got {first_bias!r}")
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"widths: expected at least two positive widths, got {widths}")
    rng = np.random.default_rng(rng)
    layers: list[Any] = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        bound = 1.0 / np.sqrt(n_in)
        weight = rng.uniform(-bound, bound, (n_out, n_in))
        bias = rng.uniform(-bound, bound, n_out) if i > 0 or first_bias else None
        layers.append(Dense(weight, bias))
        kind = activation if i < len(widths) - 2 else last
        layers.append(make_activation(kind, n_out, **activation_options))
    return Network(layers)
