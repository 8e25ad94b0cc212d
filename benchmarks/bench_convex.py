"""The coefficient solver, with a JSON record (default benchmarks/out/bench_convex.json).

Part "sizes", the single-neuron problem: z = x (M points uniform in [-2, 2]),
y = sin(3x) + 0.3 noise, squared loss, TV2, lambda 0.5:
- data grid (reference.convex.solve_layer, method full: values + slopes, no 1/h) against
  the plain cvxpy formulation measured in the same run (values only, slopes diff(u)/h), both
  CLARABEL, for M in --sizes: objectives, their relative difference, seconds, ratio plain /
  ours; the active-set method (the default) on the same problem;
- uniform grids of K = 11 ... 641 on [-2, 2]: no optimum below the data grid's.
Part "path": the lambda path (8 lambdas, M = 5000), method full: one DPP problem compiled
once against rebuilding and recompiling it for every lambda, and the compile time alone;
the active-set path (each lambda starting from the previous active set) beside it.
Part "networks" (issue 10): 2-N-1 networks (random weights, seed 0), M = --samples inputs
x ~ N(0, I_2), y = sin(2 x_1) + x_2^2 - 0.5 + 0.1 noise, squared loss, TV2, lambda 0.1,
for N in --networks: the active-set method against the full data-grid solve (the oracle)
for N in --full (the full solve takes minutes beyond N = 2; --full 1,2,8,16 runs it for
all): seconds, ratio, rounds, points per neuron, knots before / after polishing, the worst
violation and the objectives' relative difference (goals: N = 2 <= 3 s, N = 8 <= 15 s,
N = 16 <= 30 s, objective equal to the full one to 1e-7).

    python benchmarks/bench_convex.py [--parts sizes,path,networks] [--sizes 1000,5000,20000]
        [--networks 1,2,8,16] [--samples 8000] [--full 1,2] [--out PATH]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
from _record import write_record  # benchmarks/_record.py (run as a script)

from reference.convex import _solve as convex
from reference.convex._problem import CoefficientProblem
from reference.convex._representer import solve_plain_single_neuron
from reference.testing import loss_targets as targets
from reference.testing import random_net
from reference.testing import single_neuron as problem

LAM = 0.5
NETWORK_LAM = 0.1
GOALS = {2: 3.0, 8: 15.0, 16: 30.0}         # seconds for the active set, M = 8000 (issue 10)
OBJECTIVE_RTOL = 1e-7


def bench_sizes(sizes) -> list:
    net, x, y = problem(50)                          # warm-up: imports, first compile
    convex.solve_layer(net, 1, x, y, lam=LAM)
    solve_plain_single_neuron(x[:, 0], y, LAM)
    rows = []
    for m in sizes:
        net, x, y = problem(m)
        t0 = time.perf_counter()
        _, cert = convex.solve_layer(net, 1, x, y, lam=LAM, method="full")
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, active = convex.solve_layer(net, 1, x, y, lam=LAM)
        active_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        plain = solve_plain_single_neuron(x[:, 0], y, LAM)
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
               "active_objective": active["objective"], "active_seconds": active_seconds,
               "active_knots": active["knots"][0], "uniform": uniform}
        rows.append(row)
        print(f"M = {m:6d}: data grid {cert['objective']:.10g} ({ours:.2f} s, gap "
              f"{cert['gap']:.1e}, {cert['knots'][0]} knots); plain {plain['objective']:.10g} "
              f"({plain['status']}, {plain_seconds:.2f} s); relative difference "
              f"{row['relative_difference']:.1e}; plain / ours {row['ratio_plain_over_ours']:.2f}x;"
              f" uniform K=641 above by {uniform[-1]['above_data_grid']:.3g}; active set "
              f"{active['objective']:.10g} ({active_seconds:.2f} s, {active['knots'][0]} knots)",
              flush=True)
    return rows


def bench_path(m: int = 5000) -> dict:
    net, x, y = problem(m)
    lams = np.geomspace(0.05, 5.0, 8)
    t0 = time.perf_counter()
    convex.solve_path(net, 1, x, y, lams, method="full")
    path = time.perf_counter() - t0
    t0 = time.perf_counter()
    for lam in lams:
        convex.solve_layer(net, 1, x, y, lam=lam, method="full")
    separate = time.perf_counter() - t0
    t0 = time.perf_counter()
    convex.solve_path(net, 1, x, y, lams)             # active set, warm-started per lambda
    active = time.perf_counter() - t0
    _, _, z, a_mat, c = convex.prepare(net, 1, x, y, "squared")
    prob = CoefficientProblem(z, a_mat, c, y[:, None], "squared", "tv2",
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
           "compile_cached_seconds": compile_again, "active_path_seconds": active}
    print(f"lambda path ({len(lams)} lambdas, M = {m}): compiled once {path:.2f} s, "
          f"recompiled each time {separate:.2f} s, speed-up {out['speedup']:.2f}x "
          f"(compile {compile_first:.3f} s first, {compile_again:.3f} s cached); active-set "
          f"path {active:.2f} s", flush=True)
    return out


def network_problem(n: int, m: int):
    """(net, x, y) of the "networks" part: a random 2-n-1 spline network, seed 0."""
    rng = np.random.default_rng(0)
    net = random_net([2, n, 1], "spline", 0, size=21)
    x = rng.normal(size=(m, 2))
    return net, x, targets(net, x, "squared", rng)[:, 0]


def bench_networks(ns, m: int, full_ns) -> list:
    """The active-set method against the full data-grid solve on 2-N-1 networks."""
    net, x, y = network_problem(2, 200)               # warm-up: imports, first compile
    convex.solve_layer(net, 1, x, y, lam=NETWORK_LAM)
    convex.solve_layer(net, 1, x, y, lam=NETWORK_LAM, method="full")
    rows = []
    for n in ns:
        net, x, y = network_problem(n, m)
        t0 = time.perf_counter()
        _, cert = convex.solve_layer(net, 1, x, y, lam=NETWORK_LAM)
        seconds = time.perf_counter() - t0
        row = {"N": n, "M": m, "seconds": seconds, "objective": cert["objective"],
               "objective_check": cert["objective_check"], "gap": cert["gap"],
               "rounds": cert["rounds"], "points_per_neuron": cert["points_per_neuron"],
               "candidate_points": cert["candidate_points"], "knots": cert["knots"],
               "knots_unpolished": cert["knots_unpolished"], "polish": cert["polish"],
               "worst_violation": cert["worst_violation"],
               "multiplier_noise": cert["multiplier_noise"],
               "goal_seconds": GOALS.get(n), "full": None}
        text = (f"N = {n:2d}, M = {m}: active set {seconds:6.2f} s"
                + (f" (goal {GOALS[n]:g} s)" if n in GOALS else "")
                + f", {cert['rounds']} rounds, points per neuron {min(cert['points_per_neuron'])}"
                f"-{max(cert['points_per_neuron'])}, knots {sum(cert['knots'])} "
                f"({sum(cert['knots_unpolished'])} before polishing), objective "
                f"{cert['objective']:.10g}, worst violation {cert['worst_violation']:.1e}")
        if n in full_ns:
            t0 = time.perf_counter()
            _, full = convex.solve_layer(net, 1, x, y, lam=NETWORK_LAM, method="full")
            full_seconds = time.perf_counter() - t0
            rel = (cert["objective"] - full["objective"]) / abs(full["objective"])
            row["full"] = {"seconds": full_seconds, "objective": full["objective"],
                           "gap": full["gap"], "knots": full["knots"],
                           "relative_difference": rel, "ratio_full_over_active":
                           full_seconds / seconds, "within_rtol": abs(rel) <= OBJECTIVE_RTOL}
            text += (f"; full {full_seconds:.1f} s, objective {full['objective']:.10g}, "
                     f"relative difference {rel:.1e}, full / active {full_seconds / seconds:.1f}x")
        rows.append(row)
        print(text, flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="sizes,path,networks")
    parser.add_argument("--sizes", default="1000,5000,20000")
    parser.add_argument("--networks", default="1,2,8,16")
    parser.add_argument("--samples", type=int, default=8000)
    parser.add_argument("--full", default="1,2",
                        help="N for which the full data-grid solve is also timed")
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "bench_convex.json"))
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    ints = lambda text: [int(v) for v in text.split(",") if v]      # noqa: E731
    record = {"machine": platform.platform(), "python": platform.python_version(),
              "load_average": list(os.getloadavg()), "lambda": LAM}
    if "sizes" in parts:
        record["sizes"] = bench_sizes(ints(args.sizes))
    if "path" in parts:
        record["path"] = bench_path()
    if "networks" in parts:
        record["networks"] = {"lambda": NETWORK_LAM, "rows": bench_networks(
            ints(args.networks), args.samples, ints(args.full))}
    record["load_average_end"] = list(os.getloadavg())
    write_record(record, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
