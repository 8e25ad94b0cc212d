"""The registries of regularisers (reference.regularisers) and activation kinds
(reference.network.ACTIVATION_TYPES): names, values against independent NumPy evaluations,
gradients against finite differences, and model-file round trips driven by the registry."""
import numpy as np
import pytest

from reference.convex import _solve as convex
from reference.exceptions import ModelFileError
from reference.io._model_file import layer_entries, load_model, save_model
from reference.lipschitz._bounds import activation_constants, slope_bounds
from reference.nn import _network as network
from reference.nn._linear_spline import LinearSpline
from reference.nn._network import (
    ACTIVATION_TYPES,
    ACTIVATIONS,
    NO_PARAMS,
    Activation,
    Dense,
    KnotSplineActivation,
    Network,
    make_activation,
)
from reference.nn._regularisers import REGULARISERS, get
from reference.testing import central_difference
from reference.training import _train as train


def reg_choices_of_cli() -> list:
    """Every `choices` of a --reg option in the command-line parser (all subcommands)."""
    import argparse

    from reference.cli._main import build_parser

    found, todo = [], [build_parser()]
    while todo:
        parser = todo.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
            elif action.dest == "reg" and action.choices is not None:
                found.append(tuple(action.choices))
    return found


def test_registry_names_are_the_cli_and_loader_choices():
    names = tuple(REGULARISERS)
    assert names == ("tv2", "bv2")
    assert convex.REGULARISERS == names and tuple(train.REGULARISERS) == names
    choices = reg_choices_of_cli()
    assert choices and all(c == names for c in choices)
    for name, regulariser in REGULARISERS.items():
        assert regulariser.name == name and get(name) is regulariser


@pytest.mark.parametrize("bad", ["tv3", "TV2", None, ["tv2"]])
def test_get_unknown_names_the_argument(bad):
    with pytest.raises(ValueError, match=r"^reg: expected one of \['bv2', 'tv2'\]"):
        get(bad)
    with pytest.raises(ValueError, match=r"^--reg: "):
        get(bad, arg="--reg")


def random_spline(rng, channels=3, size=17):
    """A uniform-grid spline on [-2, 2] (0 and 1 inside: np.interp evaluates it there)."""
    return LinearSpline(rng.normal(size=(channels, size)), -2.0, 4.0 / (size - 1))


def numpy_value(name, grid, values):
    """R of the interpolant through (grid, values (C, P)), grid covering [0, 1]: TV2 from
    np.diff twice, BV2 adding |sigma(0)| + |sigma(1)| by np.interp."""
    slopes = np.diff(values, axis=1) / np.diff(grid)
    tv2 = np.abs(np.diff(slopes, axis=1)).sum(axis=1)
    if name == "tv2":
        return tv2
    ends = np.array([[np.interp(t, grid, v) for t in (0.0, 1.0)] for v in values])
    return tv2 + np.abs(ends).sum(axis=1)


@pytest.mark.parametrize("name", list(REGULARISERS))
def test_value_matches_numpy_on_both_spline_forms(name):
    rng = np.random.default_rng(3)
    spline = random_spline(rng)
    expected = numpy_value(name, spline.grid, spline.coefficients)
    np.testing.assert_allclose(get(name).value(spline), expected, rtol=1e-10, atol=1e-10)
    points = [np.sort(rng.uniform(-2, 2, 9)) for _ in range(3)]
    points = [np.concatenate([[-2.5], p, [2.5]]) for p in points]
    values = [rng.normal(size=len(p)) for p in points]
    knots = KnotSplineActivation(points, values).spline
    expected = np.concatenate([numpy_value(name, p, v[None]) for p, v in zip(points, values)])
    np.testing.assert_allclose(get(name).value(knots), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(REGULARISERS))
def test_grad_matches_finite_differences(name):
    """Random coefficients: every slope jump and sigma(0), sigma(1) are nonzero, so R is
    differentiable there (linear in a neighbourhood: differences exact up to rounding)."""
    regulariser = get(name)
    spline = random_spline(np.random.default_rng(4))
    coefficients = spline.coefficients
    numeric = central_difference(lambda: regulariser.value(spline).sum(), coefficients)
    grad = regulariser.grad(spline)
    assert grad.shape == coefficients.shape
    np.testing.assert_allclose(grad, numeric, atol=1e-6)


@pytest.mark.parametrize("name", list(REGULARISERS))
def test_knot_layer_regulariser_grads_match_finite_differences(name):
    rng = np.random.default_rng(5)
    points = [np.concatenate([[-2.0], np.linspace(-1.5, 1.5, 6) + rng.uniform(-0.1, 0.1, 6),
                              [2.0]]) for _ in range(2)]           # gaps >= 0.4
    layer = KnotSplineActivation(points, [rng.normal(size=len(p)) for p in points])
    grads = layer.regulariser_grads(name)
    for key in ("points", "values"):
        numeric = central_difference(lambda: get(name).value(layer.spline).sum(),
                                    layer.params[key])
        np.testing.assert_allclose(grads[key], numeric, rtol=1e-6, atol=1e-6, err_msg=key)


def test_extra_points_and_affine_invariance():
    """TV2 ignores an affine shift (no extra points); BV2 sees it through sigma(0), sigma(1)."""
    spline = random_spline(np.random.default_rng(6))
    shifted = LinearSpline(spline.coefficients + 0.3 + 0.7 * spline.grid, spline.x_min,
                           spline.step)
    for name, regulariser in REGULARISERS.items():
        same = np.allclose(regulariser.value(shifted), regulariser.value(spline), rtol=1e-12)
        assert same == regulariser.ignores_affine == (not regulariser.extra_points), name
    assert get("bv2").extra_points == (0.0, 1.0)
    np.testing.assert_array_equal(get("bv2").extra_inputs(3), [[0.0] * 3, [1.0] * 3])


def test_cvx_term():
    cp = pytest.importorskip("cvxpy")
    tv2, ends = cp.Constant(2.0), cp.Constant(np.array([1.0, -3.0]))
    assert get("tv2").cvx_term(tv2, ends).value == pytest.approx(2.0)
    assert get("bv2").cvx_term(tv2, ends).value == pytest.approx(6.0)


# ---- activations -----------------------------------------------------------------------

def test_activations_are_the_registry_user_kinds():
    assert ACTIVATIONS == ("spline", "relu", "leaky_relu", "prelu", "identity")
    assert set(ACTIVATION_TYPES) == set(ACTIVATIONS) | {"knot_spline"}
    for kind in ACTIVATIONS:
        layer = make_activation(kind, 3)
        assert type(layer) is ACTIVATION_TYPES[kind] and layer.kind == kind
    with pytest.raises(ValueError, match="^activation: "):
        make_activation("knot_spline", 3)


def every_kind_network(width=3):
    rng = np.random.default_rng(7)
    layers = []
    for kind in ACTIVATIONS:
        layers += [Dense(rng.normal(size=(width, width)), rng.normal(size=width)),
                   make_activation(kind, width, size=7, range_=2.0, slope=0.2, prelu_init=-0.3)]
    points = [np.sort(rng.uniform(-2, 2, 5)) for _ in range(width)]
    layers += [Dense(rng.normal(size=(width, width))),
               KnotSplineActivation(points, [rng.normal(size=5) for _ in range(width)])]
    return Network(layers)


def test_every_registered_kind_roundtrips(tmp_path):
    net = every_kind_network()
    kinds = {layer.kind for layer in net.layers}
    assert kinds == set(ACTIVATION_TYPES) | {"dense"}
    back = load_model(save_model(net, tmp_path / "all.npz"))
    assert layer_entries(back)[0] == layer_entries(net)[0]
    for (na, a), (nb, b) in zip(net.named_params(), back.named_params()):
        assert na == nb
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(8).normal(size=(30, 3))
    np.testing.assert_array_equal(net.forward(x), back.forward(x))


@pytest.mark.parametrize("kind", list(ACTIVATION_TYPES))
def test_constants_agree_with_kinks_and_values(kind):
    """Each class's constants against its own kinks and forward: TV2 = sum |slope jumps|,
    BV2 = TV2 + |sigma(0)| + |sigma(1)|, Lip = max |slope| (pieces right of the kinks and
    the first one), slope range [min, max] of the same slopes."""
    width = 3
    layer = next(layer for layer in every_kind_network(width).layers if layer.kind == kind)
    constants = activation_constants(layer, width)
    lo, hi = slope_bounds(layer, width)
    at01 = layer.forward(np.array([[0.0] * width, [1.0] * width]))[0]
    far_left = layer.derivative(np.full((1, width), -1e6))[0]
    for n, (_, left, right) in enumerate(layer.kinks(width)):
        slopes = np.concatenate([[far_left[n]], right])
        assert len(left) == 0 or left[0] == pytest.approx(far_left[n])
        tv2 = np.abs(right - left).sum()
        assert constants["tv2"][n] == pytest.approx(tv2, abs=1e-12)
        assert constants["bv2"][n] == pytest.approx(tv2 + np.abs(at01[:, n]).sum(), abs=1e-12)
        assert constants["lip"][n] == pytest.approx(np.abs(slopes).max())
        assert (lo[n], hi[n]) == pytest.approx((slopes.min(), slopes.max()))


class Scaled(Activation):
    """sigma(z) = factor * z: a kind that only the registry knows (io.py does not)."""
    kind = "scaled_test"
    params = NO_PARAMS

    def __init__(self, factor):
        self.factor = float(factor)

    def forward(self, z):
        return self.factor * z, z

    def derivative(self, z):
        return np.full_like(z, self.factor)

    def kinks(self, width):
        return [(np.zeros(0),) * 3] * width

    def to_entry(self, put):
        return {"type": self.kind, "factor": self.factor}

    @classmethod
    def from_entry(cls, read):
        return cls(read.number("factor"))


def test_a_kind_registered_only_in_the_registry_roundtrips(tmp_path, monkeypatch):
    monkeypatch.setitem(network.ACTIVATION_TYPES, Scaled.kind, Scaled)
    net = Network([Dense(np.array([[1.0, -2.0], [0.5, 3.0]])), Scaled(2.5),
                   Dense(np.array([[1.0, 1.0]]))])
    path = save_model(net, tmp_path / "scaled.npz")
    back = load_model(path)
    assert isinstance(back.layers[1], Scaled) and back.layers[1].factor == 2.5
    x = np.random.default_rng(9).normal(size=(10, 2))
    np.testing.assert_array_equal(back.forward(x), net.forward(x))
    monkeypatch.delitem(network.ACTIVATION_TYPES, Scaled.kind)
    with pytest.raises(ModelFileError, match=r"layer 1 \(scaled_test\): unknown layer type "
                                             r"'scaled_test' \(expected dense, spline, "
                                             r"knot_spline, relu, leaky_relu, prelu or "
                                             r"identity\)"):
        load_model(path)


@pytest.mark.parametrize("name", list(REGULARISERS))
@pytest.mark.parametrize("prox", [False, True])
def test_training_regulariser_value_and_grads(name, prox):
    """train.regulariser_value is sum_n R(sigma_n) over the spline layers; the training
    gradient of the coefficients is (lambda / M) grad R, without prox, and with prox the part
    prox_tv2 does not handle: nothing for TV2, (lambda / M) grad(|sigma(0)| + |sigma(1)|)
    for BV2 (finite differences of NumPy evaluations of sigma at 0 and 1)."""
    rng = np.random.default_rng(11)
    spline = random_spline(rng, channels=2)
    net = Network([Dense(rng.normal(size=(2, 1))), make_activation("identity", 2),
                   network.SplineActivation(spline), Dense(rng.normal(size=(1, 2)))])
    assert train.regulariser_value(net, name) == pytest.approx(
        numpy_value(name, spline.grid, spline.coefficients).sum(), rel=1e-12)
    config = train.TrainConfig(reg=name, lam=0.3, mu=0.0, prox=prox)
    grads = train._regulariser_grads(net, config, 5)
    key = "layer2.coefficients"
    if prox and name == "tv2":
        assert key not in grads
        return

    def ends():
        return np.abs(np.array([np.interp([0.0, 1.0], spline.grid, c)
                                for c in spline.coefficients])).sum()
    target = ends if prox else (lambda: numpy_value(name, spline.grid,
                                                  spline.coefficients).sum())
    numeric = central_difference(target, spline.coefficients)
    np.testing.assert_allclose(grads[key], 0.3 / 5 * numeric, atol=1e-6)


@pytest.mark.parametrize("name, expected", [("tv2", 0.0), ("bv2", 1.0)])
def test_interpolation_lp_takes_its_objective_from_the_registry(name, expected):
    """interpolation_lp's objective is the entry's cvx_term: through (2, 2) and (3, 3) the line
    sigma(z) = z is optimal, with TV2 0 and BV2 = 0 + |sigma(0)| + |sigma(1)| = 1 (any
    sigma(1) = t costs |t| + |t - 1| >= 1 at the extra points alone)."""
    from reference.convex._representer import interpolation_lp
    lp = interpolation_lp([2.0, 3.0], [2.0, 3.0], name)
    assert lp["objective"] == pytest.approx(expected, abs=1e-7)
    assert lp["objective_check"] == pytest.approx(expected, abs=1e-7)
    assert len(lp["grid"]) == 2 + len(get(name).extra_points)
