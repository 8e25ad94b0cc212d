"""The registry of the Lipschitz methods (reference.lipschitz._methods): the built-in records
reproduce the ladder's former constants, every method sits in exactly one verdict stage, a
method registered here (and nowhere else) runs through the ladder, the lipschitz command,
order_violations and check_claim, and a record that would be used wrongly is refused."""
import pytest

from reference.cli import main
from reference.exceptions import TooLarge
from reference.io import save_model
from reference.lipschitz import _bounds as lipschitz
from reference.lipschitz import _ladder as ladder
from reference.lipschitz import _methods as registry
from reference.lipschitz import _verdict as verdict
from reference.lipschitz._methods import Limit, Method
from reference.testing import random_net

DOUBLED_RTOL = 1e-3          # the test method's own margin, far from the closed forms' 16 gamma_n


def _doubled(net, p, box, options):
    """Twice the layer-wise bound: an upper bound, refused above its own size limit."""
    cost = sum(layer.n_out for layer in net.layers if not layer.is_activation)
    if cost > options["max_doubled_cost"]:
        raise TooLarge("the doubled bound", cost, options["max_doubled_cost"],
                       "max_doubled_cost")
    return {"value": 2 * lipschitz.layerwise(net, p), "domain": "R^N_0"}


def _doubled_margin(net, result, p):
    return result["value"], result["value"] * DOUBLED_RTOL, "the doubled bound's margin"


DOUBLED = Method("doubled", "upper", _doubled, stage="closed_form", domain="global",
                 upper_margin=_doubled_margin, at_least=("layerwise",),
                 limits=(Limit("max_doubled_cost", 1e6, float,
                               "size guard of the doubled bound (neurons)"),))


@pytest.fixture
def doubled():
    """The test method, registered for one test."""
    registry.register(DOUBLED)
    try:
        yield DOUBLED
    finally:
        registry.unregister("doubled")


@pytest.fixture(scope="module")
def net():
    return random_net([2, 6, 5, 1], "relu", seed=4)


def _stage_count(name):
    return sum(name in stage for stage in (verdict.CLOSED, verdict.LOWER, verdict.ECLIPSE,
                                           verdict.LIPSDP, verdict.EXACT))


# ------------------------------------------------------------------ the built-in records
def test_the_builtin_records_give_the_former_constants():
    """The views equal what _ladder and _verdict spelt out by hand before the registry."""
    assert ladder.METHODS == ("lower", "exact", "lipsdp_neuron", "lipsdp_layer", "eclipse",
                              "eclipse_fast", "layerwise", "theorem1", "theorem1_bv2")
    assert list(ladder.LIMITS) == ["time_limit", "max_binaries", "max_pieces", "max_regions",
                                   "max_sdp_cost", "max_lower_cost"]
    assert dict(ladder.KINDS) == {"lower": "lower", "exact": "bracket",
                                  "lipsdp_neuron": "upper", "lipsdp_layer": "upper",
                                  "eclipse": "upper", "eclipse_fast": "upper",
                                  "layerwise": "upper", "theorem1": "upper",
                                  "theorem1_bv2": "upper"}
    assert set(registry.ordering_pairs()) == {
        ("lower", "exact"), ("exact", "layerwise"), ("lower", "layerwise"),
        ("layerwise", "theorem1"), ("theorem1", "theorem1_bv2"), ("lower", "lipsdp_neuron"),
        ("exact", "lipsdp_neuron"), ("lipsdp_neuron", "lipsdp_layer"),
        ("lower", "lipsdp_layer"), ("lipsdp_neuron", "eclipse"), ("lower", "eclipse"),
        ("exact", "eclipse"), ("lipsdp_neuron", "eclipse_fast"), ("lower", "eclipse_fast"),
        ("exact", "eclipse_fast"), ("eclipse_fast", "layerwise")}
    assert (verdict.CLOSED, verdict.LOWER, verdict.ECLIPSE, verdict.LIPSDP, verdict.EXACT) == (
        ("theorem1_bv2", "theorem1", "layerwise", "eclipse_fast"), ("lower",), ("eclipse",),
        ("lipsdp_neuron", "lipsdp_layer"), ("exact",))
    assert verdict.GLOBAL == ("theorem1_bv2", "theorem1", "layerwise", "eclipse_fast",
                              "eclipse", "lipsdp_neuron", "lipsdp_layer")


def test_every_registered_method_is_in_exactly_one_verdict_stage(doubled):
    """check_claim iterates the stages only: a method in none would never be run, one in two
    would run twice."""
    assert "doubled" in ladder.METHODS
    for name in ladder.METHODS:
        assert _stage_count(name) == 1, name
    for n_inputs in (1, 2, 3):
        tried = [m for stage in verdict.stages(n_inputs) for m in stage]
        assert sorted(tried) == sorted(ladder.METHODS)


def test_every_method_with_an_upper_end_has_its_margin():
    for record in registry.methods():
        assert (record.upper_margin is None) == (record.kind == "lower"), record.name


# ------------------------------------------------------------- a method registered here
def test_a_registered_method_runs_through_the_ladder(doubled, net):
    results = ladder.ladder(net, 2)
    assert list(results) == list(ladder.METHODS) and list(results)[-1] == "doubled"
    r = results["doubled"]
    assert r["kind"] == "upper" and r["value"] == 2 * lipschitz.layerwise(net, 2)
    assert not ladder.order_violations(results)
    refused = ladder.run_method("doubled", net, 2, max_doubled_cost=1)
    assert refused["value"] is None and "max_doubled_cost" in refused["reason"]


def test_its_limit_and_row_show_in_the_lipschitz_command(doubled, net, tmp_path, capsys):
    """The flag comes from the record (default, type, help), the row from the ladder."""
    path = tmp_path / "m.npz"
    save_model(net, path)
    assert main(["lipschitz", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--max-doubled-cost MAX_DOUBLED_COST size guard of the doubled bound (neurons)" \
        in help_text
    assert "comma-separated subset of lower,exact" in help_text and ",doubled" in help_text
    assert main(["lipschitz", str(path), "--methods", "layerwise,doubled"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert float(rows["doubled"][1]) == pytest.approx(2 * float(rows["layerwise"][1]),
                                                     rel=1e-5)
    assert main(["lipschitz", str(path), "--methods", "doubled", "--max-doubled-cost", "1"]) == 0
    row = capsys.readouterr().out.splitlines()[2]
    assert row.split()[:2] == ["doubled", "n/a"]
    assert "the doubled bound 12 is over the size guard max_doubled_cost=1" in row
    assert main(["lipschitz", str(path), "--methods", "doubled", "--max-doubled-cost", "0"]) == 2
    assert "--max-doubled-cost" in capsys.readouterr().err


def test_order_violations_checks_its_relations(doubled, net):
    """at_least=("layerwise",): doubled below layerwise is a violation, named."""
    results = ladder.ladder(net, 2, methods="layerwise,doubled")
    assert ladder.order_violations(results) == []
    low = 0.5 * results["layerwise"]["value"]
    results["doubled"]["value"] = low
    assert ladder.order_violations(results) == [
        ("layerwise", "doubled", results["layerwise"]["value"], low)]


def test_check_claim_uses_it_with_its_own_margin(doubled, net):
    """Sound only above value + the record's margin (1e-3 relative, not 16 gamma_n): a
    claim between the two is undecided."""
    value = 2 * lipschitz.layerwise(net, 2)
    v = verdict.check_claim(net, value * (1 + 0.5 * DOUBLED_RTOL), 2, methods="doubled")
    assert v.verdict == "undecided" and v.results["doubled"]["value"] == value
    assert v.interval[1] == value + value * DOUBLED_RTOL
    v = verdict.check_claim(net, value * (1 + 2 * DOUBLED_RTOL), 2, methods="doubled")
    assert v.verdict == "sound" and v.decided_by.method == "doubled"
    assert v.decided_by.margin == value * DOUBLED_RTOL
    assert "the doubled bound's margin" in v.decided_by.certificate
    # after layerwise in its stage, and never below it: not run once layerwise gave a bound
    v = verdict.check_claim(net, 0.0, 2, methods="layerwise,doubled")
    assert v.not_run["doubled"] == "layerwise gave a bound (doubled is never below it)"


def test_a_method_for_some_p_only(net):
    """Outside its p_values the ladder gives value None with its p_reason and check_claim
    does not run it."""
    record = Method("l1_only", "upper", lambda net, p, box, options: {"value": 1e9},
                    stage="closed_form", domain="global", upper_margin=_doubled_margin,
                    p_values=(1.0,), p_reason="this bound is for p = 1 only")
    registry.register(record)
    try:
        r = ladder.run_method("l1_only", net, 2)
        assert r["value"] is None and r["reason"] == "this bound is for p = 1 only"
        assert ladder.run_method("l1_only", net, 1)["value"] == 1e9
        v = verdict.check_claim(net, 1.0, 2, methods="l1_only")
        assert v.not_run == {"l1_only": "this bound is for p = 1 only"} and not v.results
    finally:
        registry.unregister("l1_only")


# ----------------------------------------------------------------- records that are refused
def _runner(net, p, box, options):
    return {"value": 1.0}


def test_an_upper_method_without_upper_margin_is_refused():
    """No silent default margin: an upper (or exact, or bracket) method must say its own."""
    for kind in ("upper", "exact", "bracket"):
        with pytest.raises(ValueError, match=f"'nomargin'.*upper_margin: required for a "
                                             f"method of kind '{kind}'"):
            registry.register(Method("nomargin", kind, _runner, stage="closed_form",
                                      domain="global"))
    assert "nomargin" not in ladder.METHODS


@pytest.mark.parametrize("fields, match", [
    ({"name": "layerwise"}, "'layerwise': already registered"),
    ({"stage": "later"}, "stage: expected one of"),
    ({"domain": "R"}, "domain: expected one of"),
    ({"kind": "sharp"}, "kind: expected one of"),
    ({"at_least": ("nonexistent",)}, r"at_least: expected registered methods.*nonexistent"),
    ({"p_values": (3.0,)}, "p_values: expected"),
    ({"p_values": (2.0,)}, "p_reason: required"),
    ({"limits": (Limit("time_limit", 1.0, float, "another help"),)},
     "limit 'time_limit': another record"),
    ({"kind": "lower"}, "a lower method has no upper end"),
])
def test_an_inconsistent_record_is_refused(fields, match):
    record = {"name": "bad", "kind": "upper", "runner": _runner, "stage": "closed_form",
              "domain": "global", "upper_margin": _doubled_margin}
    with pytest.raises(ValueError, match=match):
        registry.register(Method(**{**record, **fields}))
    assert "bad" not in ladder.METHODS


def test_a_method_others_rely_on_cannot_be_unregistered():
    with pytest.raises(ValueError, match="'layerwise': named in the ordering relations"):
        registry.unregister("layerwise")
    assert "layerwise" in ladder.METHODS
