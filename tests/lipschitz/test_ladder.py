import json

import numpy as np
import pytest

from reference.cli import main
from reference.io._model_file import save_model
from reference.lipschitz import _ladder as ladder
from reference.testing import random_net


def test_ladder_orders_and_reasons():
    net = random_net([2, 5, 4, 2], "spline", seed=1)
    r2 = ladder.ladder(net, 2, box=2.0)
    assert list(r2) == list(ladder.METHODS)
    assert r2["exact"]["certified_exact"] and r2["exact"]["method"].startswith("linear regions")
    assert r2["lipsdp_neuron"]["value"] is not None
    assert not ladder.order_violations(r2)
    three = ladder.ladder(random_net([3, 4, 2], "spline", seed=1), 2, methods="exact")
    assert three["exact"]["value"] is None and "1 or 2 inputs" in three["exact"]["reason"]
    rinf = ladder.ladder(net, "inf", box=2.0)
    assert rinf["lipsdp_layer"]["value"] is None and "p = 2" in rinf["lipsdp_layer"]["reason"]
    assert rinf["exact"]["certified_exact"]
    assert ladder.best_lower(rinf) == rinf["exact"]["value"] >= rinf["lower"]["value"]
    guarded = ladder.ladder(net, 1, box=2.0, methods="exact", max_regions=3)
    assert guarded["exact"]["value"] is None and "max_regions" in guarded["exact"]["reason"]
    assert "certified bracket" in guarded["exact"]["reason"]
    net3 = random_net([3, 5, 4, 2], "spline", seed=1)                  # the MILP
    guarded = ladder.ladder(net3, 1, box=2.0, methods="exact", max_binaries=3)
    assert guarded["exact"]["value"] is None and "max_binaries" in guarded["exact"]["reason"]
    fake = {"lower": {"value": 2.0}, "layerwise": {"value": 1.0}}
    assert ladder.order_violations(fake) == [("lower", "layerwise", 2.0, 1.0)]


def test_ladder_bad_input():
    net = random_net([2, 3, 1], "relu", seed=0)
    with pytest.raises(ValueError, match="methods"):
        ladder.ladder(net, 2, methods="lower,exactish")
    with pytest.raises(ValueError, match="p: expected"):
        ladder.ladder(net, 0.5)
    with pytest.raises(ValueError, match="box"):
        ladder.ladder(net, 2, box=0)
    with pytest.raises(ValueError, match="solver"):
        ladder.ladder(net, 2, methods="lipsdp_neuron", solver="NOPE")
    net.layers[0].params["weight"][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        ladder.ladder(net, 2)


def test_lipschitz_command_json_and_table(tmp_path, capsys):
    path = tmp_path / "m.npz"
    save_model(random_net([1, 6, 5, 1], "spline", seed=0), path)
    assert main(["lipschitz", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == set(ladder.METHODS)
    assert all("value" in r and "seconds" in r for r in out.values())
    assert out["exact"]["pieces"] > 1 and out["exact"]["certified_exact"]
    assert out["lower"]["value"] <= out["exact"]["value"] <= out["layerwise"]["value"]
    assert main(["lipschitz", str(path), "--p", "inf", "--methods", "lower,exact,theorem1"]) == 0
    table = capsys.readouterr().out
    assert "p = inf" in table and "breakpoint propagation" in table and "theorem1" in table
    assert "lipsdp" not in table
    assert main(["lipschitz", str(path), "--p", "3"]) == 2
    assert "p: expected" in capsys.readouterr().err
    assert main(["lipschitz", str(path), "--methods", "upper"]) == 2
    assert "methods" in capsys.readouterr().err


def test_order_uses_the_stated_accuracies():
    """lipsdp_neuron <= lipsdp_layer holds between the SDP optima; the certified neuron value
    may sit above its optimum by its `accuracy` (bug: 3.5e-5 above layer on a degenerate
    network, now absorbed; CVXOPT's certification loses up to ~1.5e-6 on others).  The MILP's
    value is its witness; a sampled lower bound above it but below HiGHS's bound + tolerance
    is no violation (the witness may be a pattern within tolerance of the optimum)."""
    sdp = {"lipsdp_neuron": {"value": 1.000002, "accuracy": 3e-6},
           "lipsdp_layer": {"value": 1.0}}
    assert ladder.order_violations(sdp) == []
    sdp["lipsdp_neuron"]["accuracy"] = 0.0
    assert ladder.order_violations(sdp) == [("lipsdp_neuron", "lipsdp_layer", 1.000002, 1.0)]
    milp = {"lower": {"value": 1.000004},
            "exact": {"value": 1.0, "lower_bound": 1.0, "upper_bound": 1.00001},
            "layerwise": {"value": 1.00002}}
    assert ladder.order_violations(milp) == []
    milp["layerwise"]["value"] = 0.99
    assert ladder.order_violations(milp) == [("exact", "layerwise", 1.0, 0.99),
                                             ("lower", "layerwise", 1.000004, 0.99)]


# ------------------------------------------------------- typed kinds, lower's budget, errors
def test_every_result_says_what_its_numbers_are():
    """kind: set once per method (ladder.KINDS), "exact" only for a certified exact value;
    exact results say what their upper end is (upper_margin_kind)."""
    from reference.lipschitz._exact import UPPER_MARGIN_KINDS
    net = random_net([2, 5, 4, 2], "relu", seed=1)
    results = ladder.ladder(net, 2, box=2.0)
    for name, r in results.items():
        expected = "exact" if name == "exact" else ladder.KINDS[name]
        assert r["kind"] == expected, name
    assert results["exact"]["upper_margin_kind"] == "rounding_bound"
    stopped = ladder.run_method("exact", net, 2, box=2.0, max_regions=2)
    assert stopped["kind"] == "bracket" and stopped["upper_margin_kind"] == "closed_form"
    one = ladder.run_method("exact", random_net([1, 4, 1], "relu", seed=0), 2)
    assert one["kind"] == "exact" and one["upper_margin_kind"] == "jacobian_rounding"
    milp = ladder.run_method("exact", random_net([3, 4, 1], "relu", seed=0), "inf")
    assert milp["kind"] == "exact" and milp["upper_margin_kind"] == "tolerance"
    assert {one["upper_margin_kind"], milp["upper_margin_kind"]} <= set(UPPER_MARGIN_KINDS)
    refused = ladder.run_method("exact", random_net([3, 4, 2], "relu", seed=0), 2)
    assert refused["value"] is None and refused["kind"] == "bracket"


def test_lower_budget_is_an_option_with_lowers_defaults():
    import inspect

    from reference.lipschitz import _bounds as lipschitz
    defaults = inspect.signature(lipschitz.lower).parameters
    assert ladder.SEARCH == {"num_points": defaults["num_points"].default,
                             "rounds": defaults["rounds"].default}
    net = random_net([2, 4, 1], "relu", seed=0)
    r = ladder.run_method("lower", net, 2, num_points=7, rounds=0, seed=3)
    direct = lipschitz.lower(net, 2, num_points=7, rounds=0, seed=3)
    assert r["points_evaluated"] == 7 and r["value"] == direct["value"]
    assert ladder.run_method("lower", net, 2)["value"] == lipschitz.lower(net, 2)["value"]
    for bad in ({"num_points": 0}, {"rounds": -1}, {"num_points": 2.5}, {"rounds": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ladder.run_method("lower", net, 2, **bad)


def test_only_a_failed_solve_becomes_a_reason(monkeypatch):
    """SolveFailed (a RuntimeError) -> value None with the message; any other RuntimeError is
    a bug and propagates."""
    from reference.exceptions import MilpNotOptimal, SolveFailed
    assert issubclass(MilpNotOptimal, SolveFailed) and issubclass(SolveFailed, RuntimeError)
    net = random_net([2, 3, 1], "relu", seed=0)

    def failed(net, p, box, options):
        raise SolveFailed("layerwise: the solver gave up")

    def broken(net, p, box, options):
        raise RuntimeError("a bug")
    monkeypatch.setattr(ladder, "RUNNERS", {**ladder.RUNNERS, "layerwise": failed})
    r = ladder.run_method("layerwise", net, 2)
    assert r["value"] is None and r["reason"] == "layerwise: the solver gave up"
    assert r["kind"] == "upper"
    monkeypatch.setattr(ladder, "RUNNERS", {**ladder.RUNNERS, "layerwise": broken})
    with pytest.raises(RuntimeError, match="a bug"):
        ladder.run_method("layerwise", net, 2)


def test_lower_search_defaults_are_module_constants():
    import inspect

    from reference.lipschitz import _bounds as lipschitz
    assert ladder.SEARCH == {"num_points": lipschitz.NUM_POINTS, "rounds": lipschitz.ROUNDS}
    assert (lipschitz.NUM_POINTS, lipschitz.ROUNDS) == (2000, 20)
    defaults = inspect.signature(lipschitz.lower).parameters
    assert defaults["num_points"].default is lipschitz.NUM_POINTS
    assert defaults["rounds"].default is lipschitz.ROUNDS


def test_certified_exact_value_below_a_lower_bound_is_a_violation(tmp_path, monkeypatch, capsys):
    """Review (issue 23 follow-up): an exact method that certified its value exact claims
    Lip = value (to its stated tolerance); a sampled lower bound above that is a VIOLATION
    even when it is below the method's wider upper_bound.  Before, order_violations compared
    the lower bound with upper_bound only, and `lipschitz` exited 0."""
    net = random_net([3, 5, 4, 1], "relu", seed=2)
    low = ladder.run_method("lower", net, "inf")["value"]
    wrong = 0.5 * low

    def certified_but_wrong(net, p, box, options):
        return {"value": wrong, "status": "optimal", "certified_exact": True,
                "lower_bound": wrong, "upper_bound": 10 * low, "tolerance": 1e-5 * wrong,
                "upper_margin_kind": "tolerance", "kind": "exact", "binaries": 0, "cuts": 0,
                "method": "MILP (monkeypatched)", "domain": "box"}
    monkeypatch.setattr(ladder, "RUNNERS", {**ladder.RUNNERS,
                                            "exact": certified_but_wrong})
    results = ladder.ladder(net, "inf", methods="lower,exact")
    assert ladder.order_violations(results) == [("lower", "exact", low, wrong * (1 + 1e-5))]
    path = save_model(net, tmp_path / "m.npz")
    assert main(["lipschitz", str(path), "--p", "inf", "--methods", "lower,exact"]) == 1
    assert "VIOLATION: lower" in capsys.readouterr().out
    # within the stated tolerance of the value: no violation; the bracket of a result that
    # is not certified exact is still what counts
    assert not ladder.order_violations({"lower": {"value": wrong * (1 + 0.5e-5)},
                                        "exact": results["exact"]})
    bracket = dict(results["exact"], certified_exact=False, kind="bracket")
    assert not ladder.order_violations({"lower": {"value": low}, "exact": bracket})


def test_lipsdp_accuracy_slack_is_relative_to_the_optimum():
    """accuracy a bounds value - optimum by a value, so the neuron value may be up to
    optimum / (1 - a): a slack of a / (1 - a) on neuron <= layer, inf from a = 1 on."""
    layer = {"value": 1.0}
    for a, neuron, bad in ((0.5, 1.99, False), (0.5, 2.01, True), (1.0, 1e300, False)):
        results = {"lipsdp_neuron": {"value": neuron, "accuracy": a}, "lipsdp_layer": layer}
        assert bool(ladder.order_violations(results)) is bad, (a, neuron)
