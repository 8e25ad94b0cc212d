from pathlib import Path

import numpy as np
import pytest

from reference import ladder, lipschitz
from reference.io import network_from_mat
from reference.lipsdp import lipsdp, lmi_matrix, lipsdp_data
from reference.network import (Dense, Identity, Network, PReLU, ReLU, SplineActivation,
                               build_mlp)
from reference.spline import LinearSpline

# shared/ lies beside the checkout (DESIGN.md: ../shared/anchors/)
ANCHOR = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "lipsdp_random_weights.mat"


def anchor_path():
    if not ANCHOR.exists():
        pytest.skip(f"{ANCHOR} not present beside the checkout")
    return ANCHOR


def test_lipsdp_reproduces_the_published_anchor():
    """Fazlyab et al.'s 2-10-30-20-2 ReLU example: LipSDP-neuron 36.482, -layer 39.839."""
    net = network_from_mat(anchor_path())
    neuron = lipsdp(net, "neuron")
    layer = lipsdp(net, "layer")
    assert neuron["status"] == "optimal" and layer["status"] == "optimal"
    assert abs(neuron["value"] - 36.482) < 1e-3
    assert abs(layer["value"] - 39.839) < 1e-3
    # the NumPy-certified value agrees with the solver's optimum
    assert neuron["value"] == pytest.approx(neuron["solver_value"], rel=1e-6)
    assert abs(neuron["relative_gap"]) < 1e-6
    assert lipschitz.layerwise(net, 2) >= layer["value"]


def test_lipsdp_sits_between_sampled_lower_bound_and_layerwise_on_a_spline_network():
    rng = np.random.default_rng(0)
    net = build_mlp([3, 6, 5, 2], "spline", rng=2, spline_init="even_odd", size=9, range_=2.0)
    for layer in net.layers:
        if layer.kind == "spline":
            layer.params["coefficients"] += 0.3 * rng.normal(size=layer.params["coefficients"].shape)
    neuron = lipsdp(net, "neuron")
    layer_bound = lipsdp(net, "layer")
    x = rng.normal(size=(3000, 3))
    x2 = x + 1e-3 * rng.normal(size=x.shape)
    lower = np.max(np.linalg.norm(net.forward(x) - net.forward(x2), axis=1)
                   / np.linalg.norm(x - x2, axis=1))
    assert lower <= neuron["value"] * (1 + 1e-9)
    assert neuron["value"] <= layer_bound["value"] * (1 + 1e-6)
    assert layer_bound["value"] <= lipschitz.layerwise(net, 2) * (1 + 1e-6)
    assert lipschitz.layerwise(net, 2) <= lipschitz.theorem1(net, 2) * (1 + 1e-12)
    data = lipsdp_data(net)
    assert data[2].min() < 0 < data[3].max()           # heterogeneous slope bounds used


@pytest.mark.parametrize("p", ["1", "2", "inf"])
def test_layerwise_between_lower_bound_and_theorem1(p):
    rng = np.random.default_rng(1)
    net = build_mlp([3, 5, 4, 2], "leaky_relu", rng=4)
    pv = lipschitz.parse_p(p)
    x = rng.normal(size=(3000, 3))
    x2 = x + 1e-3 * rng.normal(size=x.shape)
    lower = np.max(np.linalg.norm(net.forward(x) - net.forward(x2), ord=pv, axis=1)
                   / np.linalg.norm(x - x2, ord=pv, axis=1))
    assert lower <= lipschitz.layerwise(net, p) * (1 + 1e-9)
    assert lipschitz.layerwise(net, p) <= lipschitz.theorem1(net, p) * (1 + 1e-12)


def test_lmi_matrix_is_symmetric_and_bad_input():
    net = build_mlp([2, 3, 1], "relu", rng=0)
    data = lipsdp_data(net)
    m = lmi_matrix(data, np.ones(3), 2.0)
    np.testing.assert_allclose(m, m.T)
    with pytest.raises(ValueError, match="variant"):
        lipsdp(net, "network")
    net.layers[0].params["weight"][0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        lipsdp(net, "neuron")


def test_lmi_of_a_relu_network_is_the_published_one():
    """For ReLU (alpha 0, beta 1) the loop transformation changes nothing: M(lambda, rho) =
    [A; B]^T [[0, T], [T, -2T]] [A; B] + blkdiag(-rho I, 0, W_out^T W_out) with
    A = [blkdiag(W_0, W_1), 0], B = [0, I] (Fazlyab et al.)."""
    net = build_mlp([2, 3, 4, 2], "relu", rng=5)
    w0, w1, w2 = (layer.params["weight"] for layer in net.layers if layer.kind == "dense")
    a_mat = np.zeros((7, 9))
    a_mat[:3, :2], a_mat[3:, 2:5] = w0, w1
    b_mat = np.hstack([np.zeros((7, 2)), np.eye(7)])
    lam = np.random.default_rng(0).uniform(0.5, 2.0, 7)
    t = np.diag(lam)
    published = np.vstack([a_mat, b_mat]).T @ np.block([[0 * t, t], [t, -2 * t]]) \
        @ np.vstack([a_mat, b_mat])
    published[:2, :2] -= 1.5 * np.eye(2)
    published[5:, 5:] += w2.T @ w2
    np.testing.assert_allclose(lmi_matrix(lipsdp_data(net), lam, 1.5), published,
                               rtol=0, atol=1e-14)


def affine_value(net):
    """||W_L ... diag(slope) ... W_1||_2 of a network whose activations are all linear."""
    return np.linalg.norm(net.input_jacobian(np.zeros((1, net.n_in)))[0], 2)


@pytest.mark.parametrize("variant", ["neuron", "layer"])
def test_network_without_hidden_activation_gives_the_exact_norm(variant):
    """Bug: a network without a hidden activation raised 'LipSDP needs at least one hidden
    activation layer' (and the ladder with it).  It is affine: LipSDP is exact, ||W||_2."""
    net = Network([Dense([[0.1257]]), Identity()])
    r = lipsdp(net, variant)
    assert r["value"] == 0.1257 and r["solver"] == "none (affine network)"
    relu_out = Network([Dense([[1.0, -2.0], [0.5, 3.0]]), ReLU()])   # an SDP (W_out = I)
    r = lipsdp(relu_out, variant)
    w = relu_out.layers[0].params["weight"]                 # Lip = ||W||_2 (all rows on)
    assert r["attempts"] and r["value"] == pytest.approx(np.linalg.norm(w, 2), rel=1e-6)
    results = ladder.ladder(Network([Dense([[0.1257]]), Identity()]), 2,
                            methods=["lipsdp_neuron", "lipsdp_layer", "layerwise"])
    assert [results[m]["value"] for m in results] == [0.1257] * 3


LINEAR_HIDDEN = [
    Network([Dense([[0.415], [-1.390]]), Identity(), Dense([[-0.293, 0.0735]]), Identity()]),
    Network([SplineActivation(LinearSpline([[0.3, -0.9], [1.2, 1.0], [0.0, 2.5]], -1.0, 2.0)),
             Dense(np.random.default_rng(0).normal(size=(3, 3))), Identity()]),
]


@pytest.mark.parametrize("net", LINEAR_HIDDEN, ids=["identity", "spline K=2"])
@pytest.mark.parametrize("variant", ["neuron", "layer"])
def test_linear_hidden_neurons_are_absorbed_exactly(net, variant):
    """Bug: a hidden layer with alpha = beta (identity; spline with K = 2) made CVXOPT raise
    ZeroDivisionError out of lipsdp, and CLARABEL returned neuron 0.60952 > layer 0.60950
    (the untransformed SDP's optimum needs lambda -> infinity).  The linear neurons are now
    folded into the weights: both variants give the exact ||C||_2 of the affine network."""
    r = lipsdp(net, variant)
    assert r["solver"] == "none (affine network)" and r["absorbed_neurons"] >= 2
    assert r["value"] == pytest.approx(affine_value(net), rel=1e-14)


def test_a_linear_neuron_among_nonlinear_ones_is_absorbed():
    """One identity neuron (PReLU slope 1) beside two ReLU-like ones: it gets no multiplier,
    the SDP is certified, and the value is between the sampled slope and the layer-wise
    bound; both variants agree with CLARABEL."""
    rng = np.random.default_rng(3)
    net = Network([Dense(rng.normal(size=(3, 2))), PReLU(np.array([1.0, 0.2, -0.5])),
                   Dense(rng.normal(size=(2, 3))), Identity()])
    data = lipsdp_data(net)
    assert data.absorbed == 1 and data.a_mat.shape == (2, 4)
    low = lipschitz.lower(net, 2, box=3.0)["value"]
    for variant in ("neuron", "layer"):
        r = lipsdp(net, variant)
        assert r["attempts"][0] == "CVXOPT margin 0: optimal"
        assert low <= r["value"] <= lipschitz.layerwise(net, 2) * (1 + 1e-9)
        assert r["value"] == pytest.approx(lipsdp(net, variant, solver="CLARABEL")["value"],
                                           rel=1e-5)


@pytest.mark.parametrize("eps", [1e-3, 1e-9])
def test_nearly_linear_neurons_stay_accurate(eps):
    """PReLU slopes 1 - eps: the transformed multipliers stay of order 1 (untransformed,
    CVXOPT raised ZeroDivisionError at eps = 1e-6 and LipSDP-layer was 5-12% off at 1e-9):
    both variants lie within 1e-6 above ||W_2 W_1||_2 (1 - eps <= Lip / that <= 1 up to the
    LipSDP relaxation, which is O(eps) here), neuron <= layer."""
    rng = np.random.default_rng(1)
    net = Network([Dense(rng.normal(size=(3, 2))), PReLU(np.full(3, 1 - eps)),
                   Dense(rng.normal(size=(2, 3))), Identity()])
    exact = affine_value(net)
    neuron, layer = lipsdp(net, "neuron"), lipsdp(net, "layer")
    for r in (neuron, layer):
        assert exact * (1 - eps) <= r["value"] <= exact * (1 + 1e-6 + 100 * eps)
    assert neuron["value"] <= layer["value"] * (1 + neuron["accuracy"])


def test_solver_exceptions_are_failed_attempts(monkeypatch):
    """CVXOPT's ZeroDivisionError (raised inside conelp on degenerate SDPs) is a failed
    attempt, followed by the next margin and the fallback solver, not an escaped exception."""
    import cvxpy as cp
    net = build_mlp([2, 4, 3, 1], "relu", rng=1)
    original = cp.Problem.solve

    def dividing_cvxopt(self, *args, **kwargs):
        if kwargs.get("solver") == "CVXOPT":
            raise ZeroDivisionError("float division by zero")
        return original(self, *args, **kwargs)
    monkeypatch.setattr(cp.Problem, "solve", dividing_cvxopt)
    r = lipsdp(net, "neuron")
    assert r["solver"] == "CLARABEL" and len(r["attempts"]) == 4
    assert "ZeroDivisionError" in r["attempts"][0]


def test_lipsdp_reports_a_failed_solve_instead_of_a_number(monkeypatch):
    import cvxpy as cp
    net = build_mlp([2, 3, 1], "relu", rng=0)

    def fake_solve(self, *args, **kwargs):
        self._status = "infeasible_inaccurate"
    monkeypatch.setattr(cp.Problem, "solve", fake_solve)
    monkeypatch.setattr(cp.Problem, "status", property(lambda self: self._status))
    with pytest.raises(RuntimeError, match="no certified bound") as info:
        lipsdp(net, "neuron")
    # every solver and margin was tried and is named in the message
    for attempt in ("CVXOPT margin 0: infeasible_inaccurate",
                    "CLARABEL margin 1e-05: infeasible_inaccurate"):
        assert attempt in str(info.value)


def test_lipsdp_falls_back_when_the_default_solver_fails(monkeypatch):
    import cvxpy as cp
    net = build_mlp([2, 4, 3, 1], "relu", rng=1)
    expected = lipsdp(net, "neuron", solver="CLARABEL")["value"]
    original = cp.Problem.solve

    def failing_cvxopt(self, *args, **kwargs):
        if kwargs.get("solver") == "CVXOPT":
            raise cp.error.SolverError("Solver 'CVXOPT' failed.")
        return original(self, *args, **kwargs)
    monkeypatch.setattr(cp.Problem, "solve", failing_cvxopt)
    r = lipsdp(net, "neuron")
    assert r["solver"] == "CLARABEL" and "solver error" in r["attempts"][0]
    assert r["value"] == pytest.approx(expected, rel=1e-6)


def test_certificate_refuses_multipliers_that_certify_nothing():
    from reference.lipsdp import certified_rho
    net = build_mlp([2, 3, 1], "relu", rng=0)
    rho, r_max = certified_rho(lipsdp_data(net), np.zeros(3))   # lambda = 0: R = W^T W >= 0
    assert rho == np.inf and r_max >= 0
