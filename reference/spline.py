"""Linear-spline activations: uniform-grid form and knot form.

Uniform-grid form (as in DeepSplines), per channel c = 0..C-1 with K coefficients
on the grid t_k = x_min + k*T (k = 0..K-1):

    sigma(x) = sum_k c_k beta1((x - x_min)/T - k)      for x in [t_0, t_{K-1}],

continued linearly outside with the end slopes (c_1 - c_0)/T and (c_{K-1} - c_{K-2})/T.

Knot form: sigma(x) = b0 + b1*x + sum_k a_k (x - tau_k)_+ .  On the uniform grid the
knots are tau_k = t_1..t_{K-2} and the slope jumps are a = (1/T) D2 c.

Pure NumPy, float64, no training logic.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from reference._checks import as_finite_array, check_positive

EPS = np.finfo(np.float64).eps
CHUNK_ELEMENTS = 131072          # entries per row block of the forward / backward kernels
KNOT_SNAP = 1e-12                # inputs within KNOT_SNAP * step below a grid point count as on it
_num_threads = min(2, os.cpu_count() or 1)
_pool_executor = None


def num_threads() -> int:
    """Threads used by the spline kernels (default: min(2, CPU count))."""
    return _num_threads


def set_num_threads(n: int) -> None:
    """Set the threads used by the spline kernels; results do not depend on it."""
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


def _zero_one(num_channels: int) -> np.ndarray:
    """The inputs x = 0 and x = 1 for every channel, shape (2, C)."""
    return np.tile([[0.0], [1.0]], (1, num_channels))


def grid_from_range(size: int, range_: float) -> tuple[float, float]:
    """DeepSplines' grid: K = size coefficients on [-range_, range_].

    Returns (x_min, step) = (-range_, 2*range_/(size - 1)).
    """
    size = int(size)
    if size < 2:
        raise ValueError(f"size: expected an integer >= 2, got {size}")
    check_positive(range_, "range_")
    return -float(range_), 2.0 * float(range_) / (size - 1)


class LinearSpline:
    """C linear splines on one uniform grid.

    coefficients: (C, K), K >= 2, the values sigma_c(t_k) at t_k = x_min + k*step.
    Inputs x have shape (M, C): column c goes through spline c.
    """

    def __init__(self, coefficients, x_min: float, step: float):
        coefficients = as_finite_array(coefficients, "coefficients", ndim=2)
        if coefficients.shape[1] < 2:
            raise ValueError(
                f"coefficients: expected shape (C, K) with K >= 2, got {coefficients.shape}")
        if coefficients.shape[0] < 1:
            raise ValueError("coefficients: expected at least one channel (C >= 1)")
        x_min = float(x_min)
        if not np.isfinite(x_min):
            raise ValueError(f"x_min: expected a finite number, got {x_min}")
        self.coefficients = coefficients
        self.x_min = x_min
        self.step = check_positive(step, "step")

    # ------------------------------------------------------------------ basics
    @property
    def num_channels(self) -> int:
        return self.coefficients.shape[0]

    @property
    def size(self) -> int:
        return self.coefficients.shape[1]

    @property
    def grid(self) -> np.ndarray:
        """Grid points t_k = x_min + k*step, shape (K,)."""
        return self.x_min + self.step * np.arange(self.size)

    def copy(self) -> "LinearSpline":
        return LinearSpline(self.coefficients.copy(), self.x_min, self.step)

    def _check_input(self, x, name="x") -> np.ndarray:
        x = as_finite_array(x, name, ndim=2)
        if x.shape[1] != self.num_channels:
            raise ValueError(
                f"{name}: expected shape (M, {self.num_channels}), got {x.shape}")
        return x

    # ------------------------------------------------------ evaluation
    # The kernels run on row blocks of about CHUNK_ELEMENTS entries, so that every
    # temporary stays in cache, and the blocks are shared among `num_threads` threads
    # (NumPy releases the GIL inside its loops).  Blocks are fixed by the shape alone and
    # their partial sums are added in order: results do not depend on the thread count.
    # The backward locates its inputs again instead of caching (k, frac) from the forward:
    # recomputing in cache is cheaper than writing and page-faulting two full-size arrays.

    def _locate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Piece index and local coordinate of every input.

        u = (x - x_min)/T, k = floor(clip(u + KNOT_SNAP, 0, K-2)), frac = u - k, so that
        sigma(x) = c_k + frac*(c_{k+1} - c_k) holds inside the grid and, because frac is
        not clipped, also gives the linear extrapolation outside it.  KNOT_SNAP makes a
        grid point computed in floating point (x_min + k*T, whose u may round to k - 1e-15)
        fall on the piece to its right, as the derivative convention says; frac is then
        about -1e-15 and the value is unchanged to round-off (sigma is continuous).
        Returns flat indices into coefficients.ravel() (m, C) and frac (m, C).
        """
        u = x * (1.0 / self.step)
        u -= self.x_min / self.step
        flat = np.add(u, KNOT_SNAP)
        np.clip(flat, 0, self.size - 2, out=flat)
        flat = flat.astype(np.intp)                            # truncation = floor here
        u -= flat
        flat += np.arange(self.num_channels, dtype=np.intp) * self.size
        return flat, u

    def _piece_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat tables indexed like coefficients.ravel(): the coefficients c_k, the
        increments dc_k = c_{k+1} - c_k and the slopes dc_k / T (0 in the unused last slot
        of each channel)."""
        dc = np.zeros_like(self.coefficients)
        dc[:, :-1] = np.diff(self.coefficients, axis=1)
        return self.coefficients.ravel(), dc.ravel(), dc.ravel() / self.step

    def _forward_block(self, x, out, tables):
        """out = c[k] + frac * dc[k] on one row block."""
        c, dc, _ = tables
        flat, frac = self._locate(x)
        delta = np.take(dc, flat)
        delta *= frac
        np.add(np.take(c, flat), delta, out=out)

    def _derivative_block(self, x, out, tables):
        """out = dc[k] / T on one row block."""
        flat, _ = self._locate(x)
        np.take(tables[2], flat, out=out)

    def _backward_block(self, x, grad_out, grad_x, tables):
        """grad_x = g * dc[k] / T on one row block; returns its (C*K,) coefficient gradient:
        g*(1 - frac) added at c[k] and g*frac at c[k+1] (k+1 never crosses a channel)."""
        n = self.coefficients.size
        flat, frac = self._locate(x)
        np.take(tables[2], flat, out=grad_x)
        grad_x *= grad_out
        frac *= grad_out
        flat = flat.ravel()
        sum_g = np.bincount(flat, weights=grad_out.ravel(), minlength=n)
        sum_gf = np.bincount(flat, weights=frac.ravel(), minlength=n)
        sum_g -= sum_gf
        sum_g[1:] += sum_gf[:-1]
        return sum_g

    def _blocks(self, num_rows: int) -> list[slice]:
        rows = max(1, CHUNK_ELEMENTS // self.num_channels)
        return [slice(s, s + rows) for s in range(0, num_rows, rows)]

    def _map_blocks(self, fn, num_rows: int) -> list:
        blocks = self._blocks(num_rows)
        if len(blocks) == 1 or num_threads() == 1:
            return [fn(b) for b in blocks]
        return list(_pool().map(fn, blocks))

    def __call__(self, x) -> np.ndarray:
        """sigma(x) for x of shape (M, C); returns (M, C)."""
        return self.forward_unchecked(self._check_input(x))

    def _elementwise(self, block_fn, x: np.ndarray) -> np.ndarray:
        """out (M, C) filled block by block by block_fn(x_block, out_block, tables)."""
        out = np.empty_like(x)
        tables = self._piece_tables()
        self._map_blocks(lambda b: block_fn(x[b], out[b], tables), x.shape[0])
        return out

    def forward_unchecked(self, x: np.ndarray) -> np.ndarray:
        """sigma(x) for a float64 array x of shape (M, C) that is known to be valid."""
        return self._elementwise(self._forward_block, x)

    def derivative(self, x) -> np.ndarray:
        """sigma'(x), shape (M, C). At a knot, the slope of the piece to the right."""
        return self.derivative_unchecked(self._check_input(x))

    def derivative_unchecked(self, x: np.ndarray) -> np.ndarray:
        return self._elementwise(self._derivative_block, x)

    def backward(self, x, grad_out) -> tuple[np.ndarray, np.ndarray]:
        """Vector-Jacobian products of y = sigma(x).

        grad_x[m, c] = grad_out[m, c] * sigma_c'(x[m, c])                         (M, C)
        grad_coefficients[c, k] = sum_m grad_out[m, c] * d sigma_c(x[m, c]) / d c_k  (C, K)
        with d sigma / d c_k = 1 - frac at the left end k of the piece of x and frac at
        its right end k+1 (frac = (x - t_k)/T, outside [0, 1] in the extrapolated ends).
        """
        x = self._check_input(x)
        grad_out = self._check_input(grad_out, "grad_out")
        if grad_out.shape != x.shape:
            raise ValueError(f"grad_out: expected shape {x.shape}, got {grad_out.shape}")
        return self.backward_unchecked(x, grad_out)

    def backward_unchecked(self, x: np.ndarray, grad_out: np.ndarray):
        grad_x = np.empty_like(x)
        tables = self._piece_tables()
        parts = self._map_blocks(
            lambda b: self._backward_block(x[b], grad_out[b], grad_x[b], tables), x.shape[0])
        grad_c = parts[0]
        for part in parts[1:]:
            grad_c += part
        return grad_x, grad_c.reshape(self.coefficients.shape)

    # ------------------------------------------------------ regularisers
    def slopes(self) -> np.ndarray:
        """Slopes of the K-1 linear pieces on the grid, (c_{k+1} - c_k)/T, shape (C, K-1).

        The two unbounded ends continue the first and the last of them."""
        return np.diff(self.coefficients, axis=1) / self.step

    def jumps(self) -> np.ndarray:
        """Slope jumps a = (1/T) D2 c at the knots t_1..t_{K-2}, shape (C, K-2)."""
        return np.diff(self.coefficients, n=2, axis=1) / self.step

    def tv2(self) -> np.ndarray:
        """TV2(sigma_c) = sum_k |a_k| = ||D2 c||_1 / T, shape (C,)."""
        return np.abs(self.jumps()).sum(axis=1)

    def tv2_grad(self) -> np.ndarray:
        """A subgradient of sum_c TV2(sigma_c) in the coefficients: D2^T sign(D2 c) / T, (C, K)."""
        s = np.sign(self.jumps())
        g = np.zeros_like(self.coefficients)
        g[:, :-2] += s
        g[:, 1:-1] -= 2 * s
        g[:, 2:] += s
        return g / self.step

    def values_at_zero_one(self) -> np.ndarray:
        """(sigma_c(0), sigma_c(1)) as shape (2, C)."""
        return self(_zero_one(self.num_channels))

    def bv2(self) -> np.ndarray:
        """||sigma_c||_BV2 = TV2(sigma_c) + |sigma_c(0)| + |sigma_c(1)|, shape (C,)."""
        return self.tv2() + np.abs(self.values_at_zero_one()).sum(axis=0)

    def bv2_grad(self) -> np.ndarray:
        """A subgradient of sum_c ||sigma_c||_BV2 in the coefficients, (C, K)."""
        signs = np.sign(self.values_at_zero_one())
        _, g = self.backward(_zero_one(self.num_channels), signs)
        return self.tv2_grad() + g

    def lipschitz(self) -> np.ndarray:
        """Lip(sigma_c) = max |slope| over all pieces (unbounded ends included), shape (C,)."""
        return np.abs(self.slopes()).max(axis=1)

    def slope_range(self) -> tuple[np.ndarray, np.ndarray]:
        """(min slope, max slope) per channel, each (C,)."""
        s = self.slopes()
        return s.min(axis=1), s.max(axis=1)

    # ------------------------------------------------------ knots
    def knot_tolerance(self, tol=None) -> np.ndarray:
        """Per-channel tolerance for counting knots, shape (C,).

        tol None: 1e-6 * max_k |a_k|, never below the round-off level of a = D2 c / T,
        which is 64 * eps * max|c| / T.  A float tol is used as given (absolute).
        """
        floor = 64 * EPS * np.abs(self.coefficients).max(axis=1) / self.step
        if tol is None:
            rel = 1e-6 * np.abs(self.jumps()).max(axis=1, initial=0.0)
            return np.maximum(rel, floor)
        tol = float(tol)
        if not (np.isfinite(tol) and tol >= 0):
            raise ValueError(f"tol: expected a finite number >= 0, got {tol}")
        return np.full(self.num_channels, tol)

    def knots(self, tol=None) -> tuple[list[np.ndarray], np.ndarray]:
        """Knot positions per channel (|a_k| > tol) and the tolerance used, shape (C,)."""
        tols = self.knot_tolerance(tol)
        a = self.jumps()
        inner = self.grid[1:-1]
        return [inner[np.abs(a[c]) > tols[c]] for c in range(self.num_channels)], tols

    def num_knots(self, tol=None) -> tuple[np.ndarray, np.ndarray]:
        """Number of knots per channel (C,) and the tolerance used (C,)."""
        positions, tols = self.knots(tol)
        return np.array([len(p) for p in positions]), tols

    # ------------------------------------------------------ conversions
    def to_knot_form(self) -> "KnotSpline":
        """Exact knot form: b1 = first slope, b0 = c_0 - b1*t_0, knots t_1..t_{K-2}, a = D2 c/T.

        Every grid knot is kept (a_k may be zero); use `KnotSpline.pruned` to drop them."""
        b1 = (self.coefficients[:, 1] - self.coefficients[:, 0]) / self.step
        b0 = self.coefficients[:, 0] - b1 * self.x_min
        a = self.jumps()
        inner = self.grid[1:-1]
        return KnotSpline(b0, b1, [inner.copy() for _ in range(self.num_channels)], list(a))

    @classmethod
    def from_knot_form(cls, spline: "KnotSpline", x_min: float, step: float, size: int,
                       atol: float = 1e-9) -> "LinearSpline":
        """Sample a knot-form spline on the grid x_min + k*step (k < size): exact when every
        knot lies on an interior grid point (within atol*step); otherwise ValueError."""
        step = check_positive(step, "step")
        size = int(size)
        if size < 2:
            raise ValueError(f"size: expected an integer >= 2, got {size}")
        for c, tau in enumerate(spline.knots):
            u = (tau - x_min) / step
            off = np.abs(u - np.round(u)) > atol
            outside = (np.round(u) < 1) | (np.round(u) > size - 2)
            if np.any(off | outside):
                raise ValueError(
                    f"spline: channel {c} has knots {tau[off | outside]} that are not interior "
                    f"points of the grid x_min={x_min}, step={step}, size={size}")
        grid = x_min + step * np.arange(size)
        return cls(spline(np.tile(grid[:, None], (1, spline.num_channels))).T, x_min, step)

    @classmethod
    def from_slopes(cls, c0, slopes, x_min: float, step: float) -> "LinearSpline":
        """Coefficients from c_0 (C,) and piece slopes (C, K-1): c = c_0 + T*cumsum([0, s])."""
        slopes = np.asarray(slopes, dtype=np.float64)
        steps = np.concatenate([np.zeros((slopes.shape[0], 1)), step * slopes], axis=1)
        return cls(np.asarray(c0, dtype=np.float64)[:, None] + np.cumsum(steps, axis=1),
                   x_min, step)

    # ------------------------------------------------------ sparsification
    def sparsify(self, threshold: float) -> tuple["LinearSpline", dict]:
        """Zero the slope jumps with |a_k| <= threshold and rebuild the coefficients exactly.

        As in DeepSplines, c_0 and c_1 (hence the leftmost piece) are kept; the slopes are
        s_0 + cumsum(a_hat) and c = c_0 + T*cumsum([0, s]).  Returns the new spline and a
        report, per channel (C,): knots removed and knots left (both counted with this
        spline's `knot_tolerance`, which is reported; removed + left = knots before), the
        largest change on the grid max_k |c_hat_k - c_k|, and the change of the right end
        slope (beyond the grid the change grows at most linearly with it).
        """
        threshold = float(threshold)
        if not (np.isfinite(threshold) and threshold >= 0):
            raise ValueError(f"threshold: expected a finite number >= 0, got {threshold}")
        a = self.jumps()
        tol = self.knot_tolerance()
        is_knot = np.abs(a) > tol[:, None]
        small = np.abs(a) <= threshold
        a_hat = np.where(small, 0.0, a)
        s0 = (self.coefficients[:, 1] - self.coefficients[:, 0]) / self.step
        slopes = s0[:, None] + np.concatenate(
            [np.zeros((a.shape[0], 1)), np.cumsum(a_hat, axis=1)], axis=1)
        new = LinearSpline.from_slopes(self.coefficients[:, 0], slopes, self.x_min, self.step)
        report = {
            "threshold": threshold,
            "knot_tolerance": tol,
            "knots_removed": (is_knot & small).sum(axis=1),
            "knots_left": (is_knot & ~small).sum(axis=1),
            "max_change_on_grid": np.abs(new.coefficients - self.coefficients).max(axis=1),
            "end_slope_change": np.abs(new.slopes()[:, -1] - self.slopes()[:, -1]),
        }
        return new, report

    # ------------------------------------------------------ initialisations
    @classmethod
    def initialise(cls, name: str, num_channels: int, size: int, range_: float,
                   slope: float = 0.01) -> "LinearSpline":
        """Coefficients c_k = f(t_k) on DeepSplines' grid [-range_, range_] for f one of
        relu, leaky_relu (negative slope `slope`), identity, abs, even_odd (first half of the
        channels |x|, the rest the soft-threshold x -> sign(x) max(|x| - 1/2, 0))."""
        num_channels = int(num_channels)
        if num_channels < 1:
            raise ValueError(f"num_channels: expected an integer >= 1, got {num_channels}")
        x_min, step = grid_from_range(size, range_)
        t = np.tile(x_min + step * np.arange(int(size)), (num_channels, 1))
        inits = {
            "relu": lambda t: np.maximum(t, 0.0),
            "leaky_relu": lambda t: np.where(t >= 0, t, slope * t),
            "identity": lambda t: t.copy(),
            "abs": np.abs,
            "even_odd": lambda t: np.concatenate(
                [np.abs(t[: num_channels // 2]),
                 np.sign(t[num_channels // 2:]) * np.maximum(np.abs(t[num_channels // 2:]) - 0.5, 0)]),
        }
        if name not in inits:
            raise ValueError(f"init: expected one of {sorted(inits)}, got {name!r}")
        return cls(inits[name](t), x_min, step)


@dataclass
class KnotSpline:
    """C linear splines in knot form, knots free and possibly different per channel.

    sigma_c(x) = b0[c] + b1[c]*x + sum_k jumps[c][k] * (x - knots[c][k])_+ .
    b0, b1: (C,); knots[c], jumps[c]: (n_c,), knots sorted increasingly.
    """
    b0: np.ndarray
    b1: np.ndarray
    knots: list
    jumps: list

    def __post_init__(self):
        self.b0 = as_finite_array(self.b0, "b0", ndim=1)
        self.b1 = as_finite_array(self.b1, "b1", ndim=1)
        if self.b0.shape != self.b1.shape:
            raise ValueError(f"b1: expected shape {self.b0.shape} like b0, got {self.b1.shape}")
        if len(self.knots) != len(self.b0) or len(self.jumps) != len(self.b0):
            raise ValueError(
                f"knots, jumps: expected {len(self.b0)} channels, got {len(self.knots)} and "
                f"{len(self.jumps)}")
        knots, jumps = [], []
        for c, (tau, a) in enumerate(zip(self.knots, self.jumps)):
            tau = as_finite_array(tau, f"knots[{c}]", ndim=1)
            a = as_finite_array(a, f"jumps[{c}]", ndim=1)
            if tau.shape != a.shape:
                raise ValueError(f"jumps[{c}]: expected shape {tau.shape} like knots[{c}], "
                                 f"got {a.shape}")
            if np.any(np.diff(tau) < 0):
                raise ValueError(f"knots[{c}]: expected increasing knot positions")
            knots.append(tau)
            jumps.append(a)
        self.knots, self.jumps = knots, jumps

    @property
    def num_channels(self) -> int:
        return len(self.b0)

    def __call__(self, x) -> np.ndarray:
        """sigma(x) for x of shape (M, C); returns (M, C)."""
        x = as_finite_array(x, "x", ndim=2)
        if x.shape[1] != self.num_channels:
            raise ValueError(f"x: expected shape (M, {self.num_channels}), got {x.shape}")
        out = self.b0 + self.b1 * x
        for c in range(self.num_channels):
            out[:, c] += np.maximum(x[:, c, None] - self.knots[c], 0.0) @ self.jumps[c]
        return out

    def slopes(self, c: int) -> np.ndarray:
        """Slopes of the n_c + 1 pieces of channel c, left to right: b1 + cumsum([0, a])."""
        return self.b1[c] + np.concatenate([[0.0], np.cumsum(self.jumps[c])])

    def tv2(self) -> np.ndarray:
        """TV2 = sum_k |a_k| per channel, (C,)."""
        return np.array([np.abs(a).sum() for a in self.jumps])

    def bv2(self) -> np.ndarray:
        """TV2 + |sigma(0)| + |sigma(1)| per channel, (C,)."""
        return self.tv2() + np.abs(self(_zero_one(self.num_channels))).sum(axis=0)

    def lipschitz(self) -> np.ndarray:
        """max |slope| over all pieces per channel, (C,)."""
        return np.array([np.abs(self.slopes(c)).max() for c in range(self.num_channels)])

    def pruned(self, tol: float = 0.0) -> "KnotSpline":
        """The same splines without the knots whose |jump| <= tol (exact when tol = 0)."""
        keep = [np.abs(a) > tol for a in self.jumps]
        return KnotSpline(self.b0.copy(), self.b1.copy(),
                          [t[k] for t, k in zip(self.knots, keep)],
                          [a[k] for a, k in zip(self.jumps, keep)])

    @classmethod
    def interpolant(cls, points, values) -> "KnotSpline":
        """The piecewise-linear interpolant through (points[c][i], values[c][i]) per channel,
        continued linearly beyond the end points with the end slopes.

        points, values: sequences of C 1-D arrays (each >= 2 distinct points, any order).
        Knots at the interior sorted points; jumps a_i = s_i - s_{i-1} with
        s_i = (v_{i+1} - v_i)/(p_{i+1} - p_i).
        """
        if len(points) != len(values):
            raise ValueError(f"values: expected {len(points)} channels like points, "
                             f"got {len(values)}")
        b0, b1, knots, jumps = [], [], [], []
        for c, (p, v) in enumerate(zip(points, values)):
            p = as_finite_array(p, f"points[{c}]", ndim=1)
            v = as_finite_array(v, f"values[{c}]", ndim=1)
            if p.shape != v.shape:
                raise ValueError(f"values[{c}]: expected shape {p.shape}, got {v.shape}")
            order = np.argsort(p, kind="stable")
            p, v = p[order], v[order]
            if len(p) < 2 or np.any(np.diff(p) <= 0):
                raise ValueError(f"points[{c}]: expected at least 2 distinct points "
                                 "(merge duplicates first)")
            s = np.diff(v) / np.diff(p)
            b1.append(s[0])
            b0.append(v[0] - s[0] * p[0])
            knots.append(p[1:-1])
            jumps.append(np.diff(s))
        return cls(np.array(b0), np.array(b1), knots, jumps)
