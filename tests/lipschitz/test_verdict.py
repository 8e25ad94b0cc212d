import json

import numpy as np
import pytest

from reference.cli import main
from reference.io._model_file import save_model
from reference.lipschitz import _bounds as lipschitz
from reference.lipschitz import _exact as exact
from reference.lipschitz import _ladder as ladder
from reference.lipschitz import _milp as milp
from reference.lipschitz import _verdict as verdict
from reference.lipschitz._verdict import certified_ratio, check_claim, forward_error_bound
from reference.nn._linear_spline import LinearSpline
from reference.nn._network import Dense, Identity, LeakyReLU, Network, PReLU, ReLU, SplineActivation
from reference.testing import random_net


@pytest.fixture(scope="module")
def relu_net():
    return random_net([2, 8, 8, 1], "relu", seed=0)


def pair_ratio(net, x, x_pair, p):
    x, x_pair = np.asarray(x), np.asarray(x_pair)
    return (np.linalg.norm(net.forward(x_pair[None])[0] - net.forward(x[None])[0], ord=p)
            / np.linalg.norm(x_pair - x, ord=p))


def forbid(monkeypatch, *names):
    """Make the named ladder methods fail loudly if the verdict runs them."""
    def refuse(net, p, box, options):
        raise AssertionError("this method must not run")
    monkeypatch.setattr(ladder, "RUNNERS", {**ladder.RUNNERS, **{n: refuse for n in names}})


# ------------------------------------------------------------------ the three verdicts
@pytest.mark.parametrize("p", [1.0, 2.0, np.inf])
def test_claim_below_a_lower_bound_is_unsound_with_a_witness(relu_net, p):
    low = lipschitz.lower(relu_net, p, box=1.0)["value"]
    v = check_claim(relu_net, 0.9 * low, p, box=1.0)
    assert v.verdict == "unsound" and v.exit_status == 1
    w = v.witness
    assert np.all(np.abs(w.x) <= 1.0) and np.all(np.abs(w.x_pair) <= 1.0)   # in the box
    assert pair_ratio(relu_net, w.x, w.x_pair, p) == w.ratio        # re-evaluated
    assert w.ratio > w.certified > 0.9 * low and w.margin == w.ratio - w.certified
    assert "exact" in v.not_run and "exact" not in v.results        # decided before it


def test_claim_above_theorem1_is_sound_without_exact(relu_net, monkeypatch):
    forbid(monkeypatch, "exact", "lower", "lipsdp_neuron", "lipsdp_layer")
    t1 = lipschitz.theorem1(relu_net, 2)
    v = check_claim(relu_net, 1.01 * t1, 2, box=1.0)
    assert v.verdict == "sound" and v.exit_status == 0
    # the smallest certified upper bound computed (ECLipsE-Fast <= layer-wise <= Theorem 1)
    # names the method
    assert v.decided_by.method == "eclipse_fast" and v.decided_by.domain == "R^2"
    assert v.decided_by.certified >= ladder.run_method("eclipse_fast", relu_net, 2)["value"]
    assert set(v.results) == {"theorem1_bv2", "theorem1", "layerwise", "eclipse_fast"}
    assert v.not_run["exact"].startswith("not needed")


def test_claims_in_between_are_decided_by_exact(relu_net):
    value = ladder.run_method("exact", relu_net, 2, box=1.0)["value"]
    v = check_claim(relu_net, value * (1 + 1e-9), 2, box=1.0, methods="exact,layerwise")
    assert v.verdict == "sound" and v.decided_by.method == "exact"
    assert v.decided_by.domain == "box [-1, 1]^2"
    assert value < v.decided_by.certified <= value * (1 + 1e-9)
    v = check_claim(relu_net, value * (1 - 1e-9), 2, box=1.0, methods="exact,layerwise")
    assert v.verdict == "unsound" and v.witness.method == "exact"
    assert v.witness.margin < 1e-12 * value                 # a long chord: little rounding
    assert pair_ratio(relu_net, v.witness.x, v.witness.x_pair, 2) == v.witness.ratio


def test_claim_in_between_can_stay_undecided(relu_net):
    low = lipschitz.lower(relu_net, 2, box=1.0)["value"]
    top = lipschitz.layerwise(relu_net, 2)
    claim = (low + top) / 2
    v = check_claim(relu_net, claim, 2, box=1.0, methods="lower,layerwise")
    assert v.verdict == "undecided" and v.exit_status == 3 and v.decided_by is None
    lo, hi = v.interval
    assert lo < claim < hi and lo <= low and hi >= top


def test_lipsdp_decides_before_the_milp(monkeypatch):
    net = random_net([3, 10, 10, 1], "relu", seed=4)
    sdp = ladder.run_method("lipsdp_neuron", net, 2)["value"]
    assert sdp < lipschitz.layerwise(net, 2)
    forbid(monkeypatch, "exact")
    v = check_claim(net, sdp * 1.001, 2, box=1.0)
    assert v.verdict == "sound" and v.decided_by.method == "lipsdp_neuron"
    r = v.results["lipsdp_neuron"]
    assert v.decided_by.certified == sdp + r["rounding_bound"] > sdp
    assert v.decided_by.margin == r["rounding_bound"] and "proven rounding bound" in \
        v.decided_by.certificate
    assert v.not_run == {"lipsdp_layer": "lipsdp_neuron gave a bound (lipsdp_layer is never "
                                         "below it)", "exact": "not needed: decided by "
                                                                "lipsdp_neuron"}


def test_two_inputs_try_exact_before_lipsdp(monkeypatch, relu_net):
    value = ladder.run_method("exact", relu_net, 2, box=1.0)["value"]
    forbid(monkeypatch, "lipsdp_neuron", "lipsdp_layer")
    v = check_claim(relu_net, 1.001 * value, 2, box=1.0)
    assert v.verdict == "sound" and v.decided_by.method == "exact"
    assert set(v.not_run) == {"eclipse", "lipsdp_neuron", "lipsdp_layer"}


def test_the_rounding_margin_is_respected(relu_net):
    """A claim equal to the witness's computed ratio (or just under it, within the margin)
    is not called unsound: the ratio must exceed the claim by more than its rounding bound."""
    v = check_claim(relu_net, 0.5 * lipschitz.lower(relu_net, 2)["value"], 2,
                    methods="lower,theorem1")
    w = v.witness
    for claim in (w.ratio, w.ratio - 0.5 * w.margin):
        again = check_claim(relu_net, claim, 2, methods="lower,theorem1")
        assert again.verdict == "undecided" and again.interval[0] == w.certified


def test_a_stopped_milp_bracket_is_used(monkeypatch):
    """Three inputs, p = inf: the MILP stopped at its limit (made deterministic: HiGHS's answer
    relabelled as stopped with a looser dual bound) still decides through its bracket."""
    net = random_net([3, 5, 4, 1], "relu", seed=3)
    true = milp.exact_milp(net, np.inf, box=1.0)["value"]
    real = milp._Milp.solve

    def stopped(self, *args, **kwargs):
        res = real(self, *args, **kwargs)
        res.status, res.mip_dual_bound = 1, 1.2 * res.fun
        return res
    monkeypatch.setattr(milp._Milp, "solve", stopped)
    r = ladder.run_method("exact", net, "inf", box=1.0)
    assert r["status"] == "time_limit" and r["value"] is None
    assert r["lower_bound"] == pytest.approx(true, rel=1e-9)
    v = check_claim(net, 0.999 * true, "inf", methods="exact")
    assert v.verdict == "unsound" and v.witness.method == "exact"
    assert pair_ratio(net, v.witness.x, v.witness.x_pair, np.inf) == v.witness.ratio
    v = check_claim(net, 1.21 * true, "inf", methods="exact")
    assert v.verdict == "sound" and v.decided_by.method == "exact"
    v = check_claim(net, 1.1 * true, "inf", methods="exact")
    assert v.verdict == "undecided"
    assert v.interval[0] < 1.1 * true < v.interval[1] == pytest.approx(r["upper_bound"],
                                                                       rel=1e-12)
    assert r["upper_bound"] == pytest.approx(1.2 * true + r["tolerance"], rel=1e-12)


# ------------------------------------------------------------------ rounding analysis
def longdouble_forward(net, x):
    """The network in 80-bit extended precision (about 3 more decimal digits than float64),
    splines by their exact pieces (no snapping): the reference for forward_error_bound."""
    y = np.asarray(x, dtype=np.longdouble)
    for layer in net.layers:
        if layer.kind == "dense":
            y = y @ layer.params["weight"].astype(np.longdouble).T
            if "bias" in layer.params:
                y = y + layer.params["bias"].astype(np.longdouble)
        elif isinstance(layer, ReLU):
            y = np.maximum(y, 0)
        elif isinstance(layer, (LeakyReLU, PReLU)):
            a = layer.params["slope"] if isinstance(layer, PReLU) else layer.slope
            y = np.where(y >= 0, y, np.asarray(a, dtype=np.longdouble) * y)
        elif isinstance(layer, SplineActivation):
            s = layer.spline
            c = s.coefficients.astype(np.longdouble)
            u = (y - np.longdouble(s.x_min)) / np.longdouble(s.step)
            k = np.clip(np.floor(u), 0, s.size - 2).astype(int)
            rows = np.arange(c.shape[0])
            y = c[rows, k] + (u - k) * (c[rows, k + 1] - c[rows, k])
        elif not isinstance(layer, Identity):
            raise TypeError(layer)
    return y


@pytest.mark.parametrize("activation", ["spline", "relu", "leaky_relu", "prelu"])
def test_forward_error_bound_holds_and_is_tight_enough(activation):
    if np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:
        pytest.skip("no extended precision on this platform")
    net = random_net([3, 12, 10, 2], activation, seed=1, size=11)
    x = np.random.default_rng(0).uniform(-3, 3, (4000, 3))
    f, bound = forward_error_bound(net, x)
    assert np.array_equal(f, net.forward(x))
    error = np.abs(f - longdouble_forward(net, x)).astype(np.float64)
    assert np.all(error <= bound)
    scale = np.abs(f).max()
    assert bound.max() <= 1e-12 * max(scale, 1.0)          # a useful margin, not a huge one


def test_certified_ratio():
    net = Network([Dense([[3.0, -1.0]], [0.5]), Identity()])      # f(x) = 3 x1 - x2 + 0.5
    w = certified_ratio(net, [0.1, 0.2], [0.4, 0.2], 1.0)
    assert w.ratio == pytest.approx(3.0, rel=1e-14) and 0 < w.margin < 1e-13
    with pytest.raises(ValueError, match="distinct"):
        certified_ratio(net, [0.1, 0.2], [0.1, 0.2], 1.0)
    # a spline snapped onto its knot from just below: the bound covers the snap
    spline = LinearSpline([[0.0, 1.0, -1.0, 2.0]], -1.0, 1.0)
    knot_net = Network([Dense([[1.0]]), SplineActivation(spline)])
    x = np.array([[np.nextafter(0.0, -1.0)]])
    f, bound = forward_error_bound(knot_net, x)
    assert abs(f[0, 0] - 1.0) <= bound[0, 0]


# ------------------------------------------------------------------ bad input and the CLI
@pytest.mark.parametrize("claim", [-1.0, float("nan"), float("inf"), "abc", None])
def test_bad_claim_is_a_value_error(relu_net, claim):
    with pytest.raises(ValueError, match="claim: expected a finite number >= 0"):
        check_claim(relu_net, claim, 2)


def test_command_exit_codes_and_json(tmp_path, capsys, relu_net):
    path = tmp_path / "m.npz"
    save_model(relu_net, path)
    low = lipschitz.lower(relu_net, 2)["value"]
    top = lipschitz.theorem1(relu_net, 2)
    assert main(["lipschitz", str(path), "--claim", str(0.5 * low)]) == 1
    out = capsys.readouterr().out
    assert "UNSOUND" in out and "x' =" in out and "rounding margin" in out
    assert main(["lipschitz", str(path), "--claim", str(2 * top), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "sound" and report["decided_by"]["method"] == "eclipse_fast"
    assert {"value", "method", "certificate", "domain"} <= set(report["decided_by"])
    assert main(["lipschitz", str(path), "--claim", str(0.5 * low), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    w = report["witness"]
    assert report["verdict"] == "unsound" and {"x", "x_pair", "ratio"} <= set(w)
    assert pair_ratio(relu_net, w["x"], w["x_pair"], 2) == w["ratio"] > 0.5 * low
    mid = (low + lipschitz.layerwise(relu_net, 2)) / 2
    assert main(["lipschitz", str(path), "--claim", str(mid), "--methods",
                 "lower,layerwise"]) == 3
    out = capsys.readouterr().out
    assert "UNDECIDED" in out and "remaining interval" in out
    for bad in ("-1", "nan", "inf", "abc"):
        assert main(["lipschitz", str(path), "--claim", bad]) == 2
        err = capsys.readouterr().err
        assert "--claim" in err and "expected a finite number >= 0" in err


def test_a_contradiction_between_methods_is_an_error(relu_net, monkeypatch, tmp_path, capsys):
    """A certified lower bound above a certified upper one means a wrong method: no verdict."""
    low = lipschitz.lower(relu_net, 2)["value"]
    broken = {**ladder.RUNNERS,
              "layerwise": lambda net, p, box, options: {"value": 0.5 * low}}
    monkeypatch.setattr(ladder, "RUNNERS", broken)
    with pytest.raises(RuntimeError, match="exceeds the certified upper bound.*layerwise"):
        check_claim(relu_net, 0.4 * low, 2, methods="lower,layerwise")
    path = tmp_path / "m.npz"
    save_model(relu_net, path)
    assert main(["lipschitz", str(path), "--claim", str(0.4 * low), "--methods",
                 "lower,layerwise"]) == 2
    assert "a method is wrong" in capsys.readouterr().err


def test_lipsdp_margin_is_its_proven_rounding_bound(monkeypatch):
    """An ill-conditioned LipSDP certificate (multipliers just above where R turns singular):
    a claim above value + 1e-9 relative (the old assumed margin) but below value + the proven
    bound is undecided, not sound; above value + bound it is sound, and flagged."""
    from reference.lipschitz import _lipsdp as lipsdp_mod
    net = random_net([3, 6, 2], "relu", seed=0)
    data, errors = lipsdp_mod.lipsdp_data(net), lipsdp_mod.data_rounding(net)
    s_star = np.linalg.norm(data.out_mat[:, 3:], 2) ** 2 / 2
    lam = np.full(6, s_star * (1 + 3e-7))
    rho, r_max = lipsdp_mod.certified_rho(data, lam)
    rounding = lipsdp_mod.rounding_bound(data, errors, lam, rho, r_max)
    value = float(np.sqrt(rho))
    result = {"value": value, "status": "optimal", "certificate": "constructed multipliers",
              **lipsdp_mod.rounding_fields(rounding, value)}
    assert 1e-9 * value < rounding.bound < np.inf and result["rounding_useless"]
    monkeypatch.setattr(ladder, "RUNNERS", {**ladder.RUNNERS,
                                            "lipsdp_neuron": lambda *a: dict(result)})
    v = check_claim(net, value + 0.5 * rounding.bound, 2, box=1.0, methods="lipsdp_neuron")
    assert value * (1 + 1e-9) < v.claim and v.verdict == "undecided"
    v = check_claim(net, value + 2 * rounding.bound, 2, box=1.0, methods="lipsdp_neuron")
    assert v.verdict == "sound" and "USELESS" in v.decided_by.certificate


def test_exact_margin_follows_the_stated_kind_not_the_keys():
    """upper_margin reads upper_margin_kind: the same result with another stated kind gets
    another margin, whatever other keys it carries."""
    net = random_net([2, 4, 1], "relu", seed=0)
    base = {"kind": "bracket", "upper_bound": 2.0, "tolerance": 1e-5, "rounding_bound": 1e-12,
            "box_value": 1.5}
    value, margin, what = verdict.upper_margin(net, "exact",
                                               {**base, "upper_margin_kind": "tolerance"}, 2.0)
    assert (value, margin, what) == (2.0 - 1e-5, 1e-5, "HiGHS's tolerance")
    value, margin, _ = verdict.upper_margin(net, "exact",
                                            {**base, "upper_margin_kind": "rounding_bound"}, 2.0)
    assert (value, margin) == (2.0 - 1e-12, 1e-12)
    value, margin, _ = verdict.upper_margin(net, "exact",
                                            {**base, "upper_margin_kind": "jacobian_rounding"},
                                            2.0)
    assert value == 1.5 and margin == exact.jacobian_rounding(net, 2.0)
    value, margin, what = verdict.upper_margin(net, "exact",
                                               {**base, "upper_margin_kind": "closed_form"}, 2.0)
    assert value == 2.0 and 0 < margin < 1e-12 and "gamma" in what


def test_an_unknown_upper_margin_kind_is_refused():
    """A kind outside exact.UPPER_MARGIN_KINDS gets no silent margin."""
    net = random_net([2, 4, 1], "relu", seed=0)
    with pytest.raises(ValueError, match="upper_margin_kind.*'milp'"):
        verdict.upper_margin(net, "exact", {"kind": "bracket", "upper_bound": 2.0,
                                            "upper_margin_kind": "milp"}, 2.0)


def test_a_thin_region_left_undecided_leaves_the_claim_undecided(monkeypatch):
    """Issue 21 item 1: two ReLU kinks 1e-16 apart, f = 1e6 (relu(x1) - relu(x1 - 1e-16)):
    the strip is thinner than floating point resolves, so regions_2d hands it to exact
    rational arithmetic; when that cannot finish (made to time out here), the strip's bound
    stays in the upper end: the claim 1 is undecided, not sound ('exact = 0' said SOUND)."""
    from reference.lipschitz import _rational as rational
    net = Network([Dense(np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([0.0, -1e-16])), ReLU(),
                   Dense(np.array([[1e6, -1e6]]), np.zeros(1))])
    assert check_claim(net, 1.0, 2, methods="exact").verdict == "unsound"   # decided exactly

    def timeout(*args, **kwargs):
        raise TimeoutError("time limit")
    monkeypatch.setattr(rational, "regions", timeout)
    r = ladder.run_method("exact", net, 2, box=1.0)
    assert r["value"] is None and r["status"] == "not_certified" and r["upper_bound"] >= 1e6
    v = check_claim(net, 1.0, 2, methods="exact")
    assert v.verdict == "undecided" and v.interval[1] >= 1e6
    assert check_claim(net, 3e6, 2, methods="exact").verdict == "sound"     # above the bound


def test_upper_margin_of_a_lower_method_is_refused():
    """A lower bound has no upper end: asking its margin names the method (no traceback from
    a missing record field)."""
    net = Network([Dense([[1.0], [-2.0]]), ReLU(), Dense([[1.0, 1.0]])])
    with pytest.raises(ValueError, match="^method: 'lower' has no upper end"):
        verdict.upper_margin(net, "lower", {"kind": "lower", "value": 1.0}, 2.0)
