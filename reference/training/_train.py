"""Training: optimisers, regularisers, the loop, sparsification after training.

Objective (Aziznejad et al. 2020, arXiv:2001.06263), data term summed over the M training
samples:

    J = sum_m E(y_m, f(x_m)) + mu * sum_l ||W_l||_F^2 + lambda * sum_{n,l} R(sigma_{n,l}),

R = TV2 or BV2.  The optimisers follow the stochastic gradient of J / M (the same
minimisers, and learning rates on the usual scale): on a minibatch B of size |B|,
    g = (1/|B|) sum_{m in B} grad E_m + (2 mu / M) W + (lambda / M) grad R.
With `prox` the TV2 part of R leaves the gradient and is applied by a proximal step after
each update instead (`prox_tv2`: soft-thresholding of the slope jumps, exact zeros).
With ``convention='deepsplines'`` the minibatch gradient is DeepSplines' instead, that of
    mean_{m in B} E_m + (mu / 2) sum ||theta||^2 + lambda sum R     (nothing divided by M;
reference.training._convention holds its arithmetic).

After training, `sparsify_threshold` = T zeroes the slope jumps |a_k| <= T (DeepSplines'
knot threshold), and 'auto' searches the threshold as DeepSplines' published script
`sparsify_with_optimal_knot_threshold.py` does (`sparsify_auto`).
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from tqdm import tqdm

from reference._numerics import check_choice, check_nonnegative, check_positive
from reference.exceptions import OverflowResult
from reference.nn import _regularisers as regularisers
from reference.nn._linear_spline import LinearSpline
from reference.nn._losses import LOSSES, check_targets, get_loss, loss_and_grad, predict_labels
from reference.nn._network import Network
from reference.training import _convention as convention
from reference.training._engine import ENGINES, make_engine

REGULARISERS = tuple(regularisers.REGULARISERS)      # ("tv2", "bv2")
OPTIMISERS = ("adam", "sgd")
ACC_DROP = 0.0025          # sparsify 'auto': tolerated drop of the training accuracy (0.25
                           # percentage points, DeepSplines' default acc_drop_threshold)
EVAL_ROWS = 4096           # rows per forward pass of the per-epoch evaluation (outputs_into)
# sparsify 'auto': the thresholds tried, in order (DeepSplines' threshold_list)
SPARSIFY_LADDER = tuple(float(t) for t in np.round(np.concatenate([
    [0.0], np.arange(2e-4, 4e-3, 2e-4), np.arange(4e-3, 1.0, 0.05), np.arange(1.0, 3.0, 0.2),
    np.arange(3.0, 10.0, 0.5), np.arange(10.0, 100.0, 2.0)]), 10))


@dataclass
class TrainConfig:
    """Hyper-parameters of `train`.

    Two optimisers: `optimizer` for the weights, biases and PReLU slopes, Adam with learning
    rate `spline_lr` for the spline coefficients (DeepSplines' default split; with Adam at
    ``spline_lr = lr`` the two are one Adam over every parameter, as in DeepSplines'
    two-dimensional recipe).

    Parameters
    ----------
    loss : {'logistic', 'squared', 'xent'}, default 'logistic'
        The data term E (``reference.nn.loss_and_grad``): squared (1/2)(f - y)^2, logistic
        log(1 + e^f) - y f, cross-entropy logsumexp(f) - f_y.
    epochs : int, default 100
        Passes over the training set, >= 1.
    batch_size : int, default 16
        Samples per minibatch, >= 1.
    optimizer : {'adam', 'sgd'}, default 'adam'
        The optimiser of the weights, biases and PReLU slopes (`Adam`, `SGD`).
    lr : float, default 1e-2
        Its learning rate, > 0.
    spline_lr : float, default 1e-2
        The learning rate of the splines' Adam, > 0.
    momentum : float, default 0.9
        SGD's momentum, >= 0 (unused by Adam).
    mu : float, default 1e-4
        Weight decay, mu >= 0: the term mu sum_l ||W_l||_F^2 on the dense weights; with
        ``convention='deepsplines'`` DeepSplines' ``weight_decay``, the term
        (mu / 2) ||theta||^2 on the dense weights, the biases and the PReLU slopes.
    lam : float, default 1e-3
        The weight lambda >= 0 of the regulariser sum_{n,l} R(sigma_{n,l}) of the splines
        (with ``convention='deepsplines'`` DeepSplines' ``lmbda``).
    reg : {'tv2', 'bv2'}, default 'tv2'
        The regulariser R: TV(2) or the BV(2) norm.
    milestones : tuple of float, default (0.75, 0.9)
        Fractions of `epochs`, in (0, 1], at which every learning rate is multiplied by 0.1.
    seed : int, default 0
        Seed of the minibatch order (``numpy.random.default_rng``).
    sparsify_threshold : float or 'auto' or None, default None
        After training: zero the slope jumps ``|a_k| <= T`` for a threshold T >= 0, search the
        threshold with `sparsify_auto` ('auto'), or keep the network as trained (None).
    acc_drop : float, default 0.0025
        `sparsify_auto`'s tolerated drop of the training accuracy, in [0, 1].
    prox : bool, default False
        Apply the TV(2) part of R by a proximal step after each update (`prox_tv2`)
        instead of through its subgradient.
    quiet : bool, default False
        No progress bar.
    convention : {'project', 'deepsplines'}, default 'project'
        The gradient followed on a minibatch B of a training set of M samples.
        'project': that of J / M (J the paper's objective, data term summed), i.e.
        ``(1/|B|) sum_B grad E + (2 mu / M) W + (lam / M) grad R``.  'deepsplines':
        DeepSplines' ``Manager`` (deepsplines 1.0.0), that of
        ``mean_B E + (mu / 2) sum ||theta||^2 + lam R`` with theta the dense weights and
        biases and the PReLU slopes (not the spline coefficients), nothing divided by M;
        for 'logistic' E is torch's ``BCELoss`` on sigmoid(f), TV2 and BV2 are computed in
        DeepSplines' arithmetic, and `prox` thresholds by ``spline_lr * lam``.  The same
        steps as 'project' with ``lam_DS = lam / M`` and ``mu_DS = 2 mu / M``, apart from
        the biases and PReLU slopes, which 'project' does not decay.  The per-epoch
        objective is then DeepSplines' with the whole training set as the batch (`objective`).
    engine : {'auto', 'numpy', 'compiled'}, default 'auto'
        Who takes the minibatch steps: 'numpy', the NumPy loop (the reference);
        'compiled', all the steps of an epoch in one numba-compiled call (dense, spline,
        relu, leaky_relu, prelu and identity layers; the NumPy loop's steps, bit for bit:
        reference.training._engine), a ValueError for a recipe it does not cover; 'auto',
        compiled when it covers the recipe and numba imports, else NumPy.

    See Also
    --------
    train : The training loop these parameters drive.
    """
    loss: str = "logistic"
    epochs: int = 100
    batch_size: int = 16
    optimizer: str = "adam"
    lr: float = 1e-2
    spline_lr: float = 1e-2
    momentum: float = 0.9
    mu: float = 1e-4                 # weight decay: mu * sum ||W||_F^2 on dense weights
    lam: float = 1e-3                # lambda * sum R(sigma) on the splines
    reg: str = "tv2"
    milestones: tuple = (0.75, 0.9)  # learning rates x0.1 at these fractions of the epochs
    seed: int = 0
    sparsify_threshold: float | str | None = None   # T >= 0, 'auto' (sparsify_auto) or None
    acc_drop: float = ACC_DROP       # sparsify 'auto': tolerated training-accuracy drop
    prox: bool = False               # proximal step for the TV2 part of R (prox_tv2)
    quiet: bool = False
    convention: str = "project"      # 'deepsplines': DeepSplines' per-batch objective
    engine: str = "auto"             # minibatch steps: 'auto', 'numpy' or 'compiled'

    def validate(self) -> TrainConfig:
        """Check every field.

        Returns
        -------
        config : TrainConfig
            The configuration itself, unchanged.

        Raises
        ------
        ValueError
            Naming the field, when a value is outside the range documented for it.
        """
        check_choice(self.loss, LOSSES, "loss")
        check_choice(self.optimizer, OPTIMISERS, "optimizer")
        check_choice(self.reg, REGULARISERS, "reg")
        check_choice(self.convention, convention.CONVENTIONS, "convention")
        check_choice(self.engine, ENGINES, "engine")
        for name in ("lr", "spline_lr"):
            check_positive(getattr(self, name), name)
        for name in ("mu", "lam", "momentum"):
            check_nonnegative(getattr(self, name), name)
        if int(self.epochs) < 1 or int(self.batch_size) < 1:
            raise ValueError(f"epochs, batch_size: expected integers >= 1, got "
                             f"{self.epochs}, {self.batch_size}")
        if any(not 0 < m <= 1 for m in self.milestones):
            raise ValueError(f"milestones: expected fractions in (0, 1], got {self.milestones}")
        check_sparsify(self.sparsify_threshold, "sparsify_threshold")
        if not (isinstance(self.acc_drop, (int, float)) and 0 <= self.acc_drop <= 1):
            raise ValueError(f"acc_drop: expected a fraction in [0, 1], got {self.acc_drop!r}")
        if not isinstance(self.prox, bool):
            raise ValueError(f"prox: expected True or False, got {self.prox!r}")
        return self


def check_sparsify(value, name: str = "sparsify"):
    """None, 'auto' or a finite threshold >= 0 (returned as a float); else ValueError."""
    if value is None or value == "auto":
        return value
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = None
    if isinstance(value, bool) or threshold is None or not (np.isfinite(threshold)
                                                              and threshold >= 0):
        raise ValueError(f"{name}: expected 'auto', a finite threshold >= 0 or None, "
                         f"got {value!r}")
    return threshold


class _FlatState:
    """The parameters of an optimiser seen as one flat vector: their gradients gathered
    into it (`gather`) and an update subtracted back (`apply`), so that the optimiser's
    arithmetic is a few NumPy calls per step instead of a few per parameter array (the
    same operations on the same numbers: the same bits)."""

    def __init__(self, params):
        self.params = params
        sizes = [p.size for p in params.values()]
        ends = np.cumsum([0] + sizes)
        self.slices = {k: slice(a, b) for k, a, b in zip(params, ends[:-1], ends[1:])}
        self.size = int(ends[-1])
        self.grad = np.empty(self.size)
        self.work = np.empty(self.size)

    def gather(self, grads) -> np.ndarray:
        for key, p in self.params.items():
            self.grad[self.slices[key]].reshape(p.shape)[...] = grads[key]
        return self.grad

    def apply(self, update: np.ndarray) -> None:
        """p -= update, parameter by parameter."""
        for key, p in self.params.items():
            p -= update[self.slices[key]].reshape(p.shape)


class Adam:
    r"""The Adam optimiser, updating parameter arrays in place.

    Parameters
    ----------
    params : dict of str to ndarray
        The parameters, name -> float64 array of any shape; updated in place by `step`.
    lr : float
        The learning rate (the loop may change the attribute ``lr`` between steps).
    beta1 : float, default 0.9
        Decay of the first moment m.
    beta2 : float, default 0.999
        Decay of the second moment v.
    eps : float, default 1e-8
        Added to sqrt(v_hat) in the denominator.

    See Also
    --------
    SGD : Stochastic gradient descent with momentum.

    Notes
    -----
    Adam [1]_: at step t, with g the gradient,

    .. math::

        m \leftarrow \beta_1 m + (1 - \beta_1) g, \qquad
        v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \qquad
        p \leftarrow p - \mathrm{lr}\, \frac{m / (1 - \beta_1^t)}{\sqrt{v / (1 - \beta_2^t)}
        + \epsilon}.

    The parameters are handled as one flat vector, each operation as written above and in
    that order (the same bits as the textbook expression).

    References
    ----------
    .. [1] D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015,
       arXiv:1412.6980.
    """

    def __init__(self, params: dict[str, NDArray[np.float64]], lr: float,
                 beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.params, self.lr = params, lr
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self._flat = _FlatState(params)
        self.m = np.zeros(self._flat.size)
        self.v = np.zeros(self._flat.size)
        self._work = np.empty(self._flat.size)
        self.t = 0

    def step(self, grads: dict[str, NDArray[np.float64]]) -> None:
        """Update every parameter in place by one Adam step.

        Parameters
        ----------
        grads : dict of str to ndarray
            The gradient of each parameter, same names and shapes as ``params``.
        """
        self.t += 1
        c1 = 1 - self.beta1 ** self.t
        c2 = 1 - self.beta2 ** self.t
        g, m, v = self._flat.gather(grads), self.m, self.v
        a, b = self._flat.work, self._work
        m *= self.beta1                                       # m = b1 m + (1 - b1) g
        m += np.multiply(g, 1 - self.beta1, out=a)
        v *= self.beta2                                       # v = b2 v + ((1 - b2) g) g
        np.multiply(g, 1 - self.beta2, out=a)
        v += np.multiply(a, g, out=a)
        np.divide(v, c2, out=b)                               # sqrt(v / c2) + eps
        np.sqrt(b, out=b)
        b += self.eps
        np.divide(m, c1, out=a)                               # lr (m / c1) / (...)
        a *= self.lr
        a /= b
        self._flat.apply(a)

    def state(self) -> list[NDArray[np.float64]]:
        """The optimiser's arrays, for the finiteness check of the loop.

        Returns
        -------
        moments : list of ndarray
            The flat first and second moments [m, v], each of shape (n_parameters,).
        """
        return [self.m, self.v]


class SGD:
    r"""Stochastic gradient descent with momentum, updating parameter arrays in place.

    Parameters
    ----------
    params : dict of str to ndarray
        Name -> float64 array of any shape, each updated in place by `step`.
    lr : float
        The step size (``train`` lowers the attribute ``lr`` at each milestone).
    momentum : float, default 0.9
        The momentum coefficient.

    See Also
    --------
    Adam : The default optimiser.

    Notes
    -----
    With g the gradient: :math:`v \leftarrow \mathrm{momentum}\, v + g`,
    :math:`p \leftarrow p - \mathrm{lr}\, v` (PyTorch's convention).
    """

    def __init__(self, params: dict[str, NDArray[np.float64]], lr: float,
                 momentum: float = 0.9) -> None:
        self.params, self.lr, self.momentum = params, lr, momentum
        self._flat = _FlatState(params)
        self.v = np.zeros(self._flat.size)

    def step(self, grads: dict[str, NDArray[np.float64]]) -> None:
        """Update every parameter in place by one step.

        Parameters
        ----------
        grads : dict of str to ndarray
            The gradient of each parameter, same names and shapes as ``params``.
        """
        self.v *= self.momentum
        self.v += self._flat.gather(grads)
        self._flat.apply(np.multiply(self.v, self.lr, out=self._flat.work))

    def state(self) -> list[NDArray[np.float64]]:
        """The optimiser's arrays, for the finiteness check of the loop.

        Returns
        -------
        moments : list of ndarray
            The flat velocity [v], of shape (n_parameters,).
        """
        return [self.v]


def check_finite_training(net: Network, optimisers, record: dict) -> None:
    """OverflowResult when an epoch left the float64 range: a non-finite objective,
    parameter or optimiser moment (Adam's g^2 overflows for |g| > 1e154: the updates then
    stop silently, so the moments are checked too)."""
    arrays = [("the objective", np.array(record["total"]))]
    arrays += [(f"parameter {name}", value) for name, value in net.named_params()]
    arrays += [("the optimiser's moments", a) for o in optimisers for a in o.state()]
    for what, value in arrays:
        if not np.all(np.isfinite(value)):
            raise OverflowResult(
                f"lam, lr: training left the float64 range at epoch {record['epoch']} "
                f"({what} is not finite); lower lambda (--lam) or the learning rate (--lr)")


def spline_layers(net: Network):
    """(index, layer) of every uniform-grid spline activation layer (`uniform_grid`)."""
    return [(i, l) for i, l in enumerate(net.layers) if l.uniform_grid]


def regulariser_value(net: Network, reg: str) -> float:
    """sum over spline neurons of R, TV2 or BV2 (reference.nn._regularisers)."""
    value = regularisers.get(reg).value
    return float(sum(value(layer.spline).sum() for _, layer in spline_layers(net)))


def objective(net: Network, x: ArrayLike, y: ArrayLike, config: TrainConfig,
              outputs: NDArray[np.float64] | None = None) -> dict[str, float]:
    r"""The terms of the training objective J on the full data set.

    Parameters
    ----------
    net : Network
        The network f.
    x : array_like of shape (n_samples, n_in)
        The inputs x_m.
    y : array_like of shape (n_samples,) or (n_samples, n_out)
        The targets y_m: class labels for 'logistic' and 'xent', values for 'squared'.
    config : TrainConfig
        The loss E, the weights `mu` and `lam` and the regulariser R (`reg`).
    outputs : ndarray of shape (n_samples, n_out), optional
        ``net.forward(x)`` when the caller already has it (not recomputed).

    Returns
    -------
    terms : dict of str to float
        'data' (the sum of E over the samples), 'weight_decay', 'regulariser' and 'total',
        their sum J.  With ``config.convention='deepsplines'``, DeepSplines' objective
        with the whole set as the batch: 'data' the mean of E (torch's BCELoss for
        'logistic'), 'weight_decay' (mu / 2) ||theta||^2 (dense weights, biases, PReLU
        slopes), 'regulariser' lam sum R in DeepSplines' arithmetic
        (``reference.training._convention.objective_terms``).

    Raises
    ------
    ValueError
        When the targets do not fit the loss or the outputs' shape.

    See Also
    --------
    train : Minimises J.

    Notes
    -----
    .. math::

        J = \sum_{m=1}^{M} E(y_m, f(x_m)) + \mu \sum_l \|W_l\|_F^2
            + \lambda \sum_{n,l} R(\sigma_{n,l}),

    the objective of [1]_, with R = TV(2), :math:`\mathrm{TV}^{(2)}(\sigma) = \sum_k |a_k|`
    (a_k the slope jumps of sigma), or the BV(2) norm
    :math:`\mathrm{TV}^{(2)}(\sigma) + |\sigma(0)| + |\sigma(1)|`.  The data term is a sum,
    not a mean.

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.
    """
    out = net.forward(x) if outputs is None else outputs
    return _objective_terms(net, config, out, check_targets(config.loss, out.shape, y))


def _objective_terms(net: Network, config: TrainConfig, outputs, targets) -> dict:
    """`objective` from the outputs (M, N_L) and targets already checked (check_targets)."""
    if config.convention == "deepsplines":
        return convention.objective_terms(net, config.loss, config.mu, config.lam,
                                          config.reg, outputs, targets)
    data, _ = loss_and_grad(config.loss, outputs, targets)
    decay = sum(float(np.sum(l.params["weight"] ** 2))
                for l in net.layers if not l.is_activation)
    reg = regulariser_value(net, config.reg)
    return {"data": data, "weight_decay": config.mu * decay, "regulariser": config.lam * reg,
            "total": data + config.mu * decay + config.lam * reg}


def accuracy(net: Network, x: ArrayLike, y: ArrayLike, loss: str,
             outputs: NDArray[np.float64] | None = None) -> float:
    """The fraction of correctly classified samples.

    Parameters
    ----------
    net : Network
        The classifier.
    x : array_like of shape (n_samples, n_in)
        The inputs.
    y : array_like of shape (n_samples,)
        The class labels (0 or 1 for 'logistic', 0 .. n_out - 1 for 'xent').
    loss : {'logistic', 'xent'}
        The loss the network was trained with; it decides how outputs map to labels:
        class 1 where f(x) > 0 for 'logistic', the argmax of the outputs otherwise.
    outputs : ndarray of shape (n_samples, n_out), optional
        ``net.forward(x)`` when the caller already has it (not recomputed).

    Returns
    -------
    accuracy : float
        The fraction, in [0, 1], of samples whose predicted label is ``y``.
    """
    out = net.forward(x) if outputs is None else outputs
    return float(np.mean(predict_labels(loss, out) == np.asarray(y).reshape(-1)))


def outputs_into(net: Network, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out[...] = net.forward(x), EVAL_ROWS rows at a time: the per-epoch evaluation of a
    large data set reuses one output buffer (M, N_L) and cache-sized intermediates instead
    of allocating (and page-faulting) every layer's full-size output each epoch."""
    if x.shape[0] <= EVAL_ROWS:
        out[...] = net.forward(x)
        return out
    try:
        for start in range(0, x.shape[0], EVAL_ROWS):
            out[start:start + EVAL_ROWS] = net.forward(x[start:start + EVAL_ROWS])
    except OverflowResult:
        net.forward(x)                       # raises again, naming the row in x
        raise
    return out


def batch_gradients(net: Network, config: TrainConfig, x_batch: np.ndarray,
                    targets_batch: np.ndarray, m: int) -> dict[str, NDArray[np.float64]]:
    """The gradient `train` follows on one minibatch, per parameter.

    Parameters
    ----------
    net : Network
        The network.
    config : TrainConfig
        The loss, mu, lam, reg, prox and convention.
    x_batch : ndarray of shape (n_batch, n_in)
        The minibatch's inputs (checked).
    targets_batch : ndarray
        Its targets as ``check_targets`` returns them.
    m : int
        The size M of the training set.

    Returns
    -------
    grads : dict of str to ndarray
        ``'layer{i}.{param}'`` -> gradient.  'project':
        ``(1/|B|) sum_B grad E + (2 mu / M) W + (lam / M) grad R``; 'deepsplines': the
        gradient of ``mean_B E + (mu / 2) sum ||theta||^2 + lam R``
        (reference.training._convention).  With `prox` the TV2 part of R is left out.
    """
    out, caches = net.forward(x_batch, keep_cache=True)
    if config.convention == "deepsplines":
        _, grad_out = convention.data_term(config.loss, out, targets_batch)
    else:
        _, grad_out = loss_and_grad(config.loss, out, targets_batch)
        grad_out /= len(x_batch)
    _, grads = net.backward(caches, grad_out)
    for key, g in _regulariser_grads(net, config, m).items():
        grads[key] += g
    return grads


def _prox_threshold(config: TrainConfig, spline_lr: float, m: int) -> float:
    """The threshold of `prox_tv2` after a step: lr lambda / M ('project'), lr lambda
    ('deepsplines')."""
    if config.convention == "deepsplines":
        return spline_lr * config.lam
    return spline_lr * config.lam / m


def _regulariser_grads(net: Network, config: TrainConfig, m: int) -> dict:
    """Weight decay and (lambda / M) grad R; with `prox`, R minus its TV2 part (which
    `prox_tv2` handles): nothing for TV2, grad(|sigma(0)| + |sigma(1)|) for BV2.
    'deepsplines': ``reference.training._convention.penalty_grads``."""
    if config.convention == "deepsplines":
        return convention.penalty_grads(net, config.mu, config.lam, config.reg, config.prox)
    grads = {}
    for i, layer in enumerate(net.layers):
        if not layer.is_activation:
            grads[f"layer{i}.weight"] = (2 * config.mu / m) * layer.params["weight"]
        elif layer.uniform_grid and config.lam > 0:
            r = regularisers.get(config.reg)
            if config.prox and not r.extra_points:      # R = TV2: all of it in prox_tv2
                continue
            g = r.grad(layer.spline)
            if config.prox:
                g = g - regularisers.TV2.grad(layer.spline)
            grads[f"layer{i}.coefficients"] = (config.lam / m) * g
    return grads


def prox_tv2(spline: LinearSpline, threshold: float) -> LinearSpline:
    r"""The proximal step of the TV(2) penalty ``threshold * sum_k |a_k|``.

    Parameters
    ----------
    spline : LinearSpline
        The splines sigma_c, c = 0 .. C-1, with K coefficients each on a grid of step T.
    threshold : float
        The weight t >= 0 of the penalty (in `train`: the splines' learning rate times
        lambda / M).

    Returns
    -------
    spline : LinearSpline
        A new spline on the same grid, coefficients of shape (C, K); `spline` is not changed.

    See Also
    --------
    train : Applies it after each update when ``TrainConfig.prox`` is set.

    Notes
    -----
    In the knot-form coordinates (c_0, s_0, a) of the spline, with
    :math:`s_0 = (c_1 - c_0) / T` and the slope jumps :math:`a = D_2 c / T` of shape
    (C, K - 2), the step soft-thresholds the jumps,

    .. math::

        \hat a_k = \operatorname{sign}(a_k) \max(|a_k| - t, 0),

    keeps c_0 and s_0 (hence c_0, c_1 and the leftmost piece), and rebuilds the coefficients
    exactly from them: slopes :math:`s = s_0 + \operatorname{cumsum}([0, \hat a])`,
    :math:`c = c_0 + T \operatorname{cumsum}([0, s])` (as ``LinearSpline.sparsify`` does with
    a hard threshold).  Jumps below the threshold become exact zeros (up to the rounding of
    the rebuild, below the knot tolerance).
    """
    a = spline.jumps()
    a_hat = np.sign(a) * np.maximum(np.abs(a) - float(threshold), 0.0)
    slopes = spline.slopes()[:, :1] + np.concatenate(
        [np.zeros((a.shape[0], 1)), np.cumsum(a_hat, axis=1)], axis=1)
    return LinearSpline.from_slopes(spline.coefficients[:, 0], slopes, spline.x_min,
                                    spline.step)


def _apply_prox(net: Network, threshold: float) -> None:
    for _, layer in spline_layers(net):
        layer.params["coefficients"][...] = prox_tv2(layer.spline, threshold).coefficients


def train(net: Network, x: ArrayLike, y: ArrayLike, config: TrainConfig,
          x_valid: ArrayLike | None = None, y_valid: ArrayLike | None = None,
          batch_order: ArrayLike | None = None) -> dict:
    r"""Train a network in place on minibatches, minimising the training objective J.

    Parameters
    ----------
    net : Network
        The network, trained in place (its parameter arrays are updated).
    x : array_like of shape (n_samples, n_in)
        The training inputs.
    y : array_like of shape (n_samples,) or (n_samples, n_out)
        The training targets: class labels for 'logistic' and 'xent', values for 'squared'.
    config : TrainConfig
        The hyper-parameters; validated first.
    x_valid : array_like of shape (n_valid, n_in), optional
        Validation inputs, for the per-epoch validation accuracy (classification losses).
    y_valid : array_like of shape (n_valid,), optional
        Their labels; given together with `x_valid`.
    batch_order : array_like of shape (epochs, n_samples), optional
        The order of the samples in each epoch (row e: a permutation of 0 .. M-1, cut into
        minibatches of ``batch_size``) instead of the seeded one, e.g. to follow another
        implementation's batches; ``config.seed`` is then unused.

    Returns
    -------
    history : dict
        'config' (the TrainConfig as a dict), 'engine' (who took the minibatch steps: 'name'
        'compiled' or 'numpy', the 'requested' `TrainConfig.engine`, and the 'reason' why
        'auto' took the NumPy loop, else None) and 'epochs', one dict per epoch with 'epoch',
        the terms of `objective` on the training set ('data', 'weight_decay',
        'regulariser', 'total') and, for a classification loss, 'train_accuracy' and
        'valid_accuracy' (when validation data is given).  With `sparsify_threshold` set
        also 'sparsification' (one report per spline layer, `sparsify_network`) and
        'sparsify' (the totals: mode, threshold, knots before, after and removed; for
        'auto' the summary of `sparsify_auto`).

    Raises
    ------
    ValueError
        When a field of `config` is out of range, the inputs or targets do not fit the
        network and the loss, `batch_order` is not one permutation per epoch, or (with
        ``convention='deepsplines'`` and BV2) a spline is not on DeepSplines' grid.
    OverflowResult
        When an epoch leaves the float64 range (a non-finite objective, parameter or
        optimiser moment), naming the epoch.

    See Also
    --------
    objective : The terms of J.
    prox_tv2 : The proximal step used with ``config.prox``.
    sparsify_auto : The threshold search of ``sparsify_threshold='auto'``.

    Notes
    -----
    The objective of [1]_,

    .. math::

        J = \sum_{m=1}^{M} E(y_m, f(x_m)) + \mu \sum_l \|W_l\|_F^2
            + \lambda \sum_{n,l} R(\sigma_{n,l}),
        \qquad R = \mathrm{TV}^{(2)} \text{ or } \|\cdot\|_{\mathrm{BV}^{(2)}},

    is minimised by following the stochastic gradient of J / M (the same minimisers, and
    learning rates on the usual scale): on a minibatch B,

    .. math::

        g = \frac{1}{|B|} \sum_{m \in B} \nabla E_m + \frac{2 \mu}{M} W
            + \frac{\lambda}{M} \nabla R.

    The weights, biases and PReLU slopes follow ``config.optimizer``, the spline
    coefficients Adam [3]_ with ``spline_lr`` (the DeepSplines recipe [2]_); every learning
    rate is multiplied by 0.1 at each milestone.  With ``prox`` the TV(2) part of R leaves
    the gradient and is applied after each update by `prox_tv2` with threshold
    :math:`\mathrm{lr}_{\mathrm{spline}} \lambda / M` (exact zeros).  Minibatches are drawn
    from one permutation per epoch by ``numpy.random.default_rng(config.seed)``: the same
    seed, data and network give bit-for-bit the same result.

    With ``config.convention='deepsplines'`` the minibatch gradient is instead DeepSplines'
    (``Manager.forward_backward_train_batch``, deepsplines 1.0.0 [2]_), that of

    .. math::

        J_B = \frac{1}{|B|} \sum_{m \in B} E_m + \frac{\mu}{2} \sum_\theta
            \|\theta\|^2 + \lambda \sum_{n,l} R(\sigma_{n,l}),

    :math:`\theta` the dense weights and biases and the PReLU slopes, and `prox`
    thresholds by :math:`\mathrm{lr}_{\mathrm{spline}} \lambda` (`TrainConfig`).

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.
    .. [2] P. Bohra, J. Campos, H. Gupta, S. Aziznejad, M. Unser, "Learning Activation
       Functions in Deep (Spline) Neural Networks", IEEE Open J. Signal Process. 1, 2020.
    .. [3] D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015,
       arXiv:1412.6980.

    Examples
    --------
    >>> import numpy as np
    >>> from reference.nn import build_mlp
    >>> from reference.training import TrainConfig, train
    >>> rng = np.random.default_rng(0)
    >>> x = rng.uniform(-1, 1, size=(32, 2))
    >>> y = (np.sum(x**2, axis=1) < 0.5).astype(int)
    >>> net = build_mlp([2, 3, 1], "spline", rng=0)
    >>> history = train(net, x, y, TrainConfig(epochs=3, quiet=True))
    >>> len(history["epochs"])
    3
    >>> sorted(history["epochs"][-1])
    ['data', 'epoch', 'regulariser', 'total', 'train_accuracy', 'weight_decay']
    >>> bool(history["epochs"][-1]["total"] < history["epochs"][0]["total"])
    True
    """
    config.validate()
    x = net.check_inputs(x)
    m = x.shape[0]
    targets = check_targets(config.loss, (m, net.n_out), y)
    rng = np.random.default_rng(config.seed)
    orders = None if batch_order is None else _check_batch_order(batch_order, config.epochs, m)
    if config.convention == "deepsplines":
        convention.check_network(net, config.reg)

    params = dict(net.named_params())
    spline_keys = {f"layer{i}.coefficients" for i, _ in spline_layers(net)}
    weight_params = {k: p for k, p in params.items() if k not in spline_keys}
    make = Adam if config.optimizer == "adam" else SGD
    extra = {} if config.optimizer == "adam" else {"momentum": config.momentum}
    optimisers = [make(weight_params, config.lr, **extra)]
    if spline_keys:
        optimisers.append(Adam({k: params[k] for k in spline_keys}, config.spline_lr))
    base_lrs = [o.lr for o in optimisers]
    milestones = sorted(int(round(f * config.epochs)) for f in config.milestones)
    engine = make_engine(net, x, targets, config, optimisers)

    history: dict[str, Any] = {"config": asdict(config), "engine": engine.record,
                               "epochs": []}
    bar = tqdm(total=config.epochs, unit="epoch", leave=False,
               disable=config.quiet or not sys.stderr.isatty())
    classify = get_loss(config.loss).predict is not None
    outputs = np.empty((m, net.n_out))                 # the per-epoch evaluation's buffer
    if (x_valid is None) != (y_valid is None):
        given, missing = ("x_valid", "y_valid") if y_valid is None else ("y_valid", "x_valid")
        raise ValueError(f"{missing}: expected it together with {given} (the validation "
                         f"inputs and their labels), got None")
    if classify and x_valid is not None:
        x_valid = net.check_inputs(x_valid)
        check_targets(config.loss, (x_valid.shape[0], net.n_out), y_valid, "y_valid")
        valid_outputs = np.empty((x_valid.shape[0], net.n_out))
    for epoch in range(config.epochs):
        decay = 0.1 ** sum(epoch >= s for s in milestones)
        for o, lr in zip(optimisers, base_lrs):
            o.lr = lr * decay
        order = rng.permutation(m) if orders is None else orders[epoch]
        for start in engine.epoch(order):    # steps left to this loop (compiled: few or none)
            batch = order[start:start + config.batch_size]
            grads = batch_gradients(net, config, x[batch], targets[batch], m)
            with np.errstate(over="ignore", invalid="ignore"):   # checked at the epoch's
                for o in optimisers:                              # end: OverflowResult
                    o.step(grads)
            if config.prox and config.lam > 0 and spline_keys:         # the splines' Adam:
                _apply_prox(net, _prox_threshold(config, optimisers[-1].lr, m))
        outputs_into(net, x, outputs)         # one pass for the loss and the accuracy
        record = {"epoch": epoch + 1, **_objective_terms(net, config, outputs, targets)}
        if classify:
            record["train_accuracy"] = accuracy(net, x, y, config.loss, outputs)
            if x_valid is not None:
                assert isinstance(x_valid, np.ndarray)       # net.check_inputs made it one
                record["valid_accuracy"] = accuracy(
                    net, x_valid,
                    y_valid,  # type: ignore[arg-type]  # given with x_valid: checked above
                    config.loss, outputs_into(net, x_valid, valid_outputs))
        check_finite_training(net, optimisers, record)
        history["epochs"].append(record)
        bar.update()
        bar.set_postfix(loss=f"{record['total']:.4g}")
    bar.close()
    if config.sparsify_threshold == "auto":
        history["sparsification"], history["sparsify"] = sparsify_auto(
            net, x, y, config.loss, config.acc_drop)
    elif config.sparsify_threshold is not None:
        knots_before = _total_knots(net)
        history["sparsification"] = sparsify_network(net, float(config.sparsify_threshold))
        knots_after = _total_knots(net)
        history["sparsify"] = {"mode": "threshold",
                               "threshold": float(config.sparsify_threshold),
                               "knots_before": knots_before, "knots_after": knots_after,
                               "knots_removed": knots_before - knots_after}
    return history


def _check_batch_order(batch_order, epochs: int, m: int) -> np.ndarray:
    """batch_order as an (epochs, M) integer array whose rows are permutations of 0 .. M-1;
    else ValueError naming it."""
    order = np.asarray(batch_order)
    if order.shape != (epochs, m) or not np.issubdtype(order.dtype, np.integer) or not all(
            np.array_equal(np.sort(row), np.arange(m)) for row in order):
        raise ValueError(f"batch_order: expected one permutation of 0 .. {m - 1} per epoch, "
                         f"integers of shape ({epochs}, {m}), got shape {order.shape} "
                         f"({order.dtype})")
    return order


def sparsify_network(net: Network, threshold: float) -> list[dict]:
    """Sparsify every spline layer in place: zero the slope jumps ``|a_k| <= threshold``.

    Parameters
    ----------
    net : Network
        The network; its spline coefficients are replaced in place.
    threshold : float
        The knot threshold T >= 0 (``LinearSpline.sparsify``).

    Returns
    -------
    reports : list of dict
        One per spline layer: 'layer' (its index in ``net.layers``) and the report of
        ``LinearSpline.sparsify`` (per-neuron counts as lists).
    """
    reports = []
    for i, layer in spline_layers(net):
        new, report = layer.spline.sparsify(threshold)
        layer.params["coefficients"][...] = new.coefficients
        reports.append({"layer": i, **{k: np.asarray(v).tolist() for k, v in report.items()}})
    return reports


def _total_knots(net: Network) -> int:
    """Knots of every spline layer, each counted with its own tolerance (num_knots)."""
    return int(sum(layer.spline.num_knots()[0].sum() for _, layer in spline_layers(net)))


def sparsify_auto(net: Network, x: ArrayLike, y: ArrayLike, loss: str,
                  acc_drop: float = ACC_DROP,
                  ladder: Sequence[float] = SPARSIFY_LADDER) -> tuple[list[dict], dict]:
    r"""Sparsify with the largest knot threshold the training accuracy tolerates, in place.

    Parameters
    ----------
    net : Network
        The trained classifier; its spline coefficients are replaced in place.
    x : array_like of shape (n_samples, n_in)
        The training inputs.
    y : array_like of shape (n_samples,)
        Their class labels.
    loss : {'logistic', 'xent'}
        The loss the network was trained with (how outputs map to labels).
    acc_drop : float, default 0.0025
        The tolerated drop of the training accuracy, in [0, 1].
    ladder : sequence of float, default SPARSIFY_LADDER
        The thresholds tried, in increasing order.  The default is 0, then 2e-4 .. 3.8e-3
        by 2e-4, 4e-3 .. 0.954 by 0.05, 1 .. 2.8 by 0.2, 3 .. 9.5 by 0.5, 10 .. 98 by 2
        (DeepSplines' ``threshold_list``).

    Returns
    -------
    reports : list of dict
        The per-layer reports of `sparsify_network` at the chosen threshold (empty when
        none is chosen).
    summary : dict
        'mode' ('auto'), 'threshold' (None if even T = 0 fails), 'acc_drop' (A_0 - A(T)
        measured), 'acc_drop_max', 'train_accuracy_before' and '_after', 'knots_before',
        '_after' and '_removed', and 'search': [threshold, training accuracy, knots] for
        every threshold tried (the last row is the one that failed when the search stopped
        on the accuracy).

    See Also
    --------
    sparsify_network : Sparsify with a given threshold.

    Notes
    -----
    As DeepSplines' ``sparsify_with_optimal_knot_threshold.py`` [1]_: with A_0 the training
    accuracy of the trained network, the thresholds T of `ladder` are tried in increasing
    order, each applied to the trained coefficients (``LinearSpline.sparsify``), and the
    search stops at the first T with

    .. math::

        A_0 - A(T) > \mathrm{acc\_drop};

    the chosen threshold is the last one before it.  One difference: DeepSplines also stops
    when no knot is left and then keeps the previous threshold; here a threshold that
    removes every knot within the tolerance is chosen (every larger one gives the same
    network).

    References
    ----------
    .. [1] P. Bohra, J. Campos, H. Gupta, S. Aziznejad, M. Unser, "Learning Activation
       Functions in Deep (Spline) Neural Networks", IEEE Open J. Signal Process. 1, 2020.
    """
    originals = [(layer, layer.spline.copy()) for _, layer in spline_layers(net)]
    base = accuracy(net, x, y, loss)
    knots_before = _total_knots(net)
    chosen, chosen_accuracy, search = None, base, []
    for threshold in ladder:
        for layer, spline in originals:
            layer.params["coefficients"][...] = spline.sparsify(threshold)[0].coefficients
        acc, knots = accuracy(net, x, y, loss), _total_knots(net)
        search.append([float(threshold), acc, knots])
        if base - acc > acc_drop:
            break
        chosen, chosen_accuracy = float(threshold), acc
        if knots == 0:
            break
    for layer, spline in originals:
        layer.params["coefficients"][...] = spline.coefficients
    reports = [] if chosen is None else sparsify_network(net, chosen)
    knots_after = _total_knots(net)
    return reports, {
        "mode": "auto", "threshold": chosen, "acc_drop": base - chosen_accuracy,
        "acc_drop_max": float(acc_drop), "train_accuracy_before": base,
        "train_accuracy_after": chosen_accuracy, "knots_before": knots_before,
        "knots_after": knots_after, "knots_removed": knots_before - knots_after,
        "search": search}
