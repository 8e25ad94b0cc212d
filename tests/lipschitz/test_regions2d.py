import numpy as np
import pytest

from reference.lipschitz import _bounds as lipschitz
from reference.lipschitz import _ladder as ladder
from reference.lipschitz._exact1d import exact_1d_on_box
from reference.lipschitz._milp import exact_milp
from reference.lipschitz._regions2d import areas, clip, regions_2d
from reference.nn._linear_spline import LinearSpline
from reference.nn._network import (
    Dense,
    Identity,
    KnotSplineActivation,
    Network,
    ReLU,
    SplineActivation,
)
from reference.testing import bias_free_relu_cones, random_net, sampled_max_norm


def test_clip_and_areas_by_hand():
    square = np.array([[[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]])
    count = np.array([4])
    assert areas(square, count)[0] == 4.0
    # keep x + y <= 2: the triangle below the diagonal (a vertex on the line is kept once)
    s = square[..., 0] + square[..., 1] - 2.0
    tri, n, _ = clip(square, count, s)
    assert n[0] == 3 and areas(tri, n)[0] == 2.0
    # keep x <= 0.5: a rectangle 0.5 x 2, two new vertices on the cut
    rect, n, _ = clip(square, count, square[..., 0] - 0.5)
    assert n[0] == 4 and areas(rect, n)[0] == 1.0
    assert np.all(rect[0, :4, 0] <= 0.5)
    # keep nothing
    _, n, _ = clip(square, count, np.full((1, 4), 1.0))
    assert n[0] == 0


@pytest.mark.parametrize("activation", ["spline", "relu", "leaky_relu", "prelu"])
@pytest.mark.parametrize("p", [1.0, np.inf])
def test_agrees_with_the_milp(activation, p):
    net = random_net([2, 5, 4, 2], activation, seed=2, size=5)
    r = regions_2d(net, p, box=2.0)
    m = exact_milp(net, p, box=2.0)
    assert m["status"] == "optimal" and r["status"] == "optimal" and r["certified_exact"]
    assert r["value"] == pytest.approx(m["value"], rel=1e-9, abs=0)
    assert r["lower_bound"] == r["value"] <= r["upper_bound"] <= r["value"] * (1 + 1e-12)


def test_agrees_with_the_milp_on_deeper_relu_nets():
    for seed in range(3):
        net = random_net([2, 6, 5, 4, 1], "relu", seed=seed)
        for p in (1.0, np.inf):
            m = exact_milp(net, p, box=1.5)
            assert m["status"] == "optimal"
            assert regions_2d(net, p, box=1.5)["value"] == pytest.approx(m["value"], rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_the_milp_on_spline_nets_slow(seed):
    """Wherever the MILP finishes (60 s each), on deeper spline networks (MILPs of 10-30 s)."""
    net = random_net([2, 6, 5, 4, 1], "spline", seed=seed, size=9)
    for p in (1.0, np.inf):
        m = exact_milp(net, p, box=1.5)
        if m["status"] == "optimal":
            assert regions_2d(net, p, box=1.5)["value"] == pytest.approx(m["value"], rel=1e-9)


@pytest.mark.parametrize("p", [1.0, 2.0, np.inf])
def test_agrees_with_exact_1d_when_the_second_input_is_ignored(p):
    net = random_net([2, 6, 5, 2], "spline", seed=7, size=9)
    net.layers[0].params["weight"][:, 1] = 0.0           # f(x1, x2) = g(x1)
    one = Network([Dense(net.layers[0].params["weight"][:, :1], net.layers[0].params["bias"]),
                   *net.layers[1:]])
    expected = exact_1d_on_box(one, p, 1.5)["box_value"]
    r = regions_2d(net, p, box=1.5)
    assert r["status"] == "optimal"
    assert r["value"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("p", [1.0, 2.0, np.inf])
def test_a_brute_force_grid_never_exceeds_it(p):
    net = random_net([2, 8, 6, 2], "spline", seed=3, size=9)
    r = regions_2d(net, p, box=1.0)
    g = np.linspace(-1, 1, 201)
    x = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2) + 1.234e-7        # off the kinks
    x = np.clip(x, -1, 1)
    grid = lipschitz.jacobian_norms(net.input_jacobian(x), p).max()
    assert grid <= r["value"] * (1 + 1e-12)
    assert grid >= 0.9 * r["value"]                  # the grid gets close: the value is real
    # secant slopes between neighbours of the grid: never above the constant
    f = net.forward(x).reshape(201, 201, -1)
    dx = g[1] - g[0]
    for axis in (0, 1):
        secant = np.linalg.norm(np.diff(f, axis=axis), ord=p, axis=-1) / dx
        assert secant.max() <= r["value"] * (1 + 1e-9)


def test_certificate_and_witness():
    net = random_net([2, 24, 24, 1], "relu", seed=0)
    r = regions_2d(net, 2, box=2.0)
    assert r["status"] == "optimal" and r["regions"] == 701      # the prototype
    assert r["area_error"] <= 1e-9 and r["jacobian_mismatches"] == 0
    assert r["jacobian_checked"] + r["unattained_regions"] == r["regions"]
    assert 0 < r["rounding_bound"] < 1e-12 * r["value"] * 1e3
    x, x_pair = np.array(r["witness_x"]), np.array(r["witness_x_pair"])
    assert np.all(np.abs(x) <= 2.0) and np.all(np.abs(x_pair) <= 2.0)
    ratio = (np.linalg.norm(net.forward(x_pair[None])[0] - net.forward(x[None])[0])
             / np.linalg.norm(x_pair - x))
    assert ratio == pytest.approx(r["value"], rel=1e-9) and ratio == r["witness"]
    assert np.linalg.norm(x_pair - x) > 1e-3          # a long chord: little rounding


def test_bias_free_relu_cones():
    """All lines through 0 (every region a cone at the origin): the MILP needed cuts here;
    the enumeration finds the cones directly (sampled value to 1e-12, as in test_exact)."""
    net = bias_free_relu_cones()
    r = regions_2d(net, 1, box=0.5)
    sampled = sampled_max_norm(net, 1.0, 0.5)
    assert r["status"] == "optimal" and r["value"] == pytest.approx(sampled, rel=1e-12)


def test_knot_spline_layer():
    net = Network([Dense([[1.0, -0.5], [0.3, 0.8]], [0.1, -0.2]),
                   KnotSplineActivation([np.array([-1.0, 0.0, 0.7]), np.array([-0.5, 0.5])],
                                        [np.array([0.0, 2.0, 1.0]), np.array([0.3, -0.4])]),
                   Dense([[1.0, 2.0]]), Identity()])
    r = regions_2d(net, np.inf, box=1.0)
    m = exact_milp(net, np.inf, box=1.0)
    assert r["status"] == "optimal" and r["value"] == pytest.approx(m["value"], rel=1e-9)


def test_stops_with_a_bracket():
    net = random_net([2, 10, 10, 1], "spline", seed=1, size=9)
    full = regions_2d(net, 2, box=1.0)
    stopped = regions_2d(net, 2, box=1.0, max_regions=full["regions"] // 3)
    assert stopped["status"] == "max_regions" and stopped["value"] is None
    assert "pass a larger max_regions" in stopped["reason"]
    assert stopped["lower_bound"] <= full["value"] * (1 + 1e-9)
    assert full["value"] <= stopped["upper_bound"] <= lipschitz.layerwise(net, 2) * (1 + 1e-12)
    x, x_pair = np.array(stopped["witness_x"]), np.array(stopped["witness_x_pair"])
    assert np.all(np.abs(x) <= 1.0) and np.all(np.abs(x_pair) <= 1.0)
    timed = regions_2d(net, 2, box=1.0, time_limit=1e-9)
    assert timed["status"] == "time_limit" and timed["value"] is None
    assert timed["lower_bound"] <= full["value"] * (1 + 1e-9) <= timed["upper_bound"]


def test_bad_input():
    net = random_net([2, 3, 1], "relu", seed=0)
    with pytest.raises(ValueError, match="2 inputs"):
        regions_2d(random_net([3, 3, 1], "relu", seed=0), 2)
    with pytest.raises(ValueError, match="p: expected"):
        regions_2d(net, 3)
    with pytest.raises(ValueError, match="box"):
        regions_2d(net, 2, box=0.0)
    with pytest.raises(ValueError, match="max_regions"):
        regions_2d(net, 2, max_regions=0)
    with pytest.raises(ValueError, match="time_limit"):
        regions_2d(net, 2, time_limit=float("nan"))


def test_ladder_uses_it_for_two_inputs():
    net = random_net([2, 5, 4, 2], "prelu", seed=2, size=7)
    for p in ("1", "2", "inf"):
        r = ladder.run_method("exact", net, p, box=2.0)
        assert r["method"] == "linear regions (polygons)" and r["certified_exact"]
        assert r["value"] == regions_2d(net, p, box=2.0)["value"]
    results = ladder.ladder(net, 2, box=2.0, methods="lower,exact,layerwise,lipsdp_neuron")
    assert ladder.order_violations(results) == []
    stopped = ladder.run_method("exact", net, 2, box=2.0, max_regions=2)
    assert stopped["value"] is None and "certified bracket" in stopped["reason"]


def test_a_polygon_inside_a_cuts_band_is_not_counted_twice():
    """Found by the ladder property: a bias-free ReLU layer straight into a spline whose knot
    is 0, so the spline's cut line is the ReLU's own boundary and a whole polygon lies in its
    band.  Both strips kept the whole polygon (the areas summed to 1.144 of the box, no
    value); the strip below is now left to the exact step."""
    net = Network([Dense([[0.08890469193522228, -0.09341224466100137],
                          [0.4528471989539066, 0.07417558418617765]]), ReLU(),
                   SplineActivation(LinearSpline(
                       [[1.3040000451301372, 0.9470809631292422, -0.7037352358069926],
                        [-1.2654214710460525, -0.6232744625373522, 0.0413259793472436]],
                       -2.7818889431943044, 2.7818889431943044))])
    for p in (1.0, 2.0, np.inf):
        r = regions_2d(net, p, box=0.5)
        assert r["status"] == "optimal" and r["area_error"] <= 1e-15
        assert r["value"] == pytest.approx(sampled_max_norm(net, p, 0.5), rel=1e-12)


def test_an_interrupted_exact_step_quotes_its_bound_as_a_number(monkeypatch):
    """When the time limit comes inside the exact step, the reason quotes the largest bound
    left as a number ('np.float64(1955...)' was printed at --box 1e290), and the bracket
    holds the strip's constant."""
    from reference.lipschitz import _rational

    def out_of_time(*args, **kwargs):
        raise TimeoutError
    monkeypatch.setattr(_rational, "regions", out_of_time)
    a = 1e6                 # a strip 2^-50 wide across the box: decided in exact arithmetic
    net = Network([Dense(np.array([[1.0, 0.3], [1.0, 0.3]]), np.array([0.5, 0.5 - 2.0**-50])),
                   ReLU(), Dense(np.array([[a, -a]]))])
    r = regions_2d(net, 2, box=1.0)
    assert r["status"] == "not_certified" and r["value"] is None
    assert "largest bound left " in r["reason"] and "np.float64(" not in r["reason"]
    left = float(r["reason"].split("largest bound left ")[1].split(")")[0])
    assert r["upper_bound"] >= left >= a
