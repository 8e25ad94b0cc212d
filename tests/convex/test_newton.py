"""Issue 20 items 1-2: the active set's restricted problems of the logistic and cross-entropy
losses refined by Newton's method (reference.convex._newton), and the knot count decided
against the jump accuracy it estimates (reference.convex._knots)."""
import numpy as np
import pytest

from reference import convex
from reference.convex._knots import knot_rule
from reference.data import _datasets as datasets
from reference.nn import KnotSplineActivation
from reference.training._experiments import run_training


@pytest.fixture(scope="module")
def circle_net():
    net, _ = run_training("circle", "spline", [2], epochs=5, seed=0)
    ds = datasets.load("circle", seed=0)
    return net, ds.x_train[:400], ds.y_train[:400]


@pytest.mark.parametrize("lam", [1e-2, 1e-1])
def test_logistic_active_set_converges_with_accurate_multipliers(circle_net, lam):
    """The active set converges on a trained circle network's logistic layer problem, and
    the multipliers of the refined restricted optimum are accurate to far below
    CLARABEL's exponential-cone ~1e-5 (NOISE_MAX 1e-6 was not met before)."""
    net, x, y = circle_net
    _, cert = convex.solve_layer(net, 1, x, y, loss="logistic", lam=lam, reg="tv2")
    assert cert["status"] == "optimal"
    assert cert["multiplier_noise"] <= 1e-9
    assert cert["newton"]["status"] == "refined"
    rule = cert["knot_rule"]
    assert rule["jump_accuracy"] is not None
    # every counted jump is far above the estimated accuracy; no jump sits in between
    for k, small in enumerate(rule["smallest_counted"]):
        assert cert["knots"][k] == 0 or small > 100 * rule["jump_accuracy"][k]
        assert rule["largest_uncounted"][k] <= rule["threshold"][k]
    assert all(c <= p for c, p in cert["knots_bracket"])


def test_newton_point_matches_cvxpy_oracle(circle_net):
    """The refined optimum's objective agrees with cvxpy's full data-grid solve (the
    oracle) to its certificate's tolerance, and is not above it."""
    net, x, y = circle_net
    x, y = x[:150], y[:150]
    _, act = convex.solve_layer(net, 1, x, y, loss="logistic", lam=0.05, reg="tv2")
    try:
        _, full = convex.solve_layer(net, 1, x, y, loss="logistic", lam=0.05, reg="tv2",
                                     method="full")
    except convex._solve.SolveFailed:
        pytest.skip("the cvxpy oracle did not solve this instance")
    tol = act["gap_tolerance"] + full["gap_tolerance"]
    assert act["objective_check"] <= full["objective_check"] + tol
    assert abs(act["objective_check"] - full["objective_check"]) <= tol


def test_xent_active_set_refined():
    """Cross-entropy: a 3-class spline layer problem converges with refined multipliers."""
    from reference.testing import loss_targets, random_net
    rng = np.random.default_rng(3)
    net = random_net([2, 3, 3], "spline", 3, size=11)
    x = rng.normal(size=(200, 2))
    y = loss_targets(net, x, "xent", rng)
    _, cert = convex.solve_layer(net, 1, x, y, loss="xent", lam=0.5, reg="tv2")
    assert cert["status"] == "optimal"
    assert cert["newton"]["status"] == "refined"
    assert cert["multiplier_noise"] <= 1e-9


def test_knot_rule_brackets_undecided_jumps():
    """A jump between the estimated accuracy and the threshold is neither counted nor hidden:
    the bracket [certain, possible] spans it; a jump at the accuracy level is not a knot."""
    layer = KnotSplineActivation([[0.0, 1.0, 2.0, 3.0, 4.0]], [[0.0, 1.0, 1.0, 1.0 + 1e-9,
                                                              1.0 + 2e-9 + 1e-13]])
    rule = knot_rule(layer, [1e-12], accuracy=[1e-10])
    # jumps: 1 (at 1), 1e-9 (at 2), ~1e-13 (at 3); threshold 100 x 1e-10 = 1e-8
    assert rule["knots"] == [1]
    assert rule["knots_bracket"] == [[1, 2]]
    assert not rule["decided"]
    assert rule["smallest_counted"][0] == pytest.approx(1.0)
    assert rule["largest_uncounted"][0] == pytest.approx(1e-9, rel=1e-3)
    unproven = knot_rule(layer, [1e-12])
    assert unproven["knots_bracket"] == [[None, 2]] and unproven["jump_accuracy"] is None


GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
OPEN = pytest.mark.xfail(reason="issue 20, open: both passes end 'not certified' (best point "
                         "0.3859371, dual bound 0.3848908 at it, tolerance 1e-6)", strict=False)


@pytest.mark.slow
@pytest.mark.parametrize("dataset, lam", [
    pytest.param(d, lam, marks=OPEN) if d == "s_shape" and lam == 1e-6 else (d, lam)
    for d in ("circle", "s_shape") for lam in GRID])
def test_default_profile_grid(dataset, lam):
    """The default figure profile's TV2 networks (one hidden layer of 2, 100 epochs,
    sparsify auto, seed 0) at every lambda of its grid: the layer problem is certified
    optimal, with the knot count's bracket reported (issue 20 item 1)."""
    from figures.profiles import PROFILES
    from reference.training._experiments import run

    config, = [c for c in PROFILES["default"].lambda_configs()
               if c.dataset == dataset and c.activation == "spline" and c.reg == "tv2"
               and c.lam == lam and c.seed == 0]
    net, _ = run(config)
    ds = datasets.load(dataset, seed=0)
    _, cert = convex.solve_layer(net, 1, ds.x_train, ds.y_train, loss="logistic", lam=lam,
                                 reg="tv2")
    assert cert["status"] == "optimal"
    assert all(c is not None and c <= p for c, p in cert["knots_bracket"])


def test_mnist_like_data_read_by_the_mnist_reader(tmp_path):
    """The generated MNIST-format data (reference.testing._mnist_like) go through the
    project's MNIST reader: 784 features in [0, 1], ten classes, seeded."""
    from reference.testing._mnist_like import mnist_like, mnist_like_npz
    path = mnist_like_npz(tmp_path / "m.npz", 60, 20, seed=1)
    ds = datasets.load("mnist", path=path, seed=0)
    assert ds.x_train.shape[1] == 784 and ds.num_classes == 10
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    again = mnist_like(60, 20, seed=1)
    assert np.array_equal(again["y_train"], mnist_like(60, 20, seed=1)["y_train"])
    with pytest.raises(ValueError, match="m, m_test"):
        mnist_like(5, 1)


def test_a_conic_point_with_a_tiny_decrement_still_gets_one_newton_step():
    """The representer theory check's cross-entropy instance at 1500 samples, lambda 0.1:
    CLARABEL's point had a Newton decrement already below the convergence threshold, so no
    step was taken and the multipliers stayed off by 5.3e-9 (the full profile's check
    'multipliers refined (noise <= 1e-9)' failed); one full step brings them to ~4e-13."""
    from reference import convex
    from reference.testing import loss_targets, random_net

    rng = np.random.default_rng(300)            # theory_checks.representer's instance
    net = random_net([2, 3, 3], "spline", 3, size=11)
    x = rng.normal(size=(1500, 2))
    y = loss_targets(net, x, "xent", rng)
    _, cert = convex.solve_layer(net, 1, x, y, loss="xent", lam=0.1, reg="tv2")
    assert cert["status"] == "optimal" and cert["newton"]["iterations"] >= 1
    assert cert["multiplier_noise"] <= 1e-9


def test_refine_settles_when_a_joining_candidate_is_at_noise_level():
    """A candidate whose violation sits at the multipliers' accuracy joins the support, and
    Newton's method drives its jump straight back to 0 (the direction of no decrease): the
    support cycles with no decrease of the objective.  That point is the restricted optimum
    to that accuracy (the caller's check reports the violation as its noise), not a failure
    (s_shape, lambda 1e-4: "support did not settle", then SolveFailed)."""
    from reference.convex._active_set import _check, knot_correlation, loss_weights
    from reference.convex._newton import refine
    from reference.convex._problem import CoefficientProblem, RegWeights
    rng = np.random.default_rng(0)
    z = np.sort(rng.normal(size=(80, 1)), axis=0)
    y = (rng.random(80) < 1 / (1 + np.exp(-4 * np.sin(2 * z[:, 0])))).astype(float)[:, None]
    a_mat, c, lam = np.array([[1.0]]), np.zeros(1), 0.5
    grids = [np.unique(z[:, 0])]
    active = [np.ones(len(grids[0]), dtype=bool)]
    prob = CoefficientProblem(z, a_mat, c, y, "logistic", "tv2", grids)
    start = KnotSplineActivation([grids[0]], [np.zeros(len(grids[0]))])
    bumped = []

    def violation(pieces):          # refine_solution's, plus a noise-level bump (2 ADD_RTOL)
        trial = KnotSplineActivation(*zip(*pieces))
        viol = _check(prob, trial, z, a_mat, c, y, grids, active, lam, 1.0).violation[0]
        w = loss_weights(trial.forward(z)[0], a_mat, c, y, "logistic")[:, 0]
        t = knot_correlation(z[:, 0], w, grids[0])
        inside = 1 + int(np.argmin(viol[1:-1]))          # the multiplier farthest inside
        viol = viol.copy()
        viol[inside] = 2e-9
        bumped.append(inside)
        return [(viol, (t - t[0])[1:-1])]
    found = refine(start, z, a_mat, c, y, "logistic", RegWeights.plain(1, "tv2"), lam, grids,
                   active, np.zeros(1), violation)
    assert len(bumped) >= 2                      # the bumped candidate joined and left
    assert found.status == "converged"
    assert 0 < found.support[0] < len(grids[0]) - 2


def test_solve_text_says_the_point_is_newtons(circle_net, tmp_path, capsys):
    """`solve` prints that the point is the solver's refined by Newton's method (its line
    'CLARABEL status optimal ... primal - dual gap n/a' read as CLARABEL's own point), and
    that a decided knot count is the returned point's."""
    from reference.cli import main
    from reference.io import save_model

    net, x, y = circle_net
    save_model(net, tmp_path / "m.npz")
    np.savez(tmp_path / "d.npz", X=x, y=y)
    assert main(["solve", str(tmp_path / "m.npz"), "--data", str(tmp_path / "d.npz"),
                 "--layer", "1", "--lam", "0.1", "--loss", "logistic", "--quiet",
                 "--out", str(tmp_path / "s.npz")]) == 0
    text = capsys.readouterr().out
    assert "refined by Newton's method on its knots" in text
    assert "knot count " in text and "(of this point" in text
    assert "knot count exact" not in text
