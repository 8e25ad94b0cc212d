"""What the exact enumerations share (regions_2d over polygons, exact_1d over segments):
the cells' affine maps carried through the layers with their rounding bounds, the loop that
cuts the cells neuron by neuron, the record of the activation patterns, the undecided
slivers, and the certificate of every final cell.

A *cell* is a region of the input where every activation layer so far has a fixed piece per
neuron; on it z = gain x + offset before the next activation layer (`LayerMap`).  A cells
container (reference.lipschitz._regions2d.Polygons, reference.lipschitz._exact1d.Segments) has
`parent` (the row of the LayerMap that holds on each cell), `take`, `concat` and a `split` that cuts
its cells along one neuron's knots, returns for every new cell the row it was cut from and its piece
of the neuron (`begin_cut`, `end_cut`: the pieces of a layer are rebuilt from these steps
once, at its end, never copied at every neuron), and the strips it could not decide (no
length / area left after the cut: the piece may still meet the cell in a region thinner
than the rounding).  Those are *slivers*: never dropped, kept
with a bound of every Jacobian they could hold (`sliver_bound`).

Certificate (`certify`): a final cell's pattern is attained when, at a point inside it,
every pre-activation computed by Network.forward lies in its piece by more than its running
error bound (reference.lipschitz._rounding_exact.robust_pieces): the exact model has that pattern
there, f is affine around the point, and the network's own Jacobian there must equal the pattern's.
Every other pattern (a cell without such a point, a sliver) whose norm or bound exceeds the
attained value by more than twice the rounding bound is decided in exact rational
arithmetic (reference.lipschitz._rational, `decide`): its region is empty, or it holds regions whose
patterns' norms enter the value (proven, not attained at a float64 point).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reference import _format
from reference.exceptions import OverflowResult
from reference.lipschitz import _rational as rational
from reference.lipschitz._bounds import jacobian_norms
from reference.lipschitz._exact import pattern_jacobian, tail_bounds, tail_products
from reference.lipschitz._rounding_exact import robust_pieces

DENSE_ROUNDINGS = 1          # LayerMap error: gamma_m, m += N_in + this per dense layer
ACTIVATION_ROUNDINGS = 5     # ... and this per activation layer (slope, offset, products)
JACOBIAN_RTOL = 1e-9         # a cell's Jacobian = the network's at its point, relative


@dataclass
class LayerMap:
    """The affine maps of the current layer's values on Q cells, value(x) = gain @ x + offset:
    gain (Q, W, d), offset (Q, W), and the magnitudes of their terms gain_abs, offset_abs
    (the same products with |W|, |slope| and the offsets' magnitudes), which bound their
    rounding: |gain - exact| <= gamma_m gain_abs, |offset - exact| <= gamma_m offset_abs,
    m = rounds.  Cutting a cell inside a layer keeps its map, so the cells of a layer point
    to these rows (`parent`) instead of copying them."""
    gain: np.ndarray
    offset: np.ndarray
    gain_abs: np.ndarray
    offset_abs: np.ndarray
    rounds: int = 0

    @classmethod
    def start(cls, dim: int) -> "LayerMap":
        eye = np.eye(dim)[None]
        return cls(eye, np.zeros((1, dim)), eye.copy(), np.zeros((1, dim)))

    def dense(self, layer) -> "LayerMap":
        w, b = layer.params["weight"], layer.params.get("bias")
        b = np.zeros(len(w)) if b is None else b
        return LayerMap(np.matmul(w, self.gain), self.offset @ w.T + b,
                        np.matmul(np.abs(w), self.gain_abs),
                        self.offset_abs @ np.abs(w).T + np.abs(b),
                        self.rounds + w.shape[1] + DENSE_ROUNDINGS)

    def activate(self, table, pieces: np.ndarray, parent: np.ndarray) -> "LayerMap":
        """The maps after the activation layer of `table`, one row per cell: cell i (of row
        parent[i]) with its neurons on pieces[i]."""
        rows = np.arange(pieces.shape[1])
        s, o = table.slopes[rows, pieces], table.offsets[rows, pieces]
        return LayerMap(s[..., None] * self.gain[parent], s * self.offset[parent] + o,
                        np.abs(s)[..., None] * self.gain_abs[parent],
                        np.abs(s) * self.offset_abs[parent] + table.offset_scale[rows, pieces],
                        self.rounds + ACTIVATION_ROUNDINGS)

    def flat(self) -> np.ndarray:
        """(Q, W) bool: the values that are exactly constant on the cell (gain_abs = 0)."""
        return ~np.any(self.gain_abs != 0, axis=2)


class Patterns:
    """The activation patterns of the cells, layer by layer: per activation layer, (the cell
    each cell was cut from, its pieces (P_l, W_l), which of its neurons have an exactly
    constant pre-activation on it (P_l, W_l))."""

    def __init__(self) -> None:
        self.layers: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return len(self.layers)

    def record(self, parent: np.ndarray, pieces: np.ndarray, flat: np.ndarray) -> None:
        self.layers.append((parent.copy(), pieces.copy(), flat))

    def pattern(self, depth: int, cell: int) -> list:
        """The pieces of every activation layer before `depth` on the cell `cell` of layer
        `depth` (a cell index at the end of layer depth - 1)."""
        out: list[tuple[int, ...]] = []
        for ancestor, pieces, _ in reversed(self.layers[:depth]):
            out.insert(0, tuple(int(k) for k in pieces[cell]))
            cell = int(ancestor[cell])
        return out

    def own(self, rows: np.ndarray) -> tuple[list, list]:
        """Per activation layer, the pieces and the flat masks of the final cells `rows`."""
        pieces: list[np.ndarray]
        flat: list[np.ndarray]
        pieces, flat = [], []
        for ancestor, layer_pieces, constant in reversed(self.layers):
            pieces.insert(0, layer_pieces[rows])
            flat.insert(0, constant[rows])
            rows = ancestor[rows]
        return pieces, flat


def sliver_bound(gain: np.ndarray, table, pieces: tuple, lip: np.ndarray, after: float,
                 p: float) -> float:
    """An upper bound of every Jacobian a sliver of the cell with pre-activation map
    z = gain x + c (W, d) can hold, its first neurons on `pieces`: the Jacobian is
    T S gain with S = diag(slopes) (the known pieces' slopes, |slope| <= Lip(sigma_n) for
    the others), ||S gain|| <= || |S| |gain| || (a nonnegative matrix's norm is monotone in
    its entries) and ||T||_{p->p} <= after, the layer-wise bound of the layers that
    follow."""
    slopes = lip.astype(float).copy()
    known = np.arange(len(pieces))
    slopes[known] = np.abs(table.slopes[known, list(pieces)])
    return float(jacobian_norms((slopes[:, None] * np.abs(gain))[None], p)[0]) * after


def candidate_pieces(knots: np.ndarray, lo: np.ndarray, hi: np.ndarray, gain: np.ndarray,
                     offset: np.ndarray, gain_abs: np.ndarray) -> tuple:
    """The pieces of one neuron that may meet each cell, from its pre-activation's range
    widened by the rounding bounds, [lo, hi] (C,): the first piece (C,), how many strips the
    cell is cut into (C,) (the pieces whose open interval meets (lo, hi)), and the strips
    left undecided as (row, piece) pairs.  A cell on which the pre-activation is constant
    in floating point (gain (C, d) = 0) is not cut: it takes the piece of its value (the
    right one at a knot); the other candidates are undecided unless the value is exactly
    constant (gain_abs = 0)."""
    first = np.searchsorted(knots, lo, side="right")          # piece of z just above lo
    last = np.searchsorted(knots, hi, side="left")            # knots strictly inside (lo, hi)
    strips = 1 + np.maximum(last - first, 0)
    still = ~np.any(gain != 0, axis=1)
    undecided = []
    if still.any():
        own = np.searchsorted(knots, offset, side="right")
        for row in np.flatnonzero(still & (strips > 1) & np.any(gain_abs != 0, axis=1)):
            undecided += [(int(row), k) for k in range(first[row], last[row] + 1)
                          if k != own[row]]
        first, strips = np.where(still, own, first), np.where(still, 1, strips)
    return first, strips, undecided


def begin_cut(cells, knots: np.ndarray, lo: np.ndarray, hi: np.ndarray, gain: np.ndarray,
              offset: np.ndarray, gain_abs: np.ndarray) -> dict:
    """The first step of a cells container's `split` along one neuron, from the range
    [lo, hi] of its pre-activation on each cell (`candidate_pieces`): the cells cut into
    several strips are copied once per strip.  Returns a dict: total (count of strips),
    undecided ((row, piece) pairs), first (every cell's first piece), rows (the cell of
    every strip), pieces (of every strip) and part (the copies), the last three None when
    no cell is cut."""
    first, strips, undecided = candidate_pieces(knots, lo, hi, gain, offset, gain_abs)
    out = {"total": int(strips.sum()), "undecided": undecided, "first": first, "rows": None,
           "pieces": None, "part": None}
    if np.any(strips > 1):
        rows = np.flatnonzero(strips > 1)
        rep = np.repeat(rows, strips[rows])
        start = np.repeat(np.cumsum(strips[rows]) - strips[rows], strips[rows])
        out.update(rows=rep, pieces=first[rep] + np.arange(len(rep)) - start,
                   part=cells.take(rep))
    return out


def end_cut(cells, cut: dict, kept: np.ndarray | None = None) -> tuple:
    """The result of a `split` (module docstring): the uncut cells, then the strips kept,
    with (rows they come from, pieces), the count and the undecided strips (those not kept
    join them)."""
    undecided = list(cut["undecided"])
    if cut["part"] is None:
        return cells, np.arange(len(cells)), cut["first"], cut["total"], undecided
    assert kept is not None                   # the callers give it whenever strips were cut
    whole = np.ones(len(cells), dtype=bool)
    whole[cut["rows"]] = False
    undecided += [(int(r), int(k)) for r, k in zip(cut["rows"][~kept], cut["pieces"][~kept])]
    origin = np.concatenate([np.flatnonzero(whole), cut["rows"][kept]])
    pieces = np.concatenate([cut["first"][whole], cut["pieces"][kept]])
    return (type(cells).concat([cells.take(whole), cut["part"].take(kept)]), origin, pieces,
            cut["total"], undecided)


def _walk(steps: list, rows: np.ndarray) -> np.ndarray:
    """The pieces (R, len(steps)) of the cells `rows` after the cuts `steps` (per neuron,
    (origin, piece) of every cell after it), by following the origins back."""
    out = np.zeros((len(rows), len(steps)), np.int64)
    for n in reversed(range(len(steps))):
        origin, piece = steps[n]
        out[:, n] = piece[rows]
        rows = origin[rows]
    return out


@dataclass
class Enumeration:
    """What `enumerate_cells` found: the final cells, their maps (row i for cell i), the
    patterns, the slivers as (activation layer, cell, pieces of the layer's first neurons,
    bound), and the bracket of an interrupted run (else None)."""
    cells: Any                   # _exact1d.Segments or _regions2d.Polygons (duck-typed)
    maps: LayerMap
    patterns: Patterns
    slivers: list
    stopped: dict | None = None


def _check_range(maps: LayerMap, layer: int) -> None:
    """OverflowResult when a cell's map leaves the float64 range (finite parameters whose
    slopes or values do not fit: no value is reported)."""
    if not (np.all(np.isfinite(maps.gain_abs)) and np.all(np.isfinite(maps.offset_abs))):
        raise OverflowResult(f"model: the slopes or values of the network after layer {layer} "
                             "leave the float64 range for these finite parameters; no exact "
                             "value is reported")


def chunks(count: int, size: int) -> list:
    return [slice(a, min(a + size, count)) for a in range(0, count, size)]


def enumerate_cells(net, cells, maps: LayerMap, tables: dict, p: float, limit: float,
                    deadline, chunk: int, stop) -> Enumeration:
    """Cut `cells` (the starting domain, maps its LayerMap) through the network: a dense
    layer moves the maps; an activation layer cuts every cell along the knots of each
    neuron in turn (`cells.split(maps, n, knots, knot_error)`, which returns the new cells,
    the row and the piece each comes from, the count and the undecided strips), rebuilds
    the layer's pieces from those steps, records the patterns and moves the maps through
    it.  The cuts are counted before they are built: past `limit`
    cells, or at the deadline, `stop(cells, upper, status, reason)` gives the bracket of an
    interrupted run (upper: min over the layers reached of max ||dz_l/dx|| times the
    layer-wise bound of the rest)."""
    tails, upper = tail_bounds(net, p)
    after, lips, _ = tail_products(net, p)
    slivers: list[tuple]                     # (depth, cell, pieces, bound)
    patterns, slivers, depth, width = Patterns(), [], 0, net.n_in
    for i, layer in enumerate(net.layers):
        if not layer.is_activation:
            with np.errstate(over="ignore", invalid="ignore"):
                maps = maps.dense(layer)
            _check_range(maps, i)
            width = len(layer.params["weight"])
            continue
        table = tables[i]
        gain_norms = jacobian_norms(maps.gain, p)
        upper = min(upper, float(gain_norms.max()) * tails[depth])
        steps: list[tuple] = []              # per neuron: (origin, piece) of every cell
        for n in range(width):
            if deadline.expired():
                return Enumeration(cells, maps, patterns, slivers, stop(
                    cells, upper, "time_limit", f"stopped at the time limit "
                    f"{deadline.time_limit:g} s in layer {i} ({len(cells)} cells so far)"))
            knots = table.knots[n]
            knot_error = float(np.max(table.knot_error[n], initial=0.0))
            parts, origins, pieces, total = [], [], [], 0
            for part in chunks(len(cells), chunk):
                done, origin, piece, count, undecided = cells.take(part).split(
                    maps, n, knots, knot_error)
                parts.append(done)
                origins.append(origin + part.start)
                pieces.append(piece)
                total += count
                for row, k in undecided:
                    row += part.start
                    cell = int(cells.parent[row])
                    known = tuple(int(v) for v in _walk(steps, np.array([row]))[0]) + (k,)
                    slivers.append((depth, cell, known, sliver_bound(
                        maps.gain[cell], table, known, lips[depth], after[depth], p)))
                if total + len(cells) - part.stop > limit:
                    return Enumeration(cells, maps, patterns, slivers, stop(
                        cells, upper, "limit", f"layer {i}"))
            cells = type(cells).concat(parts)
            steps.append((np.concatenate(origins), np.concatenate(pieces)))
        layer_pieces = _walk(steps, np.arange(len(cells)))
        patterns.record(cells.parent, layer_pieces, maps.flat()[cells.parent])
        with np.errstate(over="ignore", invalid="ignore"):
            maps = maps.activate(table, layer_pieces, cells.parent)
        _check_range(maps, i)
        cells.parent = np.arange(len(cells))
        depth += 1
    return Enumeration(cells, maps, patterns, slivers)


def certify(net, enum: Enumeration, points: np.ndarray, tables: dict, p: float,
            chunk: int) -> dict:
    """The attained cells (module docstring) at one point per final cell (M, d): robust
    (floating point decides the exact pattern there, and it is the cell's own), match (and
    the network's Jacobian there equals the pattern's, entry by entry, to JACOBIAN_RTOL
    relative to the largest entry or to the entry's magnitude (`LayerMap.gain_abs`: the
    products of |W| and |slopes|, which bound the rounding of either Jacobian where terms
    cancel), whichever is larger: robust and not match is a failed check), the Jacobians'
    norms (pattern, network).  A point where floating point decides another pattern than
    the cell's (its float polygon is wider than its exact region, where the cuts were
    uncertain) leaves the cell to the exact step, like a point where it decides none."""
    count = len(points)
    j_pat = enum.maps.gain[enum.cells.parent]                       # (P, N_L, d)
    robust = np.zeros(count, dtype=bool)
    same = np.zeros(count, dtype=bool)
    j_net = np.zeros_like(j_pat)
    for part in chunks(count, chunk):
        own, flat = enum.patterns.own(np.arange(part.start, part.stop))
        found, ok = robust_pieces(net, points[part], tables, flat)
        agree = np.ones(part.stop - part.start, dtype=bool)
        for mine, theirs in zip(own, found):
            agree &= np.all(mine == theirs, axis=1)
        robust[part], same[part] = ok, ok & agree
        j_net[part] = net.input_jacobian(points[part])
    scale = max(float(np.abs(j_pat).max(initial=0.0)), np.finfo(float).tiny)
    # where terms cancel (weights +A, -A on two neurons with the same row), either
    # Jacobian's rounding is relative to the magnitude of its products, not to its value
    magnitude = np.maximum(scale, enum.maps.gain_abs[enum.cells.parent])
    match = same & np.all(np.abs(j_net - j_pat) <= JACOBIAN_RTOL * magnitude, axis=(1, 2))
    return {"robust": same, "match": match, "pattern_norms": jacobian_norms(j_pat, p),
            "net_norms": jacobian_norms(j_net, p)}


def decide(net, p: float, region, enum: Enumeration, pending: list, value: float,
           tables: dict, threshold, deadline) -> dict:
    """The patterns floating point left open: the final cells `pending` ((index, norm)
    pairs) and the slivers, by decreasing bound while the bound is above
    `threshold(best)` (best: the value so far, growing with the regions proven), each
    decided in exact arithmetic over the starting `region` (reference.lipschitz._rational).  Returns
    proven (list of (norm, pattern, exact region)), empty (patterns proven empty), checked
    (patterns decided), and open_bound (the largest bound left when the deadline came, else
    None)."""
    depth = len(enum.patterns)
    queue = [(bound, depth, int(i), None) for i, bound in pending]
    queue += [(bound, d, cell, pieces) for d, cell, pieces, bound in enum.slivers]
    queue.sort(key=lambda item: -item[0])
    rnet = rational.RationalNetwork(net, tables, region)
    out: dict[str, Any] = {"proven": [], "empty": 0, "checked": 0, "open_bound": None}
    best = value
    for bound, d, cell, pieces in queue:
        if bound <= threshold(best):
            break
        if deadline.expired():
            out["open_bound"] = bound
            break
        prefix = enum.patterns.pattern(d, cell) + ([] if pieces is None else [pieces])
        try:
            found = rational.regions(rnet, prefix, deadline)
        except TimeoutError:
            out["open_bound"] = bound
            break
        out["checked"] += 1
        if not found:
            out["empty"] += 1
        for pattern, exact_region in found:
            norm = float(jacobian_norms(pattern_jacobian(net, tables, pattern)[None], p)[0])
            out["proven"].append((norm, pattern, exact_region))
            best = max(best, norm)
    return out


def conclude(net, p: float, region, enum: Enumeration, cert: dict, tables: dict,
             rounding: float, deadline, scale: float = 1.0) -> dict:
    """The value of an enumeration from its certificate (`certify`) and the exact step
    (`decide`, on every pattern above the attained value by more than 2 rounding): value
    (the largest attained or proven norm), attained (whether the value is attained at a
    float64 point), best (the attained cell of largest norm, or None), proven (the proven
    region of largest norm as (norm, pattern, exact region), or None), top (the largest norm
    any remaining pattern may have: the upper end before its rounding margin), mismatches
    (cells whose pattern floating point decides but whose own pattern or Jacobian differs:
    a failed check), reasons (why there is no exact value: a bound they quote is divided by
    `scale`, the factor the caller's input normalisation put on every norm), decided
    (`decide`'s counts)."""
    match, net_norms = cert["match"], cert["net_norms"]
    value = float(net_norms[match].max(initial=0.0))
    pending = [(int(i), float(cert["pattern_norms"][i])) for i in np.flatnonzero(~match)]
    decided = decide(net, p, region, enum, pending, value, tables, lambda v: v + 2 * rounding,
                     deadline)
    proven = max(decided["proven"], key=lambda item: item[0], default=None)
    attained = proven is None or proven[0] <= value
    if not attained:
        assert proven is not None               # attained when nothing was proven
        value = proven[0]
    open_bound = decided["open_bound"]
    top = max([value, float(cert["pattern_norms"][match].max(initial=0.0))]
              + ([open_bound] if open_bound is not None else []))
    mismatches = int((cert["robust"] & ~match).sum())
    reasons = []
    if mismatches:
        reasons.append(f"{mismatches} cells' Jacobians differ from the network's at a point "
                       f"where floating point decides their pattern (to {JACOBIAN_RTOL:g} "
                       "relative)")
    if open_bound is not None and open_bound > value + 2 * rounding:
        reasons.append("the time limit came before every pattern left open by floating point "
                       "was decided in exact arithmetic (largest bound left "
                       f"{_format.exact(open_bound / scale)})")
    best = int(np.flatnonzero(match)[np.argmax(net_norms[match])]) if match.any() else None
    return {"value": value, "attained": attained, "best": best, "proven": proven, "top": top,
            "mismatches": mismatches, "reasons": reasons, "decided": decided}
