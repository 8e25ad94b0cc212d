"""The oracle (reference.oracle, reference.localise): reference answers, the comparison, the
one-sided rule at kinks, and deliberately wrong implementations that `check` must catch and
localise (layer, neuron, sample, knot interval, gradient entry)."""
import numpy as np
import pytest

from reference.nn._linear_spline import LinearSpline
from reference.nn._network import Dense, KnotSplineActivation, Network, ReLU, SplineActivation
from reference.oracle import _check as oracle
from reference.testing import (
    OtherSpline,
    central_difference,
    oracle_inputs,
    oracle_model,
    relative_error,
)
from reference.training._train import TrainConfig
from reference.training._train import objective as train_objective


def their_answers(net, x, layer_index, **options):
    """Answers of the reference network with layer `layer_index` replaced by OtherSpline."""
    layers = list(net.layers)
    layers[layer_index] = OtherSpline(net.layers[layer_index].spline, **options)
    return oracle.reference_answers(Network(layers), x, layers=True, info=False)


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    net = oracle_model(rng)
    return net, oracle_inputs(net, rng)


def kink_mask(net, x, knot_tol=oracle.KNOT_TOL):
    """one_sided.kink_masks of net at x, without the dense layers."""
    return [m for m in oracle.ForwardPass(net, x, knot_tol).masks if m is not None]


def without_layers(answers):
    return {k: v for k, v in answers.items() if not k.startswith("layer")}


# ------------------------------------------------------------------- comparison basics
def test_compare_semantics():
    """|got - expected| <= atol S + rtol |expected|, S = max |expected| over the key unless
    given: atol is a fraction of the key's scale."""
    row = oracle.compare("a", np.array([1.0, 10.0]), np.array([1.0 + 2e-7, 10.0 + 5e-7]),
                         rtol=1e-7, atol=1e-9)
    assert not row.passed and row.worst_index == (0,)      # 2e-7 > 1e-9 * 10 + 1e-7 * 1
    assert row.max_abs == pytest.approx(5e-7, rel=1e-6, abs=0)
    assert row.max_rel == pytest.approx(2e-7, rel=1e-6, abs=0)
    assert (row.scale, row.atol_effective, row.scale_from) == (10.0, 1e-8, "reference")
    assert oracle.compare("a", [1.0, 10.0], [1.0, 10.0 + 5e-7], rtol=1e-7, atol=1e-9).passed
    # the same comparison at any scale: the same verdict
    for scale in (1e-12, 1e-3, 1e8):
        assert not oracle.compare("a", np.array([1.0, 10.0]) * scale,
                                  np.array([1.0 + 2e-7, 10.0 + 5e-7]) * scale,
                                  rtol=1e-7, atol=1e-9).passed
        assert oracle.compare("a", np.array([1.0, 10.0]) * scale,
                              np.array([1.0, 10.0 + 5e-7]) * scale, rtol=1e-7, atol=1e-9).passed
    given = oracle.compare("a", np.zeros(2), np.array([0.0, 3e-9]), rtol=0, atol=1e-9, scale=4)
    assert given.passed and given.atol_effective == 4e-9 and given.scale_from == "given"
    assert not oracle.compare("a", np.zeros(2), np.array([0.0, 3e-9]), rtol=0, atol=1e-9).passed
    bad_shape = oracle.compare("a", np.zeros((3, 2)), np.zeros((2, 3)), rtol=0, atol=0)
    assert not bad_shape.passed and "shape (2, 3), expected (3, 2)" in bad_shape.note
    nan = oracle.compare("a", np.zeros(3), np.array([0.0, np.nan, 0.0]), rtol=1, atol=1)
    assert not nan.passed and "NaN" in nan.note and nan.worst_index == (1,)
    text = oracle.compare("a", np.zeros(1), np.array(["x"]), rtol=1, atol=1)
    assert not text.passed and "not a real array" in text.note


def test_reference_answers_agree_with_the_network(case):
    net, x = case
    ans = oracle.reference_answers(net, x, layers=True, one_sided=True)
    np.testing.assert_array_equal(ans["outputs"], net.forward(x))
    np.testing.assert_array_equal(ans["input_jacobian"], net.input_jacobian(x))
    np.testing.assert_array_equal(ans["layer7/output"], ans["outputs"])
    np.testing.assert_array_equal(ans["layer1/output"], net.layers[1].spline(x))
    np.testing.assert_array_equal(ans["tv2/1"], net.layers[1].spline.tv2())
    # rows 1-5 have x_0, rows 5-9 x_1 on an interior knot of the first spline (identity
    # before it); the grid ends (x_0 in rows 0, 6, x_1 in rows 4, 10) are not kinks, the
    # random rows miss them
    np.testing.assert_array_equal(np.flatnonzero(ans["on_kink"]), np.arange(1, 10))
    off = ~ans["on_kink"]
    np.testing.assert_array_equal(ans["input_jacobian_left"][off], ans["input_jacobian"][off])
    assert not np.allclose(ans["input_jacobian_left"], ans["input_jacobian_right"])


def test_one_sided_jacobians_are_one_sided_difference_quotients(case):
    net, x = case
    ans = oracle.reference_answers(net, x, one_sided=True)
    rows = np.flatnonzero(ans["on_kink"])
    h = 1e-5                     # rows reach |f| ~ 1e4: rounding eps |f| / h stays small
    for j in range(2):           # the first layer is the identity: z_j = x_j exactly
        e = np.zeros(2)
        e[j] = h
        right = (net.forward(x[rows] + e) - net.forward(x[rows])) / h
        left = (net.forward(x[rows]) - net.forward(x[rows] - e)) / h
        assert relative_error(ans["input_jacobian_right"][rows, :, j], right) < 1e-6
        assert relative_error(ans["input_jacobian_left"][rows, :, j], left) < 1e-6


def test_reference_passes_its_own_check(case):
    net, x = case
    ans = oracle.reference_answers(net, x, layers=True, one_sided=True)
    report = oracle.check(net, x, ans)
    assert report.passed and report.localisation is None
    assert report.kink_rows == int(ans["on_kink"].sum()) > 0
    jac = next(r for r in report.rows if r.key == "input_jacobian")
    assert jac.on_knot == report.kink_rows and jac.max_abs == 0
    assert report.to_json()["passed"] is True and "quantities pass" in report.format()


def test_unknown_and_objective_keys_are_failed_rows(case):
    net, x = case
    ans = {"outputs": net.forward(x), "output": net.forward(x), "objective": np.float64(1.0)}
    report = oracle.check(net, x, ans)
    rows = {r.key: r for r in report.rows}
    assert rows["outputs"].passed
    assert not rows["output"].passed and "did you mean 'outputs'" in rows["output"].note
    assert not rows["objective"].passed and "needs the objective" in rows["objective"].note


# --------------------------------------------------------- deliberately wrong answers
def test_floor_implementation_taking_the_left_piece_on_knots_passes_and_is_counted(case):
    net, x = case
    theirs = their_answers(net, x, 1, piece="left_on_knots")
    mine = oracle.reference_answers(net, x)
    on_knot = oracle.reference_answers(net, x, one_sided=True)["on_kink"]
    differ = np.any(theirs["input_jacobian"] != mine["input_jacobian"], axis=(1, 2))
    assert differ.any() and np.all(on_knot[differ])        # they differ, on knots only
    report = oracle.check(net, x, theirs)
    assert report.passed, report.format()
    jac = next(r for r in report.rows if r.key == "input_jacobian")
    assert jac.on_knot == on_knot.sum() and "left" in jac.note
    grads = [r for r in report.rows if r.key.startswith("param_gradients/layer0")]
    assert grads and all(r.passed and r.on_knot == on_knot.sum() for r in grads)
    # the same answers fail without the one-sided rule (knot_tol 0 still catches exact
    # knots; a plain comparison does not)
    plain = oracle.compare("input_jacobian", mine["input_jacobian"], theirs["input_jacobian"],
                           rtol=oracle.DEFAULT_RTOL, atol=oracle.DEFAULT_ATOL)
    assert not plain.passed


def test_plain_floor_implementation_passes(case):
    net, x = case
    assert oracle.check(net, x, their_answers(net, x, 5, piece="floor")).passed


def test_off_by_one_knot_index_is_localised(case):
    net, x = case
    theirs = their_answers(net, x, 1, piece="off_by_one")
    report = oracle.check(net, x, theirs)
    assert not report.passed
    first = report.localisation["first_layer"]
    assert first["layer"] == 1 and first["layer_type"] == "spline"
    assert first["inputs"].startswith("its inputs agree")
    m, n = first["sample"], first["neuron"]
    z = x[m, n]                        # layer 0 is the identity
    assert first["where"]["pre_activation"] == z
    assert z < net.layers[1].spline.grid[1]           # left of t_1: where the bug acts
    assert first["where"]["region"] in ("interval 0", "left extrapolation")
    regions = {label.split(": ")[1] for label in first["failing_regions"]}
    assert regions <= {"interval 0", "left extrapolation"}
    assert "first disagreement: layer 1 (spline)" in report.format()
    # without layer outputs: the failing samples point to the same layer and region
    report = oracle.check(net, x, without_layers(theirs))
    top = report.localisation["suspects"][0]
    assert top["layer"] == 1 and top["passing_included"] == 0
    assert top["region"] in ("interval 0", "left extrapolation", "outside the grid")
    assert "layer{i}/output" in report.format()


def test_wrong_extrapolation_slope_is_localised(case):
    net, x = case
    theirs = their_answers(net, x, 5, clamp_right=True)
    report = oracle.check(net, x, theirs)
    assert not report.passed
    first = report.localisation["first_layer"]
    assert first["layer"] == 5 and first["where"]["region"] == "right extrapolation"
    assert first["where"]["outside_grid"] and first["where"]["grid_range"] == [-1.0, 1.0]
    m, n = first["sample"], first["neuron"]
    z = net.forward(x, keep_cache=True)[1][5][m, n]
    assert first["where"]["pre_activation"] == z > 1.0
    assert all(label.endswith("right extrapolation") for label in first["failing_regions"])
    rows = {r.key: r for r in report.rows}
    assert all(rows[f"layer{i}/output"].passed for i in range(5))
    assert not rows["outputs"].passed and not rows["input_jacobian"].passed



def test_an_input_just_beyond_the_grid_end_is_in_the_extrapolated_piece():
    """The grid ends are no kinks: 1e-9 (or one ulp) beyond t_{K-1} is the right
    extrapolation, where a wrong extrapolation slope first shows."""
    from reference.oracle._localise import describe_input

    rng = np.random.default_rng(8)
    spline = LinearSpline(rng.normal(size=(1, 7)), -0.75, 0.25)
    net = Network([SplineActivation(spline), Dense(rng.normal(size=(1, 1)))])
    end = spline.grid[-1]
    x = np.array([[end + 1e-9], [np.nextafter(end, 2.0)], [end], [0.1]])
    on = kink_mask(net, x)[0][:, 0]
    assert not on.any()                        # the grid end is no kink
    for z, on_kink in zip(x[:2, 0], on):
        assert describe_input(net.layers[0], 0, z, on_kink)["region"] == "right extrapolation"
    assert describe_input(net.layers[0], 0, end, on[2])["region"] == "interval 5"
    theirs = their_answers(net, x, 0, clamp_right=True)
    theirs["layer0/output"] = theirs["layer0/output"].copy()
    theirs["layer0/output"][0] += 1e-6          # a clamp shows only far out: make it visible
    first = oracle.check(net, x, theirs).localisation["first_layer"]
    assert first["sample"] == 0 and first["where"]["region"] == "right extrapolation"


def test_tv2_with_the_wrong_step_is_caught(case):
    net, x = case
    spline = net.layers[5].spline
    theirs = oracle.reference_answers(net, x)
    theirs["tv2/5"] = np.abs(np.diff(spline.coefficients, n=2, axis=1)).sum(axis=1) / (
        spline.step / 5)
    report = oracle.check(net, x, theirs)
    assert not report.passed
    assert [r.key for r in report.rows if not r.passed] == ["tv2/5"]
    item = report.localisation["values"][0]
    assert item["layer"] == 5 and item["ratio"] == pytest.approx(5.0)
    assert item["neuron"] == int(np.argmax(spline.tv2()))
    assert "a constant factor" in report.format()


def test_wrong_gradient_entry_is_localised(case):
    net, x = case
    theirs = oracle.reference_answers(net, x)
    theirs["param_gradients/layer4.weight"] = theirs["param_gradients/layer4.weight"].copy()
    theirs["param_gradients/layer4.weight"][2, 1] *= 1 + 1e-4
    report = oracle.check(net, x, theirs)
    assert [r.key for r in report.rows if not r.passed] == ["param_gradients/layer4.weight"]
    part = report.localisation["gradients"]["param_gradients"]
    assert part["items"][0]["entry"] == [2, 1] and not part["propagated"]
    assert part["items"][0]["meaning"] == "layer 4 (dense), output neuron 2, input 1"


def test_wrong_derivative_is_localised_from_jacobian_rows_and_gradients(case):
    net, x = case
    theirs = without_layers(their_answers(net, x, 5, wrong_derivative=True))
    report = oracle.check(net, x, theirs)
    rows = {r.key: r for r in report.rows}
    assert rows["outputs"].passed and not rows["input_jacobian"].passed
    assert report.localisation["suspects"][0]["layer"] == 5
    part = report.localisation["gradients"]["param_gradients"]
    # the coefficient gradient of layer 5 is right, its grad_z is not: layers <= 4 disagree
    assert part["propagated"] and part["disagree"][-1] == 4 and 5 in part["agree"]
    assert "first goes wrong at layer 4 or between it and layer 5" in part["summary"]


def test_knot_spline_and_relu_layers(case):
    rng = np.random.default_rng(4)
    points = [np.sort(rng.uniform(-2, 2, 6)), np.sort(rng.uniform(-1, 1, 4))]
    net = Network([Dense(np.eye(2)), KnotSplineActivation(points, [rng.normal(size=6),
                                                                   rng.normal(size=4)]),
                   Dense(rng.normal(size=(3, 2)), rng.normal(size=3)), ReLU(),
                   Dense(rng.normal(size=(1, 3)))])
    x = np.concatenate([np.stack([points[0][:4], points[1]], 1), rng.uniform(-3, 3, (20, 2))])
    ans = oracle.reference_answers(net, x, layers=True, one_sided=True)
    assert set(k for k in ans if k.startswith("param_gradients")) == {
        "param_gradients/layer0.weight", "param_gradients/layer1.points",
        "param_gradients/layer1.values", "param_gradients/layer2.weight",
        "param_gradients/layer2.bias", "param_gradients/layer4.weight"}
    assert ans["on_kink"][1:3].all() and oracle.check(net, x, ans).passed
    # the left one-sided answers pass too (points and values gradients included)
    left = dict(ans, input_jacobian=ans["input_jacobian_left"])
    layers = net.layers
    forward = oracle.ForwardPass(net, x)
    sides = oracle.sides_from_masks(forward.masks, -1)
    _, grads = net.backward(forward.caches, np.ones((len(x), 1)), sides)
    for name in grads:
        left[f"param_gradients/{name}"] = grads[name]
    assert oracle.check(net, x, left).passed
    wrong = dict(ans)
    wrong["param_gradients/layer1.points"] = ans["param_gradients/layer1.points"] + 1e-3
    report = oracle.check(net, x, wrong)
    item = report.localisation["gradients"]["param_gradients"]["items"][0]
    assert "knot_spline" in item["meaning"] and layers[1].kind == "knot_spline"



def test_gradients_at_kinks_are_pinned_by_the_jacobian(case):
    """Gradient entries are sums over the samples, so the per-entry range of the one-sided
    choices is wide: a wrong gradient (here right + 2 (right - left) on every kink row, or
    the weight's gradient taken from the left and the bias's from the right) can lie inside
    it.  With input_jacobian given, each kink row's side is the one its Jacobian row takes,
    and the gradients are compared exactly."""
    net, x = case
    ans = oracle.reference_answers(net, x, one_sided=True)
    forward = oracle.ForwardPass(net, x)
    outputs, caches, masks = forward.outputs, forward.caches, forward.masks
    ones = np.ones_like(outputs)
    _, left = net.backward(caches, ones, oracle.sides_from_masks(masks, -1))
    _, right = net.backward(caches, ones, oracle.sides_from_masks(masks, 1))
    affected = [k for k in left if not np.allclose(left[k], right[k])]
    assert affected
    consistent = {f"param_gradients/{k}": v for k, v in left.items()}
    consistent["input_jacobian"] = ans["input_jacobian_left"]
    report = oracle.check(net, x, consistent)
    assert report.passed, report.format()
    for k in affected:
        row = next(r for r in report.rows if r.key == f"param_gradients/{k}")
        assert row.note.endswith("each with the side its input_jacobian row takes")
    wrong = {f"param_gradients/{k}": right[k] + 2 * (right[k] - left[k]) for k in left}
    mixed = {f"param_gradients/{k}": (left[k] if k.endswith("weight") else right[k])
             for k in left}
    for theirs in (wrong, mixed):
        ranged = oracle.check(net, x, theirs)            # no Jacobian: a range pass at most
        pinned = oracle.check(net, x, dict(theirs, input_jacobian=ans["input_jacobian_left"]))
        assert not pinned.passed
        failed = {r.key for r in pinned.rows if not r.passed}
        assert failed and failed <= {f"param_gradients/{k}" for k in affected}
        notes = {r.key: r.note for r in ranged.rows}
        assert all("a range pass" in notes[f"param_gradients/{k}"] for k in affected)
    assert any(r.passed and "a range pass" in r.note for r in oracle.check(net, x, mixed).rows)
    # the objective's gradients too: left pieces with the left Jacobian pass exactly, the
    # reference's right pieces with it fail
    objective = oracle.Objective("squared", np.random.default_rng(3).normal(size=outputs.shape),
                                 lam=0.1, reg="bv2", mu=0.01)
    ref = oracle.reference_answers(net, x, objective=objective)
    grad_out = oracle.objective_grad_out(objective, outputs)
    _, left = net.backward(caches, grad_out, oracle.sides_from_masks(masks, -1))
    extra = oracle.objective_extra_grads(net, objective)
    theirs = {f"objective_gradients/{k}": v + extra.get(k, 0) for k, v in left.items()}
    theirs["input_jacobian"] = ans["input_jacobian_left"]
    report = oracle.check(net, x, theirs, objective=objective)
    assert report.passed, report.format()
    assert all(r.max_abs < 1e-12 for r in report.rows)
    right = dict(theirs, **{k: v for k, v in ref.items() if k.startswith("objective_grad")})
    failed = {r.key for r in oracle.check(net, x, right, objective=objective).rows
              if not r.passed}
    assert failed and all(k.startswith("objective_gradients/") for k in failed)


def test_knot_tol_is_a_rounding_window():
    """A knot_tol whose window reaches 1% of the spacing of the kinks (or above
    KNOT_TOL_MAX) would let a neighbouring piece pass near every kink: refused, naming
    the layer.  The window is relative (knot_tol max(|z|_mag, |tau|)): a grid far from 0
    needs a step above 100 knot_tol |tau|, a fine grid near 0 passes at any step."""
    rng = np.random.default_rng(7)
    net = Network([SplineActivation(LinearSpline(rng.normal(size=(1, 9)), -1.0, 0.25)),
                   Dense(rng.normal(size=(1, 1)))])
    x = rng.uniform(-2, 2, (5, 1))
    for tol in (0.3, 2e-3):
        with pytest.raises(ValueError, match="knot_tol: "):
            oracle.check(net, x, {"outputs": net.forward(x)}, knot_tol=tol)
    far_grid = Network([SplineActivation(LinearSpline(rng.normal(size=(1, 9)), 9.8, 0.05))])
    with pytest.raises(ValueError,
                       match=r"layer 0 \(spline\), neuron 0, .* expected knot_tol < 4.93e-05 "):
        oracle.reference_answers(far_grid, x, one_sided=True, knot_tol=1e-4)
    assert oracle.check(net, x, {"outputs": net.forward(x)}, knot_tol=1e-4).passed
    for step in (1e-3, 1e-8, 1e-30):
        fine = Network([SplineActivation(LinearSpline(rng.normal(size=(1, 9)), -4 * step,
                                                      step))])
        on_knots = fine.layers[0].spline.grid[:, None]
        ref = oracle.reference_answers(fine, on_knots, one_sided=True)
        assert ref["on_kink"][1:-1].all() and not ref["on_kink"][[0, -1]].any()
        assert oracle.check(fine, on_knots, ref).passed


def test_a_window_widened_by_cancellation_is_refused():
    """z = W y + b computed from terms of magnitude 1e6 that cancel to a point on a kink:
    its rounding, and so its window knot_tol |W| |y|, reaches the knot spacing; refused,
    naming the sample and the largest knot_tol those inputs admit."""
    rng = np.random.default_rng(3)
    spline = LinearSpline(rng.normal(size=(1, 9)), -1.0, 0.25)
    net = Network([Dense(np.array([[1e6, -1e6]])), SplineActivation(spline)])
    x = np.array([[1.0, 1.0 - 0.5e-6], [0.3, 0.1]])           # z = 0.5 (a knot) and 2e5
    assert oracle.reference_answers(net, x, one_sided=True)["on_kink"].tolist() == [True, False]
    with pytest.raises(ValueError, match=r"knot_tol: 1e-07 makes the kink window of layer 1 "
                       r"\(spline\), neuron 0, at sample 0 .* magnitude \|W\| \|y\| \+ "
                       r"\|b\| = 2e\+06.* expected knot_tol < 1.25e-09 for these inputs"):
        oracle.reference_answers(net, x, one_sided=True, knot_tol=1e-7)


# ------------------------------------------------------------------------- objective
def test_objective_terms_and_gradient(case):
    net, x = case
    rng = np.random.default_rng(5)
    x = rng.uniform(-1.2, 1.2, (15, 2))
    y = rng.normal(size=(15, 2))
    objective = oracle.Objective("squared", y, lam=0.3, reg="bv2", mu=0.02)
    ans = oracle.reference_answers(net, x, objective=objective)
    terms = train_objective(net, x, y, TrainConfig(loss="squared", lam=0.3, reg="bv2",
                                                   mu=0.02))
    assert ans["objective"] == terms["total"]
    assert ans["objective/data"] == pytest.approx(
        0.5 * np.sum((net.forward(x) - y) ** 2), rel=1e-14)      # 1/2, summed over samples
    assert ans["objective/weight_decay"] == pytest.approx(0.02 * sum(
        np.sum(l.params["weight"] ** 2) for l in net.layers if l.kind == "dense"))
    assert ans["objective/regulariser"] == pytest.approx(0.3 * (
        net.layers[1].spline.bv2().sum() + net.layers[5].spline.bv2().sum()))

    def total():
        return oracle.objective_answers(net, x, objective)["objective"]

    for name, value in net.named_params():
        fd = central_difference(total, value)
        assert relative_error(ans[f"objective_gradients/{name}"], fd) < 1e-6, name



def test_a_forward_error_seen_only_through_the_objective_is_not_blamed_on_the_backward(case):
    """Objective answers of an implementation whose extrapolation is wrong: objective/data
    disagrees, so the gradients follow from the forward pass (or the loss), and the report
    says so instead of pointing at a backward step."""
    net, x = case
    rng = np.random.default_rng(9)
    y = rng.normal(size=(len(x), 2))
    objective = oracle.Objective("squared", y, lam=0.1, reg="tv2", mu=0.01)
    layers = list(net.layers)
    layers[5] = OtherSpline(net.layers[5].spline, clamp_right=True)
    theirs = {k: v for k, v in oracle.reference_answers(Network(layers), x, objective=objective,
                                                        info=False).items()
              if oracle.needs_objective(k)}
    report = oracle.check(net, x, theirs, objective=objective)
    assert not report.passed
    rows = {r.key: r for r in report.rows}
    assert not rows["objective/data"].passed and rows["objective/regulariser"].passed
    text = "\n".join(report.localisation["summary"])
    assert "objective/data already disagrees" in text
    assert "backward pass first goes wrong" not in text


def test_objective_with_a_knot_spline_layer_includes_its_regulariser():
    rng = np.random.default_rng(6)
    points = [np.sort(rng.uniform(-2, 2, 5)), np.sort(rng.uniform(-2, 2, 4))]
    layer = KnotSplineActivation(points, [rng.normal(size=5), rng.normal(size=4)])
    net = Network([Dense(rng.normal(size=(2, 2)), rng.normal(size=2)), layer,
                   Dense(rng.normal(size=(1, 2)))])
    x, y = rng.normal(size=(9, 2)), rng.integers(0, 2, 9)
    for reg in ("tv2", "bv2"):
        objective = oracle.Objective("logistic", y, lam=0.5, reg=reg, mu=0.1)
        ans = oracle.reference_answers(net, x, objective=objective)
        assert ans["objective/regulariser"] == pytest.approx(
            0.5 * getattr(layer.spline, reg)().sum())

        def total():
            return oracle.objective_answers(net, x, objective)["objective"]

        for name, value in net.named_params():
            fd = central_difference(total, value)
            assert relative_error(ans[f"objective_gradients/{name}"], fd) < 1e-6, (reg, name)


def test_validate_answers_names_the_problem(case):
    from reference.cli._check import expected_shapes, validate_answers

    net, x = case
    shapes = expected_shapes(net, x)
    good = {"outputs": net.forward(x)}
    validate_answers(good, shapes, "--answers")
    with pytest.raises(ValueError, match="--answers: holds no array"):
        validate_answers({}, shapes, "--answers")
    with pytest.raises(ValueError, match=r"'outputs' has shape \(3, 2\), expected"):
        validate_answers({"outputs": np.zeros((3, 2))}, shapes, "--answers")
    with pytest.raises(ValueError, match="'outputs' holds NaN or inf"):
        validate_answers({"outputs": np.full(shapes["outputs"], np.nan)}, shapes,
                                "--answers")
    with pytest.raises(ValueError, match="did you mean 'input_jacobian'"):
        validate_answers({"input_jacobain": 0}, shapes, "--answers")
    with pytest.raises(ValueError, match="needs the objective: give --loss"):
        validate_answers({"objective": 0.0}, shapes, "--answers")


def test_check_with_a_precomputed_reference_gives_the_same_report(case):
    """`check` (the command) computes reference_answers once and hands it to oracle.check:
    the report must be the one oracle.check computes on its own, failures included."""
    from reference.cli._check import all_answers

    net, x = case
    theirs = without_layers(oracle.reference_answers(net, x, info=False))
    theirs["outputs"] = theirs["outputs"].copy()
    theirs["outputs"][3, 1] += 1e-3                       # one wrong entry
    alone = oracle.check(net, x, theirs)
    given = oracle.check(net, x, theirs, reference=all_answers(net, x))
    assert not alone.passed and alone.to_json() == given.to_json()


def test_one_sided_rule_lives_in_its_module():
    """reference.one_sided holds the kink-side logic; reference.oracle re-exports its names
    (the same objects), so callers of either keep working."""
    from reference.oracle import _one_sided as one_sided
    for name in ("KNOT_TOL", "KNOT_TOL_MAX", "KNOT_TOL_SPACING", "MAX_ENUMERATED_KINKS",
                 "Spread", "check_knot_tol", "check_tolerance", "choice_label", "gradient_range",
                 "jacobian_candidates", "kink_choices", "kink_rows", "sides_from_masks"):
        assert getattr(oracle, name) is getattr(one_sided, name)
    masks = [None, np.array([[True, False], [False, False], [True, True]])]
    choices = one_sided.kink_choices(masks)
    assert sorted(choices) == [0, 2] and choices[2][1].shape == (4, 2)
    assert one_sided.kink_rows(masks, 3).tolist() == [True, False, True]
    with pytest.raises(ValueError, match="knot_tol"):
        one_sided.check_tolerance(-1.0, "knot_tol")
