"""Profiles of the property tests (hypothesis, imported only when a property runs)."""
from __future__ import annotations

from typing import Callable

DEFAULT_EXAMPLES = 100
"""Examples of a property in the default profile (the default test suite)."""
SLOW_EXAMPLES = 10_000
"""Examples of a property in the slow profile (``pytest -m slow``)."""
PROFILES = ("default", "slow")
"""The profiles a property runs in (tests: the ``profile`` fixture of tests/conftest.py)."""


def check_property(prop: Callable[[], None], profile: str, examples: int | None = None,
                   slow_examples: int | None = None) -> None:
    """Run a hypothesis ``@given`` property with the profile's number of examples.

    Parameters
    ----------
    prop : callable
        A function decorated with ``hypothesis.given``.
    profile : {"default", "slow"}
    examples : int, optional
        Examples in the default profile (DEFAULT_EXAMPLES if None).
    slow_examples : int, optional
        Examples in the slow profile (SLOW_EXAMPLES if None; a property that cannot afford
        10^4 states its count and why).

    Raises
    ------
    ValueError
        ``profile`` is not one of PROFILES.
    ImportError
        hypothesis (the ``test`` extra) is not installed.

    Notes
    -----
    No deadline, no example database, the too_slow and data_too_large health checks off;
    the default profile is derandomized (the same examples on every run).
    """
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {PROFILES}, got {profile!r}")
    from hypothesis import HealthCheck, settings

    if profile == "slow":
        n = SLOW_EXAMPLES if slow_examples is None else slow_examples
    else:
        n = DEFAULT_EXAMPLES if examples is None else examples
    settings(max_examples=n, deadline=None, derandomize=profile == "default",
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
             database=None)(prop)()
