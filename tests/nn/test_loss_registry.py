"""The loss registry (reference.nn._losses): the built-in records keep the former behaviour,
and a loss registered here alone (twice the squared loss, E = ||f - y||^2) trains, solves and
certifies without an edit of another module."""
import numpy as np
import pytest

from reference.convex import solve_layer
from reference.convex._solver_settings import LOSS_CLASS
from reference.nn import LOSSES, Loss, loss_and_grad, predict_labels, register_loss
from reference.nn._losses import LOSS_RECORDS, check_targets, get_loss
from reference.testing import solve_instance
from reference.training import TrainConfig, train
from reference.training._train import objective


def _value_and_grad(outputs, y):
    r = outputs - y
    return float(np.sum(r * r)), 2.0 * r


def _cvx(out, y):
    import cvxpy as cp

    return cp.sum_squares(out - y)


def _conjugate_terms(r, c, y, gamma):
    """E(f) = |f - y|^2: E*(r) = r.y + |r|^2 / 4."""
    return np.concatenate([(r * (c - y)).ravel(), -0.25 * (r * r).ravel()])


DOUBLE_SQUARED = Loss("double_squared", LOSS_RECORDS["squared"].check_targets,
                      _value_and_grad, None, "qp", _cvx, _conjugate_terms,
                      output_scaled=True)


@pytest.fixture
def double_squared():
    register_loss(DOUBLE_SQUARED)
    try:
        yield DOUBLE_SQUARED
    finally:
        del LOSS_RECORDS["double_squared"]


def test_the_builtin_records_give_the_former_tables():
    assert LOSSES == ("squared", "logistic", "xent")
    assert dict(LOSS_CLASS) == {"squared": "qp", "logistic": "exp", "xent": "exp"}
    assert [n for n in LOSSES if get_loss(n).shift_invariant] == ["xent"]
    assert [n for n in LOSSES if get_loss(n).output_scaled] == ["squared"]
    assert [n for n in LOSSES if get_loss(n).predict is None] == ["squared"]
    with pytest.raises(ValueError, match="loss: 'squared' is not a classification loss"):
        predict_labels("squared", np.zeros((2, 1)))
    with pytest.raises(ValueError, match="loss: 'squared' is already registered"):
        register_loss(LOSS_RECORDS["squared"])


def test_a_registered_loss_is_a_choice_everywhere(double_squared):
    assert "double_squared" in LOSSES and LOSS_CLASS["double_squared"] == "qp"
    outputs, y = np.array([[1.0], [3.0]]), np.array([0.0, 1.0])
    targets = check_targets("double_squared", outputs.shape, y)
    value, grad = loss_and_grad("double_squared", outputs, targets)
    half, half_grad = loss_and_grad("squared", outputs, targets)
    assert value == 2 * half and np.array_equal(grad, 2 * half_grad)
    with pytest.raises(ValueError, match="y: expected 2 targets"):
        check_targets("double_squared", outputs.shape, np.zeros(3))


def test_a_registered_loss_trains(double_squared):
    net, x, y = solve_instance((2, 3, 1), m=40, loss="squared", seed=1)
    config = TrainConfig(loss="double_squared", epochs=20, batch_size=8, lam=1e-4,
                         quiet=True)
    before = objective(net, x, y, config)
    history = train(net, x, y, config)
    after = objective(net, x, y, config)
    assert after["data"] < before["data"]
    residual = net.forward(x) - np.reshape(y, (len(x), -1))
    assert after["data"] == pytest.approx(float(np.sum(residual ** 2)), rel=1e-12)
    assert "train_accuracy" not in history["epochs"][-1]     # a regression loss: no labels


def test_a_registered_loss_solves_and_certifies(double_squared):
    """||f - y||^2 + lam R = 2 (1/2 ||f - y||^2 + (lam / 2) R): the same optimum, twice the
    objective, certified by the dual bound through the record's conjugate."""
    net, x, y = solve_instance((2, 3, 1), m=50, loss="squared", seed=2)
    lam = 0.05
    _, cert = solve_layer(net, 1, x, y, loss="double_squared", lam=lam)
    _, half = solve_layer(net, 1, x, y, loss="squared", lam=lam / 2)
    assert cert["status"] == half["status"] == "optimal"
    assert cert["certified_by"] == "dual bound" and cert["lower_bound"] is not None
    assert cert["objective"] == pytest.approx(2 * half["objective"], rel=1e-6)
    assert cert["lower_bound"] <= cert["objective"] * (1 + 1e-12)


@pytest.mark.parametrize("loss", ["squared", "logistic", "xent"])
def test_scalar_targets_are_refused_naming_the_argument(loss):
    """A single number as the targets is a ValueError naming the argument, not an IndexError
    from its missing first axis."""
    with pytest.raises(ValueError, match=r"^y_valid: expected 3 targets .*got shape \(\)"):
        check_targets(loss, (3, 1), 1.0, "y_valid")
