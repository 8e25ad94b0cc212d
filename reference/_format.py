"""Numbers in text: what the commands print and what error messages quote.

NumPy 2 spells its scalars out in repr (``np.float64(479.8)``, ``np.int64(3)``,
``np.True_``), and a list or dict shows its items' repr, so an f-string of a list of NumPy
floats, or ``{x!r}`` of a NumPy scalar, prints Python source instead of a number.
`plain` turns every NumPy scalar and array into Python numbers and lists first; `exact`
is the shortest text that reads back as the same float64 (``repr`` of a Python float).
A message quotes a value it was given with `shown` (`exact`, shortened by `clipped` when
long: a 5000-digit format string or a whole record is never echoed in full).
A leaf module: it imports NumPy only."""
from __future__ import annotations

import numpy as np


def plain(value, nonfinite=None):
    """`value` with NumPy scalars and arrays replaced by Python numbers and (nested) lists,
    through dicts, lists and tuples (tuples stay tuples, e.g. shapes).

    Parameters
    ----------
    value : object
        A NumPy scalar or array, a Python number, or a dict / list / tuple of them; anything
        else is returned as it is.
    nonfinite : callable or None
        Applied to every non-finite float (NaN, +-inf), e.g. ``lambda v: None`` for JSON;
        None keeps them as floats.

    Returns
    -------
    object
        The same structure with bool, int and float in place of np.bool_, np.integer and
        np.floating, and lists in place of arrays (an array of shape (a, b) becomes a list
        of a lists of b numbers; a 0-d array a number)."""
    if isinstance(value, dict):
        return {k: plain(v, nonfinite) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return plain(value.tolist(), nonfinite)
    if isinstance(value, (list, tuple)):
        items = [plain(v, nonfinite) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, (np.floating, float)):
        number = float(value)
        return number if nonfinite is None or np.isfinite(number) else nonfinite(number)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def exact(value) -> str:
    """The text of `value` that reads back exactly: ``repr(plain(value))``, e.g. '0.1',
    '0.20000000298023224', '[1, 2]', 'nan' (never 'np.float64(0.1)')."""
    return repr(plain(value))


def clipped(text: str, limit: int = 200) -> str:
    """`text` cut to its first `limit` characters when longer, followed by '... (N
    characters)', N the full length (e.g. free text of a manifest, which may be anything)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def shown(value, limit: int = 60) -> str:
    """How a message quotes a value it was given: `exact` (Python's repr, with NumPy scalars
    and arrays as Python numbers and lists), `clipped` to `limit` characters."""
    return clipped(exact(value), limit)
