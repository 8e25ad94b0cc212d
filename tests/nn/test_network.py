import numpy as np
import pytest

from reference.nn._linear_spline import LinearSpline
from reference.nn._losses import check_targets, loss_and_grad
from reference.nn._network import (
    Dense,
    Identity,
    KnotSplineActivation,
    LeakyReLU,
    Network,
    PReLU,
    ReLU,
    SplineActivation,
    build_mlp,
)
from reference.testing import central_difference, relative_error


def mixed_network(rng, n_in=3, n_out=2):
    """dense-spline-dense-prelu-dense-leaky-dense-relu-dense-identity."""
    def dense(i, o):
        return Dense(rng.normal(size=(o, i)), rng.normal(size=o))
    spline = LinearSpline(rng.normal(size=(4, 9)), -1.5, 0.375)
    return Network([dense(n_in, 4), SplineActivation(spline), dense(4, 5),
                    PReLU(rng.uniform(-0.5, 0.5, 5)), dense(5, 4), LeakyReLU(0.2),
                    dense(4, 3), ReLU(), Dense(rng.normal(size=(n_out, 3)), None), Identity()])


def away_from_kinks(net, x, margin=1e-4):
    """True when no pre-activation of a kinked layer is within `margin` of a kink."""
    _, caches = net.forward(x, keep_cache=True)
    for layer, z in zip(net.layers, caches):
        if isinstance(layer, SplineActivation):
            u = (z - layer.spline.x_min) / layer.spline.step
            if np.min(np.abs(u - np.round(u))) * layer.spline.step < margin:
                return False
        elif isinstance(layer, (ReLU, LeakyReLU, PReLU)) and np.min(np.abs(z)) < margin:
            return False
    return True


@pytest.mark.parametrize("loss", ["squared", "logistic", "xent"])
def test_parameter_gradients_match_central_differences(loss):
    rng = np.random.default_rng(0)
    n_out = 1 if loss == "logistic" else 3
    net = mixed_network(rng, n_out=n_out)
    x = rng.normal(size=(12, 3))
    while not away_from_kinks(net, x):
        x = rng.normal(size=(12, 3))
    y = {"squared": rng.normal(size=(12, n_out)), "logistic": rng.integers(0, 2, 12),
         "xent": rng.integers(0, 3, 12)}[loss]
    targets = check_targets(loss, (12, n_out), y)

    def total_loss():
        return loss_and_grad(loss, net.forward(x), targets)[0]

    out, caches = net.forward(x, keep_cache=True)
    _, grad_out = loss_and_grad(loss, out, targets)
    grad_x, grads = net.backward(caches, grad_out)
    for name, value in net.named_params():
        assert relative_error(grads[name], central_difference(total_loss, value)) < 1e-6, name
    assert relative_error(grad_x, central_difference(total_loss, x)) < 1e-6


def test_loss_gradients_match_central_differences():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(7, 3))
    cases = [("squared", rng.normal(size=(7, 3)), f),
             ("logistic", rng.integers(0, 2, 7), f[:, :1]),
             ("xent", rng.integers(0, 3, 7), f)]
    for loss, y, out in cases:
        out = out.copy()
        targets = check_targets(loss, out.shape, y)
        _, grad = loss_and_grad(loss, out, targets)
        fd = central_difference(lambda: loss_and_grad(loss, out, targets)[0], out)
        assert relative_error(grad, fd) < 1e-6, loss


def test_loss_values():
    f = np.array([[0.0], [2.0]])
    assert loss_and_grad("logistic", f, np.array([[1.0], [0.0]]))[0] == pytest.approx(
        np.log(2) + np.log(1 + np.exp(2)))
    assert loss_and_grad("squared", f, np.array([[1.0], [0.0]]))[0] == pytest.approx(2.5)
    logits = np.array([[1.0, 2.0, 3.0]])
    assert loss_and_grad("xent", logits, np.array([2]))[0] == pytest.approx(
        np.log(np.exp(1) + np.exp(2) + np.exp(3)) - 3)
    # stable for large logits
    value, grad = loss_and_grad("logistic", np.array([[800.0]]), np.array([[0.0]]))
    assert value == pytest.approx(800.0) and grad[0, 0] == pytest.approx(1.0)


def test_input_jacobian_matches_finite_differences():
    rng = np.random.default_rng(2)
    net = mixed_network(rng)
    x = rng.normal(size=(5, 3))
    while not away_from_kinks(net, x):
        x = rng.normal(size=(5, 3))
    jac = net.input_jacobian(x)
    assert jac.shape == (5, 2, 3)
    h = 1e-6
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        fd = (net.forward(x + e) - net.forward(x - e)) / (2 * h)
        assert relative_error(jac[:, :, j], fd) < 1e-6
    # the backward pass with grad_out = e_i gives row i of the Jacobian
    out, caches = net.forward(x, keep_cache=True)
    g = np.zeros_like(out)
    g[:, 1] = 1
    grad_x, _ = net.backward(caches, g)
    np.testing.assert_allclose(grad_x, jac[:, 1, :], rtol=1e-12, atol=1e-12)


def test_build_mlp_is_seeded():
    a = build_mlp([2, 4, 1], "spline", rng=3)
    b = build_mlp([2, 4, 1], "spline", rng=3)
    for (na, va), (nb, vb) in zip(a.named_params(), b.named_params()):
        assert na == nb
        np.testing.assert_array_equal(va, vb)
    assert [layer.kind for layer in a.layers] == ["dense", "spline", "dense", "identity"]


def test_build_mlp_without_first_bias_draws_as_deepsplines_twodnet(tmp_path):
    """first_bias=False: the first dense layer has no bias and none is drawn (TwoDNet's draw
    order: W1, W2, b2, ...); the other layers keep theirs, and the model file keeps the
    layer bias-free."""
    from reference.io import load_model, save_model

    net = build_mlp([2, 4, 3, 1], "spline", rng=3, first_bias=False, size=5, range_=1.0)
    rng = np.random.default_rng(3)
    expected = {"layer0.weight": rng.uniform(-1 / np.sqrt(2), 1 / np.sqrt(2), (4, 2)),
                "layer2.weight": rng.uniform(-0.5, 0.5, (3, 4)),
                "layer2.bias": rng.uniform(-0.5, 0.5, 3)}
    params = dict(net.named_params())
    assert "layer0.bias" not in params and "layer4.bias" in params
    for name, value in expected.items():
        np.testing.assert_array_equal(params[name], value)
    with_bias = build_mlp([2, 4, 3, 1], "spline", rng=3, size=5, range_=1.0)
    np.testing.assert_array_equal(dict(with_bias.named_params())["layer0.weight"],
                                  params["layer0.weight"])
    save_model(net, tmp_path / "m.npz")
    again = load_model(tmp_path / "m.npz")
    assert "bias" not in again.layers[0].params
    x = np.random.default_rng(0).uniform(-1, 1, (5, 2))
    np.testing.assert_array_equal(again(x), net(x))
    with pytest.raises(ValueError, match="^first_bias: expected True or False"):
        build_mlp([2, 1], "relu", first_bias="no")


def test_bad_networks_and_inputs():
    with pytest.raises(ValueError, match="layers"):
        Network([])
    with pytest.raises(ValueError, match=r"layers\[2\].*expected input width 3"):
        Network([Dense(np.ones((2, 2))), ReLU(), Dense(np.ones((1, 3)))])
    with pytest.raises(ValueError, match="first layer"):
        Network([ReLU(), Dense(np.ones((1, 3)))])
    with pytest.raises(ValueError, match="bias"):
        Dense(np.ones((2, 2)), np.ones(3))
    with pytest.raises(ValueError, match="weight"):
        Dense(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="slope"):
        LeakyReLU(np.inf)
    with pytest.raises(ValueError, match="activation"):
        build_mlp([2, 1], "tanh")
    with pytest.raises(ValueError, match="widths"):
        build_mlp([2], "relu")
    net = build_mlp([2, 3, 1], "relu", rng=0)
    with pytest.raises(ValueError, match=r"x: expected shape \(M, 2\)"):
        net.forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="x: expected finite"):
        net.forward(np.array([[np.nan, 0.0]]))


@pytest.mark.parametrize("loss, shape, y, match", [
    ("hinge", (3, 1), [0, 1, 0], "loss"),
    ("logistic", (3, 1), [0, 2, 1], r"labels in \{0, 1\}"),
    ("logistic", (3, 2), [0, 1, 1], "one output"),
    ("xent", (3, 3), [0, 3, 1], r"class labels in \[0, 3\)"),
    ("xent", (3, 3), [0, 0.5, 1], "integer"),
    ("squared", (3, 2), np.zeros((3, 3)), "y: expected shape"),
    ("squared", (3, 1), [0.0, np.nan, 1.0], "finite"),
    ("squared", (3, 1), [0.0, 1.0], "one per input"),
])
def test_bad_targets(loss, shape, y, match):
    with pytest.raises(ValueError, match=match):
        check_targets(loss, shape, y)


# ------------------------------------------------ knot-form layers and one-sided slopes
def knot_layer(rng):
    points = [np.sort(rng.uniform(-2, 2, 6)), np.sort(rng.uniform(-1, 1, 3))]
    return KnotSplineActivation(points, [rng.normal(size=6), rng.normal(size=3)])


def test_knot_spline_parameter_gradients_match_central_differences():
    rng = np.random.default_rng(7)
    layer = knot_layer(rng)
    net = Network([Dense(rng.normal(size=(2, 3)), rng.normal(size=2)), layer,
                   Dense(rng.normal(size=(1, 2)))])
    x = rng.normal(size=(25, 3)) * 2          # inside the points and in both extrapolations
    while not away_from_points(net, x):
        x = rng.normal(size=(25, 3)) * 2
    out, caches = net.forward(x, keep_cache=True)
    _, grads = net.backward(caches, np.ones_like(out))
    assert set(grads) == {"layer0.weight", "layer0.bias", "layer1.points", "layer1.values",
                          "layer2.weight"}
    for name, value in net.named_params():
        fd = central_difference(lambda: net.forward(x).sum(), value)
        assert relative_error(grads[name], fd) < 1e-6, name
    # points[n] and values[n] are views of the parameters: an update moves the layer
    layer.params["values"][0] += 1.0
    assert layer.values[0][0] == layer.params["values"][0]


def away_from_points(net, x, margin=1e-4):
    _, caches = net.forward(x, keep_cache=True)
    z = caches[1]
    return all(np.min(np.abs(z[:, n, None] - p)) > margin
               for n, p in enumerate(net.layers[1].points))


@pytest.mark.parametrize("reg", ["tv2", "bv2"])
def test_knot_spline_regulariser_gradients_match_central_differences(reg):
    layer = knot_layer(np.random.default_rng(8))
    grads = layer.regulariser_grads(reg)
    for key in ("points", "values"):
        fd = central_difference(lambda: getattr(layer.spline, reg)().sum(), layer.params[key])
        assert relative_error(grads[key], fd) < 1e-6, key


def test_one_sided_derivatives_at_kinks():
    rng = np.random.default_rng(9)
    spline = LinearSpline(rng.normal(size=(2, 6)), -1.0, 0.4)
    knots = knot_layer(rng)
    cases = [(SplineActivation(spline), np.array([[-0.6, 0.2], [0.3, 1.0]]), 0.4),
             (knots, np.array([[knots.points[0][2], knots.points[1][1]],
                               [knots.points[0][0] - 1, 0.0]]), 0.0),
             (ReLU(), np.array([[0.0, 1.0], [-1.0, 0.0]]), 0.0),
             (LeakyReLU(0.2), np.array([[0.0, 1.0], [-1.0, 0.0]]), 0.0),
             (PReLU(np.array([0.3, -0.5])), np.array([[0.0, 1.0], [-1.0, 0.0]]), 0.0)]
    for layer, z, step in cases:
        on = layer.on_kink(z, 1e-9, 1.0)                  # pre-activations of magnitude 1
        assert on.any(), layer.kind
        for side in (-1, 1):
            d = layer.derivative_at(z, (side * on).astype(np.int8))
            h = 1e-6
            fd = side * (layer.forward(z + side * h)[0] - layer.forward(z)[0]) / h
            np.testing.assert_allclose(d, fd, rtol=1e-6, atol=1e-6, err_msg=layer.kind)
        # off the kinks and with no side, the layer's own derivative (the right piece)
        np.testing.assert_array_equal(layer.derivative_at(z), layer.derivative(z))
        # within knot_tol max(magnitude, |tau|) of a kink, not beyond
        shifted = z + on * 2e-9 * max(1.0, 2.0, step)
        assert not layer.on_kink(shifted, 1e-9, 1.0)[on].any()
        assert layer.on_kink(z + on * 0.5e-9, 1e-9, 1.0)[on].all()


def test_backward_with_sides_gives_one_sided_gradients():
    """At a pre-activation on a knot of a knot-form layer, the points' gradient jumps: the
    left and right choices are the two one-sided derivatives."""
    layer = knot_layer(np.random.default_rng(10))
    z = np.array([[layer.points[0][2], 0.1]])
    g = np.ones_like(z)
    for side in (-1, 1):
        sides = np.array([[side, 0]], dtype=np.int8)
        _, grads = layer.backward(z, g, sides)
        for key in ("points", "values"):
            h = 1e-7
            base = layer.forward(z)[0].sum()
            arr = layer.params[key]
            fd = np.zeros_like(arr)
            for i in range(len(arr)):          # one-sided in the direction that keeps z on side
                old = arr[i]
                arr[i] = old - side * h
                fd[i] = -side * (layer.forward(z)[0].sum() - base) / h
                arr[i] = old
            np.testing.assert_allclose(grads[key], fd, rtol=1e-5, atol=1e-5, err_msg=key)


# ------------------------------------------------- the activations module (reference.activations)
MOVED_NAMES = ("Activation", "Ramp", "ReLU", "LeakyReLU", "PReLU", "Identity", "SplineActivation",
               "KnotSplineActivation", "ACTIVATION_TYPES", "ACTIVATIONS", "register",
               "make_activation", "nearest_index", "kinks_from_slopes", "NO_PARAMS")


def test_network_reexports_the_activations_module():
    from reference.nn import _activations as activations
    from reference.nn import _network as network
    for name in MOVED_NAMES:
        assert getattr(network, name) is getattr(activations, name), name
    assert set(network.ACTIVATIONS) == {"spline", "relu", "leaky_relu", "prelu", "identity"}
    assert set(network.layer_types()) == {"dense", *activations.ACTIVATION_TYPES}


def test_the_kink_window_has_no_absolute_default():
    """The kink window is knot_tol max(magnitude, |tau|): a default magnitude of 1 (the old
    absolute window, which held every sample of a network whose pre-activations are 1e-12)
    is gone, and so is Network.kink_masks, which applied it (reference.one_sided.kink_masks
    takes the magnitudes of reference.magnitudes)."""
    z = np.array([[1e-12, -1e-12]])
    for layer in (ReLU(), LeakyReLU(0.2)):
        with pytest.raises(TypeError, match="magnitude"):
            layer.on_kink(z, 1e-9)
        with pytest.raises(TypeError, match="magnitude"):
            layer.kink_windows(z, 1e-9)
        assert not layer.on_kink(z, 1e-9, 1e-12).any()        # its own scale: off the kink
    assert not hasattr(Network, "kink_masks")
