"""The result type of a coefficient solve: `SolveCertificate`, the certificate of the model
that `solve_layer` and `solve_path` return (and that a SolveNotCertified carries).

A leaf module: it imports only reference._result.
"""
from __future__ import annotations

from reference._result import Result


class SolveCertificate(Result):
    """The certificate of a coefficient solve: a dict whose keys are attributes.

    Returned by `solve_layer` (with the new network), by `solve_path` (one per lambda) and
    carried by SolveNotCertified (``exc.certificate``, status "time_limit" or "not_optimal").
    Like scipy's ``OptimizeResult`` it is a ``dict`` subclass: ``cert.objective`` is
    ``cert["objective"]``; it serialises to the same JSON as the dict, pickles and compares
    as one.

    Each method gives the keys marked with its name in brackets ("full": every grid point at
    once; "active": the active set), and no other; some are present only in some outcomes
    (said with the key).  Objectives are in the caller's units (y and lambda as given).

    Attributes
    ----------
    status : str
        [full, active] "optimal" (certified), else "time_limit" or "not_optimal" (then in a
        SolveNotCertified).
    certified_by : str or None
        [full, active] What certifies the optimum: "dual bound" (the NumPy dual bound, within
        gap_tolerance) or "solver" (its gap, when no dual bound exists); None when not
        certified.
    objective : float
        [full, active] The returned point's objective (the solver's, in the caller's units;
        the NumPy one when another point is returned).
    objective_check : float
        [full, active] The objective re-evaluated in NumPy on the returned model.
    lower_bound : float or None
        [full, active] The NumPy dual lower bound on the optimum (None when it does not
        exist, with lower_bound_note).
    lower_bound_note : str or None
        [full, active] Why there is no lower bound (None when there is one).
    gap_tolerance : float
        [full, active] GAP_RTOL x max(|objective|, objective_unit): the tolerance of the
        verdict.
    gap : float or None
        [full, active] The solver's primal - dual objective (CLARABEL; None for others).
    complementarity_gap : float
        [active] The active set's complementarity gap, in the caller's units.
    candidates : list of dict
        [full, active] The cheap feasible points compared: {point, objective} each.
    returned_point : str
        [full, active] Which point is returned: "solver", "zero spline", "affine (least
        squares)", ...
    solver_objective : float or None
        [full, active] The solver's point's NumPy objective (None without a point).
    solver : str
        [full, active] The cvxpy solver.
    attempts : list of str
        [full, active] Every solver run and how it ended.
    method : str
        [full, active] "full" or "active".
    method_certified : bool
        [full, active] Whether the method's own certificate holds (the solve ran with the
        solver's default settings; the active set: its optimality check accepted).
    method_note : str
        [full, active] Why method_certified is False (the gap came from a retry with changed
        settings; only then).
    rejected : str
        [full, active] Why the solver's point was not used (inaccurate, or the active set
        did not converge; only then).
    refined : str
        [full, active] The first pass was not certified and the problem was solved again
        with these settings (only then).
    seconds : float
        [full, active] Wall-clock time (solve_path: since the previous lambda's end).
    knots : list of int
        [full, active] (N,) knots per neuron of the returned model.
    knot_tolerance : list of float
        [full, active] (N,) the tolerance of `knot_counts` per neuron (the floor of the
        knot threshold).
    knots_bracket : list of list
        [full, active] (N,) [certain, possible] knots per neuron (reference.convex._knots:
        certain = jumps nonzero beyond their estimated accuracy, None when it is not estimated;
        possible adds the undecided jumps and candidates); equal ends: the count is decided.
    knot_rule : dict
        [full, active] How the knot count was decided: ``threshold``, ``jump_accuracy``
        (None when not estimated), ``smallest_counted``, ``largest_uncounted``,
        ``separation`` (their ratio), ``undecided_candidates``, ``knots_bracket``,
        ``decided``, ``margin`` and ``rule`` (reference.convex._knots.knot_rule).
    newton : dict
        [full, active] The Newton refinement of the restricted solve (logistic and
        cross-entropy losses without a Lip bound; reference.convex._newton): ``status``,
        ``iterations``, ``support``, ``jump_accuracy`` (internal units), ``decrement``,
        ``solver_objective``, ``solver_gap`` (only then).
    lipschitz : list of float
        [full, active] (N,) Lipschitz constant of each returned spline.
    grid_points : list of int
        [full, active] (N,) grid points per neuron of the solved (returned) problem.
    check_rtol : float
        [full, active] Relative tolerance of objective_check against objective.
    gauge_directions_pinned : int
        [full, active] Affine shifts invisible at the data, pinned during the solve.
    gauge_shift_removed : float
        [full, active] Norm of the shift to the minimum-norm representative.
    lam : float
        [full, active] lambda, as given.
    reg : str
        [full, active] The regulariser ("tv2", "bv2").
    loss : str
        [full, active] The loss ("squared", "logistic", "xent").
    lip_max : float or None
        [full, active] The bound on every spline's Lipschitz constant (None: none).
    unit : float
        [full, active] The internal scale T of the values (reference.convex._certify).
    objective_unit : float
        [full, active] T^2, the objective's internal unit.
    merged_points : list of int
        [full, active] (N,) data points merged into a neighbour, per neuron (data grid).
    merge_max_distance : list of float
        [full, active] (N,) the largest distance merged, per neuron (data grid).
    merge_rtol : float
        [full, active] The merge tolerance (data grid).
    rounds : int
        [active] Rounds of the active set.
    candidate_points : list of int
        [active] (N,) data-grid points per neuron.
    points_per_neuron : list of int
        [active] (N,) knots (grid points) of the returned model per neuron.
    active_history : list of dict
        [active] {points, worst} per round.
    worst_violation : float
        [active] The largest violation of the optimality condition, relative to
        violation_reference.
    violation_tolerance : float
        [active] The violation accepted.
    violation_reference : float
        [active] lambda_ref, in lambda's units.
    optimality_condition : str
        [active] Which form of the optimality check.
    multiplier_noise : float
        [active] The residual of the restricted problem's KKT conditions.
    knots_unpolished : list of int
        [active] (N,) knots before polishing.
    polish : str
        [active] "accepted ...", "rejected: ...", "off" or "skipped (time limit)".
    polish_objective : float or None
        [active] The polished solve's objective (None without polishing).
    objective_unpolished : float
        [active] The objective before polishing (polishing accepted only).
    """

    __slots__ = ()
