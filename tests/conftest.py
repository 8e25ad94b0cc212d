"""Shared fixtures."""
import pytest


@pytest.fixture(scope="session")
def quick_figures(tmp_path_factory):
    """`python -m figures --quick` once per session: (out directory, report).  The runs are
    cached in OUT/results, so later users (e.g. `reproduce --figures-dir OUT`) only plot."""
    from figures.run import generate

    out = tmp_path_factory.mktemp("figures")
    report = generate("quick", out=out, workers=2, progress=False, log=lambda *a: None)
    return out, report
