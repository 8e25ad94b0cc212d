r"""The uniform grid of the linear splines and their supported range (a leaf module).

`grid_from_range` (DeepSplines' grid on [-R, R]), the constants of the supported range
and the checks of a LinearSpline's arguments against them; reference.nn._linear_spline
and reference.nn._knot_spline import them.

Supported range (checked when a LinearSpline is built; ValueError naming the argument):
    |x_min| <= MAX_MAGNITUDE = 1e100,   MIN_STEP = 1e-50 <= T <= MAX_STEP = 1e50,
    every coefficient 0 or MIN_COEFFICIENT = 1e-200 <= |c_k| <= MAX_MAGNITUDE,  K >= 2.
Inside it every derived quantity is finite and every nonzero one is a normal float:
|x_min|/T <= 1e150, slopes |dc/T| <= 2e150, jumps |D2 c/T| <= 4e150, TV2 <= 4e150*K,
sigma(0), sigma(1), BV2 and the knot form's b0 = c_0 - b1*x_min below ~1e251, grid points
below 1e100 + K*1e50 (the upper limits leave >= 1e50 of headroom for sums and products);
the nonzero coefficients are multiples of 2^-717 = 1.45e-216 (the ulp at 1e-200), hence
so are their nonzero differences, and nonzero slopes, jumps, TV2 and Lip are
>= 1.45e-216/1e50 > 1e-266 (never 0 by underflow, e.g. a Lipschitz bound of 0).  The lower
limit sits far below rounding noise: a coefficient computed by a conversion (from_slopes,
from_knot_form, sparsify) falls under it only for splines whose coefficients are all
below ~1e-184.  Inputs x may be any finite float64 (see the accuracy of the kernels in
reference.nn._linear_spline).
"""
from __future__ import annotations

import functools

import numpy as np

from reference._format import shown
from reference._numerics import as_finite_array

MAX_FLOAT = np.finfo(np.float64).max
MAX_MAGNITUDE = 1e100            # largest |x_min| and |coefficient|
MIN_COEFFICIENT = 1e-200         # smallest nonzero |coefficient|
MIN_STEP, MAX_STEP = 1e-50, 1e50
MAX_GRID_SIZE = 10**6            # grid_from_range: at most this many coefficients per neuron
GRID_POINT_RATIO = 9000          # computed grid points snap onto their knot if max|t_k| <= this * T


@functools.lru_cache(maxsize=16)
def _second_difference(size: int) -> np.ndarray:
    """D2, shape (K-2, K): (D2 c)_j = c_j - 2 c_{j+1} + c_{j+2} (read-only, cached)."""
    d2 = np.zeros((size - 2, size))
    j = np.arange(size - 2)
    d2[j, j], d2[j, j + 1], d2[j, j + 2] = 1.0, -2.0, 1.0
    d2.setflags(write=False)
    return d2


@functools.lru_cache(maxsize=16)
def _grid_indices(size: int) -> np.ndarray:
    """0., 1., ..., K-1 as floats, shape (K,) (read-only, cached)."""
    k = np.arange(size, dtype=np.float64)
    k.setflags(write=False)
    return k


def zero_one(num_channels: int) -> np.ndarray:
    """The inputs x = 0 and x = 1 for every channel, shape (2, C)."""
    return np.tile([[0.0], [1.0]], (1, num_channels))


def _shown(value) -> str:
    """repr(value) with NumPy numbers as Python's, shortened when long (e.g. a 400-digit
    integer)."""
    return shown(value, 40)


def _real_in(value, name: str, low: float, high: float) -> float:
    """value as a float in [low, high]; the error names the argument and the range."""
    expected = f"expected a real number in [{low:g}, {high:g}] (the supported range)"
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name}: {expected}, got {_shown(value)}") from None
    if not low <= number <= high:                                  # False for NaN
        raise ValueError(f"{name}: {expected}, got {_shown(value)}")
    return number


def _size(size) -> int:
    """K as an int >= 2."""
    try:
        k = int(size)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"size: expected an integer >= 2, got {_shown(size)}") from None
    if k < 2 or k != size:
        raise ValueError(f"size: expected an integer >= 2, got {_shown(size)}")
    return k


def _coefficients(coefficients) -> np.ndarray:
    """coefficients as a (C, K) float64 array, C >= 1, K >= 2, in the supported range."""
    range_text = (f"every |c| 0 or in [{MIN_COEFFICIENT:g}, {MAX_MAGNITUDE:g}] "
                  "(the supported range)")
    coefficients = as_finite_array(coefficients, "coefficients", ndim=2)
    if coefficients.shape[1] < 2:
        raise ValueError(
            f"coefficients: expected shape (C, K) with K >= 2, got {coefficients.shape}")
    if coefficients.shape[0] < 1:
        raise ValueError("coefficients: expected at least one channel (C >= 1)")
    size = np.abs(coefficients)
    bad = (size > MAX_MAGNITUDE) | ((size < MIN_COEFFICIENT) & (size > 0))
    if np.any(bad):
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"coefficients: expected {range_text}, got "
                         f"{_shown(coefficients[where])} at {where}")
    return coefficients


def grid_from_range(size: int, range_: float) -> tuple[float, float]:
    """Return DeepSplines' uniform grid of `size` points on ``[-range_, range_]``.

    Parameters
    ----------
    size : int
        K, the number of coefficients per neuron: 2 <= K <= ``MAX_GRID_SIZE`` (10**6).
    range_ : float
        The half-width R of the grid, in
        ``[MIN_STEP*(size - 1)/2, min(MAX_MAGNITUDE, MAX_STEP*(size - 1)/2)]`` so that the
        grid lies in the supported range (module docstring).

    Returns
    -------
    x_min : float
        The first grid point, -R.
    step : float
        The grid step T = 2R/(K - 1).

    Raises
    ------
    ValueError
        If `size` is not an integer in [2, 10**6], or `range_` is not a real number in the
        interval above.

    Examples
    --------
    >>> from reference.nn import grid_from_range
    >>> grid_from_range(5, 2.0)
    (-2.0, 1.0)
    """
    size = _size(size)
    if size > MAX_GRID_SIZE:
        raise ValueError(f"size: {size} coefficients per neuron is over MAX_GRID_SIZE = "
                         f"{MAX_GRID_SIZE} (8 MB a neuron)")
    low, high = MIN_STEP * (size - 1) / 2, min(MAX_MAGNITUDE, MAX_STEP * (size - 1) / 2)
    range_ = _real_in(range_, "range_", low, high)
    step = 2.0 * range_ / (size - 1)
    if not MIN_STEP <= step <= MAX_STEP:                   # rounding at the ends of [low, high]
        raise ValueError(f"range_: the step 2*range_/(size - 1) = {step!r} is outside "
                         f"[{MIN_STEP:g}, {MAX_STEP:g}] (the supported range)")
    return -range_, step

