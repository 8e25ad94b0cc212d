"""Argument types of the command line (argparse): each names what it expected, so that
argparse reports 'argument --NAME: expected ..., got ...' and exits with status 2."""
from __future__ import annotations

import argparse

import numpy as np

from reference._limits import check_box


def _typed(convert, accept, expected):
    """An argparse type: convert the text, then require accept(value); otherwise argparse
    reports 'argument --NAME: expected ...' and exits with status 2."""
    def parse(text):
        try:
            value = convert(text)
        except (TypeError, ValueError, OverflowError):
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    parse.__name__ = expected
    return parse


nonneg_int = _typed(int, lambda v: v >= 0, "an integer >= 0")
positive_int = _typed(int, lambda v: v >= 1, "an integer >= 1")
size_int = _typed(int, lambda v: v >= 2, "an integer >= 2")
positive_float = _typed(float, lambda v: np.isfinite(v) and v > 0, "a finite number > 0")
nonneg_float = _typed(float, lambda v: np.isfinite(v) and v >= 0, "a finite number >= 0")
fraction = _typed(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")
milestone = _typed(float, lambda v: 0 < v <= 1, "a fraction of the epochs in (0, 1]")
sparsify_value = _typed(lambda t: t if t == "auto" else float(t),
                        lambda v: v == "auto" or (np.isfinite(v) and v >= 0),
                        "'auto' or a finite threshold >= 0")


def box_half_width(text):
    """--box: the half-width R of the box [-R, R]^N_0, in the range reference.limits.check_box
    accepts (refused when parsed, with that range)."""
    try:
        return check_box(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).partition(": ")[2]) from None


box_half_width.__name__ = "a box half-width"


def list_of(item):
    """An argparse type for a comma-separated list of `item` values ('1e-3,1e-1')."""
    def parse(text):
        return [item(part) for part in str(text).split(",")]
    parse.__name__ = f"a comma-separated list of {item.__name__}"
    return parse


def _choice(choices):
    return _typed(str, lambda v: v in choices, f"one of {', '.join(choices)}")


MAX_SEEDS = 100_000      # seed_list: longer lists are refused before they are built


def seed_list(text):
    """Seeds as '0-4', '0,3,7' or both ('0-2,7'): a list of at most MAX_SEEDS integers >= 0."""
    seeds = []
    for part in str(text).split(","):
        low, _, high = part.partition("-")
        first, last = nonneg_int(low), nonneg_int(high) if high else None
        if last is not None and last < first:
            raise argparse.ArgumentTypeError(f"expected a range LOW-HIGH with LOW <= HIGH, "
                                             f"got {part!r}")
        if len(seeds) + (0 if last is None else last - first) + 1 > MAX_SEEDS:
            raise argparse.ArgumentTypeError(f"expected at most {MAX_SEEDS} seeds, got "
                                             f"{text!r}")
        seeds.extend(range(first, (first if last is None else last) + 1))
    return seeds


def sweep_sparsify(text):
    """'auto', 'none' or a threshold."""
    return None if text == "none" else sparsify_value(text)


def parse_hidden(text) -> list:
    """--hidden: hidden widths like '2' or '8,8' as a list of ints >= 1 (ValueError naming
    --hidden otherwise; checked when the command runs, so `sweep` checks each of its values)."""
    try:
        widths = [int(w) for w in str(text).split(",")]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise ValueError(f"--hidden: expected positive widths like 2 or 8,8, got {text!r}")
    return widths
