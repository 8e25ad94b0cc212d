"""The Lipschitz ladder: every method by name, run with one convention for the results.

Each method returns a BoundResult (a dict with attribute access; its keys are listed there)
with at least `value` (a float, or None with a `reason` when the method does not apply, is
refused by its size guard (reference._limits), gives a bound outside the float64 range or
could not certify a number (reference.exceptions.SolveFailed)), `kind` and `seconds`.
kind (KINDS) says what the numbers are: "lower" (value <= Lip), "upper" (Lip <= value),
"exact" (value = Lip, certified, with lower_bound <= Lip <= upper_bound) or
"bracket" (an exact method without a certified value: lower_bound <= Lip <= upper_bound,
either end possibly None); the exact methods also give `upper_margin_kind`
(reference.lipschitz._exact.UPPER_MARGIN_KINDS: what their upper end is, for its rounding margin).
The exact method gives a bracket `lower_bound` <= Lip <= `upper_bound` too: both equal to
the value for exact_1d; the attained value and the largest pattern norm + its rounding bound
for regions_2d; the attained witness and HiGHS's bound + its tolerance for the MILP; and
when stopped by its time limit (exact_1d: or max_pieces; regions_2d: or max_regions) or when
it cannot certify its optimum, value None and the bracket alone.  LipSDP reports an
`accuracy` (how far its certified value may sit above the SDP's optimum), used for
lipsdp_neuron <= lipsdp_layer; LipSDP is solved on the network normalised by powers of two
(the same value, scaled, in any units) and never reported above the layer-wise bound
(reference.lipschitz._lipsdp: capped_by_layerwise).  For every network and p (in exact arithmetic):
    lower <= exact <= layerwise <= theorem1 <= theorem1_bv2,
    lower <= exact <= lipsdp_neuron <= lipsdp_layer,
    lipsdp_neuron <= eclipse,  lipsdp_neuron <= eclipse_fast <= layerwise,
where lower and exact (except exact_1d's value) are taken over the box [-R, R]^N_0 and the
others over R^N_0 (lipsdp: p = 2 only; exact: 1-D inputs by breakpoint propagation, over R,
with box_value over the box; 2-D inputs by enumerating the linear regions, every p; otherwise
p in {1, inf} with a small network, by MILP; eclipse, eclipse_fast: p = 2, ECLipsE of Xu and
Sivaranjani, reference.lipschitz._eclipse).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from reference import _limits as limits
from reference.data._datasets import check_count
from reference.exceptions import NotApplicable, OverflowResult, SolveFailed, TooLarge
from reference.lipschitz import _bounds as lipschitz
from reference.lipschitz import _eclipse as eclipse_mod
from reference.lipschitz import _exact as exact_mod
from reference.lipschitz import _exact1d as exact1d
from reference.lipschitz import _lipsdp as lipsdp
from reference.lipschitz import _margins as margins
from reference.lipschitz import _methods as registry
from reference.lipschitz import _milp as milp
from reference.lipschitz import _regions2d as regions2d
from reference.lipschitz._bound_result import BoundResult, LadderResult
from reference.lipschitz._methods import Limit, Method
from reference.nn._network import Network

# views of the method registry (reference.lipschitz._methods), live: the records are
# registered at the end of this module, a later registration shows in them at once
METHODS = registry.METHODS                              # names, in ladder order
LIMITS = registry.LIMITS                                # options: limit -> default
SEARCH = {"num_points": lipschitz.NUM_POINTS, "rounds": lipschitz.ROUNDS}  # lower's defaults
OPTIONS = registry.NameView(lambda: ("solver", "seed", *LIMITS, *SEARCH))


def parse_methods(text) -> list:
    """'a,b' or a list -> method names in ladder order; unknown names: ValueError."""
    names = [m.strip() for m in (text.split(",") if isinstance(text, str) else text)]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise ValueError(f"methods: expected names from {list(METHODS)}, got {unknown or text!r}")
    return [m for m in METHODS if m in names]


def _lower(net, p, box, options):
    r = lipschitz.lower(net, p, box=box, num_points=options["num_points"],
                        rounds=options["rounds"], seed=options["seed"],
                        max_lower_cost=options["max_lower_cost"])
    return {"value": r["value"], "jacobian_norm": r["jacobian_norm"],
            "pair_ratio": r["pair_ratio"], "x": r["x"].tolist(),
            "x_pair": r["x_pair"].tolist(),
            "points_evaluated": r["points_evaluated"], "seed": r["seed"],
            "domain": f"box [-{box:g}, {box:g}]^{net.n_in}"}


def _exact(net, p, box, options):
    """exact_1d (1 input; over R, and exact_1d_on_box over the box), regions_2d (2 inputs,
    every p, over the box) or the MILP (p in {1, inf}, over the box).  kind "exact" when the
    method certified its optimum, else "bracket" (KINDS)."""
    if net.n_in == 1:
        r = exact1d.exact_1d(net, p, max_pieces=options["max_pieces"],
                               time_limit=options["time_limit"])
        out = {k: v for k, v in r.items() if k not in ("breakpoints", "seconds")}
        if r["status"] == "optimal":
            out.update(exact1d.exact_1d_on_box(net, p, box, max_pieces=options["max_pieces"],
                                                 time_limit=options["time_limit"]))
        out["method"] = "breakpoint propagation"
    elif net.n_in == 2:
        r = regions2d.regions_2d(net, p, box=box, max_regions=options["max_regions"],
                                 time_limit=options["time_limit"])
        out = _untimed(r, method="linear regions (polygons)")
    elif p == 2.0:
        raise NotApplicable("exact for p = 2 needs 1 or 2 inputs (breakpoint "
                                      "propagation, linear regions); the MILP covers p = 1 "
                                      "and inf")
    else:
        r = milp.exact_milp(net, p, box=box, max_binaries=options["max_binaries"],
                            time_limit=options["time_limit"])
        out = _untimed(r)
        out["witness_x"] = None if r["witness_x"] is None else np.asarray(r["witness_x"]).tolist()
        out["witness_pair"] = {k: np.asarray(v).tolist() if k in ("x", "x_pair") else v
                               for k, v in r["witness_pair"].items()}
        out["method"] = "MILP (scipy.optimize.milp, HiGHS)"
    if r["status"] != "optimal":
        low, high = ("none" if r[k] is None else f"{r[k]:.6g}"
                     for k in ("lower_bound", "upper_bound"))
        out["reason"] = f"{r['reason']}: no exact value; certified bracket [{low}, {high}]"
    else:
        out["kind"] = "exact"
    return out


def _untimed(result, **extra) -> dict:
    """A method's result without its own ``seconds`` (`run_method` times every method),
    with `extra` keys added."""
    return {**{k: v for k, v in result.items() if k != "seconds"}, **extra}


def _lipsdp(variant):
    def run(net, p, box, options):
        return _untimed(lipsdp.lipsdp(net, variant, options["solver"],
                                      max_sdp_cost=options["max_sdp_cost"]))
    return run


def _eclipse_fast(net, p, box, options):
    return _untimed(eclipse_mod.eclipse_fast(net), domain="R^N_0")


def _eclipse(net, p, box, options):
    return _untimed(eclipse_mod.eclipse(net, options["solver"],
                                        max_sdp_cost=options["max_sdp_cost"]),
                    domain="R^N_0")


def _closed_form(function):
    def run(net, p, box, options):
        return {"value": function(net, p), "domain": "R^N_0"}
    return run


RUNNERS = registry.RUNNERS           # name -> runner (net, p, box, options) -> dict
# what each method's numbers are (module docstring); an exact method is a "bracket" unless
# `_exact` finds its optimum certified
KINDS = registry.METHOD_KINDS


def check_options(options: dict) -> dict:
    """The options with their defaults filled in: solver (LipSDP), seed, num_points and rounds
    (lower; SEARCH: lipschitz.lower's defaults) and the limits LIMITS (each validated: finite
    and > 0); an unknown name is a TypeError."""
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise TypeError(f"options: unknown {sorted(unknown)}, expected names from {list(OPTIONS)}")
    out = {"solver": lipsdp.DEFAULT_SOLVER, "seed": 0, **LIMITS, **SEARCH, **options}
    for name in LIMITS:
        out[name] = limits.check_limit(out[name], name)
    for name, least in (("num_points", 1), ("rounds", 0)):
        out[name] = check_count(out[name], name, least)
    return out


def run_method(name: str, net: Network, p=2, box: float = 1.0, **options) -> BoundResult:
    """One method's result: value, kind (KINDS, or "exact" from `_exact`) and seconds; value
    None with a reason when the method does not apply (NotApplicable), is refused by its size
    guard (TooLarge), gives a bound outside the float64 range (OverflowResult) or did not
    reach a certified optimum (SolveFailed, or the bracket of an exact method).  Options: see
    `check_options`.

    Returns
    -------
    BoundResult
        Its function's keys (the "exact" method: exact_1d's without breakpoints, completed
        by exact_1d_on_box's; "lower": lower's with domain in place of box) and kind,
        seconds, domain, method, reason: the keys marked "ladder" in `BoundResult`.
    """
    parse_methods([name])
    p = lipschitz.parse_p(p)
    box = limits.check_box(box)
    options = check_options(options)
    record = registry.get(name)
    t0 = time.perf_counter()
    try:
        if p not in record.p_values:
            raise NotApplicable(record.p_reason)
        out = RUNNERS[name](net, p, box, options)
    except (NotApplicable, TooLarge, OverflowResult, SolveFailed) as exc:
        out = {"value": None, "reason": str(exc)}
    out = BoundResult(out)
    out.setdefault("kind", KINDS[name])
    out["seconds"] = time.perf_counter() - t0
    return out


def ladder(net: Network, p: float | str = 2, box: float = 1.0,
           methods: str | Sequence[str] = METHODS, **options: Any) -> LadderResult:
    r"""Run the chosen Lipschitz methods on one network, each result in one convention.

    Parameters
    ----------
    net : Network
        The network f, N_0 inputs; its parameters must be finite.
    p : {1, 2, inf} or str, default 2
        The l_p norm on inputs and outputs.
    box : float, default 1.0
        The half-width R > 0 of the box [-R, R]^N_0 of ``lower`` and ``exact``.
    methods : str or sequence of str, default METHODS
        Names among "lower", "exact", "lipsdp_neuron", "lipsdp_layer", "eclipse",
        "eclipse_fast", "layerwise", "theorem1", "theorem1_bv2" (a list, or one
        comma-separated string); run in that (ladder) order.
    **options : dict
        ``solver`` (LipSDP's), ``seed`` (lower's), ``num_points`` and ``rounds`` (lower's
        search) and the limits ``time_limit``, ``max_binaries``, ``max_pieces``,
        ``max_regions``, ``max_sdp_cost``, ``max_lower_cost`` (each finite and > 0; defaults
        in LIMITS).

    Returns
    -------
    results : LadderResult
        Method name -> its result, one `BoundResult` (`run_method`) per method asked, in
        ladder order, with at least ``value`` (float, or None with a ``reason`` when the
        method does not apply, is refused by its size guard, leaves the float64 range or
        could not certify a number), ``kind`` ("lower", "upper", "exact"
        or "bracket") and ``seconds``; the exact method adds ``lower_bound``,
        ``upper_bound``, ``certified_exact``, ``upper_margin_kind`` and its own keys
        (`exact_1d` with `exact_1d_on_box`, `regions_2d` or `exact_milp`); LipSDP its
        (`lipsdp`); lower its (`lower`, with ``x``, ``x_pair`` as lists and ``domain``).

    Raises
    ------
    ValueError
        When p, box, a method name or a limit is out of range, or a parameter is not
        finite.
    TypeError
        When an option is not one of those above.

    See Also
    --------
    check_claim : Runs the ladder from the cheapest method on to decide a claimed bound.

    Notes
    -----
    In exact arithmetic, for every network and p,

    .. math::

        \text{lower} \le \text{exact} \le \text{layerwise} \le \text{theorem1}
        \le \text{theorem1\_bv2}, \qquad
        \text{lower} \le \text{exact} \le \text{lipsdp\_neuron}
        \le \text{lipsdp\_layer},

    where lower and exact (except exact_1d's value) are taken over the box and the others
    over R^N_0; Theorem 1 and its BV(2) form are those of [1]_, LipSDP that of [2]_ (p = 2
    only).  The exact method is `exact_1d` for one input (over R, with ``box_value`` over the
    box), `regions_2d` for two (every p), otherwise `exact_milp` (p in {1, inf}).
    `order_violations` checks these inequalities on a result.

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.
    .. [2] M. Fazlyab, A. Robey, H. Hassani, M. Morari, G. Pappas, "Efficient and Accurate
       Estimation of Lipschitz Constants for Deep Neural Networks", NeurIPS 2019.

    Examples
    --------
    >>> from reference.nn import Dense, Network, ReLU
    >>> from reference.lipschitz import ladder
    >>> net = Network([Dense([[1.0], [-2.0]]), ReLU(), Dense([[1.0, 1.0]])])
    >>> results = ladder(net, methods="lower,exact,layerwise,theorem1")
    >>> for name, result in results.items():
    ...     print(name, result["kind"], round(result["value"], 6))
    lower lower 2.0
    exact exact 2.0
    layerwise upper 3.162278
    theorem1 upper 4.0
    """
    lipschitz.check_finite(net)
    box = limits.check_box(box)
    check_options(options)
    return LadderResult((name, run_method(name, net, p, box, **options))
                        for name in parse_methods(methods))


# the field holding an exact method's certified tolerance on its value, by upper_margin_kind
# (reference.lipschitz._exact.UPPER_MARGIN_KINDS; exact_1d's value is exact: none)
VALUE_TOLERANCE = {"tolerance": "tolerance", "rounding_bound": "rounding_bound"}


def _bound(results: dict, name: str, side: str):
    """The end of a method's result that a check may use: its lower_bound where it must be
    below another method (side "low"), its upper_bound where it must be above (side "high"),
    and its value for a method without them.  The exact methods give both: equal to the
    value for exact_1d, the witness and HiGHS's bound + its tolerance for the MILP, the
    bracket of an interrupted run (an end may be None: nothing to check).  A method that
    certified its value exact (certified_exact) claims Lip = value to its stated tolerance:
    where it must be above, its end is value + that tolerance (VALUE_TOLERANCE: the MILP's
    `tolerance`, regions_2d's `rounding_bound`), not the wider bracket, so an exact value
    below a certified lower bound is a violation."""
    r = results.get(name, {})
    if side == "high" and r.get("certified_exact") and r.get("value") is not None:
        field = VALUE_TOLERANCE.get(r.get("upper_margin_kind"))
        return r["value"] + ((r.get(field) or 0.0) if field else 0.0)
    key = "lower_bound" if side == "low" else "upper_bound"
    return r[key] if key in r else r.get("value")


def best_lower(results: dict) -> float | None:
    """The best lower bound among the results: the sampled one, the exact value when it is
    attained (certified), or the certified lower end of an interrupted exact method."""
    values = []
    for name, r in results.items():
        kind = KINDS.get(name)
        if kind == "lower":
            values.append(r.get("value"))
        elif kind in ("exact", "bracket"):
            values.append(r.get("lower_bound"))
            if r.get("certified_exact"):
                values.append(r.get("value"))
    values = [v for v in values if v is not None]
    return max(values) if values else None


def order_violations(results: dict, rtol: float = 1e-6) -> list:
    """The pairs (a, b) of the ladder with a > b * (1 + rtol) among the available values:
    lower <= exact <= layerwise <= theorem1 <= theorem1_bv2, lipsdp_* >= lower and exact,
    lipsdp_neuron <= lipsdp_layer (the records' at_least / at_most relations,
    reference.lipschitz._methods.ordering_pairs).  (LipSDP against layerwise: never above it
    by construction, `lipsdp` reports the layer-wise bound when its certified value is.)
    The exact method enters with its bracket (`_bound`): lower_bound <= the upper bounds,
    upper_bound >= lower; an interrupted one is never taken for the exact value; one that
    certified its value exact must be above the lower bounds with that value (+ its stated
    tolerance).  lipsdp_neuron <= lipsdp_layer compares two certified upper bounds of SDPs
    whose optima are ordered: the neuron value v may sit above its optimum by its stated
    `accuracy` a (v - optimum <= a v), i.e. v <= optimum / (1 - a), so a / (1 - a) (inf for
    a >= 1) is added to rtol for that pair."""
    bad = []
    for a, b in registry.ordering_pairs():              # the records' at_least / at_most
        va, vb = _bound(results, a, "low"), _bound(results, b, "high")
        slack_of = registry.get(a).order_slack
        slack = slack_of(results.get(a, {})) if slack_of is not None else 0.0
        if va is not None and vb is not None and va > vb * (1 + rtol + slack):
            bad.append((a, b, va, vb))
    return bad


def _accuracy_slack(result: dict) -> float:
    """a / (1 - a) for a LipSDP result's stated accuracy a (value - optimum <= a value), inf
    for a >= 1 (nothing is known about the optimum then); 0 without one."""
    accuracy = result.get("accuracy") or 0.0
    return accuracy / (1.0 - accuracy) if accuracy < 1.0 else np.inf


# ------------------------------------------------------------------- the built-in methods
# The limits in the order of their options and of the lipschitz command's flags.
TIME_LIMIT = Limit("time_limit", exact_mod.TIME_LIMIT, float,
                   "time limit (s) of the exact methods (MILP, 1-D): past it they return a "
                   "certified bracket")
MAX_BINARIES = Limit("max_binaries", milp.MAX_BINARIES, int, "size guard of the MILP (binaries)")
MAX_PIECES = Limit("max_pieces", exact_mod.MAX_PIECES, int,
                   "size guard of the 1-D exact method (pieces)")
MAX_REGIONS = Limit("max_regions", regions2d.MAX_REGIONS, int,
                    "size guard of the 2-D exact method (linear regions)")
MAX_SDP_COST = Limit("max_sdp_cost", lipsdp.MAX_SDP_COST, float,
                     "size guard of LipSDP (estimated solver work, see the README)")
MAX_LOWER_COST = Limit("max_lower_cost", lipschitz.MAX_LOWER_COST, float,
                       "size guard of the lower bound (points x flops of a Jacobian)")
registry.declare_limits(TIME_LIMIT, MAX_BINARIES, MAX_PIECES, MAX_REGIONS, MAX_SDP_COST,
                        MAX_LOWER_COST)

# In ladder order; the ordering relations are those of the module docstring.
_LIPSDP_P: dict[str, Any] = {"p_values": (2.0,),
                              "p_reason": "LipSDP bounds the l2 constant only (p = 2)"}
registry.register(Method("lower", "lower", _lower, stage="lower", domain="box",
                         limits=(MAX_LOWER_COST,)))
registry.register(Method("exact", "bracket", _exact, stage="exact", domain="box",
                         upper_margin=margins.exact_margin, at_least=("lower",),
                         limits=(TIME_LIMIT, MAX_BINARIES, MAX_PIECES, MAX_REGIONS)))
registry.register(Method("lipsdp_neuron", "upper", _lipsdp("neuron"), stage="lipsdp",
                         domain="global", upper_margin=margins.lipsdp_margin,
                         at_least=("lower", "exact"), limits=(MAX_SDP_COST,), stage_order=0,
                         order_slack=_accuracy_slack, **_LIPSDP_P))
registry.register(Method("lipsdp_layer", "upper", _lipsdp("layer"), stage="lipsdp",
                         domain="global", upper_margin=margins.lipsdp_margin,
                         at_least=("lipsdp_neuron", "lower"), limits=(MAX_SDP_COST,),
                         stage_order=1, order_slack=_accuracy_slack, **_LIPSDP_P))
# ECLipsE (Xu and Sivaranjani, NeurIPS 2024; reference.lipschitz._eclipse): its multipliers
# are feasible for LipSDP-neuron, so both are >= lipsdp_neuron; ECLipsE-Fast is <= layerwise
# (a theorem, stated by layerwise's record), ECLipsE against either is not.  ECLipsE-Fast is a
# closed form (tried after layerwise), ECLipsE one small SDP per layer (before LipSDP).
_ECLIPSE_P: dict[str, Any] = {"p_values": (2.0,),
                              "p_reason": "ECLipsE bounds the l2 constant only (p = 2)"}
registry.register(Method("eclipse", "upper", _eclipse, stage="eclipse", domain="global",
                         upper_margin=margins.lipsdp_margin,
                         at_least=("lipsdp_neuron", "lower", "exact"), limits=(MAX_SDP_COST,),
                         stage_order=0, **_ECLIPSE_P))
registry.register(Method("eclipse_fast", "upper", _eclipse_fast, stage="closed_form",
                         domain="global", upper_margin=margins.lipsdp_margin,
                         at_least=("lipsdp_neuron", "lower", "exact"), stage_order=3,
                         **_ECLIPSE_P))
registry.register(Method("layerwise", "upper", _closed_form(lipschitz.layerwise),
                         stage="closed_form", domain="global",
                         upper_margin=margins.closed_form_margin,
                         at_least=("exact", "lower", "eclipse_fast"), stage_order=2))
registry.register(Method("theorem1", "upper", _closed_form(lipschitz.theorem1),
                         stage="closed_form", domain="global",
                         upper_margin=margins.closed_form_margin, at_least=("layerwise",),
                         stage_order=1))
registry.register(Method("theorem1_bv2", "upper", _closed_form(lipschitz.theorem1_bv2),
                         stage="closed_form", domain="global",
                         upper_margin=margins.closed_form_margin, at_least=("theorem1",),
                         stage_order=0))
