"""The data losses E(y, f) of training, solving and the oracle: values summed over samples,
gradients in the outputs, target checks, predicted labels.  Outputs f are (M, N_L)."""
from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.special import expit, log_softmax, softmax

from reference._numerics import as_finite_array, check_choice

LOSSES = ("squared", "logistic", "xent")


def check_targets(loss: str, outputs_shape: tuple, y, name: str = "y") -> np.ndarray:
    """Targets in the loss's domain, shaped for `loss_and_grad`; outputs_shape = (M, N_L).

    squared: y (M,) or (M, N_L) real; logistic: y (M,) in {0, 1} and N_L = 1;
    xent: y (M,) integer class labels in [0, N_L).  Errors name the argument `name`."""
    check_choice(loss, LOSSES, "loss")
    m, n_out = outputs_shape
    y = np.asarray(y)
    if y.shape[0] != m:
        raise ValueError(f"{name}: expected {m} targets (one per input), got shape {y.shape}")
    if loss == "squared":
        y = as_finite_array(y, name)
        y = y[:, None] if y.ndim == 1 else y.reshape(m, int(np.prod(y.shape[1:])))
        if y.shape[1] != n_out:
            raise ValueError(f"{name}: expected shape ({m},) or ({m}, {n_out}), "
                             f"got {np.shape(y)}")
        return y
    if loss == "logistic":
        if n_out != 1:
            raise ValueError(f"loss: 'logistic' needs a network with one output, got {n_out}")
        y = as_finite_array(y, name).reshape(-1)
        if y.shape != (m,) or not np.all((y == 0) | (y == 1)):
            raise ValueError(f"{name}: expected labels in {{0, 1}} of shape (M,) for the "
                             "logistic loss")
        return y[:, None]
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
    if loss == "squared":
        r = outputs - y
        return 0.5 * float(np.sum(r * r)), r
    if loss == "logistic":
        return float(np.sum(np.logaddexp(0.0, outputs) - y * outputs)), expit(outputs) - y
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
    if loss == "logistic":
        return (outputs[:, 0] > 0).astype(np.intp)
    return np.argmax(outputs, axis=1)
