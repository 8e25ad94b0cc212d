"""The Lipschitz ladder: every method by name, run with one convention for the results.

Each method returns a dict with at least `value` (a float, or None with a `reason` when the
method does not apply or could not certify a number) and `seconds`.  For every network and p
(in exact arithmetic):
    lower <= exact <= layerwise <= theorem1 <= theorem1_bv2,
    lower <= exact <= lipsdp_neuron <= lipsdp_layer,
where lower and the MILP form of exact are taken over the box [-R, R]^N_0 and the others over
R^N_0 (lipsdp: p = 2 only; exact: 1-D inputs, or p in {1, inf} with a small network).
"""
from __future__ import annotations

import time

import numpy as np

from reference import exact as exact_mod
from reference import lipschitz, lipsdp
from reference.network import Network

METHODS = ("lower", "exact", "lipsdp_neuron", "lipsdp_layer", "layerwise", "theorem1",
           "theorem1_bv2")


def parse_methods(text) -> list:
    """'a,b' or a list -> method names in ladder order; unknown names: ValueError."""
    names = [m.strip() for m in (text.split(",") if isinstance(text, str) else text)]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise ValueError(f"methods: expected names from {list(METHODS)}, got {unknown or text!r}")
    return [m for m in METHODS if m in names]


def _lower(net, p, box, options):
    r = lipschitz.lower(net, p, box=box, seed=options.get("seed", 0))
    return {"value": r["value"], "jacobian_norm": r["jacobian_norm"],
            "pair_ratio": r["pair_ratio"], "x": r["x"].tolist(),
            "x_pair": r["x_pair"].tolist(),
            "points_evaluated": r["points_evaluated"], "seed": r["seed"],
            "domain": f"box [-{box:g}, {box:g}]^{net.n_in}"}


def _exact(net, p, box, options):
    if net.n_in == 1:
        r = exact_mod.exact_1d(net, p)
        return {"value": r["value"], "certified_exact": True, "pieces": r["pieces"],
                "linear_pieces": r["linear_pieces"], "argmax_point": r["argmax_point"],
                "domain": r["domain"], "method": "breakpoint propagation"}
    if p == 2.0:
        raise exact_mod.NotApplicable("exact for p = 2 needs a 1-D input (breakpoint "
                                      "propagation); the MILP covers p = 1 and inf")
    r = exact_mod.exact_milp(net, p, box=box,
                             max_binaries=options.get("max_binaries", exact_mod.MAX_BINARIES),
                             time_limit=options.get("time_limit", exact_mod.TIME_LIMIT))
    out = {k: v for k, v in r.items() if k not in ("witness_x", "seconds")}
    out["witness_x"] = np.asarray(r["witness_x"]).tolist()
    out["method"] = "MILP (scipy.optimize.milp, HiGHS)"
    if not r["certified_exact"]:
        out["reason"] = ("the optimal activation pattern has no interior point in the box: "
                         "the value is an upper bound, not attained")
    return out


def _lipsdp(variant):
    def run(net, p, box, options):
        if p != 2.0:
            raise exact_mod.NotApplicable("LipSDP bounds the l2 constant only (p = 2)")
        r = lipsdp.lipsdp(net, variant, options.get("solver", lipsdp.DEFAULT_SOLVER))
        return {k: v for k, v in r.items() if k not in ("seconds",)}
    return run


def _closed_form(function):
    def run(net, p, box, options):
        return {"value": function(net, p), "domain": "R^N_0"}
    return run


RUNNERS = {"lower": _lower, "exact": _exact, "lipsdp_neuron": _lipsdp("neuron"),
           "lipsdp_layer": _lipsdp("layer"), "layerwise": _closed_form(lipschitz.layerwise),
           "theorem1": _closed_form(lipschitz.theorem1),
           "theorem1_bv2": _closed_form(lipschitz.theorem1_bv2)}


def run_method(name: str, net: Network, p=2, box: float = 1.0, **options) -> dict:
    """One method's result: value and seconds; value None with a reason when the method
    does not apply (NotApplicable) or did not reach a certified optimum (solver status)."""
    parse_methods([name])
    p = lipschitz.parse_p(p)
    t0 = time.perf_counter()
    try:
        out = RUNNERS[name](net, p, box, options)
    except (exact_mod.NotApplicable, RuntimeError) as exc:   # RuntimeError: MILP, LipSDP
        out = {"value": None, "reason": str(exc)}
    out["seconds"] = time.perf_counter() - t0
    return out


def ladder(net: Network, p=2, box: float = 1.0, methods=METHODS, **options) -> dict:
    """{method: result} for the chosen methods, in ladder order (see the module docstring)."""
    lipschitz.check_finite(net)
    box = float(box)
    if not (np.isfinite(box) and box > 0):
        raise ValueError(f"box: expected a positive finite half-width, got {box!r}")
    return {name: run_method(name, net, p, box, **options) for name in parse_methods(methods)}


def best_lower(results: dict) -> float | None:
    """The best lower bound among the results: the sampled one, or the exact value when it is
    attained (certified)."""
    values = [results.get("lower", {}).get("value")]
    ex = results.get("exact", {})
    if ex.get("certified_exact"):
        values.append(ex.get("value"))
    values = [v for v in values if v is not None]
    return max(values) if values else None


def order_violations(results: dict, rtol: float = 1e-6) -> list:
    """The pairs (a, b) of the ladder with a > b * (1 + rtol) among the available values:
    lower <= exact <= layerwise <= theorem1 <= theorem1_bv2, lipsdp_* >= lower and exact,
    lipsdp_neuron <= lipsdp_layer.  (LipSDP against layerwise is reported, not asserted.)"""
    chain = [("lower", "exact"), ("exact", "layerwise"), ("lower", "layerwise"),
             ("layerwise", "theorem1"), ("theorem1", "theorem1_bv2"),
             ("lower", "lipsdp_neuron"), ("exact", "lipsdp_neuron"),
             ("lipsdp_neuron", "lipsdp_layer"), ("lower", "lipsdp_layer")]
    bad = []
    for a, b in chain:
        va = results.get(a, {}).get("value")
        vb = results.get(b, {}).get("value")
        if va is not None and vb is not None and va > vb * (1 + rtol):
            bad.append((a, b, va, vb))
    return bad
