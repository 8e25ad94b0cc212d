"""BLAS threads for the dense linear algebra of the solvers.

NumPy and SciPy each load their own OpenBLAS (and CVXOPT a third), each with its own
worker threads; a worker keeps spinning for a while after its call returns.  When calls
alternate between the libraries, as an interior-point iteration does (NumPy products,
SciPy's Cholesky and eigenvalues), the spinning workers of one library take the cores from
the other: on the 2-core reference machine LipSDP-neuron ran 1.1-3x faster with one BLAS
thread than with the default two (MNIST 784-50-10: 0.32-0.46 s against 0.69 s; ReLU
2-100-100-1: 0.54-0.62 s against 1.5-1.6 s; 2-300-300-1: 7.3-10.3 s against 15.7-17.2 s;
2-450-450-1: 26.7-27.1 s against 30.1-32.0 s; same process, alternating): the gain shrinks
with the size, and one library alone gains from two threads on large products.

`blas_threads(n)` limits every loaded BLAS library to n threads inside a `with` block
(threadpoolctl) and restores them afterwards; results with one thread do not depend on the
number of cores.  LIPSDP_BLAS_THREADS is what `lipsdp.lipsdp` uses (None: leave the
libraries as they are, e.g. on a machine where more threads pay).
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

LIPSDP_BLAS_THREADS: int | None = 1


def check_threads(n, name: str = "n") -> int | None:
    """n if it is None or an integer >= 1, else a ValueError naming `name`."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer))
                          or n < 1):
        raise ValueError(f"{name}: expected None or an integer >= 1, got {n!r}")
    return None if n is None else int(n)


@contextmanager
def blas_threads(n: int | None, name: str = "n"):
    """Inside the block, every BLAS library loaded in the process uses at most n threads
    (n None: unchanged).  ValueError (naming `name`) unless n is None or an integer >= 1."""
    n = check_threads(n, name)
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n, user_api="blas"):
        yield
