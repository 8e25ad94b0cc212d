"""Issue 20 item 4: the size guard follows the active set's real cost (its first restricted
problem: INITIAL_POINTS points per neuron + samples x neurons), not the whole data grid's."""
import pytest

from reference import convex
from reference.convex._active_set import INITIAL_POINTS
from reference.exceptions import TooLarge
from reference.testing import single_neuron


def test_active_set_guard_counts_its_restricted_problem_not_the_grid():
    net, x, y = single_neuron(m=300)
    m = len(x)
    active_size = INITIAL_POINTS + m          # one neuron
    full_size = m + m
    # between the two: the active set runs, the full method is refused before any grid
    _, cert = convex.solve_layer(net, 1, x, y, lam=1e-2, max_size=active_size,
                                 method="active")
    assert cert["status"] == "optimal" and cert["method"] == "active"
    with pytest.raises(TooLarge, match="max_size"):
        convex.solve_layer(net, 1, x, y, lam=1e-2, method="full", max_size=full_size - 1)
    with pytest.raises(TooLarge, match="active set's first restricted problem"):
        convex.solve_layer(net, 1, x, y, lam=1e-2, max_size=active_size - 1, method="active")
