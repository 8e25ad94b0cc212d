"""The one-neuron method (reference.convex._one_neuron, issue 20 item 3): the default for a
layer of one neuron with the squared loss on the data grid; its optimum against the whole
data grid solved at once (method "full", the oracle) and the general active set, to the
certificate's tolerance, on random problems: TV2 and BV2, with and without L_max, several
outputs, duplicated and unsorted inputs; the scaling laws; degenerate problems (one or two
samples, all inputs equal, lambda huge); the dispatch and its errors."""
import io
import json
import sys

import numpy as np
import pytest

from reference.convex import _solve as convex
from reference.exceptions import TooLarge
from reference.nn import Dense, Identity, LinearSpline, Network, SplineActivation
from reference.testing import single_neuron


def one_neuron_net(a, c, w=1.0, b=0.0):
    """x (M, 1) -> w x + b -> one spline neuron -> a sigma + c (N_L outputs)."""
    a = np.atleast_1d(np.asarray(a, dtype=np.float64))
    return Network([Dense(np.array([[w]]), np.array([b])),
                    SplineActivation(LinearSpline.initialise("identity", 1, 21, 2.0)),
                    Dense(a[:, None], np.atleast_1d(np.asarray(c, dtype=np.float64))),
                    Identity()])


def random_problem(seed, m=60, outputs=1, duplicates=False, loss="squared"):
    """(net, x, y): random inputs (unsorted; with duplicates, each input twice or more),
    targets a smooth curve plus noise per output (squared), labels drawn from the
    logistic / softmax probabilities of 3 sin(2x) a (logistic, xent)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.5, 2.5, (m, 1))
    if duplicates:
        x[m // 2:] = x[rng.integers(0, m // 2, m - m // 2)]
    a, c = rng.normal(size=outputs), 0.3 * rng.normal(size=outputs)
    net = one_neuron_net(a, c, w=rng.uniform(0.5, 2.0), b=rng.normal())
    logits = 3 * np.sin(2 * x) * a[None, :]
    if loss == "logistic":
        return net, x, (rng.uniform(size=m) < 1 / (1 + np.exp(-logits[:, 0]))).astype(float)
    if loss == "xent":
        return net, x, np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    y = np.sin(2 * x) * a[None, :] + 0.3 * rng.normal(size=(m, outputs))
    return net, x, y if outputs > 1 else y[:, 0]


def solve(net, x, y, **kw):
    return convex.solve_layer(net, 1, x, y, **kw)


def assert_same_optimum(found, oracle):
    """Both certified, the objectives within the sum of their certificates' tolerances."""
    assert found["status"] == oracle["status"] == "optimal"
    tol = found["gap_tolerance"] + oracle["gap_tolerance"]
    assert abs(found["objective"] - oracle["objective"]) <= tol, (found["objective"],
                                                                  oracle["objective"], tol)


CASES = [("squared", "tv2", None, 1, False), ("squared", "bv2", None, 1, False),
         ("squared", "tv2", 0.8, 1, False), ("squared", "bv2", 0.8, 1, False),
         ("squared", "tv2", None, 2, True), ("squared", "bv2", 1.5, 3, True),
         ("logistic", "tv2", None, 1, False), ("logistic", "bv2", None, 1, True),
         ("logistic", "tv2", 2.0, 1, False), ("logistic", "bv2", 2.0, 1, False),
         ("xent", "tv2", None, 3, False), ("xent", "bv2", 2.0, 3, True)]


@pytest.mark.parametrize("seed", range(len(CASES)))
def test_one_neuron_equals_the_full_data_grid(seed):
    """Case `seed` of CASES, its random problem drawn from that seed."""
    loss, reg, lip_max, outputs, duplicates = CASES[seed]
    net, x, y = random_problem(seed, outputs=outputs, duplicates=duplicates, loss=loss)
    kw = dict(lam=0.05 if loss == "squared" else 0.5, reg=reg, lip_max=lip_max, loss=loss)
    model, cert = solve(net, x, y, **kw)
    assert cert["method"] == "one_neuron" and cert["certified_by"] == "dual bound"
    _, full = solve(net, x, y, method="full", **kw)
    assert_same_optimum(cert, full)
    _, active = solve(net, x, y, method="active", **kw)
    assert_same_optimum(cert, active)
    assert cert["knots"] == active["knots"]            # both polished on the knots alone
    # the returned model's objective, in NumPy, is the one reported
    assert cert["objective_check"] == pytest.approx(cert["objective"], rel=1e-9)
    if lip_max is not None:
        assert cert["lipschitz"][0] <= lip_max * (1 + 1e-9)


def test_one_neuron_is_the_default_where_it_applies():
    net, x, y = single_neuron(200)
    _, cert = solve(net, x, y, lam=0.5)
    assert cert["method"] == "one_neuron"
    _, cert = solve(net, x, (y > 0).astype(float), lam=0.5, loss="logistic")
    assert cert["method"] == "one_neuron"
    _, cert = solve(net, x, y, lam=0.5, grid="uniform", size=11)
    assert cert["method"] == "full"
    net.layers[2].params["weight"][:] = 0.0         # no data term: the active set decides
    _, cert = solve(net, x, y, lam=0.5)
    assert cert["method"] == "active"
    with pytest.raises(ValueError, match="method: 'one_neuron' needs"):
        solve(net, x, y, lam=0.5, method="one_neuron")
    with pytest.raises(ValueError, match="method: 'one_neuron' works on the data grid"):
        solve(net, x, y, lam=0.5, grid="uniform", method="one_neuron")


def test_one_neuron_progress_shows_the_rounds(monkeypatch):
    class FakeTerminal(io.StringIO):
        def isatty(self):
            return True

    net, x, y = single_neuron(m=300)
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _, cert = solve(net, x, y, lam=0.5, progress=True)
    assert cert["status"] == "optimal"
    assert "solve (one_neuron)" in terminal.getvalue() and "round 1" in terminal.getvalue()


def test_solve_command_uses_the_one_neuron_method(tmp_path, capsys):
    from reference.cli import main
    from reference.io._model_file import save_model

    net, x, y = single_neuron(m=200)
    save_model(net, tmp_path / "m.npz")
    np.savez(tmp_path / "d.npz", X=x, y=y)
    args = ["solve", str(tmp_path / "m.npz"), "--data", str(tmp_path / "d.npz"), "--layer",
            "1", "--lam", "0.5", "--out", str(tmp_path / "s.npz"), "--json"]
    for extra in ([], ["--method", "one_neuron"]):
        assert main(args + extra) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["method"] == "one_neuron" and out["status"] == "optimal"
        assert out["rounds"] >= 1 and "worst_violation" in out and "polish" in out


def test_two_neurons_keep_the_active_set():
    rng = np.random.default_rng(0)
    net = Network([Dense(np.array([[1.0], [-0.5]]), np.zeros(2)),
                   SplineActivation(LinearSpline.initialise("identity", 2, 21, 2.0)),
                   Dense(np.array([[1.0, 0.7]]), np.zeros(1)), Identity()])
    x = rng.uniform(-2, 2, (80, 1))
    _, cert = solve(net, x, np.sin(3 * x[:, 0]), lam=0.1)
    assert cert["method"] == "active"
    with pytest.raises(ValueError, match="one neuron"):
        solve(net, x, np.sin(3 * x[:, 0]), lam=0.1, method="one_neuron")


def test_one_neuron_size_guard_counts_samples():
    net, x, y = single_neuron(500)
    with pytest.raises(TooLarge, match="one-neuron problem size"):
        solve(net, x, y, lam=0.5, max_size=2)
    # the full data grid's guard would refuse this size; the one-neuron estimate does not
    _, cert = solve(net, x, y, lam=0.5, max_size=600)
    assert cert["method"] == "one_neuron"
    with pytest.raises(TooLarge):
        solve(net, x, y, lam=0.5, max_size=600, method="full")


@pytest.mark.parametrize("r, s", [(2.0 ** 5, 2.0 ** -3), (1e3, 1e-2)])
def test_one_neuron_scaling_law(r, s):
    """x multiplied by r (so z by r), y - c by s, lambda by s r, L_max by s / r: the
    objective multiplied by s^2, the same knots (bit for bit for powers of two)."""
    net, x, y = random_problem(3, m=80)
    c = net.layers[2].params["bias"].copy()
    base = solve(net, x, y, lam=0.05, lip_max=1.2)[1]
    scaled_net = one_neuron_net(net.layers[2].params["weight"][:, 0], c * s,
                                net.layers[0].params["weight"][0, 0],
                                net.layers[0].params["bias"][0] * r)
    found = solve(scaled_net, x * r, y * s, lam=0.05 * s * r, lip_max=1.2 * s / r)[1]
    assert found["status"] == base["status"] == "optimal"
    assert found["knots"] == base["knots"]
    if np.frexp(r)[0] == 0.5 and np.frexp(s)[0] == 0.5:
        assert found["objective"] == base["objective"] * s * s
    else:
        assert found["objective"] == pytest.approx(base["objective"] * s * s, rel=1e-7)


@pytest.mark.parametrize("m", [1, 2])
def test_one_neuron_few_samples(m):
    """One sample: the data fitted exactly by a constant (objective 0); two: by a line."""
    x = np.array([[0.3], [1.1]])[:m]
    y = np.array([0.7, -0.4])[:m]
    model, cert = solve(one_neuron_net(1.0, 0.0), x, y, lam=0.1)
    assert cert["status"] == "optimal" and cert["method"] == "one_neuron"
    assert cert["knots"] == [0]
    assert abs(cert["objective"]) <= cert["gap_tolerance"]
    np.testing.assert_allclose(model.forward(x)[:, 0], y, atol=1e-6)


def test_one_neuron_all_inputs_equal():
    """Every input equal: the optimum fits their mean (a constant, no knot)."""
    x = np.full((7, 1), 0.4)
    y = np.array([0.1, 0.5, -0.2, 0.9, 0.3, 0.3, 0.0])
    model, cert = solve(one_neuron_net(2.0, 0.5), x, y, lam=0.3)
    assert cert["status"] == "optimal" and cert["knots"] == [0]
    expected = 0.5 * float(np.sum((y - y.mean()) ** 2))
    assert cert["objective"] == pytest.approx(expected, rel=1e-9, abs=cert["gap_tolerance"])


@pytest.mark.parametrize("reg", ["tv2", "bv2"])
def test_one_neuron_huge_lambda(reg):
    """lambda huge: TV2 gives the least-squares line (no knot), BV2 the zero spline."""
    net, x, y = random_problem(5)
    model, cert = solve(net, x, y, lam=1e9, reg=reg)
    assert cert["status"] == "optimal" and cert["knots"] == [0]
    out = model.forward(x)[:, 0]
    if reg == "bv2":
        np.testing.assert_allclose(out, net.layers[2].params["bias"][0], atol=1e-6)
    else:
        design = np.column_stack([np.ones(len(x)), x[:, 0]])
        fit = design @ np.linalg.lstsq(design, y, rcond=None)[0]
        np.testing.assert_allclose(out, fit, atol=1e-6 * np.ptp(y))


def test_one_neuron_path_warm_starts():
    net, x, y = random_problem(7, m=120)
    path = convex.solve_path(net, 1, x, y, [0.5, 0.1, 0.02])
    for lam, _, cert in path:
        assert cert["method"] == "one_neuron" and cert["status"] == "optimal"
        _, active = solve(net, x, y, lam=lam, method="active")
        assert_same_optimum(cert, active)


@pytest.mark.slow
@pytest.mark.parametrize("m", [20_000, 200_000])
def test_one_neuron_large(m):
    """The benchmark's problem: certified, the knots of the general active set (M = 20 000),
    or of a path from a coarser lambda (M = 200 000)."""
    net, x, y = single_neuron(m)
    _, cert = solve(net, x, y, lam=0.5)
    assert cert["status"] == "optimal" and cert["method"] == "one_neuron"
    if m <= 20_000:
        _, active = solve(net, x, y, lam=0.5, method="active")
        assert_same_optimum(cert, active)
        assert cert["knots"] == active["knots"]


def test_knot_correlation_within_its_error_bound():
    """phi(tau) = sum_m w_m (z_m - tau)_+ against an exact sum (math.fsum of the products,
    each exact to half an ulp) at every candidate: within knot_correlation_error sum |w| S,
    the allowance the dual bound makes."""
    import math

    from reference.convex._active_set import knot_correlation, knot_correlation_error

    rng = np.random.default_rng(11)
    m = 3000
    z = rng.uniform(-3.0, 5.0, m)
    w = rng.normal(size=m) * np.exp(rng.normal(size=m))
    w -= w.mean()                                         # cancellation, as at an optimum
    tau = np.sort(z)[::37]
    found = knot_correlation(z, w, tau)
    exact = np.array([math.fsum(w * np.maximum(z - t, 0.0)) for t in tau])
    allowance = knot_correlation_error(m) * np.abs(w).sum() * np.ptp(z)
    assert np.abs(found - exact).max() <= allowance
    assert np.abs(found - exact).max() > 0 or allowance > 0


@pytest.mark.slow
def test_one_neuron_million_samples_certified():
    """M = 10^6: certified by the dual bound (before the sums of knot_correlation were
    accumulated in extended precision, the allowance for their rounding, 4 (M + 4) eps
    sum |w| S, was 1.7e-3 lambda and the bound fell 3.3e-6 relative short: not certified)."""
    net, x, y = single_neuron(10 ** 6)
    _, cert = solve(net, x, y, lam=0.5)
    assert cert["status"] == "optimal" and cert["certified_by"] == "dual bound"
    assert cert["objective"] - cert["lower_bound"] <= cert["gap_tolerance"]


def test_one_neuron_failure_falls_back_to_the_active_set(monkeypatch):
    """A one-neuron solve that ends without a certified optimum (here: its engine fails;
    since the active set's Newton refinement also refines the one-neuron method's restricted
    problems, a Newton step limit no longer makes it fail) is never returned as optimal: the
    active set solves the lambda again, and the certificate says so."""
    from reference.convex import _one_neuron as one_neuron
    from reference.exceptions import SolveFailed

    def fails(*args, **kwargs):
        raise SolveFailed("the one-neuron engine stopped (injected)")

    net, x, y = random_problem(2, loss="logistic")
    _, reference = solve(net, x, y, lam=0.5, loss="logistic", method="active")
    monkeypatch.setattr(one_neuron, "solve_layer_one_neuron", fails)
    _, cert = solve(net, x, y, lam=0.5, loss="logistic")
    assert cert["method"] == "active" and cert["status"] == "optimal"
    assert "one-neuron method gave no certified optimum" in cert["fallback"]
    assert_same_optimum(cert, reference)


def test_one_neuron_fallback_keeps_the_active_sets_size_guard_and_both_reasons(monkeypatch):
    """The fallback is the active set under its own size guard (it ran unguarded before:
    32 s at M = 20 000 under a max_size the active set refuses), and when it fails too the
    error carries both methods' reasons."""
    from reference.convex import _active_set as active_set
    from reference.convex import _one_neuron as one_neuron
    from reference.exceptions import SolveFailed

    def fails(name):
        def engine(*args, **kwargs):
            raise SolveFailed(f"{name} stopped (injected)")
        return engine

    net, x, y = single_neuron(500)
    monkeypatch.setattr(one_neuron, "solve_layer_one_neuron", fails("one-neuron engine"))
    with pytest.raises(TooLarge, match="its fallback, the active set, is refused"):
        solve(net, x, y, lam=0.5, max_size=100)      # one neuron: 50; the active set: 508
    monkeypatch.setattr(active_set, "solve_layer_active", fails("active engine"))
    with pytest.raises(SolveFailed, match="active engine stopped.*one-neuron engine stopped"):
        solve(net, x, y, lam=0.5)


def test_one_neuron_uncertified_point_falls_back(monkeypatch):
    """An engine whose point the verdict refuses (a model off the optimum, reported as its
    own): the verdict's SolveNotCertified leads to the active set."""
    from reference.convex import _one_neuron as one_neuron

    original = one_neuron.solve_layer_one_neuron

    def off_optimum(net, layer, x, y, scaled, grids, **kw):
        new, cert, masks, extra, stopped = original(net, layer, x, y, scaled, grids, **kw)
        new.layers[layer].values[0][:] *= 0.5             # a feasible point, not optimal
        from reference.convex._problem import numpy_objective
        cert["objective_check"] = cert["objective"] = numpy_objective(
            new, layer, x, y, scaled.loss, scaled.lam_given, scaled.reg)
        return new, cert, masks, extra, stopped

    monkeypatch.setattr(one_neuron, "solve_layer_one_neuron", off_optimum)
    net, x, y = random_problem(4)
    _, cert = solve(net, x, y, lam=0.05)
    assert cert["method"] == "active" and cert["status"] == "optimal"
    assert "not certified" in cert["fallback"]


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_one_neuron_time_limit_is_not_a_fallback(loss):
    """Past the time limit the result is "time_limit" with the best point known: no second
    method is started after the deadline."""
    from reference.exceptions import SolveNotCertified

    net, x, y = random_problem(6, m=400, loss=loss)
    with pytest.raises(SolveNotCertified) as info:
        solve(net, x, y, lam=0.5, loss=loss, time_limit=1e-3)
    assert info.value.certificate["status"] == "time_limit"
    assert info.value.certificate["method"] == "one_neuron"
    assert "fallback" not in info.value.certificate


def test_merge_points_is_its_sequential_definition():
    """The data grid's merging (vectorised for 10^6 samples) keeps exactly the points the
    definition keeps: each distinct point farther than rtol * spread from the last kept one,
    chains of close points keeping their head."""
    def sequential(z, rtol):
        tol, keep, last = rtol * float(np.ptp(z)), [], -np.inf
        for value in np.unique(z):
            if value - last > tol:
                keep.append(value)
                last = value
        return np.array(keep)

    rng = np.random.default_rng(0)
    for _ in range(200):
        z = np.round(rng.uniform(-1, 1, rng.integers(1, 200)) * 1000) / 10
        if rng.uniform() < 0.5:                           # chains of near points
            z = np.concatenate([z, z + rng.uniform(0, 0.3, len(z))])
        for rtol in (0.0, 1e-9, 1e-3, 0.05, 0.3):
            np.testing.assert_array_equal(convex.merge_points(z, rtol), sequential(z, rtol))
