from pathlib import Path

import numpy as np
import pytest

from reference._numerics import times_power_of_two_up
from reference.cli import main
from reference.io._model_file import network_from_mat, save_model
from reference.lipschitz import _bounds as lipschitz
from reference.lipschitz import _ladder as ladder
from reference.lipschitz import _lipsdp as lipsdp_mod
from reference.lipschitz import _sdp_backends as lipsdp_solvers
from reference.lipschitz._blas import LIPSDP_BLAS_THREADS, blas_threads
from reference.lipschitz._lipsdp import certified_rho, lipsdp, lipsdp_data, lmi_matrix, reduce_input
from reference.lipschitz._sdp_backends import SdpSolution
from reference.nn._linear_spline import LinearSpline
from reference.nn._network import Dense, Identity, Network, PReLU, ReLU, SplineActivation, build_mlp
from reference.testing import exact_lmi, exact_rho, lipsdp_brackets_meet, lipsdp_ordered, random_net

# shared/ lies beside the checkout (DESIGN.md: ../shared/anchors/)
ANCHOR = Path(__file__).resolve().parents[3] / "shared" / "anchors" / "lipsdp_random_weights.mat"


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
            coefficients = layer.params["coefficients"]
            coefficients += 0.3 * rng.normal(size=coefficients.shape)
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
    assert r["value"] == pytest.approx(affine_value(net), rel=1e-14, abs=0)


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
        assert r["attempts"][0].startswith("NUMPY margin 0: optimal")
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
    assert lipsdp_ordered(neuron, layer)


def test_solver_exceptions_are_failed_attempts(monkeypatch):
    """CVXOPT's ZeroDivisionError (raised inside conelp on degenerate SDPs) is a failed
    attempt at every margin, reported, not an escaped exception."""
    import cvxopt.solvers

    def dividing_conelp(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")
    monkeypatch.setattr(cvxopt.solvers, "conelp", dividing_conelp)
    net = build_mlp([2, 4, 3, 1], "relu", rng=1)
    with pytest.raises(RuntimeError, match="no certified bound") as info:
        lipsdp(net, "neuron", solver="CVXOPT")          # a named solver: no fallback
    assert str(info.value).count("ZeroDivisionError") == 3 and "NUMPY" not in str(info.value)


def failing(status):
    return lambda *args: SdpSolution(status, None, None, None)


def test_lipsdp_reports_a_failed_solve_instead_of_a_number(monkeypatch):
    net = build_mlp([2, 3, 1], "relu", rng=0)
    for name in ("NUMPY", "CVXOPT", "CLARABEL"):
        monkeypatch.setitem(lipsdp_mod.SOLVE, name, failing("infeasible_inaccurate"))
    with pytest.raises(RuntimeError, match="no certified bound") as info:
        lipsdp(net, "neuron")
    # every solver and margin was tried and is named in the message
    for name in ("NUMPY", "CVXOPT", "CLARABEL"):
        for margin in ("0", "1e-07", "1e-05"):
            assert f"{name} margin {margin}: infeasible_inaccurate" in str(info.value)


def test_lipsdp_falls_back_when_the_default_solver_fails(monkeypatch):
    """NUMPY failing: CVXOPT; both failing: CLARABEL, each with the value of a direct call."""
    net = build_mlp([2, 4, 3, 1], "relu", rng=1)
    expected = {name: lipsdp(net, "neuron", solver=name)["value"] for name in ("CVXOPT",
                                                                                "CLARABEL")}
    for name, next_one in (("NUMPY", "CVXOPT"), ("CVXOPT", "CLARABEL")):
        monkeypatch.setitem(lipsdp_mod.SOLVE, name, failing("unknown (iteration limit)"))
        r = lipsdp(net, "neuron")
        assert r["solver"] == next_one and r["attempts"][0] == (
            "NUMPY margin 0: unknown (iteration limit)")
        assert r["value"] == pytest.approx(expected[next_one], rel=1e-6)


def test_solver_names_are_checked():
    net = build_mlp([2, 3, 1], "relu", rng=0)
    with pytest.raises(ValueError, match="^solver: expected an SDP solver.*NUMPY"):
        lipsdp(net, solver="IPOPT")
    assert lipsdp(net, solver="numpy")["solver"] == "NUMPY"


def test_certificate_refuses_multipliers_that_certify_nothing():
    from reference.lipschitz._lipsdp import certified_rho
    net = build_mlp([2, 3, 1], "relu", rng=0)
    rho, r_max = certified_rho(lipsdp_data(net), np.zeros(3))   # lambda = 0: R = W^T W >= 0
    assert rho == np.inf and r_max >= 0


# ------------------------------------------------------ exact reduction of the input block
MNIST = ANCHOR.parent / "lipsdp_mnist_weights.mat"
WIDE = [12, 5, 4, 2]                       # n0 = 12 > n1 = 5: the input block has rank 5


def wide_net(activation: str, seed: int):
    """A network with n0 > n1; splines with perturbed coefficients (slopes of both signs)."""
    if activation != "spline":
        return build_mlp(WIDE, activation, rng=seed)
    rng = np.random.default_rng(seed)
    net = build_mlp(WIDE, "spline", rng=seed, spline_init="even_odd", size=9, range_=2.0)
    for layer in net.layers:
        if layer.kind == "spline":
            coefficients = layer.params["coefficients"]
            coefficients += 0.3 * rng.normal(size=coefficients.shape)
    return net


def test_input_block_reduction_is_a_congruence():
    """Q^T M(lambda, rho) Q = M_r(lambda, rho) on (V1^T x, psi) and -rho I on V2^T x, with no
    coupling (Q = blkdiag([V1 V2], I)), for any multipliers and rho."""
    from scipy.linalg import null_space
    data = lipsdp_data(wide_net("spline", 0))
    red = reduce_input(data)
    r, n0 = red.rank, data.n0
    assert (n0, r) == (12, 5) and red.data.a_mat.shape == (data.a_mat.shape[0], r + 9)
    q = np.zeros((n0 + 9, n0 + 9))
    q[:n0, :r], q[:n0, r:n0], q[n0:, n0:] = red.basis, null_space(red.basis.T), np.eye(9)
    rng = np.random.default_rng(1)
    lam, rho = rng.uniform(0, 2, 9), 1.7
    m = q.T @ lmi_matrix(data, lam, rho) @ q
    m_r = lmi_matrix(red.data, lam, rho)
    keep = np.r_[np.arange(r), np.arange(n0, n0 + 9)]
    tol = 1e-12 * np.abs(m).max()
    np.testing.assert_allclose(m[np.ix_(keep, keep)], m_r, rtol=0, atol=tol)
    np.testing.assert_allclose(m[r:n0, r:n0], -rho * np.eye(n0 - r), rtol=0, atol=tol)
    assert np.abs(m[r:n0][:, keep]).max() <= tol


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "prelu", "spline"])
@pytest.mark.parametrize("variant", ["neuron", "layer"])
def test_reduced_lipsdp_equals_the_full_one(activation, variant):
    """The reduced SDP has the optimum of the full one: the certified values (both on the
    unreduced LMI) agree to 1e-9 relative, with CVXOPT to its stated accuracy, and with
    CLARABEL on the full cvxpy model (an independent route) to 1e-6."""
    net = wide_net(activation, 3)
    reduced = lipsdp(net, variant)
    full = lipsdp(net, variant, reduce=False)
    assert reduced["reduction"]["rank"] == 5 and reduced["reduction"]["side"] == 14
    assert full["reduction"] is None and full["lmi_side"] == reduced["lmi_side"] == 21
    for r in (reduced, full):
        assert len(r["attempts"]) == 1 and r["attempts"][0].startswith("NUMPY margin 0: optimal")
    assert reduced["value"] == pytest.approx(full["value"], rel=1e-9)
    other = lipsdp(net, variant, solver="CVXOPT")        # another solver, reduced
    assert lipsdp_brackets_meet(reduced, other)
    oracle = lipsdp(net, variant, solver="CLARABEL", reduce=False)
    assert reduced["value"] == pytest.approx(oracle["value"], rel=1e-6)


def test_certificate_on_the_full_lmi_fails_when_rho_is_decreased():
    """The multipliers of the reduced solve make the unreduced M(lambda, rho*) <= 0 at the
    certified rho*, and M(lambda, rho* (1 - 1e-6)) has a positive eigenvalue."""
    net = wide_net("relu", 3)
    data = lipsdp_data(net)
    with blas_threads(LIPSDP_BLAS_THREADS):          # the arithmetic of lipsdp below
        sol = lipsdp_mod.SOLVE["NUMPY"](reduce_input(data).data,
                                        lipsdp_solvers.multiplier_map(data, "neuron"), 0.0)
        lam = np.maximum(sol.lam, 0.0)
        rho, r_max = certified_rho(data, lam)
    value = lipsdp(net)["value"]          # the least over stretched multipliers, e = 0 included
    assert r_max < 0 and value <= np.sqrt(rho) <= value * (1 + 1e-9)
    top = np.linalg.eigvalsh(lmi_matrix(data, lam, rho)).max()
    assert top <= 1e-12 * rho
    assert np.linalg.eigvalsh(lmi_matrix(data, lam, rho * (1 - 1e-6))).max() > 1e-3 * 1e-6 * rho


def test_rank_tolerance_drops_only_zeros_to_rounding():
    """A first weight of rank 2 (n1 = 5) is reduced to 2 directions, with the same value (to
    1e-6: this optimum is degenerate, R nearly singular, and the interior-point solutions of
    the two SDPs are 8e-8 apart, CLARABEL's on the full model 2e-7); one whose smallest
    singular value is 1e-9 of the largest keeps all 5."""
    rng = np.random.default_rng(4)
    net = build_mlp(WIDE, "relu", rng=2)
    w0 = net.layers[0].params["weight"]
    w0[:] = rng.normal(size=(5, 2)) @ rng.normal(size=(2, 12))
    r = lipsdp(net)
    red = r["reduction"]
    assert (red["rank"], red["dropped"], red["side"]) == (2, 10, 11)
    assert 0 < red["largest_dropped"] <= red["tolerance"] < 1e-12 * np.linalg.norm(w0, 2)
    assert "rank 2 of 12" in r["certificate"]
    assert r["value"] == pytest.approx(lipsdp(net, reduce=False)["value"], rel=1e-6)
    u, s, vt = np.linalg.svd(rng.normal(size=(5, 12)), full_matrices=False)
    w0[:] = (u * np.geomspace(1.0, 1e-9, 5)) @ vt
    assert lipsdp(net)["reduction"]["rank"] == 5


def test_network_whose_output_ignores_the_input_gives_zero():
    net = build_mlp(WIDE, "relu", rng=0)
    net.layers[0].params["weight"][:] = 0.0
    r = lipsdp(net, "layer")
    assert r["value"] == 0.0 and r["solver"] == "none (constant network)"
    assert r["reduction"]["rank"] == 0
    net = build_mlp(WIDE, "relu", rng=0)
    net.layers[-2].params["weight"][:] = 0.0                   # W_out = 0
    assert lipsdp(net, "neuron", reduce=False)["value"] == 0.0


def test_reduce_must_be_a_bool():
    with pytest.raises(ValueError, match="^reduce: expected True or False"):
        lipsdp(build_mlp([2, 3, 1], "relu", rng=0), reduce="yes")


def test_structured_kkt_solver_solves_the_kkt_system():
    """The KKT solver handed to CVXOPT against the definition: for a random scaling W (R =
    W['rti'], d = W['d']) and right-hand side, its (ux, W uz) satisfy G^T W^{-1} (W uz) = bx
    and G ux - W^T (W uz) = bz, with G built column by column from the G operator."""
    from cvxopt import matrix

    from reference.lipschitz._sdp_backends import _CvxoptLmi
    rng = np.random.default_rng(5)
    data = lipsdp_data(wide_net("spline", 1))
    for k_mat in (np.eye(9), lipsdp_solvers.multiplier_map(data, "layer")):
        lmi = _CvxoptLmi(data.a_mat, data.out_mat, data.n0, k_mat)
        side, k = lmi.side, k_mat.shape[1]
        g = np.zeros((k + side * side, k + 1))
        for j in range(k + 1):
            out = matrix(0.0, (k + side * side, 1))
            lmi.g_operator(matrix(np.eye(k + 1)[:, [j]]), out)
            g[:, j] = np.asarray(out)[:, 0]
        rti = np.eye(side) + 0.3 * rng.normal(size=(side, side))
        d = rng.uniform(0.5, 2.0, k)
        bx, bz_l = rng.normal(size=k + 1), rng.normal(size=k)
        bz_s = rng.normal(size=(side, side))
        bz_s = bz_s + bz_s.T
        x, z = matrix(bx.copy()), matrix(np.concatenate([bz_l, bz_s.ravel(order="F")]))
        lmi.kkt({"d": matrix(d), "rti": [matrix(rti)]})(x, None, z)
        ux, wz = np.asarray(x)[:, 0], np.asarray(z)[:, 0]
        wz_s = wz[k:].reshape(side, side, order="F")
        r_mat = np.linalg.inv(rti).T                           # W u = r^T u r
        w_inv = np.concatenate([wz[:k] / d, (rti @ wz_s @ rti.T).ravel(order="F")])
        np.testing.assert_allclose(g.T @ w_inv, bx, rtol=0, atol=1e-9 * np.abs(bx).max())
        gu = g @ ux
        np.testing.assert_allclose(gu[:k] - d * wz[:k], bz_l, atol=1e-9)
        np.testing.assert_allclose(gu[k:].reshape(side, side, order="F") - r_mat @ wz_s @ r_mat.T,
                                   bz_s, atol=1e-9 * np.abs(bz_s).max())


def mnist_path():
    if not MNIST.exists():
        pytest.skip(f"{MNIST} not present beside the checkout")
    return MNIST


@pytest.mark.parametrize("variant,prototype", [("neuron", 24.36634887), ("layer", 26.25597278)])
def test_mnist_lipsdp_on_the_reduced_lmi(variant, prototype):
    """The 784-50-10 MNIST weights: the input block has rank 50, the solved LMI side 100 (of
    834), and the certified values equal the issue's prototype values (8 decimals; the full
    formulation through cvxpy gives 24.366348870664 and 26.255972780807 in minutes)."""
    net = network_from_mat(mnist_path())
    r = lipsdp(net, variant)
    assert r["reduction"]["rank"] == 50 and r["reduction"]["side"] == 100
    assert r["lmi_side"] == 834 and r["attempts"][0].startswith("NUMPY margin 0: optimal")
    assert abs(r["value"] - prototype) <= 1e-9 * prototype
    assert r["relative_gap"] < 1e-6


def test_guard_estimates_the_reduced_lmi():
    from reference.lipschitz._lipsdp import lmi_size, sdp_cost
    net = network_from_mat(mnist_path())
    assert lmi_size(net)[0] == 834 and lmi_size(net, reduce=True)[0] == 100
    for solver in ("NUMPY", "CVXOPT"):
        reduced = sdp_cost(net, "neuron", solver)
        assert reduced < sdp_cost(net, "neuron", solver, reduce=False) / 100
        assert reduced < 1e8                                     # about a second, not minutes


# ------------------------------------------------------------ the NumPy interior-point solver
def random_psd(rng, side):
    a = rng.normal(size=(side, side))
    return a @ a.T + side * np.eye(side)


@pytest.mark.parametrize("variant", ["neuron", "layer"])
def test_ipm_operators_are_adjoint_and_the_schur_matrix_is_its_definition(variant):
    """<A^T(y), U> = y . A(U) (both blocks, any square U), and the structured
    M_ij = <A_i, X A_j Z^{-1}> (+ x/z on R^k) against A_i built from unit vectors."""
    from reference.lipschitz._ipm import _Lmi
    rng = np.random.default_rng(6)
    data = lipsdp_data(wide_net("spline", 2))
    lmi = _Lmi(data, lipsdp_solvers.multiplier_map(data, variant), 0.0, 1.0)
    side, m = lmi.side, lmi.k + 1
    y, u, u_l = rng.normal(size=m), rng.normal(size=(side, side)), rng.normal(size=lmi.k)
    s, s_l = lmi.dual_op(y)
    np.testing.assert_allclose(np.sum(s * u) + s_l @ u_l, y @ lmi.primal_op(u, u_l),
                               rtol=1e-12)
    x_mat, z_mat = random_psd(rng, side), random_psd(rng, side)
    x_l, z_l = rng.uniform(0.5, 2, lmi.k), rng.uniform(0.5, 2, lmi.k)
    z_inv = np.linalg.inv(z_mat)
    cols = [lmi.dual_op(e) for e in np.eye(m)]                  # (A_i on S^N, on R^k)
    dense = np.array([[np.trace(ai @ x_mat @ aj @ z_inv) + ai_l @ (x_l / z_l * aj_l)
                       for aj, aj_l in cols] for ai, ai_l in cols])
    np.testing.assert_allclose(lmi.schur(x_mat, z_inv, x_l, z_l), dense, rtol=1e-10,
                               atol=1e-12 * np.abs(dense).max())


def test_ipm_reports_an_unfinished_solve_and_lipsdp_moves_on(monkeypatch):
    """With too few iterations the NumPy solver says so ("unknown (iteration limit)"), and
    lipsdp certifies CVXOPT's multipliers instead."""
    from reference.lipschitz import _ipm as lipsdp_ipm
    monkeypatch.setattr(lipsdp_ipm, "MAX_ITERATIONS", 3)
    net = build_mlp([3, 6, 5, 2], "relu", rng=0)
    data = lipsdp_data(net)
    sol = lipsdp_ipm.solve_numpy(data, np.eye(11), 0.0)
    assert sol.status == "unknown (iteration limit)" and sol.iterations == 3
    r = lipsdp(net)
    assert r["solver"] == "CVXOPT"
    assert r["attempts"][0] == "NUMPY margin 0: unknown (iteration limit)"


@pytest.mark.parametrize("seed", range(6))
def test_numpy_and_cvxopt_agree_on_random_networks(seed):
    """Random networks of every activation and depth (widths from 1): NUMPY certifies at
    margin 0 and its value is within 1e-8 of CVXOPT's (each certified on the unreduced LMI;
    on 300 such networks the worst was 3.5e-9), neuron <= layer."""
    rng = np.random.default_rng(seed)
    widths = ([int(rng.integers(1, 12))] + [int(rng.integers(1, 9)) for _ in range(1 + seed % 3)]
              + [int(rng.integers(1, 4))])
    net = random_net(widths, ["relu", "spline", "prelu", "leaky_relu"][seed % 4], seed)
    values = {}
    for variant in ("neuron", "layer"):
        ours = lipsdp(net, variant)
        assert ours["solver"] == "NUMPY"
        assert ours["attempts"][0].startswith("NUMPY margin 0: optimal")
        other = lipsdp(net, variant, solver="CVXOPT")
        assert ours["value"] <= other["value"] * (1 + 1e-8)
        assert other["value"] <= ours["value"] * (1 + max(other["accuracy"], 1e-8))
        assert lipsdp_brackets_meet(ours, other)
        values[variant] = ours
    neuron, layer = values["neuron"], values["layer"]
    assert lipsdp_ordered(neuron, layer)


# ------------------------------------------------------------------ proven rounding bound
@pytest.mark.parametrize("widths, seed", [([3, 6, 2], 0), ([2, 5, 4, 1], 1), ([4, 6, 5, 3], 2)])
def test_rounding_bound_covers_the_exact_value(widths, seed):
    """value + rounding_bound >= sqrt(rho*) of the exact LMI (mpmath), at the certified
    multipliers; the bound is tight enough to be useful; lipsdp reports the bound of its own
    certificate: the one of the normalised LMI, times 2^E rounded up (before, this compared
    with the bound of the network as given, 12-32% off, and passed only through approx's
    default abs=1e-12, a thousand times the bounds' 4e-14)."""
    net = random_net(widths, "relu", seed=seed)
    data = lipsdp_data(net)
    k_mat = lipsdp_solvers.multiplier_map(data, "neuron")
    found, _ = lipsdp_mod._solve_certified(data, data, k_mat, "NUMPY", lambda: [])
    value = float(np.sqrt(found.rho))
    bound = lipsdp_mod.rounding_bound(data, lipsdp_mod.data_rounding(net), found.lam,
                                      found.rho, found.r_max)
    exact = float(exact_rho(net, found.lam) ** 0.5)
    assert exact <= value + bound.bound                      # the claim of the bound
    assert bound.bound < 1e-8 * value                        # and it is not vacuous
    norm = lipsdp_mod.normalised_data(net, "neuron")
    with blas_threads(LIPSDP_BLAS_THREADS):                     # the arithmetic of lipsdp
        found, _ = lipsdp_mod._solve_certified(
            norm.data, reduce_input(norm.data).data,
            lipsdp_solvers.multiplier_map(norm.data, "neuron"), "NUMPY", lambda: [])
    own = lipsdp_mod.rounding_bound(norm.data, norm.errors, found.lam, found.rho, found.r_max)
    assert lipsdp(net)["rounding_bound"] == times_power_of_two_up(
        own.bound, norm.normalisation.exponent)


def test_rounding_bound_grows_as_r_nears_singular():
    """One hidden layer: R = C_psi^T C_psi - 2 s I at lambda = s 1, singular at s* =
    ||C_psi||^2 / 2.  Just above s* the value is large and its proven rounding bound far above
    1e-9 relative (the old assumed margin), still above the exact value; closer: inf."""
    net = random_net([3, 6, 2], "relu", seed=0)
    data, errors = lipsdp_data(net), lipsdp_mod.data_rounding(net)
    s_star = np.linalg.norm(data.out_mat[:, 3:], 2) ** 2 / 2
    found = []
    for above in (1.0, 1e-6, 1e-15):
        lam = np.full(6, s_star * (1 + above))
        rho, r_max = certified_rho(data, lam)
        found.append((lam, rho, lipsdp_mod.rounding_bound(data, errors, lam, rho, r_max)))
    (_, rho0, b0), (lam1, rho1, b1), (_, _, b2) = found
    rel0, rel1 = b0.bound / np.sqrt(rho0), b1.bound / np.sqrt(rho1)
    assert rel1 > 1e3 * rel0 and rel1 > 1e-9
    assert float(exact_rho(net, lam1) ** 0.5) <= np.sqrt(rho1) + b1.bound
    assert b2.bound == np.inf and "NOT PROVEN" in lipsdp_mod.rounding_text(b2, 1.0)


@pytest.mark.parametrize("name", ["lipsdp_random_weights", "lipsdp_mnist_weights"])
def test_rounding_bound_on_the_anchors(name):
    path = Path("/work/shared/anchors") / f"{name}.mat"
    if not path.exists():
        pytest.skip("anchor not available")
    r = lipsdp(network_from_mat(path))
    assert 0 < r["rounding_bound"] < 1e-7 * r["value"] and not r["rounding_useless"]
    assert "rounding bound" in r["certificate"]


def test_rounding_bound_lives_in_its_module_and_failures_are_solve_failed(monkeypatch):
    """reference.lipsdp_rounding holds the proven rounding bound; reference.lipsdp re-exports
    it; the float64 helpers (u, gamma_n, power-of-two arithmetic) are reference.floats' in
    every module that uses them.  A LipSDP without a certified bound raises SolveFailed (the
    ladder's reason)."""
    from reference import _numerics as floats
    from reference.exceptions import SolveFailed
    from reference.lipschitz import _lipsdp_dual as lipsdp_dual
    from reference.lipschitz import _normalise as lipsdp_normalise
    from reference.lipschitz import _rounding as lipsdp_rounding
    for name in ("rounding_bound", "rounding_fields", "rounding_text", "RoundingBound",
                 "USELESS_RTOL", "ROUNDING_CHECKS"):
        assert getattr(lipsdp_mod, name) is getattr(lipsdp_rounding, name)
    for module, names in ((lipsdp_rounding, ("UNIT_ROUNDOFF", "gamma")),
                          (lipsdp_dual, ("UNIT_ROUNDOFF", "gamma")),
                          (lipsdp_mod, ("UNIT_ROUNDOFF", "gamma", "product_or_overflow",
                                        "times_power_of_two_up")),
                          (lipschitz, ("gamma", "scaled_product", "product_or_overflow")),
                          (lipsdp_normalise, ("exponent_below", "scale_by_powers_of_two",
                                              "scale_outwards"))):
        for name in names:
            assert getattr(module, name) is getattr(floats, name), (module.__name__, name)
    net = build_mlp([2, 3, 1], "relu", rng=0)
    for name in ("NUMPY", "CVXOPT", "CLARABEL"):
        monkeypatch.setitem(lipsdp_mod.SOLVE, name, failing("infeasible_inaccurate"))
    with pytest.raises(SolveFailed, match="no certified bound"):
        lipsdp(net, "neuron")
    r = ladder.run_method("lipsdp_neuron", net, 2)
    assert r["value"] is None and "no certified bound" in r["reason"] and r["kind"] == "upper"


# ------------------------------------------------- the dual certificate behind `accuracy`
def exact_dual_terms(net, x_mp):
    """For X (mp matrix, N x N) and the exact LMI of a ReLU network (`exact_lmi`): the
    constraints g_i = <F*_i, X> = 2 (a*_i - e_i)^T X e_i, and <C*^T C*, X> / tr X_00."""
    rows, c, n0, side = exact_lmi(net)
    g = [2 * (sum(row[j] * x_mp[j, n0 + i] for j in range(side)) - x_mp[n0 + i, n0 + i])
         for i, row in enumerate(rows)]
    ctc = c.T * c
    obj = sum(ctc[a, b] * x_mp[a, b] for a in range(side) for b in range(side))
    return g, obj / sum(x_mp[a, a] for a in range(n0))


@pytest.mark.parametrize("variant", ["neuron", "layer"])
@pytest.mark.parametrize("repair", ["shrink", "mix"])
def test_dual_bound_holds_in_exact_arithmetic(repair, variant, monkeypatch):
    """The dual point `dual_bound` proves feasible, X = (1 - t) V V^T + t G G^T (V the
    solver's factor with failing psi rows shrunk, G the linearised network's), meets every
    constraint of the exact dual in 50 digits, and <C*^T C*, X> / tr X_00 >= its rho_lower,
    which is <= the certified primal value: weak duality.  The solver's X is first pushed
    out of the dual cone (the constraint of neuron 0's multiplier made negative, checked in
    50 digits: h = K^T g, K the multiplier map of the variant), so the repair is what is
    tested: by shrinking (the default), or, with the shrink step switched off, by mixing; a
    neuron whose pre-activation is constant cannot be repaired by mixing (not certified) but
    can by shrinking its row to 0 (LipSDP-neuron)."""
    mp = pytest.importorskip("mpmath")
    from reference.lipschitz import _lipsdp_dual as lipsdp_dual
    if repair == "mix":
        monkeypatch.setattr(lipsdp_dual, "_shrink", lambda data, errors, k_mat, v: v)
    net = random_net([3, 6, 5, 2], "relu", seed=4)
    data, errors = lipsdp_data(net), lipsdp_mod.data_rounding(net)
    k_mat, n0 = lipsdp_solvers.multiplier_map(data, variant), data.n0

    def h(g_list):                                        # K^T g in 50 digits
        return [sum(mp.mpf(float(k)) * gi for k, gi in zip(column, g_list))
                for column in k_mat.T]
    with blas_threads(LIPSDP_BLAS_THREADS):
        sol = lipsdp_mod.SOLVE["NUMPY"](data, k_mat, 0.0)
    x = sol.dual.copy()
    x[n0, n0] += 1e-6 * np.trace(x[:n0, :n0])            # g_0 lowered by 2e-6 tr X_00
    g_bad, _ = exact_dual_terms(net, mp.matrix(x.tolist()))
    assert h(g_bad)[0] < 0
    bound = lipsdp_dual.dual_bound(data, errors, k_mat, x)
    assert bound.certified and (0 < bound.mix < 1e-3 if repair == "mix" else bound.mix == 0)
    v, g = bound.factors
    x_mp = (mp.mpf(float(1 - bound.mix)) * mp.matrix(v.tolist()) * mp.matrix(v.T.tolist())
            + mp.mpf(bound.mix) * mp.matrix(g.tolist()) * mp.matrix(g.T.tolist()))
    g_exact, ratio = exact_dual_terms(net, x_mp)
    assert min(h(g_exact)) >= 0 and ratio >= bound.rho_lower
    value = lipsdp(net, variant)["value"]
    loss = 1e-3 if repair == "mix" else 1e-5                  # what the repair costs
    assert value ** 2 * (1 - loss) <= bound.rho_lower <= value ** 2
    dead = random_net([3, 6, 5, 2], "relu", seed=4)
    dead.layers[0].params["weight"][0] = 0.0                  # neuron 0: z = b, constant
    data = lipsdp_data(dead)
    sol = lipsdp_mod.SOLVE["NUMPY"](data, k_mat, 0.0)
    x = sol.dual.copy()
    x[n0, n0] += 1e-6 * np.trace(x[:n0, :n0])
    bound = lipsdp_dual.dual_bound(data, lipsdp_mod.data_rounding(dead), k_mat, x)
    if repair == "mix" and variant == "neuron":
        assert not bound.certified and "cannot repair" in bound.reason
        assert bound.rho_lower == 0.0
    elif repair == "shrink":
        assert bound.certified and (variant == "layer" or not bound.factors[0][n0].any())


def solver_returning(change):
    """A NUMPY solver whose solution is changed by `change` (SdpSolution -> SdpSolution)."""
    real = lipsdp_mod.SOLVE["NUMPY"]
    return lambda data, k_mat, margin: change(real(data, k_mat, margin))


def test_poor_multipliers_are_flagged_with_an_honest_accuracy(monkeypatch, tmp_path, capsys):
    """Multipliers 30 times too large still certify a bound, far above the optimum: the
    dual certificate's accuracy says how far (it bounds value - optimum, checked against the
    optimum of an honest solve), the result is flagged inaccurate and `lipschitz` prints
    the flag.  Before, the table printed "optimal, certified" without any accuracy."""
    net = random_net([2, 8, 1], "relu", seed=3)
    good = lipsdp(net, "neuron")
    monkeypatch.setitem(lipsdp_mod.SOLVE, "NUMPY",
                        solver_returning(lambda sol: sol._replace(lam=30 * sol.lam)))
    poor = lipsdp(net, "neuron")
    assert poor["value"] > 1.4 * good["value"] and poor["accuracy_certified"]
    assert poor["inaccurate"] and poor["accuracy"] > 1e-3
    assert poor["value"] * (1 - poor["accuracy"]) <= good["value"] + good["rounding_bound"]
    assert poor["optimum_lower"] <= good["value"] + good["rounding_bound"]
    path = save_model(net, tmp_path / "m.npz")
    assert main(["lipschitz", str(path), "--methods", "lipsdp_neuron"]) == 0
    out = capsys.readouterr().out
    assert f"accuracy <= {poor['accuracy']:.2g} (dual certificate) -- INACCURATE" in out


def test_accuracy_without_a_dual_matrix_is_an_estimate_and_says_so(monkeypatch, tmp_path,
                                                                    capsys):
    """A solver that gives no dual matrix (SCS through cvxpy may not): the accuracy is the
    solver's estimate, accuracy_certified False, optimum_lower None, and the table says NOT
    CERTIFIED; with the dual matrix (the default), it prints the proven accuracy."""
    net = random_net([2, 8, 1], "relu", seed=3)
    path = save_model(net, tmp_path / "m.npz")
    assert main(["lipschitz", str(path), "--methods", "lipsdp_neuron"]) == 0
    assert "(dual certificate)" in capsys.readouterr().out
    monkeypatch.setitem(lipsdp_mod.SOLVE, "NUMPY",
                        solver_returning(lambda sol: sol._replace(dual=None)))
    r = lipsdp(net, "neuron")
    assert not r["accuracy_certified"] and r["optimum_lower"] is None
    assert r["accuracy"] >= r["relative_gap"] and "NOT CERTIFIED" in r["certificate"]
    assert main(["lipschitz", str(path), "--methods", "lipsdp_neuron"]) == 0
    assert "(solver's estimate, NOT CERTIFIED)" in capsys.readouterr().out


def test_a_constant_network_has_every_field_and_the_full_certificate():
    """Bug: the value-0 path returned without the rounding fields and the normalisation's
    certificate sentence (a non-closed-form value 0 would have raised KeyError in the
    layer-wise rule).  Now every result has them."""
    net = build_mlp(WIDE, "relu", rng=0)
    net.layers[0].params["weight"][:] = 0.0
    for variant in ("neuron", "layer"):
        r = lipsdp(net, variant)
        assert r["value"] == 0.0 and r["rounding_bound"] == 0.0 and not r["rounding_useless"]
        assert r["sdp_rounding_bound"] == 0.0 and r["accuracy"] == 0.0
        assert r["accuracy_certified"] and r["optimum_lower"] == 0.0
        assert "2^" in r["certificate"] and "rounding bound 0 (0 relative" in r["certificate"]
        assert not any(key.startswith("_") for key in r)


def test_cvxpy_inaccurate_solve_is_a_status_not_a_warning(recwarn):
    """cvxpy's "Solution may be inaccurate" UserWarning was printed to stderr by the LipSDP
    routes through cvxpy; the status "optimal_inaccurate" (not certified, reported in the
    attempts) is what counts.  On the review's unbalanced network normalised per layer only,
    with one multiplier per neuron (what LipSDP-neuron solved before the equilibration)."""
    import warnings

    from reference.lipschitz._sdp_backends import solve_cvxpy
    rng = np.random.default_rng(3)
    w1, w2 = rng.standard_normal((8, 2)), rng.standard_normal((1, 8)) / 3
    d = np.ones(8)
    d[0], d[1] = 1e4, 1e-4
    net = Network([Dense(w1 * d[:, None]), ReLU(), Dense(w2 / d[None, :]), Identity()])
    data = lipsdp_mod.normalised_data(net, "layer").data
    warnings.simplefilter("always")
    sol = solve_cvxpy(data, np.eye(8), 0.0, solver="CLARABEL")
    assert sol.status == "optimal_inaccurate"
    assert not [w for w in recwarn if "inaccurate" in str(w.message)]


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_ipm_step_length_past_the_float64_range_is_inf_without_a_warning():
    """The interior-point step to the boundary of x >= 0: a ratio past the float64 range
    (a subnormal negative direction) is an unbounded step, not NumPy's overflow warning
    printed in the middle of a sweep's output."""
    from reference.lipschitz._ipm import _max_step_l
    assert _max_step_l(np.array([1e300, 2.0]), np.array([-1e-300, -4.0])) == 0.5
    assert _max_step_l(np.array([1e300]), np.array([-1e-300])) == np.inf
    assert _max_step_l(np.array([1.0]), np.array([1.0])) == np.inf
