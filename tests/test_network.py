import numpy as np
import pytest
from finite_differences import central_difference, relative_error

from reference.network import (Dense, Identity, LeakyReLU, Network, PReLU, ReLU,
                               SplineActivation, build_mlp, check_targets, loss_and_grad)
from reference.spline import LinearSpline


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
