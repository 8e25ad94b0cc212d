"""Times of the Lipschitz methods, with a JSON record (default benchmarks/out/bench_lipschitz.json).

- LipSDP-neuron / -layer on the published 2-10-30-20-2 anchor with the default solver
  (CVXOPT) and, as the reference measured in the same run, with CLARABEL (medians of
  --repeats solves after one warm-up; ratio = CLARABEL time / CVXOPT time);
- with --mnist, the ladder of the 784-50-10 LipSDP MNIST weights (minutes: CVXOPT builds an
  834 x 834 LMI with 51 multipliers);
- exact values against network size: breakpoint propagation for 1-D inputs (spline
  networks 1-w-w-1 and 1-w-w-w-1) and the MILP (p = inf, box [-2, 2]^2, ReLU and spline
  networks 2-w-w-1), each with the value, pieces or binaries and seconds.

    python benchmarks/bench_lipschitz.py [--anchors DIR] [--mnist] [--repeats 5] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from reference import ladder
from reference.exact import exact_1d, exact_milp
from reference.io import network_from_mat
from reference.lipsdp import lipsdp
from theory_checks.lipschitz_bound import random_net

ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "anchors"


def median_seconds(fn, repeats: int) -> tuple[float, object]:
    result = fn()                                     # warm-up (imports, first compile)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), result


def bench_anchor(anchors: Path, repeats: int) -> dict:
    net = network_from_mat(anchors / "lipsdp_random_weights.mat")
    out = {}
    for variant in ("neuron", "layer"):
        row = {}
        for solver in ("CVXOPT", "CLARABEL"):
            sec, r = median_seconds(lambda: lipsdp(net, variant, solver), repeats)
            row[solver] = {"seconds": sec, "value": r["value"], "status": r["status"]}
        row["ratio_clarabel_over_cvxopt"] = row["CLARABEL"]["seconds"] / row["CVXOPT"]["seconds"]
        out[variant] = row
        print(f"anchor LipSDP-{variant}: CVXOPT {row['CVXOPT']['seconds']:.3f} s "
              f"({row['CVXOPT']['value']:.5f}), CLARABEL {row['CLARABEL']['seconds']:.3f} s "
              f"({row['CLARABEL']['value']:.5f}), ratio {row['ratio_clarabel_over_cvxopt']:.1f}x",
              flush=True)
    return out


def bench_mnist(anchors: Path) -> dict:
    net = network_from_mat(anchors / "lipsdp_mnist_weights.mat")
    out = {}
    for p in ("2", "inf"):
        res = ladder.ladder(net, p, box=1.0, max_binaries=200, time_limit=600.0)
        out[f"p={p}"] = {k: {"value": v["value"], "seconds": v["seconds"],
                             "reason": v.get("reason")} for k, v in res.items()}
        print(f"MNIST 784-50-10, p = {p}: " + ", ".join(
            f"{k} {v['value']:.4g} ({v['seconds']:.1f} s)" if v["value"] is not None
            else f"{k} n/a" for k, v in res.items()), flush=True)
    return out


def bench_exact() -> list:
    rows = []
    for widths in ([1, 8, 8, 1], [1, 16, 16, 1], [1, 32, 32, 1], [1, 64, 64, 1],
                   [1, 16, 16, 16, 1], [1, 32, 32, 32, 1]):
        net = random_net(widths, "spline", seed=0, size=21)
        t0 = time.perf_counter()
        r = exact_1d(net, 2)
        rows.append({"method": "exact_1d", "widths": widths, "value": r["value"],
                     "pieces": r["pieces"], "seconds": time.perf_counter() - t0})
        print(f"exact_1d spline {widths}: {rows[-1]['pieces']} pieces, "
              f"{rows[-1]['seconds']:.3f} s", flush=True)
    for activation, sizes in (("relu", (4, 8, 12, 16, 24)), ("spline", (3, 4, 6, 8))):
        for w in sizes:
            net = random_net([2, w, w, 1], activation, seed=0, size=7)
            t0 = time.perf_counter()
            try:
                r = exact_milp(net, np.inf, box=2.0, time_limit=120.0, max_binaries=2000)
                row = {"value": r["value"], "binaries": r["binaries"],
                       "certified_exact": r["certified_exact"]}
            except RuntimeError as exc:
                row = {"value": None, "reason": str(exc)}
            row.update(method="exact_milp", activation=activation, widths=[2, w, w, 1],
                       seconds=time.perf_counter() - t0)
            rows.append(row)
            print(f"exact_milp {activation} 2-{w}-{w}-1: {row.get('binaries')} binaries, "
                  f"{row['seconds']:.2f} s, value {row['value']}", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anchors", default=str(ANCHORS))
    parser.add_argument("--mnist", action="store_true", help="also the MNIST ladder (minutes)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" /
                                             "bench_lipschitz.json"))
    args = parser.parse_args(argv)
    anchors = Path(args.anchors)
    record = {"machine": platform.platform(), "python": platform.python_version()}
    if (anchors / "lipsdp_random_weights.mat").exists():
        record["anchor_lipsdp"] = bench_anchor(anchors, args.repeats)
    else:
        print(f"{anchors}: no anchors, LipSDP timings skipped")
    record["exact"] = bench_exact()
    if args.mnist:
        record["mnist"] = bench_mnist(anchors)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
