"""With the weights fixed, the activations of one spline layer whose downstream map is affine
enter the outputs linearly: the problem in them is convex, and cvxpy solves it to a
certified optimum (the variational problem and representer theorem of Aziznejad et al.,
IEEE TSP 2020, arXiv:2001.06263: the optimal activations are linear splines with their
knots at the data).

    min_sigma  sum_m E(y_m, A sigma(z_m) + c) + lambda * sum_n R(sigma_n)   [|sigma_n'| <= L_max]

z_m = pre-activations of the layer at x_m (M, N), A (N_L, N) and c (N_L,) the affine map
after it, R = TV2 or BV2, E = squared / logistic / cross-entropy summed over samples.

Every grid is parametrised by the values u_i at its sorted points g_i and the slopes s_i of
the pieces between them, tied by u_{i+1} - u_i = h_i s_i (h_i = g_{i+1} - g_i; no matrices
with entries 1/h).  A point z in piece i (the first / last piece beyond the ends) has
sigma(z) = u_i + s_i (z - g_i); TV2 = ||diff(s)||_1; Lip = max |s_i|; BV2 adds |sigma(0)| +
|sigma(1)|.  Grids:
- "data": per neuron its pre-activations at the data (plus 0 and 1 for BV2), points closer
  than merge_rtol * spread (default MERGE_RTOL; spread the range of the neuron's points)
  merged (the first one kept): by the representer theorem the optimum over all
  continuous-domain splines with no knot between merged points, which the certificate
  reports (`merge_report`);
- "uniform": x_min + k*step, k < K, as the DeepSplines grid (the layer's own by default);
- an explicit list of grid points per neuron.
The regulariser R is an entry of reference.nn._regularisers (its extra points, cvxpy term and
NumPy value).  The coefficient problem itself (`CoefficientProblem`, `finish`, `knot_counts`)
is in reference.convex._problem, the representer reduction and the interpolation LP in
reference.convex._representer.  Every solve runs in the internal units of
reference.convex._certify (y, c divided by T = max |y - c|; per neuron n the pre-activations
and its grid by a power of two r_n near their spread, column n of A by a power of two a_n
near its norm; TV2's weight lambda / (T a_n r_n)), and reference.convex._certify gives the
verdict ("optimal" only with a certificate at its tolerance).  The solvers allowed and their
settings: reference.convex._solver_settings.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from reference._limits import Deadline, check_time_limit, guard
from reference._numerics import as_finite_array, check_choice, check_positive
from reference.convex import _active_set as active_set
from reference.convex import _certify as certify
from reference.convex import _one_neuron as one_neuron
from reference.convex._certificate import SolveCertificate
from reference.convex._certify import nearest_power_of_two
from reference.convex._problem import MERGE_RTOL, finish, gauge_basis, problem_for
from reference.convex._solver_settings import (  # noqa: F401 (re-exported)
    LOSS_CLASS,
    PROBLEM_CLASSES,
    check_solver,
    refine_passes,
    usable_solvers,
)
from reference.exceptions import (
    InaccurateSolution,
    SolveFailed,
    SolveNotCertified,
    TooLarge,
)
from reference.nn._losses import LOSSES, check_targets
from reference.nn._network import Network
from reference.nn._regularisers import REGULARISERS as REGISTRY
from reference.nn._regularisers import get as get_regulariser

TIME_LIMIT = 300.0         # seconds of one solve_layer / solve_path call (time_limit)
REGULARISERS = tuple(REGISTRY)     # ("tv2", "bv2"): the names of reference.nn._regularisers
MAX_PROBLEM_SIZE = 500_000  # size guard: grid points + samples x neurons (see problem_size)


def split_at(net: Network, layer: int):
    """(head, spline layer, A, c): head maps x to the layer's pre-activations (None when the
    layer is first), A (N_L, N) and c (N_L,) the affine map after it.  ValueError when layer
    is not a spline layer or what follows it is not affine (dense and identity layers only)."""
    if not isinstance(layer, (int, np.integer)) or not 0 <= layer < len(net.layers):
        raise ValueError(f"layer: expected an index in [0, {len(net.layers)}), got {layer!r}")
    target = net.layers[layer]
    if not target.is_spline:
        raise ValueError(f"layer: layer {layer} is a {target.kind} layer, not a spline layer")
    width = target.n_in
    a_mat, c = np.eye(width), np.zeros(width)
    for j, after in enumerate(net.layers[layer + 1:], start=layer + 1):
        if not after.is_activation:
            w = after.params["weight"]
            a_mat, c = w @ a_mat, w @ c + after.params.get("bias", 0.0)
        elif not after.is_identity:
            raise ValueError(f"layer: the map after layer {layer} is not affine (layer {j} is "
                             f"{after.kind}); the coefficient problem would not be convex")
    head = Network(net.layers[:layer]) if layer > 0 else None
    return head, target, a_mat, c


def merge_points(z: np.ndarray, rtol: float = MERGE_RTOL) -> np.ndarray:
    """Sorted distinct points of z, each point within rtol * spread (max z - min z) of the
    previous kept point dropped (rtol = 0: only equal points).  Sequential only over the
    points within tol of their predecessor (a point farther from it is always kept): O(M)
    plus a loop over the close ones (at 10^6 uniform samples, about a thousand)."""
    values = np.unique(z)
    tol = rtol * float(values[-1] - values[0])
    keep = np.ones(len(values), dtype=bool)
    anchor = -np.inf                         # the last kept point before the current one
    for i in np.flatnonzero(np.diff(values) <= tol) + 1:   # a chain keeps its head
        if keep[i - 1]:
            anchor = values[i - 1]
        keep[i] = values[i] - anchor > tol
    return values[keep]


def data_grid(z: np.ndarray, reg: str, merge_rtol: float = MERGE_RTOL) -> list:
    """The data-adaptive grid per neuron: merged pre-activations (plus the regulariser's
    extra_points: 0 and 1 for BV2; `merge_points` with merge_rtol); a neuron with a single
    point z0 gets a second one at z0 + 2^e, 2^e the power of two nearest |z0| (1 if z0 = 0):
    its spline is then affine, and the second point scales with z."""
    grids = []
    for n in range(z.shape[1]):
        g = merge_points(_neuron_points(z, reg, n), merge_rtol)
        step = np.ldexp(1.0, nearest_power_of_two(abs(float(g[0]))))
        grids.append(g if len(g) >= 2 else np.array([g[0], g[0] + step]))
    return grids


def _neuron_points(z, reg, n) -> np.ndarray:
    """Neuron n's pre-activations plus the regulariser's extra points."""
    extra = get_regulariser(reg).extra_points
    return np.concatenate([z[:, n], extra]) if extra else z[:, n]


def merge_report(z: np.ndarray, reg: str, grids: list, merge_rtol: float) -> dict:
    """What the data grid merged: merged_points per neuron (distinct points of z_n, plus the
    extra points, left out of grid_n because they lie within merge_rtol * spread of a kept
    point), merge_max_distance per neuron (the largest distance from a merged point to the
    kept point below it, 0 if none), merge_rtol.  With merged points the optimum is the one
    over splines with no knot between a merged point and its kept neighbour (an upper bound
    on the unmerged optimum)."""
    counts, dists = [], []
    for n, g in enumerate(grids):
        dropped = np.setdiff1d(np.unique(_neuron_points(z, reg, n)), g)
        below = g[np.clip(np.searchsorted(g, dropped, side="right") - 1, 0, len(g) - 1)]
        counts.append(len(dropped))
        dists.append(float(np.max(dropped - below, initial=0.0)))
    return {"merged_points": counts, "merge_max_distance": dists, "merge_rtol": merge_rtol}


def check_samples(net: Network, x) -> np.ndarray:
    """x (M, N_0) as checked by the network, with at least one sample."""
    x = net.check_inputs(x)
    if len(x) == 0:
        raise ValueError(f"x: expected at least one sample, got shape {x.shape}")
    return x


def problem_size(grid_points: int, samples: int, neurons: int) -> int:
    """The size guard's estimate of a coefficient problem: grid points (each a value and a
    slope variable) + samples x neurons (each a row of the evaluation).  For one neuron cvxpy
    and CLARABEL take about 4 KB and 0.2 ms per unit (uniform grid of 1e5 points: 0.5 GB,
    22 s; 3e5 points: 1.3 GB, 69 s; data grid of 20 000 points: 7 s).  Several neurons
    coupled through the outputs solve more slowly than this linear estimate says (2-2-1 on
    8000 samples, size 3.2e4: 190 s), so the guard stops runaway sizes, not every long
    solve.  The DESIGN bar's largest problem, 2-16-1 on 8000 samples, is 2.6e5."""
    return int(grid_points) + int(samples) * int(neurons)


def prepare(net: Network, layer: int, x, y, loss: str):
    """Validated (x, y in the loss's form, z, A, c)."""
    check_choice(loss, LOSSES, "loss")
    head, target, a_mat, c = split_at(net, layer)
    x = check_samples(net, x)
    y = check_targets(loss, (x.shape[0], net.n_out), y)
    z = head.forward(x) if head is not None else x
    if z.shape[1] != target.n_in:
        raise ValueError(f"x: gives pre-activations of width {z.shape[1]}, layer {layer} "
                         f"expects {target.n_in}")
    return x, y, z, a_mat, c


def grids_for(net, layer, z, reg, grid, size=None, max_size=MAX_PROBLEM_SIZE,
              merge_rtol=MERGE_RTOL, method="full"):
    """The grid points per neuron and whether the result is a uniform-grid spline; the size
    guard (problem_size over max_size: TooLarge) is checked before a grid is built.  With
    method "active" the guard follows the active set's real cost, its first restricted
    problem: at most INITIAL_POINTS points per neuron (reference.convex._active_set), not
    the whole data grid (the candidates themselves are only sorted arrays; the rounds after
    the first are bounded by time_limit)."""
    m, n = z.shape

    def check(points, what="grid points"):
        guard(f"solve: problem size ({what} {points} + samples x neurons {m} x {n})",
              problem_size(points, m, n), max_size, "max_size")
    if isinstance(grid, str):
        check_choice(grid, ("data", "uniform"), "grid")
        if grid == "data":
            per_neuron = m + len(get_regulariser(reg).extra_points)
            if method == "active":
                check(n * min(per_neuron, active_set.INITIAL_POINTS),
                      "the active set's first restricted problem: points")
            else:
                check(n * per_neuron)
            return data_grid(z, reg, merge_rtol), None
        target = net.layers[layer]
        if not target.uniform_grid:
            raise ValueError(f"grid: 'uniform' needs a uniform-grid spline layer at {layer}")
        old = target.spline
        k = old.size if size is None else int(size)
        if k < 3:
            raise ValueError(f"size: expected K >= 3 coefficients, got {size!r}")
        check(k * n)
        lo, hi = old.x_min, old.x_min + (old.size - 1) * old.step
        step = (hi - lo) / (k - 1)
        g = lo + step * np.arange(k)
        return [g.copy() for _ in range(n)], (lo, step, k)
    grids = []
    for k, g in enumerate(grid):
        g = np.unique(as_finite_array(g, f"grid[{k}]", ndim=1))
        if len(g) < 2:
            raise ValueError(f"grid[{k}]: expected at least 2 distinct points")
        grids.append(g)
    if len(grids) != n:
        raise ValueError(f"grid: expected {n} arrays (one per neuron), got {len(grids)}")
    check(sum(len(g) for g in grids))
    return grids, None


def solve_layer(net: Network, layer: int, x: ArrayLike, y: ArrayLike, *, loss: str = "squared",
                lam: float = 1e-3, reg: str = "tv2", grid: str | list[ArrayLike] = "data",
                size: int | None = None, lip_max: float | None = None,
                solver: str = "CLARABEL", max_size: float = MAX_PROBLEM_SIZE,
                method: str | None = None, polish: bool = True,
                merge_rtol: float = MERGE_RTOL, time_limit: float = TIME_LIMIT,
                progress: bool = False) -> tuple[Network, SolveCertificate]:
    r"""Solve for the activations of one spline layer with every weight fixed, certified.

    Parameters
    ----------
    net : Network
        The network; every weight stays fixed.
    layer : int
        Index in ``net.layers`` of a spline layer (uniform-grid or knot-form) followed by
        dense and identity layers only.
    x : array_like, shape (M, N_0)
        The inputs, at least one sample.
    y : array_like
        The targets in the loss's form: (M, N_L) floats (squared), (M,) or (M, 1) labels in
        {0, 1} (logistic), (M,) class indices (xent).
    loss : {'squared', 'logistic', 'xent'}, default 'squared'
        The data term E, summed over the samples.
    lam : float, default 1e-3
        The regularisation weight lambda >= 0.
    reg : {'tv2', 'bv2'}, default 'tv2'
        The regulariser R: TV(2), or the BV(2) norm TV(2) + |sigma(0)| + |sigma(1)|.
    grid : {'data', 'uniform'} or list of array_like, default 'data'
        The candidate knots: per neuron its pre-activations at the data (merged within
        merge_rtol; the representer theorem's grid), the layer's uniform grid (``size``
        points), or one explicit array of grid points per neuron.
    size : int, optional
        The number K >= 3 of uniform grid points (default: the layer's own).
    lip_max : float, optional
        A bound L_max > 0 on every slope; None: no bound.
    solver : str, default 'CLARABEL'
        A cvxpy solver that can solve the problem's class (squared loss a QP / SOCP,
        logistic and cross-entropy an exponential cone program).
    max_size : float, default MAX_PROBLEM_SIZE (500000)
        Size guard on `problem_size`, checked before the grid is built.
    method : {'active', 'full', 'one_neuron'}, optional
        "active" (the default for grid="data": knots added where the optimality condition
        fails, reference.convex._active_set), "one_neuron" (the default for a layer of one
        neuron on the data grid with a nonzero map after it: the same rounds with
        restricted problems of the size of the active set, reference.convex._one_neuron; a
        lambda it does not certify is solved again by "active", certificate key
        ``fallback``) or "full" (every grid point at once; the only choice for the other
        grids).
    polish : bool, default True
        With method "active": re-solve on the knots of the optimum (knot-count polishing).
    merge_rtol : float, default MERGE_RTOL (1e-9)
        The data grid's merge tolerance, in [0, 1), relative to each neuron's spread.
    time_limit : float, default TIME_LIMIT (300.0)
        Seconds for the whole call (building, solving and certifying).
    progress : bool, default False
        A tqdm bar on stderr.

    Returns
    -------
    model : Network
        A copy of net whose layer holds the certified optimum: a uniform-grid spline layer
        for grid="uniform", a knot-form layer (KnotSplineActivation) otherwise.
    certificate : SolveCertificate
        A dict subclass with attribute access (its keys are listed in `SolveCertificate`):
        ``solver``, ``status`` ("optimal"), ``attempts``, ``objective`` (in the problem's
        units), ``objective_check`` (NumPy, on the returned model), ``gap`` (CLARABEL's
        primal - dual objective, else None), ``check_rtol``, ``seconds``, ``knots``,
        ``knot_tolerance`` and ``lipschitz`` (per neuron, `knot_counts`), ``grid_points``,
        ``method``, ``method_certified``, ``gauge_directions_pinned``,
        ``gauge_shift_removed``, ``lam``, ``reg``, ``loss``, ``lip_max``, and the verdict
        of reference.convex._certify: ``certified_by`` ("dual bound" or "solver"),
        ``gap_tolerance``, ``lower_bound`` (a proven lower bound on the optimum, or None)
        with ``lower_bound_note``, ``candidates`` (the cheap feasible points and their
        objectives), ``returned_point``, ``solver_objective``, ``unit`` (the internal scale
        T) and ``objective_unit``; on the data grid ``merged_points``,
        ``merge_max_distance``, ``merge_rtol`` (`merge_report`); with method "active" or
        "one_neuron" also ``rounds``, ``points_per_neuron``, ``candidate_points``,
        ``worst_violation`` and the polishing fields (`solve_layer_active`), and
        ``fallback`` when "one_neuron" handed the lambda to "active".

    Raises
    ------
    ValueError
        When an argument is out of range: layer not a spline layer or not followed by an
        affine map, a bad loss, reg, grid, size, lam, lip_max, merge_rtol or method, or
        targets that do not fit the loss.
    TooLarge
        When `problem_size` exceeds max_size, before the grid is built.
    SolveFailed
        No model: a solver status other than optimal (a cvxpy SolverError included), or
        objective_check off by more than CHECK_RTOL * max(|F|, U).
    SolveNotCertified
        A SolveFailed with ``.model`` (the best feasible point) and ``.certificate``:
        status "time_limit" (time_limit seconds passed; CLARABEL stops inside a solve) or
        "not_optimal" (no certificate at the tolerance, e.g. the zero spline beats the
        solver's point).

    See Also
    --------
    solve_path : The same for a sequence of lambdas.
    reduce_network : The representer reduction of every spline layer.

    Notes
    -----
    With z_m (M, N) the layer's pre-activations at x_m and A, c the affine map after it, the
    problem in the activations sigma_n of the layer is convex [1]_:

    .. math::

        \min_{\sigma} \sum_m E\big(y_m, A \sigma(z_m) + c\big)
        + \lambda \sum_n R(\sigma_n)
        \quad \text{s.t.} \ \mathrm{Lip}(\sigma_n) \le L_{\max},

    R(sigma) = TV(2)(sigma) = ||D^2 sigma||_M (the sum of the slope jumps |a_k| of a linear
    spline) or ||sigma||_BV(2) = TV(2)(sigma) + |sigma(0)| + |sigma(1)|.  On the data grid,
    by the representer theorem of [1]_, the optimum over all continuous-domain activations
    is a linear spline with its knots at the data, so the solve is exact (up to the merging
    of points closer than merge_rtol, reported).  For TV(2), the result is moved along the
    gauge directions (affine shifts invisible at the data, pinned during the solve) to the
    representative of least sum of squared values at the grid points
    (`min_norm_representative`), so that two correct solvers return the same coefficients.
    Every solve runs in the internal units of reference.convex._certify; "optimal" is
    earned by a NumPy dual lower bound (Fenchel duality) or, where none exists, by the
    method's own certificate, each at the gap tolerance.  time_limit covers building,
    solving and certifying, from the moment the data are checked and cvxpy is loaded.

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.

    Examples
    --------
    >>> import numpy as np
    >>> from reference.nn import build_mlp
    >>> from reference.convex import solve_layer
    >>> net = build_mlp([1, 2, 1], activation="spline", rng=0)
    >>> x = np.linspace(-1.0, 1.0, 9)[:, None]
    >>> model, certificate = solve_layer(net, 1, x, np.abs(x), lam=1e-3)
    >>> print(certificate["status"], certificate["certified_by"], certificate["knots"])
    optimal dual bound [0, 1]
    >>> print(round(certificate["objective"], 4))
    0.0074
    """
    (_, new, cert), = _solve_lams(net, layer, x, y, [lam], "lam", loss=loss, reg=reg,
                                  grid=grid, size=size, lip_max=lip_max, solver=solver,
                                  max_size=max_size, method=method, polish=polish,
                                  merge_rtol=merge_rtol, time_limit=time_limit,
                                  progress=progress)
    return new, cert


def solve_path(net: Network, layer: int, x: ArrayLike, y: ArrayLike, lams: Sequence[float], *,
               loss: str = "squared", reg: str = "tv2", grid: str | list[ArrayLike] = "data",
               size: int | None = None, lip_max: float | None = None, solver: str = "CLARABEL",
               max_size: float = MAX_PROBLEM_SIZE, method: str | None = None,
               polish: bool = True, merge_rtol: float = MERGE_RTOL,
               time_limit: float = TIME_LIMIT, progress: bool = False) -> list:
    """Solve the coefficient problem of one spline layer for every lambda of a path.

    Parameters
    ----------
    net : Network
        The network; every weight stays fixed.
    layer : int
        Index in ``net.layers`` of the spline layer (as in `solve_layer`).
    x : array_like, shape (M, N_0)
        The inputs, at least one sample.
    y : array_like
        The targets in the loss's form (as in `solve_layer`).
    lams : sequence of float
        The regularisation weights lambda >= 0, solved in this order (at least one).
    loss : {'squared', 'logistic', 'xent'}, default 'squared'
        As in `solve_layer`.
    reg : {'tv2', 'bv2'}, default 'tv2'
        As in `solve_layer`.
    grid : {'data', 'uniform'} or list of array_like, default 'data'
        As in `solve_layer`.
    size : int, optional
        As in `solve_layer`.
    lip_max : float, optional
        As in `solve_layer`.
    solver : str, default 'CLARABEL'
        As in `solve_layer`.
    max_size : float, default MAX_PROBLEM_SIZE (500000)
        As in `solve_layer`.
    method : {'active', 'full', 'one_neuron'}, optional
        As in `solve_layer`.
    polish : bool, default True
        As in `solve_layer`.
    merge_rtol : float, default MERGE_RTOL (1e-9)
        As in `solve_layer`.
    time_limit : float, default TIME_LIMIT (300.0)
        Seconds for the whole path (building, solving and certifying every lambda).
    progress : bool, default False
        A tqdm bar on stderr.

    Returns
    -------
    path : list of tuple
        One (lam, model, certificate) per lambda, as `solve_layer` returns them.  Each
        certificate's ``seconds`` run from the end of the previous solve (the first
        includes building the problem).

    Raises
    ------
    ValueError, TooLarge, SolveFailed, SolveNotCertified
        As `solve_layer`, at the first lambda that raises.

    See Also
    --------
    solve_layer : One lambda.

    Notes
    -----
    Method "full": the problem is compiled once (lambda is a DPP Parameter of
    `CoefficientProblem`); "active": each lambda starts from the previous one's active set.
    time_limit bounds the whole path.
    """
    return _solve_lams(net, layer, x, y, lams, "lams", loss=loss, reg=reg, grid=grid,
                       size=size, lip_max=lip_max, solver=solver, max_size=max_size,
                       method=method, polish=polish, merge_rtol=merge_rtol,
                       time_limit=time_limit, progress=progress)


METHODS = ("active", "full", "one_neuron")


def check_method(method, grid) -> str:
    """The solve method: None means "active" for the data grid, "full" otherwise (and
    `resolve_method` may make it "one_neuron")."""
    is_data = isinstance(grid, str) and grid == "data"
    if method is None:
        return "active" if is_data else "full"
    check_choice(method, METHODS, "method")
    if method in ("active", "one_neuron") and not is_data:
        given = grid if isinstance(grid, str) else "a list of grids"
        raise ValueError(f"method: {method!r} works on the data grid only (grid='data'); "
                         f"use method='full' for grid={given!r}")
    return method


def resolve_method(requested, method: str, a_mat, loss: str, reg: str, grid) -> str:
    """"one_neuron" (reference.convex._one_neuron) when it was asked for, or when no method
    was and the layer has one neuron with a problem it supports (`one_neuron.supports`,
    a_mat the map A after the layer); a ValueError when it was asked for and does not
    apply; else `method`."""
    fits = one_neuron.supports(a_mat, loss, reg, grid)
    if requested == "one_neuron" and not fits:
        raise ValueError(f"method: 'one_neuron' needs a layer of one neuron (got "
                         f"{a_mat.shape[1]}) with a nonzero map after it, loss in "
                         f"{one_neuron.LOSSES} (got {loss!r}) and grid='data'")
    return "one_neuron" if fits and requested in (None, "one_neuron") else method


def _solve_lams(net, layer, x, y, lams, name, *, loss, reg, grid, size, lip_max, solver,
                max_size, method=None, polish=True, merge_rtol=MERGE_RTOL,
                time_limit=TIME_LIMIT, progress=False):
    """Validate, build the problem once (full) or per lambda (active), solve and certify it
    for every lambda, in the internal units of reference.convex._certify (y by T, the
    pre-activations of neuron n and its grid by the power of two r_n of `certify.z_units`)."""
    from tqdm import tqdm

    lams = [float(lam) for lam in lams]
    if not lams or not all(np.isfinite(lam) and lam >= 0 for lam in lams):
        raise ValueError(f"{name}: expected finite numbers >= 0, got {lams!r}")
    get_regulariser(reg)
    requested, method = method, check_method(method, grid)
    if lip_max is not None:
        check_positive(lip_max, "lip_max")
    if not (np.isfinite(merge_rtol) and 0 <= merge_rtol < 1):
        raise ValueError(f"merge_rtol: expected a number in [0, 1), got {merge_rtol!r}")
    check_time_limit(time_limit)
    x, y, z, a_mat, c = prepare(net, layer, x, y, loss)
    method = resolve_method(requested, method, a_mat, loss, reg, grid)
    if method == "one_neuron":          # its own size estimate: the samples, not the grid
        guard(f"solve: one-neuron problem size ({len(z)} samples x {one_neuron.SIZE_FACTOR:g})",
              one_neuron.size(len(z)), max_size, "max_size")
    unguarded = np.finfo(float).max                    # guarded above for one_neuron
    grids, uniform = grids_for(net, layer, z, reg, grid, size,
                               unguarded if method == "one_neuron" else max_size, merge_rtol,
                               method)
    merged = merge_report(z, reg, grids, merge_rtol) \
        if isinstance(grid, str) and grid == "data" else {}
    solver = check_solver(solver, LOSS_CLASS[loss])            # imports cvxpy
    deadline = Deadline(time_limit)          # from here: building, solving, certifying
    zr = certify.z_units(z, None if uniform is None and isinstance(grid, str) else grids)
    base = certify.Scaled.build(z, a_mat, c, y, loss, reg, 0.0, lip_max, zr,
                                certify.column_units(a_mat))
    grids = base.internal_grids(grids)                  # exact: powers of two
    bar = tqdm(total=len(lams), unit="lambda", desc=f"solve ({method})", leave=False,
               disable=not progress or not sys.stderr.isatty(), file=sys.stderr)
    gauge = gauge_basis(base.z, base.a_mat, loss, lip_max is None, merge_rtol) \
        if get_regulariser(reg).ignores_affine else None
    out, start, prob = [], None, None
    t0 = deadline.start                      # the first lambda's seconds include the setup
    def solve_lam(lam, method, start):
        """(model, certificate, masks) of one lambda: the passes, each concluded."""
        nonlocal prob
        scaled, earlier, refused = base.with_lam(lam), [], None
        passes = refine_passes(solver)
        for index, settings in enumerate(passes):
            try:
                new, cert, masks, extra, stopped, prob = _solve_once(
                    net, layer, x, y, scaled, grids, uniform, method, solver, start,
                    polish, gauge, deadline, bar, prob, settings)
            except SolveFailed:
                if refused is None:
                    raise
                raise refused from None         # the first pass's point and reason
            cert.setdefault("method", method)
            cert.update(merged, seconds=time.perf_counter() - t0)
            if earlier:
                cert["refined"] = ("the first pass was not certified; solved again with "
                                   f"{settings}")
            try:
                new, cert = certify.conclude(net, layer, x, y, lam, scaled, grids,
                                             uniform, new, cert, stopped=stopped,
                                             extra_points=extra + earlier)
                return new, cert, masks
            except SolveNotCertified as exc:
                if stopped or index + 1 == len(passes) or deadline.expired() \
                        or exc.certificate["status"] != "not_optimal":
                    raise
                refused = exc
                earlier = [("first pass's point", scaled.internal_pieces(
                    exc.model.layers[layer], grids))]
        raise AssertionError("unreachable: the last pass returns or raises")

    with bar:
        for lam in lams:
            try:
                new, cert, masks = solve_lam(lam, method, start)
            except SolveFailed as exc:        # SolveNotCertified too: never returned as optimal
                if method != "one_neuron" or deadline.expired():
                    raise
                reason = f"the one-neuron method gave no certified optimum ({exc})"
                try:                          # the fallback keeps the active set's own guard
                    grids_for(net, layer, z, reg, grid, size, max_size, merge_rtol, "active")
                except TooLarge as refused:
                    refused.args = (f"{reason}; its fallback, the active set, is refused: "
                                    f"{refused}",)
                    raise refused from None
                try:
                    new, cert, masks = solve_lam(lam, "active", None)
                except SolveFailed as again:  # both reasons reach the caller
                    again.args = (f"{again}; before the active set, {reason}",)
                    raise
                cert["fallback"] = f"{reason}; solved by the active set"
            start = masks
            out.append((lam, new, cert))
            bar.update()
            t0 = time.perf_counter()
    return out


def _refine_full(prob, result, scaled, grids) -> dict:
    """The full method's solution refined by Newton's method on its knots, every grid point
    a candidate (reference.convex._active_set.refine_solution: logistic and cross-entropy
    without a Lip bound; otherwise the result unchanged): then the knot count is decided
    against a proven jump accuracy (reference.convex._knots) instead of counting the
    interior-point method's tail of tiny slope changes."""
    scale = active_set.reference_scale(scaled.z, scaled.a_mat, scaled.c, scaled.y,
                                       scaled.loss)
    every = [np.ones(len(g), dtype=bool) for g in grids]
    out, _, _ = active_set.refine_solution(prob, result, scaled.z, scaled.a_mat, scaled.c, scaled.y,
                                grids, every, scaled.lam, scale)
    return out


def _solve_once(net, layer, x, y, scaled, grids, uniform, method, solver, start, polish,
                gauge, deadline, bar, prob, settings):
    """One pass of `_solve_lams` for one lambda: (model or None, certificate, active masks,
    extra feasible points, the reason it stopped or None, the full method's problem);
    settings: CLARABEL settings for every solve of the pass (None: `solver_attempts`)."""
    extra, stopped, masks = [], None, start
    try:
        if method in ("active", "one_neuron"):
            engine = active_set.solve_layer_active if method == "active" \
                else one_neuron.solve_layer_one_neuron
            new, cert, masks, extra, stopped = engine(
                net, layer, x, y, scaled, grids, solver=solver, start=start, polish=polish,
                gauge=gauge, deadline=deadline, bar=bar, settings=settings)
        else:
            bar.set_postfix_str(f"{sum(len(g) for g in grids)} grid points")
            prob = prob or problem_for(scaled, grids, gauge, deadline)
            result = prob.solve(scaled.lam, solver, settings=settings)
            if result["status"] == "time_limit":
                new, cert = None, {"solver": solver, "attempts": result["attempts"]}
                stopped = f"stopped at the time limit {deadline.time_limit:g} s"
            else:
                if uniform is None and result["status"] == "optimal":
                    result = _refine_full(prob, result, scaled, grids)
                new, cert = finish(net, layer, x, y, scaled.lam_given, prob, result, uniform,
                                   0.0, scaled=scaled)
    except InaccurateSolution as exc:               # still a feasible point: certify compares
        new, cert = None, {"solver": solver, "rejected": str(exc)}
        extra = [("solver's point (inaccurate)", exc.pieces)]
    return new, cert, masks, extra, stopped, prob
