"""`lipschitz MODEL`: the Lipschitz ladder (lower bound, exact value, LipSDP, layer-wise and
Theorem-1 bounds) with each method's certificate; with --claim C, a verdict on the claim
Lip_p(f) <= C over the box (sound / unsound / undecided, exit 0 / 1 / 3)."""
from __future__ import annotations

from reference.cli._args import (
    box_half_width,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
)
from reference.io._files import dumps_json
from reference.io._model_file import load_model, network_from_mat
from reference.lipschitz import _bounds as lipschitz
from reference.lipschitz import _ladder as ladder
from reference.lipschitz import _lipsdp as lipsdp
from reference.lipschitz import _methods as method_registry
from reference.lipschitz import _verdict as verdict

NAME = "lipschitz"
HELP = "the Lipschitz ladder: lower, exact, LipSDP, bounds"
DESCRIPTION = None


def load_any_model(path):
    """A model file (.npz), or a LipSDP MATLAB file (.mat, cell `weights`, ReLU)."""
    return network_from_mat(path) if str(path).endswith(".mat") else load_model(path)


def exact_note(r: dict) -> str:
    """The table's note on a certified exact value: the method, the size of its partition
    and what certifies it (regions or pieces attained at a point where floating point
    decides the pattern, the others decided in exact rational arithmetic)."""
    decided = r.get("exact_checked", 0)
    exact_step = (f", {decided} patterns decided in exact arithmetic ({r['exact_empty']} "
                  "empty)" if decided else "")
    attained = "" if r.get("attained", True) else ", value proven in exact arithmetic"
    if "regions" in r:
        size = (f"{r['regions']} regions, areas sum to the box's to {r['area_error']:.1g}, "
                f"Jacobians re-evaluated{exact_step}")
    elif "pieces" in r:
        size = f"{r['pieces']} pieces{exact_step}"
    else:
        size = f"{r['binaries']} binaries, {r['cuts']} patterns cut off (proven empty)"
    return f"{r['method']}, {size}{attained}, over {r['domain']}"


def print_ladder(results: dict, p: float, box: float, title: str) -> list:
    """The human table: value, ratio to the best lower bound, seconds, note per method;
    returns the ladder's order violations (printed last)."""
    ref = ladder.best_lower(results)
    print(f"{title}, p = {p:g}; lower and exact over the box [-{box:g}, {box:g}]^N_0 "
          "(exact_1d: over R)")
    print(f"  {'method':14s} {'value':>12s} {'/ best lower':>12s} {'seconds':>8s}  note")
    for name, r in results.items():
        v = r["value"]
        ratio = f"{v / ref:12.4f}" if v is not None and ref else f"{'-':>12s}"
        value = f"{v:12.6g}" if v is not None else f"{'n/a':>12s}"
        note = r.get("reason", "")
        if not note and name == "exact":
            note = exact_note(r)
        if not note and name.startswith("lipsdp"):
            note = (f"{r['solver']} {r['status']}, certified (Schur complement), "
                    f"solver value {r['solver_value']:.6g}, {lipsdp_accuracy(r)}")
            if r.get("capped_by_layerwise"):
                note = (f"LipSDP's certified {r['sdp_value']:.6g} is above the layer-wise "
                        f"bound: the layer-wise bound is reported ({note})")
        if not note and name.startswith("eclipse"):
            note = ("certified (block Cholesky of Q(1/L^2)), rounding bound "
                    f"{r['rounding_bound']:.3g}")
        print(f"  {name:14s} {value} {ratio} {r['seconds']:8.2f}  {note}")
    violations = ladder.order_violations(results)
    for a, b, va, vb in violations:
        print(f"  VIOLATION: {a} = {va:.6g} > {b} = {vb:.6g}")
    return violations


def lipsdp_accuracy(r: dict) -> str:
    """How far a LipSDP value may sit above the SDP's optimum, as printed: the proven bound
    (or the solver's estimate, said so), flagged above lipsdp.INACCURATE_RTOL."""
    text = (f"accuracy <= {r['accuracy']:.2g} (dual certificate)" if r["accuracy_certified"]
            else f"accuracy ~ {r['accuracy']:.2g} (solver's estimate, NOT CERTIFIED)")
    if r["inaccurate"]:
        text += (f" -- INACCURATE: the value may exceed the SDP's optimum by more than "
                 f"{lipsdp.INACCURATE_RTOL:g} relative")
    return text


def _number(value) -> str:
    return "none" if value is None else f"{value:.10g}"


def print_verdict(v: verdict.Verdict, title: str) -> None:
    """The human report of a verdict: the answer, what decided it, the witness or the
    interval, then every bound computed and the methods not run."""
    domain = f"box [-{v.box:g}, {v.box:g}]^{v.n_inputs}"
    print(f"{title}: claim Lip_{v.p:g}(f) <= {v.claim:.10g} over the {domain}: "
          f"{v.verdict.upper()}")
    if v.verdict == "sound":
        b = v.decided_by
        assert b is not None                     # a sound verdict names its upper bound
        print(f"  certified upper bound {_number(b.certified)} <= {v.claim:.10g}: {b.method} = "
              f"{_number(b.value)} + margin {b.margin:.3g}, holds on {b.domain}")
    elif v.verdict == "unsound":
        w = v.witness
        assert w is not None                     # an unsound verdict comes with its witness
        print(f"  witness pair in the box ({w.method}: {w.source}):")
        print(f"    x  = {w.x}")
        print(f"    x' = {w.x_pair}")
        print(f"    ||f(x') - f(x)||_{v.p:g} / ||x' - x||_{v.p:g} = {w.ratio:.15g} "
              "(Network.forward)")
        print(f"    > claim by {w.certified - v.claim:.3g} after subtracting the rounding margin "
              f"{w.margin:.3g}")
    else:
        low, high = v.interval
        print(f"  remaining interval [{_number(low)}, {_number(high)}] (best certified lower, "
              "best certified upper) holds the claim")
    print(f"  {'bound':14s} {'kind':5s} {'value':>18s} {'certified':>18s} {'margin':>9s}  "
          "domain")
    for b in v.bounds:
        print(f"  {b.method:14s} {b.kind:5s} {b.value:18.12g} {b.certified:18.12g} "
              f"{b.margin:9.2g}  {b.domain}")
    for name, r in v.results.items():
        if r.get("value") is None and r.get("reason"):
            print(f"  {name}: {r['reason']}")
    for name, why in v.not_run.items():
        print(f"  {name}: not run ({why})")


def run_claim(args, net, p, title: str) -> int:
    v = verdict.check_claim(net, args.claim, p, args.box, ladder.parse_methods(args.methods),
                            solver=args.solver, seed=args.seed,
                            **{name: getattr(args, name) for name in ladder.LIMITS})
    if args.json:
        print(dumps_json(v.to_dict()))
    else:
        print_verdict(v, title)
    return v.exit_status


def run(args):
    net = load_any_model(args.model)
    p = lipschitz.parse_p(args.p)
    if args.claim is not None:
        return run_claim(args, net, p, f"{args.model}")
    results = ladder.ladder(net, p, args.box, ladder.parse_methods(args.methods),
                            solver=args.solver, seed=args.seed,
                            **{name: getattr(args, name) for name in ladder.LIMITS})
    if args.json:
        print(dumps_json(results))
        return 1 if ladder.order_violations(results) else 0
    widths = " -> ".join(str(w) for w in [net.n_in] + [
        layer.n_out for layer in net.layers if not layer.is_activation])
    violations = print_ladder(results, p, args.box,
                              f"Lipschitz constant of {args.model} ({widths})")
    return 1 if violations else 0


def add_arguments(p) -> None:
    """The arguments of `lipschitz`."""
    p.add_argument("model", help="model file (.npz) or LipSDP weights (.mat, ReLU)")
    p.add_argument("--p", default="2", help="l_p norm on inputs and outputs: 1, 2 or inf")
    p.add_argument("--methods", default=",".join(ladder.METHODS),
                   help="comma-separated subset of " + ",".join(ladder.METHODS))
    p.add_argument("--box", type=box_half_width, default=1.0,
                   help="half-width R of the box [-R, R]^N_0 for lower and exact, in "
                        "[1e-290, 1e290]")
    p.add_argument("--solver", default=lipsdp.DEFAULT_SOLVER,
                   help="SDP solver for LipSDP and the stages of ECLipsE: NUMPY (default), "
                        "CVXOPT, CLARABEL, SCS, MOSEK")
    for limit in method_registry.limits().values():      # the methods' records
        p.add_argument(limit.flag, type=positive_int if limit.type is int else positive_float,
                       default=limit.default, help=limit.help)
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the lower-bound search")
    p.add_argument("--claim", type=nonneg_float, default=None, metavar="C",
                   help="check the claim Lip_p(f) <= C over the box: exit 0 sound, 1 unsound "
                        "(with a witness pair), 3 undecided (with the remaining interval)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
