import numpy as np
import pytest

from reference.exceptions import OverflowResult
from reference.lipschitz import _bounds as lipschitz
from reference.lipschitz import _ladder as ladder
from reference.nn._linear_spline import LinearSpline
from reference.nn._network import (
    Dense,
    Identity,
    LeakyReLU,
    Network,
    ReLU,
    SplineActivation,
    build_mlp,
)


def sampled_lower_bound(net, p, rng, n=2000):
    """max over random pairs of ||f(x) - f(x')||_p / ||x - x'||_p."""
    x = rng.normal(size=(n, net.n_in)) * 2
    x2 = x + rng.normal(size=x.shape) * 0.05
    num = np.linalg.norm(net.forward(x) - net.forward(x2), ord=p, axis=1)
    den = np.linalg.norm(x - x2, ord=p, axis=1)
    return float(np.max(num / den))


@pytest.mark.parametrize("p", ["1", "2", "inf"])
@pytest.mark.parametrize("activation", ["spline", "relu", "prelu", "leaky_relu"])
def test_theorem1_bounds_hold_and_are_ordered(p, activation):
    rng = np.random.default_rng(0)
    net = build_mlp([3, 5, 4, 2], activation, rng=1, spline_init="even_odd", size=11,
                    range_=2.0)
    if activation == "spline":
        for layer in net.layers:
            if layer.kind == "spline":
                coefficients = layer.params["coefficients"]
                coefficients += 0.3 * rng.normal(size=coefficients.shape)
    lower = sampled_lower_bound(net, lipschitz.parse_p(p), rng)
    t1 = lipschitz.theorem1(net, p)
    t1_bv2 = lipschitz.theorem1_bv2(net, p)
    assert lower <= t1 * (1 + 1e-12)
    assert t1 <= t1_bv2 * (1 + 1e-12)


def test_theorem1_by_hand():
    w1 = np.array([[1.0, -2.0], [3.0, 0.5]])
    w2 = np.array([[2.0, -1.0]])
    net = Network([Dense(w1), LeakyReLU(-3.0), Dense(w2), Identity()])
    # p = 2: max row norm sqrt(9.25) * ||(3, 3)||_2 * ||(2, -1)||_2 * ||1||_2
    assert lipschitz.theorem1(net, 2) == pytest.approx(np.sqrt(9.25) * np.sqrt(18) * np.sqrt(5),
                                                    rel=1e-13, abs=0)
    # p = inf (q = 1): max row l1 norm 3.5; BV2 of leaky(-3): |1 - (-3)| + 0 + 1 = 5
    assert lipschitz.theorem1_bv2(net, "inf") == pytest.approx(3.5 * 5 * 3.0 * 1, rel=1e-13, abs=0)
    relu = Network([Dense(w1), ReLU(), Dense(w2)])
    assert lipschitz.theorem1_bv2(relu, 1) == pytest.approx(3.0 * 4.0 * 2.0 * 1.0, rel=1e-13, abs=0)


def test_bad_p_and_non_finite():
    net = build_mlp([2, 2, 1], "relu", rng=0)
    for bad in (3, "two", None, 0.5):
        with pytest.raises(ValueError, match="p: expected one of 1, 2, inf"):
            lipschitz.theorem1(net, bad)
    assert [lipschitz.parse_p(p) for p in ("1", 2, "inf", np.inf, 2.0)] == [1, 2, np.inf, np.inf, 2]
    net.layers[0].params["weight"][0, 0] = np.nan
    with pytest.raises(ValueError, match="layer0.weight holds NaN"):
        lipschitz.theorem1(net, 2)


@pytest.mark.parametrize("p", ["1", "2", "inf"])
def test_lower_bound_below_the_upper_bounds(p):
    net = build_mlp([3, 6, 4, 2], "spline", rng=3, spline_init="even_odd", size=11, range_=2.0)
    result = lipschitz.lower(net, p, box=2.0, seed=1)
    assert 0 < result["value"] <= lipschitz.layerwise(net, p) * (1 + 1e-9)
    # the reported pair really achieves (nearly) the value
    pv = lipschitz.parse_p(p)
    ratio = (np.linalg.norm(net.forward(result["x_pair"][None])[0]
                            - net.forward(result["x"][None])[0], ord=pv)
             / np.linalg.norm(result["x_pair"] - result["x"], ord=pv))
    assert ratio == pytest.approx(result["pair_ratio"], rel=1e-12, abs=0)
    assert lipschitz.lower(net, p, box=2.0, seed=1)["value"] == result["value"]  # seeded


def test_lower_bound_is_tight_for_one_neuron():
    """f(x) = sigma(2x) with a single spline: Lip = 2 * max|slope| over [-box, box]."""
    from reference.nn._linear_spline import LinearSpline
    from reference.nn._network import Dense, SplineActivation
    spline = LinearSpline([[0.0, 1.0, 1.5, -2.0, -2.5]], -1.0, 0.5)   # slopes 2, 1, -7, -1
    net = Network([Dense([[2.0]]), SplineActivation(spline)])
    result = lipschitz.lower(net, 2, box=1.0, seed=0)
    assert result["value"] == pytest.approx(14.0, rel=1e-9)
    assert lipschitz.theorem1(net, 2) == pytest.approx(14.0, rel=1e-13, abs=0)


def two_spline_layers(weight, coefficients, step):
    """x -> sigma(w sigma(w x)), one spline neuron (K = 2: one slope c / step) per layer."""
    spline = SplineActivation(LinearSpline([[0.0, coefficients]], -1.0, step))
    return Network([Dense([[weight]]), spline, Dense([[weight]]), spline])


@pytest.mark.parametrize("net, log10", [
    (two_spline_layers(1e10, 1e100, 1e-50), 320.0),      # slopes 1e150, inside the range
    (two_spline_layers(1.0, 1e-200, 1e50), -500.0)])     # slopes 1e-250
def test_bounds_outside_the_float64_range_are_errors(net, log10):
    """Bug: Theorem 1's product over layers returned inf (4e300 x 1e20) or 0 (1e-500) as if
    it were a bound.  Every factor is finite and nonzero: OverflowResult with the bound's
    log10; the ladder reports no value and the reason."""
    for name in ("theorem1", "theorem1_bv2", "layerwise"):
        with pytest.raises(OverflowResult, match=rf"model: {name} \(p = 2\) = 10\^-?\d+\.\d\d "
                                                 "is outside the float64 range"):
            getattr(lipschitz, name)(net, 2)
    with pytest.raises(OverflowResult, match=f"10\\^{log10:.2f}"):
        lipschitz.layerwise(net, "inf")
    results = ladder.ladder(net, 2, methods=["theorem1", "layerwise"])
    assert all(r["value"] is None and "float64 range" in r["reason"] for r in results.values())


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_every_ladder_method_reports_an_overflow_as_no_value():
    """Slopes 1e150 and weights 1e10 in two layers: the Jacobian itself is 1e320, so the
    sampled lower bound, exact_1d, LipSDP and the closed forms all leave the float64 range;
    each is value None with the reason, none is inf."""
    net = two_spline_layers(1e10, 1e100, 1e-50)
    results = ladder.ladder(net, 2)
    assert all(r["value"] is None and "float64 range" in r["reason"]
               for r in results.values()), results


def test_products_in_range_are_computed_without_intermediate_overflow():
    """A factor 1e160 then 1e-300: the bound 1e-140 (the row norm sqrt(1e-600) of the plain
    formula underflowed to 0); an exactly zero factor gives 0, which is a bound."""
    big = SplineActivation(LinearSpline([[0.0, 1e100]], -1.0, 1e-50))       # slope 1e150
    net = Network([Dense([[1e10]]), big, Dense([[1e-300]]), Identity()])
    for name in ("theorem1", "layerwise"):
        assert getattr(lipschitz, name)(net, 2) == pytest.approx(1e-140, rel=1e-14, abs=0)
    net.layers[2].params["weight"][0, 0] = 0.0
    assert lipschitz.theorem1(net, 2) == lipschitz.layerwise(net, 1) == 0.0
    scaled, power = lipschitz.scaled_product(np.array([1e200, 3.0]), np.array([1e200, 0.0]))
    assert np.log10(scaled[0]) + power * np.log10(2) == pytest.approx(400, rel=1e-15)
    assert 0.25 <= scaled[0] < 1 and scaled[1] == 0.0                      # 1e400 as S 2^e


@pytest.mark.parametrize("p", ["1", "2", "inf"])
def test_lower_pair_stays_in_the_box_at_a_face(p):
    """f = relu(x1 - 0.99) + 10 relu(x1 - 0.999) + 100 relu(x1 - 0.9999): the steepest region is
    the strip 0.9999 < x1 <= 1, which the local search reaches by clipping its points onto
    the face x1 = 1; the pair (x, x_pair) must lie in the box (bug: x_pair = x + h v left it)
    and still realise the value."""
    from reference.nn._network import Dense, ReLU
    net = Network([Dense([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], [-0.99, -0.999, -0.9999]),
                   ReLU(), Dense([[1.0, 10.0, 100.0]])])
    r = lipschitz.lower(net, p, box=1.0, seed=0)
    pv = lipschitz.parse_p(p)
    assert r["value"] == pytest.approx(111.0, rel=1e-12)
    assert np.all(np.abs(r["x"]) <= 1.0) and np.all(np.abs(r["x_pair"]) <= 1.0)
    assert r["pair_ratio"] == pytest.approx(r["value"], rel=1e-8)
    ratio = (np.linalg.norm(net.forward(r["x_pair"][None])[0] - net.forward(r["x"][None])[0],
                            ord=pv) / np.linalg.norm(r["x_pair"] - r["x"], ord=pv))
    assert ratio == r["pair_ratio"]
