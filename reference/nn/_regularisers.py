"""The regularisers R of the activations (the paper, Section II): one registry entry per choice.

    TV2(sigma)      = sum_k |a_k|                      (a_k the slope jumps of sigma)
                    = ||D2 c||_1 / T                   (uniform grid, coefficients c, step T)
    ||sigma||_BV2   = TV2(sigma) + |sigma(0)| + |sigma(1)|     (DeepSplines' convention)

Both are TV2(sigma) + sum_{t in extra_points} |sigma(t)|; the extra points are what the data
grid of the representer theorem and the candidate knots of reference.convex add to the
pre-activations (nothing for TV2, 0 and 1 for BV2).  Every site that depends on the choice
asks the entry `get(reg)` instead of branching on the name.  Imports numpy only (cvxpy only
when `cvx_term` is called).

References: S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68, 2020
(arXiv:2001.06263); P. Bohra, J. Campos, H. Gupta, S. Aziznejad, M. Unser, "Learning
Activation Functions in Deep (Spline) Neural Networks", IEEE Open J. Signal Process. 1, 2020
(the BV2 convention of DeepSplines).
"""
from __future__ import annotations

from dataclasses import dataclass
from operator import methodcaller
from typing import Any, Callable

import numpy as np
import numpy.typing as npt

from reference._numerics import check_choice


@dataclass(frozen=True)
class Regulariser:
    r"""A regulariser R of the activations: TV2 plus magnitudes at extra points.

    Parameters
    ----------
    name : str
        The choice as the command line and the model config spell it.
    formula : str
        The formula of this choice, for messages and reports.
    extra_points : tuple of float
        The points :math:`T_R` whose :math:`|\sigma(t)|` R adds (the data grid adds them
        as candidate knots).
    value : callable
        spline -> R per channel, shape (n_channels,) (a LinearSpline or KnotSpline: its
        own method).
    grad : callable
        LinearSpline -> a subgradient of :math:`\sum_c R(\sigma_c)` in the coefficients,
        shape (n_channels, size).

    See Also
    --------
    TV2 : The second-order total variation (no extra points).

    Notes
    -----
    Per neuron, :math:`R(\sigma) = \mathrm{TV}^{(2)}(\sigma) + \sum_{t \in T_R}
    |\sigma(t)|`.  With :math:`a_k` the slope jumps of :math:`\sigma` (on a uniform grid with
    coefficients c and step T, :math:`a = D_2 c / T`):

    .. math::

        \mathrm{TV}^{(2)}(\sigma) = \sum_k |a_k| = \|D_2 c\|_1 / T, \qquad
        \|\sigma\|_{\mathrm{BV}^{(2)}} = \mathrm{TV}^{(2)}(\sigma) + |\sigma(0)|
        + |\sigma(1)|,

    the second with :math:`T_R = \{0, 1\}` (DeepSplines' convention).

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With
       Trainable Activations and Controlled Lipschitz Constant", IEEE Trans. Signal
       Process. 68, 2020, arXiv:2001.06263.
    .. [2] P. Bohra, J. Campos, H. Gupta, S. Aziznejad, M. Unser, "Learning Activation
       Functions in Deep (Spline) Neural Networks", IEEE Open Journal of Signal
       Processing 1, 2020.

    Examples
    --------
    >>> from reference.nn import REGULARISERS, LinearSpline
    >>> spline = LinearSpline.initialise("relu", num_channels=1, size=5, range_=2.0)
    >>> REGULARISERS["tv2"].value(spline), REGULARISERS["bv2"].value(spline)
    (array([1.]), array([2.]))
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
        reference.convex pins (gauge_basis)."""
        return not self.extra_points

    def extra_inputs(self, width: int) -> npt.NDArray[np.float64]:
        """Return the extra points as inputs for every channel.

        Parameters
        ----------
        width : int
            The number of channels.

        Returns
        -------
        inputs : ndarray of shape (len(extra_points), width)
            Row i holds ``extra_points[i]`` in every column (for BV2 the same array as
            ``reference.nn._spline_grid.zero_one``).
        """
        return np.tile(np.array(self.extra_points)[:, None], (1, width))

    def cvx_term(self, tv2: Any, at_extra: Any) -> Any:
        r"""Return R summed over the neurons as a cvxpy expression.

        Parameters
        ----------
        tv2 : cvxpy.Expression
            The expression of :math:`\sum_n \mathrm{TV}^{(2)}(\sigma_n)`.
        at_extra : cvxpy.Expression
            The values :math:`\sigma_n(t)` at the extra points, in any layout (the sum of
            the magnitudes is taken); unused when there are none.

        Returns
        -------
        term : cvxpy.Expression
            `tv2`, plus ``cp.norm1(at_extra)`` when there are extra points.
        """
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
