"""Metamorphic laws of the Lipschitz methods (issue 23): exact, lower, layer-wise, Theorem 1,
ECLipsE-Fast (p = 2; ECLipsE and LipSDP: tests/lipschitz/test_lipsdp_scaling.py).

Homogeneous law.  Number the dense layers k = 0 .. L-1 and scale layer k's weight by s and
its bias by s^(k+1).  Then every pre-activation of layer k is multiplied by s^(k+1).  A
positively homogeneous activation (ReLU, LeakyReLU, PReLU, identity) passes the factor
through; a linear spline sigma is replaced by sigma_k(t) = s^(k+1) sigma(t / s^(k+1)): its
grid (x_min, step) and its coefficients multiplied by s^(k+1) (its slopes unchanged; a knot
spline: points and values multiplied).  By induction every activation's output is
multiplied by s^(k+1) and f_s(x) = s^L f(x): every Lipschitz value (exact, lower, layer-wise,
Theorem 1 with the activations' exact slopes; LipSDP too) is multiplied by exactly s^L, and a
claim C holds for f exactly when s^L C holds for f_s.  (Theorem 1's BV2 form is not
homogeneous: |sigma(0)| + |sigma(1)| does not scale.)

Input law.  Dividing the first weight by s and multiplying the box by s gives g(x) = f(x / s)
over the box s R: the same function in other units, every value divided by s.

Checked for p = 1, 2, inf, ReLU and spline networks with 1, 2 and 3 inputs, s a power of 2
(every product exact: the same computation) or of 10 (the scaled parameters rounded once),
from 1e-8 to 1e8: the values follow the law to 1e-9 relative (exact, layer-wise, Theorem
1), the sampled lower bound too (the same search: its comparisons are scale-free), and
check_claim gives the same verdict for the scaled claim at every scale.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.lipschitz import _ladder as ladder
from reference.lipschitz._verdict import check_claim
from reference.nn._linear_spline import LinearSpline
from reference.nn._network import Dense, KnotSplineActivation, Network, SplineActivation
from reference.testing import check_property, random_net

METHODS = ("exact", "lower", "layerwise", "theorem1", "eclipse_fast")
SEARCH = {"num_points": 300, "rounds": 4}         # lower: a short seeded search suffices
SHAPES = {1: [1, 5, 4, 1], 2: [2, 5, 4, 1], 3: [3, 4, 3, 1]}


def homogeneous(net: Network, s: float) -> tuple[Network, int]:
    """(f_s, L) of the homogeneous law (module docstring): f_s(x) = s^L f(x)."""
    layers, k = [], 0
    for layer in net.layers:
        factor = s ** (k + 1)
        if layer.kind == "dense":
            b = layer.params.get("bias")
            layers.append(Dense(s * layer.params["weight"], None if b is None else factor * b))
            k += 1
            continue
        factor = s ** k                          # the dense layer before it is layer k - 1
        if isinstance(layer, SplineActivation):
            spline = layer.spline
            layer = SplineActivation(LinearSpline(factor * spline.coefficients,
                                                  factor * spline.x_min, factor * spline.step))
        elif isinstance(layer, KnotSplineActivation):
            layer = KnotSplineActivation([factor * p for p in layer.points],
                                         [factor * v for v in layer.values])
        layers.append(layer)
    return Network(layers), k


def in_other_units(net: Network, s: float) -> Network:
    """g(x) = f(x / s): the first weight divided by s (the input law)."""
    first = net.layers[0]
    return Network([Dense(first.params["weight"] / s, first.params.get("bias")),
                    *net.layers[1:]])


def values(net: Network, p, box: float) -> dict:
    return {name: ladder.run_method(name, net, p, box=box, **SEARCH)["value"]
            for name in METHODS}


def verdicts(net: Network, p, box: float, claims) -> list:
    return [check_claim(net, c, p, box=box, methods=",".join(METHODS), **SEARCH).verdict
            for c in claims]


def claims_around(reference: dict) -> list:
    """Claims on both sides of the exact value (else of the lower bound) and of the
    layer-wise bound, away from them by more than any method's margin (1e-2 relative; the
    MILP's tolerance is 1e-5 of the layer-wise bound)."""
    value = reference["exact"] if reference["exact"] is not None else reference["lower"]
    return [c for v in (value, reference["layerwise"]) for c in (0.99 * v, 1.01 * v)]


def check_law(net, scaled, p, box, scaled_box, factor) -> None:
    """Every value of `scaled` over scaled_box is factor x net's over box (1e-9 relative),
    and the verdicts on claims C and factor x C agree."""
    base, other = values(net, p, box), values(scaled, p, scaled_box)
    for name in METHODS:
        if base[name] is None:
            assert other[name] is None, name
            continue
        assert other[name] == pytest.approx(factor * base[name], rel=1e-9, abs=0), name
    claims = claims_around(base)
    assert verdicts(scaled, p, scaled_box, [factor * c for c in claims]) == verdicts(
        net, p, box, claims)


def scale_of(base: int, exponent: float) -> float:
    """base^e with base^e in [1e-8, 1e8]: a power of 2 (e in -26..26) or of 10 (-8..8)."""
    return float(base) ** (round(exponent * (26 if base == 2 else 8)))


cases = st.fixed_dictionaries({
    "seed": st.integers(0, 10_000), "n_in": st.sampled_from([1, 2, 3]),
    "activation": st.sampled_from(["relu", "spline", "leaky_relu"]),
    "p": st.sampled_from([1.0, 2.0, np.inf]), "base": st.sampled_from([2, 10]),
    "exponent": st.floats(-1, 1), "box": st.sampled_from([1.0, 0.25, 3.0])})


def network_and_scale(case: dict) -> tuple[Network, float]:
    net = random_net(SHAPES[case["n_in"]], case["activation"], seed=case["seed"], size=7)
    return net, scale_of(case["base"], case["exponent"])


def test_homogeneous_law(profile):
    @given(cases)
    def prop(case):
        net, s = network_and_scale(case)
        scaled, depth = homogeneous(net, s)
        check_law(net, scaled, case["p"], case["box"], case["box"], s ** depth)
    check_property(prop, profile, examples=8, slow_examples=200)


def test_input_law(profile):
    @given(cases)
    def prop(case):
        net, s = network_and_scale(case)
        check_law(net, in_other_units(net, s), case["p"], case["box"], case["box"] * s, 1 / s)
    check_property(prop, profile, examples=8, slow_examples=200)


@pytest.mark.parametrize("s", [2.0 ** -26, 1e-8, 1e8, 2.0 ** 26])
@pytest.mark.parametrize("n_in, activation, p", [(2, "spline", 2.0), (3, "relu", 1.0),
                                                 (3, "relu", np.inf), (1, "spline", np.inf)])
def test_homogeneous_law_at_the_ends_of_the_range(s, n_in, activation, p):
    """The extreme scales of the issue, on spline networks (regions, breakpoints) and ReLU
    networks with 3 inputs (the MILP for p = 1, inf)."""
    net = random_net(SHAPES[n_in], activation, seed=5, size=7)
    scaled, depth = homogeneous(net, s)
    check_law(net, scaled, p, 1.0, 1.0, s ** depth)


def test_the_law_itself():
    """f_s(x) = s^L f(x) and g(s x) = f(x) at random points (the construction is right)."""
    rng = np.random.default_rng(0)
    for activation in ("relu", "spline", "leaky_relu"):
        net = random_net([2, 5, 4, 1], activation, seed=1, size=7)
        x = rng.uniform(-1, 1, (50, 2))
        scaled, depth = homogeneous(net, 2.0 ** 10)
        np.testing.assert_allclose(scaled.forward(x), 2.0 ** (10 * depth) * net.forward(x),
                                   rtol=1e-13, atol=0)
        np.testing.assert_allclose(in_other_units(net, 1e3).forward(1e3 * x), net.forward(x),
                                   rtol=1e-12, atol=1e-15)
