"""Verdicts on a claimed Lipschitz bound: is Lip_p(f) <= C on the box [-R, R]^N_0?

`check_claim` runs the methods of the ladder (reference.lipschitz.ladder) from the cheapest on and
stops as soon as the claim is decided:

1. closed forms (theorem1_bv2, theorem1, layerwise, and ECLipsE-Fast for p = 2: global
   bounds, microseconds to a second);
2. lower (seeded points and local search over the box, a pair of points of the box);
3. the SDPs (p = 2; ECLipsE (one small SDP per layer), then LipSDP-neuron, then -layer if
   neuron gives nothing: global bounds);
4. exact (over the box: 1 input by breakpoint propagation, 2 inputs by enumerating the
   linear regions, otherwise the MILP for p in {1, inf}, whose bracket is used when it stops);
with 1 or 2 inputs, exact (fast there) comes before LipSDP (`stages`).

Decision (C the claim):
- `unsound` when a pair x, x' of the box has a ratio ||f(x) - f(x')||_p / ||x - x'||_p whose
  certified lower end (`certified_ratio`: the ratio re-evaluated with Network.forward minus
  its rounding bound) exceeds C: Lip_p(f) over the box (hence over R^N_0) is > C;
- `sound` when a certified upper bound, the method's value plus its rounding margin
  (`upper_margin`), is <= C: over R^N_0 for the global bounds (hence over the box), over the
  box for exact;
- `undecided` otherwise, with the remaining interval [best certified lower, best certified
  upper].
A lower end above an upper one would be a bug in a method: RuntimeError naming both.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from reference import _format
from reference._limits import check_box
from reference._numerics import UNIT_ROUNDOFF, check_nonnegative, gamma
from reference.lipschitz import _ladder as ladder
from reference.lipschitz import _methods as registry
from reference.lipschitz._bounds import check_finite, parse_p, vector_norm
from reference.lipschitz._rounding_exact import forward_error_bound
from reference.nn._network import Network

EXIT_STATUS = {"sound": 0, "unsound": 1, "undecided": 3}
# the stages: live views of the method registry (each record's stage and stage_order)
CLOSED, LOWER, ECLIPSE, LIPSDP, EXACT = (
    registry.NameView(partial(registry.stage_methods, stage)) for stage in registry.STAGES)
GLOBAL = registry.NameView(lambda: tuple(m for stage in (CLOSED, LOWER, ECLIPSE, LIPSDP, EXACT)
                                         for m in stage if registry.get(m).domain == "global"))


def stages(n_inputs: int) -> tuple:
    """The methods in the order they are tried: closed forms, lower, then exact before ECLipsE
    and LipSDP for 1 or 2 inputs (breakpoints or regions: fractions of a second on the paper's
    networks, and exact) and after them otherwise (the MILP may run to its time limit).
    ECLipsE is a stage of its own, before LipSDP: a claim it decides stops there (it runs
    where LipSDP's one large SDP is refused or slow)."""
    return (CLOSED, LOWER, EXACT, ECLIPSE, LIPSDP) if n_inputs <= 2 else \
        (CLOSED, LOWER, ECLIPSE, LIPSDP, EXACT)


def check_claim_value(claim) -> float:
    """The claimed constant C: a finite number >= 0 (ValueError naming claim otherwise)."""
    return check_nonnegative(claim, "claim")


class _Record:
    """to_dict for the dataclasses of this module: their fields, shallow (JSON-ready)."""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Witness(_Record):
    """A pair x, x_pair of the box and its ratio ||f(x_pair) - f(x)||_p / ||x_pair - x||_p as
    computed (`ratio`) and its certified lower end (`certified`, `certified_ratio`); margin =
    ratio - certified; method and source say where the pair comes from."""
    x: list
    x_pair: list
    ratio: float
    certified: float
    margin: float
    method: str
    source: str


def certified_ratio(net: Network, x, x_pair, p: float, method: str = "",
                    source: str = "") -> Witness:
    """The ratio r = ||f(x') - f(x)||_p / ||x' - x||_p of two points, re-evaluated with
    Network.forward (each point on its own), and a lower bound on the exact ratio of the same
    two (float64) points:
        r_low = (||df||_p (1 - g_L) - ||e + e' + 2u |df| ||_p (1 + g_L))
                / (||dx||_p (1 + g_0) / (1 - u)) * (1 - 4u),
    df, dx the computed differences, e, e' the forward error bounds (`forward_error_bound`),
    g_L = gamma_{N_L + 2}, g_0 = gamma_{N_0 + 2} (the norms' roundings), u = 2^-53 (each
    subtraction is correctly rounded; 4u for this formula's own roundings), and at least 0
    (a ratio of norms: when the rounding bound exceeds the difference, as for two points
    1e-300 apart where f is near 1, the pair certifies nothing more)."""
    x = np.asarray(x, dtype=np.float64)
    x_pair = np.asarray(x_pair, dtype=np.float64)
    # one point per call, as a reader re-evaluating the pair would (BLAS may round a batch
    # of two differently from two batches of one; the bound holds for either)
    (f0, e0), (f1, e1) = (forward_error_bound(net, point[None]) for point in (x, x_pair))
    f, err = np.concatenate([f0, f1]), np.concatenate([e0, e1])
    df, dx = f[1] - f[0], x_pair - x
    u = UNIT_ROUNDOFF
    norm_df, norm_dx = vector_norm(df, p), vector_norm(dx, p)
    if norm_dx == 0:
        raise ValueError("x, x_pair: expected two distinct points")
    slack = vector_norm(err[0] + err[1] + 2 * u * np.abs(df), p)
    g_out, g_in = gamma(len(df) + 2), gamma(len(dx) + 2)
    low = max((norm_df * (1 - g_out) - slack * (1 + g_out))
              / (norm_dx * (1 + g_in) / (1 - u)) * (1 - 4 * u), 0.0)   # a ratio is >= 0
    ratio = float(norm_df / norm_dx)
    return Witness(x.tolist(), x_pair.tolist(), ratio, float(low), float(ratio - low), method,
                   source)


def upper_margin(net: Network, method: str, result: dict, p: float) -> tuple[float, float, str]:
    """(the method's value, the margin added to it, what the margin is) for an upper bound of
    a ladder result; the certified upper bound is value + margin, as the method's record
    gives it (Method.upper_margin).  The built-in margins and their proofs are in
    reference.lipschitz._margins: closed forms 16 gamma_n relative, LipSDP its proven
    rounding bound, exact methods by their result's `upper_margin_kind`.  ValueError for a
    lower method (it has no upper end)."""
    margin = registry.get(method).upper_margin
    if margin is None:                                      # a lower method: no upper end
        raise ValueError(f"method: {method!r} has no upper end (kind lower), no margin")
    return margin(net, result, p)


# --------------------------------------------------------------------------- verdict
@dataclass
class Bound(_Record):
    """One certified bound: method, kind ("upper" or "lower"), the method's value, the
    certified value used for the decision (value + margin for an upper bound; a witness
    pair's certified ratio for a lower one), margin, the domain it holds on and its
    certificate."""
    method: str
    kind: str
    value: float
    certified: float
    margin: float
    domain: str
    certificate: str


@dataclass
class Verdict:
    """The answer of `check_claim` on a claimed Lipschitz bound.

    Parameters
    ----------
    verdict : {'sound', 'unsound', 'undecided'}
        Whether Lip_p(f) <= claim over the box is proven, disproven, or neither.
    claim : float
        The claimed constant C >= 0.
    p : float
        The l_p norm (1.0, 2.0 or inf).
    box : float
        The half-width R of the box [-R, R]^N_0.
    n_inputs : int
        N_0, the network's inputs.
    decided_by : Bound or None
        The certified bound that decided (None when undecided).
    witness : Witness or None
        For "unsound": the pair of points of the box whose certified ratio exceeds C.
    interval : tuple of (float or None)
        (best certified lower bound, best certified upper bound); None where no bound
        exists.
    bounds : list of Bound, default []
        Every certified bound computed (method, kind, value, certified value, margin,
        domain, certificate).
    results : dict, default {}
        The ladder results of the methods run (`ladder`'s convention).
    not_run : dict, default {}
        Method name -> why it was not run (decided before it, or not applicable).
    seconds : float, default 0.0
        Wall time of the check.
    """
    verdict: str
    claim: float
    p: float
    box: float
    n_inputs: int
    decided_by: Bound | None
    witness: Witness | None
    interval: tuple
    bounds: list = field(default_factory=list)
    results: dict = field(default_factory=dict)
    not_run: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def exit_status(self) -> int:
        """The process exit status of the verdict: 0 sound, 1 unsound, 3 undecided."""
        return EXIT_STATUS[self.verdict]

    def to_dict(self) -> dict:
        """The verdict as a JSON-ready dict (what ``lipschitz --claim C --json`` prints).

        Returns
        -------
        record : dict
            ``verdict``, ``claim``, ``p``, ``box``, ``domain`` (str), ``decided_by`` and
            ``witness`` (dicts or None), ``interval`` (list of two), ``bounds`` (list of
            dicts), ``not_run``, ``methods`` (the ladder results) and ``seconds``.
        """
        return {"verdict": self.verdict, "claim": self.claim, "p": self.p, "box": self.box,
                "domain": f"box [-{self.box:g}, {self.box:g}]^{self.n_inputs}",
                "decided_by": None if self.decided_by is None else self.decided_by.to_dict(),
                "witness": None if self.witness is None else self.witness.to_dict(),
                "interval": list(self.interval), "bounds": [b.to_dict() for b in self.bounds],
                "not_run": self.not_run, "methods": self.results, "seconds": self.seconds}


def _collect(net, name: str, r: dict, p: float, box: float, n0: int) -> tuple[list, list]:
    """The bounds and witnesses of one ladder result, by its kind (ladder.KINDS): a lower
    bound's pair, an exact method's witness pair and upper end, an upper bound (none when
    its value and bracket are missing)."""
    box_domain = f"box [-{box:g}, {box:g}]^{n0}"
    bounds, witnesses = [], []
    kind = r["kind"]
    if kind == "lower":
        if r.get("value") is not None:
            witnesses.append(certified_ratio(net, r["x"], r["x_pair"], p, name,
                                             "secant pair at the best sampled point"))
    elif kind in ("exact", "bracket"):
        pair = r.get("witness_pair") or (
            {"x": r["witness_x"], "x_pair": r["witness_x_pair"], "source": r["method"]}
            if r.get("witness_x_pair") is not None else None)
        if pair is not None:
            witnesses.append(certified_ratio(net, pair["x"], pair["x_pair"], p, name,
                                             pair.get("source") or r["method"]))
        over_box = r.get("upper_margin_kind") == "jacobian_rounding"   # exact_1d: box_value
        if (r.get("box_value") if over_box else r.get("upper_bound")) is not None:
            value, margin, what = upper_margin(net, name, r, p)
            domain = "R" if r.get("domain") == "R" and not over_box else box_domain
            certified = max(value + margin, r.get("upper_bound") or 0.0)  # no ulp lost
            bounds.append(Bound(name, "upper", value, certified, margin, domain,
                                f"{r['method']}, status {r['status']}; margin: {what}"))
    elif r.get("value") is not None:
        value, margin, what = upper_margin(net, name, r, p)
        certificate = r.get("certificate") or (
            "closed form (products of norms of the weights and activation constants)")
        bounds.append(Bound(name, "upper", value, value + margin, margin, f"R^{n0}",
                            f"{certificate}; margin: {what}"))
    for w in witnesses:
        bounds.append(Bound(w.method, "lower", w.ratio, w.certified, w.margin, box_domain,
                            f"ratio of a pair of points of the box re-evaluated with "
                            f"Network.forward ({w.source}), minus its rounding bound"))
    return bounds, witnesses


def _decide(claim, bounds, witnesses):
    """(verdict, deciding bound or None, witness or None, interval) from what is known."""
    uppers = [b for b in bounds if b.kind == "upper"]
    best_upper = min(uppers, key=lambda b: b.certified, default=None)
    best_witness = max(witnesses, key=lambda w: w.certified, default=None)
    low = None if best_witness is None else best_witness.certified
    high = None if best_upper is None else best_upper.certified
    if low is not None and high is not None and low > high:
        raise RuntimeError(f"verdict: the certified lower bound {_format.exact(low)} "
                           f"({best_witness.method}) exceeds the certified upper bound "
                           f"{_format.exact(high)} ({best_upper.method}); "
                           "a method is wrong, no verdict is given")
    interval = (low, high)
    if low is not None and low > claim:
        lower = next(b for b in bounds if b.kind == "lower" and b.certified == low)
        return "unsound", lower, best_witness, interval
    if high is not None and high <= claim:
        return "sound", best_upper, None, interval
    return "undecided", None, None, interval


def _never_below(name: str, stage, results: dict) -> str | None:
    """The first method of the same stage that gave a value and is never above `name` (an
    ordering pair (a, name) of the registry, a not a lower bound), or None: `check_claim`
    does not run `name` then, it cannot decide more (lipsdp_layer after lipsdp_neuron)."""
    for a, b in registry.ordering_pairs():
        if (b == name and a in stage and registry.get(a).kind != "lower"
                and results.get(a, {}).get("value")):
            return a
    return None


def check_claim(net: Network, claim: float, p: float | str = 2, box: float = 1.0,
                methods: str | Sequence[str] = ladder.METHODS, **options: Any) -> Verdict:
    r"""Decide whether a claimed Lipschitz constant holds on a box, cheapest method first.

    Parameters
    ----------
    net : Network
        The network f, N_0 inputs; its parameters must be finite.
    claim : float
        The claimed constant C, a finite number >= 0.
    p : {1, 2, inf} or str, default 2
        The l_p norm on inputs and outputs.
    box : float, default 1.0
        The half-width R > 0 of the box [-R, R]^N_0.
    methods : str or sequence of str, default all of `ladder`'s
        The methods allowed (names of `ladder`), tried in the order of `stages`.
    **options : dict
        `ladder`'s options: limits, ``solver``, ``seed``, ``num_points``, ``rounds``.

    Returns
    -------
    Verdict
        ``verdict`` "sound", "unsound" or "undecided", the deciding bound or witness, the
        certified interval, every bound and ladder result, and ``exit_status``.

    Raises
    ------
    ValueError
        When claim, p, box or a method name is out of range, or a parameter is not finite.
    TypeError
        When an option is not one of `ladder`'s.
    RuntimeError
        When a certified lower bound exceeds a certified upper bound (a method is wrong; no
        verdict is given).

    See Also
    --------
    ladder : The methods and their results.

    Notes
    -----
    The stages (`stages`): closed forms (theorem1_bv2, theorem1, layerwise, eclipse_fast),
    the sampled lower bound, ECLipsE (p = 2), LipSDP (p = 2) and the exact method (before
    ECLipsE and LipSDP for 1 or 2 inputs); the check stops after the first stage that
    decides.  With C the claim:

    - "unsound" when a pair x, x' of the box has a certified ratio (`certified_ratio`: the
      ratio re-evaluated with Network.forward minus its rounding bound)

      .. math::

          \frac{\|f(x) - f(x')\|_p}{\|x - x'\|_p} - \text{margin} > C;

    - "sound" when a certified upper bound, the method's value plus its rounding margin
      (`upper_margin`), is <= C: over R^N_0 for the global bounds of [1]_ and LipSDP [2]_,
      over the box for the exact method;
    - "undecided" otherwise, with the interval [best certified lower, best certified upper].

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
    >>> from reference.lipschitz import check_claim
    >>> net = Network([Dense([[1.0], [-2.0]]), ReLU(), Dense([[1.0, 1.0]])])
    >>> verdict = check_claim(net, 2.5)
    >>> print(verdict.verdict, verdict.decided_by.method, verdict.exit_status)
    sound eclipse_fast 0
    >>> verdict = check_claim(net, 1.5)
    >>> print(verdict.verdict, verdict.decided_by.method, round(verdict.witness.ratio, 6))
    unsound lower 2.0
    """
    claim = check_claim_value(claim)
    p = parse_p(p)
    box = check_box(box)
    check_finite(net)
    chosen = ladder.parse_methods(methods)
    ladder.check_options(options)
    t0 = time.perf_counter()
    results: dict[str, Any]                                  # method -> its result
    bounds, witnesses, results, not_run = [], [], {}, {}
    decided_by: Bound | None
    verdict, decided_by, witness, interval = "undecided", None, None, (None, None)
    for stage in stages(net.n_in):
        for name in (m for m in stage if m in chosen):
            if verdict != "undecided":
                assert decided_by is not None            # _decide names the deciding bound
                not_run[name] = f"not needed: decided by {decided_by.method}"
            elif p not in registry.get(name).p_values:
                not_run[name] = registry.get(name).p_reason
            elif tighter := _never_below(name, stage, results):
                not_run[name] = f"{tighter} gave a bound ({name} is never below it)"
            else:
                results[name] = ladder.run_method(name, net, p, box, **options)
                new_bounds, new_witnesses = _collect(net, name, results[name], p, box,
                                                     net.n_in)
                bounds += new_bounds
                witnesses += new_witnesses
        if verdict == "undecided":
            verdict, decided_by, witness, interval = _decide(claim, bounds, witnesses)
    return Verdict(verdict, claim, p, box, net.n_in, decided_by, witness, interval, bounds,
                   results, not_run, time.perf_counter() - t0)
