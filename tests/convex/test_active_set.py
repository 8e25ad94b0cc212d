"""The active-set coefficient solve (reference.active_set) against the full data-grid solve,
its optimality check, its certificate and its failure modes."""
import numpy as np
import pytest

from reference.convex import _active_set as active_set
from reference.convex import _problem as problem
from reference.convex import _representer as representer
from reference.convex import _solve as convex
from reference.convex._certify import Scaled
from reference.exceptions import SolveNotCertified
from reference.nn._network import KnotSplineActivation
from reference.testing import single_neuron, solve_instance

RTOL = 1e-7                     # the bar: objective equal to the full solve's


def test_knot_correlation_equals_the_direct_sum_with_ties():
    rng = np.random.default_rng(0)
    z = np.round(rng.normal(size=200), 1)              # many duplicated samples
    w = rng.normal(size=200)
    tau = np.concatenate([np.unique(z), [-9.0, 9.0, 0.05]])
    direct = np.maximum(z[None, :] - tau[:, None], 0.0) @ w
    np.testing.assert_allclose(active_set.knot_correlation(z, w, tau), direct,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lip_max", [None, 0.8])
@pytest.mark.parametrize("reg", ["tv2", "bv2"])
@pytest.mark.parametrize("loss,n_out", [("squared", 1), ("logistic", 1), ("xent", 3)])
def test_active_equals_full(loss, n_out, reg, lip_max):
    net, x, y = solve_instance((2, 3, n_out), m=50, loss=loss, seed=1)
    kw = dict(loss=loss, lam=0.1, reg=reg, lip_max=lip_max)
    new, cert = convex.solve_layer(net, 1, x, y, **kw)
    _, full = convex.solve_layer(net, 1, x, y, method="full", **kw)
    assert cert["method"] == "active" and full["method"] == "full"
    assert cert["objective"] == pytest.approx(full["objective"], rel=RTOL, abs=RTOL)
    assert cert["objective_check"] == pytest.approx(cert["objective"], rel=1e-6)
    assert cert["worst_violation"] <= cert["violation_tolerance"] + cert["multiplier_noise"]
    if lip_max is not None:
        assert max(cert["lipschitz"]) <= lip_max * (1 + 1e-6)
    assert isinstance(new.layers[1], KnotSplineActivation)
    assert all(p <= c for p, c in zip(cert["points_per_neuron"], cert["candidate_points"]))


def test_certificate_fields_and_polishing():
    net, x, y = single_neuron(m=300)
    new, cert = convex.solve_layer(net, 1, x, y, lam=0.5)
    for key in ("status", "gap", "objective", "objective_check", "rounds", "points_per_neuron",
                "candidate_points", "worst_violation", "violation_tolerance",
                "violation_reference", "multiplier_noise", "complementarity_gap",
                "optimality_condition", "knots", "knots_unpolished", "knot_tolerance",
                "polish", "active_history", "seconds"):
        assert key in cert, key
    assert cert["status"] == "optimal" and cert["violation_reference"] == 0.5
    assert cert["rounds"] == len(cert["active_history"]) >= 2     # needed several rounds
    assert cert["polish"].startswith("accepted")
    assert cert["objective"] <= cert["objective_unpolished"] + abs(cert["gap"]) + 1e-9
    # polished: every interior point of the returned spline is a knot, no more than before
    assert cert["knots"][0] == cert["points_per_neuron"][0] - 2
    assert cert["knots"][0] <= cert["knots_unpolished"][0]
    plain = representer.solve_plain_single_neuron(x[:, 0], y, 0.5)    # independent formulation
    assert cert["objective"] == pytest.approx(plain["objective"], rel=RTOL)
    _, off = convex.solve_layer(net, 1, x, y, lam=0.5, polish=False)
    assert off["polish"] == "off" and off["knots"] == off["knots_unpolished"]


def test_one_round_when_the_initial_points_suffice():
    """With a large lambda the optimum is affine (no knot): the first restricted solve,
    on the initial quantile points, already satisfies the condition everywhere."""
    net, x, y = single_neuron(m=300)
    _, cert = convex.solve_layer(net, 1, x, y, lam=1e4)
    _, full = convex.solve_layer(net, 1, x, y, lam=1e4, method="full")
    assert cert["rounds"] == 1 and cert["knots"] == [0]
    assert cert["points_per_neuron"] == [2]                   # polished down to the ends
    assert cert["objective"] == pytest.approx(full["objective"], rel=RTOL)


def test_optimality_flags_a_restricted_solution_that_misses_knots():
    net, x, y = single_neuron(m=200)
    _, y2, z, a_mat, c = convex.prepare(net, 1, x, y, "squared")
    grids = convex.data_grid(z, "tv2")
    few = active_set.initial_active(grids, 4)
    run = active_set.solve_active(z, a_mat, c, y2, "squared", "tv2", grids, 0.5, None,
                                  "CLARABEL", start=few, max_rounds=1)
    assert run.status == "round limit" and not run.optimality.accepted
    assert run.optimality.worst > 1.0                # |phi| > 2 lambda somewhere
    # the closed form is the direct sum: |sum_m r_m A (z_m - tau)_+| - lambda over lambda
    layer = KnotSplineActivation(*zip(*run.problem.splines()))
    r = layer.forward(z)[0] @ a_mat.T + c - y2
    direct = np.abs(np.maximum(z[:, 0][None] - grids[0][:, None], 0) @ (r @ a_mat)[:, 0])
    inactive = ~run.active[0]
    np.testing.assert_allclose(run.optimality.violation[0][inactive],
                               (direct[inactive] - 0.5) / 0.5, rtol=1e-9, atol=1e-9)


def test_linear_program_agrees_with_the_closed_form_when_the_bound_is_slack():
    """With L_max far above every slope the Lip form of the check (a linear program in the
    multipliers) must reach the closed form's verdict."""
    net, x, y = solve_instance(m=80)
    _, y2, z, a_mat, c = convex.prepare(net, 1, x, y, "squared")
    grids = convex.data_grid(z, "tv2")
    for start, converged in ((active_set.initial_active(grids, 4), False), (None, True)):
        run = active_set.solve_active(z, a_mat, c, y2, "squared", "tv2", grids, 0.1, None,
                                      "CLARABEL", start=start,
                                      max_rounds=1 if start else None)
        layer = KnotSplineActivation(*zip(*run.problem.splines()))
        w = active_set.loss_weights(layer.forward(z)[0], a_mat, c, y2, "squared")
        closed = active_set.optimality(layer, z, w, grids, run.active, 0.1, "tv2")
        lp = active_set.optimality(layer, z, w, grids, run.active, 0.1, "tv2", lip_max=1e6)
        assert closed.accepted == lp.accepted == converged
        if not converged:                              # the same violation, up to M = 0
            assert lp.worst == pytest.approx(closed.worst, rel=1e-6)


def test_lambda_zero_and_tiny():
    """lambda = 0: violations are measured against the floor of lambda_ref (module
    docstring); the active set still reaches the full optimum, to the certificates'
    tolerance (both objectives are solver noise, ~1e-9 of the objective unit)."""
    net, x, y = solve_instance(m=30, seed=3)
    for lam in (0.0, 1e-12):
        _, cert = convex.solve_layer(net, 1, x, y, lam=lam)
        _, full = convex.solve_layer(net, 1, x, y, lam=lam, method="full")
        assert cert["status"] == full["status"] == "optimal"
        assert cert["objective"] == pytest.approx(
            full["objective"], rel=1e-6, abs=cert["gap_tolerance"] + full["gap_tolerance"])
        assert cert["violation_reference"] > 0


def test_duplicated_and_merged_points():
    net, x, y = single_neuron(m=120)
    x = np.concatenate([x, x[:40], x[:40] + 1e-13])         # duplicates, merged neighbours
    y = np.concatenate([y, y[:40] + 0.1, y[:40]])
    _, cert = convex.solve_layer(net, 1, x, y, lam=0.3)
    _, full = convex.solve_layer(net, 1, x, y, lam=0.3, method="full")
    assert cert["candidate_points"] == full["grid_points"] == [120]
    assert cert["objective"] == pytest.approx(full["objective"], rel=RTOL)


def test_path_starts_each_lambda_from_the_previous_active_set():
    net, x, y = solve_instance(m=60)
    path = convex.solve_path(net, 1, x, y, [0.05, 0.5])
    full = convex.solve_path(net, 1, x, y, [0.05, 0.5], method="full")
    for (_, _, a), (_, _, f) in zip(path, full):
        assert a["objective"] == pytest.approx(f["objective"], rel=RTOL)


def test_round_limit_and_stall_go_to_the_verdict(monkeypatch):
    """Not converged: no solver point, the reason in `rejected`, and the last restricted
    solution (a feasible point) handed to reference.certify, which certifies it by the NumPy
    dual bound or refuses it with the best point known (exit 3), never an error without one."""
    net, x, y = single_neuron(m=200)
    _, y2, z, a_mat, c = convex.prepare(net, 1, x, y, "squared")
    grids = convex.data_grid(z, "tv2")
    scaled = Scaled.build(z, a_mat, c, y2, "squared", "tv2", 0.5, None)
    new, cert, _, extra, stopped = active_set.solve_layer_active(
        net, 1, x, y2, scaled, grids, solver="CLARABEL", max_rounds=1)
    assert new is None and stopped is None and "status 'round limit'" in cert["rejected"]
    assert [name for name, _ in extra] == ["last restricted solution"]

    def unresolvable(layer, z, w, grids, active, lam, reg, lip_max=None, scale=1.0,
                     weights=None):
        return active_set.Optimality([np.where(m, -np.inf, -1.0) for m in active], 0.0,
                                     0.5, lam, "test", 1e-6, 0.0)   # noise beyond NOISE_MAX
    monkeypatch.setattr(active_set, "optimality", unresolvable)
    with pytest.raises(SolveNotCertified, match="stalled") as caught:
        convex.solve_layer(net, 1, x, y, lam=0.5)
    cert = caught.value.certificate
    assert cert["status"] == "not_optimal" and cert["lower_bound"] < cert["objective_check"]
    assert problem.numpy_objective(caught.value.model, 1, x, y, "squared", 0.5, "tv2") \
        == cert["objective_check"]

    with pytest.raises(ValueError, match="max_rounds: expected an integer >= 1"):
        active_set.solve_active(z, a_mat, c, y2, "squared", "tv2", grids, 0.5, None,
                                "CLARABEL", max_rounds=0)


def test_method_choice_is_checked():
    net, x, y = single_neuron(m=20)
    with pytest.raises(ValueError, match="method"):
        convex.solve_layer(net, 1, x, y, method="fast")
    with pytest.raises(ValueError, match="method: 'active' works on the data grid only"):
        convex.solve_layer(net, 1, x, y, grid="uniform", method="active")
    _, cert = convex.solve_layer(net, 1, x, y, grid="uniform", size=9)
    assert cert["method"] == "full"


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 4])
def test_active_equals_full_two_layer_net_slow(n):
    net, x, y = solve_instance((2, n, 1), m=1500, seed=n)
    _, cert = convex.solve_layer(net, 1, x, y, lam=0.1)
    _, full = convex.solve_layer(net, 1, x, y, lam=0.1, method="full")
    assert cert["objective"] == pytest.approx(full["objective"], rel=RTOL)
    assert max(cert["points_per_neuron"]) < 1500 // 2
