"""Verify the representer theorem numerically (DESIGN section 2):

- reduction: replacing every spline by its interpolant through its values at the neuron's
  pre-activations on the data (plus 0 and 1 for BV2) keeps the outputs at the data (1e-10
  relative), does not increase TV2 or Lip of any neuron, nor BV2 when 0 and 1 are included
  (without them sigma(0) and sigma(1) may change, so BV2 may grow), and leaves <= M - 2 knots (TV2)
  or <= M (BV2); the interpolant's R equals the minimal-R interpolation LP's optimum;
- exactness (one spline layer, affine map after it, weights fixed): the data-grid optimum is
  <= the optimum on uniform grids of growing size, on random grids, and equal to it on grids
  that contain the data points; the uniform optima on nested grids decrease towards it;
- with L_max: the same, and every returned spline has Lip <= L_max;
- classification at data-set scale (logistic on a trained circle network, 1500 samples;
  cross-entropy on a random 2-3-3 network, 1500 samples): the active set's certified
  optimum (Newton-refined multipliers), at most M - 2 knots per neuron, all at data points,
  objective <= the network's.

Random and trained networks.  Prints a table (check, instances, passed, worst margin), writes
a JSON report, exits 1 on any violation.

    python -m theory_checks.representer [--quick] [--json-out PATH]

Margins are relative slacks (negative: violated).  Tolerances: outputs 1e-10; TV2 / BV2 /
Lip 1e-9 (the interpolant's slopes are recomputed from values in float64); solver optima
CHECK_RTOL = 1e-6 relative (each optimum is certified by its NumPy re-evaluation to that
tolerance, see reference.convex).
"""
from __future__ import annotations

import sys
import time

import numpy as np

from reference.convex import _solve as convex
from reference.convex._problem import CHECK_RTOL, numpy_objective
from reference.convex._representer import interpolation_lp, reduce_network
from reference.data import _datasets as datasets
from reference.testing import REDUCTION_OUTPUT_RTOL as OUT_RTOL
from reference.testing import loss_targets as targets
from reference.testing import random_net
from reference.training._experiments import run_training
from theory_checks._report import Report, main_for

NORM_RTOL, OPT_RTOL = 1e-9, CHECK_RTOL


def reduction_instances(quick):
    seeds = range(2) if quick else range(6)
    m = 60 if quick else 300
    for seed in seeds:
        rng = np.random.default_rng(100 + seed)
        for widths in ([2, 5, 4, 2], [1, 6, 6, 1], [3, 4, 1]):
            x = rng.normal(size=(m, widths[0])) * 1.5
            yield f"random {'-'.join(map(str, widths))} seed {seed}", \
                random_net(widths, "spline", seed, size=11), x
    net, _ = run_training("circle", "spline", [4], epochs=5 if quick else 50)
    ds = datasets.load("circle", seed=0)
    yield "trained circle 2-4-1", net, ds.x_train[: (100 if quick else 1500)]


def exactness_instances(quick):
    """(name, net, layer, x, y, loss): one spline hidden layer, affine after it."""
    seeds = range(1) if quick else range(3)
    m = 40 if quick else 150
    for seed in seeds:
        rng = np.random.default_rng(200 + seed)
        for widths, loss in (([1, 1, 1], "squared"), ([2, 3, 1], "squared"),
                             ([2, 2, 1], "logistic"), ([2, 2, 3], "xent")):
            net = random_net(widths, "spline", seed, size=11)
            x = rng.normal(size=(m, widths[0]))
            yield (f"random {'-'.join(map(str, widths))} {loss} seed {seed}", net, 1, x,
                   targets(net, x, loss, rng), loss)
    net, _ = run_training("circle", "spline", [2], epochs=5 if quick else 50)
    ds = datasets.load("circle", seed=0)
    k = 60 if quick else 300
    yield "trained circle 2-2-1 logistic", net, 1, ds.x_train[:k], ds.y_train[:k], "logistic"


def check_reduction(report, quick):
    for name, net, x in reduction_instances(quick):
        for reg in ("tv2", "bv2"):
            new, rep = reduce_network(net, x, reg)
            tag = f"{name} {reg}"
            report.check("reduction: outputs unchanged (1e-10 rel)",
                         OUT_RTOL - rep["max_output_change"], tag)
            limit = len(x) - 2 if reg == "tv2" else len(x)
            for r in rep["neurons"]:
                where = f"{tag} layer {r['layer']} neuron {r['neuron']}"
                # BV2 involves sigma(0), sigma(1): kept only when 0 and 1 are grid points
                for key in ("tv2", "lipschitz") + (("bv2",) if reg == "bv2" else ()):
                    before, after = r[f"{key}_before"], r[f"{key}_after"]
                    report.check(f"reduction: {key} not increased",
                                 (before - after) / max(before, 1e-300) if before > 0
                                 else -after, where, NORM_RTOL)
                report.check("reduction: knots <= M - 2 (tv2) or M (bv2)",
                             (limit - r["knots_after"]) / limit, where)
            # the interpolant is a minimal-R interpolant: LP optimum = its R
            layer = next(i for i, l in enumerate(new.layers) if l.kind == "knot_spline")
            ks = new.layers[layer]
            lp = interpolation_lp(ks.points[0], ks.values[0], reg)
            own = float((ks.spline.tv2() if reg == "tv2" else ks.spline.bv2())[0])
            report.check("interpolation LP optimum == interpolant's R",
                         -abs(lp["objective"] - own) / max(1.0, own), tag, OPT_RTOL)
            report.records.append({"check": "reduction", "instance": tag,
                                   "max_output_change": rep["max_output_change"]})


def check_exactness(report, quick, lip_max=None):
    label = "" if lip_max is None else " (Lip <= L_max)"
    sizes = (5, 9, 17, 33) if quick else (5, 9, 17, 33, 65, 129)
    for name, net, layer, x, y, loss in exactness_instances(quick):
        for reg in ("tv2", "bv2"):
            tag = f"{name} {reg}"
            lam = 0.05
            kw = dict(loss=loss, lam=lam, reg=reg, lip_max=lip_max)
            _, data = convex.solve_layer(net, layer, x, y, grid="data", **kw)
            best = data["objective"]
            lips = [data["lipschitz"]]
            previous = None
            for k in sizes:                       # nested grids: (k - 1) doubles
                _, uni = convex.solve_layer(net, layer, x, y, grid="uniform", size=k, **kw)
                lips.append(uni["lipschitz"])
                report.check(f"data-grid optimum <= uniform grids{label}",
                             (uni["objective"] - best) / max(1.0, abs(best)), f"{tag} K={k}",
                             OPT_RTOL)
                if previous is not None:
                    report.check(f"uniform optima decrease as the grid is refined{label}",
                                 (previous - uni["objective"]) / max(1.0, abs(best)),
                                 f"{tag} K={k}", OPT_RTOL)
                previous = uni["objective"]
            report.records.append({"check": "exactness" + label, "instance": tag,
                                   "data_grid": best, "finest_uniform": previous,
                                   "gap_to_finest": previous - best})
            _, _, z, _, _ = convex.prepare(net, layer, x, y, loss)
            rng = np.random.default_rng(7)
            spread = [(z[:, n].min() - 1, z[:, n].max() + 1) for n in range(z.shape[1])]
            random_grid = [np.sort(rng.uniform(lo, hi, 25)) for lo, hi in spread]
            _, rnd = convex.solve_layer(net, layer, x, y, grid=random_grid, **kw)
            lips.append(rnd["lipschitz"])
            report.check(f"data-grid optimum <= random grids{label}",
                         (rnd["objective"] - best) / max(1.0, abs(best)), tag, OPT_RTOL)
            grids = convex.data_grid(z, reg)
            super_grid = [np.concatenate([g, r]) for g, r in zip(grids, random_grid)]
            _, sup = convex.solve_layer(net, layer, x, y, grid=super_grid, **kw)
            lips.append(sup["lipschitz"])
            report.check(f"grid containing the data: optimum equal{label}",
                         -abs(sup["objective"] - best) / max(1.0, abs(best)), tag,
                         2 * OPT_RTOL)
            if lip_max is not None:
                worst = max(max(v) for v in lips)
                report.check("every returned spline has Lip <= L_max", (lip_max - worst)
                             / lip_max, tag, OPT_RTOL)


def classification_instances(quick):
    """(name, net, x, y, loss, lams): the classification losses at data-set scale, solved
    by the active set with its Newton refinement (issue 20): a trained circle 2-2-1
    network (logistic, 1500 samples; 400 quick) and a random 2-3-3 network with labels
    drawn from its own softmax (cross-entropy, 1500 samples; 300 quick)."""
    m = 400 if quick else 1500
    net, _ = run_training("circle", "spline", [2], epochs=5 if quick else 50)
    ds = datasets.load("circle", seed=0)
    yield "trained circle 2-2-1 logistic", net, ds.x_train[:m], ds.y_train[:m], "logistic", \
        (1e-2, 1e-1)
    rng = np.random.default_rng(300)
    net = random_net([2, 3, 3], "spline", 3, size=11)
    m = 300 if quick else 1500
    x = rng.normal(size=(m, 2))
    yield "random 2-3-3 xent", net, x, targets(net, x, "xent", rng), "xent", (0.1, 1.0)


def check_classification(report, quick):
    """Representer checks of the certified optimum at data-set scale: status optimal, at
    most M - 2 knots per neuron, every knot at a data point, objective <= the given
    network's, multipliers refined (noise <= 1e-9), and the knot count's bracket closed or
    reported (the record holds it)."""
    for name, net, x, y, loss, lams in classification_instances(quick):
        _, _, z, _, _ = convex.prepare(net, 1, x, y, loss)
        for lam in lams:
            tag = f"{name} lambda {lam:g}"
            try:
                new, cert = convex.solve_layer(net, 1, x, y, loss=loss, lam=lam, reg="tv2")
            except convex.SolveFailed as exc:
                report.check("classification: certified optimal (active set)", -1.0, tag)
                report.records.append({"check": "classification", "instance": tag,
                                       "error": str(exc)[:300]})
                continue
            report.check("classification: certified optimal (active set)",
                         0.0 if cert["status"] == "optimal" else -1.0, tag)
            report.check("classification: multipliers refined (noise <= 1e-9)",
                         (1e-9 - cert["multiplier_noise"]) / 1e-9, tag)
            layer = new.layers[1]
            trained = numpy_objective(net, 1, x, y, loss, lam, "tv2")
            report.check("classification: optimum <= the network's objective",
                         (trained - cert["objective_check"]) / max(1.0, abs(trained)), tag,
                         OPT_RTOL)
            for n in range(z.shape[1]):
                where = f"{tag} neuron {n}"
                spline = layer.spline
                knots = spline.knots[n][np.abs(spline.jumps[n]) > cert["knot_rule"]
                                        ["threshold"][n]]
                report.check("classification: knots <= M - 2", (len(x) - 2 - len(knots))
                             / (len(x) - 2), where)
                report.check("classification: knots at data points",
                             0.0 if np.isin(knots, z[:, n]).all() else -1.0, where)
            report.records.append({"check": "classification", "instance": tag,
                                   "status": cert["status"], "knots": cert["knots"],
                                   "knots_bracket": cert["knots_bracket"],
                                   "seconds": cert["seconds"],
                                   "objective": cert["objective_check"],
                                   "network_objective": trained})


def run(quick: bool, json_out: str) -> int:
    t0 = time.perf_counter()
    report = Report("representer")
    check_reduction(report, quick)
    check_exactness(report, quick)
    check_exactness(report, quick, lip_max=1.0)
    check_classification(report, quick)
    seconds = time.perf_counter() - t0
    profile = "quick" if quick else "full"
    report.print_table(f"Representer-theorem checks ({profile} profile, {seconds:.0f} s)")
    return report.finish(json_out, {"profile": profile, "seconds": seconds,
                                    "tolerances": {"outputs": OUT_RTOL, "norms": NORM_RTOL,
                                                   "optima": OPT_RTOL}})


def main(argv=None) -> int:
    return main_for("representer", __doc__, run, argv)


if __name__ == "__main__":
    sys.exit(main())
