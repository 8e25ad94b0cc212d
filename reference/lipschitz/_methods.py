"""The registry of the Lipschitz methods: one `Method` record per method of the ladder.

A record says everything the rest of the package needs to know about a method: its name, what
its numbers are (kind), the adapter the ladder calls (runner), where `check_claim` tries it
(stage, domain), the rounding margin of its upper end (upper_margin, required for every method
with an upper end: no default), the ordering relations its value must satisfy against the
other methods, the p it applies to and its limits (size guards and time limits, with their
default, type and command-line help).  The views below are what the ladder
(`reference.lipschitz._ladder`), the verdicts (`reference.lipschitz._verdict`) and the
``lipschitz`` command read; they follow the registry live, so a method registered later (a
test, a user's own bound) runs everywhere without another edit.  The built-in records are
registered by `reference.lipschitz._ladder`, beside their runners.

A leaf module: it imports only reference._registry (the live views).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reference._registry import NameView, RecordView

RESULT_KINDS = ("lower", "upper", "exact", "bracket")  # what a method's numbers are
STAGES = ("closed_form", "lower", "eclipse", "lipsdp", "exact")  # check_claim's (verdict.stages)
DOMAINS = ("global", "box")                           # where a method's bound holds
P_VALUES = (1.0, 2.0, math.inf)                       # the p of lipschitz.parse_p

Runner = Callable[[Any, float, float, dict], dict]
Margin = Callable[[Any, dict, float], "tuple[float, float, str]"]


@dataclass(frozen=True)
class Limit:
    """A size guard or time limit of a method: an option of the ladder and a CLI flag.

    Parameters
    ----------
    name : str
        The option's name (a keyword of `ladder`, `run_method` and `check_claim`); its flag
        is ``--`` + the name with ``-`` for ``_`` (``max_binaries`` -> ``--max-binaries``).
    default : float
        The default value (finite and > 0: `reference._limits.check_limit`).
    type : {int, float}
        What the flag parses: a positive integer or a positive float.
    help : str
        The flag's help text in ``lipschitz --help``.

    Notes
    -----
    Several methods may share one limit (``max_sdp_cost`` for both LipSDP variants): they
    hold equal records, and `register` refuses two different records of one name.
    """
    name: str
    default: float
    type: type
    help: str

    @property
    def flag(self) -> str:
        """The command-line flag, ``--`` + the name with ``-`` for ``_``."""
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Method:
    """One method of the Lipschitz ladder: what it computes and how the package uses it.

    Parameters
    ----------
    name : str
        The method's name in ``--methods``, the ladder's keys and the verdict's bounds.
    kind : {"lower", "upper", "exact", "bracket"}
        What its numbers are (the result's ``kind`` unless the runner sets another):
        "lower" (value <= Lip), "upper" (Lip <= value), "exact" (value = Lip, certified,
        lower_bound <= Lip <= upper_bound) or "bracket" (lower_bound <= Lip <= upper_bound,
        the value only when certified; the runner then sets kind "exact").
    runner : callable
        ``runner(net, p, box, options) -> dict``: the method's result (at least ``value``);
        it raises NotApplicable, TooLarge, OverflowResult or SolveFailed to report no value
        (`run_method`).  ``options`` holds every option of `check_options`.
    stage : {"closed_form", "lower", "eclipse", "lipsdp", "exact"}
        The stage of `check_claim` that runs it (`reference.lipschitz._verdict.stages`).
    domain : {"global", "box"}
        Where its bound holds: over R^N_0 or over the box [-R, R]^N_0.
    upper_margin : callable or None
        ``upper_margin(net, result, p) -> (value, margin, text)``: the value its certified
        upper end starts from, the rounding margin added to it and what that margin is
        (`reference.lipschitz._margins`).  Required for every kind but "lower" (a lower
        method has no upper end: None).
    at_least : tuple of str
        Registered methods whose value is <= this method's for every network and p (in
        exact arithmetic): `order_violations` checks each pair, in this order.
    at_most : tuple of str
        Registered methods whose value is >= this method's (the same relation, stated by the
        tighter method, so a new bound needs no edit of an old record).
    p_values : tuple of float
        The p it applies to (1.0, 2.0, inf); for another p the ladder reports value None
        with `p_reason`, and `check_claim` does not run it.
    p_reason : str
        Why it does not apply to another p (required when `p_values` is not every p).
    limits : tuple of Limit
        Its size guards and time limits (options of the ladder, flags of the CLI).
    stage_order : float
        Its position within its stage of `check_claim` (smaller first, ties in ladder
        order; default inf: after the built-in methods).
    order_slack : callable or None
        ``order_slack(result) -> float``: how far, relative, its value may sit above the
        quantity the ordering relations compare (LipSDP: a / (1 - a) for its stated
        accuracy a); added to the tolerance of `order_violations` where this method must
        be below another.  None: 0.

    Notes
    -----
    An ordering pair (a, b) states Lip-type values v_a <= v_b.  Within one stage of
    `check_claim`, a method b is not run once a method a with a <= b (a not a lower bound)
    gave a value: b is never below it (lipsdp_layer after lipsdp_neuron).
    """
    name: str
    kind: str
    runner: Runner
    stage: str
    domain: str
    upper_margin: Margin | None = None
    at_least: tuple[str, ...] = ()
    at_most: tuple[str, ...] = ()
    p_values: tuple[float, ...] = P_VALUES
    p_reason: str = ""
    limits: tuple[Limit, ...] = ()
    stage_order: float = math.inf
    order_slack: Callable[[dict], float] | None = None


_REGISTRY: dict[str, Method] = {}      # name -> Method, in ladder order
_LIMIT_ORDER: dict[str, Limit] = {}    # every limit ever declared, in flag order


def _check_record(method: Method) -> None:
    """Raise ValueError (TypeError for a runner or margin that is not callable) naming the
    field of `method` that is inconsistent."""
    where = f"method {method.name!r}"
    if not isinstance(method.name, str) or not method.name.isidentifier():
        raise ValueError(f"name: expected an identifier, got {method.name!r}")
    if method.name in _REGISTRY:
        raise ValueError(f"{where}: already registered")
    for attr, choices in (("kind", RESULT_KINDS), ("stage", STAGES), ("domain", DOMAINS)):
        if getattr(method, attr) not in choices:
            raise ValueError(f"{where}: {attr}: expected one of {list(choices)}, "
                             f"got {getattr(method, attr)!r}")
    if not callable(method.runner):
        raise TypeError(f"{where}: runner: expected a callable (net, p, box, options)")
    if method.kind == "lower":
        if method.upper_margin is not None:
            raise ValueError(f"{where}: upper_margin: a lower method has no upper end")
    elif not callable(method.upper_margin):
        raise ValueError(f"{where}: upper_margin: required for a method of kind "
                         f"{method.kind!r} (its certified upper end is value + margin, and "
                         "no margin is assumed): give upper_margin(net, result, p) -> "
                         "(value, margin, text)")
    for attr in ("at_least", "at_most"):
        unknown = [m for m in getattr(method, attr) if m not in _REGISTRY]
        if unknown:
            raise ValueError(f"{where}: {attr}: expected registered methods, got {unknown}")
    if not method.p_values or any(p not in P_VALUES for p in method.p_values):
        raise ValueError(f"{where}: p_values: expected a non-empty subset of {P_VALUES}, "
                         f"got {method.p_values!r}")
    if set(method.p_values) != set(P_VALUES) and not method.p_reason:
        raise ValueError(f"{where}: p_reason: required when p_values is not every p")
    for limit in method.limits:
        known = _LIMIT_ORDER.get(limit.name)
        if known is not None and known != limit:
            raise ValueError(f"{where}: limit {limit.name!r}: another record of that name "
                             f"is registered ({known}); share it")
        if limit.type not in (int, float):
            raise ValueError(f"{where}: limit {limit.name!r}: type: expected int or float")


def declare_limits(*limits: Limit) -> None:
    """Fix the order of limits before the methods that use them are registered.

    Parameters
    ----------
    *limits : Limit
        Limits in the order their options and flags are listed (``lipschitz --help``);
        the limits of a method registered later follow, in the order first met.
    """
    for limit in limits:
        _LIMIT_ORDER.setdefault(limit.name, limit)


def register(method: Method) -> Method:
    """Add a method to the registry, last in the ladder's order.

    Parameters
    ----------
    method : Method
        The record; the methods it names in ``at_least``/``at_most`` must be registered.

    Returns
    -------
    method : Method
        The record itself: from now on `ladder`, `check_claim`, `order_violations` and the
        ``lipschitz`` command (a parser built after this call) know it.

    Raises
    ------
    ValueError
        A name already registered, a kind, stage, domain or p outside their choices, an
        upper_margin missing for a method with an upper end (or given to a lower one), an
        ordering relation naming an unregistered method, a p_reason missing, or a limit
        clashing with another of its name.
    TypeError
        A runner that is not callable.
    """
    _check_record(method)
    _REGISTRY[method.name] = method
    declare_limits(*method.limits)
    return method


def unregister(name: str) -> Method:
    """Remove the method `name` (a test's temporary method) and return its record.

    Raises
    ------
    KeyError
        No method of that name is registered.
    ValueError
        Another method names it in an ordering relation.
    """
    users = [m.name for m in _REGISTRY.values() if name in (*m.at_least, *m.at_most)]
    if users:
        raise ValueError(f"method {name!r}: named in the ordering relations of {users}")
    return _REGISTRY.pop(name)


def get(name: str) -> Method:
    """The record of method `name` (KeyError naming the registered ones otherwise)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"method {name!r}: expected one of {list(_REGISTRY)}") from None


def methods() -> tuple[Method, ...]:
    """Every registered record, in ladder order."""
    return tuple(_REGISTRY.values())


def limits() -> dict[str, Limit]:
    """The limits of the registered methods, name -> Limit, in flag order."""
    used = {limit.name for m in _REGISTRY.values() for limit in m.limits}
    return {name: limit for name, limit in _LIMIT_ORDER.items() if name in used}


def stage_methods(stage: str) -> tuple[str, ...]:
    """The methods of a stage of `check_claim`, in the order it tries them."""
    index = {name: i for i, name in enumerate(_REGISTRY)}
    members = [m for m in _REGISTRY.values() if m.stage == stage]
    return tuple(m.name for m in sorted(members, key=lambda m: (m.stage_order, index[m.name])))


def ordering_pairs() -> tuple[tuple[str, str], ...]:
    """Every ordering relation (a, b), a's value <= b's: per method in ladder order, its
    ``at_least`` pairs (a, method) then its ``at_most`` pairs (method, b), each pair once."""
    pairs: dict[tuple[str, str], None] = {}
    for m in _REGISTRY.values():
        for a in m.at_least:
            pairs.setdefault((a, m.name), None)
        for b in m.at_most:
            pairs.setdefault((m.name, b), None)
    return tuple(pairs)


def _names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


METHODS = NameView(_names)                                           # ladder order
RUNNERS = RecordView(lambda: {m.name: m.runner for m in _REGISTRY.values()})
METHOD_KINDS = RecordView(lambda: {m.name: m.kind for m in _REGISTRY.values()})
LIMITS = RecordView(lambda: {name: lim.default for name, lim in limits().items()})
