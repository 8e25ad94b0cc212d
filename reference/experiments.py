"""One run = a config -> a trained network and its summary: what `train`, the theory checks
(and later the sweeps and figures) share.  Below the CLI: nothing here imports it."""
from __future__ import annotations

import time

import numpy as np

from reference import datasets, lipschitz
from reference.network import SplineActivation, build_mlp
from reference.train import TrainConfig, accuracy, objective, train

TRAIN_DEFAULTS = {"lam": 1e-3, "reg": "tv2", "size": 21, "range_": 2.0, "epochs": 100,
                  "seed": 0, "batch_size": 16, "lr": 1e-2, "spline_init": "leaky_relu"}


def spline_summary(net) -> list:
    """Per spline layer: index, TV2, BV2, Lip and knot counts per neuron, tolerance used."""
    from reference.convex import knot_counts
    from reference.network import KnotSplineActivation

    rows = []
    for i, layer in enumerate(net.layers):
        if isinstance(layer, SplineActivation):
            knots, tols = layer.spline.num_knots()
        elif isinstance(layer, KnotSplineActivation):   # solver output: solver-aware tolerance
            knots, tols, _ = knot_counts(layer)
        else:
            continue
        s = layer.spline
        rows.append({"layer": i, "tv2": s.tv2().tolist(), "bv2": s.bv2().tolist(),
                     "lipschitz": s.lipschitz().tolist(), "knots": knots.tolist(),
                     "knot_tolerance": tols.tolist()})
    return rows


def run_training(dataset, activation, hidden, *, data_path=None, quiet=True, sparsify=None,
                 **options):
    """Train one network on a data set; returns (net, summary dict).  `options` override
    TRAIN_DEFAULTS (lam, reg, size, range_, epochs, seed, batch_size, lr, spline_init).
    Every number in the summary is measured on the final (possibly sparsified) model."""
    unknown = set(options) - set(TRAIN_DEFAULTS)
    if unknown:
        raise TypeError(f"run_training: unknown options {sorted(unknown)}")
    o = {**TRAIN_DEFAULTS, **options}
    ds = datasets.load(dataset, seed=o["seed"], path=data_path)
    loss = "logistic" if ds.num_classes == 2 else "xent"
    widths = [ds.x_train.shape[1], *hidden, 1 if loss == "logistic" else ds.num_classes]
    net = build_mlp(widths, activation, rng=o["seed"], spline_init=o["spline_init"],
                    size=o["size"], range_=o["range_"])
    config = TrainConfig(loss=loss, epochs=o["epochs"], batch_size=o["batch_size"], lr=o["lr"],
                         spline_lr=o["lr"], lam=o["lam"], reg=o["reg"], seed=o["seed"],
                         quiet=quiet, sparsify_threshold=sparsify)
    t0 = time.perf_counter()
    history = train(net, ds.x_train, ds.y_train, config, ds.x_valid, ds.y_valid)
    seconds = time.perf_counter() - t0
    train_out = net.forward(ds.x_train)
    terms = objective(net, ds.x_train, ds.y_train, config, train_out)
    splines = spline_summary(net)
    summary = {
        "dataset": dataset, "activation": activation, "hidden": list(hidden), "loss": loss,
        "test_accuracy": accuracy(net, ds.x_test, ds.y_test, loss),
        "valid_accuracy": accuracy(net, ds.x_valid, ds.y_valid, loss),
        "train_accuracy": accuracy(net, ds.x_train, ds.y_train, loss, train_out),
        "train_loss": terms["data"], "objective": terms["total"],
        "tv2": [float(np.sum(r["tv2"])) for r in splines],
        "bv2": [float(np.sum(r["bv2"])) for r in splines],
        "knots": [int(np.sum(r["knots"])) for r in splines],
        "knot_tolerance": [r["knot_tolerance"] for r in splines],
        "lipschitz_bound": lipschitz.theorem1_bv2(net, 2),
        "lipschitz_bound_form": "theorem1_bv2, p=2",
        "seconds": seconds, "config": history["config"],
    }
    if "sparsification" in history:
        summary["sparsification"] = history["sparsification"]
    return net, summary
