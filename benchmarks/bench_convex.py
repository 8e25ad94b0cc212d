"""The coefficient solver on the single-neuron problem, with a JSON record (default
benchmarks/out/bench_convex.json).

z = x (M points uniform in [-2, 2]), y = sin(3x) + 0.3 noise, squared loss, TV2, lambda 0.5:
- data grid (reference.convex.solve_layer: values + slopes, no 1/h) against the plain cvxpy
  formulation measured in the same run (values only, slopes diff(u)/h), both CLARABEL, for
  M in --sizes: objectives, their relative difference, seconds, ratio plain / ours;
- uniform grids of K = 11 ... 641 on [-2, 2]: no optimum below the data grid's;
- the lambda path (8 lambdas, M = 5000): one DPP problem compiled once against rebuilding and
  recompiling it for every lambda, and the compile time alone (get_problem_data).

    python benchmarks/bench_convex.py [--sizes 1000,5000,20000] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from reference import convex
from theory_checks.representer import single_neuron as problem

LAM = 0.5


def bench_sizes(sizes) -> list:
    net, x, y = problem(50)                          # warm-up: imports, first compile
    convex.solve_layer(net, 1, x, y, lam=LAM)
    convex.solve_plain_single_neuron(x[:, 0], y, LAM)
    rows = []
    for m in sizes:
        net, x, y = problem(m)
        t0 = time.perf_counter()
        _, cert = convex.solve_layer(net, 1, x, y, lam=LAM)
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        plain = convex.solve_plain_single_neuron(x[:, 0], y, LAM)
        plain_seconds = time.perf_counter() - t0
        uniform = []
        for k in (11, 41, 161, 641):
            _, u = convex.solve_layer(net, 1, x, y, lam=LAM, grid="uniform", size=k)
            uniform.append({"K": k, "objective": u["objective"],
                            "above_data_grid": u["objective"] - cert["objective"]})
        row = {"M": m, "objective": cert["objective"], "objective_check": cert["objective_check"],
               "gap": cert["gap"], "knots": cert["knots"][0], "seconds": ours,
               "plain_status": plain["status"], "plain_objective": plain["objective"],
               "plain_seconds": plain_seconds,
               "relative_difference": (plain["objective"] - cert["objective"])
               / cert["objective"], "ratio_plain_over_ours": plain_seconds / ours,
               "uniform": uniform}
        rows.append(row)
        print(f"M = {m:6d}: data grid {cert['objective']:.10g} ({ours:.2f} s, gap "
              f"{cert['gap']:.1e}, {cert['knots'][0]} knots); plain {plain['objective']:.10g} "
              f"({plain['status']}, {plain_seconds:.2f} s); relative difference "
              f"{row['relative_difference']:.1e}; plain / ours {row['ratio_plain_over_ours']:.2f}x;"
              f" uniform K=641 above by {uniform[-1]['above_data_grid']:.3g}", flush=True)
    return rows


def bench_path(m: int = 5000) -> dict:
    net, x, y = problem(m)
    lams = np.geomspace(0.05, 5.0, 8)
    t0 = time.perf_counter()
    convex.solve_path(net, 1, x, y, lams)
    path = time.perf_counter() - t0
    t0 = time.perf_counter()
    for lam in lams:
        convex.solve_layer(net, 1, x, y, lam=lam)
    separate = time.perf_counter() - t0
    _, _, z, a_mat, c = convex.prepare(net, 1, x, y, "squared")
    prob = convex.CoefficientProblem(z, a_mat, c, y[:, None], "squared", "tv2",
                                     convex.data_grid(z, "tv2"))
    prob.lam.value = 1.0
    t0 = time.perf_counter()
    prob.problem.get_problem_data("CLARABEL", solver_opts={})
    compile_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    prob.problem.get_problem_data("CLARABEL", solver_opts={})
    compile_again = time.perf_counter() - t0
    out = {"M": m, "lambdas": len(lams), "path_seconds": path, "separate_seconds": separate,
           "speedup": separate / path, "compile_first_seconds": compile_first,
           "compile_cached_seconds": compile_again}
    print(f"lambda path ({len(lams)} lambdas, M = {m}): compiled once {path:.2f} s, "
          f"recompiled each time {separate:.2f} s, speed-up {out['speedup']:.2f}x "
          f"(compile {compile_first:.3f} s first, {compile_again:.3f} s cached)", flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000,20000")
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "bench_convex.json"))
    args = parser.parse_args(argv)
    record = {"machine": platform.platform(), "python": platform.python_version(),
              "lambda": LAM, "sizes": bench_sizes([int(s) for s in args.sizes.split(",")]),
              "path": bench_path()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
