"""Times of the Lipschitz methods, with a JSON record (default benchmarks/out/bench_lipschitz.json).

- LipSDP-neuron / -layer on the published 2-10-30-20-2 anchor with the default solver
  (NUMPY) and, as references measured in the same run, CVXOPT (structured) and CLARABEL
  (medians of --repeats solves after one warm-up; ratios = their time / NUMPY's);
- with --mnist, LipSDP-neuron and -layer on the 784-50-10 MNIST weights on the reduced LMI
  (the default) with NUMPY and CVXOPT (medians of --repeats), and the ladder for p = 2 and
  inf; with --full also the unreduced LMI with NUMPY (one solve each; CVXOPT on it takes
  more than 8 minutes) and the relative difference of the values;
- with --curve, LipSDP-neuron on random ReLU networks 2-H-H-1 and 784-H-H-10 for H in
  --curve-sizes, each family until a NUMPY solve takes more than --curve-limit seconds:
  seconds, value, LMI sides, iterations and the size guard's estimate (sdp_cost, ~1e-8 s
  units); beside it, while they take less than --reference-limit seconds, CVXOPT
  (structured) and, for 2-H-H-1, the generic cvxpy route with CVXOPT on the unreduced LMI
  (how LipSDP was solved before), with the ratios of the times;
- exact values against network size (skipped with --no-exact): breakpoint propagation for
  1-D inputs (spline networks 1-w-w-1 and 1-w-w-w-1) and the MILP (p = inf, box [-2, 2]^2,
  ReLU and spline networks 2-w-w-1), each with the value, pieces or binaries and seconds;
- with --eclipse (only that): the project's ECLipsE-Fast and ECLipsE
  (reference.lipschitz._eclipse) beside the published package eclipse-nn (optional: the
  extra [eclipse]; without it its columns say so) on the networks of issue 19 (ReLU,
  `build_mlp` with rng 0, p = 2: 10-64x8-10, 10-50x20-10, 784-500-200-50-10, 2-200x3-1) and
  the two anchors: value and seconds of both implementations (ECLipsE-Fast: medians of
  --repeats), their relative difference, LipSDP-neuron and the ratio ECLipsE / LipSDP-neuron.
  LipSDP-neuron runs only where its size guard's estimate is <= --eclipse-lipsdp-cost (default
  5e9 units: not on 10-50x20-10 and 784-500-200-50-10, 38 and 46 s in the issue;
  --eclipse-lipsdp-cost 1e11 runs it everywhere); the project's ECLipsE where the estimate
  of its stage SDPs is <= --eclipse-sdp-cost (default 3e9); the package's ECLipsE (SCS, its
  fallback message recorded) only on networks of width <= --eclipse-package-width (default
  64; it did not finish 784-500-200-50-10 in 1 500 s).

The record holds the BLAS thread settings and the load average: on a loaded 2-core machine,
OpenBLAS with 2 threads was up to 8x slower per matrix product than with 1
(OPENBLAS_NUM_THREADS=1); compare ratios measured in one run.

    python benchmarks/bench_lipschitz.py [--anchors DIR] [--mnist [--full]] [--curve]
        [--curve-sizes 25,50,100,...] [--curve-limit 60] [--repeats 5] [--no-exact] [--out PATH]
    python benchmarks/bench_lipschitz.py --eclipse [--eclipse-lipsdp-cost 5e9] [--out PATH]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import time
from pathlib import Path

import numpy as np
from _record import write_record  # benchmarks/_record.py (run as a script)

from reference.io._model_file import network_from_mat
from reference.lipschitz import _eclipse as eclipse_mod
from reference.lipschitz import _ladder as ladder
from reference.lipschitz._exact1d import exact_1d
from reference.lipschitz._lipsdp import (
    MARGINS,
    certified_rho,
    lipsdp,
    lipsdp_data,
    lmi_size,
    sdp_cost,
)
from reference.lipschitz._milp import exact_milp
from reference.lipschitz._sdp_backends import solve_cvxpy
from reference.nn._network import build_mlp
from reference.testing import random_net

ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "anchors"
CURVE_SIZES = "25,50,100,150,200,250,300,400,500,600,800"
CURVE_LIMIT = 60.0             # seconds: a family stops after the first solve above it
REFERENCE_LIMIT = 60.0         # seconds: the cvxpy route stops after the first solve above it
UNLIMITED = 1e30               # max_sdp_cost while measuring (the guard is what is calibrated)
ANCHOR_SOLVERS = ("NUMPY", "CVXOPT", "CLARABEL")


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
        for solver in ANCHOR_SOLVERS:
            sec, r = median_seconds(lambda: lipsdp(net, variant, solver), repeats)
            row[solver] = {"seconds": sec, "value": r["value"], "status": r["status"],
                           "attempts": r["attempts"]}
        for solver in ANCHOR_SOLVERS[1:]:
            row[f"ratio_{solver.lower()}_over_numpy"] = (row[solver]["seconds"]
                                                         / row["NUMPY"]["seconds"])
        out[variant] = row
        print(f"anchor LipSDP-{variant}: " + ", ".join(
            f"{s} {row[s]['seconds']:.3f} s ({row[s]['value']:.8f})" for s in ANCHOR_SOLVERS)
            + "; ratios to NUMPY " + ", ".join(
            f"{s} {row[f'ratio_{s.lower()}_over_numpy']:.1f}x" for s in ANCHOR_SOLVERS[1:]),
            flush=True)
    return out


def lipsdp_row(r: dict, seconds: float) -> dict:
    return {"value": r["value"], "solver_value": r["solver_value"], "seconds": seconds,
            "status": r["status"], "attempts": r["attempts"], "iterations": r["iterations"],
            "relative_gap": r["relative_gap"], "reduction": r["reduction"],
            "lmi_side": r["lmi_side"]}


def bench_mnist(anchors: Path, repeats: int, full: bool) -> dict:
    net = network_from_mat(anchors / "lipsdp_mnist_weights.mat")
    out = {}
    for variant in ("neuron", "layer"):
        row = {}
        for solver in ("NUMPY", "CVXOPT"):
            sec, r = median_seconds(lambda: lipsdp(net, variant, solver), repeats)
            row[f"reduced {solver}"] = lipsdp_row(r, sec)
            red = r["reduction"]
            print(f"MNIST 784-50-10 LipSDP-{variant}, {solver}, reduced (rank {red['rank']} of "
                  f"{red['n0']}, side {red['side']} of {r['lmi_side']}): {r['value']:.10f} in "
                  f"{sec:.3f} s ({r['attempts'][-1]})", flush=True)
            if full and solver == "NUMPY":
                t0 = time.perf_counter()
                f = lipsdp(net, variant, solver, reduce=False, max_sdp_cost=UNLIMITED)
                row[f"full {solver}"] = lipsdp_row(f, time.perf_counter() - t0)
                diff = (r["value"] - f["value"]) / f["value"]
                row[f"relative_difference {solver}"] = diff
                row[f"ratio_full_over_reduced {solver}"] = row[f"full {solver}"]["seconds"] / sec
                print(f"MNIST 784-50-10 LipSDP-{variant}, {solver}, full (side "
                      f"{f['lmi_side']}): {f['value']:.10f} in "
                      f"{row[f'full {solver}']['seconds']:.1f} s ({f['attempts'][-1]}); "
                      f"reduced - full: {diff:.1e} relative; full / reduced "
                      f"{row[f'ratio_full_over_reduced {solver}']:.0f}x", flush=True)
        out[variant] = row
    for p in ("2", "inf"):
        res = ladder.ladder(net, p, box=1.0, max_binaries=200, time_limit=600.0)
        out[f"ladder p={p}"] = {k: {"value": v["value"], "seconds": v["seconds"],
                                    "reason": v.get("reason")} for k, v in res.items()}
        print(f"MNIST 784-50-10 ladder, p = {p}: " + ", ".join(
            f"{k} {v['value']:.4g} ({v['seconds']:.1f} s)" if v["value"] is not None
            else f"{k} n/a" for k, v in res.items()), flush=True)
    return out


def cvxpy_route(net) -> dict:
    """LipSDP-neuron as it was solved before the structured solvers: the cvxpy model of the
    unreduced LMI, CVXOPT through cvxpy, certified in NumPy at margin 0 and, failing that,
    re-solved at the margins of lipsdp.MARGINS (the model is rebuilt for each margin, its
    compile time counted), as lipsdp did."""
    data = lipsdp_data(net)
    t0, attempts, value, scale = time.perf_counter(), [], None, 1.0
    for margin in MARGINS:
        sol = solve_cvxpy(data, np.eye(len(data.scale)), margin * scale, "CVXOPT")
        if margin == 0 and sol.rho is not None and sol.rho > 0:
            scale = sol.rho
        rho = certified_rho(data, np.maximum(sol.lam, 0.0))[0] if sol.lam is not None else np.inf
        attempts.append(f"margin {margin:g}: {sol.status}"
                        + ("" if np.isfinite(rho) else ", not certified"))
        if np.isfinite(rho):
            value = float(np.sqrt(rho))
            break
    return {"seconds": time.perf_counter() - t0, "attempts": attempts, "value": value}


def bench_curve(sizes: list, limit: float, reference_limit: float) -> dict:
    """Per family and H: the default solver (NUMPY) until a solve takes more than `limit`
    seconds; CVXOPT (structured) and, for 2-H-H-1, the cvxpy route, each until one of its
    solves takes more than `reference_limit` seconds."""
    out = {}
    for family, widths_of in (("2-H-H-1", lambda h: [2, h, h, 1]),
                              ("784-H-H-10", lambda h: [784, h, h, 10])):
        rows, cvxopt_on, route_on = [], True, family == "2-H-H-1"
        for h in sizes:
            net = build_mlp(widths_of(h), "relu", rng=0)
            row = {"H": h, "lmi_side": lmi_size(net)[0],
                   "estimate": sdp_cost(net, "neuron", "NUMPY")}
            t0 = time.perf_counter()
            try:
                r = lipsdp(net, "neuron", max_sdp_cost=UNLIMITED)
            except RuntimeError as exc:                  # no certified bound: say so, go on
                rows.append({**row, "seconds": time.perf_counter() - t0, "error": str(exc)})
                print(f"{family} H = {h}: {exc}", flush=True)
                continue
            row.update(lipsdp_row(r, time.perf_counter() - t0))
            row["seconds_per_estimate_unit"] = row["seconds"] / row["estimate"]
            text = (f"{family} H = {h}: N = {row['lmi_side']} (solved {r['reduction']['side']}), "
                    f"NUMPY {row['seconds']:.2f} s, value {r['value']:.10g}, {r['iterations']} "
                    f"iterations, {r['attempts'][-1]}; estimate {row['estimate']:.3g} "
                    f"({1e8 * row['seconds_per_estimate_unit']:.2f}e-8 s per unit)")
            if cvxopt_on:
                t0 = time.perf_counter()
                try:
                    c = lipsdp(net, "neuron", "CVXOPT", max_sdp_cost=UNLIMITED)
                    row["cvxopt"] = lipsdp_row(c, time.perf_counter() - t0)
                    note = f"{c['value']:.10g}, {c['attempts'][-1]}"
                except RuntimeError as exc:
                    row["cvxopt"] = {"seconds": time.perf_counter() - t0, "error": str(exc)}
                    note = "no certified bound"
                row["cvxopt"]["estimate"] = sdp_cost(net, "neuron", "CVXOPT")
                row["ratio_cvxopt_over_numpy"] = row["cvxopt"]["seconds"] / row["seconds"]
                cvxopt_on = row["cvxopt"]["seconds"] <= reference_limit
                text += (f"; CVXOPT {row['cvxopt']['seconds']:.2f} s ({note}), ratio "
                         f"{row['ratio_cvxopt_over_numpy']:.1f}x")
            if route_on:
                ref = cvxpy_route(net)
                row["cvxpy_route"] = ref
                row["ratio_cvxpy_route_over_numpy"] = ref["seconds"] / row["seconds"]
                route_on = ref["seconds"] <= reference_limit
                text += (f"; cvxpy route {ref['seconds']:.2f} s ({ref['attempts'][-1]}, value "
                         f"{ref['value']}), ratio {row['ratio_cvxpy_route_over_numpy']:.1f}x")
            rows.append(row)
            print(text, flush=True)
            if row["seconds"] > limit:
                break
        out[family] = rows
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


ECLIPSE_NETS = {"10-64x8-10": [10] + [64] * 8 + [10], "10-50x20-10": [10] + [50] * 20 + [10],
                "784-500-200-50-10": [784, 500, 200, 50, 10], "2-200x3-1": [2, 200, 200, 200, 1]}


def dense_weights(net) -> list:
    return [layer.params["weight"] for layer in net.layers if layer.kind == "dense"]


def package_estimate(weights: list, method: str) -> dict:
    """eclipse-nn's LipConstEstimator on float64 tensors of the weights (its default slopes
    [0, 1]): value, seconds and what it printed (its fallback message)."""
    import torch
    from eclipse_nn.LipConstEstimator import LipConstEstimator

    est = LipConstEstimator(weights=[torch.tensor(w) for w in weights])
    printed = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        value = float(est.estimate(method=method))
    return {"value": value, "seconds": time.perf_counter() - t0,
            "printed": printed.getvalue().strip()[:200]}


def bench_eclipse(anchors: Path, repeats: int, lipsdp_cost: float, sdp_cost_limit: float,
                  package_width: int) -> dict:
    try:
        import eclipse_nn  # noqa: F401
        package = None
    except ImportError as exc:
        package = f"eclipse-nn not installed ({exc}): pip install '.[eclipse]'"
        print(package + "; its columns are skipped", flush=True)
    nets = {name: build_mlp(w, activation="relu", rng=0) for name, w in ECLIPSE_NETS.items()}
    for name, file in (("anchor 2-10-30-20-2", "lipsdp_random_weights.mat"),
                       ("MNIST 784-50-10", "lipsdp_mnist_weights.mat")):
        if (anchors / file).exists():
            nets[name] = network_from_mat(anchors / file)
    out = {}
    for name, net in nets.items():
        row = {}
        sec, r = median_seconds(lambda: eclipse_mod.eclipse_fast(net), repeats)
        row["eclipse_fast"] = {"value": r["value"], "seconds": sec,
                               "rounding_bound": r["rounding_bound"]}
        try:
            t0 = time.perf_counter()
            r = eclipse_mod.eclipse(net, max_sdp_cost=sdp_cost_limit)
            row["eclipse"] = {"value": r["value"], "seconds": time.perf_counter() - t0,
                              "rounding_bound": r["rounding_bound"]}
        except Exception as exc:          # TooLarge (the size guard) or SolveFailed: said so
            row["eclipse"] = {"value": None, "reason": f"{type(exc).__name__}: {exc}"[:300]}
        cost = sdp_cost(net, "neuron", "NUMPY")
        if cost <= lipsdp_cost:
            t0 = time.perf_counter()
            r = lipsdp(net, "neuron", max_sdp_cost=UNLIMITED)
            row["lipsdp_neuron"] = {"value": r["value"], "seconds": time.perf_counter() - t0}
        else:
            row["lipsdp_neuron"] = {"value": None, "reason": (
                f"not run: size guard estimate {cost:.3g} > --eclipse-lipsdp-cost "
                f"{lipsdp_cost:.3g}")}
        if package is None:
            weights = dense_weights(net)
            row["package ECLipsE_Fast"] = package_estimate(weights, "ECLipsE_Fast")
            row["relative_difference_fast"] = (row["eclipse_fast"]["value"] / row[
                "package ECLipsE_Fast"]["value"] - 1)
            if max(w.shape[0] for w in weights) <= package_width:
                row["package ECLipsE"] = package_estimate(weights, "ECLipsE")
            else:
                row["package ECLipsE"] = {"value": None, "reason": (
                    f"not run: width > --eclipse-package-width {package_width}")}
        else:
            row["package"] = package
        neuron = row["lipsdp_neuron"]["value"]
        for key in ("eclipse", "eclipse_fast"):
            if neuron and row[key]["value"]:
                row[f"ratio_lipsdp_neuron_over_{key}"] = neuron / row[key]["value"]
        out[name] = row
        print(eclipse_line(name, row), flush=True)
    return out


def eclipse_line(name: str, row: dict) -> str:
    def cell(key):
        r = row.get(key, {})
        if r.get("value") is None:
            return f"{key} n/a ({(r.get('reason') or 'not run')[:60]})"
        return f"{key} {r['value']:.6g} in {r['seconds']:.2f} s"
    keys = ["eclipse_fast", "package ECLipsE_Fast", "eclipse", "package ECLipsE",
            "lipsdp_neuron"]
    text = f"{name}: " + "; ".join(cell(k) for k in keys if k in row)
    if "relative_difference_fast" in row:
        text += f"; Fast project/package - 1 = {row['relative_difference_fast']:.1e}"
    if "ratio_lipsdp_neuron_over_eclipse_fast" in row:
        text += (f"; LipSDP-neuron / ECLipsE-Fast "
                 f"{row['ratio_lipsdp_neuron_over_eclipse_fast']:.3f}")
    if "ratio_lipsdp_neuron_over_eclipse" in row:
        text += f", / ECLipsE {row['ratio_lipsdp_neuron_over_eclipse']:.3f}"
    return text


def sizes_list(text: str) -> list:
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths, got {text!r}")
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive widths, got {text!r}")
    return sizes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anchors", default=str(ANCHORS))
    parser.add_argument("--mnist", action="store_true",
                        help="LipSDP and the ladder on the MNIST 784-50-10 weights")
    parser.add_argument("--full", action="store_true",
                        help="with --mnist: also the unreduced LMI (NUMPY, ~10 s each)")
    parser.add_argument("--curve", action="store_true",
                        help="LipSDP-neuron seconds against H (2-H-H-1, 784-H-H-10)")
    parser.add_argument("--curve-sizes", type=sizes_list, default=sizes_list(CURVE_SIZES))
    parser.add_argument("--curve-limit", type=float, default=CURVE_LIMIT)
    parser.add_argument("--reference-limit", type=float, default=REFERENCE_LIMIT)
    parser.add_argument("--no-exact", action="store_true", help="skip the exact-value timings")
    parser.add_argument("--eclipse", action="store_true",
                        help="only ECLipsE (project and eclipse-nn) on issue 19's networks")
    parser.add_argument("--eclipse-lipsdp-cost", type=float, default=5e9)
    parser.add_argument("--eclipse-sdp-cost", type=float, default=3e9)
    parser.add_argument("--eclipse-package-width", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None, help="default benchmarks/out/bench_lipschitz"
                                                    "[_eclipse].json")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = str(Path(__file__).parent / "out" / (
            "bench_lipschitz_eclipse.json" if args.eclipse else "bench_lipschitz.json"))
    if args.full and not args.mnist:
        parser.error("--full: only with --mnist")
    anchors = Path(args.anchors)
    record = {"machine": platform.platform(), "python": platform.python_version(),
              "threads": {k: os.environ.get(k) for k in
                          ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
              "load_average_start": os.getloadavg()}
    if args.eclipse:
        record["eclipse"] = bench_eclipse(anchors, args.repeats, args.eclipse_lipsdp_cost,
                                          args.eclipse_sdp_cost, args.eclipse_package_width)
        record["load_average_end"] = os.getloadavg()
        write_record(record, args.out)
        print(f"wrote {args.out}")
        return
    if (anchors / "lipsdp_random_weights.mat").exists():
        record["anchor_lipsdp"] = bench_anchor(anchors, args.repeats)
    else:
        print(f"{anchors}: no anchors, LipSDP timings skipped")
    if not args.no_exact:
        record["exact"] = bench_exact()
    if args.mnist:
        record["mnist"] = bench_mnist(anchors, args.repeats, args.full)
    if args.curve:
        record["curve"] = bench_curve(args.curve_sizes, args.curve_limit, args.reference_limit)
    record["load_average_end"] = os.getloadavg()
    write_record(record, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
