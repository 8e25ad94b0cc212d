"""TrainConfig.convention = 'deepsplines' (issue 18, part 1): DeepSplines' per-batch objective,
checked without torch (the cross-check against DeepSplines itself: test_paper_recipe.py)."""
import numpy as np
import pytest

from reference.data import _datasets as datasets
from reference.nn._linear_spline import LinearSpline
from reference.nn._losses import check_targets, loss_and_grad
from reference.nn._network import Dense, Identity, Network, PReLU, SplineActivation, build_mlp
from reference.testing import central_difference, relative_error
from reference.training import _convention as convention
from reference.training import _train
from reference.training._train import TrainConfig, batch_gradients, objective, train

STEP, SIZE = 0.25, 9                      # DeepSplines' grid k T, k = -4 .. 4


def ds_net(seed: int, n_out: int = 1, first_bias: bool = False, prelu: bool = True) -> Network:
    """dense (no bias) -> spline on DeepSplines' grid -> dense -> PReLU -> dense, random."""
    rng = np.random.default_rng(seed)
    spline = LinearSpline(rng.normal(size=(3, SIZE)), -(STEP * (SIZE // 2)), STEP)
    return Network([
        Dense(0.8 * rng.normal(size=(3, 2)), rng.normal(size=3) if first_bias else None),
        SplineActivation(spline),
        Dense(0.5 * rng.normal(size=(3, 3)), rng.normal(size=3)),
        PReLU(rng.uniform(0.1, 0.5, 3)) if prelu else Identity(),
        Dense(0.5 * rng.normal(size=(n_out, 3)), rng.normal(size=n_out)),
        Identity()])


def batch(loss: str, rows: int = 7, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (rows, 2))
    y = {"logistic": datasets.circle_labels(x), "squared": rng.normal(size=rows),
         "xent": rng.integers(0, 3, rows)}[loss]
    return x, y


@pytest.mark.parametrize("reg", ["tv2", "bv2"])
@pytest.mark.parametrize("loss", ["logistic", "squared", "xent"])
def test_deepsplines_batch_gradient_is_the_gradient_of_the_batch_objective(loss, reg):
    """The gradient train() follows under 'deepsplines' is that of
    J_B = mean_B E + (mu/2)(||W||^2 + ||b||^2 + ||PReLU slopes||^2) + lam R, nothing over M
    (central differences of the objective the per-epoch record reports, on the batch)."""
    net = ds_net(0, n_out=3 if loss == "xent" else 1)
    x, y = batch(loss)
    config = TrainConfig(loss=loss, mu=0.3, lam=0.05, reg=reg, convention="deepsplines")
    targets = check_targets(loss, (len(x), net.n_out), y)
    grads = batch_gradients(net, config, x, targets, m=1500)
    assert set(grads) == {name for name, _ in net.named_params()}
    for name, value in batch_gradients(net, config, x, targets, m=10).items():
        np.testing.assert_array_equal(value, grads[name])          # M does not enter

    def total():
        return objective(net, x, y, config)["total"]

    for name, param in net.named_params():
        numeric = central_difference(total, param)
        assert relative_error(grads[name], numeric) < 1e-6, name


def test_the_batch_objective_is_deepsplines_and_not_divided_by_m():
    """Each term as DeepSplines writes it: the data term is the batch mean, weight decay
    (mu/2) ||theta||^2 over dense weights, biases and PReLU slopes (not the splines), lam R."""
    net = ds_net(2)
    x, y = batch("squared")
    config = TrainConfig(loss="squared", mu=0.3, lam=0.05, reg="bv2", convention="deepsplines")
    terms = objective(net, x, y, config)
    data, _ = loss_and_grad("squared", net(x), y[:, None])
    np.testing.assert_allclose(terms["data"], data / len(x), rtol=1e-14)
    squares = sum(np.sum(p ** 2) for name, p in net.named_params() if name != "layer1.coefficients")
    np.testing.assert_allclose(terms["weight_decay"], 0.15 * squares, rtol=1e-14)
    spline = net.layers[1].spline
    np.testing.assert_allclose(terms["regulariser"], 0.05 * np.sum(spline.bv2()), rtol=1e-13)
    assert terms["total"] == terms["data"] + terms["weight_decay"] + terms["regulariser"]


@pytest.mark.parametrize("reg", ["tv2", "bv2"])
def test_the_mapping_to_the_project_convention(reg):
    """lam_DS = lam / M and mu_DS = 2 mu / M give the project's minibatch gradient on a
    network whose only decayed parameters are dense weights (no biases, no PReLU): the mapping
    the documentation states."""
    rng = np.random.default_rng(4)
    spline = LinearSpline(rng.normal(size=(3, SIZE)), -(STEP * (SIZE // 2)), STEP)
    net = Network([Dense(rng.normal(size=(3, 2))), SplineActivation(spline),
                   Dense(rng.normal(size=(1, 3))), Identity()])
    x, y = batch("squared", rows=9)
    targets = check_targets("squared", (9, 1), y)
    m, mu, lam = 1500, 2e-2, 3.0
    project = batch_gradients(net, TrainConfig(loss="squared", mu=mu, lam=lam, reg=reg), x,
                              targets, m)
    ds = batch_gradients(net, TrainConfig(loss="squared", mu=2 * mu / m, lam=lam / m, reg=reg,
                                          convention="deepsplines"), x, targets, m)
    for name, value in project.items():
        assert relative_error(ds[name], value) < 1e-13, name


def test_bce_on_sigmoid_is_the_logistic_loss_with_torchs_clamps():
    """The logistic data term under 'deepsplines' is torch's BCELoss on sigmoid(f): the
    logistic loss log(1 + e^f) - y f and its gradient sigmoid(f) - y for moderate logits
    (the loss to the rounding of p: log of a rounded 1 - p loses ~e^|f| ulps, as in torch);
    log clamped at -100 (loss 100) and a gradient that vanishes where p rounds to 0 or 1."""
    f = np.linspace(-20, 20, 41)[:, None]
    y = (np.arange(41) % 2).astype(float)[:, None]
    values, grad = convention.bce_on_sigmoid(f, y)
    reference_value = (np.logaddexp(0.0, f) - y * f)[:, 0]
    moderate = np.abs(f[:, 0]) <= 3
    np.testing.assert_allclose(values[moderate], reference_value[moderate], rtol=1e-14)
    assert np.all(np.abs(values - reference_value) <= 1e-15 * np.exp(np.abs(f[:, 0])))
    np.testing.assert_allclose(grad, 1 / (1 + np.exp(-f)) - y, rtol=1e-12, atol=1e-15)
    values, grad = convention.bce_on_sigmoid(np.array([[40.0], [-800.0], [28.0]]),
                                             np.array([[0.0], [1.0], [0.0]]))
    assert values[0] == 100.0 and values[1] == 100.0          # log(0) clamped at -100
    assert grad[0, 0] == 0.0 and grad[1, 0] == 0.0            # p(1 - p) = 0: no gradient
    p = 1 / (1 + np.exp(-28.0))
    assert 0.5 < grad[2, 0] < p - 0.0                          # p(1-p) < 1e-12: damped


def test_deepsplines_data_gradient_is_the_batch_mean():
    """data_term: the gradient of the mean over the rows (each row's over |B|)."""
    rng = np.random.default_rng(0)
    out = rng.normal(size=(6, 1))
    y = (rng.uniform(size=(6, 1)) < 0.5).astype(float)
    value, grad = convention.data_term("logistic", out, y)
    np.testing.assert_allclose(value, np.mean(np.logaddexp(0, out) - y * out), rtol=1e-14)
    np.testing.assert_allclose(grad, (1 / (1 + np.exp(-out)) - y) / 6, rtol=1e-13)


def test_jumps_are_summed_in_torchs_order():
    """a_k = (w0 c_k + w1 c_{k+1}) + w2 c_{k+2}, w = (fl(1/T), fl(-2/T), fl(1/T)), one
    rounding per operation in that order (a Python scalar loop), which is not np.diff's
    result at DeepSplines' leaky-ReLU initialisation: the signs that decide Adam's first
    step differ."""
    step = ((1.0 / 10) // 1e-6) * 1e-6                       # DeepSplines' T for K 21, range 1
    assert step == 0.09999999999999999
    k = np.arange(-10, 11) * step
    c = np.tile(np.where(k >= 0, k, 0.01 * k), (4, 1))
    rng = np.random.default_rng(0)
    c[2:] = rng.normal(size=(2, 21))
    w0, w1, w2 = 1.0 / step, -2.0 / step, 1.0 / step
    loop = [[(w0 * float(row[j]) + w1 * float(row[j + 1])) + w2 * float(row[j + 2])
             for j in range(19)] for row in c]
    np.testing.assert_array_equal(convention.jumps(c, step), loop)
    diff = np.diff(c[:2], n=2, axis=1) / step
    assert np.any(np.sign(diff) != np.sign(convention.jumps(c[:2], step)))
    s = np.sign(convention.jumps(c, step))
    expected = np.zeros_like(c)
    for j in range(19):
        expected[:, j] += w0 * s[:, j]
        expected[:, j + 1] += w1 * s[:, j]
        expected[:, j + 2] += w2 * s[:, j]
    np.testing.assert_array_equal(convention.tv2_grad(c, step), expected)


def test_values_at_zero_and_one_are_the_spline_and_exact_at_zero():
    """values_at is the spline (LinearSpline on the same grid agrees to rounding, also where
    1 lies beyond the grid), sigma(0) is c at the zero knot exactly, and its gradient weights
    reproduce the values (sigma is linear in c)."""
    rng = np.random.default_rng(3)
    for size, step in ((21, 0.09999999999999999), (9, 0.25), (5, 0.1)):
        c = rng.normal(size=(3, size))
        half = size // 2
        spline = LinearSpline(c, -(step * half), step)
        for z in (0.0, 1.0, -0.37):
            values, weights = convention.values_at(c, step, z)
            np.testing.assert_allclose(values, spline(np.full((1, 3), z))[0], rtol=1e-13,
                                       atol=1e-14 * np.abs(c).max())
            np.testing.assert_allclose(np.sum(weights * c, axis=1), values, rtol=1e-13)
        np.testing.assert_array_equal(convention.values_at(c, step, 0.0)[0], c[:, half])


def test_deepsplines_weight_decay_covers_biases_and_prelu_slopes_not_splines():
    net = ds_net(5)
    grads = convention.penalty_grads(net, mu=0.5, lam=0.0, reg="bv2")
    decayed = {"layer0.weight", "layer2.weight", "layer2.bias", "layer3.slope",
               "layer4.weight", "layer4.bias"}
    assert set(grads) == decayed
    params = dict(net.named_params())
    for name in decayed:
        np.testing.assert_array_equal(grads[name], 0.5 * params[name])
    with_lam = convention.penalty_grads(net, mu=0.5, lam=0.2, reg="tv2")
    spline = net.layers[1].spline
    np.testing.assert_array_equal(with_lam["layer1.coefficients"],
                                  0.2 * convention.tv2_grad(spline.coefficients, spline.step))
    prox = convention.penalty_grads(net, mu=0.5, lam=0.2, reg="bv2", prox=True)
    np.testing.assert_array_equal(
        prox["layer1.coefficients"],
        0.2 * convention.magnitudes_grad(spline.coefficients, spline.step))
    assert "layer1.coefficients" not in convention.penalty_grads(net, 0.5, 0.2, "tv2", True)


def test_deepsplines_prox_threshold_is_lr_times_lambda(monkeypatch):
    """prox under 'deepsplines' soft-thresholds by lr_spline * lam (no 1 / M) (the NumPy
    loop's prox step is watched: engine='numpy')."""
    thresholds = []
    monkeypatch.setattr(_train, "_apply_prox", lambda net, t: thresholds.append(t))
    x, y = batch("logistic", rows=30)
    found = {}
    for name, lam in (("deepsplines", 1e-3), ("project", 1e-3 * 30)):     # lam_DS = lam / M
        thresholds.clear()
        train(ds_net(0), x, y, TrainConfig(epochs=1, batch_size=10, spline_lr=0.02, lam=lam,
                                           prox=True, convention=name, quiet=True,
                                           engine="numpy"))
        found[name] = list(thresholds)
    assert found["deepsplines"] == [0.02 * 1e-3] * 3
    np.testing.assert_allclose(found["project"], found["deepsplines"], rtol=1e-15)


def test_the_epoch_record_is_deepsplines_objective_on_the_training_set():
    x, y = batch("logistic", rows=40)
    net = ds_net(1)
    config = TrainConfig(epochs=2, batch_size=10, lr=1e-2, spline_lr=1e-2, mu=1e-3, lam=1e-3,
                         reg="bv2", convention="deepsplines", quiet=True)
    history = train(net, x, y, config)
    assert history["config"]["convention"] == "deepsplines"
    record = history["epochs"][-1]
    terms = convention.objective_terms(net, "logistic", 1e-3, 1e-3, "bv2", net(x),
                                       check_targets("logistic", (40, 1), y))
    assert {k: record[k] for k in terms} == terms
    project = objective(net, x, y, TrainConfig())
    np.testing.assert_allclose(record["data"] * 40, project["data"], rtol=1e-12)


def test_batch_order_is_followed_and_checked():
    """batch_order: the seeded permutations given explicitly give the same bits; another
    order gives other parameters; anything but one permutation per epoch is refused."""
    x, y = batch("logistic", rows=30)
    config = TrainConfig(epochs=2, batch_size=8, seed=3, quiet=True)
    rng = np.random.default_rng(3)
    order = np.stack([rng.permutation(30) for _ in range(2)])
    seeded, given, other = ds_net(0), ds_net(0), ds_net(0)
    train(seeded, x, y, config)
    train(given, x, y, config, batch_order=order)
    train(other, x, y, config, batch_order=order[::-1])
    for (name, a), (_, b), (_, c) in zip(seeded.named_params(), given.named_params(),
                                         other.named_params()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(dict(other.named_params())["layer0.weight"],
                              dict(seeded.named_params())["layer0.weight"])
    bad = [order[:1], order.astype(float), np.stack([order[0], np.zeros(30, int)]),
           order[:, :29]]
    for value in bad:
        with pytest.raises(ValueError, match="^batch_order: expected one permutation"):
            train(ds_net(0), x, y, config, batch_order=value)


def test_deepsplines_bv2_needs_deepsplines_grid():
    """sigma(0), sigma(1) are evaluated as DeepSplines does, on its grid k T (odd K, knots
    symmetric about 0): another grid is refused under BV2, naming the convention; TV2 and
    the project's convention take any grid."""
    x, y = batch("logistic", rows=10)
    shifted = build_mlp([2, 2, 1], "spline", rng=0, size=9, range_=1.0)
    shifted.layers[1].spline.x_min += 0.01
    even = build_mlp([2, 2, 1], "spline", rng=0, size=8, range_=1.0)
    for net in (shifted, even):
        with pytest.raises(ValueError, match="^convention: 'deepsplines' evaluates .*layer 1"):
            train(net, x, y, TrainConfig(epochs=1, reg="bv2", convention="deepsplines",
                                         quiet=True))
        train(net, x, y, TrainConfig(epochs=1, reg="tv2", convention="deepsplines", quiet=True))
        train(net, x, y, TrainConfig(epochs=1, reg="bv2", quiet=True))
    with pytest.raises(ValueError, match="^convention: expected one of"):
        TrainConfig(convention="torch").validate()
