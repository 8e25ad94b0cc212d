import bisect
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.nn import _linear_spline as spline_module
from reference.nn import _spline_grid as spline_grid
from reference.nn._knot_spline import KnotSpline
from reference.nn._linear_spline import LinearSpline
from reference.nn._spline_grid import grid_from_range
from reference.testing import check_property

EPS = np.finfo(np.float64).eps
MAX = np.finfo(np.float64).max


def random_spline(rng, channels=3, size=9, x_min=-2.0, step=0.5):
    return LinearSpline(rng.normal(size=(channels, size)), x_min, step)


def naive_eval(s: LinearSpline, x):
    """Independent evaluation: np.interp inside the grid, end slopes outside."""
    out = np.empty_like(x)
    t = s.grid
    for c in range(s.num_channels):
        coef = s.coefficients[c]
        xc = x[:, c]
        y = np.interp(xc, t, coef)
        left, right = xc < t[0], xc > t[-1]
        y[left] = coef[0] + (xc[left] - t[0]) * (coef[1] - coef[0]) / s.step
        y[right] = coef[-1] + (xc[right] - t[-1]) * (coef[-1] - coef[-2]) / s.step
        out[:, c] = y
    return out


def test_forward_matches_independent_evaluation_everywhere():
    rng = np.random.default_rng(0)
    s = random_spline(rng)
    t = s.grid
    special = np.concatenate([t, t + 1e-12, t - 1e-12, [t[0] - 1e6, t[-1] + 1e6, -1e-300, 0.0]])
    x = np.concatenate([rng.uniform(-10, 10, (500, 3)), np.tile(special[:, None], (1, 3))])
    np.testing.assert_allclose(s(x), naive_eval(s, x), rtol=1e-12, atol=1e-12)


def test_forward_is_independent_of_threads_and_blocks(monkeypatch):
    rng = np.random.default_rng(1)
    s = random_spline(rng, channels=5)
    x = rng.normal(size=(3000, 5)) * 3
    g = rng.normal(size=x.shape)
    spline_module.set_num_threads(1)
    ref = s(x), *s.backward(x, g)
    spline_module.set_num_threads(2)
    monkeypatch.setattr(spline_module, "CHUNK_ELEMENTS", 1000)
    new = s(x), *s.backward(x, g)
    for a, b in zip(ref, new):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def test_backward_matches_finite_differences():
    rng = np.random.default_rng(2)
    s = random_spline(rng)
    x = rng.uniform(-4, 4, (40, 3))           # inside and outside the grid [-2, 2]
    x[np.abs((x - s.x_min) / s.step - np.round((x - s.x_min) / s.step)) < 1e-3] += 0.01
    g = rng.normal(size=x.shape)
    grad_x, grad_c = s.backward(x, g)
    h = 1e-6
    fd_x = (np.sum(g * s(x + h)) - np.sum(g * s(x - h))) / (2 * h)
    assert abs(np.sum(grad_x) - fd_x) <= 1e-6 * max(1, abs(fd_x))
    for c in range(3):
        for k in range(s.size):
            plus, minus = s.copy(), s.copy()
            plus.coefficients[c, k] += h
            minus.coefficients[c, k] -= h
            fd = (np.sum(g * plus(x)) - np.sum(g * minus(x))) / (2 * h)
            assert abs(grad_c[c, k] - fd) <= 1e-6 * max(1.0, abs(fd))
    # per-element input gradient
    fd_elem = (s(x + h) - s(x - h)) / (2 * h)
    np.testing.assert_allclose(grad_x, g * fd_elem, rtol=1e-6, atol=1e-8)


def test_derivative_is_slope_of_right_piece_at_knots():
    s = LinearSpline([[0.0, 0.0, 1.0, 3.0]], 0.0, 1.0)
    x = np.array([[-1.0], [0.0], [0.5], [1.0], [2.0], [3.0], [9.0]])
    np.testing.assert_array_equal(s.derivative(x)[:, 0], [0, 0, 0, 1, 2, 2, 2])


def test_tv2_bv2_lipschitz_against_knot_form():
    rng = np.random.default_rng(3)
    s = random_spline(rng)
    k = s.to_knot_form()
    np.testing.assert_allclose(s.tv2(), k.tv2(), rtol=1e-12)
    np.testing.assert_allclose(s.bv2(), k.bv2(), rtol=1e-12)
    np.testing.assert_allclose(s.lipschitz(), k.lipschitz(), rtol=1e-12)
    # Lip <= TV2 + |sigma(1) - sigma(0)| <= BV2 (DESIGN section 2)
    v = s.values_at_zero_one()
    assert np.all(s.lipschitz() <= s.tv2() + np.abs(v[1] - v[0]) + 1e-12)
    assert np.all(s.tv2() + np.abs(v[1] - v[0]) <= s.bv2() + 1e-12)


def test_relu_constants():
    s = LinearSpline.initialise("relu", 1, 11, 1.0)
    assert s.tv2()[0] == pytest.approx(1.0)
    assert s.bv2()[0] == pytest.approx(2.0)
    assert s.lipschitz()[0] == pytest.approx(1.0)
    counts, tol = s.num_knots()
    assert counts[0] == 1 and tol[0] > 0
    positions, _ = s.knots()
    assert positions[0] == pytest.approx([0.0])


def test_gradients_of_regularisers_match_finite_differences():
    rng = np.random.default_rng(4)
    s = random_spline(rng, channels=2, size=7)
    h = 1e-7
    for name in ("tv2", "bv2"):
        grad = getattr(s, f"{name}_grad")()
        for c in range(2):
            for k in range(7):
                plus, minus = s.copy(), s.copy()
                plus.coefficients[c, k] += h
                minus.coefficients[c, k] -= h
                fd = (getattr(plus, name)().sum() - getattr(minus, name)().sum()) / (2 * h)
                assert grad[c, k] == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_knot_form_roundtrip_is_exact(profile):
    @given(st.integers(2, 12), st.floats(-3, 3), st.floats(0.05, 2.0), st.integers(0, 2**31))
    def prop(size, x_min, step, seed):
        rng = np.random.default_rng(seed)
        s = LinearSpline(rng.normal(size=(2, size)), x_min, step)
        back = LinearSpline.from_knot_form(s.to_knot_form(), x_min, step, size)
        np.testing.assert_allclose(back.coefficients, s.coefficients, rtol=1e-9, atol=1e-9)
        x = rng.uniform(x_min - 5, x_min + step * size + 5, (50, 2))
        np.testing.assert_allclose(s.to_knot_form()(x), s(x), rtol=1e-9, atol=1e-9)
        # dropping the zero jumps changes nothing
        np.testing.assert_allclose(s.to_knot_form().pruned()(x), s(x), rtol=1e-9, atol=1e-9)
    check_property(prop, profile, examples=60)


def test_from_knot_form_rejects_off_grid_knots():
    k = KnotSpline([0.0], [1.0], [np.array([0.3])], [np.array([1.0])])
    with pytest.raises(ValueError, match="not interior points of the grid"):
        LinearSpline.from_knot_form(k, -1.0, 0.5, 5)


def test_interpolant_passes_through_points_and_does_not_increase_tv2():
    rng = np.random.default_rng(5)
    s = random_spline(rng, channels=2, size=15)
    points = [np.sort(rng.uniform(-3, 3, 8)) for _ in range(2)]
    values = [s(np.tile(p[:, None], (1, 2)))[:, c] for c, p in enumerate(points)]
    interp = KnotSpline.interpolant(points, values)
    for c in range(2):
        col = np.zeros((8, 2))
        col[:, c] = points[c]
        np.testing.assert_allclose(interp(col)[:, c], values[c], rtol=1e-12, atol=1e-12)
    assert np.all(interp.tv2() <= s.tv2() + 1e-12)
    assert np.all(interp.lipschitz() <= s.lipschitz() + 1e-12)


def test_interpolant_rejects_duplicate_points():
    with pytest.raises(ValueError, match=r"points\[0\]"):
        KnotSpline.interpolant([np.array([0.0, 0.0, 1.0])], [np.array([1.0, 2.0, 3.0])])


def test_sparsify_removes_small_jumps_exactly():
    x_min, step = grid_from_range(11, 1.0)
    s = LinearSpline.initialise("relu", 2, 11, 1.0)
    rng = np.random.default_rng(6)
    noisy = LinearSpline(s.coefficients + 1e-5 * rng.normal(size=s.coefficients.shape),
                         x_min, step)
    new, report = noisy.sparsify(1e-2)
    assert list(report["knots_left"]) == [1, 1]
    assert np.all(report["knots_removed"] == 8)
    counts, _ = new.num_knots()
    assert list(counts) == [1, 1]
    np.testing.assert_allclose(report["max_change_on_grid"],
                               np.abs(new.coefficients - noisy.coefficients).max(axis=1))
    assert np.all(report["max_change_on_grid"] < 1e-3)
    # the kept jumps are unchanged
    big = np.abs(noisy.jumps()) > 1e-2
    np.testing.assert_allclose(new.jumps()[big], noisy.jumps()[big], rtol=1e-9)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "identity", "abs", "even_odd"])
def test_initialisations(name):
    s = LinearSpline.initialise(name, 4, 21, 2.0)
    # c_k = f(t_k): exact at the grid points, and beyond the grid where f is linear
    x = np.tile(np.concatenate([s.grid, [-5.0, 7.0]])[:, None], (1, 4))
    ref = {"relu": np.maximum(x, 0), "leaky_relu": np.where(x >= 0, x, 0.01 * x),
           "identity": x, "abs": np.abs(x)}.get(name)
    if name == "even_odd":
        ref = np.concatenate([np.abs(x[:, :2]),
                              np.sign(x[:, 2:]) * np.maximum(np.abs(x[:, 2:]) - 0.5, 0)], axis=1)
    np.testing.assert_allclose(s(x), ref, atol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"coefficients": [[1.0]], "x_min": 0, "step": 1}, "K >= 2"),
    ({"coefficients": [1.0, 2.0], "x_min": 0, "step": 1}, "2-D"),
    ({"coefficients": [[1.0, np.nan]], "x_min": 0, "step": 1}, "finite"),
    ({"coefficients": [[1.0, 2.0]], "x_min": 0, "step": 0}, "step"),
    ({"coefficients": [[1.0, 2.0]], "x_min": 0, "step": -1}, "step"),
    ({"coefficients": [[1.0, 2.0]], "x_min": np.inf, "step": 1}, "x_min"),
])
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LinearSpline(**kwargs)


def test_bad_inputs():
    s = LinearSpline.initialise("relu", 2, 5, 1.0)
    with pytest.raises(ValueError, match=r"x: expected shape \(M, 2\)"):
        s(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="x: expected finite"):
        s(np.array([[np.inf, 0.0]]))
    with pytest.raises(ValueError, match="grad_out"):
        s.backward(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="init"):
        LinearSpline.initialise("tanh", 2, 5, 1.0)
    with pytest.raises(ValueError, match="threshold"):
        s.sparsify(-1.0)
    with pytest.raises(ValueError, match="size"):
        grid_from_range(1, 1.0)
    with pytest.raises(ValueError, match="n: expected"):
        spline_module.set_num_threads(0)


def test_knot_spline_and_tolerance_errors():
    with pytest.raises(ValueError, match="b1: expected shape"):
        KnotSpline([0.0], [1.0, 2.0], [np.array([])], [np.array([])])
    with pytest.raises(ValueError, match="knots, jumps: expected 1 channels"):
        KnotSpline([0.0], [1.0], [], [])
    with pytest.raises(ValueError, match=r"jumps\[0\]: expected shape"):
        KnotSpline([0.0], [1.0], [np.array([0.0, 1.0])], [np.array([1.0])])
    with pytest.raises(ValueError, match=r"knots\[0\]: expected increasing"):
        KnotSpline([0.0], [1.0], [np.array([1.0, 0.0])], [np.array([1.0, 1.0])])
    with pytest.raises(ValueError, match="values: expected 1 channels"):
        KnotSpline.interpolant([np.array([0.0, 1.0])], [])
    s = LinearSpline.initialise("relu", 1, 5, 1.0)
    with pytest.raises(ValueError, match="tol"):
        s.knots(-1.0)
    with pytest.raises(ValueError, match="size"):
        LinearSpline.from_knot_form(s.to_knot_form(), -1.0, 0.5, 1)
    with pytest.raises(ValueError, match="step"):
        LinearSpline(np.ones((1, 3)), 0.0, "wide")
    counts, tols = s.num_knots(0.5)
    assert counts[0] == 1 and tols[0] == 0.5


@pytest.mark.parametrize("size, range_", [(101, 7.0), (51, 4.0), (21, 2.0), (11, 3.0)])
def test_derivative_at_computed_grid_points_is_the_right_slope(size, range_):
    """Grid points x_min + k*T rounded in floating point still take the right piece."""
    rng = np.random.default_rng(size)
    x_min, step = grid_from_range(size, range_)
    s = LinearSpline(rng.normal(size=(1, size)), x_min, step)
    inner = s.grid[:-1]
    right_slopes = s.slopes()[0]
    np.testing.assert_array_equal(s.derivative(inner[:, None])[:, 0], right_slopes)


# ---------------------------------------------------------------- issue 11: accuracy and range
def exact_value(s: LinearSpline, channel: int, x: float) -> Fraction:
    """sigma(x) in rational arithmetic, the piece found by comparing x with t_k exactly."""
    t = [Fraction(s.x_min) + k * Fraction(s.step) for k in range(s.size)]
    c = [Fraction(v) for v in s.coefficients[channel]]
    k = min(max(bisect.bisect_right(t, Fraction(x)) - 1, 0), s.size - 2)
    return c[k] + (Fraction(x) - t[k]) * (c[k + 1] - c[k]) / Fraction(s.step)


def test_grid_far_from_zero_keeps_full_precision():
    """Issue 11.3: u = x/T - x_min/T cancelled digits (0.29999995 for 0.29999992)."""
    s = LinearSpline([[0.0, 1.0, 0.0]], 1e4, 1e-5)
    x = 1e4 + 0.3 * 1e-5
    exact = exact_value(s, 0, x)
    assert abs(Fraction(s(np.array([[x]]))[0, 0]) - exact) <= 4 * EPS * abs(exact)


def test_piece_near_a_knot_of_a_grid_far_from_zero():
    """Issue 11.3: within ~1e-7 steps of a knot the old kernel took the wrong piece.  Here
    the floats around t_1 = 1e4 + 1e-5 (not a float) lie 2.5e-8 steps apart, far outside
    the snap (1e-12 steps): each takes the exact model's piece."""
    s = LinearSpline([[0.0, 1.0, 0.0]], 1e4, 1e-5)
    t1 = Fraction(1e4) + Fraction(1e-5)
    xs = [float(t1)]
    for direction in (np.inf, -np.inf):
        for _ in range(5):
            xs.append(float(np.nextafter(xs[-1] if len(xs) > 1 else xs[0], direction)))
    xs = np.array(sorted(set(xs)))
    expected = [-1e5 if Fraction(x) >= t1 else 1e5 for x in xs]
    np.testing.assert_allclose(s.derivative(xs[:, None])[:, 0], expected, rtol=4 * EPS)
    for x, value in zip(xs, s(xs[:, None])[:, 0]):
        exact = exact_value(s, 0, x)
        assert abs(Fraction(value) - exact) <= 8 * EPS * abs(exact)


def test_exact_knots_of_a_long_grid_take_the_right_piece():
    """The rounding of (x - x_min)/T grows with k (up to ~2e-12 steps at k = 2e4): the snap
    covers it (knot_snap = KNOT_SNAP + 4 eps K).  With T = 249/1024 the old fixed 1e-12
    put 216 of these exactly representable knots on the left piece."""
    size, step = 20001, 249 / 1024
    s = LinearSpline(np.random.default_rng(7).normal(size=(1, size)), 0.0, step)
    knots = step * np.arange(size)                                # exact floats
    right = s.slopes()[0][np.minimum(np.arange(size), size - 2)]
    np.testing.assert_array_equal(s.derivative(knots[:, None])[:, 0], right)


@pytest.mark.parametrize("x", [-4e307, -1e300, -1.7976931348623157e308])
def test_flat_end_is_exact_for_every_finite_input(x):
    """Issue 11.4: relu at x = -4e307 gave NaN (x*(1/step) overflowed, then 0*inf)."""
    s = LinearSpline.initialise("relu", 1, 21, 2.0)
    assert s(np.array([[x]]))[0, 0] == 0.0
    assert s.derivative(np.array([[x]]))[0, 0] == 0.0
    if abs(x) / s.step < spline_grid.MAX_FLOAT:          # backward needs (x - x_min)/T
        grad_x, grad_c = s.backward(np.array([[x]]), np.array([[1e-300]]))
        assert grad_x[0, 0] == 0.0 and np.all(np.isfinite(grad_c))
    value = s(np.array([[-x]]))[0, 0]                        # right end, slope ~1
    assert abs(Fraction(value) - exact_value(s, 0, -x)) <= 8 * EPS * abs(value)


@pytest.mark.parametrize("kwargs, name", [
    ({"coefficients": [[1e308, -1e308, 1e308]], "x_min": 0, "step": 1}, "coefficients"),
    ({"coefficients": [[0.0, 1e-300, 0.0]], "x_min": 0, "step": 1e50}, "coefficients"),
    ({"coefficients": [[0.0, 1.0, 0.0]], "x_min": -1e308, "step": 1}, "x_min"),
    ({"coefficients": [[0.0, 1.0, 0.0]], "x_min": 10**400, "step": 1}, "x_min"),
    ({"coefficients": [[0.0, 1.0, 0.0]], "x_min": 0, "step": 1e308}, "step"),
    ({"coefficients": [[0.0, 1.0, 0.0]], "x_min": 0, "step": 5e-324}, "step"),
    ({"coefficients": [[0.0, 1.0, 0.0]], "x_min": 0, "step": 10**400}, "step"),
])
def test_parameters_outside_the_supported_range_are_rejected(kwargs, name):
    """Issue 11.4 and 11.7: NaN/inf, IndexError (step 5e-324), OverflowError (400 digits)."""
    with pytest.raises(ValueError, match=rf"^{name}: expected .*supported range"):
        LinearSpline(**kwargs)
    with pytest.raises(ValueError, match=r"^coefficients: expected"):      # no OverflowError
        LinearSpline([[0, 10**400]], 0, 1)


def test_derived_quantities_are_finite_and_nonzero_at_the_corners_of_the_range():
    """Every corner of the supported range: slopes, jumps, TV2, BV2, Lip, knot form and
    values finite, and nonzero where the exact value is (no underflow to a bound of 0)."""
    lo, hi = spline_grid.MIN_COEFFICIENT, spline_grid.MAX_MAGNITUDE
    for x_min in (-hi, hi, 0.0):
        for step in (spline_grid.MIN_STEP, spline_grid.MAX_STEP):
            for coefficients in ([[hi, -hi, hi, -hi]], [[lo, 0.0, lo, -lo]], [[hi, lo, 0, hi]]):
                s = LinearSpline(coefficients, x_min, step)
                k = s.to_knot_form()
                x = np.array([[0.0], [1.0], [s.grid[-1]], [x_min - 1e3 * step], [1e300]])
                with np.errstate(all="raise"):
                    arrays = [s.slopes(), s.jumps(), s.tv2(), s.bv2(), s.lipschitz(),
                              k.b0, k.b1, k.jumps[0], s.derivative(x), k(x[:3])]
                for a in arrays:
                    assert np.all(np.isfinite(a))
                assert np.all(s.lipschitz() > 0) and np.all(s.tv2() > 0)
                assert np.all(np.abs(s.slopes())[s.slopes() != 0] >= 1e-266)


def test_empty_batches():
    """Issue 11.7: backward on (0, C) inputs raised IndexError."""
    s = LinearSpline(np.ones((3, 4)), -1.0, 0.5)
    x = np.zeros((0, 3))
    assert s(x).shape == (0, 3) and s.derivative(x).shape == (0, 3)
    grad_x, grad_c = s.backward(x, x)
    assert grad_x.shape == (0, 3)
    np.testing.assert_array_equal(grad_c, np.zeros((3, 4)))


@pytest.mark.parametrize("range_", [1e308, 1e-60, 2e51, np.nan,
                                    pytest.param(10**400, id="400-digit integer")])
def test_grid_from_range_names_range_outside_the_supported_range(range_):
    """Issue 11.8: --range 1e308 gave an error about the step (or none at all)."""
    with pytest.raises(ValueError, match=r"^range_: expected .*supported range"):
        grid_from_range(21, range_)
    with pytest.raises(ValueError, match=r"^range_: "):
        LinearSpline.initialise("relu", 1, 21, range_)


def test_checked_calls_report_overflow_instead_of_returning_inf():
    """Inputs are any finite floats; a value or gradient beyond float64 is a ValueError."""
    s = LinearSpline([[0.0, 1e100]], 0.0, 1e-50)                     # slope 1e150
    assert s(np.array([[1e150]]))[0, 0] == pytest.approx(1e300, rel=1e-15)
    with pytest.raises(ValueError, match=r"^x: sigma\(x\) is beyond the float64 range"):
        s(np.array([[1e200]]))
    with pytest.raises(ValueError, match=r"^x, grad_out: the gradients"):
        s.backward(np.array([[1e300]]), np.array([[1.0]]))           # frac = 1e350
    grad_x, grad_c = s.backward(np.array([[1e200]]), np.array([[1e-200]]))
    assert grad_x[0, 0] == pytest.approx(1e-50) and np.all(np.isfinite(grad_c))


# ---------------------------------------------------------------- issue 10: kernels, pieces
def kernel_results(s: LinearSpline, x, g):
    """Every kernel output: checked and unchecked forward, derivative, backward with and
    without the forward's pieces."""
    y, pieces = s.forward(x)
    with np.errstate(over="ignore", invalid="ignore"):
        y_unchecked, pieces_unchecked = s.forward_unchecked(x, keep_pieces=True)
        unchecked = s.backward_unchecked(x, g, pieces_unchecked)
    return [y, y_unchecked, s(x), s.derivative(x), *s.backward(x, g), *s.backward(x, g, pieces),
            *unchecked]


def special_inputs(s: LinearSpline, rng, rows: int) -> np.ndarray:
    """Random inputs, grid points and their neighbours, snapped points, far outside."""
    t = s.grid
    snap = t - s.knot_snap * s.step
    special = np.concatenate([t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf), snap,
                              np.nextafter(snap, -np.inf), [t[0] - 1e6 * s.step, 0.0,
                                                            t[-1] + 1e6 * s.step, -1e-300]])
    x = rng.uniform(t[0] - 3 * s.step, t[-1] + 3 * s.step, (rows, s.num_channels))
    x.ravel()[:special.size] = special[:x.size]
    return x


@pytest.mark.parametrize("x_min, step, size", [(-2.0, 0.5, 9), (1e4, 1e-5, 3),
                                               (-4.0, 0.16, 51), (0.0, 249 / 1024, 400)])
@pytest.mark.parametrize("chunk, threads", [(131072, 2), (100, 2), (64, 1)])
def test_numba_and_numpy_kernels_agree_bit_for_bit(monkeypatch, x_min, step, size, chunk,
                                                    threads):
    """The fused numba kernels compute the NumPy reference's operations in its order: every
    output equal bit for bit, on one block and on many (shared among threads)."""
    pytest.importorskip("numba")
    monkeypatch.setattr(spline_module, "CHUNK_ELEMENTS", chunk)
    rng = np.random.default_rng(size)
    coefficients = rng.normal(size=(5, size)) * 10.0 ** rng.integers(-3, 4, (5, 1))
    coefficients[1, : size // 2] = 0.0                                  # a flat end
    s = LinearSpline(coefficients, x_min, step)
    x = special_inputs(s, rng, 300)
    g = rng.normal(size=x.shape)
    g[rng.random(g.shape) < 0.1] = 0.0
    far = np.tile(np.array([[1e300], [-1e300], [MAX], [-MAX]]), (1, s.num_channels))
    results = {}
    spline_module.set_num_threads(threads)
    try:
        for name in ("numpy", "numba"):
            with spline_module.kernels.use_backend(name), np.errstate(all="ignore"):
                results[name] = kernel_results(s, x, g) + [          # unchecked: inf, NaN
                    s.forward_unchecked(far), s.derivative_unchecked(far)]
    finally:
        spline_module.set_num_threads(2)
    for a, b in zip(results["numpy"], results["numba"]):
        np.testing.assert_array_equal(a, b)
    y, _, called, _, grad_x, grad_c, *others = results["numpy"][:-2]
    np.testing.assert_array_equal(y, called)         # with and without pieces, checked or
    for a, b in zip(others, [grad_x, grad_c] * 2):   # not: the same bits
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_pieces_give_the_backward_of_the_forward(backend):
    """backward(x, g, pieces) equals backward(x, g) bit for bit, uses the coefficients of the
    forward pass (an update in between does not change it), and refuses the pieces of
    another x or of another spline."""
    if backend == "numba":
        pytest.importorskip("numba")
    rng = np.random.default_rng(8)
    s = random_spline(rng, channels=4, size=11)
    x, g = rng.normal(size=(40, 4)) * 3, rng.normal(size=(40, 4))
    with spline_module.kernels.use_backend(backend):
        before = s.copy()
        y, pieces = s.forward(x)
        assert pieces.x is x
        assert (pieces.index is not None) == (backend == "numpy")     # one block: kept
        s.coefficients += 1.0                                          # an optimiser step
        for a, b in zip(s.backward(x, g, pieces), before.backward(x, g)):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(y, before(x))
        with pytest.raises(ValueError, match="^pieces: expected the pieces"):
            s.backward(x.copy(), g, pieces)
        with pytest.raises(ValueError, match="^pieces: expected the pieces"):
            s.backward_unchecked(x, g, (pieces.index, pieces.fraction))
        other = random_spline(rng, channels=4, size=7)
        with pytest.raises(ValueError, match=r"^pieces: made by a spline of shape \(4, 11\)"):
            other.backward(x, g, pieces)
        single = x.astype(np.float32)              # converted by the checked calls: the
        _, pieces = before.forward(single)         # same object is what they compare
        for a, b in zip(before.backward(single, g, pieces),
                        before.backward(single.astype(np.float64), g)):
            np.testing.assert_array_equal(a, b)


def test_pieces_of_large_inputs_are_located_again(monkeypatch):
    """Inputs of more than one block keep no (index, fraction) arrays: the backward locates
    them again (cheaper than writing them), with the same result."""
    monkeypatch.setattr(spline_module, "CHUNK_ELEMENTS", 30)
    rng = np.random.default_rng(9)
    s = random_spline(rng, channels=3)
    x, g = rng.normal(size=(25, 3)) * 3, rng.normal(size=(25, 3))
    with spline_module.kernels.use_backend("numpy"):
        _, pieces = s.forward(x)
        assert pieces.index is None and pieces.fraction is None
        _, small = s.forward(x[:10])
        assert small.index.shape == (10, 3)
        for a, b in zip(s.backward(x, g, pieces), s.backward(x, g)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_checks_fused_into_the_kernels_name_the_cause(backend):
    """The checked calls make no pass of their own over finite inputs; a NaN or inf still
    gives the error naming the argument, and no kernel reads outside its tables."""
    if backend == "numba":
        pytest.importorskip("numba")
    s = LinearSpline.initialise("relu", 2, 5, 1.0)
    x = np.zeros((3000, 2))
    with spline_module.kernels.use_backend(backend):
        for bad in (np.nan, np.inf, -np.inf):
            x[1777, 1] = bad
            with pytest.raises(ValueError, match="^x: expected finite values"):
                s(x)
            with pytest.raises(ValueError, match="^x: expected finite values"):
                s.forward(x)
            with pytest.raises(ValueError, match="^x: expected finite values"):
                s.backward(x, np.ones_like(x))
            with np.errstate(all="ignore"):
                assert not np.isfinite(s.forward_unchecked(x)[1777, 1])
        x[1777, 1] = 0.5
        _, pieces = s.forward(x)
        g = np.ones_like(x)
        for bad in (np.nan, np.inf):
            g[5, 0] = bad
            with pytest.raises(ValueError, match="^grad_out: expected finite values"):
                s.backward(x, g, pieces)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_caller_supplied_outputs_give_the_same_bits(monkeypatch, backend):
    """forward/__call__(x, out=) and backward(..., grad_x_out=) write into the caller's
    arrays and return them, bit for bit the values of the allocating calls (one block and
    several); an array of the wrong dtype, shape or layout, read-only, or sharing memory
    with an input (x, grad_out, the pieces' arrays) is refused, naming the argument."""
    if backend == "numba":
        pytest.importorskip("numba")
    rng = np.random.default_rng(11)
    s = random_spline(rng, channels=3, size=9)
    for rows, chunk in ((20, None), (25, 30)):
        if chunk:
            monkeypatch.setattr(spline_module, "CHUNK_ELEMENTS", chunk)
        x, g = rng.normal(size=(rows, 3)) * 4, rng.normal(size=(rows, 3))
        with spline_module.kernels.use_backend(backend):
            y, pieces = s.forward(x)
            grads = s.backward(x, g, pieces)
            out, grad_x = np.full_like(x, np.nan), np.full_like(x, np.nan)
            y_out, pieces_out = s.forward(x, out=out)
            assert y_out is out
            np.testing.assert_array_equal(out, y)
            assert s(x, out=np.empty_like(x)).tobytes() == y.tobytes()
            assert s.forward_unchecked(x, out=np.empty_like(x)).tobytes() == y.tobytes()
            got = s.backward(x, g, pieces_out, grad_x_out=grad_x)
            assert got[0] is grad_x
            for a, b in zip(got, grads):
                np.testing.assert_array_equal(a, b)
            got = s.backward_unchecked(x, g, grad_x_out=np.empty_like(x))
            for a, b in zip(got, grads):
                np.testing.assert_array_equal(a, b)
    x, g = x[:10], g[:10].copy()
    monkeypatch.setattr(spline_module, "CHUNK_ELEMENTS", 10**6)
    bad = [(np.empty((10, 3), np.float32), "expected a float64 numpy array"),
           ([[0.0] * 3] * 10, "expected a float64 numpy array"),
           (np.empty((10, 4)), r"expected shape \(10, 3\)"),
           (np.empty((3, 10)).T, "expected a writeable, C-contiguous"),
           (np.empty((10, 3)).copy(), "expected a writeable, C-contiguous")]
    bad[-1][0].setflags(write=False)
    with spline_module.kernels.use_backend("numpy"):
        _, pieces = s.forward(x)
        for value, message in bad + [(x, "shares memory with an input")]:
            with pytest.raises(ValueError, match=f"^out: {message}"):
                s(x, out=value)
            with pytest.raises(ValueError, match=f"^out: {message}"):
                s.forward_unchecked(x, out=value)
        for value, message in bad + [(g, "shares memory"), (x, "shares memory"),
                                     (pieces.fraction, "shares memory")]:
            with pytest.raises(ValueError, match=f"^grad_x_out: {message}"):
                s.backward(x, g, pieces, grad_x_out=value)
            with pytest.raises(ValueError, match=f"^grad_x_out: {message}"):
                s.backward_unchecked(x, g, pieces, grad_x_out=value)


def test_non_contiguous_inputs_give_the_same_values():
    rng = np.random.default_rng(10)
    s = random_spline(rng, channels=3)
    x = np.asfortranarray(rng.normal(size=(50, 3)))
    g = rng.normal(size=(3, 50)).T                                   # a transposed view
    contiguous = kernel_results(s, np.ascontiguousarray(x), np.ascontiguousarray(g))
    for a, b in zip(kernel_results(s, x, g), contiguous):
        np.testing.assert_array_equal(a, b)


def test_backend_choice():
    """numba is optional: without it the NumPy kernels are used; a bad name is refused."""
    kernels = spline_module.kernels
    with pytest.raises(ValueError, match="^backend: expected one of"):
        kernels.set_backend("cuda")
    with kernels.use_backend("numpy"):
        assert kernels.backend().name == "numpy"
    import subprocess
    import sys
    code = ("import sys; sys.modules['numba'] = None\n"
            "import numpy as np; from reference.nn import _kernels as k\n"
            "from reference.nn import LinearSpline\n"
            "s = LinearSpline.initialise('relu', 2, 5, 1.0); s(np.zeros((3, 2)))\n"
            "assert k.backend().name == 'numpy', k.backend().name\n"
            "try:\n    k.set_backend('numba')\nexcept ImportError:\n    print('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "ok"
    code = ("import sys, reference, reference.nn, reference.training\n"
            "print('numba' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"          # imported on first use, not before
