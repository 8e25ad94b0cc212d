"""The 'deepsplines' convention against DeepSplines itself (issue 18, part 1; pytest -m torch):
from the same initial parameters and the same batches, the project's train() and DeepSplines'
Manager (deepsplines 1.0.0, float64) take the same 100 steps.  Needs torch and deepsplines
(pip install torch==2.13.0; pip install --no-deps deepsplines); torchvision, which
deepsplines.manager imports for its image data sets only, is stubbed when absent."""
import sys
import types

import numpy as np
import pytest

from reference.data import _datasets as datasets
from reference.nn._linear_spline import LinearSpline
from reference.nn._network import Dense, Identity, Network, SplineActivation
from reference.training import _convention as convention
from reference.training._train import TrainConfig, train

pytestmark = pytest.mark.torch

STEPS, BATCH, LR, WEIGHT_DECAY = 100, 10, 1e-3, 1e-5
RTOL = 1e-10                     # per parameter array, relative to its largest entry
# DeepSplines' parameter names -> the project's, for TwoDNet(2 hidden layers of 4, splines)
NAMES = {"fc1.weight": "layer0.weight", "activations.0._coefficients_vect": "layer1.coefficients",
         "fc2.weight": "layer2.weight", "fc2.bias": "layer2.bias",
         "activations.1._coefficients_vect": "layer3.coefficients",
         "fc_last.weight": "layer4.weight", "fc_last.bias": "layer4.bias"}


@pytest.fixture
def torch64(monkeypatch):
    """torch with float64 as the default dtype (DeepSplines must be *built* in float64: its
    grid and D2 filter are plain tensors that .double() leaves in float32) and one thread;
    deepsplines.manager importable (torchvision stubbed when it is not installed).  The
    default dtype, the thread count and sys.modules are restored afterwards."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("deepsplines.networks")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        stub = types.ModuleType("torchvision")
        for name in ("transforms", "datasets"):
            module = types.ModuleType(f"torchvision.{name}")
            setattr(stub, name, module)
            monkeypatch.setitem(sys.modules, f"torchvision.{name}", module)
        monkeypatch.setitem(sys.modules, "torchvision", stub)
    before = set(sys.modules)
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield torch
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)
    for name in set(sys.modules) - before:           # the modules that saw the stub
        if name.startswith("deepsplines"):
            del sys.modules[name]


def twodnet(torch, seed):
    """DeepSplines' TwoDNet of run_twoDnet.py: 2 hidden layers of 4 deepBspline neurons,
    K = 21 on [-1, 1], leaky-ReLU init, fc1 without bias (built in float64)."""
    from deepsplines.networks import TwoDNet

    torch.manual_seed(seed)
    net = TwoDNet(num_hidden_layers=2, num_hidden_neurons=4, activation_type="deepBspline",
                  num_classes=2, spline_size=21, spline_range=1, spline_init="leaky_relu",
                  save_memory=False, knot_threshold=0.)
    assert net.activations[0].grid.item() == 0.09999999999999999
    return net


def project_copy(net) -> Network:
    """The project's network with DeepSplines' parameters, bit for bit (the spline grid
    k T, T = grid.item(), as DeepSplines has it)."""
    p = {name: value.detach().numpy().copy() for name, value in net.named_parameters()}
    step = net.activations[0].grid.item()

    def spline(name):
        return SplineActivation(LinearSpline(p[name].reshape(4, 21), -(step * 10), step))

    return Network([Dense(p["fc1.weight"]), spline("activations.0._coefficients_vect"),
                    Dense(p["fc2.weight"], p["fc2.bias"]),
                    spline("activations.1._coefficients_vect"),
                    Dense(p["fc_last.weight"], p["fc_last.bias"]), Identity()])


def deepsplines_steps(torch, net, x, y, order, lam, reg):
    """DeepSplines' own per-batch code (Manager.optimizer_zero_grad,
    forward_backward_train_batch, optimizer_step, construct_optimizer: the single Adam of
    run_twoDnet.py) on the batches `order` cuts, as Manager.train_epoch runs them."""
    from deepsplines.manager import Manager

    manager = types.SimpleNamespace(
        net=net, criterion=torch.nn.BCELoss(reduction="mean"), aux_optimizer=None,
        params={"weight_decay": WEIGHT_DECAY, "lmbda": lam, "lipschitz": reg == "bv2"},
        main_optimizer=Manager.construct_optimizer(net.parameters(), "Adam", LR))
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y.astype(np.float64))
    net.train()
    for start in range(0, len(order), BATCH):
        rows = torch.from_numpy(order[start:start + BATCH])
        Manager.optimizer_zero_grad(manager)
        Manager.forward_backward_train_batch(manager, inputs[rows], labels[rows])
        Manager.optimizer_step(manager)


@pytest.mark.parametrize("lam", [0.0, 1e-5, 1e-3])
@pytest.mark.parametrize("reg", ["tv2", "bv2"])
def test_first_100_steps_equal_deepsplines(torch64, reg, lam):
    """Same initial parameters (copied from DeepSplines, spline coefficients bit for bit),
    same batches: after 100 steps of batch 10 (Adam lr 1e-3, weight decay 1e-5, the circle
    set) every parameter array agrees to 1e-10 of its largest entry, while the steps moved
    the parameters by far more (the comparison is not vacuous)."""
    torch = torch64
    net = twodnet(torch, seed=0)
    ours = project_copy(net)
    start = {name: value.copy() for name, value in ours.named_params()}
    ds = datasets.two_d("circle", seed=0, num_train=STEPS * BATCH)
    order = np.random.default_rng(1).permutation(STEPS * BATCH)
    deepsplines_steps(torch, net, ds.x_train, ds.y_train, order, lam, reg)
    config = TrainConfig(loss="logistic", epochs=1, batch_size=BATCH, lr=LR, spline_lr=LR,
                         mu=WEIGHT_DECAY, lam=lam, reg=reg, milestones=(0.88, 0.96),
                         convention="deepsplines", quiet=True)
    train(ours, ds.x_train, ds.y_train, config, batch_order=order[None, :])
    theirs = {NAMES[name]: value.detach().numpy() for name, value in net.named_parameters()}
    params = dict(ours.named_params())
    assert set(theirs) == set(params)
    worst, moved = 0.0, 0.0
    for name, value in params.items():
        reference = theirs[name].reshape(value.shape)
        worst = max(worst, np.max(np.abs(value - reference)) / np.max(np.abs(reference)))
        moved = max(moved, np.max(np.abs(reference - start[name])))
    print(f"{reg} lam={lam:g}: max relative difference {worst:.2e}, largest move {moved:.2e}")
    assert worst <= RTOL
    assert moved > 1e3 * RTOL


def test_convention_arithmetic_is_deepsplines(torch64):
    """The pieces, one by one, against DeepSplines' modules and torch's autograd: the jumps
    bit for bit (sign-critical), sigma(0) and sigma(1) bit for bit, TV2 / BV2 values and
    subgradients and the BCE data term to rounding, at the leaky-ReLU initialisation and at
    random coefficients."""
    torch = torch64
    net = twodnet(torch, seed=3)
    act = net.activations[0]
    step = act.grid.item()
    rng = np.random.default_rng(0)
    for coefficients in (act.coefficients.detach().numpy().copy(), rng.normal(size=(4, 21))):
        with torch.no_grad():
            act.coefficients_vect.copy_(torch.from_numpy(coefficients.ravel()))
        np.testing.assert_array_equal(convention.jumps(coefficients, step),
                                      act.relu_slopes.detach().numpy())
        zero_one = act(torch.tensor([[0], [1]]).expand(-1, 4)).detach().numpy()
        for row, z in enumerate((0.0, 1.0)):
            np.testing.assert_array_equal(convention.values_at(coefficients, step, z)[0],
                                          zero_one[row])
        for reg, method in (("tv2", act.totalVariation), ("bv2", None)):
            act.coefficients_vect.grad = None
            value = method() if reg == "tv2" else (act.totalVariation()
                                                    + act.fZerofOneAbs())
            value.norm(p=1).backward()
            np.testing.assert_allclose(
                convention.regulariser_value(coefficients, step, reg).sum(), value.sum().item(),
                rtol=1e-14)
            torch_grad = act.coefficients_vect.grad.numpy().reshape(4, 21)
            np.testing.assert_allclose(convention.regulariser_grad(coefficients, step, reg),
                                       torch_grad, rtol=1e-14, atol=1e-14 / step)
    logits = np.array([[-800.0], [-40.0], [-3.0], [0.5], [28.0], [40.0]])
    labels = np.array([[1.0], [1.0], [0.0], [1.0], [0.0], [0.0]])
    f = torch.from_numpy(logits[:, 0]).requires_grad_()
    loss = torch.nn.BCELoss()(torch.sigmoid(f), torch.from_numpy(labels[:, 0]))
    loss.backward()
    value, grad = convention.data_term("logistic", logits, labels)
    np.testing.assert_allclose(value, loss.item(), rtol=1e-14)
    np.testing.assert_allclose(grad[:, 0], f.grad.numpy(), rtol=1e-14, atol=1e-300)
