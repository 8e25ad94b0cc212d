r"""DeepSplines' per-batch convention (``TrainConfig.convention = 'deepsplines'``): its arithmetic
in one place, for `train` and for any other engine that must give the same numbers.

The project's convention ('project', reference.training._train) follows the gradient of
J / M, J the paper's objective with the data term summed over the M training samples.
DeepSplines' ``Manager.forward_backward_train_batch`` (deepsplines 1.0.0) instead follows,
on each minibatch B, the gradient of

    J_B = mean_{m in B} E_m + (mu / 2) sum_theta ||theta||^2 + lam sum_{n,l} R(sigma_{n,l}),

nothing divided by M: mu is DeepSplines' ``weight_decay`` and lam its ``lmbda``
(lam_DS = lam_project / M, weight_decay_DS = 2 mu_project / M give the same steps up to
DeepSplines' other choices below).  What this module fixes:

- data term: the batch mean of E; for the logistic loss, torch's ``BCELoss`` on
  p = sigmoid(f) (`bce_on_sigmoid`: log clamped at -100, gradient through
  max(p (1 - p), ~1e-12));
- weight decay: (mu / 2) ||theta||^2 on every parameter of the layers that are not splines
  (dense weights AND biases, PReLU slopes: DeepSplines decays every ``weight`` and ``bias``
  Parameter, ``l2sqsum_weights_biases``); the spline coefficients are not decayed.
  DeepSplines 1.0.0 has no PReLU; the baselines of its paper-era grid searches decayed
  ``nn.PReLU``'s slopes (its ``weight``) with the rest, and so does this convention;
- R = TV2 or BV2 with the slope jumps in torch's order (`jumps`, sign-critical: see its
  Notes), BV2 = TV2 + |sigma(0)| + |sigma(1)| with sigma evaluated as DeepSplines' forward
  does (`values_at`), subgradients with sign(0) = 0;
- the proximal step (``prox``) of TV2 uses the threshold lr_spline * lam (no 1 / M).

The spline and loss functions take and return arrays; `penalty_grads`, `objective_terms`
and `check_network` apply them to a Network.  Nothing here keeps state.  Imports numpy,
scipy and reference.nn only.

References: deepsplines 1.0.0 (github.com/joaquimcampos/DeepSplines, tag v1.0.0-alpha),
``manager.py``, ``ds_modules/basemodel.py``, ``ds_modules/deepBspline_base.py``; torch 2.13
``BCELoss`` and ``conv1d``.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.special import expit

from reference.nn._losses import loss_and_grad
from reference.nn._network import Network

CONVENTIONS = ("project", "deepsplines")
BCE_LOG_FLOOR = -100.0       # torch's BCELoss clamps log(p) and log(1 - p) at this
# torch's BCELoss backward divides by max(p (1 - p), EPSILON), EPSILON = 1e-12 rounded to
# float32 (aten's constant is a float) = 9.999999960041972e-13, also in float64
BCE_EPSILON = float(np.float32(1e-12))


# ------------------------------------------------------------------------ data term
def bce_on_sigmoid(logits: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
                   ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    r"""torch's binary cross-entropy of p = sigmoid(f), per sample, and its gradient in f.

    Parameters
    ----------
    logits : ndarray of shape (n_samples, 1)
        The network's outputs f.
    y : ndarray of shape (n_samples, 1)
        The labels, 0.0 or 1.0.

    Returns
    -------
    values : ndarray of shape (n_samples,)
        :math:`\ell_m`, below.
    grad : ndarray of shape (n_samples, 1)
        :math:`\partial \ell_m / \partial f_m`.

    Notes
    -----
    As ``torch.nn.BCELoss`` after ``torch.sigmoid`` (torch 2.13): with
    :math:`p = 1 / (1 + e^{-f})`,

    .. math::

        \ell = -\bigl(y \max(\log p, -100) + (1 - y) \max(\log(1 - p), -100)\bigr),
        \qquad
        \frac{\partial \ell}{\partial f} = \frac{(p - y)\, (1 - p)\, p}
        {\max((1 - p)\, p, \epsilon)},

    :math:`\epsilon` = BCE_EPSILON = 1e-12 rounded to float32 (9.999999960041972e-13, torch's
    constant), evaluated as ``((p - y) / max((1 - p) p, eps)) (1 - p) p`` (torch's order).
    This is :math:`p - y`, the gradient of the logistic loss, unless
    :math:`(1 - p) p < \epsilon` (:math:`|f| \gtrsim 27.6`), where it is smaller, and 0
    where p rounds to 0 or 1 (:math:`f \gtrsim 37` or :math:`f < -745`; the loss is then
    100 or 0).  The loss is torch's, computed from the rounded p: for large |f| the log of
    1 - p (or p) loses about :math:`e^{|f|}` ulps.
    """
    p = expit(logits)
    q = (1.0 - p) * p
    with np.errstate(divide="ignore"):
        values = -(y * np.maximum(np.log(p), BCE_LOG_FLOOR)
                   + (1.0 - y) * np.maximum(np.log1p(-p), BCE_LOG_FLOOR))
    grad = (p - y) / np.maximum(q, BCE_EPSILON) * (1.0 - p) * p
    return values[:, 0], grad


def data_term(loss: str, outputs: npt.NDArray[np.float64], targets: np.ndarray
              ) -> tuple[float, npt.NDArray[np.float64]]:
    """The mean of E over the rows and its gradient in the outputs (DeepSplines' data term).

    Parameters
    ----------
    loss : {'logistic', 'squared', 'xent'}
        The loss E; 'logistic' is evaluated as `bce_on_sigmoid`, the others as
        ``reference.nn.loss_and_grad``.
    outputs : ndarray of shape (n_samples, n_out)
        The network's outputs on a batch (or the whole training set).
    targets : ndarray
        The targets as ``reference.nn._losses.check_targets`` returns them.

    Returns
    -------
    value : float
        :math:`\\frac{1}{|B|} \\sum_{m \\in B} E_m`.
    grad : ndarray of shape (n_samples, n_out)
        Its gradient in the outputs (each row's gradient divided by |B|).
    """
    rows = outputs.shape[0]
    if loss == "logistic":
        values, grad = bce_on_sigmoid(outputs, targets)
        value = float(np.sum(values))
    else:
        value, grad = loss_and_grad(loss, outputs, targets)
    grad /= rows
    return value / rows, grad


# ------------------------------------------------------------------------ splines
def jumps(coefficients: npt.NDArray[np.float64], step: float) -> npt.NDArray[np.float64]:
    """The slope jumps of splines on a uniform grid, in DeepSplines' arithmetic.

    Parameters
    ----------
    coefficients : ndarray of shape (n_channels, size)
        The coefficients c of each spline.
    step : float
        The grid step T.

    Returns
    -------
    a : ndarray of shape (n_channels, size - 2)
        :math:`a_k = (w_0 c_k + w_1 c_{k+1}) + w_2 c_{k+2}` with
        :math:`(w_0, w_1, w_2) = (\\mathrm{fl}(1/T), \\mathrm{fl}(-2/T), \\mathrm{fl}(1/T))`.

    Notes
    -----
    The same floats as DeepSplines' ``relu_slopes`` (``conv1d`` of c with
    ``[1, -2, 1] / T``), products rounded one by one and summed left to right.  The order
    matters: at DeepSplines' leaky-ReLU initialisation most jumps are 0 in exact arithmetic
    and rounding noise (~1e-17) in floating point, and the subgradient of TV2 takes their
    sign, which moves every coefficient by about the learning rate at Adam's first step.
    ``np.diff(c, n=2) / T`` or another order gives other signs.
    """
    w0, w1, w2 = 1.0 / step, -2.0 / step, 1.0 / step
    c = coefficients
    return (w0 * c[:, :-2] + w1 * c[:, 1:-1]) + w2 * c[:, 2:]


def tv2_grad(coefficients: npt.NDArray[np.float64], step: float) -> npt.NDArray[np.float64]:
    """A subgradient of the summed TV2 of splines, in DeepSplines' arithmetic.

    Parameters
    ----------
    coefficients : ndarray of shape (n_channels, size)
        The coefficients c.
    step : float
        The grid step T.

    Returns
    -------
    grad : ndarray of shape (n_channels, size)
        :math:`\\sum_k \\operatorname{sign}(a_k)\\, \\partial a_k / \\partial c` with a from
        `jumps` and sign(0) = 0: entry j is
        :math:`w_0 s_j + w_1 s_{j-1} + w_2 s_{j-2}` (s = sign(a), out-of-range terms 0),
        accumulated in that order.
    """
    w0, w1, w2 = 1.0 / step, -2.0 / step, 1.0 / step
    s = np.sign(jumps(coefficients, step))
    grad = np.zeros_like(coefficients)
    grad[:, :-2] += w0 * s
    grad[:, 1:-1] += w1 * s
    grad[:, 2:] += w2 * s
    return grad


def check_grid(coefficients: npt.NDArray[np.float64], x_min: float, step: float,
               where: str = "convention") -> None:
    """ValueError naming `where` unless the grid is DeepSplines': K odd, x_min = -(K // 2) T.

    DeepSplines' splines have the knots k T, k = -(K // 2) .. K // 2, and `values_at`
    evaluates them there; the project's grids (``reference.nn.grid_from_range``) are of this
    form for an odd K, up to rounding of x_min, which is checked exactly here.
    """
    size = coefficients.shape[1]
    half = size // 2
    if size % 2 == 0 or x_min != -(step * half):
        raise ValueError(
            f"{where}: 'deepsplines' evaluates sigma(0), sigma(1) on DeepSplines' grid (an odd "
            f"number K of coefficients at k*T, k = -(K // 2) .. K // 2), got K = {size}, "
            f"x_min = {x_min!r}, step T = {step!r}")


def values_at(coefficients: npt.NDArray[np.float64], step: float, z: float
              ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """sigma_c(z) for every spline as DeepSplines' forward computes it, and its gradient.

    Parameters
    ----------
    coefficients : ndarray of shape (n_channels, size)
        The coefficients c on DeepSplines' grid k T, k = -h .. h, h = size // 2 (`check_grid`).
    step : float
        The grid step T.
    z : float
        The input (0.0 and 1.0 for BV2).

    Returns
    -------
    values : ndarray of shape (n_channels,)
        :math:`\\sigma_c(z)`.
    grad : ndarray of shape (n_channels, size)
        :math:`\\partial \\sigma_c(z) / \\partial c_{c,k}`.

    Notes
    -----
    DeepSplines' ``DeepBSpline_Func`` with ``save_memory=False``: z clamped to
    :math:`[-hT, (h-1)T]` (the bounds ``T*h`` as floats), :math:`u = z_c / T`,
    :math:`f = \\lfloor u \\rfloor`, fraction :math:`r = u - f`, left index i = h + f,

    .. math::

        \\sigma(z) = c_{i+1} r + c_i (1 - r) + \\min(z + Th, 0)\\, \\frac{c_1 - c_0}{T}
        + \\max(z - T(h-1), 0)\\, \\frac{c_{K-1} - c_{K-2}}{T}.

    At z = 0: r = 0 and sigma(0) = c_h exactly (0 at the leaky-ReLU initialisation, whose
    sign, 0, is then the subgradient's, as in DeepSplines).
    """
    c = coefficients
    i, frac, left, right, weights = evaluation_point(step, c.shape[1], z)
    values = (c[:, i + 1] * frac + c[:, i] * (1.0 - frac)) + (
        left * ((c[:, 1] - c[:, 0]) / step) + right * ((c[:, -1] - c[:, -2]) / step))
    return values, np.broadcast_to(weights, c.shape).copy()


def evaluation_point(step: float, size: int, z: float
                     ) -> tuple[int, float, float, float, npt.NDArray[np.float64]]:
    """Where DeepSplines' forward evaluates its splines at z (`values_at`), and the weights.

    Parameters
    ----------
    step : float
        The grid step T.
    size : int
        The number K of coefficients (odd; the grid k T, k = -(K // 2) .. K // 2).
    z : float
        The input.

    Returns
    -------
    i : int
        The left coefficient of z's piece.
    frac : float
        r = u - floor(u), u = clamp(z) / T.
    left, right : float
        min(z + T h, 0) and max(z - T (h - 1), 0), h = K // 2: the extrapolated parts.
    weights : ndarray of shape (size,)
        :math:`\\partial \\sigma(z) / \\partial c_k` for every k (the same for every spline).
    """
    half = size // 2
    low, high = -(step * half), step * (half - 1)
    u = min(max(z, low), high) / step
    floor = float(np.floor(u))
    frac = u - floor
    i = half + int(floor)
    left, right = min(z + step * half, 0.0), max(z - step * (half - 1), 0.0)
    weights = np.zeros(size)
    weights[i + 1] += frac
    weights[i] += 1.0 - frac
    weights[1] += left / step
    weights[0] -= left / step
    weights[-1] += right / step
    weights[-2] -= right / step
    return i, frac, left, right, weights


def magnitudes_grad(coefficients: npt.NDArray[np.float64], step: float,
                    points: tuple = (0.0, 1.0)) -> npt.NDArray[np.float64]:
    """A subgradient of sum_c sum_{z in points} |sigma_c(z)| (`values_at`, sign(0) = 0).

    Parameters
    ----------
    coefficients : ndarray of shape (n_channels, size)
        The coefficients c on DeepSplines' grid.
    step : float
        The grid step T.
    points : tuple of float, default (0.0, 1.0)
        The inputs z (BV2's).

    Returns
    -------
    grad : ndarray of shape (n_channels, size)
        :math:`\\sum_z \\operatorname{sign}(\\sigma_c(z))\\, \\partial \\sigma_c(z) / \\partial c`.
    """
    grad = np.zeros_like(coefficients)
    for z in points:
        values, weights = values_at(coefficients, step, z)
        grad += np.sign(values)[:, None] * weights
    return grad


def regulariser_value(coefficients: npt.NDArray[np.float64], step: float, reg: str
                      ) -> npt.NDArray[np.float64]:
    """R of each spline in DeepSplines' arithmetic: TV2 = sum_k |a_k| (`jumps`), BV2 = TV2 +
    |sigma(0)| + |sigma(1)| (`values_at`); shape (n_channels,)."""
    value = np.abs(jumps(coefficients, step)).sum(axis=1)
    if reg == "bv2":
        for z in (0.0, 1.0):
            value = value + np.abs(values_at(coefficients, step, z)[0])
    return value


def regulariser_grad(coefficients: npt.NDArray[np.float64], step: float, reg: str,
                     prox: bool = False) -> npt.NDArray[np.float64]:
    """A subgradient of sum_c R(sigma_c), shape (n_channels, size): `tv2_grad` (TV2) plus
    `magnitudes_grad` (BV2); with `prox`, R without its TV2 part (which the proximal step
    applies): zeros for TV2, `magnitudes_grad` for BV2."""
    grad = np.zeros_like(coefficients) if prox else tv2_grad(coefficients, step)
    if reg == "bv2":
        grad = grad + magnitudes_grad(coefficients, step)
    return grad


# ------------------------------------------------------------------------ the network
def decayed(layer) -> bool:
    """Whether weight decay covers this layer's parameters: every layer that is not a spline
    activation (dense weights and biases, PReLU slopes), as DeepSplines decays every
    ``weight`` and ``bias`` Parameter."""
    return not layer.is_spline


def check_network(net: Network, reg: str, where: str = "convention") -> None:
    """`check_grid` for every uniform-grid spline layer when R is BV2 (sigma(0), sigma(1)
    are evaluated on DeepSplines' grid); TV2 needs only the step."""
    if reg != "bv2":
        return
    for i, layer in enumerate(net.layers):
        if layer.uniform_grid:
            spline = layer.spline
            try:
                check_grid(spline.coefficients, spline.x_min, spline.step, where)
            except ValueError as exc:
                raise ValueError(f"{exc} (layer {i})") from None


def penalty_grads(net: Network, mu: float, lam: float, reg: str,
                  prox: bool = False) -> dict[str, npt.NDArray[np.float64]]:
    """The gradient of (mu / 2) sum ||theta||^2 + lam sum R per parameter (DeepSplines).

    Parameters
    ----------
    net : Network
        The network.
    mu : float
        DeepSplines' weight decay (the factor of (1/2) ||theta||^2), >= 0.
    lam : float
        The weight of R, >= 0.
    reg : {'tv2', 'bv2'}
        The regulariser R.
    prox : bool, default False
        Leave out the TV2 part of R (a proximal step applies it).

    Returns
    -------
    grads : dict of str to ndarray
        ``'layer{i}.{param}'`` -> gradient: mu * theta for the parameters of every layer
        that is not a spline (`decayed`), lam * `regulariser_grad` for the coefficients of
        uniform-grid spline layers when lam > 0 (left out when nothing of R remains:
        TV2 with `prox`).
    """
    grads = {}
    for i, layer in enumerate(net.layers):
        if decayed(layer):
            for key, value in layer.params.items():
                grads[f"layer{i}.{key}"] = mu * value
        elif layer.uniform_grid and lam > 0 and not (prox and reg == "tv2"):
            spline = layer.spline
            grads[f"layer{i}.coefficients"] = lam * regulariser_grad(
                spline.coefficients, spline.step, reg, prox)
    return grads


def objective_terms(net: Network, loss: str, mu: float, lam: float, reg: str,
                    outputs: npt.NDArray[np.float64], targets: np.ndarray) -> dict[str, float]:
    """DeepSplines' objective J_B with the rows of `outputs` as the batch.

    Parameters
    ----------
    net : Network
        The network (its parameters).
    loss : {'logistic', 'squared', 'xent'}
        The loss E (`data_term`).
    mu : float
        The weight decay.
    lam : float
        The weight of R.
    reg : {'tv2', 'bv2'}
        The regulariser R (`regulariser_value`).
    outputs : ndarray of shape (n_samples, n_out)
        The network's outputs on the batch.
    targets : ndarray
        Their checked targets.

    Returns
    -------
    terms : dict of str to float
        'data' (the mean of E), 'weight_decay' ((mu / 2) sum ||theta||^2 over the decayed
        parameters), 'regulariser' (lam sum R) and 'total', their sum.
    """
    data, _ = data_term(loss, outputs, targets)
    squares = sum(float(np.sum(value ** 2)) for layer in net.layers if decayed(layer)
                  for value in layer.params.values())
    r = sum(float(regulariser_value(layer.spline.coefficients, layer.spline.step, reg).sum())
            for layer in net.layers if layer.uniform_grid)
    weight_decay, regulariser = mu / 2 * squares, lam * r
    return {"data": data, "weight_decay": weight_decay, "regulariser": regulariser,
            "total": data + weight_decay + regulariser}
