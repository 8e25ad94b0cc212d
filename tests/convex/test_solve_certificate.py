"""The verdict of a coefficient solve (reference.certify): the same answer at every scale
(issue 23), "optimal" only with a certificate and no cheaper known point (issue 21 item 4),
merged points reported (item 5), a time limit with the best feasible point and progress
(item 10)."""
import copy
import io
import json
import sys

import numpy as np
import pytest

from reference.cli import main
from reference.convex import _certify as certify
from reference.convex import _problem as problem
from reference.convex import _solve as convex
from reference.exceptions import SolveNotCertified
from reference.io._model_file import load_model, save_model
from reference.nn._network import KnotSplineActivation
from reference.testing import single_neuron, solve_instance

SCALES = (1e-8, 2.0 ** -20, 1e-3, 1.0, 1e3, 2.0 ** 20, 1e8)
SAME_RTOL = 1e-7               # the bar: objectives / s^2 equal to this across scales


def zero_spline_objective(net, x, y, lam, reg, loss="squared"):
    """The objective of the all-zero spline layer 1, evaluated here independently."""
    zero = copy.deepcopy(net)
    n = net.layers[1].n_in
    zero.layers[1] = KnotSplineActivation([np.array([0.0, 1.0])] * n, [np.zeros(2)] * n)
    return problem.numpy_objective(zero, 1, x, y, loss, lam, reg)


# ------------------------------------------------------------------ issue 23: every scale
@pytest.mark.parametrize("reg", ["tv2", "bv2"])
@pytest.mark.parametrize("method,grid", [("active", "data"), ("full", "data"),
                                         ("full", "uniform")])
def test_squared_loss_law_y_and_lambda_times_s(reg, method, grid):
    """y - c and lambda multiplied by s (c = 0 here): the optimum's objective times s^2,
    its splines times s, the same status and knots (the weights fixed, the objective is the
    data term + lambda R only: no weight-decay term enters)."""
    net, x, y = single_neuron(m=300)
    results = []
    for s in SCALES:
        new, cert = convex.solve_layer(net, 1, x, y * s, lam=1.0 * s, reg=reg, grid=grid,
                                       method=method, size=41)
        results.append((s, new, cert))
    _, ref_model, ref = results[3]
    for s, new, cert in results:
        assert cert["status"] == "optimal", s
        assert cert["objective"] / s ** 2 == pytest.approx(ref["objective"], rel=SAME_RTOL)
        assert cert["knots"] == ref["knots"], s
        grid_points = np.linspace(-2, 2, 101)[:, None]
        np.testing.assert_allclose(new.layers[1].forward(grid_points)[0] / s,
                                   ref_model.layers[1].forward(grid_points)[0],
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("loss,n_out", [("logistic", 1), ("xent", 3)])
@pytest.mark.parametrize("reg", ["tv2", "bv2"])
@pytest.mark.parametrize("method,grid", [("active", "data"), ("full", "uniform")])
def test_classification_law_inputs_times_s_first_weights_over_s(loss, n_out, reg, method,
                                                                  grid):
    """Inputs times s and the first weights divided by s: the same pre-activations (to
    rounding), so the same objective, status and knots."""
    net, x, y = solve_instance((2, 3, n_out), m=50, loss=loss, seed=1)
    kw = dict(loss=loss, lam=0.1, reg=reg, method=method, grid=grid)
    _, ref = convex.solve_layer(net, 1, x, y, **kw)
    for s in (1e-8, 2.0 ** -20, 1e3, 1e8):
        scaled = copy.deepcopy(net)
        scaled.layers[0].params["weight"] = net.layers[0].params["weight"] / s
        _, cert = convex.solve_layer(scaled, 1, x * s, y, **kw)
        assert cert["status"] == ref["status"] == "optimal"
        assert cert["objective"] == pytest.approx(ref["objective"], rel=SAME_RTOL)
        assert cert["knots"] == ref["knots"], s


# ------------------------------------------------------ issue 21 item 4: "optimal" earned
@pytest.mark.parametrize("method", ["active", "full"])
def test_optimal_is_never_above_the_zero_spline(method):
    """BV2 with a huge lambda: the optimum is (close to) the zero spline.  The solver's point
    was reported optimal 1.35e-6 relative above the zero spline (active) or refused as
    inaccurate (full); now the zero spline is returned, certified by the dual bound."""
    net, x, y = single_neuron(m=500, seed=2)
    new, cert = convex.solve_layer(net, 1, x, y, lam=3e11, reg="bv2", method=method)
    zero = zero_spline_objective(net, x, y, 3e11, "bv2")
    assert cert["status"] == "optimal"
    assert cert["objective_check"] <= zero     # the lowest point known, certified
    assert cert["objective_check"] == problem.numpy_objective(new, 1, x, y, "squared", 3e11,
                                                             "bv2")
    assert cert["lower_bound"] <= cert["objective_check"]
    assert cert["objective_check"] - cert["lower_bound"] <= cert["gap_tolerance"]
    assert {p["point"] for p in cert["candidates"]} >= {"zero spline"}


@pytest.mark.parametrize("method,grid,lam,shift", [
    ("active", "data", 1e12, 0.0), ("full", "data", 1e12, 0.0), ("full", "data", 1e6, 5.0),
    ("full", "uniform", 1e12, 0.0), ("full", "uniform", 1e6, 5.0)])
def test_tv2_with_a_huge_lambda_returns_the_affine_fit_certified(method, grid, lam, shift):
    """TV2 ignores affine parts, so with a huge lambda the optimum is the least-squares
    affine fit: objective its residual, TV2 exactly 0.  That cheap point was stored on the
    whole grid, where rounding gave it a TV2 of ~1e-11, times lambda: "not_optimal" 137.94
    (full, lambda 1e12) or 124.93462 (y + 5, lambda 1e6) against the dual bound 124.934252,
    and the active set and the uniform grid not certified either.  Now its slopes are equal
    in float64 and it is returned, certified by the dual bound, at the residual's value."""
    net, x, y = single_neuron(m=500)
    y = y + shift
    basis = np.column_stack([np.ones(len(x)), x[:, 0]])
    residual = y - basis @ np.linalg.lstsq(basis, y, rcond=None)[0]
    new, cert = convex.solve_layer(net, 1, x, y, lam=lam, method=method, grid=grid, size=200)
    assert cert["status"] == "optimal" and cert["certified_by"] == "dual bound"
    assert cert["returned_point"] == "affine (least squares)" and cert["knots"] == [0]
    assert cert["objective"] == pytest.approx(0.5 * residual @ residual, rel=1e-12, abs=0)
    assert new.layers[1].knot_spline().tv2().tolist() == [0.0]


@pytest.mark.parametrize("first,last,count", [(0.3, -7.1, 500), (1e-200, 3e-201, 41),
                                               (-2e150, 5e149, 3), (4.0, 4.0, 9),
                                               (1e8 + 0.1, 1e8 - 0.3, 1000)])
def test_exactly_affine_values_have_equal_differences(first, last, count):
    """Second differences exactly 0 (TV2 0), the values within count 2^-51 of the ends'
    scale from the line."""
    values = problem.exactly_affine(first, last, count)
    assert np.all(np.diff(values, n=2) == 0) and len(values) == count
    line = first + (last - first) * np.arange(count) / (count - 1)
    assert np.max(np.abs(values - line)) <= count * 2.0 ** -51 * max(abs(first), abs(last))


def test_a_solver_point_above_a_candidate_is_not_optimal(monkeypatch):
    """A solver point that the zero spline beats (BV2, huge lambda, a Lip bound) is never
    the answer: the zero spline is, certified by the Lip form of the dual bound, and without
    a bound (as for a gradient outside the loss conjugate's domain) it is reported not
    optimal, with the zero spline as the best feasible point."""
    net, x, y = single_neuron(m=200)
    real = convex.finish
    zero = zero_spline_objective(net, x, y, 1e6, "bv2")

    def worse(*args, **kwargs):
        new, cert = real(*args, **kwargs)
        cert["objective_check"] = cert["objective"] = zero * (1 + 1e-5)
        return new, cert
    monkeypatch.setattr(convex, "finish", worse)
    kw = dict(lam=1e6, reg="bv2", lip_max=1.0, method="full")
    new, cert = convex.solve_layer(net, 1, x, y, **kw)
    assert cert["returned_point"] == "zero spline" and cert["certified_by"] == "dual bound"
    assert cert["objective"] == zero and zero - cert["lower_bound"] <= cert["gap_tolerance"]
    monkeypatch.setattr(certify, "dual_bound", lambda *args: None)
    with pytest.raises(SolveNotCertified, match="zero spline has objective") as caught:
        convex.solve_layer(net, 1, x, y, **kw)
    cert = caught.value.certificate
    assert cert["status"] == "not_optimal" and cert["returned_point"] == "zero spline"
    assert cert["objective"] == zero


# ------------------------------------------------------- issue 21 item 5: merged points
def merged_pair():
    """single_neuron(50) plus a point 1e-10 from x[0] with a target 1 above it."""
    net, x, y = single_neuron(m=50)
    return net, np.concatenate([x, x[:1] + 1e-10]), np.concatenate([y, y[:1] + 1.0])


@pytest.mark.parametrize("method", ["active", "full"])
def test_merged_points_are_reported(method):
    net, x, y = merged_pair()
    _, cert = convex.solve_layer(net, 1, x, y, lam=1e-3, method=method)
    assert cert["merged_points"] == [1] and cert["merge_rtol"] == problem.MERGE_RTOL
    assert cert["merge_max_distance"][0] == pytest.approx(1e-10, rel=1e-3, abs=0)
    _, exact = convex.solve_layer(net, 1, x, y, lam=1e-3, method=method, merge_rtol=0.0)
    assert exact["merged_points"] == [0] and exact["candidate_points" if method == "active"
                                                     else "grid_points"] == [51]
    # the merged problem is a restriction: its optimum is not below the unmerged one
    assert exact["objective"] <= cert["objective"] + cert["gap_tolerance"]
    with pytest.raises(ValueError, match="merge_rtol"):
        convex.solve_layer(net, 1, x, y, merge_rtol=-1.0)


def test_merged_points_on_the_command_line(tmp_path, capsys):
    net, x, y = merged_pair()
    save_model(net, tmp_path / "m.npz")
    np.savez(tmp_path / "d.npz", X=x, y=y)
    args = ["solve", str(tmp_path / "m.npz"), "--data", str(tmp_path / "d.npz"), "--layer",
            "1", "--lam", "1e-3", "--out", str(tmp_path / "s.npz")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "merged points per neuron [1]" in text and "merged problem" in text
    assert main(args + ["--merge-rtol", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["merged_points"] == [0]
    for bad in ("1", "-0.1", "nan"):        # named as the flag (it was 'merge_rtol')
        assert main(args + ["--merge-rtol", bad]) == 2
        assert "--merge-rtol: expected a number in [0, 1)" in capsys.readouterr().err


def test_two_close_points_are_fitted_not_pinned():
    """Two points 1e-10 apart, targets 0 and 1, TV2: an affine sigma fits both (TV2 0).
    The slope used to be taken as a gauge direction (its singular value 1e-10 relative to
    the points' distance from 0) and pinned: "optimal" 0.25."""
    net, _, _ = single_neuron(m=5)
    x, y = np.array([[0.3], [0.3 + 1e-10]]), np.array([0.0, 1.0])
    for method in ("active", "full"):
        new, cert = convex.solve_layer(net, 1, x, y, lam=1e-3, method=method)
        assert cert["status"] == "optimal" and cert["gauge_directions_pinned"] == 0
        assert cert["objective"] <= 1e-6 and cert["merged_points"] == [0]
        np.testing.assert_allclose(new.forward(x)[:, 0], y, atol=1e-6)


# ------------------------------------------------ issue 21 item 10: time limit, progress
@pytest.mark.parametrize("method", ["active", "full"])
def test_time_limit_returns_the_best_feasible_point(method):
    """M = 5000, lambda = 1e-12 (the issue's case ran 590 s without output): at the limit the
    best feasible point known, its NumPy objective and the dual lower bound."""
    net, x, y = single_neuron(m=5000)
    with pytest.raises(SolveNotCertified, match="time limit") as caught:
        convex.solve_layer(net, 1, x, y, lam=1e-12, method=method,
                           time_limit=0.5 if method == "active" else 1e-3)
    cert, model = caught.value.certificate, caught.value.model
    assert cert["status"] == "time_limit" and cert["certified_by"] is None
    assert cert["objective_check"] == problem.numpy_objective(model, 1, x, y, "squared",
                                                             1e-12, "tv2")
    assert cert["lower_bound"] is not None and cert["lower_bound"] <= cert["objective_check"]
    assert cert["objective_check"] <= min(p["objective"] for p in cert["candidates"])


def test_time_limit_on_the_command_line(tmp_path, capsys):
    net, x, y = single_neuron(m=5000)
    save_model(net, tmp_path / "m.npz")
    np.savez(tmp_path / "d.npz", X=x, y=y)
    out = tmp_path / "s.npz"
    args = ["solve", str(tmp_path / "m.npz"), "--data", str(tmp_path / "d.npz"), "--layer",
            "1", "--lam", "1e-12", "--out", str(out), "--time-limit", "0.001"]
    assert main(args) == 3
    text = capsys.readouterr().out
    assert "NOT CERTIFIED" in text and "status time_limit" in text and "lower bound" in text
    assert main(args + ["--json"]) == 3
    cert = json.loads(capsys.readouterr().out)
    assert cert["status"] == "time_limit" and cert["out"] == str(out)
    assert problem.numpy_objective(load_model(out), 1, x, y, "squared", 1e-12, "tv2") \
        == cert["objective_check"]
    assert main(args[:-1] + ["0"]) == 2                   # a limit must be > 0
    assert "--time-limit" in capsys.readouterr().err


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_stderr_shows_the_rounds(monkeypatch):
    net, x, y = single_neuron(m=300)
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _, cert = convex.solve_layer(net, 1, x, y, lam=0.5, progress=True, method="active")
    assert cert["status"] == "optimal"
    assert "solve (active)" in terminal.getvalue() and "round 1" in terminal.getvalue()
