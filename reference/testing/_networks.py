"""Random networks and problems that tests, theory checks and benchmarks share, and a
plain second implementation of a spline layer with switchable mistakes (for the oracle)."""
from __future__ import annotations

import numpy as np

from reference.nn import (
    Dense,
    Identity,
    LinearSpline,
    Network,
    PReLU,
    ReLU,
    SplineActivation,
    build_mlp,
)


def random_net(widths: list[int], activation: str, seed: int, size: int = 9) -> Network:
    """A random network: ``build_mlp`` with even/odd spline starts, then random coefficients
    (splines) or random slopes (PReLU).

    Parameters
    ----------
    widths : list of int
        Layer widths ``[N_0, ..., N_L]``.
    activation : str
        ``"spline"``, ``"relu"``, ``"leaky_relu"``, ``"prelu"``, ... (``build_mlp``'s names).
    seed : int
        Seed of both ``build_mlp`` and the perturbation.
    size : int, optional
        Grid points of each spline (range 2.0).

    Returns
    -------
    Network
        Splines: the even/odd start plus 0.3 N(0, 1) per coefficient; PReLU: slopes uniform
        in [-0.5, 1.5].
    """
    rng = np.random.default_rng(seed)
    net = build_mlp(widths, activation, rng=seed, spline_init="even_odd", size=size,
                    range_=2.0)
    for layer in net.layers:
        if layer.kind == "spline":
            layer.params["coefficients"] += 0.3 * rng.normal(
                size=layer.params["coefficients"].shape)
        elif layer.kind == "prelu":
            layer.params["slope"][:] = rng.uniform(-0.5, 1.5, layer.params["slope"].shape)
    return net


def single_neuron(m: int = 1000, seed: int = 0) -> tuple[Network, np.ndarray, np.ndarray]:
    """The 1-D TV2 regression problem of the benchmarks and tests: z = x through identity
    weights into one spline neuron (21 points, range 2), y = sin(3x) + 0.3 noise.

    Parameters
    ----------
    m : int, optional
        Number of samples.
    seed : int, optional
        Seed of the samples and the noise.

    Returns
    -------
    net : Network
        dense(1) -> spline (identity start) -> dense(1) -> identity.
    x : ndarray, shape (m, 1)
        Uniform in [-2, 2].
    y : ndarray, shape (m,)
        The targets.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (m, 1))
    y = np.sin(3 * x[:, 0]) + 0.3 * rng.normal(size=m)
    net = Network([Dense(np.ones((1, 1)), np.zeros(1)),
                   SplineActivation(LinearSpline.initialise("identity", 1, 21, 2.0)),
                   Dense(np.ones((1, 1)), np.zeros(1)), Identity()])
    return net, x, y


def loss_targets(net: Network, x: np.ndarray, loss: str,
                 rng: np.random.Generator) -> np.ndarray:
    """Targets for a loss from the score s = sin(2 x_0) + x_last^2 - 0.5.

    Parameters
    ----------
    net : Network
        Only its output width ``n_out`` is used.
    x : ndarray, shape (M, N_0)
        The inputs.
    loss : {"squared", "logistic", "xent"}
        The loss the targets are for.
    rng : numpy.random.Generator
        Draws the noise of the squared loss.

    Returns
    -------
    ndarray
        ``"squared"``: shape (M, n_out), s + 0.1 N(0, 1) in every column; ``"logistic"``:
        shape (M,), labels s > 0; otherwise shape (M,), three classes split at s = -0.3, 0.3.
    """
    m = len(x)
    score = np.sin(2 * x[:, 0]) + x[:, -1] ** 2 - 0.5
    if loss == "squared":
        return np.stack([score + 0.1 * rng.normal(size=m)] * net.n_out, axis=1)
    if loss == "logistic":
        return (score > 0).astype(float)
    return np.digitize(score, [-0.3, 0.3])                  # 3 classes


def solve_instance(widths=(2, 3, 1), m: int = 60, loss: str = "squared", seed: int = 0):
    """A coefficient problem: ``random_net(widths, "spline", seed, size=11)``, inputs
    N(0, 1) and ``loss_targets`` (logistic labels flipped with probability 0.2, so the data
    are not separable and the optimum is finite).

    Parameters
    ----------
    widths : sequence of int, optional
        Layer widths of the spline network.
    m : int, optional
        Number of samples.
    loss : {"squared", "logistic", "xent"}, optional
        The loss the targets are for.
    seed : int, optional
        Seed of the network, the inputs and the targets.

    Returns
    -------
    net : Network
        The spline network.
    x : ndarray, shape (m, widths[0])
        The inputs.
    y : ndarray
        The targets, as ``loss_targets``.
    """
    rng = np.random.default_rng(seed)
    net = random_net(list(widths), "spline", seed, size=11)
    x = rng.normal(size=(m, widths[0]))
    y = loss_targets(net, x, loss, rng)
    if loss == "logistic":              # labels with noise: not separable, a finite optimum
        y = np.where(rng.uniform(size=m) < 0.2, 1 - y, y)
    return net, x, y


def oracle_model(rng: np.random.Generator) -> Network:
    """dense(I) -> spline -> dense -> prelu -> dense -> spline -> dense -> identity, 2 inputs;
    the first spline sees the inputs unchanged, so inputs on its grid sit exactly on knots.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the coefficients, then the weights and biases, in layer order.

    Returns
    -------
    Network
        2 inputs, 2 outputs.
    """
    s1 = LinearSpline(rng.normal(size=(2, 7)), -1.5, 0.5)
    s2 = LinearSpline(rng.normal(size=(3, 5)), -1.0, 0.5)
    return Network([Dense(np.eye(2), np.zeros(2)), SplineActivation(s1),
                    Dense(rng.normal(size=(3, 2)), rng.normal(size=3)),
                    PReLU(np.array([0.1, -0.2, 0.3])),
                    Dense(rng.normal(size=(3, 3)), rng.normal(size=3)), SplineActivation(s2),
                    Dense(rng.normal(size=(2, 3)), rng.normal(size=2)), Identity()])


def oracle_inputs(net: Network, rng: np.random.Generator, random_rows: int = 40) -> np.ndarray:
    """Inputs of an ``oracle_model``: rows on the first spline's grid (exactly on knots, at
    the grid ends), outside and far outside it (1e3), and random rows.

    Parameters
    ----------
    net : Network
        An ``oracle_model`` (layer 1 is its first spline).
    rng : numpy.random.Generator
        Draws the random rows.
    random_rows : int, optional
        Number of rows uniform in [-3, 3]^2.

    Returns
    -------
    ndarray, shape (K + 4 + random_rows, 2)
        K the number of grid points.
    """
    grid = net.layers[1].spline.grid
    special = np.concatenate([grid, [-1e3, 1e3, -4.0, 3.7]])
    return np.concatenate([np.stack([special, special[::-1]], axis=1),
                           rng.uniform(-3, 3, (random_rows, 2))])


class OtherSpline(SplineActivation):
    """Another implementation of a uniform spline layer, written plainly in NumPy, with the
    mistakes an implementation makes switchable: what ``check`` must catch and localise.

    u = (z - x_min)/T, piece k, sigma = c_k + (u - k)(c_{k+1} - c_k).

    Parameters
    ----------
    spline : LinearSpline
        Copied.
    piece : {"floor", "left_on_knots", "off_by_one"}, optional
        k = floor(u) (the right piece on a knot), k = ceil(u) - 1, or floor(u) clipped to
        [1, K-2] instead of [0, K-2] (wrong left of t_1).
    clamp_right : bool, optional
        sigma constant beyond the last grid point (a wrong extrapolation slope).
    wrong_derivative : bool, optional
        The forward is right, sigma' takes the next piece's slope.
    """

    def __init__(self, spline, piece="floor", clamp_right=False, wrong_derivative=False):
        super().__init__(spline.copy())
        self.piece_rule, self.clamp_right = piece, clamp_right
        self.wrong_derivative = wrong_derivative

    def _pieces(self, z):
        s = self.spline
        u = (z - s.x_min) / s.step
        k = {"floor": np.floor(u), "left_on_knots": np.ceil(u) - 1,
             "off_by_one": np.maximum(np.floor(u), 1)}[self.piece_rule]
        return u, np.clip(k, 0, s.size - 2).astype(int)

    def forward(self, z):
        """The layer's outputs by the piece rule.

        Parameters
        ----------
        z : ndarray, shape (M, N)
            Pre-activations.

        Returns
        -------
        y : ndarray, shape (M, N)
            sigma(z) per neuron.
        cache : ndarray, shape (M, N)
            ``z``, for ``backward``.
        """
        c = self.params["coefficients"]
        u, k = self._pieces(z)
        n = np.arange(z.shape[1])
        y = c[n, k] + (u - k) * (c[n, k + 1] - c[n, k])
        if self.clamp_right:
            y = np.where(z > self.spline.grid[-1], c[:, -1], y)
        return y, z

    def derivative(self, z):
        """The slopes by the piece rule (the next piece's with ``wrong_derivative``).

        Parameters
        ----------
        z : ndarray, shape (M, N)
            Where to take the slopes (pre-activations, as ``forward``).

        Returns
        -------
        ndarray, shape (M, N)
            sigma'(z) per neuron, 0 beyond the grid with ``clamp_right``.
        """
        c = self.params["coefficients"]
        _, k = self._pieces(z)
        if self.wrong_derivative:
            k = np.minimum(k + 1, c.shape[1] - 2)
        n = np.arange(z.shape[1])
        d = (c[n, k + 1] - c[n, k]) / self.spline.step
        return np.where(z > self.spline.grid[-1], 0.0, d) if self.clamp_right else d

    def backward(self, z, grad_y, side=None):
        """Gradients with respect to the pre-activations and the coefficients.

        Parameters
        ----------
        z : ndarray, shape (M, N)
            Pre-activations.
        grad_y : ndarray, shape (M, N)
            Gradient with respect to the outputs.
        side : ignored
            The one-sided rule of the reference is not implemented here.

        Returns
        -------
        grad_z : ndarray, shape (M, N)
            grad_y sigma'(z).
        grads : dict
            ``{"coefficients": ndarray, shape (N, K)}``.
        """
        c = self.params["coefficients"]
        u, k = self._pieces(z)
        frac = u - k
        grad_c = np.zeros_like(c)
        n = np.broadcast_to(np.arange(z.shape[1]), z.shape)
        np.add.at(grad_c, (n, k), grad_y * (1 - frac))
        np.add.at(grad_c, (n, k + 1), grad_y * frac)
        return grad_y * self.derivative(z), {"coefficients": grad_c}


def bias_free_relu_cones() -> Network:
    """Bias-free ReLU layers 2-3-3 (fixed weights): every linear region is a cone at 0 and
    every activation pattern is feasible at x = 0.

    Returns
    -------
    Network
        dense 3x2 -> ReLU -> dense 3x3 -> ReLU, no biases.
    """
    return Network([
        Dense([[-0.0023139350735580633, -0.4119038652416048],
               [0.5680203344470105, 0.47158770986915316],
               [0.9953464369830837, -0.6843930193127463]]), ReLU(),
        Dense([[-0.10294623809897781, 0.474148679112286, 0.2516744400227567],
               [1.252662546557164, -0.38033410173432414, -0.4449225828737712],
               [0.41728994056460594, 0.2296988900558236, 0.22057166325362115]]), ReLU()])


def deepsplines_state_dict(rng: np.random.Generator, size: int = 21,
                           widths=(2, 4, 3, 1)) -> dict:
    """A Sequential-like DeepSplines state dict in float64 NumPy: 0 linear, 1 DeepBSpline,
    2 linear, 3 explicit-linear DeepBSpline, 4 linear (DeepSplines' names and layouts).

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws every array, N(0, 1), in key order.
    size : int, optional
        Coefficients per spline.
    widths : sequence of int, optional
        Three linear layers: four widths.

    Returns
    -------
    dict of str to ndarray
        Parameter name to array.
    """
    state = {}
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        state[f"{2 * i}.weight"] = rng.normal(size=(n_out, n_in))
        state[f"{2 * i}.bias"] = rng.normal(size=n_out)
        if i < len(widths) - 2:
            state[f"{2 * i + 1}._coefficients_vect"] = rng.normal(size=n_out * size)
    state["3.spline_weight"] = rng.normal(size=widths[2])
    state["3.spline_bias"] = rng.normal(size=widths[2])
    return state
