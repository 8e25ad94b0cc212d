"""The regularisers R of the activations (DESIGN section 2): one registry entry per choice.

    TV2(sigma)      = sum_k |a_k|                      (a_k the slope jumps of sigma)
                    = ||D2 c||_1 / T                   (uniform grid, coefficients c, step T)
    ||sigma||_BV2   = TV2(sigma) + |sigma(0)| + |sigma(1)|     (DeepSplines' convention)

Both are TV2(sigma) + sum_{t in extra_points} |sigma(t)|; the extra points are what the data
grid of the representer theorem and the candidate knots of reference.active_set add to the
pre-activations (nothing for TV2, 0 and 1 for BV2).  Every site that depends on the choice
asks the entry `get(reg)` instead of branching on the name.  Imports numpy only (cvxpy only
when `cvx_term` is called).
"""
from __future__ import annotations

from dataclasses import dataclass
from operator import methodcaller
from typing import Callable

import numpy as np

from reference._numerics import check_choice


@dataclass(frozen=True)
class Regulariser:
    """R(sigma) = TV2(sigma) + sum_{t in extra_points} |sigma(t)| per neuron.

    tv2: TV2(sigma) = sum_k |a_k| = ||D2 c||_1 / T on a uniform grid (extra_points = ()).
    bv2: ||sigma||_BV2 = TV2(sigma) + |sigma(0)| + |sigma(1)| (extra_points = (0.0, 1.0)).

    name          the choice as the command line and the model config spell it
    formula       the formula above for this choice, for messages and reports
    extra_points  the points t whose |sigma(t)| R adds (the data grid adds them as candidates)
    value         spline -> R per channel, (C,) (LinearSpline or KnotSpline: its own method)
    grad          LinearSpline -> a subgradient of sum_c R(sigma_c) in the coefficients, (C, K)
    """
    name: str
    formula: str
    extra_points: tuple
    value: Callable[[object], np.ndarray]
    grad: Callable[[object], np.ndarray]

    @property
    def ignores_affine(self) -> bool:
        """R(sigma + b0 + b1 z) = R(sigma) for every affine shift (TV2 only): the optimal set
        of a coefficient problem is then unbounded along such shifts, which
        reference.convex.gauge_basis pins."""
        return not self.extra_points

    def extra_inputs(self, width: int) -> np.ndarray:
        """The extra points as inputs for every channel, (len(extra_points), width)
        (for BV2 the same array as reference.spline.zero_one)."""
        return np.tile(np.array(self.extra_points)[:, None], (1, width))

    def cvx_term(self, tv2, at_extra):
        """R summed over the neurons as a cvxpy expression, from the expression `tv2` of
        sum_n TV2(sigma_n) and the values sigma_n(t) at the extra points (any layout:
        sum |.| is taken), unused when there are none."""
        import cvxpy as cp

        return tv2 + cp.norm1(at_extra) if self.extra_points else tv2


TV2 = Regulariser(name="tv2", formula="TV2(sigma) = sum_k |a_k| = ||D2 c||_1 / T",
                  extra_points=(), value=methodcaller("tv2"), grad=methodcaller("tv2_grad"))
BV2 = Regulariser(name="bv2", formula="||sigma||_BV2 = TV2(sigma) + |sigma(0)| + |sigma(1)|",
                  extra_points=(0.0, 1.0), value=methodcaller("bv2"),
                  grad=methodcaller("bv2_grad"))

REGULARISERS = {r.name: r for r in (TV2, BV2)}      # name -> Regulariser, the one registry


def get(name, arg: str = "reg") -> Regulariser:
    """The Regulariser called `name`; anything else is a ValueError naming `arg`."""
    check_choice(name, tuple(REGULARISERS), arg)
    return REGULARISERS[name]
