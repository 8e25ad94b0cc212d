"""Fixtures shared by the test directories (helpers shared as functions live in
`reference.testing`, never in a test module)."""
import hashlib

import pytest

from reference.testing import PROFILES


@pytest.fixture(params=[pytest.param(name, marks=pytest.mark.slow) if name == "slow" else name
                        for name in PROFILES])
def profile(request):
    """The profile a property test runs in: "default" (the default suite) and "slow"
    (marked slow: `pytest -m slow`); hand it to `reference.testing.check_property`."""
    return request.param


def tree_digest(directory) -> str:
    """SHA-256 over the relative paths and bytes of every file under `directory`."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def conformance_suite(tmp_path_factory):
    """The conformance suite, exported once per session by `conformance export`.  Shared,
    so read-only: a test that spoils it works on a copy (checked at the end of the session:
    the suite's bytes must be those exported)."""
    from reference.cli import main

    directory = tmp_path_factory.mktemp("suite")
    assert main(["conformance", "export", str(directory)]) == 0
    exported = tree_digest(directory)
    yield directory
    assert tree_digest(directory) == exported, "a test modified the shared conformance suite"


@pytest.fixture(scope="session")
def quick_figures(tmp_path_factory):
    """`python -m figures --quick` once per session: (out directory, report).  The runs are
    cached in OUT/results, so later users (e.g. `reproduce --figures-dir OUT`) only plot."""
    from figures.run import generate

    out = tmp_path_factory.mktemp("figures")
    report = generate("quick", out=out, workers=2, progress=False, log=lambda *a: None)
    return out, report
