from pathlib import Path

import numpy as np
import pytest

from reference import lipschitz
from reference.io import network_from_mat
from reference.lipsdp import lipsdp, lmi_matrix, lipsdp_data
from reference.network import build_mlp

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
    with pytest.raises(ValueError, match="hidden activation"):
        lipsdp(build_mlp([2, 1], "relu", rng=0), "neuron")
    net.layers[0].params["weight"][0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        lipsdp(net, "neuron")


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
