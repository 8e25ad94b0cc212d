"""Argument validation shared by the modules: errors name the argument and what was expected."""
from __future__ import annotations

import numpy as np


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


def check_positive(value, name: str) -> float:
    """value as a float, which must be finite and > 0 (NaN, inf, zero, negative and
    non-numbers are a ValueError naming the argument)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = None
    if number is None or not (np.isfinite(number) and number > 0):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return number


def check_choice(value, choices, name: str):
    """value, which must be one of choices."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {sorted(choices)}, got {value!r}")
    return value

