"""Command line: python -m reference {train,evaluate,info,lipschitz,solve,reproduce}
(also `dsref`)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from reference import datasets, ladder, lipschitz
from reference.io import load_model, network_from_mat, save_model
from reference.network import ACTIVATIONS, SplineActivation, build_mlp
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


def cmd_train(args):
    hidden = parse_hidden(args.hidden)
    net, summary = run_training(
        args.dataset, args.activation, hidden, lam=args.lam, reg=args.reg, size=args.size,
        range_=args.range, epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
        lr=args.lr, spline_init=args.spline_init, data_path=args.data_path,
        quiet=args.quiet or args.json, sparsify=args.sparsify)
    if args.out:
        save_model(net, args.out)
        summary["model"] = args.out
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{args.activation} network {summary['hidden']} on {args.dataset}: "
          f"test accuracy {summary['test_accuracy']:.4f}, train loss {summary['train_loss']:.4g}, "
          f"{summary['seconds']:.1f} s")
    for report in summary.get("sparsification", []):
        print(f"  sparsified layer {report['layer']} at |a_k| <= {report['threshold']:g}: "
              f"removed {report['knots_removed']} knots, largest change on the grid "
              f"{max(report['max_change_on_grid']):.3g}")
    for row in spline_summary(net):
        print(f"  spline layer {row['layer']}: TV2 {sum(row['tv2']):.4g}, "
              f"BV2 {sum(row['bv2']):.4g}, knots per neuron {row['knots']} "
              f"(|a_k| > {max(row['knot_tolerance']):.1e})")
    print(f"  Lipschitz bound (Theorem 1, BV2 form, p=2): {summary['lipschitz_bound']:.4g}")
    if args.out:
        print(f"  model written to {args.out}")
    return 0


def parse_hidden(text) -> list:
    try:
        widths = [int(w) for w in str(text).split(",")]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise ValueError(f"--hidden: expected positive widths like 2 or 8,8, got {text!r}")
    return widths


def cmd_evaluate(args):
    net, names = load_model(args.model, with_names=True)
    x = np.load(args.inputs, allow_pickle=False)
    outputs, caches = net.forward(x, keep_cache=True)
    _, grads = net.backward(caches, np.ones_like(outputs))
    result = {"outputs": outputs, "input_jacobian": net.input_jacobian(x)}
    for file_name, own_name in names.items():
        result[f"param_gradients/{file_name}"] = grads[own_name]
    np.savez(args.output, **result)
    print(f"wrote {args.output}: outputs {outputs.shape}, input_jacobian "
          f"{result['input_jacobian'].shape}, {len(names)} parameter gradients")
    return 0


def cmd_info(args):
    net = load_model(args.model)
    info = {"layers": [], "splines": spline_summary(net), "theorem1": {}, "theorem1_bv2": {}}
    for i, layer in enumerate(net.layers):
        info["layers"].append({"index": i, "type": layer.kind,
                               **{k: list(v.shape) for k, v in layer.params.items()}})
    for p in ("1", "2", "inf"):
        info["theorem1"][p] = lipschitz.theorem1(net, p)
        info["theorem1_bv2"][p] = lipschitz.theorem1_bv2(net, p)
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"model {args.model}: input width {net.n_in}, output width {net.n_out}")
    for row in info["layers"]:
        shapes = ", ".join(f"{k} {tuple(v)}" for k, v in row.items() if k not in ("index", "type"))
        print(f"  layer {row['index']}: {row['type']}" + (f" ({shapes})" if shapes else ""))
    for row in info["splines"]:
        print(f"  spline layer {row['layer']} (knots: |a_k| > tolerance, per neuron):")
        print("    neuron        TV2        BV2        Lip  knots  tolerance")
        for n, vals in enumerate(zip(row["tv2"], row["bv2"], row["lipschitz"], row["knots"],
                                     row["knot_tolerance"])):
            print(f"    {n:6d} {vals[0]:10.4g} {vals[1]:10.4g} {vals[2]:10.4g} {vals[3]:6d}"
                  f"  {vals[4]:.1e}")
    print("  Theorem-1 Lipschitz bounds       p=1         p=2       p=inf")
    for key, label in (("theorem1", "exact activation slopes"), ("theorem1_bv2", "BV2 norms")):
        vals = info[key]
        print(f"    {label:26s} {vals['1']:10.4g}  {vals['2']:10.4g}  {vals['inf']:10.4g}")
    return 0


def jsonable(value):
    """NumPy scalars and arrays as Python numbers and lists; non-finite floats as None."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def load_any_model(path):
    """A model file (.npz), or a LipSDP MATLAB file (.mat, cell `weights`, ReLU)."""
    return network_from_mat(path) if str(path).endswith(".mat") else load_model(path)


def print_ladder(results: dict, p: float, box: float, title: str) -> list:
    """The human table: value, ratio to the best lower bound, seconds, note per method;
    returns the ladder's order violations (printed last)."""
    ref = ladder.best_lower(results)
    print(f"{title}, p = {p:g}; lower (and the MILP) over the box [-{box:g}, {box:g}]^N_0")
    print(f"  {'method':14s} {'value':>12s} {'/ best lower':>12s} {'seconds':>8s}  note")
    for name, r in results.items():
        v = r["value"]
        ratio = f"{v / ref:12.4f}" if v is not None and ref else f"{'-':>12s}"
        value = f"{v:12.6g}" if v is not None else f"{'n/a':>12s}"
        note = r.get("reason", "")
        if not note and name == "exact":
            size = (f"{r['pieces']} pieces" if "pieces" in r
                    else f"{r['binaries']} binaries, attained at an interior point")
            note = f"{r['method']}, {size}, over {r['domain']}"
        if not note and name.startswith("lipsdp"):
            note = (f"{r['solver']} {r['status']}, certified (Schur complement), "
                    f"solver value {r['solver_value']:.6g}")
        print(f"  {name:14s} {value} {ratio} {r['seconds']:8.2f}  {note}")
    violations = ladder.order_violations(results)
    for a, b, va, vb in violations:
        print(f"  VIOLATION: {a} = {va:.6g} > {b} = {vb:.6g}")
    return violations


def cmd_lipschitz(args):
    net = load_any_model(args.model)
    p = lipschitz.parse_p(args.p)
    results = ladder.ladder(net, p, args.box, ladder.parse_methods(args.methods),
                            solver=args.solver, time_limit=args.time_limit,
                            max_binaries=args.max_binaries, seed=args.seed)
    if args.json:
        print(json.dumps(jsonable(results)))
        return 1 if ladder.order_violations(results) else 0
    widths = " -> ".join(str(w) for w in [net.n_in] + [
        layer.n_out for layer in net.layers if layer.kind == "dense"])
    violations = print_ladder(results, p, args.box,
                              f"Lipschitz constant of {args.model} ({widths})")
    return 1 if violations else 0


def cmd_solve(args):
    from reference import convex

    net = load_model(args.model)
    try:
        data = np.load(args.data, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"--data: no file at {args.data}") from None
    for key in ("X", "y"):
        if key not in data.files:
            raise ValueError(f"--data: {args.data} has no array {key!r} (expected X (M, N_0) "
                             "and y (M,) or (M, N_L))")
    new, cert = convex.solve_layer(net, args.layer, data["X"], data["y"], loss=args.loss,
                                   lam=args.lam, reg=args.reg, grid=args.grid, size=args.size,
                                   lip_max=args.lip_max, solver=args.solver)
    save_model(new, args.out)
    cert["out"] = args.out
    if args.json:
        print(json.dumps(jsonable(cert)))
        return 0
    knots = cert["knots"]
    print(f"solved layer {args.layer} of {args.model} on {args.data} ({args.grid} grid, "
          f"{args.loss} loss, lambda {args.lam:g}, {args.reg}"
          + (f", Lip <= {args.lip_max:g}" if args.lip_max else "") + ")")
    print(f"  {cert['solver']} status {cert['status']}, objective {cert['objective']:.10g}, "
          f"NumPy re-evaluation {cert['objective_check']:.10g} (agree to "
          f"{cert['check_rtol']:g} relative), primal - dual gap "
          + ("n/a" if cert["gap"] is None else f"{cert['gap']:.2e}")
          + f", {cert['seconds']:.2f} s")
    print(f"  grid points per neuron {cert['grid_points']}; knots per neuron {knots} "
          f"(|slope change| > tolerance, max tolerance {max(cert['knot_tolerance']):.1e}); "
          f"Lip per neuron {[round(v, 4) for v in cert['lipschitz']]}")
    print(f"  model written to {args.out}")
    return 0


def cmd_reproduce(args):
    print("Circle data set (1500 training points, 200x200 test grid), one hidden layer:")
    print(f"{'activation':>11} {'width':>5} {'test acc':>9} {'TV2':>9} {'knots':>6} "
          f"{'Lip bound':>10} {'seconds':>8}")
    results = []
    for width in (2, 4):
        for activation in ("spline", "relu", "prelu", "leaky_relu"):
            _, s = run_training("circle", activation, [width], epochs=args.epochs,
                                seed=args.seed)
            results.append(s)
            tv2 = f"{s['tv2'][0]:9.4g}" if s["tv2"] else f"{'-':>9}"
            knots = f"{s['knots'][0]:6d}" if s["knots"] else f"{'-':>6}"
            print(f"{activation:>11} {width:5d} {s['test_accuracy']:9.4f} {tv2} {knots} "
                  f"{s['lipschitz_bound']:10.4g} {s['seconds']:8.1f}", flush=True)
    print("Lip bound: Theorem 1, BV2 form, p = 2.  TV2 and knots: the spline layer "
          "(knots |a_k| > 1e-6 max|a|).")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=1)
    from theory_checks import lipschitz_bound, representer   # lazy: they import this module
    status = 0
    for check in (lipschitz_bound, representer):
        print()
        name = check.__name__.rsplit(".", 1)[-1]
        status |= check.run(quick=True, json_out=f"{args.checks_dir}/{name}.json")
    return status


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m reference", description=(
        "Reference implementation of deep spline networks with a controlled Lipschitz "
        "constant (Aziznejad et al. 2020)."))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a network and report accuracy, TV2, knots, bound")
    p.add_argument("--dataset", default="circle", choices=datasets.DATASETS)
    p.add_argument("--data-path", default=None, help="MNIST: directory of IDX files or .npz")
    p.add_argument("--activation", default="spline", choices=[a for a in ACTIVATIONS
                                                              if a != "identity"])
    p.add_argument("--hidden", default="2", help="hidden widths, e.g. 2 or 8,8 (default 2)")
    p.add_argument("--lam", type=float, default=TRAIN_DEFAULTS["lam"],
                   help="lambda on the splines' TV2/BV2 (data term summed over samples)")
    p.add_argument("--reg", default="tv2", choices=["tv2", "bv2"])
    p.add_argument("--size", type=int, default=TRAIN_DEFAULTS["size"],
                   help="spline coefficients K per neuron")
    p.add_argument("--range", type=float, default=TRAIN_DEFAULTS["range_"],
                   help="spline grid [-R, R]")
    p.add_argument("--spline-init", default="leaky_relu",
                   choices=["leaky_relu", "relu", "identity", "abs", "even_odd"])
    p.add_argument("--epochs", type=int, default=TRAIN_DEFAULTS["epochs"])
    p.add_argument("--batch-size", type=int, default=TRAIN_DEFAULTS["batch_size"])
    p.add_argument("--lr", type=float, default=TRAIN_DEFAULTS["lr"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sparsify", type=float, default=None, metavar="T",
                   help="after training, zero the spline slope jumps |a_k| <= T")
    p.add_argument("--out", default=None, help="write the trained model here (.npz)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="outputs, input Jacobians and parameter gradients")
    p.add_argument("model")
    p.add_argument("--inputs", required=True, help=".npy array of shape (M, N_0)")
    p.add_argument("--output", required=True, help=".npz to write")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("info", help="layers, spline statistics and Theorem-1 bounds")
    p.add_argument("model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("lipschitz", help="the Lipschitz ladder: lower, exact, LipSDP, bounds")
    p.add_argument("model", help="model file (.npz) or LipSDP weights (.mat, ReLU)")
    p.add_argument("--p", default="2", help="l_p norm on inputs and outputs: 1, 2 or inf")
    p.add_argument("--methods", default=",".join(ladder.METHODS),
                   help="comma-separated subset of " + ",".join(ladder.METHODS))
    p.add_argument("--box", type=float, default=1.0,
                   help="half-width R of the box [-R, R]^N_0 for lower and the MILP")
    p.add_argument("--solver", default="CVXOPT", help="cvxpy SDP solver for LipSDP")
    p.add_argument("--time-limit", type=float, default=60.0, help="MILP time limit (s)")
    p.add_argument("--max-binaries", type=int, default=400, help="MILP size guard")
    p.add_argument("--seed", type=int, default=0, help="seed of the lower-bound search")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_lipschitz)

    p = sub.add_parser("solve", help="certified optimum of one spline layer, weights fixed")
    p.add_argument("model")
    p.add_argument("--data", required=True, help=".npz with X (M, N_0) and y (M,) or (M, N_L)")
    p.add_argument("--layer", type=int, required=True,
                   help="index of the spline layer in the model's layer list")
    p.add_argument("--lam", type=float, required=True, help="lambda >= 0")
    p.add_argument("--reg", default="tv2", choices=["tv2", "bv2"])
    p.add_argument("--loss", default="squared", choices=["squared", "logistic", "xent"])
    p.add_argument("--grid", default="data", choices=["data", "uniform"])
    p.add_argument("--size", type=int, default=None,
                   help="uniform grid: K coefficients on the layer's range (default its own K)")
    p.add_argument("--lip-max", type=float, default=None, help="constraint Lip <= V")
    p.add_argument("--solver", default="CLARABEL", help="cvxpy solver (default CLARABEL)")
    p.add_argument("--out", required=True, help="write the solved model here (.npz)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_solve)

    p = sub.add_parser("reproduce", help="the main job: spline vs ReLU-family on circle")
    p.add_argument("--epochs", type=int, default=TRAIN_DEFAULTS["epochs"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-out", default=None, help="also write the results as JSON")
    p.add_argument("--checks-dir", default="theory_checks/out",
                   help="where the theory checks (quick profile) write their JSON reports")
    p.set_defaults(func=cmd_reproduce)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:                  # output piped into e.g. `head`: stop quietly
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())
