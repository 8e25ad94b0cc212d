"""The compiled training engine against the NumPy loop (reference.training._engine).

Every supported recipe: 200 minibatch steps with engine='numpy' (the reference) and with
engine='compiled' from the same network and seed; each parameter array must agree to
1e-12 relative to its largest magnitude.  The engine does the NumPy loop's operations in its
order and calls numpy's BLAS and exp: the bits are the same (measured on every recipe here;
`test_same_bits` keeps it so for three of them).  Then the dispatch: what 'compiled'
refuses, what 'auto' falls back to and records, and the steps the NumPy loop would stop on,
handed back to it.
"""
import re

import numpy as np
import pytest

from reference.data import _datasets as datasets
from reference.exceptions import OverflowResult
from reference.nn import KnotSplineActivation, build_mlp
from reference.nn._linear_spline import LinearSpline
from reference.nn._network import Dense, Identity, LeakyReLU, Network, PReLU, SplineActivation
from reference.training import TrainConfig, _engine, train

STEPS = 200
RTOL = 1e-12
UNAVAILABLE = _engine.numba_missing() or _engine.numpy_blas()[1]
needs_compiled = pytest.mark.skipif(UNAVAILABLE is not None,
                                    reason=f"compiled engine unavailable: {UNAVAILABLE}")


def problem(n_in=2, n_out=1, loss="logistic", m=100, seed=1):
    """Inputs in [-1, 1]^n_in and targets for the loss: the circle's labels (logistic),
    a smooth function (squared), random classes (xent)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (m, n_in))
    if loss == "logistic":
        return x, datasets.circle_labels(x[:, :2])
    if loss == "xent":
        return x, rng.integers(0, n_out, m)
    return x, np.sin(3 * x[:, 0]) + x[:, 1] ** 2


def paper_net(convention="project"):
    """2-4-4-1 with splines K = 21 on [-1, 1] (the paper's twoDnet; under 'deepsplines' the
    first dense layer has no bias, as TwoDNet's)."""
    return build_mlp([2, 4, 4, 1], "spline", rng=0, size=21, range_=1.0,
                     first_bias=convention == "project")


CONVENTIONS = ["project", "deepsplines"]


def penalties(convention, lam_per_sample, m=100):
    """lam (and mu) of one strength in either convention: 'project' lam = lam_DS M and the
    default mu; 'deepsplines' lam_DS itself and mu 1e-3 (which decays the dense biases and
    PReLU slopes too)."""
    if convention == "deepsplines":
        return {"convention": "deepsplines", "lam": lam_per_sample, "mu": 1e-3}
    return {"lam": lam_per_sample * m}


def train_both(make_net, x, y, steps=STEPS, **options):
    """Train copies of make_net() with both engines for `steps` minibatch steps (whole
    epochs: the last may run past it); returns the parameters and histories."""
    per_epoch = -(-x.shape[0] // options.get("batch_size", 10))
    options.setdefault("batch_size", 10)
    results = {}
    for engine in ("numpy", "compiled"):
        net = make_net()
        config = TrainConfig(epochs=-(-steps // per_epoch), quiet=True, engine=engine,
                             **options)
        history = train(net, x, y, config)
        assert history["engine"] == {"name": engine, "requested": engine, "reason": None}
        results[engine] = ({k: v.copy() for k, v in net.named_params()}, history)
    return results["numpy"], results["compiled"]


def assert_same_parameters(reference, compiled, rtol=RTOL):
    assert reference.keys() == compiled.keys()
    for key, value in reference.items():
        scale = np.max(np.abs(value))
        error = np.max(np.abs(compiled[key] - value))
        assert error <= rtol * scale, f"{key}: {error:.3g} > {rtol} * {scale:.3g}"


def assert_engines_agree(make_net, x, y, **options):
    (reference, _), (compiled, _) = train_both(make_net, x, y, **options)
    assert_same_parameters(reference, compiled)
    start = {k: v for k, v in make_net().named_params()}
    assert any(not np.array_equal(start[k], reference[k]) for k in start)   # it trained


@needs_compiled
@pytest.mark.parametrize("optimizer, lr", [("adam", 1e-2), ("adam", 1e-3), ("sgd", 1e-2)])
@pytest.mark.parametrize("prox", [False, True])
@pytest.mark.parametrize("reg", ["tv2", "bv2"])
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_regularisers_prox_and_optimisers(convention, reg, prox, optimizer, lr):
    """The paper's 2-4-4-1 network (K = 21 on [-1, 1]), logistic loss, batch 10; lambda
    1.5e-3 per sample (lam = 0.15 = 1.5e-3 M under 'project'), large enough that the
    regulariser moves the splines in 200 steps."""
    x, y = problem()
    assert_engines_agree(lambda: paper_net(convention), x, y, reg=reg, prox=prox,
                         optimizer=optimizer, lr=lr, spline_lr=lr,
                         **penalties(convention, 1.5e-3))


@needs_compiled
@pytest.mark.parametrize("activation", ["spline", "relu", "leaky_relu", "prelu", "identity"])
@pytest.mark.parametrize("loss", ["logistic", "squared"])
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_losses_and_activations(convention, loss, activation):
    """2-8-1 with every activation kind of the registry the engine covers, BV2."""
    x, y = problem(loss=loss)
    assert_engines_agree(lambda: build_mlp([2, 8, 1], activation, rng=0, size=21, range_=1.0),
                         x, y, loss=loss, reg="bv2", **penalties(convention, 1e-3))


@needs_compiled
@pytest.mark.parametrize("reg, prox", [("tv2", False), ("bv2", True)])
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_cross_entropy_64_16_10(convention, reg, prox):
    x, y = problem(n_in=64, n_out=10, loss="xent", m=160)
    assert_engines_agree(lambda: build_mlp([64, 16, 10], "spline", rng=0, size=21,
                                           range_=2.0),
                         x, y, loss="xent", batch_size=16, reg=reg, prox=prox,
                         **penalties(convention, 1e-3, m=160))


@needs_compiled
@pytest.mark.parametrize("batch_size", [1, 7, 16, 100, 150])
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_batch_sizes(convention, batch_size):
    """7 does not divide M = 100 (a last batch of 2); 100 is one batch per epoch and 150
    more than M.  Full batches: 100 epochs."""
    x, y = problem()
    steps = STEPS if batch_size < 100 else 100
    assert_engines_agree(lambda: paper_net(convention), x, y, steps=steps,
                         batch_size=batch_size, **penalties(convention, 1.5e-3))


@needs_compiled
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_milestones_within_the_steps(convention, optimizer):
    """20 epochs of 10 steps with milestones at epochs 6 and 12: the learning rates are
    cut twice within the 200 steps."""
    x, y = problem()
    milestones = (0.3, 0.6)
    assert sorted(int(round(f * 20)) for f in milestones) == [6, 12]
    assert_engines_agree(lambda: paper_net(convention), x, y, optimizer=optimizer,
                         milestones=milestones, **penalties(convention, 1.5e-3))


@needs_compiled
def test_saturated_logits_under_deepsplines():
    """torch's BCELoss damps the gradient where p (1 - p) < 1e-12 (|f| > 27.6) and gives 0
    where p rounds to 0 or 1: output weights x 200 put logits there."""
    x, y = problem()

    def make_net():
        net = paper_net("deepsplines")
        net.layers[-2].params["weight"] *= 200.0
        return net
    assert np.max(np.abs(make_net()(x))) > 28
    assert_engines_agree(make_net, x, y, **penalties("deepsplines", 1.5e-3))


def mixed_network():
    """A first Dense layer without a bias, PReLU, a spline layer, a leaky ReLU of slope 0.2
    and an identity output."""
    rng = np.random.default_rng(3)
    return Network([
        Dense(rng.uniform(-1, 1, (5, 2))), PReLU(np.full(5, 0.25)),
        Dense(rng.uniform(-0.5, 0.5, (4, 5)), rng.uniform(-0.5, 0.5, 4)),
        SplineActivation(LinearSpline.initialise("relu", 4, 11, 2.0)),
        Dense(rng.uniform(-0.5, 0.5, (3, 4)), rng.uniform(-0.5, 0.5, 3)), LeakyReLU(0.2),
        Dense(rng.uniform(-0.5, 0.5, (1, 3)), rng.uniform(-0.5, 0.5, 1)), Identity()])


def spline_first_network():
    """A network that starts with spline activations on its inputs."""
    rng = np.random.default_rng(4)
    return Network([SplineActivation(LinearSpline.initialise("leaky_relu", 2, 21, 1.0)),
                    Dense(rng.uniform(-1, 1, (4, 2)), rng.uniform(-1, 1, 4)),
                    SplineActivation(LinearSpline.initialise("leaky_relu", 4, 21, 1.0)),
                    Dense(rng.uniform(-1, 1, (1, 4)), np.zeros(1))])


@needs_compiled
@pytest.mark.parametrize("make_net", [mixed_network, spline_first_network])
@pytest.mark.parametrize("reg", ["tv2", "bv2"])
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_other_layer_orders(convention, make_net, reg):
    x, y = problem()
    assert_engines_agree(make_net, x, y, reg=reg, **penalties(convention, 1.5e-3))


@needs_compiled
@pytest.mark.parametrize("case", ["paper-tv2", "paper-bv2-prox", "xent", "deepsplines-bv2"])
def test_same_bits(case):
    """The same bits as the NumPy loop (numpy's BLAS and exp called, every other operation
    in numpy's order): the paper's network with TV2, with BV2 and prox at lr 1e-2 (where a
    last-bit difference grows to ~1e-10 in 200 steps), the cross-entropy, and DeepSplines'
    convention with BV2."""
    if case == "xent":
        x, y = problem(n_in=64, n_out=10, loss="xent", m=160)
        (reference, _), (compiled, _) = train_both(
            lambda: build_mlp([64, 16, 10], "spline", rng=0, size=21, range_=2.0), x, y,
            loss="xent", batch_size=16, lam=0.1)
    elif case == "deepsplines-bv2":
        x, y = problem()
        (reference, _), (compiled, _) = train_both(
            lambda: paper_net("deepsplines"), x, y, reg="bv2",
            **penalties("deepsplines", 1.5e-3))
    else:
        x, y = problem()
        reg, prox = ("tv2", False) if case == "paper-tv2" else ("bv2", True)
        (reference, _), (compiled, _) = train_both(paper_net, x, y, reg=reg, prox=prox,
                                                   lam=0.15)
    for key, value in reference.items():
        np.testing.assert_array_equal(compiled[key], value, err_msg=key)


@needs_compiled
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_history_records_agree_per_epoch(convention):
    """The per-epoch objective terms and accuracies of both engines (evaluated by the same
    NumPy code on parameters that agree)."""
    x, y = problem()
    x_valid, y_valid = problem(seed=2, m=50)
    histories = []
    for engine in ("numpy", "compiled"):
        history = train(paper_net(convention), x, y,
                        TrainConfig(epochs=20, batch_size=10, quiet=True, engine=engine,
                                    **penalties(convention, 1.5e-3)),
                        x_valid, y_valid)
        histories.append(history["epochs"])
    reference, compiled = histories
    assert len(reference) == len(compiled) == 20
    for a, b in zip(reference, compiled):
        assert a.keys() == b.keys()
        for key in a:
            assert abs(a[key] - b[key]) <= RTOL * abs(a[key]), (a["epoch"], key)


def knot_spline_network():
    """A network with a knot-spline layer (free knots): not covered by the compiled
    engine."""
    rng = np.random.default_rng(0)
    points = [np.array([-1.0, -0.3, 0.4, 1.0])] * 3
    return Network([Dense(rng.uniform(-1, 1, (3, 2)), np.zeros(3)),
                    KnotSplineActivation(points, [np.abs(p) for p in points]),
                    Dense(rng.uniform(-1, 1, (1, 3)), np.zeros(1))])


def test_compiled_refuses_an_unsupported_network():
    x, y = problem(m=20)
    with pytest.raises(ValueError, match=r"^engine: 'compiled' does not cover .*layer 1"):
        train(knot_spline_network(), x, y, TrainConfig(epochs=1, quiet=True,
                                                       engine="compiled"))


def test_auto_falls_back_to_numpy_and_says_why():
    x, y = problem(m=30)
    nets = {engine: knot_spline_network() for engine in ("auto", "numpy")}
    histories = {engine: train(net, x, y, TrainConfig(epochs=2, quiet=True, engine=engine))
                 for engine, net in nets.items()}
    record = histories["auto"]["engine"]
    assert record["name"] == "numpy" and record["requested"] == "auto"
    assert "layer 1" in record["reason"] and "knot" in record["reason"]
    for (key, a), (_, b) in zip(nets["auto"].named_params(), nets["numpy"].named_params()):
        np.testing.assert_array_equal(a, b, err_msg=key)


@needs_compiled
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_auto_takes_the_compiled_engine(convention):
    x, y = problem(m=30)
    history = train(paper_net(convention), x, y,
                    TrainConfig(epochs=1, quiet=True, convention=convention))
    assert history["engine"] == {"name": "compiled", "requested": "auto", "reason": None}
    assert history["config"]["engine"] == "auto"


def test_engine_choice_is_validated():
    with pytest.raises(ValueError, match="engine"):
        TrainConfig(engine="fast").validate()


@needs_compiled
def test_a_step_the_numpy_loop_stops_on_is_handed_back_to_it():
    """SGD with a huge learning rate: the outputs overflow within the first epoch.  The
    compiled engine stops before that step and the NumPy loop takes it and raises: the
    same error, and the same parameters when it is raised."""
    x, y = problem()
    outcomes = []
    for engine in ("numpy", "compiled"):
        net = paper_net()
        config = TrainConfig(epochs=2, batch_size=10, optimizer="sgd", lr=1e150,
                             quiet=True, engine=engine)
        with pytest.raises(OverflowResult) as raised, np.errstate(all="ignore"):
            train(net, x, y, config)
        outcomes.append((str(raised.value), {k: v.copy() for k, v in net.named_params()}))
    (message, reference), (compiled_message, compiled) = outcomes
    assert compiled_message == message and "overflows" in message
    for key in reference:
        np.testing.assert_array_equal(compiled[key], reference[key], err_msg=key)


@needs_compiled
def test_a_prox_step_out_of_the_splines_range_is_handed_back():
    """Splines at zero and a spline learning rate of 1e-250: Adam's first step moves the
    coefficients to about 1e-250, and the prox step rebuilds them there, below the smallest
    nonzero magnitude a LinearSpline accepts (1e-200).  The NumPy loop raises there; the
    compiled engine undoes that step and hands it back: the same error, the same state."""
    x, y = problem()
    outcomes = []
    for engine in ("numpy", "compiled"):
        net = paper_net()
        for layer in net.layers:
            if layer.kind == "spline":
                layer.params["coefficients"][...] = 0.0
        config = TrainConfig(epochs=1, batch_size=10, spline_lr=1e-250, lam=0.15, prox=True,
                             quiet=True, engine=engine)
        with pytest.raises(ValueError, match="coefficients: expected") as raised:
            train(net, x, y, config)
        outcomes.append((str(raised.value), {k: v.copy() for k, v in net.named_params()}))
    (message, reference), (compiled_message, compiled) = outcomes
    assert compiled_message == message
    for key in reference:
        np.testing.assert_array_equal(compiled[key], reference[key], err_msg=key)


@pytest.mark.parametrize("missing", ["numba_missing", "numpy_blas"])
def test_without_numba_or_numpys_blas_auto_runs_numpy_and_compiled_refuses(monkeypatch,
                                                                           missing):
    reason = "not here (a test)"
    if missing == "numba_missing":
        monkeypatch.setattr(_engine, "numba_missing", lambda: reason)
    else:
        monkeypatch.setattr(_engine, "numpy_blas", lambda: (None, reason))
    x, y = problem(m=30)
    history = train(paper_net(), x, y, TrainConfig(epochs=1, quiet=True))
    assert history["engine"] == {"name": "numpy", "requested": "auto", "reason": reason}
    with pytest.raises(ValueError, match=f"^engine: 'compiled' .*{re.escape(reason)}"):
        train(paper_net(), x, y, TrainConfig(epochs=1, quiet=True, engine="compiled"))
