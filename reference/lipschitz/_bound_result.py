"""The result types of the Lipschitz methods: `BoundResult` (one method's bound and its
certificate) and `LadderResult` (the ladder: one BoundResult per method).

A leaf module: it imports only reference._result.
"""
from __future__ import annotations

from reference._result import Result


class BoundResult(Result):
    """A Lipschitz bound of a network with its certificate: a dict whose keys are attributes.

    Returned by `lower`, `exact_1d`, `exact_1d_on_box`, `regions_2d`, `exact_milp`, `lipsdp`
    (and `lipsdp_neuron`, `lipsdp_layer`) and by every method of the ladder (`run_method`,
    the values of `ladder`).  Like scipy's ``OptimizeResult`` it is a ``dict`` subclass:
    ``result.value`` is ``result["value"]``, and it serialises to the same JSON as the dict
    (``json.dumps``, reference.io.dumps_json), pickles and compares as one.

    Each method gives the keys below marked with its name in brackets, and no other
    ("ladder": what a method of the ladder adds to its function's keys, in `run_method`);
    some are present only in some outcomes (said with the key).  Numbers are in the
    network's units; "the box" is [-box, box]^N_0.

    Attributes
    ----------
    value : float or None
        [lower, exact_1d, regions_2d, exact_milp, lipsdp, ladder] The bound: a lower bound
        (lower), the exact constant when certified (exact_1d over R, regions_2d and
        exact_milp over the box; None otherwise, with `reason` and the bracket
        lower_bound, upper_bound), LipSDP's certified upper bound (lipsdp); in the ladder,
        None when the method does not apply, is refused by its size guard, leaves the
        float64 range or could not certify a number (with `reason`).
    kind : str
        [ladder] What value is: "lower" (value <= Lip), "upper" (Lip <= value), "exact"
        (certified, lower_bound <= Lip <= upper_bound) or "bracket" (an exact method
        without a certified value); reference.lipschitz._ladder.KINDS.
    seconds : float
        [exact_1d, regions_2d, exact_milp, lipsdp, ladder] Wall-clock time of the run.
    domain : str
        [exact_1d, regions_2d, exact_milp, ladder] Where the constant is taken: "R",
        "R^N_0" (the closed forms), or "box [-b, b]^N_0".
    method : str
        [ladder] The exact method used: "breakpoint propagation", "linear regions
        (polygons)" or "MILP (scipy.optimize.milp, HiGHS)" (the "exact" method only).
    reason : str
        [exact_1d, regions_2d, exact_milp, ladder] Why there is no value (only then): the
        limit reached, the check that failed, why the method does not apply.
    jacobian_norm : float
        [lower, ladder] The largest ||J(x)||_{p->p} found (= value).
    pair_ratio : float
        [lower, ladder] Secant ratio ||f(x_pair) - f(x)||_p / ||x_pair - x||_p of the pair
        of points of the box at the best point.
    x : numpy.ndarray or list of float
        [lower, ladder] (N_0,) the first point of that pair (a list in the ladder).
    x_pair : numpy.ndarray or list of float
        [lower, ladder] (N_0,) the second point of that pair (a list in the ladder).
    points_evaluated : int
        [lower, ladder] How many points the search evaluated.
    seed : int
        [lower, ladder] The seed of the search.
    box : float
        [lower] The half-width of the box searched.
    status : str
        [exact_1d, regions_2d, exact_milp, lipsdp, ladder] "optimal" when certified; the
        exact methods otherwise "not_certified", "not_attained", "solver_tolerance",
        "time_limit", "max_pieces" or "max_regions"; lipsdp: the solver's status.
    certified_exact : bool
        [exact_1d, regions_2d, exact_milp, ladder] Whether value is the certified exact
        constant (status "optimal").
    lower_bound : float or None
        [exact_1d, regions_2d, exact_milp, ladder] Certified lower end of the bracket
        lower_bound <= Lip <= upper_bound (= value when certified, except exact_milp's
        tolerance).
    upper_bound : float or None
        [exact_1d, regions_2d, exact_milp, ladder] Certified upper end of the bracket
        (None when not finite in float64).
    lower_bound_certificate : str
        [exact_1d, regions_2d, exact_milp, ladder] What the lower end is (exact_1d: only
        when stopped).
    upper_bound_certificate : str
        [exact_1d, regions_2d, exact_milp, ladder] What the upper end is (exact_1d: only
        when stopped).
    upper_margin_kind : str
        [exact_1d, regions_2d, exact_milp, ladder] What the upper end's margin is:
        "jacobian_rounding", "rounding_bound", "tolerance" or "closed_form"
        (reference.lipschitz._exact.UPPER_MARGIN_KINDS).
    rounding_bound : float
        [exact_1d, regions_2d, lipsdp, ladder] Absolute bound on the rounding of value: of a
        computed Jacobian norm (exact_1d, regions_2d), LipSDP's proven bound or, when
        capped, the closed-form margin of the layer-wise bound (lipsdp); in the ladder also
        ECLipsE's (value + it is proven by its block Cholesky certificate).
    attained : bool
        [exact_1d, regions_2d, exact_milp, ladder] Whether the value is the network's own
        slope at a float64 point (else the norm of a pattern proven non-empty in exact
        arithmetic).
    pieces : int
        [exact_1d, ladder] Segments of the final partition of the line (of the part
        found so far when stopped).
    linear_pieces : int
        [exact_1d, ladder] Segments after merging neighbours of equal slope (relative
        CHANGE_RTOL).
    breakpoints : numpy.ndarray
        [exact_1d] (B,) the sorted finite ends of the segments.
    argmax_point : float
        [exact_1d, ladder] A point of the segment of largest slope (status "optimal" only).
    unattained_pieces : int
        [exact_1d, ladder] Segments without a point where floating point decides their
        pattern.
    undecided_slivers : int
        [exact_1d, regions_2d, ladder] Cells that keep no length (area) in float64, kept
        with a bound of every slope they could hold.
    exact_checked : int
        [exact_1d, regions_2d, ladder] Patterns decided in exact rational arithmetic.
    exact_empty : int
        [exact_1d, regions_2d, ladder] Of those, the ones proven empty.
    exact_regions : int
        [exact_1d, regions_2d, ladder] Regions held by the patterns proven non-empty.
    box_value : float or None
        [exact_1d_on_box, ladder] The exact constant over the box (None when not
        certified).
    box_reason : str
        [exact_1d_on_box, ladder] Why box_value is None (only then).
    box_upper_bound : float or None
        [exact_1d_on_box, ladder] Certified upper bound over the box when box_value is None.
    box_pieces : int or None
        [exact_1d_on_box, ladder] Segments of the box's partition.
    witness : float or None
        [exact_1d_on_box, regions_2d, exact_milp, ladder] Secant ratio of the witness pair
        (exact_1d_on_box, regions_2d), the witness pattern's norm (exact_milp; None when
        no pattern has one).
    witness_x : list of float or numpy.ndarray
        [exact_1d_on_box, regions_2d, exact_milp, ladder] (N_0,) the witness point (a
        list; exact_milp: an array, a list in the ladder).
    witness_x_pair : list of float
        [exact_1d_on_box, regions_2d, ladder] (N_0,) the second point of the witness pair
        (f affine between the two).
    regions : int
        [regions_2d, ladder] Linear regions (polygons) of the partition of the box (found
        so far when stopped).
    area_error : float
        [regions_2d, ladder] |sum of the polygons' areas - the box's area| / the box's
        area.
    jacobian_checked : int
        [regions_2d, ladder] Attained regions whose Jacobian was re-evaluated.
    jacobian_mismatches : int
        [regions_2d, ladder] Of those, the ones that disagreed.
    unattained_regions : int
        [regions_2d, ladder] Polygons without a point where floating point decides their
        pattern.
    argmax_polygon : list of list of float
        [regions_2d, ladder] (V, 2) the vertices of the region of the witness.
    witness_pair : dict
        [exact_milp, ladder] {x, x_pair, ratio, source}: a pair of points of the box whose
        secant ratio realises the lower end, and how it was found.
    tolerance : float
        [exact_milp, ladder] HiGHS's bound is trusted to this (absolute):
        MILP_TOLERANCE x max(|U|, layerwise).
    milp_objective : float or None
        [exact_milp, ladder] HiGHS's largest objective.
    milp_dual_bound : float or None
        [exact_milp, ladder] HiGHS's largest dual bound.
    mip_gap : float
        [exact_milp, ladder] HiGHS's largest relative MIP gap (every MILP solved only).
    milps : int
        [exact_milp, ladder] MILPs posed (N_L for p = inf, N_0 for p = 1).
    milps_solved : int
        [exact_milp, ladder] MILPs solved before the time limit.
    cuts : int
        [exact_milp, ladder] Patterns cut off (proven without interior in the box).
    binaries : int
        [exact_milp, ladder] Binaries of the largest MILP.
    attempts : list of str
        [exact_milp, lipsdp, ladder] Every solver run and how it ended (HiGHS's retries;
        each LipSDP solver and margin tried).
    solver_value : float
        [lipsdp, ladder] sqrt of the solver's rho.
    relative_gap : float
        [lipsdp, ladder] (value - solver_value) / value.
    accuracy : float
        [lipsdp, ladder] Bound on (sdp_value - optimum) / sdp_value.
    accuracy_certified : bool
        [lipsdp, ladder] Whether accuracy is proven (by the dual matrix) rather than the
        solver's estimate.
    optimum_lower : float or None
        [lipsdp, ladder] Proven lower bound on LipSDP's optimum (None when not certified).
    inaccurate : bool
        [lipsdp, ladder] accuracy above INACCURATE_RTOL (1e-3).
    dual_certificate : str
        [lipsdp, ladder] How accuracy was obtained.
    solver : str
        [lipsdp, ladder] The SDP solver that gave the certified multipliers (or "none
        (affine network)", "none (constant network)").
    iterations : int
        [lipsdp, ladder] The solver's iterations.
    build_seconds : float
        [lipsdp, ladder] Time to build the LMI data.
    reduction : dict or None
        [lipsdp, ladder] The exact reduction of the input block: n0, rank, dropped,
        tolerance, largest_dropped, side (None with reduce=False).
    lmi_side : int
        [lipsdp, ladder] N, the side of the unreduced LMI.
    absorbed_neurons : int
        [lipsdp, ladder] Linear hidden neurons folded into the LMI data.
    certificate : str
        [lipsdp, ladder] The certificate of value, as a sentence (both, when capped).
    rounding_useless : bool
        [lipsdp, ladder] rounding_bound above 1e-3 relative (or infinite).
    normalisation : dict
        [lipsdp, ladder] The powers of two of the normalisation: weight_exponents,
        slope_exponents, neuron_exponents, equilibration_sweeps, exponent, lossless.
    sdp_value : float
        [lipsdp, ladder] LipSDP's own certified bound (= value unless capped).
    sdp_rounding_bound : float
        [lipsdp, ladder] Its rounding bound.
    layerwise : float or None
        [lipsdp, ladder] The layer-wise bound prod_l ||diag(L_l) W_l||_2 (None outside the
        float64 range).
    capped_by_layerwise : bool
        [lipsdp, ladder] Whether value is the layer-wise bound because LipSDP's was above
        it.
    stages : list of str
        [ladder] ECLipsE and ECLipsE-Fast: how each hidden layer's multipliers were chosen
        (closed form, or the stage SDP's solver and status, and any shrink).
    """

    __slots__ = ()


class LadderResult(Result):
    """The Lipschitz ladder of a network: one `BoundResult` per method asked, in ladder
    order (the methods not asked are absent).

    Returned by `ladder`.  A ``dict`` subclass with attribute access:
    ``result.exact.value`` is ``result["exact"]["value"]``.

    Attributes
    ----------
    lower : BoundResult
        [ladder] Sampled lower bound over the box.
    exact : BoundResult
        [ladder] Exact value (exact_1d, regions_2d or the MILP) or its bracket.
    lipsdp_neuron : BoundResult
        [ladder] LipSDP-neuron (p = 2).
    lipsdp_layer : BoundResult
        [ladder] LipSDP-layer (p = 2).
    eclipse : BoundResult
        [ladder] ECLipsE (p = 2): one small SDP per hidden layer.
    eclipse_fast : BoundResult
        [ladder] ECLipsE-Fast (p = 2): its closed form.
    layerwise : BoundResult
        [ladder] The layer-wise bound prod_l ||diag(L_l) W_l||_{p->p}.
    theorem1 : BoundResult
        [ladder] Theorem 1 with the activations' Lipschitz constants.
    theorem1_bv2 : BoundResult
        [ladder] Theorem 1 with their BV2 norms.
    """

    __slots__ = ()
