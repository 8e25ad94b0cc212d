"""Issue 21, item 13: HiGHS prints debug lines to stdout from C
("HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();") on some MILPs;
`lipschitz --json` must print the JSON alone.  The solver runs with file descriptor 1 on
/dev/null (reference.exact.solver_output_silenced)."""
import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reference.io._model_file import save_model
from reference.lipschitz._exact import solver_output_silenced
from reference.testing import random_net

ROOT = Path(__file__).resolve().parents[2]

# random three-input models on which HiGHS printed its debug line with `--p 1 --methods
# exact` (found by a search over seeds, random_net(widths, activation, seed, size=7)): the
# first with the MILP as it was before this fix, the other two with the normalised MILP
# (checked with the redirect switched off)
PRINTING_MODELS = [([3, 6, 6, 2], "prelu", 8), ([3, 8, 8, 1], "relu", 6),
                   ([3, 8, 8, 1], "spline", 7)]


@pytest.mark.parametrize("widths, activation, seed", PRINTING_MODELS)
def test_lipschitz_json_stdout_is_only_the_json(tmp_path, widths, activation, seed):
    path = tmp_path / "model.npz"
    save_model(random_net(widths, activation, seed=seed, size=7), path)
    out = subprocess.run([sys.executable, "-m", "reference", "lipschitz", str(path), "--p", "1",
                          "--methods", "exact", "--json"], capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)                      # nothing but the JSON
    assert result["exact"]["method"].startswith("MILP")
    assert "Highs" not in out.stdout


def test_the_redirect_swallows_c_level_writes_and_keeps_the_rest(capfd):
    """Writes to file descriptor 1, from Python's os.write and from C's printf (buffered:
    flushed inside the block), vanish; what is printed before and after stays, in order."""
    libc = ctypes.CDLL(None)
    print("before", flush=True)
    with solver_output_silenced():
        os.write(1, b"raw write to fd 1\n")
        libc.printf(b"printf from C\n")
    print("after", flush=True)
    libc.fflush(None)
    captured = capfd.readouterr().out
    assert captured == "before\nafter\n"
