"""Exact rational arithmetic for the decisions floating point cannot make in the exact
methods: is a thin linear region empty, and which regions does it hold?

The exact model (reference.lipschitz._pieces) is the network whose float64 parameters are read as
the rationals they are.  An activation pattern (the piece of every neuron, layer by layer) is an
affine map on its region: z_l = G_l x + c_l before activation layer l, with G, c exact
(products of the weights and of the pieces' slopes; `RationalNetwork`), and its region is
    {x in the box : tau_{k-1} <= (G_l x + c_l)_n <= tau_k  for every neuron (n, l) on piece k},
a convex polytope.  `regions` enumerates, for one or two inputs, the regions of positive
length / area of f inside a starting region given by a pattern prefix (intervals or
polygons clipped exactly, with `fractions.Fraction`: no rounding, hence no sliver and no lost
region); `interior_certificate` and `empty_certificate` decide one pattern in any
dimension (the MILP): a point strictly inside, checked exactly, or a Gordan certificate
y >= 0, y != 0, y^T A = 0, y^T b <= 0 (then A x < b has no solution: no interior).

This is slow (Python integers) and used only where the float64 enumerations find a strip
too thin for their rounding bound: a handful of patterns, never the whole partition.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from fractions import Fraction
from functools import reduce
from itertools import combinations
from math import gcd

import numpy as np

from reference.lipschitz._pieces import PieceTable, piece_table

ZERO = Fraction(0)
CERTIFICATE_ROWS = 10        # empty_certificate: subsets of the rows nearest the LP's point


def _integers(values: np.ndarray) -> tuple[np.ndarray, int]:
    """float64 values as integers over one power of two: (M (object array of ints), e) with
    values = M / 2^e exactly, e >= 0."""
    if values.size == 0 or not np.any(values):
        return np.zeros(values.shape, dtype=object), 0
    exponents = [Fraction(v).denominator.bit_length() - 1 for v in values.ravel().tolist()]
    e = max(exponents)
    scaled = np.array([int(Fraction(v) * (1 << e)) for v in values.ravel().tolist()],
                      dtype=object)
    return scaled.reshape(values.shape), e


class Affine:
    """W affine functions of the input, exactly: row n is (g_n, c_n) = A[n] / D, A (W, d + 1)
    an object array of Python integers (g in the first d columns, c in the last), D > 0 an
    integer (integer arithmetic is much faster than Fractions here)."""

    def __init__(self, a: np.ndarray, d: int):
        common = reduce(gcd, a.ravel().tolist(), d)
        if common > 1:
            a = a // common
            d //= common
        self.a, self.d = a, d

    @classmethod
    def identity(cls, dim: int) -> "Affine":
        return cls(np.array([[int(i == j) for j in range(dim + 1)] for i in range(dim)],
                            dtype=object), 1)

    def __len__(self) -> int:
        return len(self.a)

    def row(self, n: int) -> tuple[list, Fraction]:
        """(g_n, c_n) as Fractions."""
        values = [Fraction(v, self.d) for v in self.a[n].tolist()]
        return values[:-1], values[-1]

    def dense(self, weight: tuple, bias: tuple) -> "Affine":
        """W x + b applied to the rows, W = M / 2^w and b = B / 2^v (`_integers`)."""
        (m, w), (b, v) = weight, bias
        a = m.dot(self.a) * (1 << v)
        a[:, -1] += b * (self.d << w)
        return Affine(a, self.d << (w + v))

    def activate(self, slopes: list, offsets: list) -> "Affine":
        """Row n times slopes[n], plus offsets[n] in its constant (Fractions)."""
        q = reduce(lambda x, y: x * y // gcd(x, y),
                   [f.denominator for f in slopes + offsets], 1)
        scale = np.array([int(f * q) for f in slopes], dtype=object)
        a = self.a * scale[:, None]
        a[:, -1] += np.array([int(f * q) for f in offsets], dtype=object) * self.d
        return Affine(a, self.d * q)


class RationalNetwork:
    """The exact model of a network (module docstring) over a starting region (an interval
    (lo, hi), or a polygon such as `box_polygon`): the dense layers' weights and biases as
    integers over a power of two and the activations' PieceTables, built on first use, and
    the cells of pattern prefixes (`cell`), remembered."""

    def __init__(self, net, tables: dict | None = None, region=None):
        self.net = net
        self.tables = dict(tables or {})
        self.region = region
        self._dense: dict[int, tuple] = {}           # layer -> its integer (weight, bias)
        self._cells: dict[tuple, tuple | None] = {}  # pattern prefix -> (region, maps)
        self._activations = [i for i, layer in enumerate(net.layers) if layer.is_activation]

    def dense(self, i: int, affine: Affine) -> Affine:
        """The affine maps after dense layer i."""
        if i not in self._dense:
            layer = self.net.layers[i]
            w = layer.params["weight"]
            b = layer.params.get("bias")
            self._dense[i] = (_integers(w), _integers(np.zeros(len(w)) if b is None else b))
        return affine.dense(*self._dense[i])

    def table(self, i: int, width: int) -> PieceTable:
        if i not in self.tables:
            self.tables[i] = piece_table(self.net.layers[i], width)
        return self.tables[i]

    def through_dense(self, first: int, affine: Affine) -> Affine:
        """The maps carried through the dense layers from layer `first` on, up to the next
        activation layer."""
        for i in range(first, len(self.net.layers)):
            if self.net.layers[i].is_activation:
                break
            affine = self.dense(i, affine)
        return affine

    def cell(self, prefix: tuple):
        """(region, maps) of a complete pattern prefix (a tuple of tuples: the pieces of the
        first len(prefix) activation layers): the exact region where the network has these
        pieces, and the Affine maps of the pre-activations of the next activation layer (or
        of the output) on it; None when the region has no length / area."""
        if prefix in self._cells:
            return self._cells[prefix]
        if not prefix:
            out = (self.region, self.through_dense(0, Affine.identity(self.net.n_in)))
        else:
            parent = self.cell(prefix[:-1])
            i = self._activations[len(prefix) - 1]
            out = None
            if parent is not None:
                region, maps = parent
                table = self.table(i, len(maps))
                for n, k in enumerate(prefix[-1]):
                    region = _clip(region, *maps.row(n), *_bounds(table.exact(n)[0], k))
                    if region is None:
                        break
                if region is not None:
                    out = (region, self.through_dense(i + 1, _activate(table, prefix[-1],
                                                                       maps)))
        self._cells[prefix] = out
        return out


def _activate(table: PieceTable, pieces, maps: Affine) -> Affine:
    """The maps after an activation layer whose neurons are on the given pieces."""
    return maps.activate([table.exact(n)[1][int(k)] for n, k in enumerate(pieces)],
                         [table.exact(n)[2][int(k)] for n, k in enumerate(pieces)])


def _bounds(knots: list, k: int) -> tuple:
    """The exact ends (lo, hi) of piece k, None for an infinite end."""
    return (knots[k - 1] if k > 0 else None), (knots[k] if k < len(knots) else None)


# --------------------------------------------------------------------------- regions
def _clip_interval(region, a, b):
    """[lo, hi] (Fractions; None for an infinite end) intersected with a x <= b (a = [a_0],
    b Fractions); None when no length is left."""
    lo, hi = region
    a = a[0]
    if a > 0:
        hi = b / a if hi is None else min(hi, b / a)
    elif a < 0:
        lo = b / a if lo is None else max(lo, b / a)
    elif b < 0:
        return None
    return (lo, hi) if lo is None or hi is None or lo < hi else None


def _clip_polygon(poly, a, b):
    """A convex polygon (list of (x, y) Fractions, counter-clockwise) clipped to
    a . v <= b (Sutherland-Hodgman, exact); None when no area is left."""
    s = [a[0] * x + a[1] * y - b for x, y in poly]
    out = []
    for i, v in enumerate(poly):
        j = (i + 1) % len(poly)
        if s[i] <= 0:
            out.append(v)
        if (s[i] < 0 < s[j]) or (s[i] > 0 > s[j]):
            t = s[i] / (s[i] - s[j])
            w = poly[j]
            out.append((v[0] + t * (w[0] - v[0]), v[1] + t * (w[1] - v[1])))
    if len(out) < 3 or polygon_area(out) == 0:
        return None
    return out


def polygon_area(poly) -> Fraction:
    """The area of a polygon (list of (x, y) Fractions), exact (shoelace)."""
    twice = ZERO
    for i, (x0, y0) in enumerate(poly):
        x1, y1 = poly[(i + 1) % len(poly)]
        twice += x0 * y1 - x1 * y0
    return twice / 2


def _values(region, g) -> list:
    """g . v at the vertices of a region (1-D: its two ends, +-inf at an infinite end where
    g != 0)."""
    if isinstance(region, tuple):
        return [ZERO if g[0] == 0 else (g[0] * end if end is not None else
                                       -side * np.sign(float(g[0])) * np.inf)
                for end, side in zip(region, (1, -1))]
    return [g[0] * x + g[1] * y for x, y in region]


def _clip(region, g, c, lo, hi):
    """The region clipped to lo <= g . x + c <= hi (None ends are infinite)."""
    clip = _clip_interval if isinstance(region, tuple) else _clip_polygon
    if lo is not None:
        region = clip(region, [-v for v in g], c - lo)
    if region is not None and hi is not None:
        region = clip(region, g, hi - c)
    return region


def box_polygon(box: float) -> list:
    """The square [-box, box]^2 as an exact polygon (an interval is a pair (lo, hi) of
    Fractions, None for an infinite end)."""
    r = Fraction(box)
    return [(-r, -r), (r, -r), (r, r), (-r, r)]


def regions(rnet: RationalNetwork, prefix: list, deadline=None,
            max_regions: float = np.inf) -> list:
    """Every linear region of positive length / area of f inside rnet's starting region
    whose activation pattern begins with `prefix`: a list, per activation layer, of the
    pieces of its first neurons (complete for every layer but the last one given).
    Returns a list of (pattern, region): pattern a list of tuples (the piece of every
    neuron, per activation layer), region exact.  The prefix's complete layers give a cell
    (`RationalNetwork.cell`); the prescribed neurons of the last layer clip it (the last one
    first: a strip that floating point could not decide is usually empty at once); the
    other neurons, and every later layer, split it along their knots.
    `deadline.expired()` or more than max_regions regions: TimeoutError (the caller gives
    a bracket)."""
    net = rnet.net
    prefix = [tuple(int(k) for k in pieces) for pieces in prefix]
    depth = len(prefix) - 1 if prefix else 0
    complete, given = (tuple(prefix[:-1]), prefix[-1]) if prefix else ((), ())
    start = rnet.cell(complete)
    if start is None:
        return []
    region, maps = start
    layer = rnet._activations[depth] if depth < len(rnet._activations) else len(net.layers)
    if layer < len(net.layers):
        table = rnet.table(layer, len(maps))
        for n in reversed(range(len(given))):
            region = _clip(region, *maps.row(n), *_bounds(table.exact(n)[0], given[n]))
            if region is None:
                return []
    state = [(region, maps, list(complete))]
    for i in range(layer, len(net.layers)):
        if not net.layers[i].is_activation:
            state = [(r, rnet.dense(i, m), pat) for r, m, pat in state]
            continue
        table = rnet.table(i, len(state[0][1]))
        fixed = given if i == layer else ()
        new_state: list[tuple] = []                  # (region, maps, pattern)
        for r, m, pat in state:
            parts = [(r, list(fixed))]
            for n in range(len(fixed), table.width):
                knots = table.exact(n)[0]
                g, c = m.row(n)
                grown = []
                for part, pieces in parts:
                    z = [v + c for v in _values(part, g)]
                    first, last = bisect_right(knots, min(z)), bisect_left(knots, max(z))
                    if first >= last:
                        grown.append((part, pieces + [first]))
                        continue
                    for k in range(first, last + 1):
                        clipped = _clip(part, g, c, *_bounds(knots, k))
                        if clipped is not None:
                            grown.append((clipped, pieces + [k]))
                parts = grown
                if deadline is not None and deadline.expired():
                    raise TimeoutError("time limit")
                if len(parts) + len(new_state) > max_regions:
                    raise TimeoutError("max_regions")
            new_state += [(part, _activate(table, pieces, m), pat + [tuple(pieces)])
                          for part, pieces in parts]
        state = new_state
        if not state:
            return []
    return [(pat, r) for r, _, pat in state]


def interior_point(region) -> np.ndarray:
    """A point strictly inside an exact convex polygon (the mean of its vertices), rounded
    to float64."""
    count = len(region)
    return np.array([float(sum((v[0] for v in region), ZERO) / count),
                     float(sum((v[1] for v in region), ZERO) / count)])


# --------------------------------------------------------------- N-D certificates (MILP)
def pattern_rows(rnet: RationalNetwork, pattern: list) -> list:
    """The constraints of a complete pattern's region as exact rows (key, a, b), a . x <= b,
    one per finite end of every neuron's piece, key = (k, "lo" / "hi") with k the neuron's
    index in network order (all activation layers), in the input dimension."""
    maps = rnet.through_dense(0, Affine.identity(rnet.net.n_in))
    rows, k = [], 0
    for depth, i in enumerate(rnet._activations):
        table = rnet.table(i, len(maps))
        pieces = [int(j) for j in pattern[depth]]
        for n, j in enumerate(pieces):
            g, c = maps.row(n)
            lo, hi = _bounds(table.exact(n)[0], j)
            if lo is not None:
                rows.append(((k, "lo"), [-v for v in g], c - lo))
            if hi is not None:
                rows.append(((k, "hi"), list(g), hi - c))
            k += 1
        maps = rnet.through_dense(i + 1, _activate(table, pieces, maps))
    return rows


def box_rows(box, dim: int) -> list:
    """-box <= x_d <= box as exact rows (a, b): x_d <= box, then -x_d <= box, per d."""
    r = Fraction(box)
    rows = []
    for d in range(dim):
        e = [Fraction(int(d == j)) for j in range(dim)]
        rows += [(e, r), ([-v for v in e], r)]
    return rows


def strictly_inside(rows: list, x) -> bool:
    """Whether the point x (float64 values read exactly, or Fractions) lies in the interior
    of {y : a . y <= b for every row}: a . x < b for every row with a != 0, and b >= 0 for a
    row with a = 0 (a neuron whose pre-activation is constant on the region: it holds
    everywhere or nowhere)."""
    point = [v if isinstance(v, Fraction) else Fraction(float(v)) for v in x]
    return all(sum((ai * xi for ai, xi in zip(a, point) if ai), ZERO) < b if any(a) else b >= 0
               for a, b in rows)


def _echelon_solve(matrix: list, rhs: list, defaults: list) -> list | None:
    """A solution of matrix v = rhs (Fractions, any shape), exact: Gauss-Jordan elimination,
    the free unknowns set to `defaults`; None when the system has no solution."""
    rows, cols = len(matrix), len(defaults)
    m = [list(row) + [r] for row, r in zip(matrix, rhs)]
    pivots, r = [], 0
    for col in range(cols):
        pivot = next((i for i in range(r, rows) if m[i][col] != 0), None)
        if pivot is None:
            continue
        m[r], m[pivot] = m[pivot], m[r]
        m[r] = [v / m[r][col] for v in m[r]]
        for i in range(rows):
            if i != r and m[i][col] != 0:
                f = m[i][col]
                m[i] = [a - f * b for a, b in zip(m[i], m[r])]
        pivots.append(col)
        r += 1
    if any(all(v == 0 for v in row[:-1]) and row[-1] != 0 for row in m[r:]):
        return None
    v = list(defaults)
    for i, col in enumerate(pivots):
        v[col] = m[i][-1] - sum((m[i][j] * v[j] for j in range(cols)
                                 if j not in pivots), ZERO)
    return v


def interior_certificate(rows: list, binding: list, weights: list, guess) -> list | None:
    """A point strictly inside {x : a . x < b for every row}, exactly, from an LP that
    maximised the margin eps in a . x + eps w <= b: the point where its binding rows hold
    with equality at a common margin eps (a_i . x + eps w_i = b_i, w_i > 0 the rows'
    weights, the unknowns the rows leave free set to the LP's point `guess`, or to half of
    it, or to 0, the first that works), returned (as Fractions) when eps > 0 and every row
    holds strictly; else None.  This decides regions
    thinner than the LP's own tolerances (1e-7 in HiGHS)."""
    if not binding:
        return None
    dim = len(rows[0][0])
    matrix = [list(a) + [Fraction(w)] for (a, _), w in zip(binding, weights)]
    rhs = [b for _, b in binding]
    for shrink in (1, Fraction(1, 2), 0):       # the LP's point may sit on the box's face
        solution = _echelon_solve(matrix, rhs,
                                  [shrink * Fraction(float(v)) for v in guess] + [ZERO])
        if solution is not None and solution[dim] > 0 and strictly_inside(rows,
                                                                           solution[:dim]):
            return solution[:dim]
    return None


def _solve(matrix: list, rhs: list) -> list | None:
    """The exact solution of a square linear system (Gaussian elimination on Fractions);
    None when it is singular."""
    n = len(matrix)
    m = [list(row) + [r] for row, r in zip(matrix, rhs)]
    for col in range(n):
        pivot = next((r for r in range(col, n) if m[r][col] != 0), None)
        if pivot is None:
            return None
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(n):
            if r != col and m[r][col] != 0:
                f = m[r][col] / m[col][col]
                m[r] = [a - f * b for a, b in zip(m[r], m[col])]
    return [m[r][n] / m[r][r] for r in range(n)]


def _null_vector(rows: list) -> list | None:
    """A nonzero y with sum_i y_i a_i = 0 for the given rows (a_i, b_i), when the a_i have a
    one-dimensional dependence (Fractions); None otherwise."""
    count, dim = len(rows), len(rows[0][0])
    # y = (y_0 .. y_{count-2}, 1): solve the dim equations in the first count - 1 unknowns
    # by least squares' normal equations (exact); check the solution afterwards
    a = [[rows[i][0][d] for i in range(count - 1)] for d in range(dim)]
    t = [-rows[count - 1][0][d] for d in range(dim)]
    normal = [[sum((a[d][i] * a[d][j] for d in range(dim)), ZERO) for j in range(count - 1)]
              for i in range(count - 1)]
    rhs = [sum((a[d][i] * t[d] for d in range(dim)), ZERO) for i in range(count - 1)]
    y = _solve(normal, rhs) if count > 1 else []
    if y is None:
        return None
    y = y + [Fraction(1)]
    if any(sum((y[i] * rows[i][0][d] for i in range(count)), ZERO) != 0 for d in range(dim)):
        return None
    return y


def _gordan(chosen: list) -> bool:
    """Whether the rows `chosen` carry a Gordan certificate: y >= 0, y != 0 with
    sum y_i a_i = 0 and sum y_i b_i <= 0 (exact; y from the one-dimensional dependence of
    the a_i, `_null_vector`)."""
    if len(chosen) == 1:
        a, b = chosen[0]
        return not any(a) and b <= 0
    y = _null_vector(chosen)
    if y is None:
        return False
    if all(v <= 0 for v in y):
        y = [-v for v in y]
    if any(v < 0 for v in y):
        return False
    return sum((v * b for v, (_, b) in zip(y, chosen)), ZERO) <= 0


def empty_certificate(rows: list, candidates: list, first: int = 0) -> list | None:
    """The indices of rows that prove {x : a . x < b for every row} empty, exactly, by a
    Gordan certificate y >= 0, y != 0, sum y_i a_i = 0, sum y_i b_i <= 0 on them; None when
    none is found.  candidates: indices of rows to combine, the likeliest first (an LP's
    binding rows, its first `first` entries, tried together; then the rows nearest its
    point); then (Caratheodory: a certificate needs at most dim + 1 rows) every subset of
    at most dim + 1 of the first CERTIFICATE_ROWS candidates."""
    if not candidates:
        return None
    if first and _gordan([rows[i] for i in candidates[:first]]):
        return list(candidates[:first])
    dim = len(rows[candidates[0]][0])
    few = candidates[:CERTIFICATE_ROWS]
    for size in range(1, dim + 2):
        for subset in combinations(few, size):
            if _gordan([rows[i] for i in subset]):
                return list(subset)
    return None
