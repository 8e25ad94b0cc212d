"""Verify the Lipschitz ladder on many networks:

    lower <= exact <= layerwise <= theorem1 <= theorem1_bv2   and   lipsdp >= lower,
    lower, exact <= lipsdp_neuron <= eclipse, eclipse_fast   and   eclipse_fast <= layerwise

for p in {1, 2, inf}, on random spline networks (1-D and multi-D inputs, several depths and
widths), random ReLU / LeakyReLU / PReLU networks and networks trained by
`reference.training.train`; for 1-D inputs the exact value must also agree with a dense
scan of the function.  Prints a table (check, instances, passed, worst margin) and the
tightness of every method (value / best lower bound: median and worst; the best lower bound
is the exact value when it is attained, else the sampled one), writes a JSON report, exits 1
on any violation.

    python -m theory_checks.lipschitz_bound [--quick] [--json-out PATH]

Margins are relative slacks, b / a - 1 for a check a <= b (negative: violated); a check
passes when the margin is >= -RTOL (RTOL = 1e-9: the bounds are computed in float64 and
LipSDP's value is certified in NumPy, so only rounding may separate equal quantities;
where lipsdp_neuron must be below, its stated accuracy a is added, a / (1 - a), as in
`order_violations`).  ECLipsE's multipliers are LipSDP-neuron multipliers (so it is never
below LipSDP-neuron's optimum) and ECLipsE-Fast is never above the layer-wise bound (both
theorems, reference.lipschitz._eclipse); ECLipsE <= ECLipsE-Fast and ECLipsE <= layer-wise
are NOT theorems (greedy stages): they are counted and reported, not checked.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from reference.io._files import jsonable
from reference.io._model_file import network_from_mat
from reference.lipschitz import _ladder as ladder
from reference.lipschitz import _methods as registry
from reference.testing import random_net
from reference.training._experiments import run_training
from theory_checks._report import Report, main_for

RTOL = 1e-9
ANCHOR = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "lipsdp_random_weights.mat"
PAIRS = [("lower", "exact"), ("exact", "layerwise"), ("lower", "layerwise"),
         ("layerwise", "theorem1"), ("theorem1", "theorem1_bv2"), ("lower", "lipsdp_neuron"),
         ("lower", "lipsdp_layer"), ("exact", "lipsdp_neuron"), ("lipsdp_neuron", "lipsdp_layer"),
         ("lower", "eclipse"), ("exact", "eclipse"), ("lipsdp_neuron", "eclipse"),
         ("lower", "eclipse_fast"), ("exact", "eclipse_fast"), ("lipsdp_neuron", "eclipse_fast"),
         ("eclipse_fast", "layerwise")]
# reported, not checked: not theorems (value of a / value of b, median and worst)
REPORTED = [("eclipse", "eclipse_fast"), ("eclipse", "layerwise"), ("lipsdp_neuron", "eclipse"),
            ("lipsdp_neuron", "eclipse_fast")]


def instances(quick: bool):
    """(name, network) pairs of the chosen profile."""
    seeds = range(2) if quick else range(5)
    shapes_1d = [[1, 6, 5, 1], [1, 8, 8, 2]] + ([] if quick else [[1, 10, 10, 10, 3]])
    shapes_nd = [[2, 6, 5, 2], [3, 5, 1]] + ([] if quick else [[2, 8, 8, 8, 2], [4, 10, 3]])
    for seed in seeds:
        for widths in shapes_1d + shapes_nd:
            for act in ("spline", "relu", "leaky_relu", "prelu"):
                if act != "spline" and widths[0] == 1 and seed > 0:
                    continue
                yield f"{act} {'-'.join(map(str, widths))} seed {seed}", \
                    random_net(widths, act, seed, size=7 if quick else 11)
    epochs, hidden = (5, [3]) if quick else (100, [6])
    for act in ("spline", "relu"):
        net, _ = run_training("circle", act, hidden, epochs=epochs, size=9 if quick else 21)
        yield f"trained {act} circle 2-{hidden[0]}-1 ({epochs} epochs)", net
    if not quick and ANCHOR.exists():
        yield "anchor LipSDP 2-10-30-20-2 (ReLU)", network_from_mat(ANCHOR)


def dense_scan(net, breakpoints, points: int) -> tuple[float, float]:
    """(max ||f(x_{i+1}) - f(x_i)||_2 / (x_{i+1} - x_i), its rounding bound) on a uniform
    grid covering every breakpoint with a margin of 1 (1-D input).  The rounding bound is
    an estimate, 8 eps max|f| sqrt(N_L) / dx for the error of each difference of computed
    outputs (a deep forward pass can do a little worse, hence the check's RTOL on top)."""
    lo = (breakpoints.min() if len(breakpoints) else 0.0) - 1.0
    hi = (breakpoints.max() if len(breakpoints) else 0.0) + 1.0
    x = np.linspace(lo, hi, points)
    f = net.forward(x[:, None])
    quotient = np.linalg.norm(np.diff(f, axis=0), axis=1) / np.diff(x)
    rounding = 8 * np.finfo(float).eps * np.abs(f).max() * np.sqrt(f.shape[1]) / (x[1] - x[0])
    return float(quotient.max()), float(rounding)


def run(quick: bool, json_out: str) -> int:
    t0 = time.perf_counter()
    report = Report("lipschitz_bound")
    ratios = {}                                     # (p, method) -> list of value / best lower
    pair_ratios = {}                                # (a, b) of REPORTED -> list of a / b
    for name, net in instances(quick):
        for p in ("1", "2", "inf"):
            results = ladder.ladder(net, p, box=2.0, time_limit=30.0, max_binaries=300)
            ref = ladder.best_lower(results)
            for a, b in PAIRS:
                va, vb = results[a]["value"], results[b]["value"]
                if va is not None and vb is not None:
                    slack_of = registry.get(a).order_slack      # lipsdp: its accuracy
                    slack = slack_of(results[a]) if slack_of is not None else 0.0
                    report.check(f"{a} <= {b}", (vb / va - 1 + slack) if va > 0 else vb,
                                 f"{name} p={p}", RTOL)
            for a, b in REPORTED:
                va, vb = results[a]["value"], results[b]["value"]
                if va is not None and vb:
                    pair_ratios.setdefault((a, b), []).append(va / vb)
            ex = results["exact"]
            if ex["value"] is not None:
                report.check("exact attained (certified)", 0.0 if ex["certified_exact"]
                             else -1.0, f"{name} p={p}")
            if net.n_in == 1 and p == "2":
                from reference.lipschitz._exact1d import exact_1d
                e = exact_1d(net, 2)
                scan, rounding = dense_scan(net, e["breakpoints"],
                                            200_001 if quick else 2_000_001)
                # secant slopes never exceed the max slope (up to the scan's rounding), and
                # a fine grid approaches it
                report.check("1-D dense scan <= exact (+ scan rounding)",
                             (e["value"] + rounding) / scan - 1, name, RTOL)
                report.check("1-D dense scan >= 0.99 exact", scan / e["value"] - 0.99,
                             name)
            for method, r in results.items():
                if r["value"] is not None and ref:
                    ratios.setdefault((p, method), []).append(r["value"] / ref)
            report.records.append({"instance": name, "p": p, "results": jsonable(results)})
    seconds = time.perf_counter() - t0
    profile = "quick" if quick else "full"
    report.print_table(f"Lipschitz ladder checks ({profile} profile, {seconds:.0f} s)")
    print("Tightness: value / best lower bound (median, worst) over the instances")
    print(f"  {'':14s} " + " ".join(f"{'p=' + p:>19s}" for p in ("1", "2", "inf")))
    print(f"  {'method':14s} " + " ".join(f"{'median':>9s} {'worst':>9s}" for _ in range(3)))
    tightness = {}
    for method in ladder.METHODS:
        cells = []
        for p in ("1", "2", "inf"):
            vals = ratios.get((p, method))
            if vals:
                worst = np.min(vals) if method == "lower" else np.max(vals)
                tightness[f"{method} p={p}"] = {"median": float(np.median(vals)),
                                                "worst": float(worst), "n": len(vals)}
                cells.append(f"{np.median(vals):9.3f} {worst:9.3f}")
            else:
                cells.append(f"{'-':>19s}")
        print(f"  {method:14s} " + " ".join(cells))
    print("Ratios between methods (p = 2; not theorems: reported, not checked)")
    print(f"  {'a / b':30s} {'median':>9s} {'min':>9s} {'max':>9s} {'a > b':>7s}")
    between = {}
    for (a, b), vals in pair_ratios.items():
        between[f"{a} / {b}"] = {"median": float(np.median(vals)), "min": float(np.min(vals)),
                                 "max": float(np.max(vals)), "n": len(vals),
                                 "above": int(np.sum(np.asarray(vals) > 1))}
        print(f"  {a + ' / ' + b:30s} {np.median(vals):9.3f} {np.min(vals):9.3f} "
              f"{np.max(vals):9.3f} {between[f'{a} / {b}']['above']:3d}/{len(vals):<3d}")
    return report.finish(json_out, {"profile": profile, "seconds": seconds, "rtol": RTOL,
                                    "tightness": tightness, "ratios": between})


def main(argv=None) -> int:
    return main_for("lipschitz_bound", __doc__, run, argv)


if __name__ == "__main__":
    sys.exit(main())
