"""Profiles of the property tests (hypothesis).

Each property runs twice: in the default suite with DEFAULT_EXAMPLES examples, and in the
opt-in profile (`pytest -m slow`) with SLOW_EXAMPLES examples.  Write a property as a
`@given` function inside the test and hand it to `check`:

    @profiles
    def test_something(profile):
        @given(st.floats(...))
        def prop(x):
            assert ...
        check(prop, profile)
"""
import pytest
from hypothesis import HealthCheck, settings

DEFAULT_EXAMPLES = 100
SLOW_EXAMPLES = 10_000
EXAMPLES = {"default": DEFAULT_EXAMPLES, "slow": SLOW_EXAMPLES}

profiles = pytest.mark.parametrize(
    "profile", [pytest.param("default"), pytest.param("slow", marks=pytest.mark.slow)])


def check(prop, profile: str, examples: int | None = None,
          slow_examples: int | None = None) -> None:
    """Run the @given property `prop` with the profile's number of examples: `examples`
    (default DEFAULT_EXAMPLES) in the default profile, `slow_examples` (default
    SLOW_EXAMPLES; a property that cannot afford 10^4 states its count and why) in the slow
    one; no deadline, reproducible (derandomize) in the default profile."""
    if profile == "slow":
        n = SLOW_EXAMPLES if slow_examples is None else slow_examples
    else:
        n = DEFAULT_EXAMPLES if examples is None else examples
    settings(max_examples=n, deadline=None, derandomize=profile == "default",
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
             database=None)(prop)()
