import numpy as np
import pytest

from reference.data import _datasets as datasets
from reference.nn._network import build_mlp
from reference.testing import check_property
from reference.training._experiments import run_training
from reference.training._train import SGD, Adam, TrainConfig, objective, sparsify_network, train


def small_problem(seed=0, m=200):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (m, 2))
    return x, datasets.circle_labels(x)


def test_same_seed_is_bit_for_bit_reproducible():
    x, y = small_problem()
    results = []
    for _ in range(2):
        net = build_mlp([2, 3, 1], "spline", rng=5, size=11, range_=2.0)
        history = train(net, x, y, TrainConfig(epochs=3, seed=7, quiet=True))
        results.append((dict(net.named_params()), history["epochs"][-1]["total"]))
    (pa, la), (pb, lb) = results
    assert la == lb
    for key in pa:
        assert np.array_equal(pa[key], pb[key]), key
    other = build_mlp([2, 3, 1], "spline", rng=5, size=11, range_=2.0)
    train(other, x, y, TrainConfig(epochs=3, seed=8, quiet=True))
    assert not np.array_equal(dict(other.named_params())["layer0.weight"], pa["layer0.weight"])


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("reg", ["tv2", "bv2"])
def test_training_decreases_the_objective(optimizer, reg):
    x, y = small_problem()
    net = build_mlp([2, 4, 1], "spline", rng=0, size=11, range_=2.0)
    config = TrainConfig(epochs=15, optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 1e-2,
                         reg=reg, lam=1e-2, quiet=True)
    start = objective(net, x, y, config)["total"]
    history = train(net, x, y, config)
    assert history["epochs"][-1]["total"] < 0.7 * start
    assert history["epochs"][-1]["regulariser"] > 0


def test_optimisers_on_a_quadratic():
    for make in (lambda p: Adam(p, 0.1), lambda p: SGD(p, 0.05, momentum=0.5)):
        p = {"w": np.array([3.0, -2.0])}
        opt = make(p)
        for _ in range(500):
            opt.step({"w": 2 * p["w"]})
        assert np.all(np.abs(p["w"]) < 1e-2)


def test_sparsify_after_training_reports_and_removes_knots():
    x, y = small_problem()
    net = build_mlp([2, 2, 1], "spline", rng=0, size=21, range_=2.0)
    history = train(net, x, y, TrainConfig(epochs=5, quiet=True, sparsify_threshold=0.05))
    (report,) = history["sparsification"]
    counts, _ = net.layers[1].spline.num_knots()
    assert list(counts) == report["knots_left"]
    spline = net.layers[1].spline
    a = np.abs(spline.jumps())
    tol = spline.knot_tolerance()[:, None]
    assert np.all((a > 0.05) | (a <= tol))    # kept jumps, or round-off of the rebuild
    assert sum(report["knots_removed"]) > 0
    again = sparsify_network(net, 0.05)
    assert sum(again[0]["knots_removed"]) == 0


def test_bad_config():
    x, y = small_problem()
    net = build_mlp([2, 2, 1], "relu", rng=0)
    for bad, match in [({"optimizer": "rmsprop"}, "optimizer"), ({"reg": "tv1"}, "reg"),
                       ({"lr": 0}, "lr"), ({"lam": -1}, "lam"), ({"epochs": 0}, "epochs"),
                       ({"loss": "hinge"}, "loss"), ({"milestones": (1.5,)}, "milestones")]:
        with pytest.raises(ValueError, match=match):
            train(net, x, y, TrainConfig(quiet=True, **bad))
    with pytest.raises(ValueError, match="labels in"):
        train(net, x, y + 1, TrainConfig(quiet=True, epochs=1))


def circle_run(activation):
    return run_training("circle", activation, [2])[1]        # the CLI defaults


def test_two_spline_neurons_learn_the_circle_and_beat_two_relus():
    """x1^2 + x2^2 is a sum of two ridge functions: two spline neurons can draw the circle,
    two ReLU neurons cannot (issue 2's acceptance criterion, with the CLI defaults)."""
    spline = circle_run("spline")
    relu = circle_run("relu")
    assert spline["test_accuracy"] >= 0.97
    assert spline["test_accuracy"] > relu["test_accuracy"] + 0.1


# ------------------------------------------------------------------ proximal step (issue 8)
def exact_prox(coefficients, step, threshold):
    """prox_tv2 in exact rational arithmetic (Fractions of the float inputs)."""
    from fractions import Fraction
    out = []
    t, thr = Fraction(step), Fraction(threshold)
    for row in coefficients:
        c = [Fraction(v) for v in row]
        a = [(c[k - 1] - 2 * c[k] + c[k + 1]) / t for k in range(1, len(c) - 1)]
        a_hat = [(1 if v > 0 else -1) * max(abs(v) - thr, Fraction(0)) for v in a]
        slopes = [(c[1] - c[0]) / t]
        for v in a_hat:
            slopes.append(slopes[-1] + v)
        new = [c[0]]
        for s in slopes:
            new.append(new[-1] + t * s)
        out.append((new, slopes, a_hat))
    return out


def test_prox_tv2_is_soft_thresholding_of_the_jumps(profile):
    """prox_tv2 against the same formula in exact arithmetic: c_0 kept bit for bit, every
    coefficient within the rounding bound 16 K^2 u (max|c| + T K max|s| + T sum|a_hat|)."""
    from hypothesis import given
    from hypothesis import strategies as st

    from reference.nn._linear_spline import LinearSpline
    from reference.training._train import prox_tv2

    @given(st.integers(1, 2), st.integers(3, 16), st.floats(1e-2, 1.0),
           st.floats(0.0, 5.0), st.data())
    def prop(channels, size, step, threshold, data):
        values = data.draw(st.lists(st.one_of(
            st.integers(-5, 5).map(float),          # flat pieces, exact zeros; the supported
            st.floats(-10, 10).map(lambda v: 0.0 if abs(v) < 1e-6 else v)),     # range
                                    min_size=channels * size, max_size=channels * size))
        coefficients = np.array(values).reshape(channels, size)
        spline = LinearSpline(coefficients, -1.0, step)
        new = prox_tv2(spline, threshold)
        assert new.x_min == spline.x_min and new.step == spline.step
        u = np.finfo(float).eps / 2
        for c, (exact, slopes, a_hat) in enumerate(exact_prox(coefficients, step, threshold)):
            assert new.coefficients[c, 0] == coefficients[c, 0]
            bound = 16 * size ** 2 * u * (
                np.abs(coefficients[c]).max() + step * size * float(max(abs(s) for s in slopes))
                + step * float(sum(abs(v) for v in a_hat)))
            err = np.abs(new.coefficients[c] - np.array([float(v) for v in exact]))
            assert err.max() <= bound, (err.max(), bound)
    check_property(prop, profile)


def test_prox_tv2_zeroes_small_jumps_and_shrinks_the_others():
    from reference.nn._linear_spline import LinearSpline
    from reference.training._train import prox_tv2
    c = np.array([[0.0, 0.0, 1.0, 1.05, 3.0, 3.0, 2.0]])       # T = 0.5: jumps 4, -3.9, 3.8, ...
    spline = LinearSpline(c, -1.5, 0.5)
    a = spline.jumps()[0]
    new = prox_tv2(spline, 0.5)
    expected = np.sign(a) * np.maximum(np.abs(a) - 0.5, 0)
    assert np.allclose(new.jumps()[0], expected, atol=1e-13)
    assert new.coefficients[0, 0] == 0.0 and new.coefficients[0, 1] == 0.0   # c_0, c_1 kept
    assert np.isclose(new.tv2()[0], np.abs(a).sum() - 0.5 * np.count_nonzero(np.abs(a) > 0.5)
                      - np.abs(a[np.abs(a) <= 0.5]).sum())
    with pytest.raises(ValueError, match="prox"):
        TrainConfig(prox="yes").validate()


def test_prox_training_gives_exact_zeros_and_fewer_knots():
    """With the proximal step the knot count falls below Adam's with the subgradient (same
    lambda, same seed), and the training regulariser gradient leaves out the TV2 part."""
    from reference.training._train import _regulariser_grads
    x, y = small_problem()
    knots = {}
    for prox in (False, True):
        net = build_mlp([2, 2, 1], "spline", rng=0, size=21, range_=2.0)
        train(net, x, y, TrainConfig(epochs=20, lam=20.0, prox=prox, quiet=True))
        spline = net.layers[1].spline
        knots[prox] = int(spline.num_knots()[0].sum())
        if prox:
            a = np.abs(spline.jumps())
            assert np.sum(a <= 64 * np.finfo(float).eps * np.abs(spline.coefficients).max()
                          / spline.step) >= 10           # exact zeros up to the rebuild
    assert knots[True] < knots[False]
    net = build_mlp([2, 2, 1], "spline", rng=0, size=11, range_=2.0)
    spline = net.layers[1].spline
    grads = _regulariser_grads(net, TrainConfig(lam=3.0, reg="tv2", prox=True), 10)
    assert "layer1.coefficients" not in grads
    grads = _regulariser_grads(net, TrainConfig(lam=3.0, reg="bv2", prox=True), 10)
    assert np.allclose(grads["layer1.coefficients"],
                       0.3 * (spline.bv2_grad() - spline.tv2_grad()), atol=1e-15)


# ------------------------------------------------------------------ sparsify 'auto' (issue 8)
@pytest.mark.parametrize("acc_drop", [0.0, 0.01, 1.0])
def test_sparsify_auto_picks_the_largest_tolerated_threshold(acc_drop):
    """The certificate of the search: the chosen threshold keeps the training accuracy
    within acc_drop, and the next one on the ladder does not (or no knot is left); the
    network is the trained one sparsified at that threshold."""
    from reference.training._train import SPARSIFY_LADDER, accuracy, sparsify_auto
    x, y = small_problem()
    net = build_mlp([2, 3, 1], "spline", rng=0, size=21, range_=2.0)
    train(net, x, y, TrainConfig(epochs=8, quiet=True))
    trained = net.layers[1].spline.copy()
    base = accuracy(net, x, y, "logistic")
    reports, s = sparsify_auto(net, x, y, "logistic", acc_drop)
    assert s["train_accuracy_before"] == base
    chosen = s["threshold"]
    assert chosen in SPARSIFY_LADDER
    assert np.array_equal(net.layers[1].spline.coefficients,
                          trained.sparsify(chosen)[0].coefficients)
    after = accuracy(net, x, y, "logistic")
    assert after == s["train_accuracy_after"] and base - after <= acc_drop
    assert s["acc_drop"] == base - after and s["acc_drop_max"] == acc_drop
    counts = int(net.layers[1].spline.num_knots()[0].sum())
    assert s["knots_after"] == counts == s["knots_before"] - s["knots_removed"]
    assert reports[0]["threshold"] == chosen
    index = SPARSIFY_LADDER.index(chosen)
    last = s["search"][-1]
    assert [row[0] for row in s["search"]] == list(SPARSIFY_LADDER[:len(s["search"])])
    if counts == 0:
        assert last[0] == chosen
    else:                                    # stopped on the next threshold's accuracy
        assert last[0] == SPARSIFY_LADDER[index + 1] and base - last[1] > acc_drop
    if acc_drop == 1.0:
        assert counts == 0
    if acc_drop == 0.01:                     # the tolerance is used: knots are removed
        assert s["knots_removed"] > 0


def test_sparsify_config_values():
    x, y = small_problem()
    net = build_mlp([2, 2, 1], "spline", rng=0)
    for bad, match in [({"sparsify_threshold": "x"}, "sparsify_threshold"),
                       ({"sparsify_threshold": -1.0}, "sparsify_threshold"),
                       ({"acc_drop": 2.0}, "acc_drop"), ({"acc_drop": -0.1}, "acc_drop")]:
        with pytest.raises(ValueError, match=match):
            train(net, x, y, TrainConfig(quiet=True, **bad))
    history = train(net, x, y, TrainConfig(epochs=2, quiet=True, sparsify_threshold=0.05))
    s = history["sparsify"]
    assert s["mode"] == "threshold" and s["threshold"] == 0.05
    assert s["knots_removed"] == sum(sum(r["knots_removed"]) for r in history["sparsification"])


@pytest.mark.filterwarnings("error::RuntimeWarning")     # the error, not a NumPy warning too
@pytest.mark.parametrize("engine", ["numpy", "auto"])
@pytest.mark.parametrize("lam", [1e200, 1e308])
def test_training_that_leaves_the_float64_range_is_an_error(lam, engine):
    """lambda 1e200: Adam's second moment overflows and the splines would silently stop
    updating; 1e308: the objective itself is inf.  Both are errors naming --lam/--lr."""
    ds = datasets.load("circle")
    net = build_mlp([2, 2, 1], "spline", rng=0)
    config = TrainConfig(epochs=1, lam=lam, quiet=True, engine=engine)
    with pytest.raises(ValueError, match="lam, lr: training left the float64 range at epoch 1"):
        train(net, ds.x_train[:64], ds.y_train[:64], config)


# ------------------------------------------------------------------ issue 10: the step
def textbook_adam(params, grads_seq, lr=0.01, b1=0.9, b2=0.999, eps=1e-8):
    """Adam as the formula reads, one expression per line, new arrays every step."""
    m = {k: np.zeros_like(p) for k, p in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    for t, grads in enumerate(grads_seq, start=1):
        for key, p in params.items():
            g = grads[key]
            m[key] = b1 * m[key] + (1 - b1) * g
            v[key] = b2 * v[key] + (1 - b2) * g * g
            p -= lr * (m[key] / (1 - b1 ** t)) / (np.sqrt(v[key] / (1 - b2 ** t)) + eps)


def textbook_sgd(params, grads_seq, lr=0.05, momentum=0.9):
    v = {k: np.zeros_like(p) for k, p in params.items()}
    for grads in grads_seq:
        for key, p in params.items():
            v[key] = momentum * v[key] + grads[key]
            p -= lr * v[key]


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_optimisers_in_place_equal_the_textbook_formulas_bit_for_bit(name):
    """The in-place optimisers on one flat vector do the textbook operations in the same
    order: the same bits, for parameters of several shapes (the arrays stay the ones the
    network holds)."""
    rng = np.random.default_rng(11)
    shapes = {"w": (3, 4), "b": (3,), "c": (2, 21), "s": (1,)}
    params = {k: rng.normal(size=s) for k, s in shapes.items()}
    expected = {k: p.copy() for k, p in params.items()}
    grads_seq = [{k: rng.normal(size=s) * 10.0 ** rng.integers(-8, 8) for k, s in
                  shapes.items()} for _ in range(25)]
    held = dict(params)
    optimiser = Adam(params, 0.01) if name == "adam" else SGD(params, 0.05, momentum=0.9)
    for grads in grads_seq:
        optimiser.step(grads)
    (textbook_adam if name == "adam" else textbook_sgd)(expected, grads_seq)
    for key in shapes:
        assert params[key] is held[key]                       # updated in place
        np.testing.assert_array_equal(params[key], expected[key])
    assert all(np.all(np.isfinite(a)) for a in optimiser.state())


def test_per_epoch_evaluation_in_blocks_on_one_buffer(monkeypatch):
    """outputs_into evaluates EVAL_ROWS rows at a time into the given buffer: the same
    outputs as one forward pass, and an overflow still names the row of the whole input."""
    from reference.training import _train as train_module
    from reference.training._train import outputs_into
    monkeypatch.setattr(train_module, "EVAL_ROWS", 7)
    x, _ = small_problem(m=50)
    net = build_mlp([2, 5, 5, 1], "spline", rng=0, size=11, range_=2.0)
    buffer = np.empty((50, 1))
    assert outputs_into(net, x, buffer) is buffer
    np.testing.assert_allclose(buffer, net.forward(x), rtol=1e-14, atol=1e-15)
    net.layers[-2].params["weight"][...] = 1e300
    x[33] = 1e10                                   # row 33 (block 4, row 5) overflows
    with pytest.raises(ValueError, match="at input row 33"), np.errstate(over="ignore"):
        outputs_into(net, x, buffer)


def test_training_records_validation_accuracy_every_epoch():
    x, y = small_problem()
    xv, yv = small_problem(seed=1, m=60)
    net = build_mlp([2, 3, 1], "spline", rng=0, size=11, range_=2.0)
    history = train(net, x, y, TrainConfig(epochs=3, quiet=True), x_valid=xv, y_valid=yv)
    from reference.training._train import accuracy
    assert [r["epoch"] for r in history["epochs"]] == [1, 2, 3]
    assert history["epochs"][-1]["valid_accuracy"] == accuracy(net, xv, yv, "logistic")
    assert history["epochs"][-1]["total"] == objective(net, x, y, TrainConfig())["total"]


def test_validation_inputs_without_their_labels_are_refused():
    """x_valid without y_valid used to record valid_accuracy 0.0 every epoch (labels compared
    with None): a silent wrong number.  Now the pair is required together and the labels are
    checked like the training targets, naming y_valid."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (16, 2))
    y = (x[:, 0] > 0).astype(int)
    net = build_mlp([2, 3, 1], "relu", rng=0)
    config = TrainConfig(epochs=1, quiet=True)
    with pytest.raises(ValueError, match="^y_valid: expected it together with x_valid"):
        train(net, x, y, config, x_valid=x)
    with pytest.raises(ValueError, match="^x_valid: expected it together with y_valid"):
        train(net, x, y, config, y_valid=y)
    with pytest.raises(ValueError, match="^y_valid: expected 16 targets"):
        train(net, x, y, config, x_valid=x, y_valid=y[:5])
    with pytest.raises(ValueError, match="^y_valid: expected labels in"):
        train(net, x, y, config, x_valid=x, y_valid=y + 2)
    history = train(net, x, y, config, x_valid=x, y_valid=y)
    assert history["epochs"][-1]["valid_accuracy"] == pytest.approx(
        history["epochs"][-1]["train_accuracy"])
