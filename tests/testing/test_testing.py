"""reference.testing: importable without the test extra, and the same draws as before the
move (random_net and the problems came from theory_checks: a seed must still give the same
network, bit for bit, or every test and benchmark built on them silently changes)."""
import hashlib
import subprocess
import sys

import numpy as np
import pytest

from reference.testing import (
    check_property,
    loss_targets,
    random_net,
    relative_error,
    single_neuron,
)


def digest(net) -> str:
    """The first 16 hex digits of SHA-256 over each layer's kind and float64 parameters."""
    h = hashlib.sha256()
    for layer in net.layers:
        h.update(layer.kind.encode())
        for key in sorted(layer.params):
            h.update(key.encode())
            h.update(np.ascontiguousarray(layer.params[key], dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def short_sha(*arrays) -> str:
    return hashlib.sha256(b"".join(np.asarray(a, dtype=np.float64).tobytes()
                                   for a in arrays)).hexdigest()[:16]


# Computed with theory_checks.lipschitz_bound.random_net and theory_checks.representer's
# single_neuron and targets at commit 42aaab4, before they moved here.
@pytest.mark.parametrize("widths, activation, seed, size, expected", [
    ([2, 5, 4, 2], "spline", 1, 9, "9dd49a02816f6d02"),
    ([1, 6, 5, 1], "spline", 0, 11, "067e34081896d8aa"),
    ([2, 4, 1], "prelu", 3, 9, "729ce4544f1fc313"),
    ([3, 4, 2], "relu", 0, 9, "2c62b26a4bb3ed36"),
])
def test_random_net_draws_as_before_the_move(widths, activation, seed, size, expected):
    assert digest(random_net(widths, activation, seed, size=size)) == expected


def test_problems_draw_as_before_the_move():
    _, x, y = single_neuron(50, 2)
    assert short_sha(x, y) == "4996209d408e74e6"
    net = random_net([2, 3, 2], "spline", 0)
    x = np.random.default_rng(5).normal(size=(20, 2))
    assert [short_sha(loss_targets(net, x, loss, np.random.default_rng(7)))
            for loss in ("squared", "logistic", "xent")] == \
        ["b41196bd3aec6f8a", "19bfdc7c0b5da054", "b79bd61c1f9f1c32"]


def test_importable_without_the_test_extra():
    """With hypothesis, pytest and mpmath unimportable, `import reference.testing` works and
    the helpers that need no extra run; check_property raises ImportError naming hypothesis."""
    code = """
import sys
for name in ("hypothesis", "pytest", "mpmath"):
    sys.modules[name] = None
import reference.testing as t
assert t.relative_error(t.random_net([2, 3, 1], "relu", 0).forward([[1.0, 2.0]]), 1.0) >= 0
try:
    t.check_property(lambda: None, "default")
except ImportError as exc:
    print("ImportError", exc)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ImportError") and "hypothesis" in done.stdout


def test_check_property_refuses_an_unknown_profile():
    with pytest.raises(ValueError, match="profile: expected one of"):
        check_property(lambda: None, "fast")


def test_relative_error_is_relative_to_the_reference():
    assert relative_error(np.array([2.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert relative_error(np.array([2e-9]), np.array([1e-9])) == 1.0
