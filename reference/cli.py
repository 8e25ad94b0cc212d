"""Command line: python -m reference {train,evaluate,info,lipschitz,solve,reproduce,sweep}
(also `dsref`)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from reference import datasets, ladder, lipschitz, lipsdp, sweep
from reference._checks import OverflowResult, as_finite_array
from reference.convex import MAX_PROBLEM_SIZE
from reference.experiments import (RUN_ACTIVATIONS, SPLINE_INITS, TRAIN_DEFAULTS, RunConfig,
                                   run_training, spline_summary)
from reference.files import (check_not_an_input, check_writable, dumps_json, load_npy,
                             load_npz, prepare_output_dir, write_npz, write_text)
from reference.io import load_model, network_from_mat, save_model
from reference.limits import TooLarge
from reference.network import LOSSES
from reference.spline import grid_from_range
from reference.train import ACC_DROP, REGULARISERS


# ------------------------------------------------------------- argument types (argparse)
def _typed(convert, accept, expected):
    """An argparse type: convert the text, then require accept(value); otherwise argparse
    reports 'argument --NAME: expected ...' and exits with status 2."""
    def parse(text):
        try:
            value = convert(text)
        except (TypeError, ValueError, OverflowError):
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    parse.__name__ = expected
    return parse


nonneg_int = _typed(int, lambda v: v >= 0, "an integer >= 0")
positive_int = _typed(int, lambda v: v >= 1, "an integer >= 1")
size_int = _typed(int, lambda v: v >= 2, "an integer >= 2")
positive_float = _typed(float, lambda v: np.isfinite(v) and v > 0, "a finite number > 0")
nonneg_float = _typed(float, lambda v: np.isfinite(v) and v >= 0, "a finite number >= 0")
fraction = _typed(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")
sparsify_value = _typed(lambda t: t if t == "auto" else float(t),
                        lambda v: v == "auto" or (np.isfinite(v) and v >= 0),
                        "'auto' or a finite threshold >= 0")


def list_of(item):
    """An argparse type for a comma-separated list of `item` values ('1e-3,1e-1')."""
    def parse(text):
        return [item(part) for part in str(text).split(",")]
    parse.__name__ = f"a comma-separated list of {item.__name__}"
    return parse


def _choice(choices):
    return _typed(str, lambda v: v in choices, f"one of {', '.join(choices)}")


def seed_list(text):
    """Seeds as '0-4', '0,3,7' or both ('0-2,7'): a list of integers >= 0."""
    seeds = []
    for part in str(text).split(","):
        low, _, high = part.partition("-")
        first, last = nonneg_int(low), nonneg_int(high) if high else None
        if last is not None and last < first:
            raise argparse.ArgumentTypeError(f"expected a range LOW-HIGH with LOW <= HIGH, "
                                             f"got {part!r}")
        seeds.extend(range(first, (first if last is None else last) + 1))
    return seeds


def sweep_sparsify(text):
    """'auto', 'none' or a threshold."""
    return None if text == "none" else sparsify_value(text)


def cmd_train(args):
    hidden = parse_hidden(args.hidden)
    if args.activation == "spline":       # the grid is checked before any training
        try:
            grid_from_range(args.size, args.range)
        except ValueError as exc:
            raise ValueError(f"--size/--range: {exc}") from None
    if args.out is not None:
        check_writable(args.out, "--out")
    net, summary = run_training(
        args.dataset, args.activation, hidden, lam=args.lam, reg=args.reg, size=args.size,
        range_=args.range, epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
        lr=args.lr, spline_init=args.spline_init, data_path=args.data_path,
        quiet=args.quiet or args.json, sparsify=args.sparsify, acc_drop=args.acc_drop,
        prox=args.prox, data_arg="--data-path")
    if args.out is not None:
        save_model(net, args.out, "--out")
        summary["model"] = args.out
    if args.json:
        print(dumps_json(summary))
        return 0
    print(f"{args.activation} network {summary['hidden']} on {args.dataset}: "
          f"test accuracy {summary['test_accuracy']:.4f}, train loss {summary['train_loss']:.4g}, "
          f"{summary['seconds']:.1f} s")
    for report in summary.get("sparsification", []):
        print(f"  sparsified layer {report['layer']} at |a_k| <= {report['threshold']:g}: "
              f"removed {report['knots_removed']} knots, largest change on the grid "
              f"{max(report['max_change_on_grid']):.3g}")
    search = summary.get("sparsify", {})
    if search.get("mode") == "auto":
        print(f"  --sparsify auto: threshold {search['threshold']} (the largest on the ladder "
              f"with a training-accuracy drop <= {search['acc_drop_max']:g}): drop "
              f"{search['acc_drop']:.4g}, {search['knots_removed']} of "
              f"{search['knots_before']} knots removed")
    for row in spline_summary(net):
        print(f"  spline layer {row['layer']}: TV2 {sum(row['tv2']):.4g}, "
              f"BV2 {sum(row['bv2']):.4g}, knots per neuron {row['knots']} "
              f"(|a_k| > {max(row['knot_tolerance']):.1e})")
    print(f"  Lipschitz bound (Theorem 1, BV2 form, p=2): {summary['lipschitz_bound']:.4g}")
    if args.out is not None:
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


def check_finite_results(arrays: dict, what: str) -> None:
    """OverflowResult naming the first array with a NaN or inf (inputs were finite)."""
    for name, value in arrays.items():
        if not np.all(np.isfinite(value)):
            raise OverflowResult(f"{what}: {name} leaves the float64 range for these finite "
                                 "inputs and parameters; nothing was written")


def cmd_evaluate(args):
    check_writable(args.output, "--output")
    check_not_an_input(args.output, "--output", {"MODEL": args.model, "--inputs": args.inputs})
    net, names = load_model(args.model, with_names=True)
    x = load_npy(args.inputs, "--inputs")
    try:
        x = net.check_inputs(x)
    except ValueError as exc:
        raise ValueError(f"--inputs: {exc}") from None
    outputs, caches = net.forward(x, keep_cache=True)
    _, grads = net.backward(caches, np.ones_like(outputs))
    result = {"outputs": outputs, "input_jacobian": net.input_jacobian(x)}
    for file_name, own_name in names.items():
        result[f"param_gradients/{file_name}"] = grads[own_name]
    check_finite_results(result, "evaluate")
    write_npz(args.output, result, "--output")
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
        for key in ("theorem1", "theorem1_bv2"):
            try:
                info[key][p] = getattr(lipschitz, key)(net, p)
            except OverflowResult:                   # beyond float64: no number (null)
                info[key][p] = None
    if args.json:
        print(dumps_json(info))
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
        print(f"    {label:26s} " + "  ".join(f"{vals[p]:10.4g}" if vals[p] is not None
                                            else f"{'overflow':>10s}" for p in ("1", "2", "inf")))
    return 0


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
                            solver=args.solver, seed=args.seed,
                            **{name: getattr(args, name) for name in ladder.LIMITS})
    if args.json:
        print(dumps_json(results))
        return 1 if ladder.order_violations(results) else 0
    widths = " -> ".join(str(w) for w in [net.n_in] + [
        layer.n_out for layer in net.layers if layer.kind == "dense"])
    violations = print_ladder(results, p, args.box,
                              f"Lipschitz constant of {args.model} ({widths})")
    return 1 if violations else 0


def cmd_solve(args):
    from reference import convex

    check_writable(args.out, "--out")
    check_not_an_input(args.out, "--out", {"MODEL": args.model, "--data": args.data})
    net = load_model(args.model)
    data = load_npz(args.data, "--data (X (M, N_0) and y (M,) or (M, N_L))", ["X", "y"])
    x = as_finite_array(data["X"], "--data: X", ndim=2)
    y = as_finite_array(data["y"], "--data: y")
    if x.shape[0] < 1 or len(y) != x.shape[0]:
        raise ValueError(f"--data: expected X (M, N_0) and y with M >= 1 rows each, got "
                         f"shapes {x.shape} and {y.shape}")
    new, cert = convex.solve_layer(net, args.layer, x, y, loss=args.loss,
                                   lam=args.lam, reg=args.reg, grid=args.grid, size=args.size,
                                   lip_max=args.lip_max, solver=args.solver,
                                   max_size=args.max_size)
    save_model(new, args.out, "--out")
    cert["out"] = args.out
    if args.json:
        print(dumps_json(cert))
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


REPRODUCE_FIGURES = "figures/out/quick"


def cmd_reproduce(args):
    from theory_checks import lipschitz_bound, representer
    from theory_checks._report import prepare_json_out

    if args.json_out is not None:
        check_writable(args.json_out, "--json-out")
    prepare_output_dir(args.checks_dir, "--checks-dir")
    for check in (lipschitz_bound, representer):
        prepare_json_out(check_report_path(args.checks_dir, check), "--checks-dir")
    if not args.no_figures:
        prepare_output_dir(args.figures_dir, "--figures-dir")
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
    if args.json_out is not None:
        write_text(args.json_out, dumps_json(results, indent=1), "--json-out")
    status = 0
    for check in (lipschitz_bound, representer):
        print()
        status |= check.run(quick=True, json_out=check_report_path(args.checks_dir, check))
    if not args.no_figures:
        from figures.run import generate

        print("\nFigures, quick profile (python -m figures --quick):")
        report = generate("quick", out=args.figures_dir, progress=False)
        failed = [name for name, entry in report.items() if "error" in entry]
        for name in failed:
            print(f"  figure {name} could not be made: {report[name]['error']}")
        print(f"figures and the data behind them: {args.figures_dir}/ "
              f"(index: {args.figures_dir}/index.md)")
        status |= 1 if failed else 0
    return status


def check_report_path(directory, check) -> str:
    """Where `reproduce` writes a theory check's JSON report: DIR/NAME.json."""
    return os.path.join(directory, check.__name__.rsplit(".", 1)[-1] + ".json")


def cmd_sweep(args):
    if args.table:
        rows = sweep.table(sweep.load_records(args.results))
        if args.csv is not None:
            check_writable(args.csv, "--csv")
            records = (Path(args.results) / sweep.RECORDS).resolve()
            if records in Path(args.csv).resolve().parents:
                raise ValueError(f"--csv: {args.csv} is inside the records directory "
                                 f"{records}; write the table elsewhere")
            sweep.write_csv(rows, args.csv, "--csv")
        print(sweep.format_table(rows))
        if args.csv is not None:
            print(f"table written to {args.csv}")
        return 0
    configs = sweep.expand(
        dataset=args.dataset, activation=args.activation,
        hidden=[tuple(parse_hidden(h)) for h in args.hidden], reg=args.reg, lam=args.lam,
        size=args.size, range_=args.range, epochs=args.epochs, seeds=args.seeds,
        batch_size=args.batch_size, lr=args.lr, spline_init=args.spline_init,
        sparsify=args.sparsify, acc_drop=args.acc_drop, prox=args.prox,
        data_path=args.data_path)
    check_sweep_configs(configs)
    result = sweep.run_sweep(configs, args.results, workers=args.workers,
                             scheduler=args.scheduler, force=args.force,
                             progress=not args.quiet)
    print(f"{len(configs)} runs: {result.done} done, {result.cached} cached, {result.failed} "
          f"failed, {result.seconds:.1f} s; records in {os.path.join(args.results, 'records')}")
    for record in result.records:
        if record["status"] != "ok":
            print(f"  failed {record['key']}: {record['error'].splitlines()[0]}")
    return 1 if result.failed else 0


def check_sweep_configs(configs) -> None:
    """What a run would only find out after starting, checked for every config before the
    sweep: the spline grid (--size/--range) and a data path that must exist."""
    for config in configs:
        if config.activation == "spline":
            try:
                grid_from_range(config.size, config.range_)
            except ValueError as exc:
                raise ValueError(f"--size/--range: {exc}") from None
        if config.dataset == "mnist" and (config.data_path is None
                                          or not Path(config.data_path).exists()):
            raise ValueError(f"--data-path: the mnist data set is read from an existing path "
                             f"you give, got {config.data_path!r}")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m reference", description=(
        "Reference implementation of deep spline networks with a controlled Lipschitz "
        "constant (Aziznejad et al. 2020)."))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a network and report accuracy, TV2, knots, bound")
    p.add_argument("--dataset", default="circle", choices=datasets.DATASETS)
    p.add_argument("--data-path", default=None, help="MNIST: directory of IDX files or .npz")
    p.add_argument("--activation", default="spline", choices=RUN_ACTIVATIONS)
    p.add_argument("--hidden", default="2", help="hidden widths, e.g. 2 or 8,8 (default 2)")
    p.add_argument("--lam", type=nonneg_float, default=TRAIN_DEFAULTS["lam"],
                   help="lambda on the splines' TV2/BV2 (data term summed over samples)")
    p.add_argument("--reg", default=TRAIN_DEFAULTS["reg"], choices=REGULARISERS)
    p.add_argument("--size", type=size_int, default=TRAIN_DEFAULTS["size"],
                   help="spline coefficients K per neuron")
    p.add_argument("--range", type=positive_float, default=TRAIN_DEFAULTS["range_"],
                   help="spline grid [-R, R]")
    p.add_argument("--spline-init", default="leaky_relu",
                   choices=SPLINE_INITS)
    p.add_argument("--epochs", type=positive_int, default=TRAIN_DEFAULTS["epochs"])
    p.add_argument("--batch-size", type=positive_int, default=TRAIN_DEFAULTS["batch_size"])
    p.add_argument("--lr", type=positive_float, default=TRAIN_DEFAULTS["lr"])
    p.add_argument("--seed", type=nonneg_int, default=TRAIN_DEFAULTS["seed"])
    p.add_argument("--sparsify", type=sparsify_value, default=None, metavar="T|auto",
                   help="after training, zero the spline slope jumps |a_k| <= T; 'auto': the "
                        "largest T of DeepSplines' ladder whose training-accuracy drop is "
                        "<= --acc-drop")
    p.add_argument("--acc-drop", type=fraction, default=ACC_DROP, metavar="D",
                   help="--sparsify auto: tolerated training-accuracy drop, a fraction "
                        f"(default {ACC_DROP:g} = 0.25 percentage points, as DeepSplines)")
    p.add_argument("--prox", action="store_true",
                   help="proximal step for TV2 after each update (soft-thresholding of the "
                        "slope jumps: exact zeros)")
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
    p.add_argument("--box", type=positive_float, default=1.0,
                   help="half-width R of the box [-R, R]^N_0 for lower and the MILP")
    p.add_argument("--solver", default=lipsdp.DEFAULT_SOLVER, help="cvxpy SDP solver for LipSDP")
    p.add_argument("--time-limit", type=positive_float, default=ladder.LIMITS["time_limit"],
                   help="time limit (s) of the exact methods (MILP, 1-D): past it they return "
                        "a certified bracket")
    p.add_argument("--max-binaries", type=positive_int, default=ladder.LIMITS["max_binaries"],
                   help="size guard of the MILP (binaries)")
    p.add_argument("--max-pieces", type=positive_int, default=ladder.LIMITS["max_pieces"],
                   help="size guard of the 1-D exact method (pieces)")
    p.add_argument("--max-sdp-cost", type=positive_float, default=ladder.LIMITS["max_sdp_cost"],
                   help="size guard of LipSDP (estimated solver work, see the README)")
    p.add_argument("--max-lower-cost", type=positive_float,
                   default=ladder.LIMITS["max_lower_cost"],
                   help="size guard of the lower bound (points x flops of a Jacobian)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the lower-bound search")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_lipschitz)

    p = sub.add_parser("solve", help="certified optimum of one spline layer, weights fixed")
    p.add_argument("model")
    p.add_argument("--data", required=True, help=".npz with X (M, N_0) and y (M,) or (M, N_L)")
    p.add_argument("--layer", type=nonneg_int, required=True,
                   help="index of the spline layer in the model's layer list")
    p.add_argument("--lam", type=nonneg_float, required=True, help="lambda >= 0")
    p.add_argument("--reg", default=TRAIN_DEFAULTS["reg"], choices=REGULARISERS)
    p.add_argument("--loss", default="squared", choices=LOSSES)
    p.add_argument("--grid", default="data", choices=["data", "uniform"])
    p.add_argument("--size", type=size_int, default=None,
                   help="uniform grid: K coefficients on the layer's range (default its own K)")
    p.add_argument("--lip-max", type=positive_float, default=None, help="constraint Lip <= V")
    p.add_argument("--solver", default="CLARABEL", help=(
        "cvxpy solver (default CLARABEL); only solvers of the loss's problem class are "
        "accepted (squared: QP/SOCP, logistic and xent: exponential cone)"))
    p.add_argument("--max-size", type=positive_float, default=MAX_PROBLEM_SIZE,
                   help="size guard: grid points + samples x neurons")
    p.add_argument("--out", required=True, help="write the solved model here (.npz)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_solve)

    p = sub.add_parser("reproduce", help="the main job: spline vs ReLU-family on circle")
    p.add_argument("--epochs", type=positive_int, default=TRAIN_DEFAULTS["epochs"])
    p.add_argument("--seed", type=nonneg_int, default=TRAIN_DEFAULTS["seed"])
    p.add_argument("--json-out", default=None, help="also write the results as JSON")
    p.add_argument("--checks-dir", default="theory_checks/out",
                   help="where the theory checks (quick profile) write their JSON reports")
    p.add_argument("--figures-dir", default=REPRODUCE_FIGURES,
                   help="where the quick-profile figures go (their runs are cached there)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.set_defaults(func=cmd_reproduce)

    d = RunConfig()                           # the defaults of one run
    p = sub.add_parser("sweep", help="runs of every combination on Dask, one record each",
                       description="Run the cartesian product of the comma-separated lists "
                       "(baselines once, whatever --reg/--lam) and store one record per run "
                       "in --results (records/KEY.json, models/KEY.npz); a rerun reuses valid "
                       "records.  Exit status 1 if a run failed (recorded with its error).  "
                       "With --table: print the records grouped over seeds instead.")
    p.add_argument("--results", required=True, help="results directory")
    p.add_argument("--table", action="store_true",
                   help="print the records as a table (mean +- std over seeds); no runs")
    p.add_argument("--csv", default=None, help="--table: also write the table as CSV here")
    p.add_argument("--dataset", type=list_of(_choice(datasets.DATASETS)), default=[d.dataset])
    p.add_argument("--data-path", default=None, help="MNIST: directory of IDX files or .npz")
    p.add_argument("--activation", type=list_of(_choice(RUN_ACTIVATIONS)),
                   default=[d.activation])
    p.add_argument("--hidden", nargs="+", default=[",".join(map(str, d.hidden))],
                   help="one or more networks, each its hidden widths: --hidden 2 4 8,8")
    p.add_argument("--reg", type=list_of(_choice(REGULARISERS)), default=[d.reg])
    p.add_argument("--lam", type=list_of(nonneg_float), default=[d.lam])
    p.add_argument("--seeds", type=seed_list, default=[d.seed], help="e.g. 0-4 or 0,3,7")
    p.add_argument("--size", type=list_of(size_int), default=[d.size])
    p.add_argument("--range", type=list_of(positive_float), default=[d.range_])
    p.add_argument("--spline-init", type=list_of(_choice(SPLINE_INITS)),
                   default=[d.spline_init])
    p.add_argument("--epochs", type=list_of(positive_int), default=[d.epochs])
    p.add_argument("--batch-size", type=list_of(positive_int), default=[d.batch_size])
    p.add_argument("--lr", type=list_of(positive_float), default=[d.lr])
    p.add_argument("--sparsify", type=list_of(sweep_sparsify), default=[sweep.SWEEP_SPARSIFY],
                   help="'auto' (default), 'none' or thresholds")
    p.add_argument("--acc-drop", type=list_of(fraction), default=[d.acc_drop])
    p.add_argument("--prox", action="store_true", help="proximal TV2 step (see train)")
    p.add_argument("--workers", type=nonneg_int, default=None,
                   help="LocalCluster worker processes (default: the number of cores; 0: "
                        "in this process, without Dask)")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="an existing Dask scheduler, e.g. tcp://127.0.0.1:8786")
    p.add_argument("--force", action="store_true", help="recompute runs that have a record")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)
    return parser


def main(argv=None) -> int:
    """Run one command; returns the exit status (0 done, 1 a check failed, 2 a usage or
    input error with a one-line message, 130 interrupted)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:                # argparse printed the usage error (or --help)
        return exc.code
    try:
        return args.func(args)
    except BrokenPipeError:                  # output piped into e.g. `head`: stop quietly
        sys.stdout = open(os.devnull, "w")
        return 0
    except (ValueError, ImportError, RuntimeError, OSError) as exc:
        # user errors (bad values, files, failed solves); anything else is a bug: traceback
        message = str(exc)
        if isinstance(exc, TooLarge):            # the keyword's command-line flag
            message += f" (on the command line: --{exc.override.replace('_', '-')})"
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: files being written were left as they were", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
