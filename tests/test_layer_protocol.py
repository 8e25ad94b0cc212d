"""Layer dispatch through the registry (issue 16): a layer answers questions about itself.

Outside reference/nn/ no module asks a layer for its class (no isinstance ladders on layer
classes, no comparisons of `.kind` with a layer kind's name); every question goes through
the protocol of reference.nn._activations (is_activation, is_identity, is_spline,
uniform_grid, knot_spline, piece_form, forward_error, rescaled, grid_pieces, region_breaks,
grid_word, describe_entry, plus the older kinks, constants, slope_range, to_entry /
from_entry).  So a new activation is one class plus its `register` entry:
`test_new_activation_*` registers two at test time and runs them through every room
without touching another module.
"""
from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

import reference
from reference.nn import _activations as activations
from reference.nn._network import Dense, Network, layer_types

PACKAGE = pathlib.Path(reference.__file__).parent
LAYER_CLASSES = {"Dense", "Activation", "Identity", "ReLU", "PReLU", "LeakyReLU", "Ramp",
                 "SplineActivation", "KnotSplineActivation"}
LAYER_KINDS = set(layer_types())      # 'dense', 'spline', 'relu', ...


def _class_names(node: ast.AST):
    """The names in the class argument of isinstance / issubclass (a name, an attribute
    such as nn.ReLU, or a tuple of them)."""
    if isinstance(node, ast.Tuple):
        for element in node.elts:
            yield from _class_names(element)
    elif isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Attribute):
        yield node.attr


def _asks_class(node: ast.AST) -> bool:
    """isinstance / issubclass against a layer class, or `<x>.kind == / != / in` a layer
    kind's name (the same ladder spelt with the registry's key; `self.kind` outside nn/ is
    another object's own kind, e.g. the DeepSplines import's LayerItem)."""
    if isinstance(node, ast.Call):
        return (isinstance(node.func, ast.Name) and len(node.args) == 2
                and node.func.id in ("isinstance", "issubclass")
                and bool(LAYER_CLASSES & set(_class_names(node.args[1]))))
    if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute):
        names = {c.value for right in node.comparators for c in ast.walk(right)
                 if isinstance(c, ast.Constant) and isinstance(c.value, str)}
        owner = node.left.value
        return (node.left.attr == "kind" and bool(LAYER_KINDS & names)
                and not (isinstance(owner, ast.Name) and owner.id == "self"))
    return False


def layer_class_checks(root: pathlib.Path) -> list:
    """'path:line' of every question to a layer's class (`_asks_class`) in the .py files
    under root, outside root/nn/ and root/testing/ (the test helpers build and rescale
    networks of named layer types: constructors for the tests, not dispatch in a room)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] in ("nn", "testing"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if _asks_class(node):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


def test_scanner_finds_a_ladder(tmp_path):
    """The scan is not vacuous: planted checks are found (not a comparison of another
    object's kind), the same checks under nn/ are not."""
    (tmp_path / "nn").mkdir()
    (tmp_path / "lipschitz").mkdir()
    text = ("def f(layer, bound):\n    return isinstance(layer, (nn.Dense, ReLU))\n"
            "def g(layer, bound):\n    return layer.kind != 'dense' or bound.kind == 'upper'\n")
    (tmp_path / "nn" / "a.py").write_text(text)
    (tmp_path / "lipschitz" / "b.py").write_text("x = 1\n" + text)
    assert layer_class_checks(tmp_path) == [f"{tmp_path.name}/lipschitz/b.py:{line}"
                                            for line in (3, 5)]


def test_no_isinstance_on_layer_classes_outside_nn():
    """Every question about a layer goes through its protocol, not its class or kind."""
    assert layer_class_checks(PACKAGE) == []


# --- a new activation, registered at test time -------------------------------------------

class ScaledReLU(activations.Activation):
    """sigma_n(z) = c_n max(z, 0), the scale c (N,) learned per neuron (params 'scale')."""
    kind = "scaled_relu_test"
    user_choice = False

    def __init__(self, scale):
        self.params = {"scale": np.array(scale, dtype=np.float64)}

    @property
    def n_in(self):
        return len(self.params["scale"])

    n_out = n_in

    def forward(self, z):
        return self.params["scale"] * np.maximum(z, 0.0), z

    def derivative(self, z):
        return np.where(z >= 0, self.params["scale"], 0.0)

    def backward(self, z, grad_y, side=None):
        return (grad_y * self.derivative_at(z, side),
                {"scale": (grad_y * np.maximum(z, 0.0)).sum(axis=0)})

    def kinks(self, width):
        return [activations.kinks_from_slopes(np.zeros(1), np.array([0.0, c]))
                for c in self.params["scale"]]

    def constants(self, width):
        c = np.abs(self.params["scale"])
        return {"lip": c, "tv2": c, "bv2": 2 * c}

    def slope_range(self, width):
        c = self.params["scale"]
        return np.minimum(c, 0.0), np.maximum(c, 0.0)

    def piece_form(self, width):
        return ("knot_points", [np.array([-1.0, 0.0, 1.0])] * width,
                [np.array([0.0, 0.0, c]) for c in self.params["scale"]])

    def forward_error(self, z, y):
        return np.finfo(float).eps / 2 * np.abs(y)

    def rescaled(self, factor):
        return self

    def to_entry(self, put):
        return {"type": self.kind, "scale": put("scale", self.params["scale"])}

    @classmethod
    def from_entry(cls, read):
        return cls(read.array("scale", 1))


class HardTanh(activations.Activation):
    """sigma(z) = min(max(z, -1), 1): two kinks, no parameters, not positively homogeneous
    (so `rescaled` keeps the default None)."""
    kind = "hard_tanh_test"
    user_choice = False
    params = activations.NO_PARAMS

    def forward(self, z):
        return np.clip(z, -1.0, 1.0), z

    def derivative(self, z):
        return ((z >= -1) & (z < 1)).astype(np.float64)

    def kinks(self, width):
        return [activations.kinks_from_slopes(np.array([-1.0, 1.0]),
                                              np.array([0.0, 1.0, 0.0]))] * width

    def constants(self, width):
        return {"lip": np.ones(width), "tv2": np.full(width, 2.0), "bv2": np.full(width, 3.0)}

    def slope_range(self, width):
        return np.zeros(width), np.ones(width)

    def piece_form(self, width):
        return ("knot_points", [np.array([-2.0, -1.0, 1.0, 2.0])] * width,
                [np.array([-1.0, -1.0, 1.0, 1.0])] * width)

    def forward_error(self, z, y):
        return np.zeros_like(y)


@pytest.fixture(params=[ScaledReLU, HardTanh])
def new_kind(request):
    """The class, registered for the test and removed after it."""
    cls = request.param
    activations.register(cls)
    yield cls
    del activations.ACTIVATION_TYPES[cls.kind]


def _network(cls, n_in=1, seed=3):
    """Dense(n_in -> 3), the new activation, Dense(3 -> 1)."""
    rng = np.random.default_rng(seed)
    hidden = cls(rng.uniform(0.5, 2.0, 3) * [1, -1, 1]) if cls is ScaledReLU else cls()
    return Network([Dense(rng.normal(size=(3, n_in)), rng.normal(size=3)), hidden,
                    Dense(rng.normal(size=(1, 3)), rng.normal(size=1))])


def _inputs(n_in=1, seed=4):
    return np.random.default_rng(seed).uniform(-2.0, 2.0, (40, n_in))


def test_new_activation_forward_backward(new_kind):
    net, x = _network(new_kind, n_in=2), _inputs(2)
    y, caches = net.forward(x, keep_cache=True)
    _, grads = net.backward(caches, np.ones_like(y))
    jac = net.input_jacobian(x)
    h = 1e-6
    for j in range(2):            # central differences (no sample within h of a kink)
        e = np.zeros(2)
        e[j] = h
        fd = (net.forward(x + e) - net.forward(x - e)) / (2 * h)
        np.testing.assert_allclose(jac[:, :, j], fd, rtol=1e-6, atol=1e-8)
    for name, value in net.named_params():
        step = np.zeros_like(value)
        flat = step.reshape(-1)
        for k in range(flat.size):
            flat[:] = 0.0
            flat[k] = h
            value += step
            up = net.forward(x).sum()
            value -= 2 * step
            down = net.forward(x).sum()
            value += step
            np.testing.assert_allclose(grads[name].reshape(-1)[k], (up - down) / (2 * h),
                                       rtol=1e-5, atol=1e-7, err_msg=name)


def test_new_activation_model_file_round_trip(new_kind, tmp_path):
    from reference.io import load_model, save_model

    net, x = _network(new_kind), _inputs()
    assert new_kind.kind in layer_types()
    save_model(net, tmp_path / "model.npz")
    back = load_model(tmp_path / "model.npz")
    assert [layer.kind for layer in back.layers] == [layer.kind for layer in net.layers]
    assert dict(back.named_params()).keys() == dict(net.named_params()).keys()
    np.testing.assert_array_equal(back.forward(x), net.forward(x))


def test_new_activation_layerwise_bound(new_kind):
    from reference import lipschitz

    net = _network(new_kind, n_in=2)
    w1, w2 = net.layers[0].params["weight"], net.layers[2].params["weight"]
    lip = net.layers[1].constants(3)["lip"]
    expected = np.linalg.norm(lip[:, None] * w1, 2) * np.linalg.norm(w2, 2)  # ||D W1|| ||W2||
    assert lipschitz.layerwise(net, 2) == pytest.approx(expected, rel=1e-12)
    x = _inputs(2)
    assert np.linalg.norm(net.input_jacobian(x), 2, axis=(1, 2)).max() <= expected


def test_new_activation_oracle_and_localisation(new_kind):
    from reference import oracle

    net, x = _network(new_kind), _inputs()
    answers = oracle.reference_answers(net, x, layers=True)
    assert oracle.check(net, x, answers).passed
    z = net.forward(x, keep_cache=True)[1][1]           # the new layer's pre-activations
    m = int(np.argmin(np.abs(np.abs(z[:, 0]) - 0.5)))   # a sample off every kink
    wrong = dict(answers, **{"layer1/output": answers["layer1/output"].copy()})
    wrong["layer1/output"][m, 0] += 1.0
    first = oracle.check(net, x, wrong).localisation["first_layer"]
    assert (first["layer"], first["layer_type"], first["sample"], first["neuron"]) == (
        1, new_kind.kind, m, 0)
    tau = net.layers[1].kinks(3)[0][0]
    side = np.searchsorted(tau, z[m, 0])
    expected = (f"z < {tau[0]:g}" if side == 0 else f"z > {tau[-1]:g}" if side == len(tau)
                else f"{tau[side - 1]:g} < z < {tau[side]:g}")
    assert first["where"]["region"] == expected
    if new_kind is ScaledReLU:
        key = "param_gradients/layer1.scale"
        wrong = dict(answers, **{key: answers[key] + [0.0, 0.0, 1.0]})
        item = oracle.check(net, x, wrong).localisation["gradients"]["param_gradients"]
        assert item["items"][0]["meaning"] == f"layer 1 ({new_kind.kind}), neuron 2"


def test_new_activation_verdict(new_kind):
    """The exact 1-D method tabulates the new layer's pieces (piece_form), bounds its
    rounding (forward_error) and rescales it (rescaled or None); its values match the
    largest slope of f sampled finely, and the verdict decides claims on either side."""
    from reference import lipschitz

    net = _network(new_kind)                     # one input: the exact 1-D method runs
    exact = lipschitz.ladder(net, 2, 1.0, methods=["exact"])["exact"]
    assert exact["certified_exact"]
    for value, end in ((exact["value"], 10.0), (exact["box_value"], 1.0)):
        x = np.linspace(-end, end, 200001)[:, None]           # every kink inside [-10, 10]
        slopes = np.abs(np.diff(net.forward(x)[:, 0]) / np.diff(x[:, 0]))
        assert slopes.max() == pytest.approx(value, rel=1e-8)
    # the verdict certifies the exact method's upper end as max(box value + margin, the
    # value over R) (reference.lipschitz._verdict._collect): a claim above the value over R
    # is sound, one below the box value unsound (a witness pair)
    assert lipschitz.check_claim(net, 1.01 * exact["value"]).verdict == "sound"
    assert lipschitz.check_claim(net, 0.99 * exact["box_value"]).verdict == "unsound"
