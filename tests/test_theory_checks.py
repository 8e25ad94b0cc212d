"""The theory checks (top-level `theory_checks`, the user's entry points) as a user runs them:
their exit status.  The one test module that imports `theory_checks` (tests/test_layout.py
keeps every other one from doing so)."""
from reference.lipschitz import _ladder as ladder
from reference.testing import random_net


def test_theory_check_exits_nonzero_on_a_violation(tmp_path, monkeypatch, capsys):
    from theory_checks import lipschitz_bound

    monkeypatch.setattr(lipschitz_bound, "instances",
                        lambda quick: [("relu 2-4-1", random_net([2, 4, 1], "relu", seed=0))])
    assert lipschitz_bound.main(["--quick", "--json-out", str(tmp_path / "ok.json")]) == 0
    broken = dict(ladder.RUNNERS, theorem1=lambda net, p, box, options: {"value": 1e-3})
    monkeypatch.setattr(ladder, "RUNNERS", broken)
    assert lipschitz_bound.main(["--quick", "--json-out", str(tmp_path / "bad.json")]) == 1
    assert "VIOLATIONS" in capsys.readouterr().out
