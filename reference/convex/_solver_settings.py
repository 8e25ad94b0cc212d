"""Which cvxpy solvers a coefficient problem may use, and the settings they are run with
(reference.convex): the problem classes of the losses and the installed solvers that can
solve them (`check_solver`), the attempts of one solve in order (`solver_attempts`: tight
tolerances first, then the defaults, then CLARABEL's retries), and the passes of a solve
(`refine_passes`).  Imports only the loss records (reference.nn._losses: each loss's problem
class) and cvxpy, when called.
"""
from __future__ import annotations

from reference._registry import RecordView
from reference.nn._losses import LOSS_RECORDS

TIGHT_SETTINGS = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12,
                  "tol_ktratio": 1e-10}
REFINED_SETTINGS = {**TIGHT_SETTINGS, "static_regularization_constant": 1e-12}
# ^ CLARABEL again when NumPy does not certify the tight solve's point: its default static
#   regularisation (1e-8) biased the point of single_neuron(500), lambda 1e-10, by 1.7e-4
#   (CLARABEL's gap: 1e-13); 1e-12 gives the optimum, but stalls the exponential cones
SOLVER_TIGHT = {     # each solver's first attempts, before its defaults: (label, settings)
    "CLARABEL": (("tolerances 1e-12", TIGHT_SETTINGS),
                 ("tolerances 1e-12, KKT steps refined to 1e-14",
                  {**TIGHT_SETTINGS, "iterative_refinement_reltol": 1e-14,
                   "iterative_refinement_abstol": 1e-14, "iterative_refinement_max_iter": 50}),
                 ("tolerances 1e-12, steps 0.9", {**TIGHT_SETTINGS, "max_step_fraction": 0.9}),
                 ("tolerances 1e-10", {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10,
                                       "tol_feas": 1e-10, "tol_ktratio": 1e-8})),
    "CVXOPT": (("tolerances 1e-10", {"abstol": 1e-10, "reltol": 1e-10}),),
    "OSQP": (("tolerances 1e-10", {"eps_abs": 1e-10, "eps_rel": 1e-10, "polishing": True,
                                   "max_iter": 200_000}),),
    "SCS": (("tolerances 1e-10", {"eps_abs": 1e-10, "eps_rel": 1e-10,
                                  "max_iters": 200_000}),)}
# ^ the exponential cones of the logistic and cross-entropy losses often stop short of
#   1e-12 (optimal_inaccurate), and CLARABEL's defaults then leave slope changes of up to
#   4e-4 relative that the optimum does not have (a 3-neuron xent solve at z x 1e6: knots
#   [4, 3, 0] for [1, 2, 0]); each variant above rescued cases the others did not (measured
#   on tests/test_solve_scale.py's matrix).  CVXOPT's feastol stays at its 1e-7 (1e-9 ended in
#   a singular KKT matrix).
CLARABEL_RETRIES: tuple[dict[str, object], ...] = (
                    {}, {"static_regularization_constant": 1e-7},    # KKT factorisation failed
                    {"equilibrate_enable": False}, {"static_regularization_constant": 1e-10},
                    {"max_iter": 1000, "tol_ktratio": 1e-5})

PROBLEM_CLASSES = {   # class -> (description, cones a conic solver needs; QP solvers?)
    "lp": ("a linear program", (), True),
    "qp": ("a quadratic / second-order cone program", ("SOC",), True),
    "exp": ("an exponential cone program", ("ExpCone",), False),
}
LOSS_CLASS = RecordView(lambda: {name: loss.problem_class   # loss -> class, from its record
                                 for name, loss in LOSS_RECORDS.items()})


def usable_solvers(kind: str) -> list:
    """The installed cvxpy solvers that can solve a problem of class `kind` (PROBLEM_CLASSES),
    from cvxpy's own solver tables: a conic solver with the cones needed, or a QP solver
    where the class allows it."""
    import cvxpy as cp
    from cvxpy.reductions.solvers.defines import SOLVER_MAP_CONIC, SOLVER_MAP_QP

    _, cones, qp = PROBLEM_CLASSES[kind]
    out = []
    for name in cp.installed_solvers():
        conic = SOLVER_MAP_CONIC.get(name)
        supported = {c.__name__ for c in conic.SUPPORTED_CONSTRAINTS} if conic else set()
        if (conic and set(cones) <= supported) or (qp and name in SOLVER_MAP_QP):
            out.append(name)
    return out


def check_solver(solver: str, kind: str = "qp") -> str:
    """The solver name, upper-cased, if it is installed and can solve a problem of class
    `kind` ("lp", "qp": squared loss, "exp": logistic and cross-entropy); else a ValueError
    naming the argument and the solvers that can."""
    name = str(solver).upper()
    usable = usable_solvers(kind)
    if name not in usable:
        raise ValueError(f"solver: {solver!r} cannot solve {PROBLEM_CLASSES[kind][0]} (or is "
                         f"not installed); expected one of {usable}")
    return name


def refine_passes(solver: str) -> tuple:
    """The settings of the passes of one solve (`_solve_lams`): (None,) and for CLARABEL
    also REFINED_SETTINGS, tried when the first pass's point is not certified."""
    return (None, REFINED_SETTINGS) if solver == "CLARABEL" else (None,)


def solver_attempts(solver: str, settings: dict | None = None) -> list:
    """[(label, settings, trusted)] in the order tried: the solver's tight tolerances
    (SOLVER_TIGHT, where known), its defaults, and for CLARABEL the other CLARABEL_RETRIES,
    each with `settings` on top (CLARABEL only; an attempt equal to an earlier one is left
    out).  trusted: tolerances or defaults only, and no `settings` (see
    `CoefficientProblem.solve`)."""
    out: list[tuple[str, dict[str, object], bool]] = []
    retries = CLARABEL_RETRIES if solver == "CLARABEL" else ({},)
    settings = settings if solver == "CLARABEL" else None
    for label, options in list(SOLVER_TIGHT.get(solver, ())) + [
            (str(r) if r else "default settings", r) for r in retries]:
        merged = {**options, **(settings or {})}
        if all(merged != seen for _, seen, _ in out):
            trusted = not settings and (not options or label.startswith("tolerances"))
            out.append((label if not settings else str(merged), merged, trusted))
    return out
