"""reference.blas: BLAS thread limits around the solvers' linear algebra."""
import numpy as np
import pytest
import scipy.linalg  # noqa: F401  (loads SciPy's own BLAS beside NumPy's)
from threadpoolctl import threadpool_info

from reference.lipschitz._blas import blas_threads


def blas_thread_counts() -> list:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_blas_threads_limits_every_library_and_restores_them():
    before = blas_thread_counts()
    assert before                                   # NumPy's OpenBLAS at least
    with blas_threads(1):
        assert blas_thread_counts() == [1] * len(before)
        a = np.arange(9.0).reshape(3, 3)
        np.testing.assert_array_equal(a @ np.eye(3), a)
    assert blas_thread_counts() == before
    with blas_threads(None):
        assert blas_thread_counts() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_blas_threads_refuses_a_bad_count(bad):
    with pytest.raises(ValueError, match="^n: expected None or an integer >= 1"):
        with blas_threads(bad):
            pass


def test_lipsdp_runs_with_one_blas_thread_by_default_and_checks_the_argument(monkeypatch):
    """lipsdp limits the BLAS libraries while it runs (reference.blas.LIPSDP_BLAS_THREADS),
    gives the same value either way (to rounding), and names blas_threads when it is bad."""
    from reference.lipschitz import _lipsdp as lipsdp_module
    from reference.nn._network import build_mlp

    seen = []
    real = lipsdp_module._lipsdp

    def spy(*args):
        seen.append(blas_thread_counts())
        return real(*args)
    monkeypatch.setattr(lipsdp_module, "_lipsdp", spy)
    net = build_mlp([3, 6, 5, 2], "relu", rng=0)
    one = lipsdp_module.lipsdp(net, "neuron")
    free = lipsdp_module.lipsdp(net, "neuron", blas_threads=None)
    assert seen[0] == [1] * len(seen[0]) and seen[1] == blas_thread_counts()
    assert abs(one["value"] - free["value"]) <= 1e-9 * free["value"]
    for bad in (0, 2.0, "1"):
        with pytest.raises(ValueError, match="^blas_threads: expected None or an integer"):
            lipsdp_module.lipsdp(net, "neuron", blas_threads=bad)
