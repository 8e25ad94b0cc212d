"""The leaf of the package's numerics: float64 constants, the shared argument validators and
power-of-two arithmetic, each in one place.  It imports nothing of the package but the error
types.

- The unit roundoff u = 2^-53 (machine epsilon `EPS` = 2u) and gamma_n = n u / (1 - n u)
  of the running error analyses (reference.lipschitz: the LipSDP rounding bound and dual,
  the closed forms, the exact methods' forward errors).
- Argument validation (`as_real_array`, `as_finite_array`, `check_positive`,
  `check_nonnegative`, `check_choice`): errors name the argument and what was expected.
- Power-of-two arithmetic (np.frexp / np.ldexp: exact in floating point except below the
  normal range) for the products carried without over- or underflow (`scaled_product`,
  `product_or_overflow`) and the normalisations by powers of two (`exponent_below`,
  `scale_by_powers_of_two`, `scale_outwards`, `times_power_of_two_up`).
"""
from __future__ import annotations

from functools import reduce

import numpy as np

from reference.exceptions import OverflowResult

UNIT_ROUNDOFF = 2.0 ** -53
EPS = np.finfo(np.float64).eps     # machine epsilon, 2 UNIT_ROUNDOFF = 2^-52
SUBNORMAL = 2.0 ** -1074           # the least positive float64


def gamma(n: int) -> float:
    """gamma_n = n u / (1 - n u), u = 2^-53 (Higham's bound on n roundings)."""
    return n * UNIT_ROUNDOFF / (1 - n * UNIT_ROUNDOFF)


def as_real_array(value, name: str, ndim: int | None = None) -> np.ndarray:
    """value as a float64 array (with `ndim` dimensions if given).  Complex values are
    refused (a silent cast would drop the imaginary part)."""
    try:
        arr = np.asarray(value)
        if arr.dtype.kind == "c":
            raise ValueError(f"got complex values (dtype {arr.dtype})")
        arr = arr.astype(np.float64, copy=False)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{name}: expected an array of real numbers ({exc})") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    return arr


def as_finite_array(value, name: str, ndim: int | None = None) -> np.ndarray:
    """as_real_array, with every entry finite."""
    arr = as_real_array(value, name, ndim)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite values, found NaN or inf")
    return arr


def _as_float(value) -> float | None:
    """float(value), or None for what float() refuses."""
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def check_positive(value, name: str) -> float:
    """value as a float, which must be finite and > 0 (NaN, inf, zero, negative and
    non-numbers are a ValueError naming the argument)."""
    number = _as_float(value)
    if number is None or not (np.isfinite(number) and number > 0):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return number


def check_nonnegative(value, name: str) -> float:
    """value as a float, which must be finite and >= 0 (NaN, inf, negative and non-numbers
    are a ValueError naming the argument)."""
    number = _as_float(value)
    if number is None or not (np.isfinite(number) and number >= 0):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return number


def check_choice(value, choices, name: str):
    """value, which must be one of choices."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {sorted(choices)}, got {value!r}")
    return value


def exponent_below(x) -> np.ndarray | int:
    """e with 2^e <= x < 2^(e + 1) for finite x > 0 (np.frexp), 0 where x = 0; an int for a
    scalar, an int array for an array."""
    x = np.asarray(x, dtype=np.float64)
    e = np.where(x > 0, np.frexp(x)[1] - 1, 0)
    return int(e) if e.ndim == 0 else e.astype(int)


def scaled_product(*arrays) -> tuple[np.ndarray, int]:
    """The broadcast product of finite arrays as (S, e), product = S * 2^e, max|S| in
    [1/4, 1) (S = 0, e = 0 when the product is 0): each entry is the product of the
    mantissas of np.frexp, so it is rounded as the plain product would be, and no exponent
    leaves the float64 range however large or small the product.  Entries below 2^-1074 of
    the largest become 0 (negligible against any norm of S)."""
    parts = [np.frexp(np.asarray(a, dtype=np.float64)) for a in arrays]
    mantissa = reduce(np.multiply, [m for m, _ in parts])
    exponent = reduce(np.add, [e for _, e in parts])
    if not np.any(mantissa):
        return np.zeros(np.shape(mantissa)), 0
    top = int(exponent[mantissa != 0].max())
    return np.ldexp(mantissa, exponent - top), top


def product_or_overflow(factors, what: str) -> float:
    """prod_k s_k 2^{e_k} for factors (s_k >= 0 finite, e_k int), as a float.  Mantissas and
    binary exponents are carried apart (np.frexp), so no intermediate over- or underflows
    and the rounding is that of the plain product.  0 when a factor is 0.  A product outside
    the normal float64 range [2.2e-308, 1.8e308] with every factor nonzero is not a number
    this function returns: OverflowResult naming `what`, with log10 of the product."""
    mantissa, exponent = 1.0, 0
    for scale, power in factors:
        mantissa, shift = np.frexp(mantissa * float(scale))
        exponent += int(shift) + int(power)
    if mantissa == 0:
        return 0.0
    with np.errstate(over="ignore", under="ignore"):
        value = float(np.ldexp(mantissa, exponent))
    if not np.finfo(np.float64).tiny <= value < np.inf:
        log10 = (np.log2(mantissa) + exponent) * np.log10(2.0)
        raise OverflowResult(
            f"model: {what} = 10^{log10:.2f} is outside the float64 range "
            f"[{np.finfo(np.float64).tiny:.3g}, {np.finfo(np.float64).max:.3g}] for these finite "
            "parameters (every factor is nonzero and finite; their product is not); "
            "no bound is reported")
    return value


def times_power_of_two_up(x: float, exponent: int) -> float:
    """x 2^exponent for x >= 0, rounded up where it falls below the normal range (a bound
    that must not shrink); inf stays inf, overflow gives inf."""
    with np.errstate(over="ignore", under="ignore"):
        y = float(np.ldexp(x, exponent))
        if np.isfinite(x) and float(np.ldexp(y, -exponent)) < x:
            y = float(np.nextafter(y, np.inf))
    return y


def scale_by_powers_of_two(w: np.ndarray, exponents) -> tuple[np.ndarray, np.ndarray]:
    """(W 2^E entrywise, rounded; an entrywise bound on its rounding) for integer exponents E
    broadcast against W (e.g. -a[:, None] + b[None, :]): exact unless an entry falls below
    the normal range (its error is then at most half the least subnormal; the bound given is
    SUBNORMAL = 2^-1074, as 2^-1075 is not a float64).  The caller keeps E such that no entry
    overflows (checked: OverflowError)."""
    with np.errstate(over="ignore", under="ignore"):
        scaled = np.ldexp(w, exponents)
        if not np.all(np.isfinite(scaled)):
            raise OverflowError("scale_by_powers_of_two: an entry overflows")
        exact = np.ldexp(scaled, -np.asarray(exponents)) == w
    return scaled, np.where(exact, 0.0, SUBNORMAL)


def scale_outwards(lo: np.ndarray, hi: np.ndarray, g: int) -> tuple[np.ndarray, np.ndarray]:
    """[lo 2^-g, hi 2^-g], rounded outwards where inexact (subnormal), so that the scaled
    interval contains the exact one."""
    with np.errstate(under="ignore"):
        lo_s, hi_s = np.ldexp(lo, -g), np.ldexp(hi, -g)
        lo_s = np.where(np.ldexp(lo_s, g) > lo, np.nextafter(lo_s, -np.inf), lo_s)
        hi_s = np.where(np.ldexp(hi_s, g) < hi, np.nextafter(hi_s, np.inf), hi_s)
    return lo_s, hi_s
