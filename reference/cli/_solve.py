"""`solve MODEL --data D.npz --layer I --lam L --out NEW.npz`: the certified optimum of one
spline layer's coefficients with the weights fixed.  Exit 0 optimal; 3 not certified (time
limit, or no certificate at the tolerance): the best feasible point is written, with its
objective and a lower bound where available; 2 an error (no model written)."""
from __future__ import annotations

from reference._format import plain
from reference._numerics import as_finite_array
from reference.cli._args import _typed, nonneg_float, nonneg_int, positive_float, size_int
from reference.convex import _solve as convex
from reference.convex._certify import GAP_RTOL
from reference.convex._problem import MERGE_RTOL
from reference.convex._solve import MAX_PROBLEM_SIZE, METHODS, TIME_LIMIT
from reference.exceptions import SolveNotCertified
from reference.io._files import check_not_an_input, check_writable, dumps_json, load_npz
from reference.io._model_file import load_model, save_model
from reference.nn._losses import LOSSES
from reference.training._experiments import TRAIN_DEFAULTS
from reference.training._train import REGULARISERS

merge_fraction = _typed(float, lambda v: 0 <= v < 1, "a number in [0, 1)")   # --merge-rtol

NAME = "solve"
HELP = "certified optimum of one spline layer, weights fixed"
DESCRIPTION = None


def run(args):
    check_writable(args.out, "--out")
    check_not_an_input(args.out, "--out", {"MODEL": args.model, "--data": args.data})
    net = load_model(args.model)
    data = load_npz(args.data, "--data (X (M, N_0) and y (M,) or (M, N_L))", ["X", "y"])
    x = as_finite_array(data["X"], "--data: X", ndim=2)
    y = as_finite_array(data["y"], "--data: y")
    if x.shape[0] < 1 or y.shape[:1] != x.shape[:1]:
        raise ValueError(f"--data: expected X (M, N_0) and y with M >= 1 rows each, got "
                         f"shapes {x.shape} and {y.shape}")
    status = 0
    try:
        new, cert = convex.solve_layer(net, args.layer, x, y, loss=args.loss,
                                       lam=args.lam, reg=args.reg, grid=args.grid,
                                       size=args.size, lip_max=args.lip_max,
                                       solver=args.solver, max_size=args.max_size,
                                       method=args.method, polish=not args.no_polish,
                                       merge_rtol=args.merge_rtol, time_limit=args.time_limit,
                                       progress=not args.quiet)
    except SolveNotCertified as exc:        # the best feasible point, marked as such
        new, cert, status = exc.model, dict(exc.certificate, message=str(exc)), 3
    save_model(new, args.out, "--out")
    cert["out"] = args.out
    if args.json:
        print(dumps_json(cert))
        return status
    if status:
        print_not_certified(args, cert)
        return status
    if cert["returned_point"] != "solver":
        print_cheap_optimum(args, cert)
        return 0
    knots = cert["knots"]
    print(f"solved layer {args.layer} of {args.model} on {args.data} ({args.grid} grid, "
          f"{cert['method']} method, {args.loss} loss, lambda {args.lam:g}, {args.reg}"
          + (f", Lip <= {args.lip_max:g}" if args.lip_max else "") + ")")
    print(f"  {cert['solver']} status {cert['status']}, objective {cert['objective']:.10g}, "
          f"NumPy re-evaluation {cert['objective_check']:.10g} (agree to "
          f"{cert['check_rtol']:g} relative), primal - dual gap "
          + ("n/a" if cert["gap"] is None else f"{cert['gap']:.2e}")
          + f", {cert['seconds']:.2f} s")
    newton = cert.get("newton") or {}
    if newton.get("status") == "refined":
        print(f"  the point is {cert['solver']}'s refined by Newton's method on its knots "
              f"({newton.get('iterations')} iterations; the solver's gap is of its own point, "
              "hence n/a)")
    if cert["method"] in ("active", "one_neuron"):
        print(f"  active set: {cert['rounds']} rounds, points per neuron "
              f"{plain(cert['points_per_neuron'])} of {plain(cert['candidate_points'])} "
              "candidates; "
              f"optimality at every candidate ({cert['optimality_condition']}): worst "
              f"violation {cert['worst_violation']:.1e} x lambda_ref "
              f"{cert['violation_reference']:.3g} (tolerance {cert['violation_tolerance']:g}), "
              f"multiplier noise {cert['multiplier_noise']:.1e}, complementarity gap "
              f"{cert['complementarity_gap']:.1e}")
        print(f"  polishing {cert['polish']}; knots per neuron {plain(cert['knots_unpolished'])} "
              f"before polishing")
    print(f"  grid points per neuron {plain(cert['grid_points'])}; knots per neuron "
          f"{plain(knots)}; Lip per neuron {[round(v, 4) for v in plain(cert['lipschitz'])]}")
    print_knot_rule(cert)
    if cert["gauge_directions_pinned"]:
        print(f"  {cert['gauge_directions_pinned']} gauge directions (affine shifts invisible "
              f"at the data) pinned; minimum-norm representative returned (shift removed "
              f"{cert['gauge_shift_removed']:.3g})")
    print_verdict(cert)
    print(f"  model written to {args.out}")
    return 0


def print_knot_rule(cert) -> None:
    """How the knot count was decided (reference.convex._knots): the threshold, the jumps
    on either side of it, and the bracket [certain, possible] when it is not decided."""
    rule = cert.get("knot_rule")
    if not rule:
        return
    if rule["jump_accuracy"] is None:
        print(f"  knot count: jumps above the tolerance (max {max(rule['threshold']):.1e}); "
              "their accuracy is not estimated (the solver's point was not refined): the count "
              "may include solver noise")
        return
    print(f"  knot count {'decided' if rule['decided'] else 'NOT decided'} (of this point, "
          f"optimal to the solve's tolerance; the exact optimum's count may differ): a jump "
          f"counts above "
          f"max(tolerance, {rule['margin']:g} x its estimated accuracy) = thresholds "
          f"{[float(f'{t:.2e}') for t in rule['threshold']]}; smallest counted "
          f"{[float(f'{t:.3g}') for t in rule['smallest_counted']]}, largest uncounted "
          f"{[float(f'{t:.3g}') for t in rule['largest_uncounted']]}, jump accuracy "
          f"{[float(f'{t:.1e}') for t in rule['jump_accuracy']]}")
    if not rule["decided"]:
        print(f"  knots per neuron between [certain, possible] {plain(rule['knots_bracket'])} "
              f"(undecided candidates off the solved grid {plain(rule['undecided_candidates'])})")


def print_verdict(cert) -> None:
    """The certificate of the verdict (reference.certify)."""
    bound = cert["lower_bound"]
    print(f"  certified by the {cert['certified_by']} at tolerance "
          f"{cert['gap_tolerance']:.3g} (= {GAP_RTOL:g} max(objective, unit^2 "
          f"{cert['objective_unit']:.3g})); dual lower bound "
          + (f"n/a ({cert['lower_bound_note']})" if bound is None else f"{bound:.10g}"))
    print_points_and_merges(cert)


def print_not_certified(args, cert) -> None:
    """The human report of a result that is not certified optimal (exit 3)."""
    bound = cert["lower_bound"]
    print(f"NOT CERTIFIED: layer {args.layer} of {args.model} on {args.data} "
          f"({cert.get('method')} method, lambda {args.lam:g}, {args.reg}): status "
          f"{cert['status']}")
    print(f"  {cert['message']}")
    print(f"  best feasible point ({cert['returned_point']}): objective "
          f"{cert['objective_check']:.10g} (NumPy, an upper bound on the optimum); lower bound "
          + (f"n/a ({cert['lower_bound_note']})" if bound is None
             else f"{bound:.10g} (dual, NumPy)")
          + f"; {cert['seconds']:.2f} s")
    print_points_and_merges(cert)
    print(f"  model written to {args.out} (not certified optimal)")


def print_cheap_optimum(args, cert) -> None:
    """The human report when a cheap feasible point, not the solver's, is the certified
    optimum (reference.certify)."""
    print(f"solved layer {args.layer} of {args.model} on {args.data} ({cert['method']} "
          f"method, lambda {args.lam:g}, {args.reg}): the optimum is the "
          f"{cert['returned_point']}, objective {cert['objective_check']:.10g} (NumPy)")
    solver = cert["solver_objective"]
    print("  the solver's point: " + (f"objective {solver:.10g} (NumPy)" if solver is not None
                                      else cert.get("rejected", "none")))
    print(f"  knots per neuron {plain(cert['knots'])}; Lip per neuron "
          f"{[round(v, 4) for v in plain(cert['lipschitz'])]}")
    print_knot_rule(cert)
    print_verdict(cert)
    print(f"  model written to {args.out}")


def print_points_and_merges(cert) -> None:
    """The cheap feasible points' objectives and what the data grid merged."""
    print("  cheap feasible points: " + ", ".join(
        f"{p['point']} {p['objective']:.10g}" for p in cert["candidates"]))
    if any(cert.get("merged_points", [])):
        print(f"  merged points per neuron {plain(cert['merged_points'])} (closer than "
              f"--merge-rtol {cert['merge_rtol']:g} x spread; largest distance "
              f"{max(cert['merge_max_distance']):.3g}): the optimum is that of the merged "
              f"problem (no knot between merged points), an upper bound on the unmerged one")


def add_arguments(p) -> None:
    """The arguments of `solve`."""
    p.add_argument("model")
    p.add_argument("--data", required=True, help=".npz with X (M, N_0) and y (M,) or (M, N_L)")
    p.add_argument("--layer", type=nonneg_int, required=True,
                   help="index of the spline layer in the model's layer list")
    p.add_argument("--lam", type=nonneg_float, required=True, help="lambda >= 0")
    p.add_argument("--reg", default=TRAIN_DEFAULTS["reg"], choices=REGULARISERS)
    p.add_argument("--loss", default="squared", choices=LOSSES)
    p.add_argument("--grid", default="data", choices=["data", "uniform"])
    p.add_argument("--size", type=size_int, default=None,
                   help="uniform grid: K coefficients on the layer's range (default its own K)")
    p.add_argument("--lip-max", type=positive_float, default=None, help="constraint Lip <= V")
    p.add_argument("--solver", default="CLARABEL", help=(
        "cvxpy solver (default CLARABEL); only solvers of the loss's problem class are "
        "accepted (squared: QP/SOCP, logistic and xent: exponential cone)"))
    p.add_argument("--method", default=None, choices=METHODS, help=(
        "active: knots added where the optimality condition fails (default for --grid "
        "data); one_neuron: the active set with restricted problems of the size of the "
        "active set (default for a layer of one neuron on --grid data); full: every grid "
        "point at once (the only method for --grid uniform)"))
    p.add_argument("--no-polish", action="store_true",
                   help="active method: skip the polishing re-solve on the knots found")
    p.add_argument("--max-size", type=positive_float, default=MAX_PROBLEM_SIZE,
                   help="size guard: grid points + samples x neurons")
    p.add_argument("--merge-rtol", type=merge_fraction, default=MERGE_RTOL, help=(
        f"data grid: merge points closer than this x their spread (default {MERGE_RTOL:g}; "
        "0: only equal points); the result reports how many were merged"))
    p.add_argument("--time-limit", type=positive_float, default=TIME_LIMIT, help=(
        f"seconds (default {TIME_LIMIT:g}); past it the best feasible point is written, "
        "with its objective and a lower bound, status time_limit, exit 3"))
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.add_argument("--out", required=True, help="write the solved model here (.npz)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
