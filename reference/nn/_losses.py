"""The data losses E(y, f) of training, solving and the oracle: values summed over samples,
gradients in the outputs, target checks, predicted labels.  Outputs f are (M, N_L).

One `Loss` record per loss, in `LOSS_RECORDS` (`register_loss` adds one): what training and
the oracle use (targets, value and gradient, labels) and what reference.convex needs to
solve and certify a layer with it (its problem class, its cvxpy expression, its Fenchel
conjugate, its invariances).  Every site that depends on the loss asks the record
(`get_loss`) instead of branching on the name.  Imports numpy and scipy only (cvxpy only
when a record's `cvx_expression` is called).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import expit, log_softmax, softmax, xlogy

from reference._numerics import as_finite_array, check_choice
from reference._registry import NameView


@dataclass(frozen=True)
class Loss:
    r"""A data loss E(y, f), summed over the samples, and what the solvers need of it.

    Parameters
    ----------
    name : str
        The choice as the command line, the configs and the answers files spell it.
    check_targets : callable
        ``check_targets(outputs_shape, y, name) -> y``: the targets (any array with one row
        per sample, already checked) in the loss's domain, shaped for `value_and_grad`;
        ValueError naming the argument `name` (or ``loss``) otherwise.
    value_and_grad : callable
        ``value_and_grad(outputs, y) -> (value, grad)``: :math:`\sum_m E(y_m, f_m)` and its
        gradient in the outputs, shape (M, N_L).
    predict : callable or None
        ``predict(outputs) -> labels`` (M,) for a classification loss; None for a
        regression loss (no accuracy is reported).
    problem_class : str
        The class of its convex problem (reference.convex PROBLEM_CLASSES: "qp" or "exp"),
        which decides the solvers that can solve it.
    cvx_expression : callable
        ``cvx_expression(out, y) -> cvxpy expression`` of the summed loss, ``out`` the
        (M, N_L) cvxpy outputs, ``y`` the checked targets (imports cvxpy when called).
    conjugate_terms : callable
        ``conjugate_terms(r, c, y, gamma) -> array or None``: the terms whose sum is
        :math:`\sum_m (r_m \cdot c - E^*(r_m))` for the dual bound
        (reference.convex dual_bound), ``r`` (M, N_L) the dual point, ``c`` (1, N_L) the
        constant outputs; None when r leaves the domain of the conjugate :math:`E^*`
        (checked to the rounding allowance ``gamma``).
    shift_invariant : bool
        E(y, f + s 1) = E(y, f) for every s (cross-entropy): the solvers pin that gauge.
    output_scaled : bool
        The targets are in the outputs' units and E(t y, t f) = t^2 E(y, f) (squared):
        reference.convex certifies in units where max |y - c| = 1, and offers the affine
        least-squares fits as cheap feasible points.

    Notes
    -----
    ========  =======================================  ============================
    loss      :math:`E(y, f)`                          :math:`E^*(r)`
    ========  =======================================  ============================
    squared   :math:`\frac{1}{2}\|f - y\|^2`           :math:`r \cdot y + \|r\|^2 / 2`
    logistic  :math:`\log(1 + e^f) - y f`              negative entropy of q = y + r
    xent      :math:`\log\sum_j e^{f_j} - f_y`         :math:`\sum q \log q`, q = e_y + r
    ========  =======================================  ============================
    """
    name: str
    check_targets: Callable[[tuple, np.ndarray, str], np.ndarray]
    value_and_grad: Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]]
    predict: Callable[[np.ndarray], np.ndarray] | None
    problem_class: str
    cvx_expression: Callable[[Any, np.ndarray], Any]
    conjugate_terms: Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray | None]
    shift_invariant: bool = False
    output_scaled: bool = False


LOSS_RECORDS: dict[str, Loss] = {}          # name -> Loss, the one registry
LOSSES = NameView(lambda: tuple(LOSS_RECORDS))


def register_loss(loss: Loss) -> Loss:
    """Add a loss to the registry.

    Parameters
    ----------
    loss : Loss
        The record (a name not yet registered).

    Returns
    -------
    loss : Loss
        The record itself: from now on training, the oracle, the convex solve and the
        command line's ``--loss`` choices (a parser built after this call) know it.

    Raises
    ------
    ValueError
        A name already registered.
    """
    if loss.name in LOSS_RECORDS:
        raise ValueError(f"loss: {loss.name!r} is already registered")
    LOSS_RECORDS[loss.name] = loss
    return loss


def get_loss(name, arg: str = "loss") -> Loss:
    """The Loss called `name`; anything else is a ValueError naming `arg`."""
    check_choice(name, LOSSES, arg)
    return LOSS_RECORDS[name]


def check_targets(loss: str, outputs_shape: tuple, y, name: str = "y") -> np.ndarray:
    """Targets in the loss's domain, shaped for `loss_and_grad`; outputs_shape = (M, N_L).

    squared: y (M,) or (M, N_L) real; logistic: y (M,) in {0, 1} and N_L = 1;
    xent: y (M,) integer class labels in [0, N_L); another loss: its record's check.  Errors
    name the argument `name`."""
    record = get_loss(loss)
    m = outputs_shape[0]
    y = np.asarray(y)
    if y.ndim == 0 or y.shape[0] != m:
        raise ValueError(f"{name}: expected {m} targets (one per input), got shape {y.shape}")
    return record.check_targets(outputs_shape, y, name)


def _squared_targets(outputs_shape: tuple, y: np.ndarray, name: str = "y") -> np.ndarray:
    m, n_out = outputs_shape
    y = as_finite_array(y, name)
    y = y[:, None] if y.ndim == 1 else y.reshape(m, int(np.prod(y.shape[1:])))
    if y.shape[1] != n_out:
        raise ValueError(f"{name}: expected shape ({m},) or ({m}, {n_out}), "
                         f"got {np.shape(y)}")
    return y


def _logistic_targets(outputs_shape: tuple, y: np.ndarray, name: str = "y") -> np.ndarray:
    m, n_out = outputs_shape
    if n_out != 1:
        raise ValueError(f"loss: 'logistic' needs a network with one output, got {n_out}")
    y = as_finite_array(y, name).reshape(-1)
    if y.shape != (m,) or not np.all((y == 0) | (y == 1)):
        raise ValueError(f"{name}: expected labels in {{0, 1}} of shape (M,) for the "
                         "logistic loss")
    return y[:, None]


def _xent_targets(outputs_shape: tuple, y: np.ndarray, name: str = "y") -> np.ndarray:
    m, n_out = outputs_shape
    y = as_finite_array(y, name).reshape(-1)
    if y.shape != (m,) or not np.all((y == np.round(y)) & (y >= 0) & (y < n_out)):
        raise ValueError(f"{name}: expected integer class labels in [0, {n_out}) of shape (M,) "
                         "for the cross-entropy loss")
    return y.astype(np.intp)


def loss_and_grad(loss: str, outputs: npt.NDArray[np.float64],
                  y: npt.NDArray[np.float64] | npt.NDArray[np.intp]
                  ) -> tuple[float, npt.NDArray[np.float64]]:
    r"""Return the data loss summed over the samples and its gradient in the outputs.

    Parameters
    ----------
    loss : {'squared', 'logistic', 'xent'}
        The loss E (`LOSSES`).
    outputs : ndarray of shape (n_samples, n_out)
        The network's outputs f (logits for ``logistic`` and ``xent``).
    y : ndarray
        The targets as the loss's target check returns them: shape (n_samples, n_out)
        for ``squared``, (n_samples, 1) with labels in {0, 1} for ``logistic`` (n_out = 1),
        (n_samples,) integer class labels in [0, n_out) for ``xent``.

    Returns
    -------
    value : float
        :math:`\sum_m E(y_m, f_m)`.
    grad : ndarray of shape (n_samples, n_out)
        :math:`\partial \sum_m E / \partial f`.

    Notes
    -----
    ========  =======================================  ============================
    loss      :math:`E(y, f)`                          gradient in f
    ========  =======================================  ============================
    squared   :math:`\frac{1}{2}\|f - y\|^2`           :math:`f - y`
    logistic  :math:`\log(1 + e^f) - y f`              :math:`\mathrm{sigmoid}(f) - y`
    xent      :math:`\log\sum_j e^{f_j} - f_y`         :math:`\mathrm{softmax}(f) - e_y`
    ========  =======================================  ============================

    The values are sums over the samples, not means.

    Examples
    --------
    >>> import numpy as np
    >>> from reference.nn import loss_and_grad
    >>> value, grad = loss_and_grad("squared", np.array([[1.0], [2.0]]),
    ...                             np.array([[0.0], [2.0]]))
    >>> value
    0.5
    >>> grad
    array([[1.],
           [0.]])
    """
    return get_loss(loss).value_and_grad(outputs, y)


def _squared(outputs: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    r = outputs - y
    return 0.5 * float(np.sum(r * r)), r


def _logistic(outputs: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    return float(np.sum(np.logaddexp(0.0, outputs) - y * outputs)), expit(outputs) - y


def _xent(outputs: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    rows = np.arange(outputs.shape[0])
    value = -float(np.sum(log_softmax(outputs, axis=1)[rows, y]))
    grad = softmax(outputs, axis=1)
    grad[rows, y] -= 1.0
    return value, grad


def predict_labels(loss: str, outputs: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """Return the class predicted for each sample.

    Parameters
    ----------
    loss : {'logistic', 'xent'}
        The classification loss the outputs were trained with.
    outputs : ndarray of shape (n_samples, n_out)
        The network's outputs (logits).

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        ``logistic``: 1 where the logit is > 0, else 0; ``xent``: the index of the
        largest output.

    Examples
    --------
    >>> import numpy as np
    >>> from reference.nn import predict_labels
    >>> predict_labels("xent", np.array([[0.1, 0.9], [2.0, -1.0]]))
    array([1, 0])
    """
    predict = get_loss(loss).predict
    if predict is None:
        raise ValueError(f"loss: {loss!r} is not a classification loss (no labels)")
    return predict(outputs)


def _squared_cvx(out: Any, y: np.ndarray) -> Any:
    import cvxpy as cp

    return 0.5 * cp.sum_squares(out - y)


def _logistic_cvx(out: Any, y: np.ndarray) -> Any:
    import cvxpy as cp

    return cp.sum(cp.logistic(out[:, 0]) - cp.multiply(y.ravel(), out[:, 0]))


def _xent_cvx(out: Any, y: np.ndarray) -> Any:
    import cvxpy as cp

    onehot = np.eye(out.shape[1])[y.astype(int)]
    return cp.sum(cp.log_sum_exp(out, axis=1)) - cp.sum(cp.multiply(onehot, out))


def _squared_conjugate(r: np.ndarray, c: np.ndarray, y: np.ndarray,
                       gamma: float) -> np.ndarray:
    """E*(r) = r.y + |r|^2 / 2: every r."""
    return np.concatenate([(r * (c - y)).ravel(), -0.5 * (r * r).ravel()])


def _entropy_conjugate(r: np.ndarray, c: np.ndarray, entropy: np.ndarray) -> np.ndarray:
    return np.concatenate([(r * c).ravel(), -entropy.ravel()])


def _logistic_conjugate(r: np.ndarray, c: np.ndarray, y: np.ndarray,
                        gamma: float) -> np.ndarray | None:
    """E*(r) = the negative entropy of q = y + r, q in [0, 1]."""
    q = y + r
    if np.any(q < 0) or np.any(q > 1):
        return None
    return _entropy_conjugate(r, c, xlogy(q, q) + xlogy(1 - q, 1 - q))


def _xent_conjugate(r: np.ndarray, c: np.ndarray, y: np.ndarray,
                    gamma: float) -> np.ndarray | None:
    """E*(r) = sum q log q, q = onehot(y) + r in the simplex (its sum to gamma)."""
    q = r + np.eye(r.shape[1])[y]
    if np.any(q < 0) or np.any(q > 1) or np.abs(q.sum(axis=1) - 1).max(initial=0.0) > gamma:
        return None
    return _entropy_conjugate(r, c, xlogy(q, q))


SQUARED = register_loss(Loss("squared", _squared_targets, _squared, None, "qp", _squared_cvx,
                             _squared_conjugate, output_scaled=True))
LOGISTIC = register_loss(Loss("logistic", _logistic_targets, _logistic,
                              lambda outputs: (outputs[:, 0] > 0).astype(np.intp), "exp",
                              _logistic_cvx, _logistic_conjugate))
XENT = register_loss(Loss("xent", _xent_targets, _xent,
                          lambda outputs: np.argmax(outputs, axis=1), "exp", _xent_cvx,
                          _xent_conjugate, shift_invariant=True))
