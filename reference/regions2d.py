"""Exact Lipschitz constant of a network with two inputs over a box, for every p, by
enumerating its linear regions.

f is continuous and piecewise linear (CPWL).  Over the box B = [-R, R]^2 (convex), Lip_p(f)
= max over the linear regions meeting B of ||J||_{p->p}, J the (constant) Jacobian on the
region; ||J||_{2->2} is the largest singular value, ||J||_{1->1} the largest column l1 sum,
||J||_{inf->inf} the largest row l1 sum.

The regions are built as `exact.exact_1d` builds its segments, one dimension up: start from
the polygon B; before activation layer l every pre-activation z_n is affine on each current
polygon (z = g_n . x + c_n: rows `gain`, `offset` of a `LayerMap`, shared by the polygons
cut from one cell); neuron by neuron, each polygon is cut into strips by the parallel lines
z_n = tau_k, tau_k the knots of the neuron's activation inside the polygon's range of z_n
(ReLU at 0, LeakyReLU / PReLU at 0, splines at their grid knots, knot splines at their
points: `exact.knot_form`).  A strip is the polygon clipped to tau_{k-1} <= z_n <= tau_k
(Sutherland-Hodgman on a batch of padded polygons; a vertex within SNAP_RTOL x (|g_n|_1 R +
|c_n| + |tau|) of the cut counts as on it, so that lines through a vertex, or nearly
coinciding lines, leave no rounding sliver behind), and records piece k of the neuron; after
the layer every polygon knows its pieces, hence the slopes s and offsets o of its
activations, and the affine map moves through the layer (gain <- s gain, offset <- s offset
+ o) and the next dense layer (gain <- W gain, offset <- W offset + b).  At the end
f(x) = gain x + offset on each polygon, J = gain.

Certificate: the number of regions; their total area equals the box area 4 R^2 (relative
AREA_CHECK_RTOL, checked); the Jacobian of every region is re-evaluated at an interior
point (the mean of its vertices) by Network.input_jacobian and must equal the region's
(JACOBIAN_RTOL relative to the largest entry); the value is the network's own Jacobian norm
at the argmax region's interior point (attained: a certified lower bound), and a witness
pair spans that region's chord along the steepest direction (`exact.chord_pair`).  The upper
end adds the rounding bound `exact.jacobian_rounding` to the largest pattern norm.  Regions
of area <= AREA_TOL x the box area (rounding slivers where two lines nearly coincide) are
counted apart: their patterns may combine pieces that no real region has, so their norms
enter the upper end only; if one exceeds the value, the result is a bracket.  (With the
snapping above, none was left on 5000 random networks of the property test's kind, every
layer type, biases or not.)

Limits as exact_1d: the strips are counted before they are built, and past max_regions
(status "max_regions") or time_limit (status "time_limit") the run stops with a bracket:
lower, the secant ratio of a pair in the box at the best current polygon (`secant_pair`);
upper, min over the layers reached of max over the polygons ||dz_l/dx||_{p->p} times the
layer-wise bound of the layers from l on (`exact.tail_bounds`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference.errors import SolveFailed
from reference.exact import (NotApplicable, chord_pair, finite_or_none, jacobian_rounding,
                             knot_form, tail_bounds)
from reference.limits import Deadline, check_box, check_limit
from reference.lipschitz import check_finite, jacobian_norms, parse_p, secant_pair
from reference.network import Network

MAX_REGIONS = 200_000        # polygons of the partition (stops with a bracket)
TIME_LIMIT = 60.0            # seconds
AREA_TOL = 1e-12             # regions of area <= this x the box area are rounding slivers
AREA_CHECK_RTOL = 1e-9       # sum of the areas = box area, to this relative tolerance
JACOBIAN_RTOL = 1e-9         # region's Jacobian = the network's at its interior point
CHUNK = 65536                # polygons per step (memory CHUNK x vertices x width)
SNAP_RTOL = 1e-12            # a vertex within this x (|g|_1 R + |c| + |tau|) of a cut is on it


@dataclass
class Polygons:
    """P convex polygons, counter-clockwise, padded to V vertices: vertices (P, V, 2), count
    (P,) (entries past count are padding), parent (P,), the row of the layer's affine maps
    (`LayerMap`) that holds on the polygon, and pieces (P, W) int32, the piece of each neuron
    of the activation layer being split."""
    vertices: np.ndarray
    count: np.ndarray
    parent: np.ndarray
    pieces: np.ndarray

    def __len__(self) -> int:
        return len(self.count)

    def take(self, index) -> "Polygons":
        return Polygons(self.vertices[index], self.count[index], self.parent[index],
                        self.pieces[index])

    @staticmethod
    def concat(parts: list) -> "Polygons":
        width = max(part.vertices.shape[1] for part in parts)
        pad = [np.pad(part.vertices, ((0, 0), (0, width - part.vertices.shape[1]), (0, 0)))
               for part in parts]
        return Polygons(np.concatenate(pad), *(np.concatenate([getattr(part, key)
                                                               for part in parts])
                                               for key in ("count", "parent", "pieces")))


@dataclass
class LayerMap:
    """The affine maps of the current layer's values on Q cells, value(x) = gain @ x + offset:
    gain (Q, W, 2), offset (Q, W).  Splitting a polygon inside a layer keeps its map, so the
    polygons of a layer point to these rows (Polygons.parent) instead of copying them."""
    gain: np.ndarray
    offset: np.ndarray


def _next_index(count: np.ndarray, width: int) -> np.ndarray:
    """(P, V): the index of the next vertex of each polygon (cyclic within its count)."""
    idx = np.arange(width)
    return np.where(idx + 1 < count[:, None], idx + 1, 0)


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


def clip(vertices: np.ndarray, count: np.ndarray, s: np.ndarray) -> tuple:
    """Each convex polygon clipped to the half-plane where the affine function s <= 0, given
    s at its vertices (P, V) (Sutherland-Hodgman): vertex i is kept when s_i <= 0, and the edge
    to the next vertex j adds the point v_i + s_i / (s_i - s_j) (v_j - v_i) when s_i and s_j
    have strict opposite signs.  Returns (vertices (P, V', 2), count (P,)); a polygon with
    nothing left gets count 0."""
    rows, width = s.shape
    nxt = _next_index(count, width)
    s_next = np.take_along_axis(s, nxt, 1)
    v_next = np.take_along_axis(vertices, nxt[..., None], 1)
    valid = np.arange(width) < count[:, None]
    keep = valid & (s <= 0)
    cross = valid & (((s < 0) & (s_next > 0)) | ((s > 0) & (s_next < 0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(cross, s / np.where(cross, s - s_next, 1.0), 0.0)
    crossing = vertices + t[..., None] * (v_next - vertices)
    candidates = np.stack([vertices, crossing], axis=2).reshape(rows, 2 * width, 2)
    mask = np.stack([keep, cross], axis=2).reshape(rows, 2 * width)
    new_count = mask.sum(axis=1)
    order = np.argsort(~mask, axis=1, kind="stable")[:, :max(int(new_count.max(initial=0)), 1)]
    return np.take_along_axis(candidates, order[..., None], 1), new_count


def _values(vertices: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """One neuron's value g . v + c at every vertex, (P, V), for g (P, 2) and c (P,)."""
    return (vertices[..., 0] * gain[:, None, 0] + vertices[..., 1] * gain[:, None, 1]
            + offset[:, None])


def _strips(polygons: Polygons, gain: np.ndarray, offset: np.ndarray,
            knots: np.ndarray) -> tuple:
    """For one neuron (g (P, 2), c (P,) on each polygon) with sorted knots: the index of the
    first piece met (P,) and the number of strips (P,) (pieces met by the open range of z)."""
    z = _values(polygons.vertices, gain, offset)
    valid = np.arange(z.shape[1]) < polygons.count[:, None]
    zmin = np.where(valid, z, np.inf).min(axis=1)
    zmax = np.where(valid, z, -np.inf).max(axis=1)
    first = np.searchsorted(knots, zmin, side="right")      # piece of z just above zmin
    last = np.searchsorted(knots, zmax, side="left")        # knots strictly inside: first..last-1
    return first, 1 + np.maximum(last - first, 0)


def _split(polygons: Polygons, maps: LayerMap, n: int, knots: np.ndarray,
           box: float) -> tuple[Polygons, int]:
    """Every polygon cut into its strips along the knots of neuron n (`_strips`): strip j of a
    polygon is the polygon clipped to tau_{k-1} <= z_n <= tau_k with k = first + j its piece
    (pieces[:, n] = k); empty and zero-area strips are dropped.  Polygons met by no knot
    keep their rows (updated in place when no polygon is cut).  Returns the polygons and the
    number of strips (counted before any is built)."""
    gain, offset = maps.gain[polygons.parent, n], maps.offset[polygons.parent, n]
    first, strips = _strips(polygons, gain, offset, knots)
    polygons.pieces[:, n] = first
    cut = strips > 1
    total = int(strips.sum())
    if not cut.any():
        return polygons, total
    rows = np.flatnonzero(cut)
    rep = np.repeat(rows, strips[rows])
    piece = first[rep] + np.arange(len(rep)) - np.repeat(np.cumsum(strips[rows]) - strips[rows],
                                                         strips[rows])
    part = polygons.take(rep)
    part.pieces[:, n] = piece
    g, c = gain[rep], offset[rep]
    edges = np.concatenate([[-np.inf], knots, [np.inf]])        # piece k: (edges[k], edges[k+1])
    scale = np.abs(g).sum(axis=1) * box + np.abs(c)
    vertices, count = part.vertices, part.count
    for sign, bound in ((-1.0, edges[piece]), (1.0, edges[piece + 1])):
        with np.errstate(invalid="ignore"):
            s = sign * (_values(vertices, g, c) - bound[:, None])    # keep s <= 0
        tol = SNAP_RTOL * (scale + np.where(np.isfinite(bound), np.abs(bound), 0.0))
        s = np.where(np.abs(s) <= tol[:, None], 0.0, s)        # on the line: no sliver
        vertices, count = clip(vertices, count, np.where(np.isnan(s), -np.inf, s))
    part.vertices, part.count = vertices, count
    part = part.take((count >= 3) & (areas(vertices, count) > 0))
    return Polygons.concat([polygons.take(~cut), part]), total


def _piece_tables(spl, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Slope and offset of every piece of every neuron, (width, max knots + 1): on piece k
    (between knots k-1 and k) sigma_n(z) = slope z + offset with slope = b1 + sum_{i<k} a_i,
    offset = b0 - sum_{i<k} a_i tau_i (padding: the last piece repeated)."""
    size = max(len(k) for k in spl.knots) + 1
    slope, offset = np.zeros((width, size)), np.zeros((width, size))
    for n in range(width):
        a, tau = spl.jumps[n], spl.knots[n]
        s = spl.b1[n] + np.concatenate([[0.0], np.cumsum(a)])
        o = spl.b0[n] - np.concatenate([[0.0], np.cumsum(a * tau)])
        slope[n] = np.pad(s, (0, size - len(s)), mode="edge")
        offset[n] = np.pad(o, (0, size - len(o)), mode="edge")
    return slope, offset


def _chunks(count: int):
    return [slice(a, min(a + CHUNK, count)) for a in range(0, count, CHUNK)]


def _start(box: float) -> tuple[Polygons, LayerMap]:
    corners = np.array([[[-box, -box], [box, -box], [box, box], [-box, box]]])
    return (Polygons(corners, np.array([4]), np.zeros(1, int), np.zeros((1, 2), np.int32)),
            LayerMap(np.eye(2)[None], np.zeros((1, 2))))


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
            "witness_x": x_a.tolist(), "witness_x_pair": x_b.tolist(), "witness": ratio,
            "regions": len(polygons), "domain": f"box [-{box:g}, {box:g}]^2",
            "seconds": deadline.elapsed()}


def enumerate_regions(net: Network, box: float, max_regions: float = MAX_REGIONS,
                      deadline: Deadline | None = None, p: float = 2.0):
    """The linear regions of f over [-box, box]^2: (polygons, maps) with maps.gain (P, N_L, 2)
    the Jacobian and maps.offset (P, N_L) the offset of f on polygon i (row i: parent = i),
    and None; or (polygons, maps, bracket dict of `_stopped`) when max_regions or the deadline
    is reached."""
    deadline = deadline or Deadline(TIME_LIMIT)
    tails, upper = tail_bounds(net, p)
    tails = iter(tails)
    (polygons, maps), width = _start(box), 2
    for i, layer in enumerate(net.layers):
        if layer.kind == "dense":
            w, b = layer.params["weight"], layer.params.get("bias")
            maps = LayerMap(np.matmul(w, maps.gain), maps.offset @ w.T + (0.0 if b is None else b))
            polygons.pieces = np.zeros((len(polygons), len(w)), np.int32)
            width = len(w)
            continue
        try:
            spl = knot_form(layer, width)
        except TypeError:
            raise NotApplicable(f"model: layer {i} ({layer.kind}) is not piecewise linear; "
                                "regions_2d needs a CPWL network") from None
        upper = min(upper, float(jacobian_norms(maps.gain, p).max()) * next(tails))
        for n in range(width):
            if deadline.expired():
                return polygons, maps, _stopped(
                    net, p, box, polygons, upper, "time_limit", f"stopped at the time limit "
                    f"{deadline.time_limit:g} s in layer {i} ({len(polygons)} regions so far)",
                    deadline)
            parts, total = [], 0
            for part in _chunks(len(polygons)):
                done, count = _split(polygons.take(part), maps, n, spl.knots[n], box)
                parts.append(done)
                total += count
                if total + len(polygons) - part.stop > max_regions:
                    return polygons, maps, _stopped(
                        net, p, box, polygons, upper, "max_regions", f"stopped: the partition "
                        f"would exceed max_regions={max_regions:g} regions in layer {i}; pass a "
                        "larger max_regions", deadline)
            polygons = Polygons.concat(parts)
        slope, offset = _piece_tables(spl, width)
        s = np.take_along_axis(slope, polygons.pieces.T, 1).T          # (P, width)
        o = np.take_along_axis(offset, polygons.pieces.T, 1).T
        maps = LayerMap(s[..., None] * maps.gain[polygons.parent],
                        s * maps.offset[polygons.parent] + o)
        polygons.parent = np.arange(len(polygons))
    return polygons, maps, None


def _polygon_halfspaces(vertices: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """A convex counter-clockwise polygon (its first `count` vertices) as A x <= b: for each
    edge v_i -> v_{i+1}, the interior lies left of it, (v_{i+1} - v_i) x (x - v_i) >= 0."""
    v = vertices[:count]
    d = np.roll(v, -1, axis=0) - v
    a_mat = np.column_stack([d[:, 1], -d[:, 0]])                 # -(left normal)
    return a_mat, np.einsum("ik,ik->i", a_mat, v)


def regions_2d(net: Network, p=2, box: float = 1.0, max_regions: float = MAX_REGIONS,
               time_limit: float = TIME_LIMIT) -> dict:
    """Exact Lip_p(f) over [-box, box]^2 for a network with two inputs, p in {1, 2, inf}, by
    enumerating its linear regions (see the module docstring for the method, the
    certificate and the limits).

    Returns value (the network's Jacobian norm at an interior point of the argmax region),
    status "optimal", certified_exact, lower_bound (= value), upper_bound (largest pattern
    norm + rounding_bound), rounding_bound (`exact.jacobian_rounding`), regions, area_error
    (|sum of the areas - 4 box^2| / 4 box^2), jacobian_checked and jacobian_mismatches (the
    regions whose Jacobian was re-evaluated, and those that disagreed), negligible_regions,
    negligible_area, negligible_max_norm, witness_x, witness_x_pair and witness (a pair in
    the argmax region and their secant ratio), argmax_polygon (its vertices), domain,
    seconds.  When a check fails, status "not_certified", value None, a reason and the
    bracket; when stopped (max_regions, time_limit), the bracket of `_stopped`."""
    p = parse_p(p)
    check_finite(net)
    if net.n_in != 2:
        raise ValueError(f"model: regions_2d needs a network with 2 inputs, got {net.n_in}")
    box = check_box(box)
    max_regions = check_limit(max_regions, "max_regions")
    deadline = Deadline(time_limit)
    polygons, maps, stopped = enumerate_regions(net, box, max_regions, deadline, p)
    if stopped is not None:
        return stopped
    area = areas(polygons.vertices, polygons.count)
    box_area = 4.0 * box * box
    area_error = abs(float(area.sum()) - box_area) / box_area
    points = interior_points(polygons)
    j_net = np.concatenate([net.input_jacobian(points[part])
                            for part in _chunks(len(points))])           # (P, N_L, 2)
    j_pat = maps.gain[polygons.parent]                                    # (P, N_L, 2)
    scale = max(float(np.abs(j_pat).max()), np.finfo(float).tiny)
    negligible = area <= AREA_TOL * box_area
    match = np.all(np.abs(j_net - j_pat) <= JACOBIAN_RTOL * scale, axis=(1, 2))
    usable = match & ~negligible
    pattern_norms = jacobian_norms(j_pat, p)
    net_norms = jacobian_norms(j_net, p)
    rounding = jacobian_rounding(net, p)
    if not usable.any():                        # cannot happen with a positive box area
        raise SolveFailed("regions_2d: no region passed the Jacobian check; no value")
    best = int(np.flatnonzero(usable)[np.argmax(net_norms[usable])])
    value = float(net_norms[best])
    x_a, x_b, ratio = chord_pair(net, p, *_polygon_halfspaces(polygons.vertices[best],
                                                             polygons.count[best]))
    top = max(float(pattern_norms.max()), value)
    upper = top + rounding
    reasons, upper_certificate = [], ("largest Jacobian norm over the regions' patterns + "
                                      "the rounding bound of a computed Jacobian norm")
    margin_kind = "rounding_bound"
    if area_error > AREA_CHECK_RTOL:
        reasons.append(f"the regions' areas sum to {area.sum()!r}, not the box area {box_area!r} "
                       f"(relative error {area_error:.3g} > {AREA_CHECK_RTOL:g}): upper bound "
                       "layer-wise")
        upper, upper_certificate = tail_bounds(net, p)[1], "the layer-wise bound"
        margin_kind = "closed_form"
    mismatches = int((~match & ~negligible).sum())
    if mismatches:
        reasons.append(f"{mismatches} regions' Jacobians differ from the network's at their "
                       f"interior point by more than {JACOBIAN_RTOL:g} relative")
    if top > value + 2 * rounding:
        reasons.append(f"a region's pattern has norm {top!r} above the attained value "
                       f"{value!r} (a negligible sliver's, or a mismatched region's)")
    status = "not_certified" if reasons else "optimal"
    out = {"value": None if reasons else value, "status": status,
           "certified_exact": not reasons, "lower_bound": value,
           "upper_bound": finite_or_none(upper), "rounding_bound": rounding,
           "upper_bound_certificate": upper_certificate, "upper_margin_kind": margin_kind,
           "regions": len(polygons), "area_error": area_error,
           "jacobian_checked": int((~negligible).sum()), "jacobian_mismatches": mismatches,
           "negligible_regions": int(negligible.sum()),
           "negligible_area": float(area[negligible].sum()),
           "negligible_max_norm": float(pattern_norms[negligible].max(initial=0.0)),
           "witness_x": x_a.tolist(), "witness_x_pair": x_b.tolist(), "witness": ratio,
           "argmax_polygon": polygons.vertices[best, :polygons.count[best]].tolist(),
           "domain": f"box [-{box:g}, {box:g}]^2", "seconds": deadline.elapsed()}
    if reasons:
        out["reason"] = "; ".join(reasons)
    return out
