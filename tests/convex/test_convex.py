import json

import numpy as np
import pytest

from reference.cli import main
from reference.convex import _problem as problem
from reference.convex import _representer as representer
from reference.convex import _solve as convex
from reference.exceptions import ModelFileError
from reference.io._model_file import load_model, save_model
from reference.nn._linear_spline import LinearSpline
from reference.nn._network import Dense, Identity, KnotSplineActivation, Network, SplineActivation
from reference.testing import random_net, single_neuron


def test_data_grid_is_the_true_optimum_single_neuron():
    net, x, y = single_neuron()
    new, cert = convex.solve_layer(net, 1, x, y, lam=0.5)
    assert cert["status"] == "optimal" and cert["gap"] is not None
    assert abs(cert["gap"]) <= 1e-6 * cert["objective"]
    assert cert["objective_check"] == pytest.approx(cert["objective"], rel=1e-6)
    plain = representer.solve_plain_single_neuron(x[:, 0], y, 0.5)  # independent formulation
    assert plain["status"] == "optimal"
    assert plain["objective"] == pytest.approx(cert["objective"], rel=1e-7)
    for k in (11, 41, 161):                                   # no uniform grid beats it
        _, uni = convex.solve_layer(net, 1, x, y, lam=0.5, grid="uniform", size=k)
        assert uni["objective"] >= cert["objective"] * (1 - 1e-7)
    assert isinstance(new.layers[1], KnotSplineActivation)
    assert 0 < cert["knots"][0] <= len(x) - 2


@pytest.mark.parametrize("loss,n_out", [("logistic", 1), ("xent", 3), ("squared", 2)])
@pytest.mark.parametrize("reg", ["tv2", "bv2"])
def test_losses_regularisers_and_lip_constraint(loss, n_out, reg):
    rng = np.random.default_rng(1)
    net = random_net([2, 3, n_out], "spline", seed=1, size=9)
    x = rng.normal(size=(50, 2))
    y = {"logistic": (x[:, 0] > 0).astype(float), "xent": rng.integers(0, 3, 50),
         "squared": rng.normal(size=(50, 2))}[loss]
    new, cert = convex.solve_layer(net, 1, x, y, loss=loss, lam=0.1, reg=reg, lip_max=0.8)
    assert max(cert["lipschitz"]) <= 0.8 * (1 + 1e-6)
    free, cert_free = convex.solve_layer(net, 1, x, y, loss=loss, lam=0.1, reg=reg)
    assert cert_free["objective"] <= cert["objective"] * (1 + 1e-7)   # a constraint costs
    np.testing.assert_allclose(
        problem.numpy_objective(new, 1, x, y, loss, 0.1, reg),
        cert["objective"], rtol=1e-6)


def test_lambda_path_matches_separate_solves():
    net, x, y = single_neuron(m=300)
    lams = [0.05, 0.5, 5.0]
    path = convex.solve_path(net, 1, x, y, lams)
    assert [lam for lam, _, _ in path] == lams
    objectives = [c["objective"] for _, _, c in path]
    assert objectives == sorted(objectives)                    # more penalty, higher optimum
    for lam, _, cert in path:
        _, single = convex.solve_layer(net, 1, x, y, lam=lam)
        assert cert["objective"] == pytest.approx(single["objective"], rel=1e-7)


@pytest.mark.parametrize("reg", ["tv2", "bv2"])
def test_representer_reduction(reg):
    rng = np.random.default_rng(3)
    net = random_net([2, 5, 4, 2], "spline", seed=3, size=11)
    x = rng.normal(size=(40, 2))
    new, report = representer.reduce_network(net, x, reg)
    assert report["max_output_change"] <= 1e-10
    keys = ("tv2", "lipschitz") + (("bv2",) if reg == "bv2" else ())
    for r in report["neurons"]:
        for key in keys:
            assert r[f"{key}_after"] <= r[f"{key}_before"] * (1 + 1e-9) + 1e-12
        assert r["knots_after"] <= (len(x) - 2 if reg == "tv2" else len(x))
    ks = new.layers[1]
    lp = representer.interpolation_lp(ks.points[0], ks.values[0], reg)
    own = (ks.spline.tv2() if reg == "tv2" else ks.spline.bv2())[0]
    assert lp["objective"] == pytest.approx(own, rel=1e-6, abs=1e-9)
    assert lp["objective_check"] == pytest.approx(lp["objective"], rel=1e-6, abs=1e-9)


def test_interpolation_lp_with_lip_bound():
    points, values = np.array([0.0, 1.0, 2.0, 4.0]), np.array([0.0, 1.0, 0.0, 1.0])
    lp = representer.interpolation_lp(points, values, "tv2", lip_max=1.0)
    assert lp["objective"] == pytest.approx(3.5, rel=1e-7)     # slopes 1, -1, 0.5
    with pytest.raises(RuntimeError, match="infeasible"):
        representer.interpolation_lp(points, values, "tv2", lip_max=0.9)


def test_knot_spline_layer_evaluates_and_round_trips(tmp_path):
    rng = np.random.default_rng(4)
    pts = [np.sort(rng.normal(size=6)), np.array([-1.0, 0.5])]
    vals = [rng.normal(size=6), np.array([2.0, 3.0])]
    layer = KnotSplineActivation(pts, vals)
    z = np.concatenate([rng.normal(size=(50, 2)) * 3, np.stack([pts[0][:2], pts[1]], 1)])
    np.testing.assert_allclose(layer.forward(z)[0], layer.spline(z), rtol=1e-12, atol=1e-12)
    # at a point, the slope of the right piece
    assert layer.derivative(np.array([[pts[0][2], 0.0]]))[0, 0] == pytest.approx(
        (vals[0][3] - vals[0][2]) / (pts[0][3] - pts[0][2]))
    net = Network([Dense(rng.normal(size=(2, 3))), layer, Dense(rng.normal(size=(1, 2))),
                   Identity()])
    save_model(net, tmp_path / "k.npz")
    data = dict(np.load(tmp_path / "k.npz"))
    assert str(data["format"]) == "deepspline-reference/2"
    x = rng.normal(size=(10, 3))
    np.testing.assert_array_equal(load_model(tmp_path / "k.npz").forward(x), net.forward(x))
    data["layer1.counts"] = np.array([7.0, 1.0])
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(ModelFileError, match="layer 1.*counts"):
        load_model(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="strictly increasing"):
        KnotSplineActivation([np.array([1.0, 1.0])], [np.array([0.0, 1.0])])


def test_bad_input():
    net, x, y = single_neuron(m=20)
    with pytest.raises(ValueError, match="x"):
        convex.solve_layer(net, 1, np.full((20, 1), np.nan), y)
    with pytest.raises(ValueError, match="x: expected shape"):
        convex.solve_layer(net, 1, np.zeros((20, 2)), y)
    with pytest.raises(ValueError, match="y: expected 20 targets"):
        convex.solve_layer(net, 1, x, y[:5])
    with pytest.raises(ValueError, match="not a spline layer"):
        convex.solve_layer(net, 0, x, y)
    with pytest.raises(ValueError, match="layer: expected an index"):
        convex.solve_layer(net, 9, x, y)
    deep = random_net([1, 3, 3, 1], "spline", seed=0)
    with pytest.raises(ValueError, match="not affine"):
        convex.solve_layer(deep, 1, x, y)
    with pytest.raises(ValueError, match="lam"):
        convex.solve_layer(net, 1, x, y, lam=-1)
    with pytest.raises(ValueError, match="lip_max"):
        convex.solve_layer(net, 1, x, y, lip_max=0)
    with pytest.raises(ValueError, match="solver"):
        convex.solve_layer(net, 1, x, y, solver="NOSUCH")
    with pytest.raises(ValueError, match="reg"):
        convex.solve_layer(net, 1, x, y, reg="tv3")
    with pytest.raises(ValueError, match="grid"):
        convex.solve_layer(net, 1, x, y, grid="adaptive")


def test_failed_or_inaccurate_solves_are_errors(monkeypatch):
    net, x, y = single_neuron(m=30)
    real = problem.CoefficientProblem.solve

    def status(value):
        def fake(self, lam, solver="CLARABEL", warm_start=True, settings=None):
            out = real(self, lam, solver, settings=settings)
            out["status"] = value
            return out
        return fake
    monkeypatch.setattr(problem.CoefficientProblem, "solve", status("optimal_inaccurate"))
    with pytest.raises(RuntimeError, match="optimal_inaccurate.*no model"):
        convex.solve_layer(net, 1, x, y)

    def off(self, lam, solver="CLARABEL", warm_start=True, settings=None):
        out = real(self, lam, solver, settings=settings)
        out["objective"] *= 1.01
        return out
    monkeypatch.setattr(problem.CoefficientProblem, "solve", off)
    # the solver's objective is wrong, its point is not: NumPy's dual bound certifies it
    new, cert = convex.solve_layer(net, 1, x, y)
    assert cert["status"] == "optimal" and cert["certified_by"] == "dual bound"
    assert "inaccurate solution" in cert["rejected"]
    assert cert["objective_check"] - cert["lower_bound"] <= cert["gap_tolerance"]
    assert problem.numpy_objective(new, 1, x, y, "squared", 1e-3, "tv2") == cert["objective"]
    # with a Lip bound too: the point is certified by the Lip form of the dual bound
    new, cert = convex.solve_layer(net, 1, x, y, lip_max=0.5)
    assert cert["status"] == "optimal" and cert["certified_by"] == "dual bound"
    assert "inaccurate solution" in cert["rejected"]
    assert max(cert["lipschitz"]) <= 0.5 * (1 + 1e-12)


def test_solve_command(tmp_path, capsys):
    net, x, y = single_neuron(m=200)
    save_model(net, tmp_path / "m.npz")
    np.savez(tmp_path / "d.npz", X=x, y=y)
    out = tmp_path / "s.npz"
    assert main(["solve", str(tmp_path / "m.npz"), "--data", str(tmp_path / "d.npz"),
                 "--layer", "1", "--lam", "0.5", "--out", str(out), "--json"]) == 0
    cert = json.loads(capsys.readouterr().out)
    for key in ("status", "objective", "objective_check", "gap", "knots", "seconds"):
        assert key in cert
    solved = load_model(out)
    assert problem.numpy_objective(solved, 1, x, y, "squared", 0.5, "tv2") == pytest.approx(
        cert["objective"], rel=1e-6)
    assert main(["solve", str(tmp_path / "m.npz"), "--data", str(tmp_path / "d.npz"),
                 "--layer", "1", "--lam", "0.5", "--grid", "uniform", "--size", "41",
                 "--lip-max", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "CLARABEL status optimal" in text and "Lip <= 2" in text
    assert load_model(out).layers[1].spline.size == 41
    np.savez(tmp_path / "noy.npz", X=x)
    assert main(["solve", str(tmp_path / "m.npz"), "--data", str(tmp_path / "noy.npz"),
                 "--layer", "1", "--lam", "0.5", "--out", str(out)]) == 2
    assert "no array 'y'" in capsys.readouterr().err
    np.savez(tmp_path / "scalar_y.npz", X=x, y=np.float64(1.0))     # 0-d y: an error, no traceback
    assert main(["solve", str(tmp_path / "m.npz"), "--data", str(tmp_path / "scalar_y.npz"),
                 "--layer", "1", "--lam", "0.5", "--out", str(out)]) == 2
    assert "--data: expected X (M, N_0) and y with M >= 1 rows" in capsys.readouterr().err
    assert main(["solve", str(tmp_path / "m.npz"), "--data", str(tmp_path / "d.npz"),
                 "--layer", "1", "--lam", "-2", "--out", str(out)]) == 2
    assert "lam" in capsys.readouterr().err


def test_tv2_gauge_is_pinned_without_changing_the_optimum():
    """Two identical neurons feeding one output: sigma_0 + c + b z and sigma_1 - c - b z fit
    equally well at the same TV2, so the TV2 optimum is an unbounded set; the gauge
    constraint makes it bounded.  The optimum equals the one-neuron problem's (splitting a
    spline in halves keeps TV2)."""
    rng = np.random.default_rng(5)
    x = rng.uniform(-2, 2, (80, 1))
    y = np.abs(x[:, 0]) + 0.1 * rng.normal(size=80)
    def spline(c):
        return SplineActivation(LinearSpline.initialise("identity", c, 11, 2.0))
    pair = Network([Dense(np.ones((2, 1)), np.zeros(2)), spline(2),
                    Dense(np.ones((1, 2)), np.zeros(1)), Identity()])
    one = Network([Dense(np.ones((1, 1)), np.zeros(1)), spline(1),
                   Dense(np.ones((1, 1)), np.zeros(1)), Identity()])
    basis = problem.gauge_basis(x @ np.ones((1, 2)), np.ones((1, 2)), "squared", affine=True)
    assert basis.shape == (4, 2)                 # constants and slopes, opposite signs
    for grid in ("data", "uniform"):
        _, c_pair = convex.solve_layer(pair, 1, x, y, lam=0.3, grid=grid)
        _, c_one = convex.solve_layer(one, 1, x, y, lam=0.3, grid=grid)
        assert c_pair["status"] == "optimal"
        assert c_pair["objective"] == pytest.approx(c_one["objective"], rel=1e-6)


def test_returned_splines_over_lip_max_are_an_error(monkeypatch):
    net, x, y = single_neuron(m=30)
    real = problem.knot_counts

    def steep(layer, unit=1.0):
        knots, tols, lips = real(layer, unit)
        return knots, tols, lips * 10
    monkeypatch.setattr(problem, "knot_counts", steep)
    with pytest.raises(RuntimeError, match="Lip .* > lip_max"):
        convex.solve_layer(net, 1, x, y, lip_max=1.0)


def test_grid_and_interpolation_bad_input(tmp_path):
    net, x, y = single_neuron(m=20)
    with pytest.raises(ValueError, match="size"):
        convex.solve_layer(net, 1, x, y, grid="uniform", size=2)
    with pytest.raises(ValueError, match="grid: expected 1 arrays"):
        convex.solve_layer(net, 1, x, y, grid=[np.arange(3.0), np.arange(3.0)])
    with pytest.raises(ValueError, match=r"grid\[0\]"):
        convex.solve_layer(net, 1, x, y, grid=[np.ones(3)])
    solved, _ = convex.solve_layer(net, 1, x, y, lam=0.5)
    with pytest.raises(ValueError, match="uniform-grid spline layer"):
        convex.solve_layer(solved, 1, x, y, grid="uniform")
    with pytest.raises(ValueError, match="lams"):
        convex.solve_path(net, 1, x, y, [0.1, np.nan])
    with pytest.raises(ValueError, match="distinct points"):
        representer.interpolation_lp([0.0, 0.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="one array per neuron"):
        KnotSplineActivation([np.arange(2.0)], [np.arange(2.0), np.arange(2.0)])
    save_model(solved, tmp_path / "k.npz")
    data = dict(np.load(tmp_path / "k.npz"))
    data["layer1.points"] = data["layer1.points"][::-1].copy()
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(ModelFileError, match="layer 1.*strictly increasing"):
        load_model(tmp_path / "bad.npz")


def test_uniform_grid_gauge_gives_the_minimum_norm_coefficients():
    """issue 9 item 6: on a uniform grid the affine shifts that the data cannot see are
    pinned as on the data grid, and the coefficients returned are the minimum-norm
    representative: the unpinned problem (a different point of the optimal set), moved to
    the minimum-norm representative, gives the same coefficients; the objective is that of
    the unpinned problem; another solver agrees to its tolerance."""
    rng = np.random.default_rng(0)
    net = random_net([2, 3, 1], "spline", 0, size=21)
    x = rng.normal(size=(200, 2))
    y = np.sin(2 * x[:, 0]) + x[:, 1] ** 2 + 0.1 * rng.normal(size=200)
    new, cert = convex.solve_layer(net, 1, x, y, lam=0.1, grid="uniform")
    coef = new.layers[1].spline.coefficients
    assert cert["gauge_directions_pinned"] == 3 and cert["gauge_shift_removed"] > 1.0
    _, y2, z, a_mat, c = convex.prepare(net, 1, x, y, "squared")
    grids, _ = convex.grids_for(net, 1, z, "tv2", "uniform")
    free = problem.CoefficientProblem(z, a_mat, c, y2, "squared", "tv2", grids, pin_gauge=False)
    result = free.solve(0.1)
    assert result["status"] == "optimal" and free.gauge_directions == 3
    assert result["objective"] == pytest.approx(cert["objective"], rel=1e-8)
    raw = np.stack([v for _, v in free.splines()])
    moved, removed = problem.min_norm_representative(free.splines(), free.gauge, grids)
    moved = np.stack([v for _, v in moved])
    assert np.linalg.norm(moved) <= np.linalg.norm(raw) and removed > 0
    np.testing.assert_allclose(moved, coef, atol=1e-6 * np.abs(coef).max())
    if "CVXOPT" in convex.usable_solvers("qp"):
        other, _ = convex.solve_layer(net, 1, x, y, lam=0.1, grid="uniform", solver="CVXOPT")
        np.testing.assert_allclose(other.layers[1].spline.coefficients, coef,
                                   atol=1e-4 * np.abs(coef).max())


def test_data_grid_active_and_full_return_the_same_representative():
    rng = np.random.default_rng(0)
    net = random_net([2, 3, 1], "spline", 0, size=21)
    x = rng.normal(size=(300, 2))
    y = np.sin(2 * x[:, 0]) + x[:, 1] ** 2 + 0.1 * rng.normal(size=300)
    active, cert = convex.solve_layer(net, 1, x, y, lam=0.1)
    full, _ = convex.solve_layer(net, 1, x, y, lam=0.1, method="full")
    assert cert["gauge_shift_removed"] > 1.0
    _, _, z, _, _ = convex.prepare(net, 1, x, y, "squared")
    grid_values = [layer.forward(z)[0] for layer in (active.layers[1], full.layers[1])]
    np.testing.assert_allclose(grid_values[0], grid_values[1],
                               atol=1e-4 * np.abs(grid_values[1]).max())


def test_solve_command_methods(tmp_path, capsys):
    net, x, y = single_neuron(m=200)
    save_model(net, tmp_path / "m.npz")
    np.savez(tmp_path / "d.npz", X=x, y=y)
    args = ["solve", str(tmp_path / "m.npz"), "--data", str(tmp_path / "d.npz"), "--layer",
            "1", "--lam", "0.5", "--out", str(tmp_path / "s.npz")]
    assert main(args + ["--json"]) == 0                 # one neuron: the one-neuron method
    assert json.loads(capsys.readouterr().out)["method"] == "one_neuron"
    assert main(args + ["--method", "active", "--json"]) == 0
    active = json.loads(capsys.readouterr().out)
    assert active["method"] == "active" and active["rounds"] >= 1
    for key in ("worst_violation", "violation_tolerance", "points_per_neuron", "polish",
                "knots_unpolished", "multiplier_noise", "complementarity_gap"):
        assert key in active
    assert main(args + ["--method", "full", "--json"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert full["method"] == "full" and full["objective"] == pytest.approx(
        active["objective"], rel=1e-7)
    assert main(args + ["--method", "active", "--no-polish"]) == 0
    text = capsys.readouterr().out
    assert "active method" in text and "polishing off" in text and "worst violation" in text
    assert main(args + ["--grid", "uniform", "--method", "active"]) == 2
    assert "method: 'active' works on the data grid only" in capsys.readouterr().err


def test_solver_failures_are_solve_failed_and_one_cli_line(tmp_path, capsys, monkeypatch):
    """A status other than optimal: SolveFailed (a RuntimeError, so `except RuntimeError`
    still catches it), and the command line prints one 'error: ...' line, exit 2."""
    from reference.exceptions import SolveFailed
    net, x, y = single_neuron(m=30)
    real = problem.CoefficientProblem.solve

    def infeasible(self, lam, solver="CLARABEL", warm_start=True, settings=None):
        out = real(self, lam, solver, settings=settings)
        out["status"] = "infeasible"
        return out
    monkeypatch.setattr(problem.CoefficientProblem, "solve", infeasible)
    with pytest.raises(SolveFailed, match="status 'infeasible'.*no model is returned"):
        convex.solve_layer(net, 1, x, y)
    assert issubclass(SolveFailed, RuntimeError)
    save_model(net, tmp_path / "m.npz")
    np.savez(tmp_path / "d.npz", X=x, y=y)
    assert main(["solve", str(tmp_path / "m.npz"), "--data", str(tmp_path / "d.npz"),
                 "--layer", "1", "--lam", "0.5", "--out", str(tmp_path / "s.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: solve: ") and "infeasible" in err[0]
    assert not (tmp_path / "s.npz").exists()
