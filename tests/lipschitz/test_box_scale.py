"""Issue 21, item 11: boxes of any size in [MIN_BOX, MAX_BOX] = [1e-290, 1e290].

`lipschitz MODEL --box 1e-170` raised ZeroDivisionError in regions2d (the area underflowed)
and boxes from 5e-9 to 1e-160 failed with internal names ('a_mat, b_vec', 'x, x_pair').  The
exact methods now work on the box normalised to [-m, m] by a power of two
(reference.exact.input_scale, scaled_input), so a box is a length in the inputs' units like
any other: the network g(x) = f(x / s) (first weights divided by s) over the box s R has
every value of f over the box R divided by s; with s a power of two, exactly the same
computation.  Boxes below 1e-290 are refused when parsed, naming --box and the range.
"""
import json

import numpy as np
import pytest

from reference._limits import MIN_BOX, check_box
from reference.cli import main
from reference.io._model_file import save_model
from reference.lipschitz import _bounds as lipschitz
from reference.lipschitz import _ladder as ladder
from reference.lipschitz._verdict import check_claim
from reference.nn._network import Dense, Network
from reference.testing import random_net

TINY = [5e-9, 1e-100, 1e-160, 1e-170, 1e-290]
NETS = {1: ([1, 6, 5, 1], "spline"), 2: ([2, 6, 5, 1], "spline"), 3: ([3, 5, 4, 1], "relu")}


def divided_first_weights(net: Network, s: float) -> Network:
    """g(x) = f(x / s): the first dense layer's weight divided by s."""
    first = net.layers[0]
    return Network([Dense(first.params["weight"] / s, first.params.get("bias")),
                    *net.layers[1:]])


@pytest.mark.parametrize("box", TINY)
@pytest.mark.parametrize("n_in", [1, 2, 3])
def test_tiny_boxes_on_the_command_line(tmp_path, capsys, n_in, box):
    widths, activation = NETS[n_in]
    path = tmp_path / "model.npz"
    save_model(random_net(widths, activation, seed=1), path)
    p = "2" if n_in < 3 else "1"
    assert main(["lipschitz", str(path), "--box", repr(box), "--p", p, "--methods",
                 "lower,exact,layerwise", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exact"]["value"] is not None, out["exact"].get("reason")
    assert out["exact"]["lower_bound"] <= out["layerwise"]["value"]
    status = main(["lipschitz", str(path), "--box", repr(box), "--p", p, "--claim", "0.5",
                   "--json"])
    verdict = json.loads(capsys.readouterr().out)
    assert status in (0, 1, 3) and verdict["box"] == box
    low, high = verdict["interval"]
    assert (low is None or low >= 0) and (high is None or high >= (low or 0))


@pytest.mark.parametrize("exponent", [-30, -565, -963])          # 1e-9, 1.5e-170, 1e-290
@pytest.mark.parametrize("n_in, p", [(1, 2.0), (1, np.inf), (2, 1.0), (2, 2.0), (2, np.inf),
                                     (3, 1.0), (3, np.inf)])
def test_a_tiny_box_is_the_unit_box_in_other_units(n_in, p, exponent):
    """g(x) = f(x / s), s = 2^exponent: every value over the box s is f's over the box 1,
    divided by s (the same computation, to the last bits)."""
    s = float(np.ldexp(1.0, exponent))
    widths, activation = NETS[n_in]
    net = random_net(widths, activation, seed=2)
    small = divided_first_weights(net, s)
    for name in ("exact", "lower", "layerwise", "theorem1"):
        big = ladder.run_method(name, net, p, box=1.0)
        tiny = ladder.run_method(name, small, p, box=s)
        assert big["value"] is not None and tiny["value"] is not None, (name, tiny)
        assert tiny["value"] * s == pytest.approx(big["value"], rel=1e-12), name
    claim = ladder.run_method("exact", net, p, box=1.0)["value"] * (1 + 1e-3)
    assert (check_claim(small, claim / s, p, box=s).verdict
            == check_claim(net, claim, p, box=1.0).verdict == "sound")


def test_boxes_below_the_range_are_refused_when_parsed(tmp_path, capsys):
    path = tmp_path / "model.npz"
    save_model(random_net([2, 3, 1], "relu", seed=0), path)
    assert main(["lipschitz", str(path), "--box", "1e-300"]) == 2
    err = capsys.readouterr().err
    assert "argument --box" in err and "[1e-290, 1e+290]" in err
    assert check_box(MIN_BOX) == MIN_BOX
    with pytest.raises(ValueError, match=r"box: expected a half-width in \[1e-290, 1e\+290\]"):
        lipschitz.lower(random_net([2, 3, 1], "relu", seed=0), 2, box=MIN_BOX / 2)


def test_weights_too_small_for_a_tiny_box_leave_exact_without_a_value():
    """The exact methods need the first weights times the box normal: below that the
    ladder reports exact as not applicable, naming the box, and the other methods run."""
    net = random_net([2, 3, 1], "relu", seed=0)
    net.layers[0].params["weight"] *= 1e-30
    results = ladder.ladder(net, 2, box=1e-285, methods="lower,exact,layerwise")
    assert results["exact"]["value"] is None and results["exact"]["reason"].startswith("box: ")
    assert results["layerwise"]["value"] is not None and results["lower"]["value"] is not None


def test_a_box_too_large_for_the_milp_leaves_the_other_methods_running(tmp_path, capsys):
    """Three inputs, splines, p = inf, --box 1e100: the MILP's interval bounds pass HiGHS's
    infinity (1e20).  That was a ValueError out of the whole ladder (exit 2, every other
    method's result lost, the verdict too); it is the exact method's 'not applicable',
    naming the box, and the claim is still decided by the others."""
    path = tmp_path / "model.npz"
    save_model(random_net([3, 6, 6, 1], "spline", seed=3), path)
    assert main(["lipschitz", str(path), "--box", "1e100", "--p", "inf", "--methods",
                 "lower,exact,layerwise", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exact"]["value"] is None and out["exact"]["reason"].startswith("box: ")
    assert "HiGHS's infinity" in out["exact"]["reason"]
    assert out["layerwise"]["value"] is not None and out["lower"]["value"] is not None
    layerwise = out["layerwise"]["value"]
    assert main(["lipschitz", str(path), "--box", "1e100", "--p", "inf", "--claim",
                 repr(2 * layerwise)]) == 0
    assert "SOUND" in capsys.readouterr().out
