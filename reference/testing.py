"""What the tests, the theory checks and the benchmarks share: random networks and problems,
central differences, rescaled problems (the same problem in other units), the profiles of
the property tests, and the check that printed text holds numbers, not NumPy reprs.

Importing this module needs only the package's own dependencies: hypothesis (property
profiles) and mpmath (the 50-digit LMI) belong to the ``test`` extra and are imported by
the functions that use them.

Every generator takes a seed or a ``numpy.random.Generator`` and draws in a fixed order,
so a seed gives the same network, bit for bit, on every run.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable

import numpy as np

from reference.lipschitz._bounds import blocks, jacobian_norms
from reference.nn import (Dense, Identity, KnotSplineActivation, LinearSpline, Network, PReLU,
                          ReLU, SplineActivation, build_mlp)

__all__ = ["random_net", "single_neuron", "loss_targets", "solve_instance", "oracle_model",
           "oracle_inputs", "OtherSpline", "bias_free_relu_cones", "deepsplines_state_dict",
           "central_difference", "relative_error", "sampled_max_norm", "REDUCTION_OUTPUT_RTOL",
           "lipsdp_brackets_meet", "lipsdp_ordered", "exact_lmi", "exact_rho", "rescale",
           "law", "rescale_case", "DEFAULT_EXAMPLES", "SLOW_EXAMPLES", "PROFILES",
           "check_property", "NUMPY_REPR", "NumpyRepr", "assert_numbers_only"]

# ------------------------------------------------------------ random networks and problems


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
    x : ndarray, shape (m, 1)
        Uniform in [-2, 2].
    y : ndarray, shape (m,)
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
    loss : {"squared", "logistic", "xent"}
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
    m : int, optional
        Number of samples.
    loss : {"squared", "logistic", "xent"}, optional
    seed : int, optional

    Returns
    -------
    net : Network
    x : ndarray, shape (m, widths[0])
    y : ndarray
        As ``loss_targets``.
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
        c = self.params["coefficients"]
        u, k = self._pieces(z)
        n = np.arange(z.shape[1])
        y = c[n, k] + (u - k) * (c[n, k + 1] - c[n, k])
        if self.clamp_right:
            y = np.where(z > self.spline.grid[-1], c[:, -1], y)
        return y, z

    def derivative(self, z):
        c = self.params["coefficients"]
        _, k = self._pieces(z)
        if self.wrong_derivative:
            k = np.minimum(k + 1, c.shape[1] - 2)
        n = np.arange(z.shape[1])
        d = (c[n, k + 1] - c[n, k]) / self.spline.step
        return np.where(z > self.spline.grid[-1], 0.0, d) if self.clamp_right else d

    def backward(self, z, grad_y, side=None):
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
    size : int, optional
        Coefficients per spline.
    widths : sequence of int, optional
        Three linear layers: four widths.

    Returns
    -------
    dict of str to ndarray
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

# ------------------------------------------------------------------- numerical comparisons


REDUCTION_OUTPUT_RTOL = 1e-10
"""The representer reduction keeps the outputs at the data to this, relative to
max(1, max |f|) (theory_checks.representer and the property tests)."""


def central_difference(fn: Callable[[], float], array: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """d fn() / d array by central differences, perturbing ``array`` in place.

    Parameters
    ----------
    fn : callable
        No argument, returns a float that depends on ``array``.
    array : ndarray
        Perturbed entry by entry and restored afterwards.
    h : float, optional
        The step.

    Returns
    -------
    ndarray, shape of ``array``
        (fn(a + h e_i) - fn(a - h e_i)) / 2h per entry i.
    """
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        old = array[idx]
        array[idx] = old + h
        plus = fn()
        array[idx] = old - h
        minus = fn()
        array[idx] = old
        grad[idx] = (plus - minus) / (2 * h)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|, b the reference (its maximum floored at 1e-12).

    Parameters
    ----------
    a, b : ndarray
        Broadcastable.

    Returns
    -------
    float
    """
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)


def sampled_max_norm(net: Network, p: float, box: float, points: int = 400_000,
                     seed: int = 0) -> float:
    """A sampled lower bound on Lip_p over a box: max ||J(x)||_{p->p} over uniform samples.

    Parameters
    ----------
    net : Network
    p : float
        1, 2 or inf.
    box : float
        Half-width of the box [-box, box]^N_0.
    points : int, optional
    seed : int, optional

    Returns
    -------
    float
    """
    x = np.random.default_rng(seed).uniform(-box, box, (points, net.n_in))
    return float(jacobian_norms(net.input_jacobian(x), p).max())


def lipsdp_brackets_meet(a: dict, b: dict, scale: float = 1.0) -> bool:
    """Whether two certified LipSDP results bracket one SDP optimum (b's in units ``scale``
    times a's): each one's proven lower bound (optimum_lower) is at most the other's
    certified upper bound (sdp_value + sdp_rounding_bound).  The honest form of "equal to
    the stated accuracy": the accuracy bounds value - optimum, the rounding bound
    optimum - value.

    Parameters
    ----------
    a, b : dict
        Results of ``reference.lipschitz.lipsdp``.
    scale : float, optional

    Returns
    -------
    bool
    """
    return (a["optimum_lower"] * scale <= b["sdp_value"] + b["sdp_rounding_bound"]
            and b["optimum_lower"] <= (a["sdp_value"] + a["sdp_rounding_bound"]) * scale)


def lipsdp_ordered(neuron: dict, layer: dict) -> bool:
    """Whether LipSDP-neuron's optimum <= LipSDP-layer's holds as far as the certificates
    show: the neuron's proven lower bound is at most the layer's certified value (capped or
    not) plus its rounding bound.

    Parameters
    ----------
    neuron, layer : dict
        Results of ``reference.lipschitz.lipsdp`` with the two variants.

    Returns
    -------
    bool
    """
    return neuron["optimum_lower"] <= layer["value"] + layer["rounding_bound"]


def exact_lmi(net: Network):
    """The LMI data of a ReLU network (alpha 0, beta 1) in 50-digit arithmetic (mpmath),
    from its weights as given.

    Parameters
    ----------
    net : Network
        Dense layers with ReLU between them.

    Returns
    -------
    rows : list of mpmath matrices
        The rows of A.
    c : mpmath matrix
        C.
    n0 : int
        Input width.
    side : int
        N_0 + number of hidden neurons.
    """
    import mpmath as mp

    mp.mp.dps = 50
    ws = [mp.matrix(w.tolist()) for w, _ in blocks(net)]
    n0 = net.n_in
    n = sum(w.rows for w in ws[:-1])
    side = n0 + n
    g = mp.matrix(n0, side)
    for i in range(n0):
        g[i, i] = 1
    rows, col = [], n0
    for w in ws[:-1]:                                 # ReLU: alpha 0, beta 1
        z = w * g
        rows += [z[i, :] for i in range(z.rows)]
        g = mp.matrix(z.rows, side)
        for i in range(z.rows):
            g[i, col + i] = 1
        col += z.rows
    return rows, ws[-1] * g, n0, side


def exact_rho(net: Network, lam: np.ndarray):
    """rho* = lambda_max(P - Q R^-1 Q^T) of the LMI built from the weights in 50-digit
    arithmetic (``exact_lmi``), at the float64 multipliers ``lam``: the value the LipSDP
    certificate rounds.

    Parameters
    ----------
    net : Network
        As ``exact_lmi``.
    lam : ndarray, shape (number of hidden neurons,)

    Returns
    -------
    mpmath.mpf
    """
    import mpmath as mp

    rows, c, n0, side = exact_lmi(net)
    m = c.T * c
    for i, row in enumerate(rows):
        for j in range(side):
            m[n0 + i, j] += mp.mpf(lam[i]) * row[j]
            m[j, n0 + i] += mp.mpf(lam[i]) * row[j]
        m[n0 + i, n0 + i] -= 2 * mp.mpf(lam[i])
    p_blk, q_blk, r_blk = m[:n0, :n0], m[:n0, n0:], m[n0:, n0:]
    schur = p_blk - q_blk * mp.inverse(r_blk) * q_blk.T
    return max(mp.eigsy(schur, eigvals_only=True))

# ------------------------------------------------------------- the same problem, rescaled


def rescale(net: Network, a: float, c: float) -> tuple[Network, dict]:
    """The same network in other units: inputs multiplied by ``a``, dense layer k (k = 1,
    2, ...) by ``c``.

    Parameters
    ----------
    net : Network
    a : float
        Factor of the inputs.
    c : float
        Factor per dense layer.

    Returns
    -------
    net : Network
        The rescaled network.
    factors : dict of str to float
        ``"outputs"``: T, ``"inputs"``: a, ``"layer{i}/output"``: the factor of layer i's
        output, ``"layer{i}.{name}"``: the factor p of that parameter (its gradient scales
        by T / p).

    Notes
    -----
    W_k -> c W_k, b_k -> s_k b_k with s_k = a c^k the factor of layer k's pre-activations;
    every activation keeps the factor of its input (a spline's x_min, step and values, a
    knot-form layer's points and values, multiplied by it; ReLU, LeakyReLU, PReLU and
    identity are positively homogeneous).  Then f'(a x) = T f(x) with T = a c^L (L dense
    layers), the input Jacobian scales by T / a, TV2 and the slopes not at all, the
    Lipschitz constants (exact, layer-wise, Theorem 1 with the slopes) by T / a.  With a and
    c powers of 2 every one of these products is exact in float64.
    """
    layers, factors, t, k = [], {}, a, 0
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Dense):
            k += 1
            s = a * c ** k
            bias = layer.params.get("bias")
            layers.append(Dense(layer.params["weight"] * (s / t),
                                None if bias is None else bias * s))
            factors[f"layer{i}.weight"], factors[f"layer{i}.bias"] = s / t, s
            t = s
        elif isinstance(layer, SplineActivation):
            spline = layer.spline
            layers.append(SplineActivation(LinearSpline(spline.coefficients * t,
                                                        spline.x_min * t, spline.step * t)))
            factors[f"layer{i}.coefficients"] = t
        elif isinstance(layer, KnotSplineActivation):
            layers.append(KnotSplineActivation([p * t for p in layer.points],
                                               [v * t for v in layer.values]))
            factors[f"layer{i}.points"] = factors[f"layer{i}.values"] = t
        else:
            layers.append(layer)
            factors.update({f"layer{i}.{key}": 1.0 for key in layer.params})
        factors[f"layer{i}/output"] = t
    factors["outputs"] = t
    factors["inputs"] = a
    return Network(layers), factors


def law(key: str, factors: dict, names: dict | None = None) -> float | None:
    """The factor by which the answer ``key`` scales under ``rescale``.

    Parameters
    ----------
    key : str
        An answer key of ``reference_answers`` (``"outputs"``, ``"input_jacobian"``,
        ``"param_gradients/<name>"``, ``"tv2/..."``, ``"lipschitz_exact/..."``, ...).
    factors : dict
        From ``rescale``.
    names : dict, optional
        Own parameter name (``"layer{i}.{name}"``) to the name used in the answers.

    Returns
    -------
    float or None
        None where there is no law (BV2 and what contains it, the objective terms).
    """
    T, a = factors["outputs"], factors["inputs"]
    own = {v: k for k, v in (names or {}).items()}
    if key in factors and "/" in key:
        return factors[key]
    if key == "outputs":
        return T
    if key.startswith("input_jacobian"):
        return T / a
    if key.startswith("param_gradients/"):
        name = key.split("/", 1)[1]
        return T / factors[own.get(name, name)]
    if key.startswith("tv2/"):
        return 1.0
    if key.startswith(("lipschitz_bound_slopes/", "lipschitz_layerwise/", "lipschitz_exact/")):
        return T / a
    if key == "on_kink":
        return 1.0
    return None


def rescale_case(case, a: float, c: float):
    """A conformance case in other units.

    Parameters
    ----------
    case : reference.conformance Case
    a, c : float
        As ``rescale``.

    Returns
    -------
    case : Case
        The network and inputs by ``rescale``, the box of an exact case by a; a squared-loss
        solve: the targets by T and lam by T^2 (the same optimum, scaled); the objective
        cases: only the network and inputs.
    factors : dict
        From ``rescale``.
    """
    net, factors = rescale(case.net, a, c)
    parameters = dict(case.parameters)
    targets = case.targets
    if parameters.get("box") is not None:
        parameters["box"] = parameters["box"] * a
    if case.kind == "solve":
        T = factors["outputs"]
        targets = targets * T
        parameters["lam"] = parameters["lam"] * T ** 2
    return dataclasses.replace(case, net=net, inputs=case.inputs * a, targets=targets,
                               parameters=parameters), factors

# --------------------------------------------------------------- property-test profiles


DEFAULT_EXAMPLES = 100
"""Examples of a property in the default profile (the default test suite)."""
SLOW_EXAMPLES = 10_000
"""Examples of a property in the slow profile (``pytest -m slow``)."""
PROFILES = ("default", "slow")
"""The profiles a property runs in (tests: the ``profile`` fixture of tests/conftest.py)."""


def check_property(prop: Callable[[], None], profile: str, examples: int | None = None,
                   slow_examples: int | None = None) -> None:
    """Run a hypothesis ``@given`` property with the profile's number of examples.

    Parameters
    ----------
    prop : callable
        A function decorated with ``hypothesis.given``.
    profile : {"default", "slow"}
    examples : int, optional
        Examples in the default profile (DEFAULT_EXAMPLES if None).
    slow_examples : int, optional
        Examples in the slow profile (SLOW_EXAMPLES if None; a property that cannot afford
        10^4 states its count and why).

    Raises
    ------
    ValueError
        ``profile`` is not one of PROFILES.
    ImportError
        hypothesis (the ``test`` extra) is not installed.

    Notes
    -----
    No deadline, no example database, the too_slow and data_too_large health checks off;
    the default profile is derandomized (the same examples on every run).
    """
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {PROFILES}, got {profile!r}")
    from hypothesis import HealthCheck, settings

    if profile == "slow":
        n = SLOW_EXAMPLES if slow_examples is None else slow_examples
    else:
        n = DEFAULT_EXAMPLES if examples is None else examples
    settings(max_examples=n, deadline=None, derandomize=profile == "default",
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
             database=None)(prop)()

# ------------------------------------------------------------------------- printed text


NUMPY_REPR = re.compile(r"\bnp\.[a-z_]+\d*\(|\bnp\.(True|False)_|\barray\(")
"""NumPy's repr of a number or an array (``np.float64(1.5)``, ``np.True_``, ``array(``)."""


class NumpyRepr(AssertionError):
    """Text holds NumPy's repr of a number."""


def assert_numbers_only(text: str) -> None:
    """Check that printed text holds numbers, never NumPy's repr of them.

    Parameters
    ----------
    text : str

    Raises
    ------
    NumpyRepr
        Showing the lines of ``text`` that match NUMPY_REPR.
    """
    bad = [line for line in text.splitlines() if NUMPY_REPR.search(line)]
    if bad:
        raise NumpyRepr("\n".join(bad))
