"""import-deepsplines: DeepSplines checkpoints as model files (reference.import_deepsplines).

Default tests need no torch: the error without it, a .pth given to the other commands, the
layer-order parsing and placement rules on NumPy state dicts, the grid arithmetic.  The tests
under the `torch` marker build real DeepSplines networks (its twoDnet, trained one epoch by
its own training loop, and DSModule networks of our own from its activation modules) in
float64, save them both ways, import them, and compare outputs and input Jacobians with the
torch forward to 1e-12."""
import json
import re
import sys
import types
import warnings
import zipfile

import numpy as np
import pytest

from reference.cli import main
from reference.exceptions import ModelFileError
from reference.io import _deepsplines as ds
from reference.io._model_file import load_model, save_model
from reference.nn._network import build_mlp
from reference.testing import deepsplines_state_dict

STEP_21_1 = 0.10000000149011612        # DeepSplines' step for size 21, range 1 (float32)


# ------------------------------------------------------------------ without torch
def torch_like(path):
    """A zip laid out like torch.save's (archive/data.pkl), made without torch."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr("archive/version", b"3\n")
    return path


def torch_legacy_like(path):
    """The first bytes of torch.save's legacy (non-zip) format: pickled magic number."""
    path.write_bytes(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.")
    return path


def test_without_torch_the_command_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)          # `import torch` now fails
    ckpt = torch_like(tmp_path / "ckpt.pth")
    assert main(["import-deepsplines", str(ckpt), "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: import-deepsplines needs PyTorch")
    assert "pip install torch==2.13.0, then pip install --no-deps deepsplines" in err
    assert "[torch] extra" in err and "Traceback" not in err
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("make", [torch_like, torch_legacy_like], ids=["zip", "legacy"])
@pytest.mark.parametrize("command", ["evaluate", "info", "lipschitz"])
def test_a_pth_given_for_a_model_says_what_it_is_and_what_reads_it(
        tmp_path, capsys, make, command):
    pth = make(tmp_path / "ckpt.pth")
    np.save(tmp_path / "x.npy", np.zeros((2, 2)))
    argv = {"evaluate": ["evaluate", str(pth), "--inputs", str(tmp_path / "x.npy"),
                         "--output", str(tmp_path / "o.npz")],
            "info": ["info", str(pth)], "lipschitz": ["lipschitz", str(pth)]}[command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: model: {pth} is not a model file: it is a PyTorch checkpoint")
    assert f"python -m reference import-deepsplines {pth} --out MODEL.npz" in err
    with pytest.raises(ModelFileError, match="PyTorch checkpoint .*import-deepsplines"):
        load_model(pth)


def test_a_model_file_given_as_a_checkpoint_is_named(tmp_path, capsys):
    model = save_model(build_mlp([2, 3, 1], "relu", rng=0), tmp_path / "m.npz")
    assert main(["import-deepsplines", str(model), "--out", str(tmp_path / "o.npz")]) == 2
    assert (f"CKPT: {model} is not a PyTorch checkpoint: it is an .npz archive"
            in capsys.readouterr().err)
    assert main(["import-deepsplines", str(tmp_path / "absent.pth"), "--out",
                 str(tmp_path / "o.npz")]) == 2
    assert "CKPT: no file at" in capsys.readouterr().err


@pytest.mark.parametrize("spec, match", [
    ("", "expected comma-separated module names"),
    ("fc1,,fc2", "expected comma-separated module names"),
    ("fc1,leaky_relu:abc,fc2", "item 1 'leaky_relu:abc': the slope .* finite number"),
    ("fc1,leaky_relu:nan,fc2", "the slope .* finite number"),
    ("fc1,relu:2,fc2", "only leaky_relu takes a value"),
    ("fc1,sigmoid,fc2", "item 1 'sigmoid' should be the last item"),
    ("fc1,act,fc1", r"\['fc1'\] appear more than once"),
])
def test_bad_layer_order_syntax_is_a_usage_error(tmp_path, capsys, spec, match):
    ckpt = torch_like(tmp_path / "ckpt.pth")
    argv = ["import-deepsplines", str(ckpt), "--out", str(tmp_path / "m.npz"), "--layers", spec]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "argument --layers:" in err
    assert re.search(match, err), err
    with pytest.raises(ValueError, match=match):
        ds.parse_layer_order(spec)


def test_layer_order_items():
    items = ds.parse_layer_order("fc1, activations.0,leaky_relu:0.2,relu,identity,fc_last,sigmoid")
    assert [str(i) for i in items] == ["fc1", "activations.0", "leaky_relu:0.2", "relu",
                                       "identity", "fc_last", "sigmoid"]
    assert items[2].slope == 0.2 and ds.parse_layer_order("leaky_relu")[0].slope == 0.01


# ------------------------------------------------------------------ NumPy state dicts
def test_numpy_state_dict_maps_layout_and_grid_exactly():
    rng = np.random.default_rng(0)
    state = deepsplines_state_dict(rng)
    result = ds.import_state(state, spline_range=1.0)
    assert result.order_from.startswith("the key order") and result.link is None
    assert [layer.kind for layer in result.network.layers] == ["dense", "spline", "dense",
                                                               "spline", "dense"]
    spline = result.network.layers[1].spline
    assert spline.step == STEP_21_1 and spline.x_min == -(STEP_21_1 * 10)
    np.testing.assert_array_equal(spline.coefficients, state["1._coefficients_vect"].reshape(4, 21))
    explicit = result.network.layers[3].spline          # c_k + b1 t_k + b0
    t = spline.x_min + STEP_21_1 * np.arange(21)
    expected = (state["3._coefficients_vect"].reshape(3, 21) + state["3.spline_weight"][:, None]
                * t + state["3.spline_bias"][:, None])
    np.testing.assert_allclose(explicit.coefficients, expected, rtol=0, atol=1e-15)
    assert result.check.passed and result.check.max_error < 1e-14
    assert result.layers[1].grid["extrapolation_gap"] > 0


def test_the_check_catches_a_wrong_layout():
    """The certificate can fail: coefficients read column-major instead of row-major."""
    state = deepsplines_state_dict(np.random.default_rng(1))
    result = ds.import_state(state, spline_range=1.0)
    layer = result.network.layers[1]
    layer.params["coefficients"] = state["1._coefficients_vect"].reshape(21, 4).T.copy()
    _, imported, _, modules = ds.build_network(state, ds.parse_layer_order("0,1,2,3,4"),
                                               {"dtype": "float32", "range_": 1.0})
    check = ds.check_activations(result.network, imported, modules)
    assert not check.passed and check.max_error > 1e-3


@pytest.mark.parametrize("size, range_, dtype, step", [
    (21, 1, "float32", 0.10000000149011612), (21, 1, "float64", 0.09999999999999999),
    (7, 2, "float64", 0.666666), (51, 4, "float32", float(np.float32(0.16)))])
def test_deepsplines_step(size, range_, dtype, step):
    assert ds.deepsplines_step(size, range_, dtype=dtype) == step
    assert ds.deepsplines_step(size, grid=step, dtype=dtype) == float(
        np.float32(step) if dtype == "float32" else step)


@pytest.mark.parametrize("layers, kwargs, match", [
    ("0,1,2,3,9", {}, r"--layers: \['9'\] are not modules of the state dict"),
    ("0,1,2,3", {}, r"--layers: the state dict's module\(s\) \['4'\] are not in the order"),
    ("0,3,2,1,4", {}, "module '3': _coefficients_vect has 63 entries, which is not a multiple "
                      "of the layer width 4"),
    ("0,1,4,3,2", {}, r"--layers: the layers do not chain"),
    ("0,1,2,3,4", {"spline_range": None}, "--spline-range: module '1' is a DeepSplines "
                                          "activation"),
    ("0,1,2,3,4", {"spline_range": 1.0, "spline_grid": 0.1}, "give one of them, not both"),
    ("0,1,2,3,4", {"grid_dtype": "float16"}, "--grid-dtype: expected one of"),
])
def test_bad_layer_orders_on_a_state_dict(layers, kwargs, match):
    state = deepsplines_state_dict(np.random.default_rng(2))
    kwargs = {"spline_range": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        ds.import_state(state, layers=layers, **kwargs)


def test_key_order_is_used_only_when_it_cannot_mislead():
    rng = np.random.default_rng(3)
    twodnet_like = {"fc1.weight": rng.normal(size=(4, 2)), "fc2.weight": rng.normal(size=(4, 4)),
                    "fc_last.weight": rng.normal(size=(1, 4)),
                    "activations.0._coefficients_vect": rng.normal(size=84),
                    "activations.1._coefficients_vect": rng.normal(size=84)}
    with pytest.raises(ValueError, match="--layers: the key order cannot tell .*do not "
                                         "alternate.*give the forward's order as --layers"):
        ds.import_state(twodnet_like, spline_range=1.0)
    result = ds.import_state(twodnet_like, spline_range=1.0, layers="fc1,activations.0,fc2,"
                             "activations.1,fc_last,sigmoid")
    assert result.link == "logistic" and len(result.network.layers) == 5
    gap = {"0.weight": rng.normal(size=(3, 2)), "2.weight": rng.normal(size=(1, 3))}
    with pytest.raises(ValueError, match="skipped Sequential index hides a stateless module"):
        ds.import_state(gap)
    assert [l.kind for l in ds.import_state(gap, layers="0,relu,2").network.layers] == [
        "dense", "relu", "dense"]
    alternating_gap = {"0.weight": rng.normal(size=(3, 2)),           # 1: e.g. nn.Dropout
                       "2._coefficients_vect": rng.normal(size=3 * 21),
                       "3.weight": rng.normal(size=(1, 3))}
    with pytest.raises(ValueError, match="skipped Sequential index"):
        ds.import_state(alternating_gap, spline_range=1.0)
    conv = {"0.weight": rng.normal(size=(3, 2, 3, 3))}
    with pytest.raises(ValueError, match="module '0': parameters .* convolutional"):
        ds.import_state(conv)



def test_module_names_ending_in_a_digit_are_not_a_sequential():
    """'fc1' alone (a one-layer network) is not a Sequential whose index 0 is missing;
    '0', '2' and 'net.0', 'net.2' are."""
    rng = np.random.default_rng(5)
    one = ds.import_state({"fc1.weight": rng.normal(size=(1, 2)), "fc1.bias": np.zeros(1)})
    assert [l.kind for l in one.network.layers] == ["dense"]
    assert not ds._skips_an_index(["fc1", "act1", "fc2"])
    assert ds._skips_an_index(["0", "2"]) and ds._skips_an_index(["net.0", "net.2"])
    assert not ds._skips_an_index(["net.0", "net.1", "net.2"])


def test_a_grid_below_the_supported_range_is_refused_without_warnings():
    state = deepsplines_state_dict(np.random.default_rng(6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # a RuntimeWarning would fail here
        with pytest.raises(ValueError, match=r"module '1': step: expected a real number in"):
            ds.import_state(state, spline_grid=1e-320)


def test_a_convolutional_training_checkpoint_is_named_before_its_params_are_read():
    state = {"conv1.weight": np.zeros((3, 2, 3, 3))}
    with pytest.raises(ValueError, match="'resnet32_cifar', a convolutional network"):
        ds.import_state(state, {"net": "resnet32_cifar", "model": {}})


def test_training_checkpoint_params_are_checked():
    rng = np.random.default_rng(4)
    state = {"fc1.weight": rng.normal(size=(4, 2)), "fc_last.weight": rng.normal(size=(1, 4)),
             "fc_last.bias": rng.normal(size=1),
             "activations.0._coefficients_vect": rng.normal(size=84)}
    model = {"activation_type": "deepBspline", "spline_size": 21, "spline_range": 1,
             "num_hidden_layers": 1}
    result = ds.import_state(state, {"net": "twoDnet", "model": model})
    assert result.order == ["fc1", "activations.0", "fc_last", "sigmoid"]
    assert result.link == "logistic" and "squeeze(1)" in result.notes[0]
    cases = [({"net": "resnet32_cifar", "model": model}, {}, "convolutional network"),
             ({"net": "mynet", "model": model}, {}, "'mynet', whose forward is not known"),
             ({"net": "twoDnet", "model": dict(model, spline_size=23)}, {},
              "spline_size'] is 23, but its parameters give 21"),
             ({"net": "twoDnet", "model": dict(model, activation_type="deepReLUspline")}, {},
              "holds a deepBspline activation, but .*'deepReLUspline'"),
             ({"net": "twoDnet", "model": {"spline_size": 21}}, {}, "params\\['model'\\] lacks"),
             ({"net": "twoDnet", "model": model}, {"spline_range": 2.0},
              "this training checkpoint states its grid")]
    for params, kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            ds.import_state(state, params, **kwargs)


# ------------------------------------------------------------------ against the package
def need_torch():
    torch = pytest.importorskip("torch")
    pytest.importorskip("deepsplines.ds_modules")
    return torch


def import_manager(monkeypatch):
    """deepsplines.manager (its training loop).  It imports torchvision at module level, for
    its CIFAR/MNIST loaders only; where torchvision is missing or broken, empty stand-ins
    let it import (the twoDnet path never touches them)."""
    try:
        from deepsplines.manager import Manager
    except Exception:                       # ModuleNotFoundError, or a broken torchvision
        for name in ("deepsplines.manager", "deepsplines.datasets"):
            monkeypatch.delitem(sys.modules, name, raising=False)
        stub = types.ModuleType("torchvision")
        stub.transforms = types.ModuleType("torchvision.transforms")
        monkeypatch.setitem(sys.modules, "torchvision", stub)
        monkeypatch.setitem(sys.modules, "torchvision.transforms", stub.transforms)
        from deepsplines.manager import Manager
    return Manager


def randomise(torch, net, seed):
    """Random parameters in every DeepSplines activation and PReLU (float64 in place)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("_coefficients_vect", "spline_weight", "spline_bias")):
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
            elif name.endswith("_relu_slopes"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
            elif isinstance(dict(net.named_modules())[name.rpartition(".")[0]],
                            torch.nn.PReLU):
                p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) - 0.5)


def train_twodnet(tmp_path, monkeypatch, activation_type, hidden=2, size=21, range_=2,
                  seed=0, double=True):
    """One epoch of DeepSplines' own training loop (Manager.train_epoch, whose validation
    step saves the checkpoint with Project.save_network) on a twoDnet with random
    activations; returns (the trained network in float64, the checkpoint it wrote).

    double: train in float64, with lmbda = 0 (DeepSplines' TV2 cannot run in float64: its
    D2 filter stays float32); otherwise in float32 (its default) with its TV2 penalty, and
    the float32 parameters are then evaluated in float64."""
    torch = need_torch()
    manager_class = import_manager(monkeypatch)
    from deepsplines.ds_utils import assign_tree_structure
    from deepsplines.project import Project
    from deepsplines.struct_default_values import default_values, structure

    deep = activation_type.startswith("deep")
    params = assign_tree_structure(dict(
        default_values, net="twoDnet", dataset_name="s_shape", device="cpu",
        activation_type=activation_type, spline_size=size, spline_range=range_,
        num_hidden_layers=hidden, num_hidden_neurons=4, num_epochs=1, num_classes=1,
        log_dir=str(tmp_path / "log"), model_name="m", seed=seed, lr=1e-3,
        lmbda=0.0 if double else 1e-4,
        optimizer=["Adam", "Adam"] if deep else ["Adam"]), structure)
    params["model"]["num_classes"] = 1          # Manager takes it from its data set
    m = manager_class.__new__(manager_class)
    Project.__init__(m, params, params)
    m.init_device()
    m.init_log()
    m.init_json()
    torch.manual_seed(seed)
    dtype = torch.float64 if double else torch.float32
    m.net = manager_class.build_model(m.params, "cpu").to(dtype)
    randomise(torch, m.net, seed)
    m.set_optimization()
    m.criterion = torch.nn.BCELoss(reduction="mean")
    m.test_criterion = torch.nn.BCELoss(reduction="sum")
    m.dataset = types.SimpleNamespace(is_user_dataset=False, get_test_imgs=False)
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.rand(64, 2, generator=g, dtype=dtype) - 1
    y = (x.norm(dim=1) < 0.6).to(dtype)
    m.trainloader = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    m.validloader = m.trainloader[:1]
    m.num_train_batches = 4
    m.params.update(log_step=4, valid_log_step=4)
    m.losses_names = ["loss", "df_loss"] + (["tv2_loss"] if deep and not double else [])
    m.net.train()
    m.train_epoch(0)
    return m.net.eval().double(), tmp_path / "log" / "m" / "m_net_0001.pth"


def torch_answers(torch, net, last, x):
    """(pre-link outputs, their input Jacobians (M, N_L, N_0), the module's own output) of
    a torch network; the output of `last` (the layer before any final sigmoid) is caught
    by a forward hook, so the package's own forward runs unchanged."""
    caught = {}
    handle = last.register_forward_hook(lambda module, inputs, out: caught.update(z=out))
    xt = torch.from_numpy(x).requires_grad_()
    out = net(xt)
    handle.remove()
    z = caught["z"]
    jac = np.stack([torch.autograd.grad(z[:, j].sum(), xt, retain_graph=True)[0].numpy()
                    for j in range(z.shape[1])], axis=1)
    return z.detach().numpy(), jac, out.detach().numpy()


def rows_inside(net, x):
    """Rows whose every uniform-grid spline input lies in [t_0, t_{K-2}], where DeepSplines'
    forward has no float32 extrapolation offset (module docstring)."""
    inside, z = np.ones(len(x), bool), x
    for layer in net.layers:
        if layer.kind == "spline":
            t = layer.spline.grid
            inside &= np.all((z >= t[0]) & (z <= t[-2]), axis=1)
        z = layer.forward(z)[0]
    return inside


def compare(torch, result_net, torch_net, last, x, tol=1e-12):
    """Outputs and input Jacobians equal to `tol` on the rows inside every grid (which must
    be most of them); returns (ours, theirs, inside)."""
    ours, ours_jac = result_net.forward(x), result_net.input_jacobian(x)
    theirs, theirs_jac, raw = torch_answers(torch, torch_net, last, x)
    inside = rows_inside(result_net, x)
    assert inside.mean() > 0.5, inside.mean()
    np.testing.assert_allclose(ours[inside], theirs[inside], rtol=tol, atol=tol)
    np.testing.assert_allclose(ours_jac[inside], theirs_jac[inside], rtol=tol, atol=tol)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)     # float32 offsets
    return ours, theirs, raw, inside


@pytest.mark.torch
@pytest.mark.parametrize("activation_type, hidden, double", [
    ("deepBspline", 2, True), ("deepBspline", 2, False), ("deepBspline", 1, True),
    ("deepBspline_explicit_linear", 2, True), ("deepBspline_explicit_linear", 1, False),
    ("deepReLUspline", 2, True), ("deepReLUspline", 2, False), ("relu", 2, True),
    ("leaky_relu", 1, False)])
def test_training_loop_checkpoints_of_twodnet(tmp_path, monkeypatch, capsys,
                                              activation_type, hidden, double):
    torch = need_torch()
    net, ckpt = train_twodnet(tmp_path, monkeypatch, activation_type, hidden, double=double)
    capsys.readouterr()                                   # the training loop's own prints
    out = tmp_path / "model.npz"
    assert main(["import-deepsplines", str(ckpt), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["source"] == "training checkpoint" and report["net"] == "twoDnet"
    assert report["loaded_with"] == "torch.load(weights_only=True)"
    assert report["link"] == "logistic" and report["output"] == "logit"
    assert report["order"][-1] == "sigmoid" and report["check"]["passed"]
    imported = load_model(out)
    x = np.random.default_rng(0).uniform(-1, 1, (300, 2))
    ours, theirs, probability, inside = compare(torch, imported, net, net.fc_last, x)
    np.testing.assert_allclose(1 / (1 + np.exp(-ours[inside, 0])), probability[inside],
                               rtol=1e-12, atol=1e-13)            # the link, as stated
    if activation_type.startswith("deepB"):
        step = float(net.activations[0].grid.item())               # float32, kept
        assert report["layers"][1]["grid"]["step"] == step == imported.layers[1].spline.step
    else:
        assert inside.all()                                        # no uniform-grid spline


@pytest.mark.torch
def test_the_float32_step_is_kept(tmp_path, monkeypatch):
    """A float64 step (0.19999999999999998 instead of 0.20000000298023224) moves outputs by
    ~1e-8; the importer's float32 step matches DeepSplines to 1e-12."""
    torch = need_torch()
    net, ckpt = train_twodnet(tmp_path, monkeypatch, "deepBspline")
    x = np.random.default_rng(1).uniform(-1, 1, (300, 2))
    theirs = torch_answers(torch, net, net.fc_last, x)[0]
    kept = ds.import_deepsplines(ckpt).network
    wide = ds.import_deepsplines(ckpt, grid_dtype="float64").network
    assert kept.layers[1].spline.step == 0.20000000298023224
    assert wide.layers[1].spline.step == 0.19999999999999998
    inside = rows_inside(kept, x)
    err32 = np.max(np.abs(kept.forward(x) - theirs)[inside])
    err64 = np.max(np.abs(wide.forward(x) - theirs)[inside])
    assert err32 <= 1e-12 < 1e-9 < err64 < 1e-6, (err32, err64)


class _Mixed:
    """Built in the test (DSModule subclass): modules registered in another order than the
    forward: fc1 -> explicit-linear B-spline -> fc2 -> PReLU(4) -> fc3 -> DeepReLUSpline
    (size 9) -> fc4 -> DeepBSpline -> fc5 -> ReLU -> out -> LeakyReLU(0.2)."""
    ORDER = ("fc1,act1,fc2,act2,fc3,act3,fc4,act4,fc5,relu,out,leaky_relu:0.2")

    @staticmethod
    def build(torch):
        from deepsplines.ds_modules import DeepBSpline, DeepBSplineExplicitLinear, DeepReLUSpline
        from deepsplines.ds_modules.dsnn import DSModule

        nn = torch.nn

        class Mixed(DSModule):
            def __init__(self):
                super().__init__()
                self.fc1, self.fc2 = nn.Linear(2, 5, bias=False), nn.Linear(5, 4)
                self.fc3, self.fc4 = nn.Linear(4, 3), nn.Linear(3, 3)
                self.fc5, self.out = nn.Linear(3, 3, bias=False), nn.Linear(3, 2)
                self.act1 = DeepBSplineExplicitLinear("fc", 5, size=21, range_=2)
                self.act2 = nn.PReLU(4)
                self.act3 = DeepReLUSpline("fc", 3, size=9, range_=2)
                self.act4 = DeepBSpline("fc", 3, size=21, range_=2)

            def forward(self, x):
                x = self.fc3(self.act2(self.fc2(self.act1(self.fc1(x)))))
                x = self.fc5(self.act4(self.fc4(self.act3(x))))
                return torch.nn.functional.leaky_relu(self.out(torch.relu(x)), 0.2)

        return Mixed()


@pytest.mark.torch
def test_plain_state_dict_of_a_dsmodule_with_every_layer_kind(tmp_path, capsys):
    torch = need_torch()
    torch.manual_seed(0)
    net = _Mixed.build(torch).double()
    randomise(torch, net, 1)
    torch.save(net.state_dict(), tmp_path / "sd.pth")
    argv = ["import-deepsplines", str(tmp_path / "sd.pth"), "--out", str(tmp_path / "m.npz")]
    assert main(argv) == 2
    assert "--layers: the key order cannot tell" in capsys.readouterr().err
    assert main(argv + ["--layers", _Mixed.ORDER]) == 2
    assert "--spline-range: module 'act1' is a DeepSplines activation" in \
        capsys.readouterr().err
    assert main(argv + ["--layers", _Mixed.ORDER, "--spline-range", "2"]) == 0
    text = capsys.readouterr().out
    assert "read with torch.load(weights_only=True)" in text and "model written to" in text
    imported = load_model(tmp_path / "m.npz")
    assert [layer.kind for layer in imported.layers] == [
        "dense", "spline", "dense", "prelu", "dense", "knot_spline", "dense", "spline", "dense",
        "relu", "dense", "leaky_relu"]
    x = np.random.default_rng(2).uniform(-1.5, 1.5, (300, 2))
    ours, ours_jac = imported.forward(x), imported.input_jacobian(x)
    xt = torch.from_numpy(x).requires_grad_()
    theirs = net(xt)
    theirs_jac = np.stack([torch.autograd.grad(theirs[:, j].sum(), xt, retain_graph=True)[0]
                           .numpy() for j in range(2)], axis=1)
    inside = rows_inside(imported, x)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(ours[inside], theirs.detach().numpy()[inside], rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(ours_jac[inside], theirs_jac[inside], rtol=1e-12, atol=1e-12)


@pytest.mark.torch
def test_sequential_state_dicts_legacy_format_and_full_modules(tmp_path, capsys):
    """Key order suffices for an alternating Sequential; PReLU() with one shared slope; an
    explicit-linear activation built with bias=False; torch's legacy format; a pickled
    nn.Module needs --unsafe-pickle."""
    torch = need_torch()
    from deepsplines.ds_modules import DeepBSplineExplicitLinear

    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(2, 4),
                              DeepBSplineExplicitLinear("fc", 4, size=11, range_=3, bias=False),
                              torch.nn.Linear(4, 3), torch.nn.PReLU(),
                              torch.nn.Linear(3, 1)).double()
    randomise(torch, net, 4)
    torch.save(net.state_dict(), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    result = ds.import_deepsplines(tmp_path / "legacy.pth", spline_range=3)
    assert result.order_from.startswith("the key order") and result.source == "state dict"
    assert result.network.layers[3].params["slope"].shape == (3,)
    x = np.random.default_rng(5).uniform(-2, 2, (200, 2))
    compare(torch, result.network, net, net[4], x)
    torch.save(net, tmp_path / "module.pth")
    argv = ["import-deepsplines", str(tmp_path / "module.pth"), "--out", str(tmp_path / "m.npz"),
            "--spline-range", "3"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "does not load; if the file comes from a source you trust, --unsafe-pickle" in err
    assert "torch.nn.modules.container.Sequential" in err
    assert main(argv + ["--unsafe-pickle"]) == 0
    assert "read with torch.load(weights_only=False)" in capsys.readouterr().out
    compare(torch, load_model(tmp_path / "m.npz"), net, net[4], x)


@pytest.mark.torch
def test_outside_the_grid_deepsplines_jumps_by_its_float32_offset(tmp_path):
    """Beyond the grid ends DeepSplines' forward differs from the continuous spline by
    exactly |end slope| * (fl32(h) - h) (module docstring); the importer reports the bound."""
    torch = need_torch()
    from deepsplines.ds_modules import DeepBSpline

    act = DeepBSpline("fc", 3, size=21, range_=1).double()
    randomise(torch, act, 6)
    net = torch.nn.Sequential(torch.nn.Linear(3, 3, bias=False), act,
                              torch.nn.Linear(3, 3, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(3, dtype=torch.float64))
        net[2].weight.copy_(torch.eye(3, dtype=torch.float64))
    torch.save(net.state_dict(), tmp_path / "sd.pth")
    result = ds.import_deepsplines(tmp_path / "sd.pth", spline_range=1)
    x = np.array([[-5.0] * 3, [-1.2] * 3, [0.95] * 3, [7.0] * 3])
    theirs = net(torch.from_numpy(x)).detach().numpy()
    c = act.coefficients.detach().numpy()
    step, n = float(act.grid.item()), 21 // 2
    left = (c[:, 1] - c[:, 0]) / step * ((act.grid * n).item() - step * n)
    right = -(c[:, -1] - c[:, -2]) / step * ((act.grid * (n - 1)).item() - step * (n - 1))
    np.testing.assert_allclose(theirs - result.network.forward(x),
                               np.array([left, left, right, right]), rtol=0, atol=1e-13)
    assert np.isclose(result.extrapolation_gap, np.max(np.abs([left, right])), rtol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("size, range_", [(21, 1), (21, 2), (7, 2), (51, 4), (5, 0.3)])
def test_step_equals_the_packages(size, range_):
    torch = need_torch()
    from deepsplines.ds_modules import DeepBSpline, DeepReLUSpline

    assert ds.deepsplines_step(size, range_) == DeepBSpline("fc", 1, size=size,
                                                            range_=range_).grid.item()
    relu = DeepReLUSpline("fc", 1, size=size, range_=range_)
    np.testing.assert_array_equal(ds._relu_spline_knots(size - 2, ds.deepsplines_step(
        size, range_), "float32"), relu.knot_loc[0].to(torch.float64).numpy())


@pytest.mark.torch
def test_the_imported_model_feeds_evaluate(tmp_path, monkeypatch, capsys):
    need_torch()
    _, ckpt = train_twodnet(tmp_path, monkeypatch, "deepBspline")
    capsys.readouterr()
    out = tmp_path / "model.npz"
    assert main(["import-deepsplines", str(ckpt), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "output: the logit" in text and "logistic link" in text
    assert "step 0.20000000298023224 (float32 grid)" in text
    x = np.random.default_rng(7).uniform(-1, 1, (20, 2))
    np.save(tmp_path / "x.npy", x)
    assert main(["evaluate", str(out), "--inputs", str(tmp_path / "x.npy"), "--output",
                 str(tmp_path / "answers.npz")]) == 0
    with np.load(tmp_path / "answers.npz") as answers:
        np.testing.assert_array_equal(answers["outputs"], load_model(out).forward(x))
    assert main(["import-deepsplines", str(ckpt), "--out", str(out), "--spline-range", "2"]) == 2
    assert "this training checkpoint states its grid" in capsys.readouterr().err
    assert main(["import-deepsplines", str(ckpt), "--out", str(ckpt)]) == 2
    assert "--out: " in capsys.readouterr().err


class _Payload:
    """Pickles as a call of `function` on `args` (pickle's __reduce__); nothing is called
    when the file is written, only by an unpickler that follows the file's instructions."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.torch
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("call, global_name, blocked", [
    ("os.system", "posix.system", True),
    ("shutil.copyfile", "shutil.copyfile", False),
])
def test_a_checkpoint_that_runs_a_command_is_refused_naming_the_global_and_the_flag(
        tmp_path, capsys, legacy, call, global_name, blocked):
    """A checkpoint whose pickle calls os.system('touch MARKER') (or shutil.copyfile(ANY,
    MARKER)): without --unsafe-pickle, exit 2 and one line naming the global, the flag and
    its risk, and nothing was run; with the flag it is (what the message warns of)."""
    import importlib
    import os
    import shlex
    torch = pytest.importorskip("torch")
    module, name = call.rsplit(".", 1)
    function = getattr(importlib.import_module(module), name)
    marker = tmp_path / "payload-ran"
    command = f"touch {shlex.quote(str(marker))}"
    payload = _Payload(function, command) if call == "os.system" else \
        _Payload(function, __file__, str(marker))
    ckpt = tmp_path / "evil.pth"
    torch.save({"model_state": {"fc1.weight": torch.zeros(2, 2)}, "params": payload}, ckpt,
               _use_new_zipfile_serialization=not legacy)
    assert not marker.exists()                      # writing the file ran nothing
    argv = ["import-deepsplines", str(ckpt), "--out", str(tmp_path / "m.npz")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: CKPT: "), lines
    assert f"the global {global_name}" in lines[0], lines[0]
    assert "--unsafe-pickle" in lines[0] and "arbitrary code execution" in lines[0]
    assert ("do not use --unsafe-pickle on this file" in lines[0]) == blocked
    assert "Weights only load failed" not in lines[0] and "\x1b" not in lines[0]
    assert not marker.exists() and not (tmp_path / "m.npz").exists()
    if os.name == "posix":                          # the risk named is real: the flag runs it
        main(argv + ["--unsafe-pickle"])
        capsys.readouterr()
        assert marker.exists()
