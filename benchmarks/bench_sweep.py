"""The sweep engine: one worker against two on a LocalCluster, with a JSON record (default
benchmarks/out/bench_sweep.json).

The sweep: circle and s_shape, spline width 2, lambda in {1e-4, 1e-3, 1e-2, 0.1, 1}, two seeds,
30 epochs, --sparsify auto (20 runs of about 2.5 s each on this machine).  Measured in one
process, one after the other:
- in-process: run_sweep(workers=0), no Dask: the time of the runs themselves (after one
  warm-up run for the imports);
- LocalCluster with 1 worker, then with 2 (reference.training.dask_client, the cluster
  run_sweep makes): the cluster's start and warm-up (one tiny run on every worker) timed apart,
  then run_sweep(scheduler=its address) from empty results.
Also timed, on the in-process sweep's files: what the records' integrity costs per record
(reference.training._records: sealing = hashing the model file and the record when it is
written; checking = reading, parsing, the value checks and both hashes when it is reused or
tabulated), as a fraction of the mean run.
Reported: speed-up = time(1 worker) / time(2 workers), with and without the cluster start;
per-run overhead of the engine = (time(1 worker) - time(in-process)) / runs, also as a
fraction of a 2 s run (goals of issue 8: >= 1.7x and < 5%), and the same in CPU time (this
process, scheduler included, plus the workers: not inflated by other processes on the
machine, unlike wall times; the load average is recorded); and whether the three engines
gave the same records (timings aside).

    python benchmarks/bench_sweep.py [--epochs 30] [--seeds 2] [--out PATH]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from _record import write_record  # benchmarks/_record.py (run as a script)

from reference.nn import _linear_spline as spline
from reference.training._experiments import RunConfig, run
from reference.training._records import check_record, seal
from reference.training._sweep import dask_client, expand, record_path, run_sweep, without_timings

LAMBDAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
REFERENCE_RUN_SECONDS = 2.0        # the "2 s run" for the overhead goal


def warm_up():
    """One tiny run (imports, the first LipSDP solve), as in this process before its timing."""
    spline.set_num_threads(1)
    run(RunConfig(epochs=1))
    return os.getpid()


def timed_cluster(configs, workers: int, results: Path) -> dict:
    """Wall time of the cluster's start and of the sweep, and the CPU time of the sweep:
    this process (client and scheduler) plus every worker process."""
    t0 = time.perf_counter()
    with dask_client(workers=workers) as client:
        client.run(warm_up)
        start = time.perf_counter() - t0
        cpu_workers = sum(client.run(time.process_time).values())
        cpu_here, t1 = time.process_time(), time.perf_counter()
        result = run_sweep(configs, results, scheduler=client.scheduler.address,
                           progress=False)
        sweep_seconds = time.perf_counter() - t1
        cpu = (time.process_time() - cpu_here
               + sum(client.run(time.process_time).values()) - cpu_workers)
    return {"workers": workers, "start_seconds": start, "sweep_seconds": sweep_seconds,
            "sweep_cpu_seconds": cpu, "total_seconds": time.perf_counter() - t0,
            "done": result.done, "failed": result.failed, "records": result.records}


def integrity_cost(results: Path, records: list, repeats: int = 20) -> dict:
    """Mean seconds per record of sealing it (seal: the model file's hash and the record's)
    and of checking it (check_record: read, parse, values, both hashes), each over every
    record `repeats` times."""
    t0 = time.perf_counter()
    for _ in range(repeats):
        for r in records:
            seal({k: v for k, v in r.items() if k not in ("model_sha256", "record_sha256")},
                 results / r["model"])
    sealing = (time.perf_counter() - t0) / (repeats * len(records))
    t0 = time.perf_counter()
    for _ in range(repeats):
        for r in records:
            assert check_record(record_path(results, r["key"]), results)[1] is None
    checking = (time.perf_counter() - t0) / (repeats * len(records))
    return {"seal_seconds_per_record": sealing, "check_seconds_per_record": checking}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "bench_sweep.json"))
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    configs = expand(dataset=["circle", "s_shape"], activation="spline", hidden=2,
                     lam=list(LAMBDAS), epochs=args.epochs, seeds=range(args.seeds))
    n = len(configs)
    print(f"{n} runs (circle, s_shape; spline width 2; {len(LAMBDAS)} lambdas; {args.seeds} "
          f"seeds; {args.epochs} epochs; sparsify auto)", flush=True)
    warm_up()                                 # one spline thread, as in the workers
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0, cpu0 = time.perf_counter(), time.process_time()
        serial = run_sweep(configs, tmp / "inprocess", workers=0, progress=False)
        inprocess = time.perf_counter() - t0
        inprocess_cpu = time.process_time() - cpu0
        per_run = inprocess / n
        print(f"in-process (no Dask): {inprocess:.1f} s, {per_run:.2f} s per run", flush=True)
        integrity = integrity_cost(tmp / "inprocess", serial.records)
        print(f"record integrity: sealing {integrity['seal_seconds_per_record'] * 1e3:.2f} ms, "
              f"checking {integrity['check_seconds_per_record'] * 1e3:.2f} ms per record "
              f"({100 * sum(integrity.values()) / per_run:.2f}% of the mean run)", flush=True)
        clusters = {}
        for workers in (1, 2):
            c = timed_cluster(configs, workers, tmp / f"cluster{workers}")
            clusters[workers] = c
            print(f"LocalCluster, {workers} worker(s): start + warm-up {c['start_seconds']:.1f} s,"
                  f" sweep {c['sweep_seconds']:.1f} s", flush=True)
    one, two = clusters[1], clusters[2]
    overhead = (one["sweep_seconds"] - inprocess) / n
    cpu_overhead = (one["sweep_cpu_seconds"] - inprocess_cpu) / n
    same = all(without_timings(a) == without_timings(b) == without_timings(c)
               for a, b, c in zip(serial.records, one["records"], two["records"]))
    record = {
        "benchmark": "bench_sweep", "machine": platform.platform(),
        "cpu_count": os.cpu_count(), "runs": n, "epochs": args.epochs,
        "inprocess_seconds": inprocess, "inprocess_cpu_seconds": inprocess_cpu,
        "mean_run_seconds": per_run,
        "cluster": {w: {k: v for k, v in c.items() if k != "records"}
                    for w, c in clusters.items()},
        "speedup_sweep": one["sweep_seconds"] / two["sweep_seconds"],
        "speedup_with_start": one["total_seconds"] / two["total_seconds"],
        "overhead_per_run_seconds": overhead,
        "overhead_fraction_of_mean_run": overhead / per_run,
        "overhead_fraction_of_2s_run": overhead / REFERENCE_RUN_SECONDS,
        "cpu_overhead_per_run_seconds": cpu_overhead,     # robust to other processes' load
        "cpu_overhead_fraction_of_2s_run": cpu_overhead / REFERENCE_RUN_SECONDS,
        "records_identical": same,
        "record_integrity": {**integrity,
                             "fraction_of_mean_run": sum(integrity.values()) / per_run},
        "load_average_before_after": [load_before, os.getloadavg()],   # other processes?
        "goals": {"speedup": 1.7, "overhead_fraction_of_2s_run": 0.05},
    }
    print(f"speed-up 2 workers / 1: {record['speedup_sweep']:.2f}x (sweep), "
          f"{record['speedup_with_start']:.2f}x (with the cluster start); engine overhead "
          f"{overhead * 1e3:.0f} ms per run = {100 * record['overhead_fraction_of_2s_run']:.1f}%"
          f" of a 2 s run ({100 * record['overhead_fraction_of_mean_run']:.1f}% of the mean "
          f"run here), in CPU time {cpu_overhead * 1e3:.0f} ms per run; records identical "
          f"across engines: {same}; load average "
          f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    write_record(record, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
