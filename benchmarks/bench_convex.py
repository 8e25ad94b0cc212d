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
Part "one_neuron" (issue 20 item 3): the single-neuron problem of "sizes" for M in
--curve (default 10^3 .. 10^6) solved by the default method (one neuron: "one_neuron",
reference.convex._one_neuron) against a plain cvxpy slope formulation (values u and slopes
s, u_{i+1} - u_i = h_i s_i, 1/2 |u[index] - y|^2 + lambda |diff(s)|_1, CLARABEL defaults:
what a user would write) and, for M <= 20 000, the general active set and method "full",
each --repeats times (medians): wall and CPU seconds, status, certificate gap (objective -
the NumPy dual lower bound) and tolerance, knots and the smallest counted slope change,
peak memory (tracemalloc, in a separate run of each).  Plain cvxpy is skipped where its
time or memory, extrapolated linearly from the largest M it ran at, would exceed 60 s or
4 GB (the record says so).  Goals: M = 20 000 at most plain cvxpy's time with the same
knots; M = 10^6 certified in <= 10 s.  The curve is drawn to --png.

    python benchmarks/bench_convex.py [--parts sizes,path,networks,one_neuron]
        [--sizes 1000,5000,20000] [--networks 1,2,8,16] [--samples 8000] [--full 1,2]
        [--curve 1000,10000,20000,100000,1000000] [--repeats 3] [--png PATH] [--out PATH]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import tracemalloc
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
        _, active = convex.solve_layer(net, 1, x, y, lam=LAM, method="active")
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
    convex.solve_path(net, 1, x, y, lams, method="active")   # warm-started per lambda
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
    convex.solve_layer(net, 1, x, y, lam=NETWORK_LAM, method="active")
    convex.solve_layer(net, 1, x, y, lam=NETWORK_LAM, method="full")
    rows = []
    for n in ns:
        net, x, y = network_problem(n, m)
        t0 = time.perf_counter()
        _, cert = convex.solve_layer(net, 1, x, y, lam=NETWORK_LAM, method="active")
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


PLAIN_LIMITS = (60.0, 4e9)          # plain cvxpy skipped beyond these predicted seconds, bytes


def solve_plain_slopes(z, y, lam):
    """The plain cvxpy slope formulation (module docstring); (status, objective)."""
    import cvxpy as cp
    import scipy.sparse as sp

    g, index = np.unique(z, return_inverse=True)
    u, s = cp.Variable(len(g)), cp.Variable(len(g) - 1)
    pick = sp.csr_array((np.ones(len(z)), (np.arange(len(z)), index)), shape=(len(z), len(g)))
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(pick @ u - y)
                                     + lam * cp.norm1(cp.diff(s))),
                         [cp.diff(u) == cp.multiply(np.diff(g), s)])
    problem.solve(solver="CLARABEL")
    return problem.status, problem.value


def _timed(call, repeats):
    """(last result, median wall seconds, median CPU seconds, peak bytes of one more run)."""
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = call()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    tracemalloc.start()
    call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, statistics.median(walls), statistics.median(cpus), peak


def _smallest_knot(model):
    """The smallest counted |slope change| of the returned one-neuron spline."""
    jumps = np.abs(np.diff(model.layers[1].slopes[0]))
    return float(jumps.min()) if jumps.size else None


def bench_one_neuron(sizes, repeats: int) -> dict:
    """The one-neuron curve (module docstring)."""
    net, x, y = problem(50)                          # warm-up: imports, first compile
    convex.solve_layer(net, 1, x, y, lam=LAM)
    solve_plain_slopes(x[:, 0], y, LAM)
    rows, plain_last = [], None
    for m in sizes:
        net, x, y = problem(m)
        (model, cert), wall, cpu, peak = _timed(
            lambda: convex.solve_layer(net, 1, x, y, lam=LAM), repeats)
        row = {"M": m, "method": cert["method"], "seconds": wall, "cpu_seconds": cpu,
               "peak_bytes": peak, "status": cert["status"], "objective": cert["objective"],
               "certificate_gap": cert["objective"] - cert["lower_bound"],
               "gap_tolerance": cert["gap_tolerance"], "knots": cert["knots"][0],
               "knots_unpolished": cert["knots_unpolished"][0],
               "knot_tolerance": cert["knot_tolerance"][0],
               "smallest_knot": _smallest_knot(model), "rounds": cert["rounds"],
               "plain": None, "active": None, "full": None}
        predicted = None if plain_last is None else (
            plain_last["seconds"] * m / plain_last["M"], plain_last["peak_bytes"] * m /
            plain_last["M"])
        if predicted is not None and (predicted[0] > PLAIN_LIMITS[0]
                                      or predicted[1] > PLAIN_LIMITS[1]):
            row["plain"] = {"skipped": f"predicted {predicted[0]:.0f} s, "
                            f"{predicted[1] / 1e9:.1f} GB (limits {PLAIN_LIMITS[0]:g} s, "
                            f"{PLAIN_LIMITS[1] / 1e9:g} GB)"}
        else:
            (status, value), p_wall, p_cpu, p_peak = _timed(
                lambda: solve_plain_slopes(x[:, 0], y, LAM), repeats)
            row["plain"] = plain_last = {"M": m, "status": status, "objective": value,
                                         "seconds": p_wall, "cpu_seconds": p_cpu,
                                         "peak_bytes": p_peak,
                                         "ratio_plain_over_ours": p_wall / wall}
        for key, method in (("active", "active"), ("full", "full")):
            if m <= 20_000:
                w0 = time.perf_counter()
                _, other = convex.solve_layer(net, 1, x, y, lam=LAM, method=method)
                row[key] = {"seconds": time.perf_counter() - w0, "knots": other["knots"][0],
                            "objective": other["objective"], "status": other["status"]}
        rows.append(row)
        plain = row["plain"]
        print(f"M = {m:8d}: {cert['method']} {wall:6.2f} s (CPU {cpu:.2f} s), {cert['status']},"
              f" gap {row['certificate_gap']:.2e} (tolerance {row['gap_tolerance']:.2e}), "
              f"{row['knots']} knots (smallest {row['smallest_knot']:.3g}), peak "
              f"{peak / 1e6:.0f} MB; plain cvxpy " + (
                  plain["skipped"] if "skipped" in plain else
                  f"{plain['seconds']:.2f} s ({plain['status']}, {plain['objective']:.10g}, peak"
                  f" {plain['peak_bytes'] / 1e6:.0f} MB), plain / ours "
                  f"{plain['ratio_plain_over_ours']:.2f}x") + "".join(
                  f"; {k} {row[k]['seconds']:.2f} s, {row[k]['knots']} knots"
                  for k in ("active", "full") if row[k]), flush=True)
    return {"lambda": LAM, "repeats": repeats, "plain_limits": PLAIN_LIMITS, "rows": rows}


def plot_one_neuron(result: dict, path) -> None:
    """Seconds against M, ours beside plain cvxpy's (log-log), to a PNG (atomically)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reference.io import atomic_write

    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.loglog([r["M"] for r in rows], [r["seconds"] for r in rows], "o-",
              label="solve_layer (one-neuron method), certified")
    ran = [r for r in rows if "seconds" in r["plain"]]
    ax.loglog([r["M"] for r in ran], [r["plain"]["seconds"] for r in ran], "s--",
              label="plain cvxpy slope formulation (CLARABEL)")
    for r in rows:
        if "skipped" in r["plain"]:
            ax.axvline(r["M"], color="grey", lw=0.5)
            ax.annotate("plain cvxpy\nskipped", (r["M"], rows[0]["seconds"]), fontsize=7,
                        ha="right")
    ax.set_xlabel("samples M")
    ax.set_ylabel("seconds (median)")
    ax.set_title(f"One spline neuron, squared loss, TV2, lambda {result['lambda']:g}")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", lw=0.3)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=120,
                                                  bbox_inches="tight"), "--png")
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="sizes,path,networks")
    parser.add_argument("--sizes", default="1000,5000,20000")
    parser.add_argument("--networks", default="1,2,8,16")
    parser.add_argument("--samples", type=int, default=8000)
    parser.add_argument("--full", default="1,2",
                        help="N for which the full data-grid solve is also timed")
    parser.add_argument("--curve", default="1000,10000,20000,100000,1000000",
                        help="M of the one_neuron part")
    parser.add_argument("--repeats", type=int, default=3, help="one_neuron part: medians of")
    parser.add_argument("--png", default=str(Path(__file__).parent / "out"
                                             / "bench_convex_one_neuron.png"))
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
    if "one_neuron" in parts:
        record["one_neuron"] = bench_one_neuron(ints(args.curve), args.repeats)
        plot_one_neuron(record["one_neuron"], args.png)
        print(f"wrote {args.png}")
    record["load_average_end"] = list(os.getloadavg())
    write_record(record, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
