import numpy as np
import pytest

from reference import lipschitz
from reference.exact import (MilpNotOptimal, NotApplicable, exact_1d, exact_milp, knot_form)
from reference.limits import TooLarge
from reference.network import Dense, Identity, LeakyReLU, Network, ReLU, build_mlp
from theory_checks.lipschitz_bound import random_net


def scan_slope(net, lo, hi, points=1_000_001, p=2.0):
    x = np.linspace(lo, hi, points)
    f = net.forward(x[:, None])
    return float(np.max(np.linalg.norm(np.diff(f, axis=0), ord=p, axis=1) / np.diff(x)))


@pytest.mark.parametrize("activation", ["spline", "relu", "leaky_relu", "prelu"])
@pytest.mark.parametrize("p", [1.0, 2.0, np.inf])
def test_exact_1d_agrees_with_a_dense_scan(activation, p):
    net = random_net([1, 7, 6, 2], activation, seed=4)
    r = exact_1d(net, p)
    b = r["breakpoints"]
    scan = scan_slope(net, b.min() - 1, b.max() + 1, p=p)
    assert scan <= r["value"] * (1 + 1e-9)          # secant slopes never exceed the max slope
    assert scan >= r["value"] * (1 - 1e-3)          # and a fine grid gets close to it
    assert r["linear_pieces"] <= r["pieces"] == len(b) + 1


def test_exact_1d_by_hand():
    # f(x) = relu(x) - 3 relu(x - 1) + 2.5 relu(x - 2): slopes 0, 1, -2, 0.5
    net = Network([Dense(np.ones((3, 1)), np.array([0.0, -1.0, -2.0])), ReLU(),
                   Dense(np.array([[1.0, -3.0, 2.5]])), Identity()])
    r = exact_1d(net, 2)
    assert r["value"] == pytest.approx(2.0, rel=1e-15)
    np.testing.assert_allclose(r["breakpoints"], [0.0, 1.0, 2.0])
    assert r["pieces"] == r["linear_pieces"] == 4
    assert 1.0 < r["argmax_point"] < 2.0


def test_exact_1d_counts_pieces_and_stops_with_a_bracket():
    net = random_net([1, 8, 8, 1], "spline", seed=1)
    r = exact_1d(net, 2)
    assert r["pieces"] > 10 and r["status"] == "optimal"
    assert r["lower_bound"] == r["value"] == r["upper_bound"] and r["certified_exact"]
    stopped = exact_1d(net, 2, max_pieces=r["pieces"] - 1)   # stops in the last layer
    assert stopped["status"] == "max_pieces" and stopped["value"] is None
    assert not stopped["certified_exact"] and "pass a larger max_pieces" in stopped["reason"]
    # the lower end is a secant slope: exact up to the rounding of f's differences
    assert 0 < stopped["lower_bound"] <= r["value"] * (1 + 1e-9)
    assert r["value"] <= stopped["upper_bound"]
    assert stopped["upper_bound"] <= lipschitz.layerwise(net, 2) * (1 + 1e-12)
    with pytest.raises(ValueError, match="1 input"):
        exact_1d(random_net([2, 3, 1], "relu", seed=0), 2)


@pytest.mark.parametrize("activation", ["spline", "relu", "leaky_relu", "prelu"])
@pytest.mark.parametrize("p", [1.0, np.inf])
def test_milp_is_exact_and_attained(activation, p):
    net = random_net([2, 5, 4, 2], activation, seed=2, size=7)
    r = exact_milp(net, p, box=2.0)
    assert r["status"] == "optimal" and r["certified_exact"]
    assert r["witness"] == pytest.approx(r["value"], rel=1e-9)
    assert np.all(np.abs(r["witness_x"]) <= 2.0)
    low = lipschitz.lower(net, p, box=2.0, num_points=3000)["value"]
    assert low <= r["value"] * (1 + 1e-12)
    assert r["value"] <= lipschitz.layerwise(net, p) * (1 + 1e-12)
    # brute force over a grid of the box: nothing steeper than the MILP optimum
    g = np.linspace(-2, 2, 161)
    x = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2) + 1e-7   # off the kinks
    jac = net.input_jacobian(x)
    axis = 1 if p == 1.0 else 2
    assert np.abs(jac).sum(axis=axis).max() <= r["value"] * (1 + 1e-12)


def test_milp_agrees_with_breakpoint_propagation_in_1d():
    net = random_net([1, 6, 5, 1], "spline", seed=3)
    e1 = exact_1d(net, np.inf)
    b = e1["breakpoints"]
    box = float(np.abs(b).max() + 1)                 # the box holds every piece
    assert exact_milp(net, np.inf, box=box)["value"] == pytest.approx(e1["value"], rel=1e-9)


def test_milp_degenerate_pattern_is_not_called_exact():
    # f(x) = relu(x) - relu(x) = 0; the MILP may pick (on, off) at x = 0, slope 1
    net = Network([Dense(np.ones((2, 1)), np.zeros(2)), ReLU(),
                   Dense(np.array([[1.0, -1.0]])), Identity()])
    r = exact_milp(net, np.inf, box=1.0)
    assert exact_1d(net, np.inf)["value"] == 0.0
    if r["value"] > 0:                                # an upper bound, not attained
        assert not r["certified_exact"] and r["interior_margin"] <= 0


def test_milp_bad_input_and_guards():
    net = random_net([3, 8, 8, 2], "spline", seed=0, size=11)
    with pytest.raises(TooLarge, match="pass a larger max_binaries"):
        exact_milp(net, np.inf, box=2.0, max_binaries=5)
    with pytest.raises(NotApplicable, match="p = 1 or inf"):
        exact_milp(net, 2)
    with pytest.raises(ValueError, match="p: expected"):
        exact_milp(net, 3)
    with pytest.raises(ValueError, match="box"):
        exact_milp(net, 1, box=-1.0)
    big = random_net([4, 14, 14, 2], "spline", seed=0, size=15)
    r = exact_milp(big, np.inf, box=3.0, time_limit=0.05, max_binaries=10_000)
    assert r["status"] == "time_limit" and r["value"] is None and not r["certified_exact"]
    low = lipschitz.lower(big, np.inf, box=3.0, num_points=500, rounds=5)["value"]
    assert low <= r["upper_bound"] <= lipschitz.layerwise(big, np.inf) * (1 + 1e-9)


def test_knot_form_of_the_relu_family():
    z = np.linspace(-2, 2, 9)[:, None] * np.ones((1, 2))
    for layer in (ReLU(), LeakyReLU(-0.3)):
        spl = knot_form(layer, 2)
        np.testing.assert_allclose(spl(z), layer.forward(z)[0], rtol=0, atol=1e-15)
    spl = knot_form(LeakyReLU(1.0), 2)                 # the identity: no knot left
    assert all(len(k) == 0 for k in spl.knots)
    net = build_mlp([1, 3, 1], "identity", rng=0)
    assert exact_1d(net, 2)["pieces"] == 1


def test_milp_objective_disagreeing_with_numpy_is_an_error(monkeypatch):
    import reference.exact as exact_mod

    net = random_net([2, 4, 1], "relu", seed=0)
    real = exact_mod._pattern_affine

    def doubled(*args):
        jac, rows = real(*args)
        return 2 * jac, rows
    monkeypatch.setattr(exact_mod, "_pattern_affine", doubled)
    with pytest.raises(MilpNotOptimal, match="disagrees with the NumPy re-evaluation"):
        exact_milp(net, np.inf, box=1.0)


def test_ladder_reports_a_stopped_milp_as_no_value():
    from reference import ladder

    big = random_net([4, 14, 14, 2], "spline", seed=0, size=15)
    r = ladder.run_method("exact", big, "inf", box=3.0, time_limit=0.05, max_binaries=10_000)
    assert r["value"] is None and "no exact value" in r["reason"]
    assert r["status"] == "time_limit" and "certified bracket" in r["reason"]
    assert r["upper_bound"] >= ladder.run_method("lower", big, "inf", box=3.0)["value"]
