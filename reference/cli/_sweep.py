"""`sweep --results DIR [--dataset A,B] [--activation A,B,...] ...`: the runs of every
combination of the lists on Dask, one record each (reused on a rerun); `sweep --results DIR
--table [--csv FILE]` prints the records grouped over seeds instead."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from reference.cli._args import (
    _choice,
    fraction,
    list_of,
    nonneg_float,
    nonneg_int,
    parse_hidden,
    positive_float,
    positive_int,
    seed_list,
    size_int,
    sweep_sparsify,
)
from reference.data import _datasets as datasets
from reference.io._files import check_writable
from reference.nn._spline_grid import grid_from_range
from reference.training import _sweep as sweep
from reference.training._experiments import RUN_ACTIVATIONS, SPLINE_INITS, RunConfig
from reference.training._train import REGULARISERS

NAME = "sweep"
HELP = "runs of every combination on Dask, one record each"
DESCRIPTION = ("Run the cartesian product of the comma-separated lists (baselines once, "
               "whatever --reg/--lam) and store one record per run in --results "
               "(records/KEY.json, models/KEY.npz); a rerun reuses valid records.  Exit status "
               "1 if a run failed (recorded with its error).  With --table: print the records "
               "grouped over seeds instead.")


def run(args) -> int:
    if args.table:
        records, skipped = sweep.read_records(args.results)
        for path, problem in skipped:        # one line each, not Python's warning format
            print(f"warning: {sweep.skipped_line(path, problem)}", file=sys.stderr)
        rows = sweep.table(records)
        if args.csv is not None:
            check_writable(args.csv, "--csv")
            records_dir = (Path(args.results) / sweep.RECORDS).resolve()
            if records_dir in Path(args.csv).resolve().parents:
                raise ValueError(f"--csv: {args.csv} is inside the records directory "
                                 f"{records_dir}; write the table elsewhere")
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


def add_arguments(p) -> None:
    """The arguments of `sweep` (defaults: those of one run, RunConfig())."""
    d = RunConfig()
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
