"""Typed results (issue 16): `Result` (reference._result) behaves as the dict it replaces, with
attribute access; `BoundResult`, `LadderResult` (reference.lipschitz) and `SolveCertificate`
(reference.convex) are what the methods return, with exactly the keys their docstrings list.

The key list of each type is its docstring's Attributes section (one place): every entry
``name : type`` is followed by a description opening with the methods that give the key in
brackets, e.g. ``[lipsdp, ladder]``.  A method returning a key its entry does not mark (or
an undocumented one) fails `test_*_keys`; a key documented for a method that none of the
cases here produces fails them too (save the few outcomes listed in UNREACHED with why).
"""
import copy
import inspect
import json
import pickle
import re

import numpy as np
import pytest

from reference._result import Result
from reference.convex import SolveCertificate, solve_layer, solve_path
from reference.exceptions import SolveNotCertified
from reference.io._files import dumps_json
from reference.lipschitz import (
    BoundResult,
    LadderResult,
    exact_1d,
    exact_1d_on_box,
    exact_milp,
    ladder,
    lipsdp,
    lower,
    regions_2d,
)
from reference.lipschitz import _ladder as ladder_mod
from reference.lipschitz import _lipsdp as lipsdp_mod
from reference.nn import Dense, Identity, Network, build_mlp
from reference.testing import single_neuron  # the tests' shared 1-D problem

ENTRY = re.compile(r"^(\w+) : (.+)$")
TAGS = re.compile(r"^\s+\[([\w, ]+)\]")
BOUND_FAMILIES = {"lower", "exact_1d", "exact_1d_on_box", "regions_2d", "exact_milp", "lipsdp",
                  "ladder"}
SOLVE_FAMILIES = {"full", "active"}
# documented keys no case below produces, and why (the rest must all be seen)
UNREACHED = {
    ("ladder", "box_reason"): "exact_1d_on_box stopped although exact_1d over R finished",
    ("ladder", "box_upper_bound"): "the same outcome",
    ("full", "method_note"): "a gap from a retry with changed solver settings",
    ("active", "method_note"): "the same",
    ("full", "rejected"): "an inaccurate solver point (NumPy disagrees with the solver)",
    ("active", "rejected"): "the same, or an active set that stalls",
    ("full", "refined"): "a first pass not certified, certified by the refined one",
    ("active", "refined"): "the same",
}


def documented(cls) -> dict:
    """{key: set of method names} from the Attributes section of cls's docstring."""
    lines = inspect.cleandoc(cls.__doc__).splitlines()
    start = lines.index("Attributes") + 2
    assert set(lines[start - 1]) == {"-"}
    keys, name = {}, None
    for line in lines[start:]:
        if line and not line[0].isspace():
            entry = ENTRY.match(line)
            if entry is None:                           # the next section
                break
            name = entry.group(1)
            assert name not in keys, f"{cls.__name__}: {name} documented twice"
            keys[name] = None
        elif name is not None and keys[name] is None:
            tags = TAGS.match(line)
            assert tags, f"{cls.__name__}.{name}: description must open with [methods]"
            keys[name] = {t.strip() for t in tags.group(1).split(",")}
    assert keys and all(v for v in keys.values()), cls.__name__
    return keys


def keys_of(cls, family: str) -> set:
    return {k for k, tags in documented(cls).items() if family in tags}


def check_family(cls, family: str, results: list) -> None:
    """Each result is a cls with only keys marked `family`; together they show all of them
    (but the UNREACHED ones)."""
    allowed = keys_of(cls, family)
    seen = set()
    for result in results:
        assert type(result) is cls, (family, type(result))
        extra = set(result) - allowed
        assert not extra, f"{family} returns keys not documented for it in {cls.__name__}: " \
                          f"{sorted(extra)}"
        seen |= set(result)
    unreached = {k for f, k in UNREACHED if f == family}
    assert not unreached & seen, f"UNREACHED is stale for {family}: {unreached & seen}"
    missing = allowed - seen - unreached
    assert not missing, f"{cls.__name__} documents {sorted(missing)} for {family}; no case " \
                        "returned them"


# ------------------------------------------------------------------ the dict behaviour
def sample() -> list:
    nested = {"x": [1.0, 2.5], "source": "chord"}
    return [Result(value=1.5, status="optimal"),
            BoundResult(value=None, reason="stopped", witness_pair=nested, attempts=["a"]),
            SolveCertificate(status="optimal", knots=[3, 4], lower_bound=None),
            LadderResult(lower=BoundResult(value=0.5, kind="lower"))]


@pytest.mark.parametrize("result", sample(), ids=lambda r: type(r).__name__)
def test_attribute_access_is_item_access(result):
    for key in result:
        assert getattr(result, key) is result[key]
    result.added = 7.0
    assert result["added"] == 7.0 and list(result)[-1] == "added"
    del result.added
    assert "added" not in result
    assert set(result) <= set(dir(result))
    assert repr(result).startswith(type(result).__name__ + "({")


@pytest.mark.parametrize("result", sample(), ids=lambda r: type(r).__name__)
def test_json_and_pickle_as_the_dict(result):
    plain = json.loads(json.dumps(result))
    assert json.dumps(result) == json.dumps(dict(result))
    assert json.dumps(result, indent=2, sort_keys=True) == \
        json.dumps(dict(result), indent=2, sort_keys=True)
    assert dumps_json(result) == dumps_json(dict(result))
    assert plain == result and type(plain) is dict
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(result, protocol))
        assert type(back) is type(result) and back == result
    for clone in (copy.copy(result), copy.deepcopy(result), result.copy()):
        assert type(clone) is type(result) and clone == result and clone is not result
    assert type(dict(result)) is dict and type({**result}) is dict


def test_unknown_attribute_names_the_key_and_the_keys():
    result = BoundResult(value=2.0, kind="upper")
    with pytest.raises(AttributeError, match=r"BoundResult has no key 'valeu'; its keys: "
                                             r"value, kind"):
        result.valeu
    with pytest.raises(AttributeError, match="no key 'reason'"):
        del result.reason
    assert not hasattr(result, "reason") and getattr(result, "reason", None) is None
    with pytest.raises(KeyError):
        result["valeu"]


def test_documented_keys_are_parsed_with_known_methods():
    for cls, families in ((BoundResult, BOUND_FAMILIES), (SolveCertificate, SOLVE_FAMILIES),
                          (LadderResult, {"ladder"})):
        keys = documented(cls)
        unknown = {t for tags in keys.values() for t in tags} - families
        assert not unknown, (cls.__name__, unknown)
        clash = set(keys) & set(dir(dict))           # would be shadowed by a dict method
        assert not clash, (cls.__name__, clash)
    assert set(documented(LadderResult)) == set(ladder_mod.METHODS)


# ------------------------------------------------------------------ the Lipschitz methods
def spline_net(widths, seed=0):
    return build_mlp(widths, "spline", rng=seed, spline_init="even_odd", size=9, range_=2.0)


@pytest.fixture(scope="module")
def nets():
    return {1: spline_net([1, 4, 3, 1]), 2: spline_net([2, 4, 3, 2]), 3: spline_net([3, 4, 2])}


def test_lower_and_exact_1d_keys(nets):
    net = nets[1]
    check_family(BoundResult, "lower", [lower(net, 2), lower(net, "inf", box=3.0)])
    done, stopped = exact_1d(net, 2), exact_1d(net, 2, max_pieces=2)
    assert done.status == "optimal" and stopped.status == "max_pieces"
    check_family(BoundResult, "exact_1d", [done, stopped])
    box, box_stopped = exact_1d_on_box(net, 2, 1.0), exact_1d_on_box(net, 2, 1.0, max_pieces=2)
    assert box.box_value is not None and box_stopped.box_value is None
    check_family(BoundResult, "exact_1d_on_box", [box, box_stopped])


def test_regions_2d_and_milp_keys(nets):
    done, stopped = regions_2d(nets[2], 2), regions_2d(nets[2], 1, max_regions=3)
    assert done.certified_exact and stopped.status == "max_regions"
    check_family(BoundResult, "regions_2d", [done, stopped])
    done, stopped = exact_milp(nets[3], 1), exact_milp(nets[3], np.inf, time_limit=1e-9)
    assert done.certified_exact and stopped.status == "time_limit"
    check_family(BoundResult, "exact_milp", [done, stopped])


def test_lipsdp_keys(nets):
    affine = Network([Dense(np.array([[1.0, -2.0]]), np.zeros(1)), Identity()])
    results = [lipsdp(nets[2]), lipsdp(nets[2], "layer"), lipsdp(affine),
               lipsdp_mod.lipsdp_neuron(nets[3]), lipsdp_mod.lipsdp_layer(nets[3])]
    assert results[2].solver == "none (affine network)"
    check_family(BoundResult, "lipsdp", results)


def test_ladder_keys(nets):
    rungs, ladders = [], []
    for n_in, p in ((1, 2), (2, 1), (3, 1), (3, 2)):
        result = ladder(nets[n_in], p)
        assert type(result) is LadderResult and list(result) == list(ladder_mod.METHODS)
        ladders.append(result)
        rungs += list(result.values())
    stopped = ladder(nets[2], 2, methods="exact,lipsdp_layer", max_regions=3)
    assert list(stopped) == ["exact", "lipsdp_layer"] and stopped.exact.value is None
    rungs += list(stopped.values()) + [ladder_mod.run_method("theorem1", nets[1], 1)]
    check_family(BoundResult, "ladder", rungs)
    check_family(LadderResult, "ladder", ladders + [stopped])
    first = ladders[0]
    assert first.exact.value == first["exact"]["value"] and first.exact.kind == "exact"
    text = dumps_json(first)
    assert text == dumps_json({k: dict(v) for k, v in first.items()})


# ------------------------------------------------------------------ the coefficient solve
@pytest.mark.parametrize("method,grids", [("full", ("data", "uniform")), ("active", ("data",))])
def test_solve_certificate_keys(method, grids):
    net, x, y = single_neuron(m=60)
    results = []
    for grid in grids:
        for reg, lip_max in (("tv2", None), ("bv2", None), ("tv2", 0.5)):
            new, cert = solve_layer(net, 1, x, y, lam=1e-2, reg=reg, grid=grid, size=21,
                                    method=method, lip_max=lip_max)
            assert cert.status == "optimal" and cert.method == method
            results.append(cert)
        with pytest.raises(SolveNotCertified) as stopped:
            solve_layer(net, 1, x, y, lam=1e-2, grid=grid, size=21, method=method,
                        time_limit=1e-6)
        assert stopped.value.certificate.status == "time_limit"
        results.append(stopped.value.certificate)
    path = solve_path(net, 1, x, y, [1e-2, 1e-1], method=method, grid=grids[-1], size=21)
    results += [cert for _, _, cert in path]
    labels = (np.ravel(y) > np.median(y)).astype(float)      # logistic: Newton's refinement
    _, cert = solve_layer(net, 1, x, labels, loss="logistic", lam=1e-1, method=method)
    assert cert.status == "optimal" and "newton" in cert
    results.append(cert)
    check_family(SolveCertificate, method, results)
    assert results[0].objective == results[0]["objective"]
    assert dumps_json(results[0]) == dumps_json(dict(results[0]))
