"""Training: optimisers, regularisers, the loop, sparsification after training.

Objective (DESIGN section 2), data term summed over the M training samples:

    J = sum_m E(y_m, f(x_m)) + mu * sum_l ||W_l||_F^2 + lambda * sum_{n,l} R(sigma_{n,l}),

R = TV2 or BV2.  The optimisers follow the stochastic gradient of J / M (the same
minimisers, and learning rates on the usual scale): on a minibatch B of size |B|,
    g = (1/|B|) sum_{m in B} grad E_m + (2 mu / M) W + (lambda / M) grad R.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from reference._checks import check_choice, check_positive
from reference.network import Dense, Network, SplineActivation, check_targets, loss_and_grad
from reference.network import predict_labels

REGULARISERS = ("tv2", "bv2")
OPTIMISERS = ("adam", "sgd")


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
    sparsify_threshold: float | None = None
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
        return self


class Adam:
    """Adam (Kingma & Ba): m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
    p -= lr * m_hat / (sqrt(v_hat) + eps), with bias corrections m_hat, v_hat."""

    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params, self.lr = params, lr
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}
        self.t = 0

    def step(self, grads):
        self.t += 1
        c1 = 1 - self.beta1 ** self.t
        c2 = 1 - self.beta2 ** self.t
        for key, p in self.params.items():
            g = grads[key]
            self.m[key] = self.beta1 * self.m[key] + (1 - self.beta1) * g
            self.v[key] = self.beta2 * self.v[key] + (1 - self.beta2) * g * g
            p -= self.lr * (self.m[key] / c1) / (np.sqrt(self.v[key] / c2) + self.eps)


class SGD:
    """SGD with momentum: v = momentum v + g, p -= lr v."""

    def __init__(self, params, lr, momentum=0.9):
        self.params, self.lr, self.momentum = params, lr, momentum
        self.v = {k: np.zeros_like(p) for k, p in params.items()}

    def step(self, grads):
        for key, p in self.params.items():
            self.v[key] = self.momentum * self.v[key] + grads[key]
            p -= self.lr * self.v[key]


def spline_layers(net: Network):
    """(index, layer) of every spline activation layer."""
    return [(i, l) for i, l in enumerate(net.layers) if isinstance(l, SplineActivation)]


def regulariser_value(net: Network, reg: str) -> float:
    """sum over spline neurons of TV2 or BV2."""
    return float(sum(getattr(layer.spline, reg)().sum() for _, layer in spline_layers(net)))


def objective(net: Network, x, y, config: TrainConfig, outputs=None) -> dict:
    """The terms of J on the full data (x, y): data, weight decay, regulariser, total.
    `outputs` = net.forward(x) when the caller already has them."""
    out = net.forward(x) if outputs is None else outputs
    data, _ = loss_and_grad(config.loss, out, check_targets(config.loss, out.shape, y))
    decay = sum(float(np.sum(l.params["weight"] ** 2))
                for l in net.layers if isinstance(l, Dense))
    reg = regulariser_value(net, config.reg)
    return {"data": data, "weight_decay": config.mu * decay, "regulariser": config.lam * reg,
            "total": data + config.mu * decay + config.lam * reg}


def accuracy(net: Network, x, y, loss: str, outputs=None) -> float:
    """Fraction of correctly classified samples (logistic or xent); `outputs` as in
    `objective`."""
    out = net.forward(x) if outputs is None else outputs
    return float(np.mean(predict_labels(loss, out) == np.asarray(y).reshape(-1)))


def _regulariser_grads(net: Network, config: TrainConfig, m: int) -> dict:
    grads = {}
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Dense):
            grads[f"layer{i}.weight"] = (2 * config.mu / m) * layer.params["weight"]
        elif isinstance(layer, SplineActivation) and config.lam > 0:
            g = layer.spline.tv2_grad() if config.reg == "tv2" else layer.spline.bv2_grad()
            grads[f"layer{i}.coefficients"] = (config.lam / m) * g
    return grads


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
    for epoch in range(config.epochs):
        decay = 0.1 ** sum(epoch >= s for s in milestones)
        for o, lr in zip(optimisers, base_lrs):
            o.lr = lr * decay
        order = rng.permutation(m)
        for start in range(0, m, config.batch_size):
            batch = order[start:start + config.batch_size]
            out, caches = net.forward(x[batch], keep_cache=True)
            _, grad_out = loss_and_grad(config.loss, out, targets[batch])
            _, grads = net.backward(caches, grad_out / len(batch))
            for key, g in _regulariser_grads(net, config, m).items():
                grads[key] = grads[key] + g
            for o in optimisers:
                o.step(grads)
        out = net.forward(x)                  # one pass for the loss and the accuracy
        record = {"epoch": epoch + 1, **objective(net, x, y, config, out)}
        if classify:
            record["train_accuracy"] = accuracy(net, x, y, config.loss, out)
            if x_valid is not None:
                record["valid_accuracy"] = accuracy(net, x_valid, y_valid, config.loss)
        history["epochs"].append(record)
        bar.update()
        bar.set_postfix(loss=f"{record['total']:.4g}")
    bar.close()
    if config.sparsify_threshold is not None:
        history["sparsification"] = sparsify_network(net, config.sparsify_threshold)
    return history


def sparsify_network(net: Network, threshold: float) -> list:
    """Sparsify every spline layer in place (LinearSpline.sparsify); one report per layer."""
    reports = []
    for i, layer in spline_layers(net):
        new, report = layer.spline.sparsify(threshold)
        layer.params["coefficients"][...] = new.coefficients
        reports.append({"layer": i, **{k: np.asarray(v).tolist() for k, v in report.items()}})
    return reports
