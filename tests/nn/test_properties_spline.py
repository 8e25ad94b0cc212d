"""Properties of reference.spline against exact rational arithmetic (hypothesis; profiles
from reference.testing: the default suite and, with 10^4 examples, `pytest -m slow`).

The reference is `Exact`, an evaluation in fractions.Fraction written independently of the
kernels: t_k = x_min + k*step computed exactly from the floats x_min and step, the piece of
x found by exact comparisons of x with the t_k, sigma(x) = c_k + (x - t_k)(c_{k+1} - c_k)/step.
These t_k are the grid points of the model.  An input written as x_min + k*step in floats
(`LinearSpline.grid`) is a rounded point like any other: the value is continuous, so the
value checks hold for it as for every input; the derivative checks say which convention
they check.

1. value: within exactly the bound of reference.spline's docstring (per piece, plus the
   distance to the exact line for an input that takes the piece right of a knot);
2. derivative: the right difference quotient of the exact spline at x, or at t_j when x is
   less than knot_snap steps below an interior knot t_j (the convention); either piece
   only in the rounding band the docstring states; computed grid points take the right
   piece on grids with max|t_k| <= GRID_POINT_RATIO * step;
3. backward: grad_x = grad_out * derivative bit for bit, and the coefficient gradient
   against its exact sum within the rounding bound of its operations;
4. slopes, jumps, TV2, Lip and BV2 against exact values; invariances: shifting the grid
   (bit for bit), scaling the coefficients or the grid and the inputs by powers of 2 (bit
   for bit), mirroring; Lip <= TV2 + |sigma(1) - sigma(0)| <= BV2;
5. knot form <-> grid form: bit for bit on dyadic data, within the rounding bound otherwise;
6. the fused numba kernels equal the NumPy reference bit for bit (when numba is installed;
   1. - 4. run with the default backend, numba when installed).

Grids: K in [2, 12] (one example in twenty 50, 400 or 3000; 3000 not for 4. and 5.),
step = m*10^e anywhere in [1e-50, 1e50], x_min 0, symmetric (DeepSplines) or
|x_min|/step = 10^r with r up to 12 and, one time in eight, up to 150 (the supported
maximum, |x_min| <= 1e100).  Coefficients: small integers (flat pieces, exact zeros) or
Gaussian at a scale 10^e, -120 <= e < 100, with entries spread over up to 120 decades and
some zeros, always inside the supported range.  Inputs (16 per example, drawn from): the
computed grid points and their float neighbours, the floats nearest to the exact t_k and
to t_k - knot_snap*step (and their neighbours), points inside, just outside (half a step),
far outside (1e3 steps, +-1e3) and up to the largest float (+-1.8e308).
"""
import functools
import math
from fractions import Fraction
from typing import NamedTuple

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from reference.nn import _linear_spline as spline_module
from reference.nn import _spline_grid as spline_grid
from reference.nn._linear_spline import LinearSpline
from reference.testing import check_property

UNIT = Fraction(1, 2**53)                        # u_r
TINY = Fraction(2) ** -1074
HALF = Fraction(1, 2)
MAX_FLOAT = float(np.finfo(np.float64).max)
SEEDS = st.integers(0, 2**32 - 1)
INPUTS_PER_EXAMPLE = 16
DEFAULT_EXAMPLES = 40           # default profile of the exact-arithmetic properties (~1 s each)


@functools.cache
def gamma(n: int) -> Fraction:
    """gamma_n = n u_r / (1 - n u_r)."""
    return n * UNIT / (1 - n * UNIT)


class Point(NamedTuple):
    """An input x as the exact spline sees it: x, u = (x - x_min)/step, its piece k
    (t_k <= x < t_{k+1}, end pieces extended) and the pieces the kernels may use."""
    x: Fraction
    u: Fraction
    k: int
    pieces: tuple


class Exact:
    """A LinearSpline in exact rational arithmetic, independent of the kernels.  Grid points,
    coefficients and slopes become Fractions on first use (K may be 3000)."""

    def __init__(self, s: LinearSpline):
        self.size, self.coefficients = s.size, s.coefficients
        self.x_min, self.step = Fraction(s.x_min), Fraction(s.step)
        self.snap = Fraction(s.knot_snap)
        self.cache = {}

    def cached(self, key, make):
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def t(self, k: int) -> Fraction:
        """The grid point t_k = x_min + k*step, exactly."""
        return self.cached(("t", k), lambda: self.x_min + k * self.step)

    def c(self, ch: int, k: int) -> Fraction:
        return self.cached(("c", ch, k), lambda: Fraction(self.coefficients[ch, k]))

    def dc(self, ch: int, k: int) -> Fraction:
        return self.cached(("dc", ch, k), lambda: self.c(ch, k + 1) - self.c(ch, k))

    def slope(self, ch: int, k: int) -> Fraction:
        return self.cached(("slope", ch, k), lambda: self.dc(ch, k) / self.step)

    def slopes(self, ch: int) -> list:
        return [self.slope(ch, k) for k in range(self.size - 1)]

    def point(self, x) -> Point:
        """x's piece by exact comparisons with the t_k (floor(u) is only the first guess),
        and the pieces the kernels may use, as the docstring states: clip(floor(u + s)),
        except j-1 or j when |u + s - j| <= gamma_4 |u| + u_r s for an interior knot j."""
        x = Fraction(x)
        u = (x - self.x_min) / self.step
        k = min(max(math.floor(u), 0), self.size - 2)
        while k > 0 and x < self.t(k):
            k -= 1
        while k < self.size - 2 and x >= self.t(k + 1):
            k += 1
        v = u + self.snap
        j = math.floor(v + HALF)
        if 1 <= j <= self.size - 2 and abs(v - j) <= gamma(4) * abs(u) + UNIT * self.snap:
            pieces = (j - 1, j)
        else:
            pieces = (min(max(math.floor(v), 0), self.size - 2),)
        return Point(x, u, k, pieces)

    def line(self, ch: int, k: int, x: Fraction) -> Fraction:
        """p_k(x) = c_k + (x - t_k)(c_{k+1} - c_k)/step, the line of piece k."""
        return self.c(ch, k) + (x - self.t(k)) * self.slope(ch, k)

    def value(self, ch: int, p: Point) -> Fraction:
        return self.line(ch, p.k, p.x)

    def value_and_bound(self, ch: int, p: Point) -> tuple:
        """sigma(x) and the |computed - sigma(x)| allowed: over the pieces the kernels may
        use, the docstring's bound on |computed - p_k(x)|,
        gamma_2 |c_k| + (gamma_4 k + gamma_5 |u|) |c_{k+1} - c_k| + 2^-1074,
        plus |p_k(x) - sigma(x)| (|u - j| |D2 c_j| right of a knot j, else 0)."""
        exact = self.value(ch, p)
        bounds = []
        for k in p.pieces:
            bound = (gamma(2) * abs(self.c(ch, k)) + (gamma(4) * k + gamma(5) * abs(p.u))
                     * abs(self.dc(ch, k)) + TINY)
            bounds.append(bound if k == p.k else bound + abs(self.line(ch, k, p.x) - exact))
        return exact, max(bounds)

    def right_quotient(self, ch: int, x: Fraction) -> Fraction:
        """(sigma(x + h) - sigma(x))/h for an h > 0 such that (x, x + h] holds no knot."""
        p = self.point(x)
        j = p.k + 1                                              # the first knot above x
        h = (self.t(j) - x) / 2 if j <= self.size - 2 else self.step
        return (self.value(ch, self.point(x + h)) - self.value(ch, p)) / h

    def snapped(self, p: Point) -> Fraction:
        """The derivative convention: x less than knot_snap steps below an interior knot
        t_j counts as t_j."""
        j = math.ceil(p.u)
        return self.t(j) if 1 <= j <= self.size - 2 and j - self.snap <= p.u < j else p.x


@st.composite
def splines(draw, max_ratio_exp: float = 150.0, large_sizes=(50, 400, 3000),
            largest: float = spline_grid.MAX_MAGNITUDE, channels: int = 2) -> LinearSpline:
    """A LinearSpline inside the supported range (see the module docstring), coefficients
    at most `largest`."""
    size = (draw(st.sampled_from(large_sizes)) if draw(st.integers(0, 19)) == 0
            else draw(st.integers(2, 12)))
    step = draw(st.floats(1.0, 9.999)) * 10.0 ** draw(st.integers(-50, 49))
    step = min(max(step, spline_grid.MIN_STEP), spline_grid.MAX_STEP)
    kind = draw(st.sampled_from(["zero", "symmetric", "ratio", "ratio"]))
    if kind == "zero":
        x_min = 0.0
    elif kind == "symmetric":
        x_min = -(size - 1) / 2 * step
    else:
        high = max_ratio_exp if draw(st.integers(0, 7)) == 0 else min(12.0, max_ratio_exp)
        x_min = draw(st.sampled_from([-1.0, 1.0])) * 10.0 ** draw(st.floats(-3.0, high)) * step
        x_min = float(np.clip(x_min, -spline_grid.MAX_MAGNITUDE, spline_grid.MAX_MAGNITUDE))
    rng = np.random.default_rng(draw(SEEDS))
    if draw(st.booleans()):
        coefficients = rng.integers(-3, 4, (channels, size)).astype(float)
    else:
        spread = draw(st.sampled_from([0.0, 3.0, 60.0]))
        exponent = draw(st.one_of(st.just(0), st.integers(-120, 99)))
        coefficients = rng.normal(size=(channels, size)) * 10.0 ** (
            exponent + rng.uniform(-spread, spread, (channels, size)))
        magnitude = np.clip(np.abs(coefficients), spline_grid.MIN_COEFFICIENT, largest)
        coefficients = np.sign(coefficients) * magnitude
        coefficients[rng.random((channels, size)) < draw(st.sampled_from([0.0, 0.3]))] = 0.0
    return LinearSpline(coefficients, x_min, step)


def probe_inputs(s: LinearSpline, exact: Exact, rng, count: int = INPUTS_PER_EXAMPLE):
    """`count` inputs drawn from the candidates of the module docstring, shape (count,)."""
    size, grid, step = s.size, s.grid, s.step
    index = {0, 1, size - 2, size - 1, *rng.integers(0, size, 4).tolist()}
    points = []
    for k in index:
        near_knot = float(exact.t(k))
        edge = float(exact.t(k) - exact.snap * exact.step)
        for p in (grid[k], near_knot, edge):
            points += [p, np.nextafter(p, np.inf), np.nextafter(p, -np.inf)]
    points += list(s.x_min + rng.uniform(0, size - 1, 6) * step)
    points += [grid[0] - step / 2, grid[-1] + step / 2, grid[0] - 1e3 * step,
               grid[-1] + 1e3 * step, 0.0, 1.0, -1.0, 1e3, -1e3, -1e-300]
    points += [sign * m for sign in (1.0, -1.0) for m in (1e100, 1e200, 1e300, MAX_FLOAT)]
    return rng.choice(np.array(points), min(count, len(points)), replace=False)


def columns(x: np.ndarray, s: LinearSpline) -> np.ndarray:
    return np.tile(x[:, None], (1, s.num_channels))


# ----------------------------------------------------------------------------- 1. value
def test_value_within_the_stated_bound_of_the_exact_spline(profile):
    @given(splines(), SEEDS)
    def prop(s, seed):
        exact = Exact(s)
        x = probe_inputs(s, exact, np.random.default_rng(seed))
        with np.errstate(over="ignore"):
            values = s.forward_unchecked(columns(x, s))
        for m, xm in enumerate(x):
            point = exact.point(xm)
            for ch in range(s.num_channels):
                v = values[m, ch]
                sigma, bound = exact.value_and_bound(ch, point)
                if np.isfinite(v):
                    assert abs(Fraction(v) - sigma) <= bound, (xm, ch, v, float(sigma))
                else:              # overflow: only where |sigma(x)| is at the float64 edge
                    assert not np.isnan(v) and np.sign(v) == np.sign(sigma), (xm, v)
                    assert abs(sigma) + bound >= MAX_FLOAT, (xm, v, float(sigma))
        try:
            checked = s(columns(x, s))
        except ValueError as exc:
            assert str(exc).startswith("x: ") and not np.all(np.isfinite(values))
        else:
            assert np.array_equal(checked, values)
    check_property(prop, profile, examples=DEFAULT_EXAMPLES)


# ------------------------------------------------------------------------ 2. derivative
def test_derivative_is_the_right_difference_quotient(profile):
    """Convention checked: the exact grid points t_k = x_min + k*step of the model are the
    knots; at a knot, and less than knot_snap steps below it, the derivative is the right
    quotient at the knot; only in the rounding band of the docstring either neighbour."""
    @given(splines(), SEEDS)
    def prop(s, seed):
        exact = Exact(s)
        x = probe_inputs(s, exact, np.random.default_rng(seed))
        derivative = s.derivative(columns(x, s))
        for m, xm in enumerate(x):
            p = exact.point(xm)
            points = [exact.snapped(p)] + ([p.x, exact.t(p.pieces[1])] if len(p.pieces) == 2
                                           else [])
            for ch in range(s.num_channels):
                quotients = [exact.right_quotient(ch, p) for p in points]
                d = Fraction(derivative[m, ch])
                assert any(abs(d - q) <= gamma(2) * abs(q) for q in quotients), (
                    xm, ch, derivative[m, ch], [float(q) for q in quotients])
        # grid points computed as x_min + k*step take the piece right of knot k
        reach = max(abs(exact.t(0)), abs(exact.t(s.size - 1)))
        if reach <= spline_grid.GRID_POINT_RATIO * exact.step:
            right = np.minimum(np.arange(s.size), s.size - 2)
            for k in {0, 1, s.size - 2, s.size - 1}:
                assert exact.point(s.grid[k]).pieces == (right[k],), k
            np.testing.assert_array_equal(s.derivative(columns(s.grid, s)),
                                          s.slopes()[:, right].T)
    check_property(prop, profile, examples=DEFAULT_EXAMPLES)


# --------------------------------------------------------------------------- 3. backward
def test_backward_against_exact_sums(profile):
    """grad_x = fl(grad_out * derivative) bit for bit; grad_coefficients[c, j] against the
    exact sum of grad_out*(1 - frac) (j = k) and grad_out*frac (j = k + 1), frac = u - k,
    within gamma_{M+16} sum |grad_out| (1 + |u| + 2|u - k|) over the rows that touch c_j
    (each term has a few roundings; bincount, the differences and the block sums add at
    most M + 10 more).  Inputs in the piece-rounding band are left out: their piece (and
    hence which coefficients they touch) is either neighbour, as the docstring says."""
    @given(splines(max_ratio_exp=12.0), SEEDS)
    def prop(s, seed):
        exact = Exact(s)
        rng = np.random.default_rng(seed)
        points = [p for p in map(exact.point, probe_inputs(s, exact, rng))
                  if abs(p.u) <= 1e250 and len(p.pieces) == 1]
        x = np.array([float(p.x) for p in points])
        g = rng.normal(size=(len(x), s.num_channels)) * 10.0 ** rng.uniform(-5, 5, (len(x), 1))
        g[rng.random(g.shape) < 0.1] = 0.0
        grad_x, grad_c = s.backward(columns(x, s), g)
        np.testing.assert_array_equal(grad_x, g * s.derivative(columns(x, s)))
        want = [dict() for _ in range(s.num_channels)]
        scale = [dict() for _ in range(s.num_channels)]
        for m, (_, u, _, (k,)) in enumerate(points):
            for ch in range(s.num_channels):
                gf = Fraction(g[m, ch])
                for j, weight in ((k, 1 - (u - k)), (k + 1, u - k)):
                    want[ch][j] = want[ch].get(j, 0) + gf * weight
                    scale[ch][j] = scale[ch].get(j, 0) + abs(gf) * (1 + abs(u) + 2 * abs(u - k))
        for ch in range(s.num_channels):
            untouched = np.ones(s.size, bool)
            untouched[list(want[ch])] = False
            assert np.all(grad_c[ch, untouched] == 0)
            for j, total in want[ch].items():
                assert abs(Fraction(grad_c[ch, j]) - total) <= (
                    gamma(len(x) + 16) * scale[ch][j]), (ch, j, grad_c[ch, j])
    check_property(prop, profile, examples=DEFAULT_EXAMPLES)


# ----------------------------------------------------------------------- 4. regularisers
def exact_regularisers(s: LinearSpline, exact: Exact) -> list:
    """Per channel: exact slopes, jumps, TV2, Lip, BV2 and the rounding bounds of the computed
    ones (slopes and Lip: gamma_2 relative; a jump fl(fl(dc_{k+1}) - fl(dc_k))/T:
    gamma_3 (|dc_k| + |dc_{k+1}|)/T; TV2: gamma_{K+3} times the sum of those; BV2 adds the
    value bounds at 0 and 1 and two roundings)."""
    out = []
    for ch in range(s.num_channels):
        slopes = exact.slopes(ch)
        jumps = [b - a for a, b in zip(slopes, slopes[1:])]
        jump_err = [gamma(3) * (abs(a) + abs(b)) for a, b in zip(slopes, slopes[1:])]
        tv2 = sum((abs(a) for a in jumps), Fraction(0))
        tv2_err = gamma(s.size + 3) * sum((abs(a) + abs(b) for a, b in zip(slopes, slopes[1:])),
                                          Fraction(0))
        at, at_err = zip(*(exact.value_and_bound(ch, exact.point(p)) for p in (0.0, 1.0)))
        bv2 = tv2 + abs(at[0]) + abs(at[1])
        out.append({"slopes": slopes, "jumps": jumps, "jump_err": jump_err, "tv2": tv2,
                    "tv2_err": tv2_err, "lip": max(abs(a) for a in slopes), "at": at,
                    "at_err": at_err, "bv2": bv2,
                    "bv2_err": (tv2_err + sum(at_err)) * (1 + gamma(2)) + gamma(2) * bv2})
    return out


def close(computed, exact: Fraction, bound: Fraction) -> bool:
    return abs(Fraction(float(computed)) - exact) <= bound


def test_regularisers_against_exact_values_and_invariances(profile):
    @given(splines(large_sizes=(50, 400)), SEEDS, st.integers(-20, 20), st.integers(-20, 20))
    def prop(s, seed, p, q):
        exact = Exact(s)
        regs = exact_regularisers(s, exact)
        slopes, jumps, tv2, bv2, lip = s.slopes(), s.jumps(), s.tv2(), s.bv2(), s.lipschitz()
        at = s.values_at_zero_one()
        for ch, r in enumerate(regs):
            for k, a in enumerate(r["slopes"]):
                assert close(slopes[ch, k], a, gamma(2) * abs(a))
            for k, a in enumerate(r["jumps"]):
                assert close(jumps[ch, k], a, r["jump_err"][k])
            assert close(tv2[ch], r["tv2"], r["tv2_err"])
            assert close(lip[ch], r["lip"], gamma(2) * r["lip"])
            assert close(bv2[ch], r["bv2"], r["bv2_err"])
            # Lip <= TV2 + |sigma(1) - sigma(0)| <= BV2, on the computed values
            middle = Fraction(tv2[ch]) + abs(Fraction(at[1, ch]) - Fraction(at[0, ch]))
            slack = 2 * (gamma(2) * r["lip"] + r["tv2_err"] + sum(r["at_err"])) + r["bv2_err"]
            assert Fraction(lip[ch]) <= middle + slack
            assert middle <= Fraction(bv2[ch]) + slack
        # shifting the grid changes none of slopes, jumps, TV2, Lip (bit for bit)
        shifted = LinearSpline(s.coefficients, s.x_min / 2 + 1.0, s.step)
        for name in ("slopes", "jumps", "tv2", "lipschitz"):
            np.testing.assert_array_equal(getattr(shifted, name)(), getattr(s, name)())
        x = probe_inputs(s, exact, np.random.default_rng(seed))
        x = x[(np.abs(x) < 1e280) & ((np.abs(x) > 1e-280) | (x == 0))]
        with np.errstate(over="ignore", under="ignore"):
            values = s.forward_unchecked(columns(x, s))
        # coefficients times 2^p: everything scales by 2^p, bit for bit (inside the range)
        nonzero = np.abs(s.coefficients[s.coefficients != 0])
        if (np.all(nonzero * 2.0 ** p <= spline_grid.MAX_MAGNITUDE)
                and np.all(nonzero * 2.0 ** p >= spline_grid.MIN_COEFFICIENT)):
            scaled = LinearSpline(s.coefficients * 2.0 ** p, s.x_min, s.step)
            for name in ("slopes", "jumps", "tv2", "lipschitz", "bv2"):
                np.testing.assert_array_equal(getattr(scaled, name)(),
                                              getattr(s, name)() * 2.0 ** p)
            with np.errstate(over="ignore", under="ignore"):
                new = scaled.forward_unchecked(columns(x, s))
            normal = np.isfinite(values) & (np.abs(values) > 1e-280) & (np.abs(values) < 1e280)
            np.testing.assert_array_equal(new[normal], values[normal] * 2.0 ** p)
        # grid and inputs times 2^q: the same values, slopes etc. times 2^-q
        if (spline_grid.MIN_STEP <= s.step * 2.0 ** q <= spline_grid.MAX_STEP
                and abs(s.x_min) * 2.0 ** q <= spline_grid.MAX_MAGNITUDE):
            wide = LinearSpline(s.coefficients, s.x_min * 2.0 ** q, s.step * 2.0 ** q)
            for name in ("slopes", "jumps", "tv2", "lipschitz"):
                np.testing.assert_array_equal(getattr(wide, name)(),
                                              getattr(s, name)() * 2.0 ** -q)
            with np.errstate(over="ignore", under="ignore"):
                new = wide.forward_unchecked(columns(x * 2.0 ** q, s))
            np.testing.assert_array_equal(new[np.isfinite(values)], values[np.isfinite(values)])
        # mirror (when t_{K-1} is a float): sigma_m(x) = sigma(-x), the same jumps reversed
        if (Fraction(s.grid[-1]) == exact.t(s.size - 1)
                and abs(s.grid[-1]) <= spline_grid.MAX_MAGNITUDE):
            mirror = LinearSpline(s.coefficients[:, ::-1], -s.grid[-1], s.step)
            np.testing.assert_array_equal(mirror.jumps(), s.jumps()[:, ::-1])
            np.testing.assert_array_equal(mirror.lipschitz(), s.lipschitz())
            for ch, r in enumerate(regs):
                assert close(mirror.tv2()[ch], r["tv2"], r["tv2_err"])
            mirrored = Exact(mirror)
            with np.errstate(over="ignore"):
                back = mirror.forward_unchecked(columns(-x, s))
            for m, xm in enumerate(x[:4]):
                here, there = exact.point(xm), mirrored.point(-xm)
                for ch in range(s.num_channels):
                    if np.isfinite(values[m, ch]) and np.isfinite(back[m, ch]):
                        assert abs(Fraction(back[m, ch]) - Fraction(values[m, ch])) <= (
                            mirrored.value_and_bound(ch, there)[1]
                            + exact.value_and_bound(ch, here)[1])
    check_property(prop, profile, examples=DEFAULT_EXAMPLES)


# ----------------------------------------------------------------------- 5. knot form
def test_knot_form_round_trip_is_exact_on_dyadic_data(profile):
    """x_min = n 2^e, step = 2^e, small integer coefficients times 2^f, inputs on quarter
    steps: every operation is exact, so both conversions and both evaluations agree bit
    for bit."""
    @given(st.integers(2, 12), st.integers(-20, 20), st.integers(-10, 10), st.integers(-10, 10),
           SEEDS)
    def prop(size, n, e, f, seed):
        rng = np.random.default_rng(seed)
        s = LinearSpline(rng.integers(-50, 51, (2, size)) * 2.0 ** f, n * 2.0 ** e, 2.0 ** e)
        knots = s.to_knot_form()
        x = columns(s.x_min + rng.integers(-40, 4 * size + 40, 40) / 4 * s.step, s)
        np.testing.assert_array_equal(knots(x), s(x))
        np.testing.assert_array_equal(knots.pruned()(x), s(x))
        back = LinearSpline.from_knot_form(knots, s.x_min, s.step, size)
        np.testing.assert_array_equal(back.coefficients, s.coefficients)
    check_property(prop, profile)


def test_knot_form_round_trip_within_rounding(profile):
    """On grids with |x_min|/step <= 1e12 (distinct, well separated float grid points; far
    from 0 the grid points, hence the knots, round to fewer digits than the step) and
    coefficients up to 1e90 (the grid form sampled back must lie in the supported range,
    which a coefficient at 1e100 leaves by a rounding error): the knot
    form and the grid form sampled back from it agree with the exact spline within
    gamma_{K+12} S(x), S(x) = |c_0| + |b1|(|x| + |x_min|) + sum_j (|a_j| + |s_{j-1}| + |s_j|)
    (|x| + |t_j| + |x_min|) (the magnitudes that the conversions and the knot form's
    evaluation round: b1, b0 = c_0 - b1 x_min, the jumps from slopes s, the knots
    fl(t_j), and b0 + b1 x + sum_j a_j (x - tau_j)_+), plus (K + 2) 2^-1074 for products
    that underflow."""
    @given(splines(max_ratio_exp=12.0, large_sizes=(50, 400), largest=1e90), SEEDS)
    def prop(s, seed):
        exact = Exact(s)
        knots = s.to_knot_form()
        np.testing.assert_array_equal(knots.knots[0], s.grid[1:-1])
        weights, weighted = [], []                # sum_j w_j and sum_j w_j |t_j| per channel
        for ch in range(s.num_channels):
            slopes = exact.slopes(ch)
            w = [abs(b - a) + abs(a) + abs(b) for a, b in zip(slopes, slopes[1:])]
            weights.append(sum(w, Fraction(0)))
            weighted.append(sum((wj * abs(exact.t(j + 1)) for j, wj in enumerate(w)), Fraction(0)))

        def allowed(ch, x):
            reach = abs(x) + abs(exact.x_min)
            scale = (abs(exact.c(ch, 0)) + abs(exact.slope(ch, 0)) * reach
                     + weights[ch] * reach + weighted[ch])
            return gamma(s.size + 12) * scale + (s.size + 2) * TINY

        x = probe_inputs(s, exact, np.random.default_rng(seed))
        x = x[np.abs(x) <= 1e100]
        values = knots(columns(x, s))
        for m, xm in enumerate(x):
            p = exact.point(xm)
            for ch in range(s.num_channels):
                assert abs(Fraction(values[m, ch]) - exact.value(ch, p)) <= allowed(ch, p.x), (
                    xm, ch)
        back = LinearSpline.from_knot_form(knots, s.x_min, s.step, s.size)
        for ch in range(s.num_channels):
            for k in {0, 1, s.size - 2, s.size - 1}:
                assert abs(Fraction(back.coefficients[ch, k]) - exact.c(ch, k)) <= (
                    allowed(ch, Fraction(s.grid[k]))), (ch, k)
    check_property(prop, profile, examples=DEFAULT_EXAMPLES)


# ------------------------------------------------------------ 6. numba kernels = numpy
def test_numba_kernels_equal_the_numpy_reference_bit_for_bit(profile):
    """The fused kernels (numba) against the NumPy reference on the grids, coefficients and
    inputs above (up to +-1.8e308, where values and gradients may be inf or NaN): forward,
    derivative and backward, with and without the forward's pieces, equal bit for bit."""
    import pytest
    pytest.importorskip("numba")
    kernels = spline_module.kernels

    @given(splines(), SEEDS)
    def prop(s, seed):
        rng = np.random.default_rng(seed)
        x = columns(probe_inputs(s, Exact(s), rng), s)
        g = rng.normal(size=x.shape) * 10.0 ** rng.uniform(-5, 5, (x.shape[0], 1))
        results = {}
        for name in ("numpy", "numba"):
            with kernels.use_backend(name), np.errstate(all="ignore"):
                y, pieces = s.forward_unchecked(x, keep_pieces=True)
                results[name] = [y, s.derivative_unchecked(x), *s.backward_unchecked(x, g),
                                 *s.backward_unchecked(x, g, pieces)]
        for a, b in zip(results["numpy"], results["numba"]):
            np.testing.assert_array_equal(a, b)
    check_property(prop, profile, examples=DEFAULT_EXAMPLES)
