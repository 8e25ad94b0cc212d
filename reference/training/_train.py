"""Training: optimisers, regularisers, the loop, sparsification after training.

Objective (DESIGN section 2), data term summed over the M training samples:

    J = sum_m E(y_m, f(x_m)) + mu * sum_l ||W_l||_F^2 + lambda * sum_{n,l} R(sigma_{n,l}),

R = TV2 or BV2.  The optimisers follow the stochastic gradient of J / M (the same
minimisers, and learning rates on the usual scale): on a minibatch B of size |B|,
    g = (1/|B|) sum_{m in B} grad E_m + (2 mu / M) W + (lambda / M) grad R.
With `prox` the TV2 part of R leaves the gradient and is applied by a proximal step after
each update instead (`prox_tv2`: soft-thresholding of the slope jumps, exact zeros).

After training, `sparsify_threshold` = T zeroes the slope jumps |a_k| <= T (DeepSplines'
knot threshold), and 'auto' searches the threshold as DeepSplines' published script
`sparsify_with_optimal_knot_threshold.py` does (`sparsify_auto`).
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from reference.nn import _regularisers as regularisers
from reference._checks import OverflowResult, check_choice, check_positive
from reference.nn._losses import check_targets, loss_and_grad, predict_labels
from reference.nn._network import Network
from reference.nn._spline import LinearSpline

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
    """Hyper-parameters.  The DeepSplines recipe is the default: `optimizer` for weights,
    biases and PReLU slopes, Adam (lr `spline_lr`) for the spline coefficients."""
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

    def validate(self):
        check_choice(self.loss, ("squared", "logistic", "xent"), "loss")
        check_choice(self.optimizer, OPTIMISERS, "optimizer")
        check_choice(self.reg, REGULARISERS, "reg")
        for name in ("lr", "spline_lr"):
            check_positive(getattr(self, name), name)
        for name in ("mu", "lam", "momentum"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected a finite number >= 0, got {value}")
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
    """Adam (Kingma & Ba): m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
    p -= lr * m_hat / (sqrt(v_hat) + eps), with bias corrections m_hat = m / (1 - b1^t),
    v_hat = v / (1 - b2^t).  In place on the parameters as one flat vector (_FlatState),
    each operation as written above, in that order (the same bits as the textbook
    expression)."""

    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params, self.lr = params, lr
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self._flat = _FlatState(params)
        self.m = np.zeros(self._flat.size)
        self.v = np.zeros(self._flat.size)
        self._work = np.empty(self._flat.size)
        self.t = 0

    def step(self, grads):
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

    def state(self):
        """The optimiser's arrays (moments), for the finiteness check of the loop."""
        return [self.m, self.v]


class SGD:
    """SGD with momentum: v = momentum v + g, p -= lr v (in place, as Adam)."""

    def __init__(self, params, lr, momentum=0.9):
        self.params, self.lr, self.momentum = params, lr, momentum
        self._flat = _FlatState(params)
        self.v = np.zeros(self._flat.size)

    def step(self, grads):
        self.v *= self.momentum
        self.v += self._flat.gather(grads)
        self._flat.apply(np.multiply(self.v, self.lr, out=self._flat.work))

    def state(self):
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
    """sum over spline neurons of R, TV2 or BV2 (reference.regularisers)."""
    value = regularisers.get(reg).value
    return float(sum(value(layer.spline).sum() for _, layer in spline_layers(net)))


def objective(net: Network, x, y, config: TrainConfig, outputs=None) -> dict:
    """The terms of J on the full data (x, y): data, weight decay, regulariser, total.
    `outputs` = net.forward(x) when the caller already has them."""
    out = net.forward(x) if outputs is None else outputs
    return _objective_terms(net, config, out, check_targets(config.loss, out.shape, y))


def _objective_terms(net: Network, config: TrainConfig, outputs, targets) -> dict:
    """`objective` from the outputs (M, N_L) and targets already checked (check_targets)."""
    data, _ = loss_and_grad(config.loss, outputs, targets)
    decay = sum(float(np.sum(l.params["weight"] ** 2))
                for l in net.layers if not l.is_activation)
    reg = regulariser_value(net, config.reg)
    return {"data": data, "weight_decay": config.mu * decay, "regulariser": config.lam * reg,
            "total": data + config.mu * decay + config.lam * reg}


def accuracy(net: Network, x, y, loss: str, outputs=None) -> float:
    """Fraction of correctly classified samples (logistic or xent); `outputs` as in
    `objective`."""
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


def _regulariser_grads(net: Network, config: TrainConfig, m: int) -> dict:
    """Weight decay and (lambda / M) grad R; with `prox`, R minus its TV2 part (which
    `prox_tv2` handles): nothing for TV2, grad(|sigma(0)| + |sigma(1)|) for BV2."""
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
    """The proximal step of threshold * sum_k |a_k| in the knot-form coordinates
    (c_0, s_0, a) of the spline (s_0 = (c_1 - c_0)/T, a = D2 c / T, shape (C, K-2)):

        a_hat_k = sign(a_k) max(|a_k| - threshold, 0)     (soft-thresholding),

    c_0 and s_0 kept (hence c_0, c_1 and the leftmost piece), and the coefficients rebuilt
    exactly from them: slopes s = s_0 + cumsum([0, a_hat]), c = c_0 + T cumsum([0, s]) (as
    LinearSpline.sparsify does with a hard threshold).  Jumps below the threshold become
    exact zeros (up to the rounding of the rebuild, below the knot tolerance)."""
    a = spline.jumps()
    a_hat = np.sign(a) * np.maximum(np.abs(a) - float(threshold), 0.0)
    slopes = spline.slopes()[:, :1] + np.concatenate(
        [np.zeros((a.shape[0], 1)), np.cumsum(a_hat, axis=1)], axis=1)
    return LinearSpline.from_slopes(spline.coefficients[:, 0], slopes, spline.x_min,
                                    spline.step)


def _apply_prox(net: Network, threshold: float) -> None:
    for _, layer in spline_layers(net):
        layer.params["coefficients"][...] = prox_tv2(layer.spline, threshold).coefficients


def train(net: Network, x, y, config: TrainConfig, x_valid=None, y_valid=None):
    """Train `net` in place on (x, y); returns a history dict.

    Minibatches are drawn from a permutation per epoch by np.random.default_rng(seed):
    the same seed, data and network give bit-for-bit the same result.  History: per epoch
    the objective terms on the training set, the training accuracy (classification
    losses) and the validation accuracy when (x_valid, y_valid) are given; at the end, the
    sparsification report when `sparsify_threshold` is set."""
    config.validate()
    x = net.check_inputs(x)
    m = x.shape[0]
    targets = check_targets(config.loss, (m, net.n_out), y)
    rng = np.random.default_rng(config.seed)

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

    history = {"config": asdict(config), "epochs": []}
    bar = tqdm(total=config.epochs, unit="epoch", leave=False,
               disable=config.quiet or not sys.stderr.isatty())
    classify = config.loss != "squared"
    outputs = np.empty((m, net.n_out))                 # the per-epoch evaluation's buffer
    if classify and x_valid is not None:
        x_valid = net.check_inputs(x_valid)
        valid_outputs = np.empty((x_valid.shape[0], net.n_out))
    for epoch in range(config.epochs):
        decay = 0.1 ** sum(epoch >= s for s in milestones)
        for o, lr in zip(optimisers, base_lrs):
            o.lr = lr * decay
        order = rng.permutation(m)
        for start in range(0, m, config.batch_size):
            batch = order[start:start + config.batch_size]
            out, caches = net.forward(x[batch], keep_cache=True)
            _, grad_out = loss_and_grad(config.loss, out, targets[batch])
            grad_out /= len(batch)
            _, grads = net.backward(caches, grad_out)
            for key, g in _regulariser_grads(net, config, m).items():
                grads[key] += g
            for o in optimisers:
                o.step(grads)
            if config.prox and config.lam > 0 and spline_keys:
                _apply_prox(net, optimisers[-1].lr * config.lam / m)   # the splines' Adam
        outputs_into(net, x, outputs)         # one pass for the loss and the accuracy
        record = {"epoch": epoch + 1, **_objective_terms(net, config, outputs, targets)}
        if classify:
            record["train_accuracy"] = accuracy(net, x, y, config.loss, outputs)
            if x_valid is not None:
                record["valid_accuracy"] = accuracy(
                    net, x_valid, y_valid, config.loss, outputs_into(net, x_valid,
                                                                     valid_outputs))
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


def sparsify_network(net: Network, threshold: float) -> list:
    """Sparsify every spline layer in place (LinearSpline.sparsify); one report per layer."""
    reports = []
    for i, layer in spline_layers(net):
        new, report = layer.spline.sparsify(threshold)
        layer.params["coefficients"][...] = new.coefficients
        reports.append({"layer": i, **{k: np.asarray(v).tolist() for k, v in report.items()}})
    return reports


def _total_knots(net: Network) -> int:
    """Knots of every spline layer, each counted with its own tolerance (num_knots)."""
    return int(sum(layer.spline.num_knots()[0].sum() for _, layer in spline_layers(net)))


def sparsify_auto(net: Network, x, y, loss: str, acc_drop: float = ACC_DROP,
                  ladder=SPARSIFY_LADDER) -> tuple[list, dict]:
    """Sparsify with the largest knot threshold the training accuracy tolerates, in place.

    As DeepSplines' `sparsify_with_optimal_knot_threshold.py`: with A_0 the training accuracy
    of the trained network, try the thresholds of `ladder` in increasing order (default
    SPARSIFY_LADDER: 0, then 2e-4 .. 3.8e-3 by 2e-4, 4e-3 .. 0.954 by 0.05, 1 .. 2.8 by 0.2,
    3 .. 9.5 by 0.5, 10 .. 98 by 2), each applied to the trained coefficients
    (LinearSpline.sparsify), and stop at the first one whose accuracy A(T) has
    A_0 - A(T) > acc_drop; the chosen threshold is the last one before it.  One difference:
    DeepSplines also stops when no knot is left and then keeps the previous threshold; here a
    threshold that removes every knot within the tolerance is chosen (every larger one gives
    the same network).  Returns the per-layer reports of sparsify_network and a summary:
    mode 'auto', threshold (None if even T = 0 fails), acc_drop (A_0 - A(T) measured),
    acc_drop_max, train_accuracy_before / _after, knots_before / _after / _removed, and
    `search`: [threshold, training accuracy, knots] for every threshold tried (the last row
    is the one that failed when the search stopped on the accuracy)."""
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
