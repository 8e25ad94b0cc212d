"""The same answer and the same verdict on a rescaled problem (issue 23): `evaluate`, `info`,
`lipschitz`, `check` and `conformance` on networks whose inputs, weights, biases and spline
grids are multiplied by powers of 2 and of 10 from 1e-8 to 1e8 (reference.testing.rescale
states the laws).

A correct answer passes at every scale; an all-zero answer, a negated input Jacobian and a
Jacobian off by 1e-6 fail at every scale; the values follow their law (bit for bit for powers
of 2, to 1e-9 relative for powers of 10) and the kink counts do not change."""
import json

import numpy as np
import pytest

from reference.cli import _main as cli
from reference.conformance import _cases as cases
from reference.conformance import _suite as conformance
from reference.io._model_file import save_model
from reference.nn._network import Dense, Network, ReLU, build_mlp
from reference.oracle import _check as oracle
from reference.testing import (
                               OtherSpline,
                               law,
                               lipsdp_brackets_meet,
                               oracle_inputs,
                               oracle_model,
                               random_net,
                               rescale,
                               rescale_case,
)

POWERS_OF_2 = (2.0 ** -26, 2.0 ** -10, 2.0 ** 13, 2.0 ** 26)
POWERS_OF_10 = (1e-8, 1e-3, 1e4, 1e8)
SCALES = POWERS_OF_2 + POWERS_OF_10


def issue_network(s: float) -> Network:
    """2-8-8-8-1 spline network (leaky-ReLU splines, positively homogeneous) whose dense
    layer k has weights x s and biases x s^k (the grids unchanged): outputs ~ s^4."""
    net = build_mlp([2, 8, 8, 8, 1], rng=0)
    k = 0
    for layer in net.layers:
        if isinstance(layer, Dense):
            k += 1
            layer.params["weight"] *= s
            layer.params["bias"] *= s ** k
    return net


def run_check(tmp_path, net, x, answers, *extra):
    save_model(net, tmp_path / "m.npz")
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "a.npz", **answers)
    return cli.main(["check", str(tmp_path / "m.npz"), "--inputs", str(tmp_path / "x.npy"),
                     "--answers", str(tmp_path / "a.npz"), *map(str, extra)])


def test_a_small_network_fails_zero_and_negated_answers(tmp_path, capsys):
    """The issue's case: weights x 1e-3 (outputs ~6e-13).  An all-zero answer and a negated
    input Jacobian passed (max relative error 1, every sample 'on a kink' within 1e-9, and
    atol 1e-9 larger than every output); both fail now, and the right answer passes."""
    net = issue_network(1e-3)
    x = np.random.default_rng(1).uniform(-2, 2, (50, 2))
    ref = oracle.reference_answers(net, x, info=False)
    assert 1e-14 < np.abs(ref["outputs"]).max() < 1e-12
    right = {"outputs": ref["outputs"], "input_jacobian": ref["input_jacobian"]}
    assert run_check(tmp_path, net, x, right) == 0
    out = capsys.readouterr().out
    assert "0 of 50 samples have a pre-activation on a kink" in out
    for wrong in ({"outputs": 0 * ref["outputs"]},
                  {"input_jacobian": 0 * ref["input_jacobian"]},
                  {"input_jacobian": -ref["input_jacobian"]},
                  {"param_gradients/layer0.weight": -ref["param_gradients/layer0.weight"]}):
        assert run_check(tmp_path, net, x, wrong) == 1, wrong.keys()
        out = capsys.readouterr().out
        assert "FAIL" in out and "atol S" in out


def output_magnitude(net, x) -> np.ndarray:
    """|W| |y| + |b| propagated from |x| through |W|, |b| and |sigma_n(0)| + Lip_n |z| (the
    spline layers of issue_network), written out here: the magnitude of the outputs."""
    a = np.abs(x)
    for layer in net.layers:
        if isinstance(layer, Dense):
            a = a @ np.abs(layer.params["weight"]).T + np.abs(layer.params["bias"])
        elif layer.kind == "spline":
            spline = layer.spline
            slopes = np.abs(np.diff(spline.coefficients, axis=1)) / spline.step
            a = np.abs(layer.forward(np.zeros((1, a.shape[1])))[0][0]) + slopes.max(1) * a
    return a


def test_the_report_prints_the_effective_tolerance(tmp_path, capsys):
    """Each row says atol S, S = max(max |ours| over the key, its magnitude), in the table and
    in the JSON (atol S exactly 1e-9 S: the assertion compares with abs=0, since S ~ 1e-12
    here and pytest.approx's default abs=1e-12 would pass anything)."""
    net = issue_network(1e-3)
    x = np.random.default_rng(1).uniform(-2, 2, (5, 2))
    ref = oracle.reference_answers(net, x, info=False)
    assert run_check(tmp_path, net, x, {"outputs": ref["outputs"]}, "--json",
                     tmp_path / "r.json") == 0
    row = json.loads((tmp_path / "r.json").read_text())["rows"][0]
    magnitude = float(output_magnitude(net, x).max())
    assert magnitude > np.abs(ref["outputs"]).max() > 0 and magnitude < 1e-10
    assert row["scale"] == pytest.approx(magnitude, rel=1e-12, abs=0)
    assert row["atol_effective"] == pytest.approx(1e-9 * magnitude, rel=1e-12, abs=0)
    assert row["scale_from"] == "magnitude"
    assert f"{row['atol_effective']:9.2e}" in capsys.readouterr().out


def test_a_zero_reference_falls_back_to_the_magnitude():
    """A key whose reference array is all zero (ReLUs dead for every sample: the gradients
    of the layer before them vanish) is compared with atol times the magnitude of the
    quantity (|W|, |b|, Lip from |x|; S = max(max |ours|, magnitude)), which scales with the
    network, never with 1."""
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (6, 2))
    for s in (1e-8, 1.0, 1e8):
        net = Network([Dense(np.ones((3, 2)) * s, -10 * s * np.ones(3)), ReLU(),
                       Dense(np.ones((1, 3)) * s, np.zeros(1))])
        ref = oracle.reference_answers(net, x, info=False)
        assert not ref["param_gradients/layer0.weight"].any()
        magnitude = s * np.abs(x).sum(axis=0).max()      # sum_m delta |x|, delta = s
        wrong = {"param_gradients/layer0.weight": np.full((3, 2), 1e-6 * magnitude)}
        row = oracle.check(net, x, wrong).rows[0]
        assert not row.passed and row.scale_from == "magnitude"
        assert row.scale == pytest.approx(magnitude, rel=1e-12, abs=0)
        tiny = {"param_gradients/layer0.weight": np.full((3, 2), 1e-12 * magnitude)}
        assert oracle.check(net, x, tiny).passed


# ------------------------------------------------------------------ evaluate and check
def rescaled_answers(net, x, names=None, a=1.0, c=1.0):
    rnet, factors = rescale(net, a, c)
    ref = oracle.reference_answers(rnet, x * a, names=names, layers=True, one_sided=True)
    return rnet, factors, ref


@pytest.mark.parametrize("scale", SCALES)
def test_evaluate_follows_the_scaling_law(scale):
    """Every answer of a spline / PReLU network with inputs on knots, at the grid ends and
    far outside: rescaled inputs (x a), weights and grids (x c per layer) give the answer
    times its law, bit for bit with powers of 2; the same rows are on a kink."""
    rng = np.random.default_rng(0)
    net = oracle_model(rng)
    x = oracle_inputs(net, rng)
    base = oracle.reference_answers(net, x, layers=True, one_sided=True)
    for a, c in ((scale, 1.0), (1.0, scale), (scale, 1 / scale)):
        rnet, factors, ref = rescaled_answers(net, x, a=a, c=c)
        np.testing.assert_array_equal(ref["on_kink"], base["on_kink"])
        for key, value in base.items():
            factor = law(key, factors)
            if factor is None:
                continue
            expected = value * factor
            if scale in POWERS_OF_2 and key != "on_kink":
                np.testing.assert_array_equal(ref[key], expected, err_msg=(key, a, c))
            else:
                np.testing.assert_allclose(ref[key], expected, rtol=1e-9,
                                           atol=1e-9 * np.abs(expected).max(), err_msg=key)


@pytest.mark.parametrize("scale", (2.0 ** -26, 1e-8, 1e8))
def test_the_evaluate_command_follows_the_scaling_law(scale, tmp_path, capsys):
    """`evaluate --layers --one-sided --info` as a user runs it (its own forward pass and
    --knot-tol): the rescaled model's file holds every answer times its law, the same rows
    on a kink, and the same summary line (the kink count included)."""
    rng = np.random.default_rng(0)
    net = oracle_model(rng)
    x = oracle_inputs(net, rng)

    def evaluate(network, inputs):
        save_model(network, tmp_path / "m.npz")
        np.save(tmp_path / "x.npy", inputs)
        assert cli.main(["evaluate", str(tmp_path / "m.npz"), "--inputs",
                         str(tmp_path / "x.npy"), "--output", str(tmp_path / "o.npz"),
                         "--layers", "--one-sided", "--info"]) == 0
        line = capsys.readouterr().out.split(": ", 1)[1]
        return dict(np.load(tmp_path / "o.npz")), line

    base, line = evaluate(net, x)
    assert "rows on a kink" in line and base["on_kink"].any()
    for a, c in ((scale, 1.0), (1.0, scale)):
        rnet, factors = rescale(net, a, c)
        got, rline = evaluate(rnet, x * a)
        assert rline == line and got.keys() == base.keys()
        np.testing.assert_array_equal(got["on_kink"], base["on_kink"])
        lawful = [k for k in base if law(k, factors) is not None]
        assert "outputs" in lawful and "tv2/1" in lawful and "lipschitz_bound_slopes/p2" in lawful
        for key in lawful:
            expected = base[key] * law(key, factors)
            np.testing.assert_allclose(got[key], expected, rtol=1e-9,
                                       atol=1e-9 * np.abs(expected).max(), err_msg=key)


@pytest.mark.parametrize("scale", SCALES)
def test_check_gives_the_same_verdicts_at_every_scale(scale):
    """Right answers, a floor-based implementation (the left piece on knots) and the
    reference's own left / right one-sided Jacobians pass; zero, negated and 1e-6-off
    answers fail; the kink counts and the rows that fail are those of the unit scale."""
    rng = np.random.default_rng(0)
    net = oracle_model(rng)
    x = oracle_inputs(net, rng)
    layers = list(net.layers)
    layers[1] = OtherSpline(net.layers[1].spline, piece="left_on_knots")

    def verdicts(network, inputs, floor_net):
        ref = oracle.reference_answers(network, inputs, layers=True, one_sided=True)
        floor = oracle.reference_answers(floor_net, inputs, layers=True, info=False)
        keys = [k for k in ref if k not in ("on_kink", "input_jacobian_left",
                                            "input_jacobian_right")]
        tries = {"right": {k: ref[k] for k in keys}, "floor": floor,
                 "left": {"input_jacobian": ref["input_jacobian_left"]},
                 "zero": {k: 0 * ref[k] for k in keys},
                 "negated": {"input_jacobian": -ref["input_jacobian"]},
                 "off": {"input_jacobian": ref["input_jacobian"] * (1 + 1e-6)}}
        found = {}
        for name, answers in tries.items():
            report = oracle.check(network, inputs, answers)
            found[name] = (report.passed, report.kink_rows,
                           sorted(r.key for r in report.rows if not r.passed))
        return found

    base = verdicts(net, x, Network(layers))
    assert base["right"][0] and base["floor"][0] and base["left"][0]
    assert not any(base[k][0] for k in ("zero", "negated", "off"))
    assert base["right"][1] > 0
    for a, c in ((scale, 1.0), (1.0, scale), (scale, 1 / scale)):
        rnet, _ = rescale(net, a, c)
        rfloor, _ = rescale(Network(layers), a, c)
        rlayers = list(rfloor.layers)
        rlayers[1] = OtherSpline(rnet.layers[1].spline, piece="left_on_knots")
        assert verdicts(rnet, x * a, Network(rlayers)) == base, (a, c)


def test_a_relu_network_under_the_issues_law_keeps_its_verdicts():
    """ReLU 2-8-8-8-1 with weights x s and biases x s^k (no grid to rescale): the windows
    knot_tol |z|_mag follow the pre-activations, so the kink rows (inputs put on a ReLU
    kink) and the verdicts are those of s = 1 for s from 1e-8 to 1e8."""
    base_net = build_mlp([2, 8, 8, 8, 1], activation="relu", rng=4)
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (30, 2))
    w, b = base_net.layers[0].params["weight"], base_net.layers[0].params["bias"]
    x[:3, 1] = -(b[:3] + w[:3, 0] * x[:3, 0]) / w[:3, 1]      # first-layer neuron on 0
    seen = None
    for s in (1e-8, 2.0 ** -13, 1.0, 1e3, 1e8):
        net, _ = rescale(base_net, 1.0, s)
        ref = oracle.reference_answers(net, x, one_sided=True, info=False)
        wrong = {"input_jacobian": -ref["input_jacobian"]}
        found = (ref["on_kink"].tolist(), oracle.check(net, x, {"outputs": ref["outputs"],
                                                               "input_jacobian":
                                                               ref["input_jacobian_left"]}
                                                       ).passed,
                 oracle.check(net, x, wrong).passed,
                 oracle.check(net, x, {"outputs": 0 * ref["outputs"]}).passed)
        assert found[0][:3] == [True] * 3 and found[1:] == (True, False, False), s
        seen = seen or found
        assert found == seen, s


# ------------------------------------------------------------------------------ info
@pytest.mark.parametrize("scale", SCALES)
def test_info_follows_the_scaling_law(scale, tmp_path, capsys):
    """`info --json`: Theorem 1 with the slopes x T / a, TV2, Lip, knot counts and their
    tolerances unchanged (the BV2 forms have no such law: |sigma(1)| does not scale)."""
    net = oracle_model(np.random.default_rng(0))

    def info(network):
        save_model(network, tmp_path / "m.npz")
        assert cli.main(["info", str(tmp_path / "m.npz"), "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    base = info(net)
    for a, c in ((scale, 1.0), (1.0, scale)):
        rnet, factors = rescale(net, a, c)
        got = info(rnet)
        for p, value in base["theorem1"].items():
            assert got["theorem1"][p] == pytest.approx(value * factors["outputs"] / a,
                                                       rel=1e-9, abs=0)
        for mine, theirs in zip(got["splines"], base["splines"]):
            assert mine["knots"] == theirs["knots"]
            for key in ("tv2", "lipschitz", "knot_tolerance"):
                np.testing.assert_allclose(mine[key], theirs[key], rtol=1e-9, err_msg=key)


# ------------------------------------------------------------------------- lipschitz
LIPSCHITZ_UNITS = ((1.0, 2.0 ** -26), (1.0, 1e-8), (1e-8, 1.0), (1.0, 1e8), (1e8, 1e-3),
                   (2.0 ** 20, 1e4))
EXACT_LAW = ("lower", "exact", "layerwise", "theorem1")       # closed form or exact: 1e-9


def lipschitz_json(tmp_path, capsys, net, p, box):
    """`lipschitz MODEL --p P --box R --json`, every method of the default ladder: (exit
    status, the JSON object)."""
    save_model(net, tmp_path / "m.npz")
    code = cli.main(["lipschitz", str(tmp_path / "m.npz"), "--p", p, "--box", repr(box),
                     "--json"])
    return code, json.loads(capsys.readouterr().out)


def claim_codes(tmp_path, capsys, net, p, box, claims) -> list:
    """The exit statuses of `lipschitz MODEL --claim C` (0 sound, 1 unsound, 3 undecided)."""
    save_model(net, tmp_path / "m.npz")
    codes = [cli.main(["lipschitz", str(tmp_path / "m.npz"), "--p", p, "--box", repr(box),
                       "--claim", repr(c)]) for c in claims]
    capsys.readouterr()
    return codes


@pytest.mark.parametrize("p", ["1", "2", "inf"])
@pytest.mark.parametrize("activation", ["relu", "spline"])
def test_lipschitz_every_method_follows_its_law(activation, p, tmp_path, capsys):
    """`lipschitz` as a user runs it, on a 2-6-6-1 network and on the same network in other
    units (reference.testing.rescale: inputs x a, dense layer k x c, the box x a; f read in
    the new units is T f, T = a c^L): every method's value is c^L = T / a times its own
    (lower, exact, layer-wise, Theorem 1: 1e-9 relative; LipSDP, p = 2: its certified
    brackets meet after scaling and 1e-6; ECLipsE-Fast 1e-9 where it applies (ReLU), ECLipsE
    1e-5 (its stage SDPs' optima need not be unique); Theorem 1's BV2 form for ReLU, whose
    BV2 norm is fixed; a spline's BV2 norm holds |sigma(0)| + |sigma(1)|, which do not
    scale: no law), the exit status is 0 at every scale and claims 1e-3 above and below the
    exact value get the same exit status (sound, unsound)."""
    net = random_net([2, 6, 6, 1], activation, seed=3)
    code, base = lipschitz_json(tmp_path, capsys, net, p, 1.0)
    assert code == 0
    assert all(base[m]["value"] is not None for m in EXACT_LAW + ("theorem1_bv2",))
    sdp = ("lipsdp_neuron", "lipsdp_layer") if p == "2" else ()
    assert all(base[m]["value"] is not None for m in sdp)
    exact = base["exact"]["value"]
    claims = [exact * (1 + 1e-3), exact * (1 - 1e-3)]
    assert claim_codes(tmp_path, capsys, net, p, 1.0, claims) == [0, 1]
    laws = EXACT_LAW + (("theorem1_bv2",) if activation == "relu" else ())
    for a, c in LIPSCHITZ_UNITS:
        scaled, factors = rescale(net, a, c)
        factor = factors["outputs"] / a
        code, got = lipschitz_json(tmp_path, capsys, scaled, p, a)
        assert code == 0, (a, c)
        for method in laws:
            assert got[method]["value"] == pytest.approx(factor * base[method]["value"],
                                                         rel=1e-9, abs=0), (method, a, c)
        for method in sdp:
            r, b = got[method], base[method]
            assert lipsdp_brackets_meet(b, r, factor), (method, a, c)
            assert r["value"] == pytest.approx(factor * b["value"], rel=1e-6, abs=0)
            assert r["value"] <= got["layerwise"]["value"]
        for method, rel in (("eclipse_fast", 1e-9), ("eclipse", 1e-5)) if sdp else ():
            if base[method]["value"] is not None or activation == "relu":
                assert got[method]["value"] == pytest.approx(factor * base[method]["value"],
                                                             rel=rel, abs=0), (method, a, c)
        assert claim_codes(tmp_path, capsys, scaled, p, a,
                           [factor * claim for claim in claims]) == [0, 1], (a, c)


# ----------------------------------------------------------------------- conformance
SOLVER_KINDS = ("solve", "lipschitz_exact")


def solver_case(case) -> bool:
    """The convex solves and the MILP: rescaled by test_rescaled_solves_and_milp (the BV2
    solves have no law when their pre-activations move)."""
    return case.kind == "solve" or case.name == "exact_milp"


def rescaled_suite(directory, scale, keep):
    """Export the cases for which keep(case) holds, with inputs and every dense layer
    x scale (grids with them); returns the suite and the factors per case."""
    built, factors = [], {}
    for case in cases.build_cases():
        if keep(case):
            rescaled, factors[case.name] = rescale_case(case, scale, scale)
            built.append(rescaled)
    conformance.export(directory, built=built)
    return conformance.load_suite(directory, built=built), factors


def suite_verdicts(suite, tmp_path) -> dict:
    """'self': case -> (passed, kink rows) for the reference's own answers; 'zero',
    'negated', 'off' (x (1 + 1e-6); the solve objectives and the exact values, graded
    within their certified brackets, x 1.01): the cases that fail."""
    live = conformance.self_answers(suite, tmp_path)
    report = conformance.grade(suite, tmp_path, live=live)
    found = {"self": {c.name: (c.passed, max([r.on_knot for r in c.rows] + [0]))
                      for c in report.cases}}
    changes = {"zero": lambda k, v: 0 * v, "negated": lambda k, v: -v,
               "off": lambda k, v: v * (1.01 if k.startswith(("solve/objective",
                                                               "lipschitz_exact/"))
                                        else 1 + 1e-6)}
    for name, change in changes.items():
        out = tmp_path / name
        out.mkdir()
        for entry in suite.cases:
            answers = live[entry["name"]][0]
            np.savez(out / f"{entry['name']}.npz",
                     **{k: change(k, np.asarray(answers[k])) for k in entry["answer_keys"]})
        found[name] = sorted(conformance.grade(suite, out, live=live).failed)
    return found


def law_of_case(entry, key, factors):
    """The law of an answer of a case (None: none): reference.testing.law, and for a TV2 solve
    the objective x T^2, the fitted outputs x T (lam was multiplied by T^2)."""
    if entry["kind"] == "objective":
        return None
    if entry["kind"] == "solve":
        if entry["parameters"]["reg"] != "tv2":
            return None                          # BV2 holds |sigma(1)|: no law
        return {"solve/objective": factors["outputs"] ** 2,
                "solve/fitted_outputs": factors["outputs"]}.get(key)
    return law(key, factors)


def check_the_law(suite, unit, factors):
    """The rescaled expected values against the unit ones times their law: 1e-9 relative
    for the exact and closed-form keys, the certified tolerance for the MILP and solves."""
    for entry in suite.cases:
        mine = np.load(suite.directory / entry["expected"])
        theirs = np.load(unit.directory / entry["expected"])
        rtol = {"solve": 1e-5}.get(entry["kind"], 2e-5 if entry["name"] == "exact_milp"
                                   else 1e-9)
        for key in entry["answer_keys"]:
            factor = law_of_case(entry, key, factors[entry["name"]])
            if factor is not None:
                expected = theirs[key] * factor
                np.testing.assert_allclose(mine[key], expected, rtol=rtol,
                                           atol=rtol * np.abs(expected).max(),
                                           err_msg=(entry["name"], key))


@pytest.fixture(scope="module")
def unit(tmp_path_factory):
    """The unit-scale suite and its verdicts."""
    directory = tmp_path_factory.mktemp("unit")
    conformance.export(directory / "suite")
    suite = conformance.load_suite(directory / "suite")
    return suite, suite_verdicts(suite, directory)


def restricted(verdicts: dict, names) -> dict:
    return {k: ({n: v for n, v in d.items() if n in names} if isinstance(d, dict)
                else [n for n in d if n in names]) for k, d in verdicts.items()}


def check_rescaled(unit, tmp_path, scale, keep):
    suite_unit, verdicts = unit
    suite, factors = rescaled_suite(tmp_path / "suite", scale, keep)
    names = [e["name"] for e in suite.cases]
    base = restricted(verdicts, names)
    assert all(p for p, _ in base["self"].values())
    assert base["zero"] == base["negated"] == base["off"] == sorted(names)
    assert suite_verdicts(suite, tmp_path) == base
    check_the_law(suite, suite_unit, factors)


LADDER = tuple(pytest.param(s, marks=pytest.mark.slow)
               for s in (1e-6, 1e-4, 1e-2, 1e2, 1e4, 1e6, 2.0 ** -13, 2.0 ** 13))


@pytest.mark.parametrize("scale", (2.0 ** -26, 1e-8, 1e8) + LADDER)
def test_every_conformance_case_runs_rescaled(scale, unit, tmp_path):
    """The suite's cases with inputs and every dense layer x scale (the per-layer factor:
    outputs move by up to scale^5): the reference's answers pass with the same kink rows;
    zero, negated and 1e-6-off answers fail every case, as at the unit scale; the expected
    values follow their law.  The convex solves and the MILP: test_rescaled_solves_and_milp."""
    check_rescaled(unit, tmp_path, scale, lambda case: not solver_case(case))


BV2_SCALES = (0.5, 8.0)


@pytest.mark.parametrize("scale", BV2_SCALES + (2.0 ** -26, 1e-8, 1e8) + LADDER)
def test_rescaled_solves_and_milp(scale, unit, tmp_path):
    """The TV2 convex solves over the whole ladder (a layer factor s multiplies the
    pre-activations by s^2, the outputs by s^3 and lambda by s^6): the same verdicts, the
    optimum by its law (check_the_law; tests/convex/test_solve_scale.py holds the solves to 1e-7).
    The MILP (normalised by powers of two, relative tolerance) likewise.  The BV2 solves (no
    law when z moves: at z x 1e-16 the point 1 lies 1e16 spreads from the data, and they may
    be refused) within 0.5-8 per layer."""
    within = scale in BV2_SCALES
    check_rescaled(unit, tmp_path, scale, lambda case: (
        case.kind == "solve" and (within or case.parameters["reg"] == "tv2"))
        or case.name == "exact_milp")


def case_named(name):
    return next(c for c in cases.build_cases() if c.name == name)


def test_a_rescaled_solve_is_right_or_refused():
    """The uniform-grid solve of solve_uniform_tv2_lip at a layer factor 1e-2 (outputs
    x 1e-6, lam x 1e-12) reported 'optimal' 6x the unit optimum (before fix/solve), then
    1.4e-3 above it, certified by CLARABEL's own gap; this test passed anyway, as
    pytest.approx(3.106e-12, rel=1e-5) also allows its default abs=1e-12.  Now the objective
    divided by T^2 is the unit one to 1e-7 (abs=0) at every factor, certified by the NumPy
    dual bound; none is refused any more."""
    case = case_named("solve_uniform_tv2_lip")
    unit_value = cases.answer(case.kind, case.net, None, case.inputs, case.parameters,
                              case.targets)[0]["solve/objective"]
    for scale in (1e-2, 1e-4, 1e2, 1e4):
        rescaled, factors = rescale_case(case, scale, scale)
        got = cases.answer(rescaled.kind, rescaled.net, None, rescaled.inputs,
                           rescaled.parameters, rescaled.targets)[0]["solve/objective"]
        assert got / factors["outputs"] ** 2 == pytest.approx(unit_value, rel=1e-7, abs=0), \
            scale


def test_a_rescaled_milp_is_right_or_refused():
    """exact_milp on exact_milp's network with its dense layers x 1e-4 (inputs and box
    unchanged) reported certified_exact with the value 7.73e-8 where the law gives
    11.77e-8 (its bracket reaching 1e-5), before the MILP ran on the network normalised by
    powers of two with a relative tolerance (fix/exact)."""
    from reference.lipschitz._milp import exact_milp

    case = case_named("exact_milp")
    unit_value = exact_milp(case.net, "1", box=1.0)["value"]
    for c in (1e-2, 1e-4, 1e-6):
        net, factors = rescale(case.net, 1.0, c)
        result = exact_milp(net, "1", box=1.0)
        if result.get("certified_exact"):
            assert result["value"] == pytest.approx(unit_value * factors["outputs"],
                                                    rel=1e-4, abs=0), c


def test_a_wide_certified_bracket_is_no_exact_answer(monkeypatch):
    """The conformance suite grades an exact value within its certified bracket: a
    'certified' bracket wider than MAX_CERTIFIED_WIDTH (what exact_milp gave at a layer
    factor 1e-4, test above) would widen the tolerance until zero passes; it is refused."""
    from reference.exceptions import SolveFailed
    from reference.lipschitz import _milp as milp

    case = case_named("exact_milp")
    result = milp.exact_milp(case.net, "1", box=1.0)
    monkeypatch.setattr(milp, "exact_milp", lambda *a, **k: dict(
        result, upper_bound=result["value"] * 100))
    with pytest.raises(SolveFailed, match="certified bracket .* relative"):
        cases.answer(case.kind, case.net, None, case.inputs, case.parameters)
