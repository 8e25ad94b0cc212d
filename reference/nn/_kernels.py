"""Block kernels of reference.nn.LinearSpline: forward, derivative, backward.

Every kernel works on a row block of an (M, C) array (about CHUNK_ELEMENTS entries, so
that temporaries stay in cache) with the piece tables of the spline, flat (C*K,) arrays
indexed like coefficients.ravel():

    slope_k = (c_{k+1} - c_k)/T,   b_k = c_k - k (c_{k+1} - c_k)   (0 in the unused last slot)

and computes, for every entry x of the block (channel c):

    d = fl(x - x_min),  w = fl(d * fl(1/T)),  k = floor(clip(fl(w + s), 0, K-2))  (s: the snap)
    j = k + c*K,        frac = fl(w - k)
    forward:     y = fl(fl(slope_j * d) + b_j)
    derivative:  slope_j
    backward:    grad_x = fl(g * slope_j);  the coefficient gradient of the block,
                 G_j = A_j - B_j + B_{j-1} with A_j = sum g and B_j = sum fl(frac * g)
                 over the rows of the block with that j, each sum taken in row order
                 from 0 (B_{j-1} = 0 at the first slot of a channel: k <= K-2).

Two backends compute exactly these operations in exactly this order, hence the same bits
(tests/test_spline.py checks it): `numpy`, the readable reference (one NumPy call per
step above), and `numba`, the same loop compiled and fused (one pass over the block; an
optional dependency, compiled on first use).  `set_backend` chooses; the default is numba
when it imports, else numpy.  Both release the GIL, so the blocks are shared among
`num_threads` threads; blocks depend on the shape alone and their partial sums are added
in order, so results depend on neither the thread count nor the backend.

Forward -> backward: `forward(..., keep=True)` returns `Pieces`, which the backward uses
instead of what it would compute again: always the forward's tables (one table build per
training step), and with the numpy backend, for an input of one block (a minibatch), the
located (index, fraction) arrays: 7 NumPy calls fewer in the backward.  For larger inputs
and with numba the backward locates again from x: writing two more full-size arrays (and
page-faulting them: 16 MB at (16384, 64)) costs more than a few flops per entry in cache
(benchmarks/bench_spline.py measures both).

A NaN or inf input never makes a kernel read outside its tables (the numpy backend takes
with mode='clip', the numba one clips NaN to piece 0); it gives a non-finite output (the
slope times an infinite d, or NaN), which the checked API reports: every kernel returns
whether its outputs are all finite, computed in the same loop (numba) or on the block
while it is in cache (numpy, when asked).
"""
from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

BACKENDS = ("numba", "numpy")
_num_threads = min(2, os.cpu_count() or 1)
_pool_executor = None


class Grid(NamedTuple):
    """What the kernels need of a spline: x_min, fl(1/T), the snap s, K, C, and the
    piece tables (intercepts b, slopes), each (C*K,)."""
    x_min: float
    inv_step: float
    snap: float
    size: int
    channels: int
    intercepts: np.ndarray
    slopes: np.ndarray


class Pieces(NamedTuple):
    """Where the inputs x (M, C) of a forward pass lie, for the backward of the same x.

    x: the forward's input as the caller gave it (the backward checks that it is given
    the same object, so that every backend computes the backward of that x); grid: the Grid
    of the forward (tables at the forward's coefficients); index: (M, C) intp, j = k + c*K;
    fraction: (M, C) float64, fl(w - k).  index and fraction are None when the backward
    locates again (numba; inputs of more than one block)."""
    x: np.ndarray
    grid: Grid
    index: np.ndarray | None  # type: ignore[assignment]  # field shadows tuple.index on purpose
    fraction: np.ndarray | None


# ------------------------------------------------------------------------ threads
def num_threads() -> int:
    """Return the number of threads used by the spline kernels.

    Returns
    -------
    n : int
        The thread count; by default min(2, CPU count).

    See Also
    --------
    set_num_threads : Change it.
    """
    return _num_threads


def set_num_threads(n: int) -> None:
    """Set the number of threads used by the spline kernels.

    Results do not depend on it: row blocks depend on the shape alone and their partial
    sums are added in order.

    Parameters
    ----------
    n : int
        The thread count, >= 1.

    Raises
    ------
    ValueError
        If `n` < 1.
    """
    global _num_threads, _pool_executor
    n = int(n)
    if n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n}")
    if n != _num_threads and _pool_executor is not None:
        _pool_executor.shutdown(wait=True)
        _pool_executor = None
    _num_threads = n


def _pool() -> ThreadPoolExecutor:
    global _pool_executor
    if _pool_executor is None:
        _pool_executor = ThreadPoolExecutor(_num_threads, thread_name_prefix="spline")
    return _pool_executor


def map_blocks(fn, num_rows: int, block_rows: int) -> list:
    """[fn(rows) for each row block slice], the blocks shared among the threads."""
    blocks = [slice(s, s + block_rows) for s in range(0, num_rows, block_rows)]
    if len(blocks) <= 1 or _num_threads == 1:
        return [fn(b) for b in blocks]
    errors = np.geterr()                  # the caller's floating-point error handling

    def run(block):
        with np.errstate(**errors):
            return fn(block)
    return list(_pool().map(run, blocks))


# ------------------------------------------------------------------ numpy backend
@functools.lru_cache(maxsize=64)
def _channel_offsets(channels: int, size: int) -> np.ndarray:
    """c*K for c = 0..C-1, shape (C,) intp (read-only, cached)."""
    offsets = np.arange(channels, dtype=np.intp) * size
    offsets.setflags(write=False)
    return offsets


class NumpyKernels:
    """The reference: one NumPy call per operation of the module docstring."""
    name = "numpy"
    keeps_pieces = True

    @staticmethod
    def _locate(grid: Grid, x, d, w, k):
        """d = x - x_min, w = d * (1/T) and the piece k into the given buffers (w may be
        inf far outside the grid, where the clip handles it; NaN only for a NaN input);
        returns k."""
        np.subtract(x, grid.x_min, out=d)
        with np.errstate(over="ignore", invalid="ignore"):
            np.multiply(d, grid.inv_step, out=w)
            v = np.add(w, grid.snap)
            np.clip(v, 0, grid.size - 2, out=v)
            np.copyto(k, v, casting="unsafe")                # truncation = floor here
        return k

    @staticmethod
    def _flat(grid: Grid, k):
        """j = k + c*K in place."""
        k += _channel_offsets(grid.channels, grid.size)
        return k

    def forward(self, grid, x, out, index, fraction, check):
        d = np.empty_like(x)
        w = fraction if fraction is not None else np.empty_like(x)
        k = self._locate(grid, x, d, w, np.empty(x.shape, np.intp) if index is None else index)
        if fraction is not None:
            fraction -= k
        j = self._flat(grid, k)
        np.take(grid.slopes, j, out=out, mode="clip")
        out *= d
        out += np.take(grid.intercepts, j, out=d, mode="clip")
        return bool(np.isfinite(out).all()) if check else True

    def derivative(self, grid, x, out):
        d = np.empty_like(x)
        j = self._flat(grid, self._locate(grid, x, d, d, np.empty(x.shape, np.intp)))
        np.take(grid.slopes, j, out=out, mode="clip")
        return True

    def backward(self, grid, x, grad_out, grad_x, index, fraction, check):
        if index is None:
            fraction = np.empty_like(x)
            k = self._locate(grid, x, grad_x, fraction, np.empty(x.shape, np.intp))
            fraction -= k
            index = self._flat(grid, k)
        np.take(grid.slopes, index, out=grad_x, mode="clip")
        grad_x *= grad_out
        gf = np.multiply(fraction, grad_out)
        n = grid.slopes.size
        flat = index.ravel()
        part = np.bincount(flat, weights=grad_out.ravel(), minlength=n)
        sum_gf = np.bincount(flat, weights=gf.ravel(), minlength=n)
        part -= sum_gf
        part[1:] += sum_gf[:-1]
        return part, (bool(np.isfinite(grad_x).all()) if check else True)


# ------------------------------------------------------------------ numba backend
# Plain Python loops, compiled by numba on first use (njit(nogil=True, cache=True)).
# Each row is done in loops that the compiler handles well: locate (vectorised), gather,
# scatter-add, check (vectorised); measured 20-25% faster than one loop doing all.
# Table indices are unsigned (np.uint64; v is clipped to [0, K-2] first, so the
# conversion is the same integer): numba wraps negative signed indices, a test and a
# select per access that the unsigned ones do without (forward ~20% faster, fwd+bwd ~11%).
# The locate lines (v = w + s clipped to [0, K-2], NaN to 0) are written out in each kernel
# on purpose: a shared helper would have to be a numba function when this module is
# imported, and numba is optional; the bit-for-bit tests against NumpyKernels._locate keep
# the three copies equal.

def _fused_forward(x, x_min, inv_step, snap, top, size, intercepts, slopes, out):
    rows, cols = x.shape
    js = np.empty(cols, np.uint64)
    ds = np.empty(cols)
    finite = True
    width = np.uint64(size)
    for m in range(rows):
        for c in range(cols):
            d = x[m, c] - x_min
            v = d * inv_step + snap
            if not v >= 0.0:                     # also NaN
                v = 0.0
            if v > top:
                v = top
            js[c] = np.uint64(v) + np.uint64(c) * width
            ds[c] = d
        for c in range(cols):
            j = js[c]
            out[m, c] = slopes[j] * ds[c] + intercepts[j]
        for c in range(cols):
            finite &= abs(out[m, c]) < np.inf
    return finite


def _fused_derivative(x, x_min, inv_step, snap, top, size, slopes, out):
    rows, cols = x.shape
    js = np.empty(cols, np.uint64)
    width = np.uint64(size)
    for m in range(rows):
        for c in range(cols):
            v = (x[m, c] - x_min) * inv_step + snap
            if not v >= 0.0:
                v = 0.0
            if v > top:
                v = top
            js[c] = np.uint64(v) + np.uint64(c) * width
        for c in range(cols):
            out[m, c] = slopes[js[c]]
    return True


def _fused_backward(x, grad_out, x_min, inv_step, snap, top, size, slopes, grad_x):
    rows, cols = x.shape
    n = slopes.size
    sums = np.zeros((n, 2))                      # (A_j, B_j) side by side: one cache line
    js = np.empty(cols, np.uint64)
    gfs = np.empty(cols)
    finite = True
    width = np.uint64(size)
    for m in range(rows):
        for c in range(cols):
            w = (x[m, c] - x_min) * inv_step
            v = w + snap
            if not v >= 0.0:
                v = 0.0
            if v > top:
                v = top
            k = np.uint64(v)
            js[c] = k + np.uint64(c) * width
            gfs[c] = (w - np.float64(k)) * grad_out[m, c]
        for c in range(cols):
            grad_x[m, c] = grad_out[m, c] * slopes[js[c]]
        for c in range(cols):
            j = js[c]
            sums[j, 0] += grad_out[m, c]
            sums[j, 1] += gfs[c]
        for c in range(cols):
            finite &= abs(grad_x[m, c]) < np.inf
    part = np.empty(n)
    for j in range(n):
        part[j] = sums[j, 0] - sums[j, 1]
    for j in range(n - 1):
        part[j + 1] += sums[j, 1]
    return part, finite


class NumbaKernels:
    """The same operations fused into one loop per block (numba, nogil)."""
    name = "numba"
    keeps_pieces = False

    def __init__(self):
        import numba  # ImportError when not installed

        jit = numba.njit(nogil=True, cache=True)
        self._forward = jit(_fused_forward)
        self._derivative = jit(_fused_derivative)
        self._backward = jit(_fused_backward)

    @staticmethod
    def _args(grid):
        return grid.x_min, grid.inv_step, grid.snap, float(grid.size - 2), grid.size

    def forward(self, grid, x, out, index, fraction, check):
        return self._forward(x, *self._args(grid), grid.intercepts, grid.slopes, out)

    def derivative(self, grid, x, out):
        return self._derivative(x, *self._args(grid), grid.slopes, out)

    def backward(self, grid, x, grad_out, grad_x, index, fraction, check):
        return self._backward(x, grad_out, *self._args(grid), grid.slopes, grad_x)


_BACKEND_CLASSES: dict[str, type[NumpyKernels | NumbaKernels]] = {"numba": NumbaKernels,
                                                                 "numpy": NumpyKernels}
# name -> kernels (numba's compiled functions made once)
_instances: dict[str, NumpyKernels | NumbaKernels] = {}
_active: NumpyKernels | NumbaKernels | None = None


def set_backend(name: str | None) -> str:
    """Choose the kernels of the spline evaluations.

    Both backends compute the same operations in the same order, hence the same bits.

    Parameters
    ----------
    name : {'numba', 'numpy'} or None
        The backend: ``'numpy'``, the readable reference, or ``'numba'``, the same loops
        compiled and fused (an optional dependency); None: numba when it imports, else
        numpy.

    Returns
    -------
    name : str
        The backend now in use.

    Raises
    ------
    ValueError
        If `name` is not one of the above.
    ImportError
        If ``'numba'`` is asked for and numba is not installed.

    See Also
    --------
    use_backend : A backend for the duration of a ``with`` block.
    """
    global _active
    if name is None:
        try:
            return set_backend("numba")
        except ImportError:
            return set_backend("numpy")
    if name not in BACKENDS:
        raise ValueError(f"backend: expected one of {list(BACKENDS)} or None, got {name!r}")
    if name not in _instances:
        _instances[name] = _BACKEND_CLASSES[name]()
    _active = _instances[name]
    return name


def backend() -> NumpyKernels | NumbaKernels:
    """Return the kernels in use.

    Returns
    -------
    kernels : object
        The backend's kernels; ``backend().name`` is its name.  Chosen on first use: the
        environment variable ``DSREF_SPLINE_BACKEND``, else ``set_backend(None)``.
    """
    if _active is None:
        set_backend(os.environ.get("DSREF_SPLINE_BACKEND") or None)
    assert _active is not None                   # set_backend chose one or raised
    return _active


@contextmanager
def use_backend(name: str | None) -> Iterator[None]:
    """Run a ``with`` block with a backend, then restore the previous one.

    Parameters
    ----------
    name : {'numba', 'numpy'} or None
        The backend, as in `set_backend`.

    Yields
    ------
    None
        Nothing; the backend is in use inside the block.

    Raises
    ------
    ValueError
        If `name` is not a backend.
    ImportError
        If ``'numba'`` is asked for and numba is not installed.

    Examples
    --------
    >>> import numpy as np
    >>> from reference.nn import LinearSpline, use_backend
    >>> spline = LinearSpline.initialise("abs", num_channels=1, size=5, range_=2.0)
    >>> with use_backend("numpy"):
    ...     spline(np.array([[-0.5]]))
    array([[0.5]])
    """
    previous = backend().name
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


# ------------------------------------------------------------------ drivers
def forward(grid: Grid, x: np.ndarray, block_rows: int, keep: bool = False,
            check: bool = False, source=None, out: np.ndarray | None = None):
    """sigma(x) (M, C) block by block; returns (out, pieces or None, all finite).  The
    finiteness of out is computed with the numba backend always, with numpy when `check`
    (else True).  `source`: the object the caller was given for x (Pieces.x; default x).
    `out`: where to write sigma(x) (float64, C-contiguous, shape of x, not overlapping x;
    the caller checks that), else a new array."""
    kernels = backend()
    source, x = (x if source is None else source), np.ascontiguousarray(x)
    out = np.empty(x.shape) if out is None else out
    index = fraction = None
    if keep and kernels.keeps_pieces and x.shape[0] <= block_rows:
        index, fraction = np.empty(x.shape, np.intp), np.empty(x.shape)
    finite = map_blocks(lambda b: kernels.forward(
        grid, x[b], out[b], None if index is None else index[b],
        None if fraction is None else fraction[b], check), x.shape[0], block_rows)
    pieces = Pieces(source, grid, index, fraction) if keep else None
    return out, pieces, all(finite)


def derivative(grid: Grid, x: np.ndarray, block_rows: int) -> np.ndarray:
    """sigma'(x) (M, C), the slope of the piece of each entry."""
    kernels = backend()
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape)
    map_blocks(lambda b: kernels.derivative(grid, x[b], out[b]), x.shape[0], block_rows)
    return out


def backward(grid: Grid | None, x: np.ndarray, grad_out: np.ndarray, block_rows: int,
             pieces: Pieces | None = None, check: bool = False,
             grad_x: np.ndarray | None = None):
    """(grad_x (M, C), grad_coefficients (C*K,), all finite); with `pieces` (from the
    forward of the same x) the forward's tables and located inputs are used.  `grad_x`:
    where to write it (checked by the caller as `out` in `forward`), else a new array."""
    kernels = backend()
    index = fraction = None
    if pieces is not None:
        grid, index, fraction = pieces.grid, pieces.index, pieces.fraction
    assert grid is not None                  # the callers give grid when there are no pieces
    x, grad_out = np.ascontiguousarray(x), np.ascontiguousarray(grad_out)
    grad_x = np.empty(x.shape) if grad_x is None else grad_x
    parts = map_blocks(lambda b: kernels.backward(
        grid, x[b], grad_out[b], grad_x[b], None if index is None else index[b],
        None if fraction is None else fraction[b], check), x.shape[0], block_rows)
    grad_c = np.zeros(grid.slopes.size)
    finite = True
    for part, ok in parts:
        grad_c += part
        finite &= ok
    return grad_x, grad_c, finite
