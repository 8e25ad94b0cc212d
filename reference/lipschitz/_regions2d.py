"""Exact Lipschitz constant of a network with two inputs over a box, for every p, by
enumerating its linear regions.

f is continuous and piecewise linear (CPWL).  Over the box B = [-R, R]^2 (convex), Lip_p(f)
= max over the linear regions meeting B of ||J||_{p->p}, J the (constant) Jacobian on the
region; ||J||_{2->2} is the largest singular value, ||J||_{1->1} the largest column l1 sum,
||J||_{inf->inf} the largest row l1 sum.  A region counts whatever its area: a strip 1e-13
wide carries its Jacobian into the max like any other.

Units: the box is written R = m 2^e (1/2 <= m < 1) and the enumeration runs on
u -> f(2^e u) over [-m, m]^2 (`exact.scaled_input`, exact), so that areas, tolerances and
LPs see numbers near 1 for any R; every result is mapped back (Jacobians / 2^e, points
2^e u).

The regions are built as `exact1d.exact_1d` builds its segments, one dimension up (the
machinery is shared: reference.lipschitz._partition): start from the polygon B; before activation
layer l every pre-activation z_n is affine on each current polygon (z = g_n . x + c_n: rows `gain`,
`offset` of a `LayerMap`, shared by the polygons cut from one cell); neuron by neuron, each polygon
is cut into strips by the parallel lines z_n = tau_k, tau_k the knots of the neuron's activation
(reference.lipschitz._pieces), and strip k records piece k of the neuron; after the layer every
polygon knows its pieces, hence the slopes and offsets of its activations, and the affine map moves
through the layer and the next dense layer.  At the end f(x) = gain x + offset on each polygon, J =
gain.

Floating point cannot decide every cut.  Each vertex carries a bound e on the error of
z_n there (`_vertex_error`: the rounding of g . v + c, the error of g and c from their
products, gamma_m |g| |v| + gamma_m |c| with the magnitudes carried in `LayerMap.gain_abs`,
`offset_abs`, and the vertex's own position error `radius` times |g|_1), and the knots
their rounding.  A vertex within its bound of a cut counts as on it (no rounding sliver);
a knot within the bounds of a polygon's z-range starts a strip.  A strip that keeps no
area is not dropped as empty: it is an *undecided sliver* (the piece may meet the polygon
in a region thinner than the rounding), kept with an upper bound of every Jacobian it could
hold (`partition.sliver_bound`), and so is a strip without a vertex strictly inside its
piece: what is left of it lies in a cut's band, which the strip across the cut keeps (the
strip above when the band holds the whole polygon), so no area is counted twice.  The
position error of a vertex cut on an edge
(v_i, v_j) grows by |v_j - v_i| (e_i + e_j) / (|s_i| + |s_j| - e_i - e_j) (the
intersection of nearly parallel lines is ill-conditioned), that of a vertex kept on a cut
by its distance to the cut along an edge that crosses it, or by the band's half-width
along an edge that lies in the band (`clip`, `_reach`).

Certificate.  Each final polygon's pattern is attained when, at an interior point (the
mean of its vertices), every pre-activation computed by Network.forward lies inside its
piece by more than its running error bound (`rounding.robust_pieces`): there the exact
model has that pattern, f is affine around the point, and the network's own Jacobian there
must equal the pattern's (`partition.certify`: JACOBIAN_RTOL relative to the largest entry
or to the entry's magnitude where terms cancel).  The value is the
largest such Jacobian norm.  Every other pattern (a polygon without such a point, an
undecided sliver) whose norm or bound exceeds the value by more than twice the rounding
bound is decided in exact rational arithmetic (reference.lipschitz._rational): its region, clipped
without rounding, is empty (dropped) or holds regions of positive area, whose patterns'
norms then enter the value (proven, not attained at a float64 point).  The areas sum to
the box area (relative AREA_CHECK_RTOL, checked).  A witness pair spans the chord of the
argmax region (or the best attained one) along the steepest direction (`exact.chord_pair`).
The upper end adds the rounding bound `exact.jacobian_rounding` to the largest norm.  What
the exact step cannot finish (time limit) stays in the upper end: a bracket.

Limits: the strips are counted before they are built, and past max_regions (status
"max_regions") or time_limit (status "time_limit") the run stops with a bracket: lower, the
secant ratio of a pair in the box at the best current polygon (`secant_pair`); upper, min
over the layers reached of max over the polygons ||dz_l/dx||_{p->p} times the layer-wise
bound of the layers from l on (`exact.tail_bounds`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference._format import exact
from reference._limits import Deadline, check_box, check_limit
from reference._numerics import gamma
from reference.exceptions import NotApplicable, SolveFailed
from reference.lipschitz import _rational as rational
from reference.lipschitz._bound_result import BoundResult
from reference.lipschitz._bounds import check_finite, jacobian_norms, parse_p, secant_pair
from reference.lipschitz._exact import (
    chord_pair,
    finite_or_none,
    input_scale,
    jacobian_rounding,
    piece_tables,
    scaled_input,
    tail_bounds,
)
from reference.lipschitz._partition import (
    LayerMap,
    begin_cut,
    certify,
    conclude,
    end_cut,
    enumerate_cells,
)
from reference.nn._network import Network

MAX_REGIONS = 200_000        # polygons of the partition (stops with a bracket)
TIME_LIMIT = 60.0            # seconds
AREA_CHECK_RTOL = 1e-9       # sum of the areas = box area, to this relative tolerance
CHUNK = 65536                # polygons per step (memory CHUNK x vertices x width)


@dataclass
class Polygons:
    """P convex polygons, counter-clockwise, padded to V vertices: vertices (P, V, 2), count
    (P,) (entries past count are padding), radius (P, V) (a bound on each vertex's distance,
    per coordinate, to the exact model's vertex) and parent (P,), the row of the layer's
    affine maps (`LayerMap`) that holds on the polygon (the cells container of
    reference.lipschitz._partition)."""
    vertices: np.ndarray
    count: np.ndarray
    radius: np.ndarray
    parent: np.ndarray

    def __len__(self) -> int:
        return len(self.count)

    def take(self, index) -> "Polygons":
        return Polygons(self.vertices[index], self.count[index], self.radius[index],
                        self.parent[index])

    @staticmethod
    def concat(parts: list) -> "Polygons":
        width = max(part.vertices.shape[1] for part in parts)
        pad = [np.pad(part.vertices, ((0, 0), (0, width - part.vertices.shape[1]), (0, 0)))
               for part in parts]
        radius = [np.pad(part.radius, ((0, 0), (0, width - part.radius.shape[1])))
                  for part in parts]
        return Polygons(np.concatenate(pad), np.concatenate([part.count for part in parts]),
                        np.concatenate(radius), np.concatenate([part.parent for part in parts]))

    def split(self, maps: LayerMap, n: int, knots: np.ndarray, knot_error: float) -> tuple:
        return _split(self, maps, n, knots, knot_error, maps.rounds)


def _next_index(count: np.ndarray, width: int) -> np.ndarray:
    """(P, V): the index of the next vertex of each polygon (cyclic within its count)."""
    idx = np.arange(width)
    return np.where(idx + 1 < count[:, None], idx + 1, 0)


def _prev_index(count: np.ndarray, width: int) -> np.ndarray:
    """(P, V): the index of the previous vertex of each polygon (cyclic within its count)."""
    idx = np.arange(width)
    return np.where(idx > 0, idx - 1, np.maximum(count[:, None] - 1, 0))


def areas(vertices: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Signed areas (P,) of padded polygons (shoelace: 1/2 sum_i x_i y_{i+1} - x_{i+1} y_i),
    positive for counter-clockwise ones."""
    nxt = np.take_along_axis(vertices, _next_index(count, vertices.shape[1])[..., None], 1)
    cross = vertices[..., 0] * nxt[..., 1] - nxt[..., 0] * vertices[..., 1]
    valid = np.arange(vertices.shape[1]) < count[:, None]
    return 0.5 * np.where(valid, cross, 0.0).sum(axis=1)


def interior_points(polygons: Polygons) -> np.ndarray:
    """The mean of each polygon's vertices (P, 2): inside a convex polygon with area > 0."""
    valid = np.arange(polygons.vertices.shape[1]) < polygons.count[:, None]
    return (np.where(valid[..., None], polygons.vertices, 0.0).sum(axis=1)
            / polygons.count[:, None])


def _reach(edge: np.ndarray, room: np.ndarray, spent: np.ndarray,
           width: np.ndarray) -> np.ndarray:
    """How far the exact polygon may reach past a float vertex along an edge of length
    `edge` cut by a line, when the line's values at the edge's ends are known to `spent`
    while they differ by `room`: edge min(1, spent / (room - spent)) (the intersection of
    the edge and the line, ill-conditioned when they are nearly parallel); when room <=
    spent the whole edge lies within the line's band, and the float polygon keeps it, so
    the exact one stays within `width` (the band's half-width) of it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(room > spent, spent / (room - spent), np.inf)
    return np.where(room > spent, edge * np.minimum(share, 1.0), width)


def clip(vertices: np.ndarray, count: np.ndarray, s: np.ndarray, radius=None,
         error=None, slope=None) -> tuple:
    """Each convex polygon clipped to the half-plane where the affine function s <= 0, given
    s at its vertices (P, V) (Sutherland-Hodgman): vertex i is kept when s_i <= 0, and the edge
    to the next vertex j adds the point v_i + s_i / (s_i - s_j) (v_j - v_i) when s_i and s_j
    have strict opposite signs.  With radius (P, V) (bounds on the distance, per coordinate,
    from each float vertex to the exact polygon's boundary near it), error (P, V) (a bound
    on the error of s) and slope (P,) (||grad s||_2, which turns errors of s into
    distances), the new vertices get theirs: a cut point max(r_i, r_j) +
    `_reach`(|v_j - v_i|, |s_i| + |s_j|, e_i + e_j) plus its rounding, a kept vertex with
    s = 0 (on the cut, or snapped to it) r_i + its reach along both edges.  Returns
    (vertices (P, V', 2), count (P,), radius (P, V')); a polygon with nothing left gets
    count 0."""
    rows, width = s.shape
    radius = np.zeros(s.shape) if radius is None else radius
    error = np.zeros(s.shape) if error is None else error
    slope = np.ones(rows) if slope is None else slope
    nxt, prv = _next_index(count, width), _prev_index(count, width)
    s_next, s_prev = (np.take_along_axis(s, idx, 1) for idx in (nxt, prv))
    v_next, v_prev = (np.take_along_axis(vertices, idx[..., None], 1) for idx in (nxt, prv))
    e_next, e_prev = (np.take_along_axis(error, idx, 1) for idx in (nxt, prv))
    valid = np.arange(width) < count[:, None]
    keep = valid & (s <= 0)
    cross = valid & (((s < 0) & (s_next > 0)) | ((s > 0) & (s_next < 0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(cross, s / np.where(cross, s - s_next, 1.0), 0.0)
        band = np.where(slope > 0, 1.0 / slope, np.inf)[:, None]
    crossing = vertices + t[..., None] * (v_next - vertices)
    edge_next = np.abs(v_next - vertices).max(axis=2)
    edge_prev = np.abs(v_prev - vertices).max(axis=2)
    r_cross = (np.maximum(radius, np.take_along_axis(radius, nxt, 1))
               + _reach(edge_next, np.abs(s) + np.abs(s_next), error + e_next,
                        (error + e_next) * band)
               + gamma(3) * np.maximum(np.abs(vertices), np.abs(v_next)).max(axis=2))
    on_cut = s == 0
    r_keep = radius + np.where(on_cut, np.maximum(
        _reach(edge_next, np.abs(s_next), 2 * error + e_next, (2 * error + e_next) * band),
        _reach(edge_prev, np.abs(s_prev), 2 * error + e_prev, (2 * error + e_prev) * band)),
        0.0)
    candidates = np.stack([vertices, crossing], axis=2).reshape(rows, 2 * width, 2)
    radii = np.stack([r_keep, r_cross], axis=2).reshape(rows, 2 * width)
    mask = np.stack([keep, cross], axis=2).reshape(rows, 2 * width)
    new_count = mask.sum(axis=1)
    order = np.argsort(~mask, axis=1, kind="stable")[:, :max(int(new_count.max(initial=0)), 1)]
    return (np.take_along_axis(candidates, order[..., None], 1), new_count,
            np.take_along_axis(radii, order, 1))


def _values(vertices: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """One neuron's value g . v + c at every vertex, (P, V), for g (P, 2) and c (P,)."""
    return (vertices[..., 0] * gain[:, None, 0] + vertices[..., 1] * gain[:, None, 1]
            + offset[:, None])


def _vertex_error(vertices, radius, g, c, g_abs, c_abs, rounds: int) -> np.ndarray:
    """A bound (P, V) on |computed g . v + c - exact value at the exact vertex|: the rounding
    of the sum, gamma_4 (|g_0 v_0| + |g_1 v_1| + |c|); the error of g and c from their
    products, gamma_m (g_abs . |v| + c_abs); the vertex's position, |g|_1 radius; doubled
    (the rounding of this bound)."""
    av = np.abs(vertices)
    return 2 * (gamma(4) * (av[..., 0] * np.abs(g[:, None, 0]) + av[..., 1] * np.abs(g[:, None, 1])
                            + np.abs(c)[:, None])
                + gamma(rounds) * (av[..., 0] * g_abs[:, None, 0] + av[..., 1] * g_abs[:, None, 1]
                                   + c_abs[:, None])
                + np.abs(g).sum(axis=1)[:, None] * radius)


def _split(polygons: Polygons, maps: LayerMap, n: int, knots: np.ndarray,
           knot_error: float, rounds: int) -> tuple:
    """Every polygon cut into its strips along the knots of neuron n: the pieces whose open
    interval meets the polygon's z-range widened by the vertices' error bounds; strip k is
    the polygon clipped to tau_{k-1} <= z_n <= tau_k, a vertex within its bound (+
    knot_error, a bound on the knots' rounding) of a cut counting as on it.  Polygons met by
    one piece stay as they are.  Returns `partition.end_cut`'s (polygons, the row each comes
    from, its piece, the count of strips (before any is built), the undecided strips: those
    that keep no area, or whose vertices all lie in a cut's band (the strip across it keeps
    that part), as (row, piece) pairs)."""
    gain, offset = maps.gain[polygons.parent, n], maps.offset[polygons.parent, n]
    g_abs, c_abs = maps.gain_abs[polygons.parent, n], maps.offset_abs[polygons.parent, n]
    z = _values(polygons.vertices, gain, offset)
    err = _vertex_error(polygons.vertices, polygons.radius, gain, offset, g_abs, c_abs,
                        rounds) + knot_error
    valid = np.arange(z.shape[1]) < polygons.count[:, None]
    with np.errstate(invalid="ignore"):
        lo = np.where(valid, z - err, np.inf).min(axis=1)
        hi = np.where(valid, z + err, -np.inf).max(axis=1)
    cut = begin_cut(polygons, knots, lo, hi, gain, offset, g_abs)
    part = cut["part"]
    if part is None:
        return end_cut(polygons, cut)
    rep, piece = cut["rows"], cut["pieces"]
    g, c, ga, ca = gain[rep], offset[rep], g_abs[rep], c_abs[rep]
    edges = np.concatenate([[-np.inf], knots, [np.inf]])        # piece k: (edges[k], edges[k+1])
    vertices, count, radius = part.vertices, part.count, part.radius
    banded = np.zeros(len(rep), dtype=bool)
    for sign, bound in ((-1.0, edges[piece]), (1.0, edges[piece + 1])):
        tol = _vertex_error(vertices, radius, g, c, ga, ca, rounds) + knot_error
        finite = np.isfinite(bound)
        with np.errstate(invalid="ignore"):
            s = sign * (_values(vertices, g, c) - bound[:, None])    # keep s <= 0
        tol = tol + gamma(1) * np.where(finite, np.abs(bound), 0.0)[:, None]
        s = np.where(np.abs(s) <= tol, 0.0, s)                      # on the line: no sliver
        s = np.where(finite[:, None], s, -np.inf)                   # no bound: keep all
        valid = np.arange(s.shape[1]) < count[:, None]
        inside = np.any(valid & (s < 0), axis=1)
        outside = np.any(valid & (s > 0), axis=1)
        # no vertex strictly inside: what is left lies in the cut's band, and the strip
        # across the cut keeps it (its vertices beyond the band, or, when the whole
        # polygon is in the band, the strip above: never both)
        banded |= finite & ~inside & (outside if sign < 0 else True)
        vertices, count, radius = clip(vertices, count, s, radius, tol,
                                       np.linalg.norm(g, axis=1))
    part.vertices, part.count, part.radius = vertices, count, radius
    # a strip left in a band is undecided (a sliver), not counted twice
    return end_cut(polygons, cut, (count >= 3) & (areas(vertices, count) > 0) & ~banded)


def _chunks(count: int):
    return [slice(a, min(a + CHUNK, count)) for a in range(0, count, CHUNK)]


def _start(box: float) -> Polygons:
    corners = np.array([[[-box, -box], [box, -box], [box, box], [-box, box]]])
    return Polygons(corners, np.array([4]), np.zeros((1, 4)), np.zeros(1, int))


def _stopped(net, p, box, polygons, upper, status, reason, deadline) -> dict:
    """The bracket of an interrupted run (see the module docstring)."""
    points = interior_points(polygons)
    norms = np.concatenate([jacobian_norms(net.input_jacobian(points[part]), p)
                            for part in _chunks(len(points))])
    x_a, x_b, ratio = secant_pair(net, points[int(np.argmax(norms))], p, box)
    return {"value": None, "status": status, "certified_exact": False, "lower_bound": ratio,
            "upper_bound": finite_or_none(upper), "reason": reason,
            "lower_bound_certificate": "secant ratio of a pair of points of the box at the "
                                       "polygon (found so far) of largest Jacobian norm",
            "upper_bound_certificate": "max over the polygons found so far of ||dz_l/dx||_p "
                                       "times the layer-wise bound of the layers from l on",
            "upper_margin_kind": "closed_form",
            "witness_x": x_a, "witness_x_pair": x_b, "witness": ratio,
            "regions": len(polygons)}


def enumerate_regions(net: Network, box: float, max_regions: float = MAX_REGIONS,
                      deadline: Deadline | None = None, p: float = 2.0,
                      tables: dict | None = None):
    """The linear regions of f over [-box, box]^2 as a partition.Enumeration: its cells are
    Polygons, maps.gain (P, N_L, 2) the Jacobian and maps.offset (P, N_L) the offset of f
    on polygon i (row i: parent = i); `stopped` the bracket dict of `_stopped` when
    max_regions or the deadline is reached.  tables: `exact.piece_tables`."""
    deadline = deadline or Deadline(TIME_LIMIT)
    tables = tables or piece_tables(net)
    for i, layer in enumerate(net.layers):
        if layer.is_activation and i not in tables:
            raise NotApplicable(f"model: layer {i} ({layer.kind}) is not piecewise linear; "
                                "regions_2d needs a CPWL network")

    def stop(polygons, upper, status, where):
        if status == "limit":
            status, where = "max_regions", (f"stopped: the partition would exceed max_regions="
                                             f"{max_regions:g} regions in {where}; pass a "
                                             "larger max_regions")
        return _stopped(net, p, box, polygons, upper, status, where, deadline)
    return enumerate_cells(net, _start(box), LayerMap.start(2), tables, p, max_regions,
                           deadline, CHUNK, stop)


def _polygon_halfspaces(vertices: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """A convex counter-clockwise polygon (its first `count` vertices) as A x <= b: for each
    edge v_i -> v_{i+1}, the interior lies left of it, (v_{i+1} - v_i) x (x - v_i) >= 0."""
    v = vertices[:count]
    d = np.roll(v, -1, axis=0) - v
    a_mat = np.column_stack([d[:, 1], -d[:, 0]])                 # -(left normal)
    return a_mat, np.einsum("ik,ik->i", a_mat, v)


def _witness_pair(net, p, polygons, best, region=None) -> tuple:
    """`exact.chord_pair` through the interior point of the polygon `best` (the mean of its
    vertices, inside however thin the polygon), or through that of an exact region
    (reference.lipschitz._rational) when one is given and its chord can be formed in float64."""
    if region is not None:
        vertices = np.array([[float(x), float(y)] for x, y in region])
        try:
            x_a, x_b, ratio = chord_pair(net, p, *_polygon_halfspaces(vertices, len(vertices)),
                                         x=rational.interior_point(region))
            if np.isfinite(ratio):
                return x_a, x_b, ratio
        except ValueError:
            pass                              # thinner than float64 resolves: the best one
    return chord_pair(net, p, *_polygon_halfspaces(polygons.vertices[best],
                                                   polygons.count[best]),
                      x=interior_points(polygons.take([best]))[0])


def regions_2d(net: Network, p: float | str = 2, box: float = 1.0,
               max_regions: float = MAX_REGIONS, time_limit: float = TIME_LIMIT) -> BoundResult:
    r"""Exact Lipschitz constant over a box of a network with two inputs, by its linear regions.

    Parameters
    ----------
    net : Network
        The network f, with N_0 = 2 inputs; its parameters must be finite.
    p : {1, 2, inf} or str, default 2
        The l_p norm on inputs and outputs.
    box : float, default 1.0
        The half-width R > 0 of the box [-R, R]^2.
    max_regions : float, default MAX_REGIONS (200000)
        The most polygons of the partition; past it the run stops with a bracket.
    time_limit : float, default TIME_LIMIT (60.0)
        Seconds; past it the run stops with a bracket.

    Returns
    -------
    result : BoundResult
        A dict subclass with attribute access (the keys marked [regions_2d] in
        `BoundResult`): ``value`` (float: the largest Jacobian norm over the regions, the
        network's own at an interior point of an attained region or a pattern's whose region
        exact arithmetic proved non-empty; None without a certified value), ``status``
        ("optimal", "not_certified", "max_regions" or "time_limit"), ``certified_exact``
        (bool), ``lower_bound`` (= value when optimal) <= Lip_p(f) <= ``upper_bound``
        (largest norm + rounding_bound), ``rounding_bound`` (`jacobian_rounding`),
        ``upper_margin_kind``, ``regions`` (int), ``area_error`` (|sum of the areas -
        4 R^2| / 4 R^2), ``jacobian_checked`` and ``jacobian_mismatches`` (the attained
        regions, whose Jacobian was re-evaluated, and those that disagreed),
        ``unattained_regions`` (polygons without a point where floating point decides
        their pattern), ``undecided_slivers``, ``exact_checked``, ``exact_empty`` and
        ``exact_regions`` (the patterns decided in exact arithmetic, those proven empty, and
        the regions they hold), ``attained`` (whether the value is attained at a float64
        point), ``witness_x``, ``witness_x_pair`` (lists, shape (2,)) and ``witness`` (a
        pair in the argmax region, or in the best attained one, and their secant ratio),
        ``argmax_polygon`` (its vertices), ``domain``, ``seconds``, and ``reason`` (str)
        with ``lower_bound_certificate`` and ``upper_bound_certificate`` when stopped.

    Raises
    ------
    ValueError
        When the network does not have two inputs, p, box or max_regions is out of range,
        or a parameter is not finite.

    See Also
    --------
    exact_1d : The one-input analogue.
    exact_milp : Any number of inputs, p in {1, inf}.

    Notes
    -----
    f is continuous and piecewise linear (CPWL) [1]_; over the convex box B = [-R, R]^2,

    .. math::

        \mathrm{Lip}_p(f) = \max_{\text{regions } \Omega \cap B \neq \emptyset}
        \|J_\Omega\|_{p\to p},

    J_Omega the constant Jacobian on the region; a region counts whatever its area.  The
    module docstring gives the enumeration (polygons cut layer by layer at the lines
    z_n = tau_k), the certificate (attained patterns, exact rational arithmetic for the
    others, the area check) and the limits.  When a check fails or the exact step runs out
    of time: status "not_certified", value None, a reason and the bracket; when stopped
    (max_regions, time_limit), the bracket of `_stopped`.

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.

    Examples
    --------
    >>> from reference.nn import build_mlp
    >>> from reference.lipschitz import regions_2d
    >>> result = regions_2d(build_mlp([2, 4, 1], activation="relu", rng=0), p=2)
    >>> print(result["status"], round(result["value"], 4))
    optimal 0.6073
    """
    p = parse_p(p)
    check_finite(net)
    if net.n_in != 2:
        raise ValueError(f"model: regions_2d needs a network with 2 inputs, got {net.n_in}")
    box = check_box(box)
    max_regions = check_limit(max_regions, "max_regions")
    deadline = Deadline(time_limit)
    scale = input_scale(box)
    unit = scaled_input(net, scale)
    box_u = box / scale
    tables = piece_tables(unit)
    enum = enumerate_regions(unit, box_u, max_regions, deadline, p, tables)
    domain = f"box [-{box:g}, {box:g}]^2"
    if enum.stopped is not None:
        out = BoundResult(enum.stopped)
        out.update(lower_bound=out["lower_bound"] / scale, witness=out["witness"] / scale,
                   upper_bound=finite_or_none((out["upper_bound"] or np.inf) / scale),
                   witness_x=(scale * out["witness_x"]).tolist(),
                   witness_x_pair=(scale * out["witness_x_pair"]).tolist(), domain=domain,
                   seconds=deadline.elapsed())
        return out
    return BoundResult(_certify(net, unit, p, box_u, scale, enum, tables, deadline, domain))


def _certify(net, unit, p, box_u, scale, enum, tables, deadline, domain) -> dict:
    """regions_2d's certificate (module docstring) on the network `unit` over [-box_u,
    box_u]^2, results mapped back to net (Jacobians / scale, points * scale)."""
    polygons = enum.cells
    area = areas(polygons.vertices, polygons.count)
    box_area = 4.0 * box_u * box_u
    area_error = abs(float(area.sum()) - box_area) / box_area
    cert = certify(unit, enum, interior_points(polygons), tables, p, CHUNK)
    rounding = jacobian_rounding(unit, p)
    found = conclude(unit, p, rational.box_polygon(box_u), enum, cert, tables, rounding,
                     deadline, scale)
    value, attained, decided = found["value"], found["attained"], found["decided"]
    best = int(np.argmax(area)) if found["best"] is None else found["best"]
    x_a, x_b, ratio = _witness_pair(unit, p, polygons, best,
                                    None if attained else found["proven"][2])
    reasons, upper = list(found["reasons"]), found["top"] + rounding
    upper_certificate = ("largest Jacobian norm over the regions' patterns + the rounding "
                         "bound of a computed Jacobian norm")
    margin_kind = "rounding_bound"
    if area_error > AREA_CHECK_RTOL:
        reasons.append(f"the regions' areas sum to {exact(area.sum() / box_area)} x the "
                       f"box's area (relative error {area_error:.3g} > {AREA_CHECK_RTOL:g})")
    if area_error > AREA_CHECK_RTOL or found["mismatches"]:
        upper, upper_certificate = tail_bounds(unit, p)[1], "the layer-wise bound"
        margin_kind = "closed_form"
    if not reasons and found["best"] is None and not decided["proven"]:
        raise SolveFailed("regions_2d: no region was attained or proven; no value")
    out = {"value": None if reasons else value / scale,
           "status": "not_certified" if reasons else "optimal",
           "certified_exact": not reasons, "lower_bound": value / scale,
           "lower_bound_certificate": (
               "||J|| at a point of a region where floating point decides the pattern "
               "(the network's own Jacobian)" if attained else
               "||J|| of a pattern whose region exact rational arithmetic proved non-empty"),
           "upper_bound": finite_or_none(upper / scale), "rounding_bound": rounding / scale,
           "upper_bound_certificate": upper_certificate, "upper_margin_kind": margin_kind,
           "regions": len(polygons), "area_error": area_error,
           "jacobian_checked": int(cert["match"].sum()),
           "jacobian_mismatches": found["mismatches"],
           "unattained_regions": int((~cert["match"]).sum()),
           "undecided_slivers": len(enum.slivers), "exact_checked": decided["checked"],
           "exact_empty": decided["empty"], "exact_regions": len(decided["proven"]),
           "attained": attained,
           "witness_x": (scale * x_a).tolist(), "witness_x_pair": (scale * x_b).tolist(),
           "witness": ratio / scale,
           "argmax_polygon": (scale * polygons.vertices[best, :polygons.count[best]]).tolist(),
           "domain": domain, "seconds": deadline.elapsed()}
    if reasons:
        out["reason"] = "; ".join(reasons)
    return out
