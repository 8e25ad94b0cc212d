"""Network-level properties (hypothesis, profiles from reference.testing):

1. backward = central finite differences for every layer type (parameters and input), and
   input_jacobian = backward;
2. the model file round trip is exact (save, load: the same layers, forward bit for bit);
3. the Lipschitz ladder's order holds on random small networks;
4. the representer reduction keeps the outputs at the data, does not increase TV2, Lip
   (nor BV2 for the bv2 reduction) of any neuron, and leaves <= M - 2 (tv2) or M (bv2) knots.

Networks are drawn as a structure (depth, widths, biases, layer kinds, by hypothesis) and a
seed for np.random.default_rng, which fills the arrays: small networks of every layer type
(dense with and without bias, spline, knot_spline, relu, leaky_relu, prelu, identity),
sometimes starting with an activation layer, sometimes with two activations in a row.
"""
import numpy as np
from hypothesis import assume, event, given, note
from hypothesis import strategies as st

from reference.convex import _problem as problem
from reference.convex import _representer as representer
from reference.io._model_file import layer_entries, load_model, save_model
from reference.lipschitz import _ladder as ladder
from reference.lipschitz._exact import knot_form
from reference.nn._linear_spline import LinearSpline
from reference.nn._network import (
    Dense,
    Identity,
    KnotSplineActivation,
    LeakyReLU,
    Network,
    PReLU,
    ReLU,
    SplineActivation,
)
from reference.testing import REDUCTION_OUTPUT_RTOL, central_difference, check_property

EPS = np.finfo(np.float64).eps
KINDS = ("spline", "knot_spline", "relu", "leaky_relu", "prelu", "identity")
WIDTH_FIXING = ("spline", "knot_spline", "prelu")     # may open a network (fix the input width)
SPLINES = ("spline", "knot_spline")
SEEDS = st.integers(0, 2**32 - 1)


def activation(kind: str, width: int, rng) -> object:
    """A random activation layer: splines with K in [2, 8] coefficients on a grid of half-width
    in [0.5, 3], knot splines with 2..6 points in [-3, 3], slopes in [-1, 1]."""
    if kind == "spline":
        size = int(rng.integers(2, 9))
        half = rng.uniform(0.5, 3.0)
        return SplineActivation(LinearSpline(rng.normal(size=(width, size)), -half,
                                             2 * half / (size - 1)))
    if kind == "knot_spline":
        counts = rng.integers(2, 7, width)
        points = [-3 + np.cumsum(rng.uniform(0.1, 6.0 / c, c)) for c in counts]
        return KnotSplineActivation(points, [rng.normal(size=c) for c in counts])
    if kind == "relu":
        return ReLU()
    if kind == "leaky_relu":
        return LeakyReLU(rng.uniform(-1, 1))
    if kind == "prelu":
        return PReLU(rng.uniform(-1, 1, width))
    return Identity()


@st.composite
def networks(draw, max_width=3, max_blocks=3, with_spline=False):
    """A random network: [an opening activation], then 1..max_blocks blocks dense ->
    activation [-> activation], widths 1..max_width; with_spline puts a spline or
    knot_spline layer in one block."""
    rng = np.random.default_rng(draw(SEEDS))
    width = draw(st.integers(1, max_width))
    layers = []
    opening = draw(st.sampled_from((None,) * 3 + WIDTH_FIXING))
    if opening:
        layers.append(activation(opening, width, rng))
    blocks = draw(st.integers(1, max_blocks))
    spline_block = draw(st.integers(0, blocks - 1)) if with_spline else -1
    for b in range(blocks):
        n_out = draw(st.integers(1, max_width))
        bias = rng.normal(size=n_out) if draw(st.booleans()) else None
        layers.append(Dense(rng.normal(size=(n_out, width)) / np.sqrt(width), bias))
        chosen = [draw(st.sampled_from(SPLINES if b == spline_block else KINDS))]
        if draw(st.integers(0, 3)) == 0:
            chosen.append(draw(st.sampled_from(KINDS)))
        layers += [activation(kind, n_out, rng) for kind in chosen]
        width = n_out
    return Network(layers)


def describe(net: Network) -> str:
    """The network's layers as the model file's JSON entries and arrays (for failure notes:
    enough to rebuild it)."""
    entries, arrays = layer_entries(net)
    with np.printoptions(precision=17, threshold=10_000):
        return f"{entries}\n{ {k: v.tolist() for k, v in arrays.items()} }"


# ------------------------------------------------------------------ 1. backward vs FD
H = 1e-6            # finite-difference step
DEFAULT_EXAMPLES = 60   # default profile of properties 1, 2 and 4 (~10 ms an example)
FD_RTOL = 1e-6      # FD error: rounding only (see the test), about 1e-10 of the scale


def breakpoints(net: Network) -> list:
    """(layer index, knots per neuron) of every activation layer (reference.exact.knot_form:
    knots with a nonzero slope change); knot positions do not move with the parameters."""
    out, width = [], net.n_in
    for i, layer in enumerate(net.layers):
        width = layer.n_out if isinstance(layer, Dense) else width
        if not isinstance(layer, Dense):
            out.append((i, knot_form(layer, width).knots))
    return out


def pieces(knots: list, caches) -> list:
    """For every activation layer and neuron, the index of the linear piece each cached
    pre-activation lies on."""
    return [np.searchsorted(tau, caches[i][:, n]) for i, layer_knots in knots
            for n, tau in enumerate(layer_knots)]


def test_backward_matches_central_differences(profile):
    """For F(theta, x) = sum_{m,i} G_mi f(x_m)_i with G random: Network.backward(caches, G)
    gives dF/dtheta for every parameter and dF/dx; both equal central differences with step
    H = 1e-6.  With every neuron kept on its linear piece, F is affine in each single
    parameter and input entry (a composition of maps affine on the piece), so the central
    difference is exact up to rounding: ~1e-10 of the scale sum |G f| here.  A draw for which
    any +-H step moves a pre-activation across a breakpoint (where the difference quotient
    straddles two slopes) is rejected: every step's piece pattern is compared with the
    unperturbed one.  Also: input_jacobian contracted with G equals the backward's dF/dx."""
    @given(networks(), st.integers(1, 4), SEEDS)
    def prop(net, m, seed):
        rng = np.random.default_rng(seed)
        x = 2 * rng.normal(size=(m, net.n_in))
        g = rng.normal(size=(m, net.n_out))
        out, caches = net.forward(x, keep_cache=True)
        grad_x, grads = net.backward(caches, g)
        knots = breakpoints(net)
        base = pieces(knots, caches)
        crossed = []

        def functional():
            out, caches = net.forward(x, keep_cache=True)
            crossed.append(any(np.any(a != b) for a, b in zip(pieces(knots, caches), base)))
            return float(np.sum(g * out))

        params = dict(net.named_params())
        assert set(grads) == set(params)
        differences = {name: central_difference(functional, value, H)
                       for name, value in params.items()}
        differences["x"] = central_difference(functional, x, H)
        assume(not any(crossed))
        grads["x"] = grad_x
        scale = max(1.0, float(np.sum(np.abs(g * out))))
        for name, fd in differences.items():
            error = float(np.max(np.abs(grads[name] - fd)))
            assert error <= FD_RTOL * max(scale, float(np.abs(fd).max())), (name, error)
        jac = net.input_jacobian(x)                                      # (M, N_L, N_0)
        contracted = np.einsum("mi,mij->mj", g, jac)
        size = max(1.0, float(np.max(np.abs(g)[:, :, None] * np.abs(jac))))
        np.testing.assert_allclose(contracted, grad_x, rtol=0, atol=1e-12 * size * g.shape[1])
    check_property(prop, profile, examples=DEFAULT_EXAMPLES)


# ------------------------------------------------------------------ 2. model file
def test_model_file_round_trip_is_exact(profile, tmp_path):
    """save_model -> load_model gives the same layers (kinds, JSON entries, every array bit
    for bit) and the same forward pass, bit for bit (np.array_equal)."""
    @given(networks(), st.integers(1, 5), SEEDS)
    def prop(net, m, seed):
        x = 3 * np.random.default_rng(seed).normal(size=(m, net.n_in))
        loaded = load_model(save_model(net, tmp_path / "model.npz"))
        assert [layer.kind for layer in loaded.layers] == [layer.kind for layer in net.layers]
        (entries, arrays), (entries_2, arrays_2) = layer_entries(net), layer_entries(loaded)
        assert entries_2 == entries and arrays_2.keys() == arrays.keys()
        for name, value in arrays.items():
            assert arrays_2[name].dtype == np.float64 and np.array_equal(arrays_2[name], value)
        assert np.array_equal(loaded.forward(x), net.forward(x))
    check_property(prop, profile, examples=DEFAULT_EXAMPLES)


# ------------------------------------------------------------------ 3. Lipschitz ladder
CHEAP_METHODS = ("lower", "exact", "layerwise", "theorem1", "theorem1_bv2")
LIPSDP_METHODS = ("lipsdp_neuron", "lipsdp_layer")
LIPSDP_ONE_IN = 10            # slow profile: LipSDP on about 1 in 10 examples with p = 2
MILP_BINARIES = 120           # the MILP's size guard here (above it: refused, value None)
MILP_SECONDS = 20.0
LADDER_DEFAULT_EXAMPLES = 30
LADDER_SLOW_EXAMPLES = 3000   # ~40 ms of CPU an example: ~2 min


def test_lipschitz_ladder_order(profile):
    """ladder.ladder on random small networks (<= 2 blocks, widths <= 3, every layer type),
    p in {1, 2, inf}, box half-width in {0.5, 1, 2}: lower <= exact <= layerwise <= theorem1
    <= theorem1_bv2 (ladder.order_violations empty).  Every closed form and the lower bound
    give a value; exact gives one for 1 or 2 inputs and every p (breakpoint propagation,
    linear regions) and otherwise for p in {1, inf} (MILP) unless over the size guard; p = 2
    with N_0 > 2 has none.  In the slow
    profile LipSDP (neuron, layer) joins on about 1 in LIPSDP_ONE_IN examples with p = 2
    (its order: lower, exact <= lipsdp_neuron <= lipsdp_layer).

    Examples: LADDER_DEFAULT_EXAMPLES by default; the slow profile runs LADDER_SLOW_EXAMPLES,
    not 10^4: an example costs ~40 ms of CPU (the lower bound's 2000 points and 20 rounds
    ~20 ms, the MILP ~20 ms; LipSDP ~0.1 s a pair), so 10^4 would take ~7 min."""

    @given(networks(max_width=3, max_blocks=2), st.sampled_from(["1", "2", "inf"]),
           st.sampled_from([0.5, 1.0, 2.0]), st.integers(0, LIPSDP_ONE_IN - 1), SEEDS)
    def prop(net, p, box, lipsdp_draw, seed):
        note(describe(net))
        methods = CHEAP_METHODS
        if profile == "slow" and p == "2" and lipsdp_draw == 0:
            methods += LIPSDP_METHODS
        results = ladder.ladder(net, p, box=box, methods=methods, max_binaries=MILP_BINARIES,
                                time_limit=MILP_SECONDS, seed=seed)
        note(str({k: (r["value"], r.get("reason")) for k, r in results.items()}))
        assert ladder.order_violations(results) == []
        for method in ("lower", "layerwise", "theorem1", "theorem1_bv2"):
            assert results[method]["value"] is not None, method
        exact = results["exact"]
        if net.n_in <= 2 or p != "2":
            assert exact["value"] is not None or "max_binaries" in exact["reason"], exact
            event(f"exact: {'value' if exact['value'] is not None else 'over the size guard'}")
        else:
            assert exact["value"] is None
        for method in set(methods) & set(LIPSDP_METHODS):
            event(f"{method}: {'value' if results[method]['value'] is not None else 'none'}")
    check_property(prop, profile, examples=LADDER_DEFAULT_EXAMPLES,
                   slow_examples=LADDER_SLOW_EXAMPLES)


# ------------------------------------------------------------------ 4. representer reduction
def evaluation_error(old, n: int, p: np.ndarray) -> float:
    """A bound on |computed sigma_n(p_j) - sigma_n(p_j)| over the points p, for the layer
    before the reduction: grid form, the accuracy stated in reference/nn/_linear_spline.py (gamma_2
    |c_k| + (gamma_4 k + gamma_5 |u|) |dc_k|, plus (s + delta) |D2 c| when a point lies up
    to s = knot_snap steps below an interior knot (and may take the piece to its right;
    2(s + delta) tested, for the rounding of u here)); knot form, the sum
    b0 + b1 x + sum a_k (x - tau_k)_+ term by term: gamma_{K+3} (|b0| + |b1 x| + sum |a_k|
    (|x| + |tau_k|)).  (x 1.01 for the rounding of this bound.)"""
    spl = old.spline
    if isinstance(old, SplineActivation):
        c = spl.coefficients[n]
        steps = (p - spl.x_min) / spl.step                       # u of each point (rounded)
        u = float(np.abs(steps).max())
        reach = spl.knot_snap + 4 * EPS * u + EPS                # s + delta (+ this rounding)
        below = np.ceil(steps) - steps                           # steps below the next grid point
        snapped = np.any((below > 0) & (below <= 2 * reach) & (np.ceil(steps) >= 1)
                         & (np.ceil(steps) <= spl.size - 2))
        d2 = float(np.abs(np.diff(c, 2)).max()) if spl.size > 2 and snapped else 0.0
        value = (2 * EPS * np.abs(c).max()
                 + (4 * EPS * spl.size + 5 * EPS * u) * np.abs(np.diff(c)).max())
        return 1.01 * (value + reach * d2) + 5e-324
    a, tau, x = np.abs(spl.jumps[n]), np.abs(spl.knots[n]), float(np.abs(p).max())
    return 1.01 * (len(tau) + 3) * EPS * (abs(spl.b0[n]) + abs(spl.b1[n]) * x
                                          + np.sum(a * (x + tau))) + 5e-324


def reduction_slack(layer: KnotSplineActivation, n: int, lip_before: float, old) -> tuple:
    """Round-off bounds (Lip, TV2, BV2) for neuron n of a reduced layer (points p, values v,
    slopes s = diff(v) / diff(p)) made from the layer `old`.  Each v_j = sigma(p_j) is
    computed with an error <= u = 8 eps (max|v| + Lip max|p|) + `evaluation_error` (the
    old spline's own evaluation; near a knot it is dominated by the knot snap), so each
    slope is off its exact value, whose |.| is
    <= Lip and whose total variation is <= TV2 (the interpolant's slopes are averages of
    sigma'), by <= d_j = 2u / (p_{j+1} - p_j) + 4 eps |s_j|: Lip grows by <= max d, TV2 by
    <= 2 sum d, BV2 also by the errors of sigma(0), sigma(1) (both evaluations, u each, and
    the knot form's e01 = 4 eps (|b0| + |b1| + sum |a_k| (|tau_k| + 1)))."""
    p, v, s = layer.points[n], layer.values[n], layer.slopes[n]
    u = (8 * EPS * (np.abs(v).max() + lip_before * np.abs(p).max())
         + evaluation_error(old, n, np.concatenate([p, [0.0, 1.0]])))
    d = 2 * u / np.diff(p) + 4 * EPS * np.abs(s)
    spl = layer.spline
    e01 = 4 * EPS * (abs(spl.b0[n]) + abs(spl.b1[n])
                     + np.sum(np.abs(spl.jumps[n]) * (np.abs(spl.knots[n]) + 1)))
    return d.max(), 2 * d.sum(), 2 * d.sum() + 4 * u + 2 * e01


def close_pre_activations(net: Network, x: np.ndarray, reg: str) -> bool:
    """True when a spline neuron has two distinct pre-activations at the data (with 0 and 1
    for bv2) closer than 4 x the reduction's merge tolerance (convex.merge_points): the
    reduction merges them by design, so its outputs move by up to slope x that distance."""
    _, caches = net.forward(x, keep_cache=True)
    for layer, z in zip(net.layers, caches):
        if isinstance(layer, (SplineActivation, KnotSplineActivation)):
            for n in range(z.shape[1]):
                pts = np.unique(np.concatenate([z[:, n], [0.0, 1.0] if reg == "bv2" else []]))
                tol = 4 * problem.MERGE_RTOL * max(1.0, float(pts[-1] - pts[0]))
                if len(pts) > 1 and np.diff(pts).min() <= tol:
                    return True
    return False


def test_representer_reduction_regression():
    """The slow profile's counterexample (seed 0, m = 2, tv2) to a slack that ignored the
    old spline's own evaluation error: at the last layer, neuron 2's two pre-activations are
    1.04e-3 apart on coefficients ~2 (values ~0.1), and Lip grew by 1.1e-12 against an
    allowance of 4.3e-13 (now 5.9e-11, from gamma |c_k| / dp)."""
    a = np.array
    net = Network([
        SplineActivation(LinearSpline(a([
            [-0.5768361654627192, 0.2146224817651891, -0.9451165811625704],
            [2.2200284510139974, -0.9679849531384349, 0.1749749492305391],
            [-0.32538134804503577, 2.1748365927682722, 0.30070427119388987]]),
            -2.610383932464344, 2.610383932464344)),
        Dense(a([[-0.585548098784783, -0.2320759736425313, -0.4849755798922297],
                 [-0.5352097862550356, -0.06397748443904558, -0.8158670395393404]]), None),
        SplineActivation(LinearSpline(a([[-1.8008171011084055, 0.08455887137071662],
                                          [0.767322687547113, 0.5090342485752677]]),
                                       -2.5279526115592623, 5.055905223118525)),
        Dense(a([[1.2946096694792486, 0.16855792032474695],
                 [0.7478691684221914, -0.39773011666066027],
                 [1.3288659095618423, -1.7238457373478335]]), None),
        LeakyReLU(-0.050640048401824345),
        Dense(a([[-0.4659986943113183, 0.5155709780636292, -0.5587959959031324],
                 [-0.03611621250171258, 0.26989654049243966, -0.5104378852240767],
                 [0.05068499885433072, 0.3616429947835966, -0.18600835333028023]]), None),
        SplineActivation(LinearSpline(a([
            [1.9040998822086503, -0.7677640300572396, 0.9614484609187108, -2.043068671805035,
             -0.9642262120101521, 0.11321991255325704],
            [0.8557618549731194, -0.2279507541506558, 0.29101247897669574, -1.4198069035415266,
             -0.9182120444763968, 0.7856759907148829],
            [0.1696789751875207, -0.07740628904336748, -1.472532038691509, 1.7180642812897495,
             1.4702967679726195, -0.1630464141203]]), -2.6884750636313517, 1.0753900254525406))])
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 3) * rng.normal(size=(2, net.n_in))
    assert not close_pre_activations(net, x, "tv2")
    new, _ = representer.reduce_network(net, x, "tv2")
    old, layer = net.layers[-1], new.layers[-1]
    lip_old, lip_new = old.spline.lipschitz()[2], layer.spline.lipschitz()[2]
    slack = reduction_slack(layer, 2, lip_old, old)[0]
    assert lip_new - lip_old > 1e-12                     # the case that failed
    assert lip_new <= lip_old * (1 + 64 * EPS) + slack
    assert slack <= 1e-10 * lip_old                      # still a test of "not increased"


def test_representer_reduction(profile):
    """representer.reduce_network(net, x, reg) on random networks with at least one spline or
    knot_spline layer (with every other layer type around it), M in [2, 40] inputs, some of
    them repeated: the outputs at x unchanged to REDUCTION_OUTPUT_RTOL = 1e-10 relative (of max(1,
    max|f|), as theory_checks.representer,
    from reference.testing); every spline layer now a knot_spline layer with
    <= M - 2 knots (tv2) or <= M (bv2) per neuron (also the report's count); per neuron TV2
    and Lip not increased, nor BV2 for the bv2 reduction, up to the round-off of
    `reduction_slack`; every other layer unchanged.  Draws with two distinct pre-activations
    closer than the merge tolerance are rejected (`close_pre_activations`)."""
    @given(networks(with_spline=True), st.integers(2, 40), st.integers(0, 5),
           st.sampled_from(["tv2", "bv2"]), SEEDS)
    def prop(net, m, repeats, reg, seed):
        rng = np.random.default_rng(seed)
        x = rng.uniform(0.5, 3) * rng.normal(size=(m, net.n_in))
        x[m - min(repeats, m - 1):] = x[:min(repeats, m - 1)]
        assume(not close_pre_activations(net, x, reg))
        note(describe(net))
        new, report = representer.reduce_network(net, x, reg)
        before = net.forward(x)
        change = np.abs(new.forward(x) - before).max()
        assert change <= REDUCTION_OUTPUT_RTOL * max(1.0, np.abs(before).max()), change
        limit = m - 2 if reg == "tv2" else m
        assert all(r["knots_after"] <= limit for r in report["neurons"])
        for old, layer in zip(net.layers, new.layers):
            if not isinstance(old, (SplineActivation, KnotSplineActivation)):
                assert layer is not old and layer.kind == old.kind
                assert all(np.array_equal(layer.params[k], v) for k, v in old.params.items())
                continue
            assert isinstance(layer, KnotSplineActivation)
            s_old, s_new = old.spline, layer.spline
            old_norms = np.stack([s_old.lipschitz(), s_old.tv2(), s_old.bv2()], axis=1)  # (N, 3)
            new_norms = np.stack([s_new.lipschitz(), s_new.tv2(), s_new.bv2()], axis=1)
            checked = 3 if reg == "bv2" else 2                  # Lip, TV2 [, BV2]
            for n in range(layer.n_in):
                assert len(layer.points[n]) - 2 <= limit
                slack = reduction_slack(layer, n, old_norms[n, 0], old)[:checked]
                assert np.all(new_norms[n, :checked] <= old_norms[n, :checked] * (1 + 64 * EPS)
                              + slack), (n, old_norms[n], new_norms[n], slack)
    check_property(prop, profile, examples=DEFAULT_EXAMPLES)

