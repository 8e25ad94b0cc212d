import numpy as np
import pytest

import reference.lipschitz._exact as exact_mod
import reference.lipschitz._milp as milp_mod
from reference.exceptions import MilpNotOptimal, NotApplicable, TooLarge
from reference.lipschitz import _bounds as lipschitz
from reference.lipschitz import _ladder as ladder
from reference.lipschitz._exact import box_halfspaces, chord_pair, jacobian_rounding, knot_form
from reference.lipschitz._exact1d import exact_1d, exact_1d_on_box
from reference.lipschitz._milp import exact_milp
from reference.lipschitz._regions2d import regions_2d
from reference.nn._linear_spline import LinearSpline
from reference.nn._network import (
    Dense,
    Identity,
    LeakyReLU,
    Network,
    PReLU,
    ReLU,
    SplineActivation,
    build_mlp,
)
from reference.testing import bias_free_relu_cones, random_net, sampled_max_norm


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
    if r["status"] == "optimal":                      # HiGHS found the slope-0 pattern
        assert r["value"] == 0.0 and r["certified_exact"]
    else:                                             # an upper bound, not attained
        assert r["status"] == "not_attained" and r["value"] is None
        assert not r["certified_exact"] and "no interior point" in r["reason"]
        assert r["upper_bound"] >= 1.0


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


def spline_prelu_2_3_2():
    """A 2-3-2 network (spline, PReLU) found by a random search: with p = 1 on the box [-1, 1]^2
    HiGHS's objective 1.19874686 exceeds the NumPy value of its own pattern 1.19874500 by
    1.86e-6 (HiGHS's row tolerance 1e-6 at work); the former check (1e-6 relative) raised
    MilpNotOptimal and the ladder had no exact value."""
    return Network([
        Dense([[0.23587954489112267, -0.7887676643456383],
               [-0.15159767798085813, -0.7544980041920827],
               [0.3154276110495759, 0.3654582180416042]]),
        SplineActivation(LinearSpline(
            [[-1.7406874664564231, -0.43283266270852755, 1.2925732975673099, 0.31081155357544993],
             [0.17279917740664774, 0.817346458002065, 1.3778738621015638, -0.7580334949065639],
             [0.2573680208527426, -0.5054783505680079, 0.8247601093362878, 0.14640841279311367]],
            -1.653064450229992, 1.1020429668199947)),
        Dense([[-0.5078625893660311, 0.12725793764874416, 0.2011694973544653],
               [0.06692695875699424, 0.502825089998696, 0.20902091529305175]],
              [-2.5548054424861526, -0.6355294412821191]),
        PReLU([-0.503209196612596, -0.8599314078872615])])


def test_milp_reports_the_witness_and_highs_bound_as_the_upper_end(monkeypatch):
    """Bug: HiGHS's objective and the NumPy re-evaluation differing by more than 1e-6
    relative (within HiGHS's own tolerance) was an error.  The value is now the witness (the
    network's Jacobian at an interior point, attained), HiGHS's bound + its tolerance the
    upper end, and the two agree to that tolerance: optimal.  (On this network HiGHS was
    1.86e-6 above its pattern before the MILP was normalised; the normalised problem no
    longer shows it, so HiGHS's answer is inflated by 5e-6 here, inside the tolerance.)"""
    net = spline_prelu_2_3_2()
    plain = exact_milp(net, 1, box=1.0)
    inflated_highs(monkeypatch, 1 + 5e-6)
    r = exact_milp(net, 1, box=1.0)
    assert r["milp_objective"] - r["value"] > 1e-6 * r["value"]     # the reproducer holds
    assert r["status"] == "optimal" and r["certified_exact"] and r["value"] == plain["value"]
    jac = net.input_jacobian(np.asarray(r["witness_x"])[None])[0]
    assert r["value"] == r["witness"] == r["lower_bound"] == lipschitz.operator_norm(jac, 1)
    assert np.all(np.abs(r["witness_x"]) <= 1.0)
    assert r["value"] < r["milp_dual_bound"] + r["tolerance"] <= r["upper_bound"]
    # the tolerance is relative to the problem's scale: the bound, or the layer-wise bound
    assert r["tolerance"] == pytest.approx(milp_mod.MILP_TOLERANCE * max(
        r["milp_dual_bound"], lipschitz.layerwise(net, 1)), rel=1e-12)
    low = lipschitz.lower(net, 1, box=1.0, num_points=3000)["value"]
    assert low <= r["upper_bound"]


def inflated_highs(monkeypatch, factor):
    """HiGHS's objective and dual bound multiplied by factor (its pattern unchanged)."""
    real = milp_mod._Milp.solve

    def solve(self, *args, **kwargs):
        res = real(self, *args, **kwargs)
        res.fun, res.mip_dual_bound = factor * res.fun, factor * res.mip_dual_bound
        return res
    monkeypatch.setattr(milp_mod._Milp, "solve", solve)


def test_milp_disagreeing_with_numpy_beyond_its_tolerance_is_a_bracket(monkeypatch):
    net = random_net([2, 4, 1], "relu", seed=0)
    true = exact_milp(net, np.inf, box=1.0)
    inflated_highs(monkeypatch, 1.01)                       # HiGHS 1% above its pattern
    r = exact_milp(net, np.inf, box=1.0)
    assert r["status"] == "solver_tolerance" and r["value"] is None
    assert not r["certified_exact"] and "differ by more than its tolerance" in r["reason"]
    assert r["lower_bound"] == true["value"]
    assert r["upper_bound"] == pytest.approx(1.01 * true["value"] + r["tolerance"], rel=1e-12)
    net3 = random_net([3, 4, 1], "relu", seed=0)              # the ladder's MILP: N_0 > 2
    out = ladder.run_method("exact", net3, "inf", box=1.0)
    assert out["method"].startswith("MILP")
    assert out["value"] is None and "certified bracket" in out["reason"]
    inflated_highs(monkeypatch, 0.99 / 1.01)                 # now 1% below: contradicts the
    r = exact_milp(net, np.inf, box=1.0)                     # attained value
    assert r["status"] == "solver_tolerance" and "not used" in r["reason"]
    assert r["upper_bound"] == pytest.approx(lipschitz.layerwise(net, np.inf), rel=1e-14)


def test_milp_cuts_off_patterns_without_interior():
    """Found by the ladder property: bias-free ReLU layers, so every region is a cone at 0
    and every activation pattern is feasible at x = 0.  The MILP's optimum (p = 1, box 0.5)
    was the pattern value 1.5309, a combination of pieces that no region has, and it was
    reported as the value (certified_exact False); the Lipschitz constant is 0.91507 (a
    positively homogeneous f: 400 000 samples of the box find every cone).  Patterns without
    interior are now cut off until the optimum is attained."""
    net = bias_free_relu_cones()
    r = exact_milp(net, 1, box=0.5)
    assert r["status"] == "optimal" and r["cuts"] >= 1
    sampled = sampled_max_norm(net, 1.0, 0.5)
    assert r["value"] == pytest.approx(sampled, rel=1e-12)
    assert r["upper_bound"] == pytest.approx(r["value"] + r["tolerance"], rel=1e-9)
    assert exact_milp(net, 1, box=0.5, max_cuts=0)["status"] == "not_attained"
    with pytest.raises(ValueError, match="max_cuts"):
        exact_milp(net, 1, max_cuts=-1)


def test_milp_degenerate_pattern_of_the_optimal_value_is_replaced():
    """Found by the ladder property: PReLU -> dense -> ReLU, no bias.  HiGHS's optimal pattern
    for p = 1 (value 0.85606631) has the cone {0} (the first PReLU neuron "off", equal in
    value to the full-dimensional cone with it "on"); after the cut, the same value is
    attained: optimal, not a bracket."""
    net = Network([PReLU([0.2739233746429086, -0.4604265724722594, -0.9180529521276106]),
                   Dense([[0.060564110876330755, -0.3092688567912055, 0.20876700228962852],
                          [0.7528647770791689, 0.5467974490070381, -0.40630172783139196]]),
                   ReLU()])
    r = exact_milp(net, 1, box=0.5)
    assert r["status"] == "optimal" and r["cuts"] >= 1 and r["attained"]
    assert r["value"] == pytest.approx(0.8560663057982436, rel=1e-12)
    jac = net.input_jacobian(np.asarray(r["witness_x"])[None])[0]
    assert lipschitz.operator_norm(jac, 1) == r["value"] and np.all(np.abs(r["witness_x"]) <= 0.5)


def solve_error_network():
    """Found by a random search: HiGHS 1.x returns "Solve error" (status 4) on its first MILP
    (p = 1, box 1) with presolve, and solves it without."""
    return Network([
        Dense([[-1.4203301100076924, -0.9636574972735443],
               [-0.3241171690521382, 0.13464610279066228],
               [0.17611425454261403, -0.48526144227461765]],
              [0.13980451998689614, 0.8638747906970895, 0.02819778196707359]),
        PReLU([0.7655773689231384, -0.8727404544400277, -0.6100145009568794]),
        Dense([[0.5935520103280096, 0.49970053781434676, 1.1462109834983567],
               [-0.8004352543168972, -0.004247441888588553, 0.010910405913941112]]),
        SplineActivation(LinearSpline(
            [[0.8203096048847448, -0.4820982796269735, -0.7230737181941982, 1.8781887822278713,
              -1.348950997584885],
             [-0.835356237111703, -0.2962353820468429, 0.9357547124385421, 1.1290369545377636,
              0.10513141855219739]], -1.27572519598454, 0.63786259799227))])


def test_highs_solve_error_is_retried_without_presolve(monkeypatch):
    """Bug: HiGHS's "Solve error" was MilpNotOptimal (no exact value in the ladder)."""
    net = solve_error_network()
    r = exact_milp(net, 1, box=1.0)
    assert r["status"] == "optimal" and r["certified_exact"]
    if any("Solve error" in a for a in r["attempts"]):      # this HiGHS version's failure
        assert any("presolve off" in a for a in r["attempts"])
    real = milp_mod._Milp.solve

    def failing(self, objective, time_limit, gap, presolve=True):
        res = real(self, objective, time_limit, gap, presolve)
        if presolve or fail_always:
            res.status, res.x, res.message = 4, None, "(HiGHS Status 4: Solve error)"
        return res
    monkeypatch.setattr(milp_mod._Milp, "solve", failing)
    fail_always = False
    net = random_net([2, 4, 1], "relu", seed=0)
    r = exact_milp(net, np.inf, box=1.0)
    assert r["status"] == "optimal" and r["attempts"] == [
        "MILP 1/1 presolve on: (HiGHS Status 4: Solve error)",
        "MILP 1/1 presolve off: Optimization terminated successfully. (HiGHS Status 7: Optimal)"]
    fail_always = True
    with pytest.raises(MilpNotOptimal, match="presolve on.*presolve off.*no exact value"):
        exact_milp(net, np.inf, box=1.0)


def test_ladder_reports_a_stopped_milp_as_no_value():
    from reference.lipschitz import _ladder as ladder

    big = random_net([4, 14, 14, 2], "spline", seed=0, size=15)
    r = ladder.run_method("exact", big, "inf", box=3.0, time_limit=0.05, max_binaries=10_000)
    assert r["value"] is None and "no exact value" in r["reason"]
    assert r["status"] == "time_limit" and "certified bracket" in r["reason"]
    assert r["upper_bound"] >= ladder.run_method("lower", big, "inf", box=3.0)["value"]


# ------------------------------------------------------------------ the split, shared helpers
def test_milp_witness_pair_in_every_status(monkeypatch):
    net = random_net([3, 5, 4, 1], "relu", seed=3)
    for p in (1.0, np.inf):
        r = exact_milp(net, p, box=1.0)
        pair = r["witness_pair"]
        assert r["status"] == "optimal" and "chord" in pair["source"]
        assert np.all(np.abs(pair["x"]) <= 1.0) and np.all(np.abs(pair["x_pair"]) <= 1.0)
        assert pair["ratio"] == pytest.approx(r["value"], rel=1e-9)
    real = milp_mod._Milp.solve

    def no_incumbent(self, *args, **kwargs):              # stopped before any solution
        res = real(self, *args, **kwargs)
        res.status, res.x, res.mip_dual_bound = 1, None, 1.3 * res.fun
        return res
    monkeypatch.setattr(milp_mod._Milp, "solve", no_incumbent)
    r = exact_milp(net, np.inf, box=1.0)
    true = lipschitz.layerwise(net, np.inf)
    assert r["status"] == "time_limit" and r["witness"] is None
    assert "seeded points" in r["witness_pair"]["source"]
    assert 0 < r["lower_bound"] <= r["upper_bound"] <= true * (1 + 1e-9)
    jac = net.input_jacobian(np.asarray(r["witness_x"])[None])[0]
    assert lipschitz.operator_norm(jac, np.inf) == r["lower_bound"]
    pair = r["witness_pair"]
    assert np.all(np.abs(pair["x"]) <= 1.0) and np.all(np.abs(pair["x_pair"]) <= 1.0)
    assert 0 < pair["ratio"] <= r["upper_bound"]


def test_not_attained_still_has_a_lower_bound():
    net = Network([Dense(np.ones((2, 1)), np.zeros(2)), ReLU(),
                   Dense(np.array([[1.0, -1.0]])), Identity()])          # f = 0
    r = exact_milp(net, np.inf, box=1.0, max_cuts=0)
    assert r["lower_bound"] is not None and r["upper_bound"] is not None
    assert r["lower_bound"] == 0.0 <= r["upper_bound"]


def test_exact_1d_on_the_box():
    # slopes 0, 1, -2, 0.5 on (-inf, 0), (0, 1), (1, 2), (2, inf)
    net = Network([Dense(np.ones((3, 1)), np.array([0.0, -1.0, -2.0])), ReLU(),
                   Dense(np.array([[1.0, -3.0, 2.5]])), Identity()])
    assert exact_1d_on_box(net, 2, 0.5)["box_value"] == 1.0      # only (0, 1) met
    r = exact_1d_on_box(net, 2, 1.5)
    assert r["box_value"] == 2.0 and r["witness"] == pytest.approx(2.0, rel=1e-14)
    assert 1.0 <= min(r["witness_x"][0], r["witness_x_pair"][0])
    assert max(r["witness_x"][0], r["witness_x_pair"][0]) <= 1.5


def test_jacobian_rounding_and_chord_pair():
    net = random_net([2, 6, 5, 2], "spline", seed=1)
    for p in (1.0, np.inf):                       # |W| changes nothing for p in {1, inf}
        bound = jacobian_rounding(net, p)
        assert 0 < bound < 1e-12 * lipschitz.layerwise(net, p)
    assert jacobian_rounding(net, 2.0) >= 0
    lin = Network([Dense([[2.0, -1.0]], [0.3])])                  # affine: any region
    a_box, b_box = box_halfspaces(1.0, 2)
    x_a, x_b, ratio = chord_pair(lin, 2.0, a_box, b_box)
    assert ratio == pytest.approx(np.sqrt(5.0), rel=1e-14)
    assert np.all(np.abs(x_a) <= 1.0) and np.all(np.abs(x_b) <= 1.0)
    assert np.linalg.norm(x_b - x_a) >= 1.0                     # half the chord through 0
    # a region touching the box only at a corner's edges: the centre is moved inside
    tri_a = np.vstack([a_box, [[-1.0, -1.0]]])                 # x1 + x2 >= 1.9
    tri_b = np.r_[b_box, -1.9]
    x_a, x_b, ratio = chord_pair(lin, np.inf, tri_a, tri_b)
    assert ratio == pytest.approx(3.0, rel=1e-12)
    assert np.all(tri_a @ x_a <= tri_b) and np.all(tri_a @ x_b <= tri_b)
    with pytest.raises(ValueError, match="bounded region"):
        chord_pair(lin, 2.0, a_box[:1], b_box[:1])
    with pytest.raises(ValueError, match="interior"):
        chord_pair(lin, 2.0, np.vstack([a_box, [[1.0, 0.0], [-1.0, 0.0]]]),
                   np.r_[b_box, 0.5, -0.5])                   # the segment x1 = 0.5


@pytest.mark.parametrize("p", [1.0, np.inf])
def test_milp_decides_degenerate_patterns_exactly(p):
    """Bias-free networks, where every knot line passes near 0 and floating point cannot
    place the LP's point: a dead neuron (zero row, zero bias: its pre-activation sits on the
    knot everywhere, either piece is right) and a spline network whose grid point
    fl(-2 + 3 step) = 2.2e-16 makes the LP's binding rows no certificate (the emptiness is
    proven by a subset of the rows nearest its point, Caratheodory).  Both exact: the
    regions' values, never 'not_attained'."""
    dead = random_net([2, 3, 1], "prelu", seed=35, size=7)
    spline = random_net([2, 6, 6, 2], "spline", seed=25, size=7)
    for net in (dead, spline):
        for layer in net.layers:
            if layer.kind == "dense":
                layer.params["bias"][:] = 0.0
    dead.layers[0].params["weight"][0] = 0.0
    for net in (dead, spline):
        r = exact_milp(net, p, box=0.3)
        assert r["status"] == "optimal", r.get("reason")
        assert r["value"] == pytest.approx(regions_2d(net, p, box=0.3)["value"], rel=1e-12)


def test_normalized_network_is_the_same_function():
    """exact.normalized_network: f(x) = a_L f_hat(x / a_0) at random points, for networks
    with two activations in a row (each must be rescaled by the block's factor: found by the
    ladder property, a spline after a spline gave the MILP 0.00044 below the sampled lower
    bound 0.00054) and with an activation first (its block starts at the identity)."""
    rng = np.random.default_rng(0)
    def spline(x_min, step, c):
        return SplineActivation(LinearSpline(np.array(c), x_min, step))
    nets = [Network([Dense(rng.normal(size=(1, 3))), spline(-2.5, 5.0, [[0.36, 1.30]]),
                     spline(-2.3, 4.6, [[-0.70, -1.27]]), Dense([[-0.62]]),
                     spline(-2.6, 1.06, [[-0.22, -1.25, -0.73, -0.54, -0.32, 0.41]])]),
            Network([spline(-1.2, 0.4, rng.normal(size=(3, 7))), Dense(rng.normal(size=(1, 3))),
                     ReLU(), LeakyReLU(0.2)])]
    for net in nets:
        for box in (0.5, 3.0, 1e-3):
            hat, box_hat, a_in, a_out = exact_mod.normalized_network(net, box)
            x = rng.uniform(-box, box, (50, net.n_in))
            np.testing.assert_allclose(a_out * hat.forward(x / a_in), net.forward(x),
                                       rtol=1e-13, atol=1e-15 * np.abs(net.forward(x)).max())
            assert box_hat * a_in == box
    first = nets[0]
    for p in (1.0, np.inf):
        low = lipschitz.lower(first, p, box=0.5)["value"]
        assert exact_milp(first, p, box=0.5)["value"] >= low * (1 - 1e-12)
