"""Command line: python -m reference {train,info,check,evaluate,lipschitz,solve,
import-deepsplines,conformance,reproduce,sweep} (also `dsref`)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from reference.data import _datasets as datasets
from reference.lipschitz import _bounds as lipschitz
from reference.training import _sweep as sweep
from reference.exceptions import OverflowResult, TooLarge
from reference._format import plain
from reference.cli import _check as check_command
from reference.cli import _evaluate as evaluate
from reference.cli import _solve as solve
from reference.cli import _lipschitz as lipschitz_command
from reference.cli import _import_deepsplines as import_deepsplines_command
from reference.cli import _conformance as conformance_command
from reference.cli._args import (_choice, fraction, list_of, nonneg_float, nonneg_int,
                                     positive_float, positive_int, seed_list, size_int,
                                     sparsify_value, sweep_sparsify)
from reference.training._experiments import (RUN_ACTIVATIONS, SPLINE_INITS, TRAIN_DEFAULTS, RunConfig,
                                   run_training, spline_summary)
from reference.io._files import check_writable, dumps_json, prepare_output_dir, write_text
from reference.io._model_file import load_model, save_model
from reference.nn._spline import grid_from_range
from reference.training._train import ACC_DROP, REGULARISERS


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
    print(f"{args.activation} network {plain(summary['hidden'])} on {args.dataset}: "
          f"test accuracy {summary['test_accuracy']:.4f}, train loss {summary['train_loss']:.4g}, "
          f"{summary['seconds']:.1f} s")
    for report in summary.get("sparsification", []):
        print(f"  sparsified layer {report['layer']} at |a_k| <= {report['threshold']:g}: "
              f"removed {plain(report['knots_removed'])} knots, largest change on the grid "
              f"{max(report['max_change_on_grid']):.3g}")
    search = summary.get("sparsify", {})
    if search.get("mode") == "auto":
        print(f"  --sparsify auto: threshold {search['threshold']} (the largest on the ladder "
              f"with a training-accuracy drop <= {search['acc_drop_max']:g}): drop "
              f"{search['acc_drop']:.4g}, {search['knots_removed']} of "
              f"{search['knots_before']} knots removed")
    for row in spline_summary(net):
        print(f"  spline layer {row['layer']}: TV2 {sum(row['tv2']):.4g}, "
              f"BV2 {sum(row['bv2']):.4g}, knots per neuron {plain(row['knots'])} "
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
    if args.csv is not None:
        raise ValueError("--csv: writes the table of --table; add --table (no runs)")
    configs = sweep.expand(
        dataset=args.dataset, activation=args.activation,
        hidden=[tuple(parse_hidden(h)) for h in args.hidden], reg=args.reg, lam=args.lam,
        size=args.size, range_=args.range, epochs=args.epochs, seeds=args.seeds,
        batch_size=args.batch_size, lr=args.lr, spline_init=args.spline_init,
        sparsify=args.sparsify, acc_drop=args.acc_drop, prox=args.prox,
        data_path=args.data_path, max_runs=args.max_runs)
    check_sweep_configs(configs)
    result = sweep.run_sweep(configs, args.results, workers=args.workers,
                             scheduler=args.scheduler, force=args.force,
                             progress=not args.quiet, worker_timeout=args.worker_timeout)
    print(f"{len(configs)} runs: {result.done} done, {result.cached} cached, {result.failed} "
          f"failed, {result.seconds:.1f} s; records in {os.path.join(args.results, sweep.RECORDS)}")
    for key, problem in result.damaged:
        print(f"  {sweep.damaged_line(key, problem)}")
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


COMMAND_MODULES = (check_command, evaluate, lipschitz_command, solve,
                   import_deepsplines_command, conformance_command)   # reference/commands/*.py


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

    p = sub.add_parser("info", help="layers, spline statistics and Theorem-1 bounds")
    p.add_argument("model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    for module in COMMAND_MODULES:
        module.register(sub)

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
    p.add_argument("--worker-timeout", type=positive_float, default=sweep.WORKER_TIMEOUT,
                   metavar="S", help="fail the pending runs after S seconds without any Dask "
                   f"worker (default {sweep.WORKER_TIMEOUT:g})")
    p.add_argument("--force", action="store_true", help="recompute runs that have a record")
    p.add_argument("--max-runs", type=positive_float, default=sweep.MAX_RUNS,
                   help="size guard: combinations of the lists (refused before any run)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)
    return parser


SIGPIPE_STATUS = 128 + 13      # 141: what a shell reports for a writer killed by SIGPIPE (13)


class ReaderGone:
    """sys.stdout or sys.stderr, surviving its reader going away (`... | head`).

    On the first BrokenPipeError its file descriptor is pointed at /dev/null (os.dup2), so
    the command runs on to its own exit status, its later output and Python's final flush go
    nowhere quietly (no 'Exception ignored ... BrokenPipeError' at exit), and `broken` is
    set.  Everything else is the wrapped stream's."""

    def __init__(self, stream):
        self.stream, self.broken = stream, False

    def write(self, text):
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._discard()
            return len(text)

    def flush(self):
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._discard()

    def _discard(self):
        self.broken = True
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):       # no descriptor: replace it
            self.stream = open(os.devnull, "w")
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def main(argv=None) -> int:
    """Run one command; returns the exit status (0 done, 1 a check failed, 2 a usage or
    input error with a one-line message, 3 an answer not certified: a claim undecided, a
    solve stopped at its time limit or not certified optimal, 130 interrupted).

    When the reader of stdout or stderr goes away (`... | head`) the command still runs to
    its end (files are written as asked) with the rest of its output discarded, and keeps
    its own status if that is not 0, so that no failure (1, 2, 3, 130) ever reads as
    success under `set -o pipefail`; a command that succeeded exits with 141 (128 + SIGPIPE,
    what a shell reports for any writer whose reader left), because part of what it printed
    was lost: 0 means done and every line delivered."""
    streams = sys.stdout, sys.stderr             # None when closed (`>&-`): print skips it
    sys.stdout, sys.stderr = guarded = [s if s is None else ReaderGone(s) for s in streams]
    try:
        status = run_command(argv)
        for stream in guarded:
            if stream is not None:
                stream.flush()                   # a break at the last write is seen here
    finally:
        sys.stdout, sys.stderr = streams
    broken = any(s is not None and s.broken for s in guarded)
    return SIGPIPE_STATUS if status == 0 and broken else status


def run_command(argv) -> int:
    """Parse argv and run its command: main's status, without the broken-pipe rule."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:                # argparse printed the usage error (or --help)
        return exc.code
    try:
        return args.func(args)
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
