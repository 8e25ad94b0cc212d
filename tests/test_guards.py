"""Size guards and time limits (reference.limits): every refusal comes before the heavy work
and names its override; every method stopped by a limit returns a marked, certified bracket."""
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import _limits as limits
from reference.convex import _problem as problem
from reference.convex import _representer as representer
from reference.convex import _solve as convex
from reference.exceptions import TooLarge
from reference.lipschitz import _bounds as lipschitz
from reference.lipschitz import _exact1d as exact1d
from reference.lipschitz import _ladder as ladder
from reference.lipschitz import _lipsdp as lipsdp
from reference.lipschitz import _milp as milp
from reference.nn._network import build_mlp
from reference.testing import check_property, random_net, single_neuron


def refused(call, override):
    """Run call, which must raise TooLarge naming `override` in well under a second; run it
    again under tracemalloc (which sees NumPy's arrays, and slows Python down): less than
    20 MB allocated on the way."""
    t0 = time.perf_counter()
    with pytest.raises(TooLarge, match=f"pass a larger {override}") as info:
        call()
    assert time.perf_counter() - t0 < 1.0
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge):
            call()
        assert tracemalloc.get_traced_memory()[1] < 20e6
    finally:
        tracemalloc.stop()
    assert info.value.estimate > info.value.limit and info.value.override == override
    return info.value


def must_not_run(*args, **kwargs):
    raise AssertionError("the heavy work started")


# ------------------------------------------------------------------------------ values
@pytest.mark.parametrize("bad", [np.nan, -1.0, 0.0, np.inf, "soon", None])
def test_time_limits_are_finite_and_positive(bad):
    with pytest.raises(ValueError, match="time_limit: expected a finite number > 0"):
        limits.check_time_limit(bad)
    net = random_net([1, 4, 1], "relu", seed=0)
    with pytest.raises(ValueError, match="time_limit"):
        exact1d.exact_1d(net, 2, time_limit=bad)
    with pytest.raises(ValueError, match="time_limit"):
        milp.exact_milp(random_net([2, 3, 1], "relu", seed=0), 1, time_limit=bad)
    with pytest.raises(ValueError, match="time_limit"):
        ladder.ladder(net, 2, methods="layerwise", time_limit=bad)


@pytest.mark.parametrize("bad", [1e308, 1e290 * (1 + 1e-15), 1e-300, np.nan, np.inf, 0.0, -2.0,
                                 "wide"])
def test_box_is_finite_positive_and_at_most_max_box(bad):
    net = random_net([2, 3, 1], "relu", seed=0)
    for call in (lambda: ladder.ladder(net, 2, box=bad, methods="layerwise"),
                 lambda: lipschitz.lower(net, 2, box=bad),
                 lambda: milp.exact_milp(net, np.inf, box=bad)):
        with pytest.raises(ValueError, match="box: expected"):
            call()
    assert limits.check_box(limits.MAX_BOX) == 1e290


def test_ladder_options_are_validated():
    net = random_net([2, 3, 1], "relu", seed=0)
    with pytest.raises(TypeError, match="unknown"):
        ladder.ladder(net, 2, methods="layerwise", max_binarys=10)
    with pytest.raises(ValueError, match="max_sdp_cost"):
        ladder.ladder(net, 2, methods="layerwise", max_sdp_cost=-1)


def test_limit_validation_property(profile):
    @given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)))
    def prop(value):
        ok = np.isfinite(value) and value > 0
        try:
            assert limits.check_limit(value, "max_pieces") == float(value) and ok
        except ValueError as exc:
            assert not ok and str(exc).startswith("max_pieces: ")
        inside = ok and limits.MIN_BOX <= value <= limits.MAX_BOX
        try:
            assert limits.check_box(value) == float(value) and inside
        except ValueError as exc:
            assert not inside and str(exc).startswith("box: ")
    check_property(prop, profile)


# ---------------------------------------------------------------------------- LipSDP
def test_lipsdp_on_2_1200_1200_1_is_refused_before_anything_is_built(monkeypatch):
    """Issue 11.5: LipSDP-neuron on a 2-300-300-1 ReLU net ran > 600 s at 2.4 GB.  With the
    structured NumPy solver (issue 10) that takes seconds and is admitted; 2-1200-1200-1
    (N = 2402, estimate 1.1e11, some 20 minutes) is refused before anything is built."""
    assert lipsdp.sdp_cost(build_mlp([2, 300, 300, 1], "relu", rng=0), "neuron",
                           lipsdp.DEFAULT_SOLVER) < lipsdp.MAX_SDP_COST / 10
    net = build_mlp([2, 1200, 1200, 1], "relu", rng=0)
    monkeypatch.setattr(lipsdp, "lipsdp_data", must_not_run)
    exc = refused(lambda: lipsdp.lipsdp(net, "neuron"), "max_sdp_cost")
    assert "N = 2402" in str(exc) and exc.limit == lipsdp.MAX_SDP_COST
    r = ladder.ladder(net, 2, methods="lipsdp_neuron,layerwise")   # the ladder goes on
    assert r["lipsdp_neuron"]["value"] is None and "max_sdp_cost" in r["lipsdp_neuron"]["reason"]
    assert r["layerwise"]["value"] > 0


def test_lipsdp_guard_admits_the_anchors_and_is_overridable(monkeypatch):
    from pathlib import Path

    from reference.io._model_file import network_from_mat
    anchors = Path(__file__).resolve().parents[2] / "shared" / "anchors"
    for name in ("lipsdp_random_weights.mat", "lipsdp_mnist_weights.mat"):
        if not (anchors / name).exists():
            pytest.skip(f"{anchors / name} not present beside the checkout")
        net = network_from_mat(anchors / name)
        for variant in lipsdp.VARIANTS:
            for solver in (lipsdp.DEFAULT_SOLVER, *lipsdp.FALLBACK_SOLVERS[:1]):
                assert lipsdp.sdp_cost(net, variant, solver) <= lipsdp.MAX_SDP_COST / 1.5
    net = build_mlp([2, 4, 3, 1], "relu", rng=0)
    cost = lipsdp.sdp_cost(net, "neuron", lipsdp.DEFAULT_SOLVER)
    refused(lambda: lipsdp.lipsdp(net, "neuron", max_sdp_cost=cost / 2), "max_sdp_cost")
    assert lipsdp.lipsdp(net, "neuron", max_sdp_cost=cost)["value"] > 0


def test_lipsdp_fallback_only_within_the_guard(monkeypatch):
    """When the default solver (NUMPY) fails, CVXOPT and then CLARABEL are tried, each only
    when its own estimate passes the guard."""
    import cvxpy as cp

    from reference.lipschitz._sdp_backends import SdpSolution
    net = build_mlp([2, 12, 12, 1], "relu", rng=1)
    for name in ("NUMPY", "CVXOPT"):
        monkeypatch.setitem(lipsdp.SOLVE, name,
                            lambda *args: SdpSolution("unknown (fails)", None, None, None))

    def failing(self, *args, **kwargs):
        raise cp.error.SolverError("fails")
    monkeypatch.setattr(cp.Problem, "solve", failing)
    cost = {name: lipsdp.sdp_cost(net, "neuron", name) for name in ("NUMPY", "CVXOPT",
                                                                     "CLARABEL")}
    assert cost["NUMPY"] < cost["CVXOPT"] < cost["CLARABEL"]
    with pytest.raises(RuntimeError) as info:
        lipsdp.lipsdp(net, "neuron", max_sdp_cost=cost["NUMPY"])
    assert "NUMPY margin 1e-05" in str(info.value) and "CVXOPT" not in str(info.value)
    with pytest.raises(RuntimeError) as info:
        lipsdp.lipsdp(net, "neuron", max_sdp_cost=cost["CVXOPT"])
    assert "CVXOPT margin 1e-05: unknown" in str(info.value) and "CLARABEL" not in str(info.value)
    with pytest.raises(RuntimeError, match="CLARABEL margin 0: solver error"):
        lipsdp.lipsdp(net, "neuron")


# ---------------------------------------------------------------------- exact values
def test_exact_1d_time_limit_returns_a_certified_bracket():
    net = random_net([1, 10, 10, 10, 1], "spline", seed=2)
    full = exact1d.exact_1d(net, 2)
    r = exact1d.exact_1d(net, 2, time_limit=1e-9)
    assert r["status"] == "time_limit" and r["value"] is None and not r["certified_exact"]
    assert "time limit" in r["reason"]
    assert r["lower_bound"] <= full["value"] * (1 + 1e-9) <= r["upper_bound"] * (1 + 1e-9)
    out = ladder.run_method("exact", net, 2, time_limit=1e-9)
    assert out["value"] is None and "certified bracket" in out["reason"]
    assert ladder.best_lower({"exact": out}) == r["lower_bound"]


def test_exact_1d_bracket_property(profile):
    """Stopped anywhere (by max_pieces), exact_1d's bracket holds the exact value."""
    @given(st.integers(0, 10 ** 6), st.sampled_from(["spline", "relu", "prelu"]),
           st.sampled_from([[1, 4, 3, 1], [1, 5, 4, 2], [1, 3, 3, 3, 1]]),
           st.sampled_from([1.0, 2.0, np.inf]), st.floats(0.0, 1.0))
    def prop(seed, activation, widths, p, fraction):
        net = random_net(widths, activation, seed, size=7)
        full = exact1d.exact_1d(net, p)
        r = exact1d.exact_1d(net, p, max_pieces=max(1, int(fraction * full["pieces"])))
        if r["status"] == "optimal":
            assert r["value"] == full["value"]
            return
        assert r["status"] == "max_pieces" and r["value"] is None
        assert r["lower_bound"] <= full["value"] * (1 + 1e-9) + 1e-300
        assert full["value"] <= r["upper_bound"] * (1 + 1e-12)
        assert r["upper_bound"] <= lipschitz.layerwise(net, p) * (1 + 1e-12)
    check_property(prop, profile, examples=40)


def test_milp_stopped_with_an_incumbent_gives_both_bounds(monkeypatch):
    """A MILP stopped at its limit with an incumbent (made deterministic: HiGHS's optimal
    answer relabelled as stopped, with a looser dual bound): the incumbent becomes the
    certified lower bound (its witness re-evaluated in NumPy), the dual bound the upper."""
    net = random_net([3, 6, 5, 1], "relu", seed=3)   # 3 inputs: the MILP (2: regions)
    true = milp.exact_milp(net, np.inf, box=2.0)
    real = milp._Milp.solve

    def stopped(self, *args, **kwargs):
        res = real(self, *args, **kwargs)
        res.status, res.mip_dual_bound = 1, 1.5 * res.fun     # fun < 0: a looser bound
        return res
    monkeypatch.setattr(milp._Milp, "solve", stopped)
    r = milp.exact_milp(net, np.inf, box=2.0)
    assert r["status"] == "time_limit" and r["value"] is None and not r["certified_exact"]
    assert r["upper_bound"] == pytest.approx(1.5 * true["value"] + r["tolerance"], rel=1e-6)
    assert r["lower_bound"] == pytest.approx(true["value"], rel=1e-9)
    jac = net.input_jacobian(np.asarray(r["witness_x"])[None])[0]
    assert lipschitz.operator_norm(jac, np.inf) == r["lower_bound"]
    assert np.all(np.abs(r["witness_x"]) <= 2.0)
    results = {"lower": {"value": 0.5 * true["value"]},
               "exact": ladder.run_method("exact", net, "inf", box=2.0),
               "layerwise": {"value": 0.9 * true["value"]}}     # below the certified lower
    assert results["exact"]["value"] is None
    assert ladder.best_lower(results) == r["lower_bound"]
    assert ladder.order_violations(results) == [
        ("exact", "layerwise", r["lower_bound"], 0.9 * true["value"])]


def test_milp_real_time_limit_2_24_24_1():
    net = random_net([2, 24, 24, 1], "relu", seed=0)
    t0 = time.perf_counter()
    r = milp.exact_milp(net, np.inf, box=2.0, time_limit=0.5)
    assert time.perf_counter() - t0 < 5.0            # the limit is honoured (generous slack)
    assert r["status"] == "time_limit" and r["value"] is None and r["milps_solved"] == 0
    sampled = lipschitz.lower(net, np.inf, box=2.0, num_points=500, rounds=5)["value"]
    assert sampled <= r["upper_bound"] <= lipschitz.layerwise(net, np.inf) * (1 + 1e-9)
    if r["lower_bound"] is not None:                 # HiGHS found an incumbent in time
        jac = net.input_jacobian(np.asarray(r["witness_x"])[None])[0]
        assert lipschitz.operator_norm(jac, np.inf) == r["lower_bound"] <= r["upper_bound"]


def test_milp_binaries_refused_while_encoding(monkeypatch):
    net = build_mlp([10, 600, 1], "relu", rng=0)        # about 2 binaries per neuron
    monkeypatch.setattr(milp._Milp, "solve", must_not_run)
    refused(lambda: milp.exact_milp(net, np.inf), "max_binaries")


# --------------------------------------------------------------------------- lower
def test_lower_guard_and_chunks(monkeypatch):
    net = random_net([3, 6, 4, 2], "spline", seed=1)
    flops, _ = lipschitz.jacobian_flops(net)
    refused(lambda: lipschitz.lower(net, 2, max_lower_cost=flops), "max_lower_cost")
    whole = lipschitz.lower(net, 2, num_points=300, rounds=3)
    monkeypatch.setattr(lipschitz, "LOWER_CHUNK_BYTES", 8 * 6 * 3 * 7)   # 7 points a chunk
    chunked = lipschitz.lower(net, 2, num_points=300, rounds=3)
    assert chunked["value"] == whole["value"] and chunked["points_evaluated"] == 300 + 30 + 33 + 36
    wide = build_mlp([784, 4096, 4096, 10], "relu", rng=0)
    monkeypatch.setattr(wide, "input_jacobian", must_not_run)
    refused(lambda: lipschitz.lower(wide, 2), "max_lower_cost")
    with pytest.raises(ValueError, match="num_points"):
        lipschitz.lower(net, 2, num_points=0)


# -------------------------------------------------------------------------- convex
def test_uniform_grid_size_refused_before_the_grid_is_built(monkeypatch):
    """Issue 11.5: `solve --size 10000000` ran > 120 s at 9.1 GB."""
    net, x, y = single_neuron(m=50)
    monkeypatch.setattr(problem, "CoefficientProblem", must_not_run)
    refused(lambda: convex.solve_layer(net, 1, x, y, grid="uniform", size=10_000_000),
            "max_size")


def test_problem_size_guard_on_every_grid_and_lp(monkeypatch):
    net, x, y = single_neuron(m=50)
    monkeypatch.setattr(problem, "CoefficientProblem", must_not_run)
    refused(lambda: convex.solve_layer(net, 1, x, y, max_size=57, method="active"),
            "max_size")                    # the active set's first restricted problem
    refused(lambda: convex.solve_layer(net, 1, x, y, method="full", max_size=99), "max_size")
    refused(lambda: convex.solve_layer(net, 1, x, y, grid=[np.arange(60.0)], max_size=109),
            "max_size")
    refused(lambda: convex.solve_path(net, 1, x, y, [0.1, 1.0], max_size=57, method="active"),
            "max_size")
    # one neuron, by default the one-neuron method: its own estimate, a tenth per sample
    refused(lambda: convex.solve_layer(net, 1, x, y, max_size=4), "max_size")
    refused(lambda: convex.solve_path(net, 1, x, y, [0.1, 1.0], max_size=4), "max_size")
    refused(lambda: representer.interpolation_lp(np.arange(10.0), np.zeros(10), max_size=11),
            "max_size")


def test_empty_data_names_the_argument():
    net, x, y = single_neuron(m=20)
    with pytest.raises(ValueError, match="x: expected at least one sample"):
        convex.solve_layer(net, 1, x[:0], y[:0])
    with pytest.raises(ValueError, match="x: expected at least one sample"):
        representer.reduce_network(net, x[:0])


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_every_installed_solver_is_offered_only_for_its_problem_class(loss):
    """Issue 11.7: `solve --solver OSQP|GLPK|SCIPY` raised SolverError (a traceback)."""
    import cvxpy as cp
    net, x, y = single_neuron(m=30)
    if loss == "logistic":
        y = (y > np.median(y)).astype(float)
    usable = convex.usable_solvers(convex.LOSS_CLASS[loss])
    assert "CLARABEL" in usable and ("GLPK" not in usable) and ("SCIPY" not in usable)
    for name in cp.installed_solvers():
        try:
            _, cert = convex.solve_layer(net, 1, x, y, loss=loss, lam=0.5, solver=name)
            assert name in usable and cert["status"] == "optimal"
        except ValueError as exc:                 # not for this class: named, with choices
            assert name not in usable and str(exc).startswith("solver: ")
            assert str(usable) in str(exc)
        except RuntimeError as exc:               # the solver tried and failed: a status
            assert name in usable and "no model is returned" in str(exc)


def test_solver_errors_become_statuses(monkeypatch):
    import cvxpy as cp
    from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import CLARABEL
    net, x, y = single_neuron(m=30)

    def crash(*args, **kwargs):
        raise cp.error.SolverError("crashed")
    monkeypatch.setattr(CLARABEL, "solve_via_data", crash)
    with pytest.raises(RuntimeError, match="solver error .*crashed.*no model is returned"):
        convex.solve_layer(net, 1, x, y)
    for name in set(convex.usable_solvers("lp")) - set(convex.usable_solvers("qp")):
        lp = representer.interpolation_lp([0.0, 1.0, 2.0], [0.0, 1.0, 0.0], solver=name)
        assert lp["objective"] == pytest.approx(2.0)     # LP-only solvers take the LP
    monkeypatch.setattr(cp.Problem, "solve", crash)
    with pytest.raises(RuntimeError, match="interpolation_lp: CLARABEL status 'solver error"):
        representer.interpolation_lp([0.0, 1.0, 2.0], [0.0, 1.0, 0.0])
    assert "solver error" in representer.solve_plain_single_neuron(x[:, 0], y, 0.5)["status"]
