"""Exact Lipschitz constant of a network with one input, over R or over a box [-R, R], by
propagating its breakpoints layer by layer.

f is continuous and piecewise linear; in 1-D every l_p norm of the derivative is the norm
of the vector f'(x) (N_L,), so Lip_p(f) = max over the linear pieces of ||f'||_p.  The
partition is built as reference.lipschitz._regions2d builds its polygons, one dimension down (the
machinery is shared: reference.lipschitz._partition): start from the domain (R, or the box
normalised to [-m, m] by a power of two, `exact.scaled_input`); before activation layer l each
pre-activation is affine on every segment (z = g x + c, a partition.LayerMap); neuron by
neuron a segment is cut at the crossings x = (tau - c) / g of the knots its z-range meets,
and each piece records the neuron's piece.  Every end carries a bound on its position error
(the crossing's, (knot error + gamma_m (g_abs |x| + c_abs)) / |g| + its rounding), every
z a bound on its error, and a knot within the bounds of a segment's z-range starts a piece:
one that keeps no length is an undecided sliver, kept with a bound of every slope it could
hold (never dropped).  A segment's pattern is attained where floating point decides it at
its midpoint (reference.lipschitz._rounding_exact.robust_pieces); the others, and the slivers, are
decided in exact rational arithmetic when their norm or bound exceeds the value (partition.decide):
two kinks 1e-13 apart, or a piece that the spline kernels' snap (1e-12 steps below a knot)
would hide from a midpoint evaluation, keep their slope in the max.

Limits: the cuts are counted before they are built; past max_pieces segments (status
"max_pieces") or time_limit seconds (status "time_limit") the run stops with a bracket:
lower, the largest secant slope between the breakpoints found so far; upper, min over the
layers reached of max ||dz_l/dx|| times the layer-wise bound of the layers from l on.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from reference._limits import Deadline, check_box, check_limit
from reference._numerics import gamma
from reference.exceptions import OverflowResult
from reference.lipschitz._bound_result import BoundResult
from reference.lipschitz._bounds import check_finite, parse_p, vector_norm
from reference.lipschitz._exact import (
    MAX_PIECES,
    TIME_LIMIT,
    chord_pair,
    finite_or_none,
    input_scale,
    jacobian_rounding,
    piece_tables,
    scaled_input,
)
from reference.lipschitz._partition import (
    LayerMap,
    begin_cut,
    certify,
    chunks,
    conclude,
    end_cut,
    enumerate_cells,
)
from reference.nn._network import Network

CHUNK = 65536              # segments per step (memory CHUNK x width)
CHANGE_RTOL = 1e-12        # linear_pieces: neighbours whose slopes agree to this merge


@dataclass
class Segments:
    """S segments [left, right] of the line (+-inf at the ends of R), each end with a bound
    on its distance to the exact model's end (radius_left, radius_right; 0 at a fixed end)
    and parent (S,), the row of the layer's LayerMap (the cells container of
    reference.lipschitz._partition)."""
    left: np.ndarray
    right: np.ndarray
    radius_left: np.ndarray
    radius_right: np.ndarray
    parent: np.ndarray

    FIELDS = ("left", "right", "radius_left", "radius_right", "parent")

    def __len__(self) -> int:
        return len(self.left)

    def take(self, index) -> "Segments":
        return Segments(*(getattr(self, key)[index] for key in self.FIELDS))

    @staticmethod
    def concat(parts: list) -> "Segments":
        return Segments(*(np.concatenate([getattr(part, key) for part in parts])
                          for key in Segments.FIELDS))

    def points(self) -> np.ndarray:
        """One point inside each segment (S, 1) (`inside`)."""
        return inside(self.left, self.right)[:, None]

    def split(self, maps: LayerMap, n: int, knots: np.ndarray, knot_error: float) -> tuple:
        """Every segment cut at the knots of neuron n that its z-range (widened by the error
        bounds) meets; a crossing within the ends' bounds of an end snaps to it.  Returns
        `partition.end_cut`'s (segments, the row each comes from, its piece, the count of
        pieces (before any is built), the undecided ones as (row, piece) pairs)."""
        g, c = maps.gain[self.parent, n, 0], maps.offset[self.parent, n]
        g_abs, c_abs = maps.gain_abs[self.parent, n, 0], maps.offset_abs[self.parent, n]
        rounds = maps.rounds
        ends = []
        for x, radius in ((self.left, self.radius_left), (self.right, self.radius_right)):
            finite = np.isfinite(x)
            xf = np.where(finite, x, 0.0)
            with np.errstate(invalid="ignore"):
                z = np.where(finite, g * xf + c, np.where(g == 0, c, g * x))
            err = 2 * (gamma(4) * (np.abs(g * xf) + np.abs(c))
                       + gamma(rounds) * (g_abs * np.abs(xf) + c_abs) + np.abs(g) * radius)
            ends.append((z, err + knot_error))
        (z_l, e_l), (z_r, e_r) = ends
        lo = np.minimum(z_l - e_l, z_r - e_r)
        hi = np.maximum(z_l + e_l, z_r + e_r)
        cut = begin_cut(self, knots, lo, hi, g[:, None], c, g_abs[:, None])
        part = cut["part"]
        if part is None:
            return end_cut(self, cut)
        rep, piece = cut["rows"], cut["pieces"]
        gs, cs, gas, cas = g[rep], c[rep], g_abs[rep], c_abs[rep]
        edges = np.concatenate([[-np.inf], knots, [np.inf]])
        crossing = []
        for tau in (edges[piece], edges[piece + 1]):         # the piece's ends, in x
            finite = np.isfinite(tau)
            with np.errstate(invalid="ignore", divide="ignore"):
                x = np.where(finite, (np.where(finite, tau, 0.0) - cs) / gs,
                             np.sign(gs) * tau)
                xf = np.where(np.isfinite(x), x, 0.0)
                radius = 2 * ((knot_error + gamma(rounds) * (cas + gas * np.abs(xf)))
                              / np.abs(gs) + gamma(3) * (np.abs(xf) + np.abs(cs / gs)))
            crossing.append((x, np.where(finite, radius, 0.0)))
        (x_lo, r_lo), (x_hi, r_hi) = crossing
        swap = gs < 0                                       # z decreasing: the ends swap
        x_lo, x_hi = np.where(swap, x_hi, x_lo), np.where(swap, x_lo, x_hi)
        r_lo, r_hi = np.where(swap, r_hi, r_lo), np.where(swap, r_lo, r_hi)
        with np.errstate(invalid="ignore"):
            start_at_left = x_lo <= part.left + (r_lo + part.radius_left)
            end_at_right = x_hi >= part.right - (r_hi + part.radius_right)
            empty = ((x_lo >= part.right - (r_lo + part.radius_right))
                     | (x_hi <= part.left + (r_hi + part.radius_left)))
        part.radius_left = np.where(start_at_left, part.radius_left, r_lo)
        part.radius_right = np.where(end_at_right, part.radius_right, r_hi)
        part.left = np.where(start_at_left, part.left, x_lo)
        part.right = np.where(end_at_right, part.right, x_hi)
        return end_cut(self, cut, ~empty & (part.right > part.left))


def inside(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """One point inside each segment (left, right) (S,): the midpoint, or beyond the finite
    end of an unbounded one by max(1, |end|) (0 for the whole line)."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(left) & np.isfinite(right), left / 2 + right / 2,
                        np.where(np.isfinite(left), left + np.maximum(1, np.abs(left)),
                                 np.where(np.isfinite(right),
                                          right - np.maximum(1, np.abs(right)), 0.0)))


def _float_ends(region) -> tuple[float, float]:
    """An exact interval (lo, hi) (Fractions, None for an infinite end) as floats."""
    lo, hi = region
    return (-np.inf if lo is None else float(lo)), (np.inf if hi is None else float(hi))


def _max_secant(net: Network, points: np.ndarray, p: float) -> float:
    """max_k ||f(x_{k+1}) - f(x_k)||_p / (x_{k+1} - x_k) over sorted distinct points: secant
    slopes, each a lower bound on Lip_p(f) (up to the rounding of the differences)."""
    best, previous = 0.0, None
    for part in chunks(len(points), CHUNK):
        x = points[part]
        f = net.forward(x[:, None])
        if previous is not None:
            x, f = np.concatenate([[previous[0]], x]), np.concatenate([previous[1], f])
        if len(x) > 1:
            slopes = vector_norm(np.diff(f, axis=0), p) / np.diff(x)
            best = max(best, float(slopes.max()))
        previous = (x[-1], f[-1:])
    return best


def _breakpoints(segments: Segments) -> np.ndarray:
    ends = np.concatenate([segments.left, segments.right])
    return np.unique(ends[np.isfinite(ends)])


def _enumerate(net, domain: tuple, p, max_pieces, deadline, label: str, tables: dict):
    """The partition of `domain` (lo, hi) (+-inf for R) by the network's breakpoints
    (partition.enumerate_cells), with the bracket of an interrupted run."""
    start = Segments(np.array([domain[0]], float), np.array([domain[1]], float),
                     np.zeros(1), np.zeros(1), np.zeros(1, int))

    def stop(segments, upper, status, where):
        if status == "limit":
            status, where = "max_pieces", (f"stopped: the partition would exceed max_pieces="
                                           f"{max_pieces:g} pieces in {where}; pass a larger "
                                           "max_pieces")
        breaks = _breakpoints(segments)
        ends = [v for v in domain if np.isfinite(v)]
        points = np.unique(np.concatenate([breaks, ends])) if ends else (
            np.concatenate([[breaks[0] - 1.0], breaks, [breaks[-1] + 1.0]]) if len(breaks)
            else np.array([-1.0, 1.0]))
        return {"value": None, "status": status, "certified_exact": False,
                "lower_bound": _max_secant(net, points, p), "upper_bound": finite_or_none(upper),
                "lower_bound_certificate": f"largest secant slope between {len(points)} points "
                                           f"(the breakpoints found so far, {label})",
                "upper_bound_certificate": "max over the segments found so far of "
                                           "||dz_l/dx||_p times the layer-wise bound of the "
                                           "layers from l on",
                "upper_margin_kind": "closed_form", "pieces": len(breaks) + 1, "reason": where}
    return enumerate_cells(net, start, LayerMap.start(1), tables, p, max_pieces, deadline,
                           CHUNK, stop)


def _exact(net: Network, p: float, domain: tuple, max_pieces, deadline,
           scale: float = 1.0) -> dict:
    """The exact value over `domain` on `net` (module docstring): value, status,
    certified_exact, bounds, the argmax segment, the counts of the certificate (`net` the
    caller's network with its input scaled by `scale`: the reasons quote norms / scale)."""
    label = "and one on each side" if not np.isfinite(domain[0]) else "and the box's ends"
    tables = piece_tables(net)
    enum = _enumerate(net, domain, p, max_pieces, deadline, label, tables)
    if enum.stopped is not None:
        return enum.stopped
    segments = enum.cells
    points = segments.points()
    cert = certify(net, enum, points, tables, p, CHUNK)
    rounding = jacobian_rounding(net, p)
    region = tuple(Fraction(v) if np.isfinite(v) else None for v in domain)
    found = conclude(net, p, region, enum, cert, tables, rounding, deadline, scale)
    value = found["value"]
    if not np.isfinite(value):
        raise OverflowResult("model: exact_1d: a slope of the network leaves the float64 range "
                             "for these finite parameters; no value is reported")
    order = np.argsort(points[:, 0])
    jac = enum.maps.gain[segments.parent][order, :, 0]                  # (S, N_L), sorted
    scale = max(float(np.abs(jac).max(initial=0.0)), np.finfo(float).tiny)
    changes = np.any(np.abs(np.diff(jac, axis=0)) > CHANGE_RTOL * scale, axis=1)
    best = found["best"]
    reasons = found["reasons"]
    return {"value": None if reasons else value, "status": "not_certified" if reasons
            else "optimal", "certified_exact": not reasons, "lower_bound": value,
            "upper_bound": found["top"] if reasons else value,
            "rounding_bound": rounding, "upper_margin_kind": "jacobian_rounding",
            "pieces": len(segments), "linear_pieces": int(changes.sum()) + 1,
            "breakpoints": _breakpoints(segments), "attained": found["attained"],
            "unattained_pieces": int((~cert["match"]).sum()),
            "undecided_slivers": len(enum.slivers),
            "exact_checked": found["decided"]["checked"],
            "exact_empty": found["decided"]["empty"],
            "exact_regions": len(found["decided"]["proven"]),
            "argmax_segment": (_float_ends(found["proven"][2]) if not found["attained"] else
                               (float(segments.left[best]), float(segments.right[best]))),
            "best_segment": None if best is None else (float(segments.left[best]),
                                                       float(segments.right[best])),
            **({"reason": "; ".join(reasons)} if reasons else {})}


def exact_1d(net: Network, p: float | str = 2, max_pieces: float = MAX_PIECES,
             time_limit: float = TIME_LIMIT) -> BoundResult:
    r"""Exact Lipschitz constant over R of a network with one input, by breakpoint propagation.

    Parameters
    ----------
    net : Network
        The network f, with N_0 = 1 input and N_L outputs; its parameters must be finite.
    p : {1, 2, inf} or str, default 2
        The l_p norm on the outputs (on one input every l_p norm is |x|).
    max_pieces : int, default MAX_PIECES (1e6)
        The most segments of the partition; past it the run stops with a bracket.
    time_limit : float, default TIME_LIMIT (60.0)
        Seconds; past it the run stops with a bracket.

    Returns
    -------
    result : BoundResult
        A dict subclass with attribute access (the keys marked [exact_1d] in `BoundResult`):
        ``value`` (float, or None without a certified value), ``status`` ("optimal",
        "not_certified", "max_pieces" or "time_limit"), ``certified_exact`` (bool),
        ``lower_bound`` <= Lip_p(f) <= ``upper_bound`` (floats; equal to value when
        optimal), ``lower_bound_certificate`` and ``upper_bound_certificate`` (str, when
        stopped), ``rounding_bound`` (`jacobian_rounding`, when not stopped),
        ``upper_margin_kind`` ("jacobian_rounding", or "closed_form" when stopped),
        ``pieces`` (segments of the final partition), ``linear_pieces`` (after merging
        neighbours whose slopes agree to CHANGE_RTOL relative), ``breakpoints`` (ndarray,
        sorted), ``argmax_point`` (float, when optimal), ``attained`` (whether the value is
        the network's own slope at a point where floating point decides the pattern, else
        a pattern's proven in exact arithmetic), the counts of the certificate
        (``unattained_pieces``, ``undecided_slivers``, ``exact_checked``, ``exact_empty``,
        ``exact_regions``), ``reason`` (str, without a certified value), ``domain`` ("R")
        and ``seconds``.

    Raises
    ------
    ValueError
        When the network does not have one input, p or max_pieces is out of range, or a
        parameter is not finite.
    OverflowResult
        When a slope of the network leaves the float64 range.

    See Also
    --------
    exact_1d_on_box : The same over a box [-R, R].
    regions_2d : The two-input analogue.

    Notes
    -----
    f is continuous and piecewise linear (CPWL) [1]_, so with f' the derivative (N_L,) on
    its linear pieces,

    .. math::

        \mathrm{Lip}_p(f) = \max_{\text{pieces}} \|f'\|_p .

    The pieces are found by cutting the line at the crossings x = (tau - c) / g of every
    neuron's knots tau by its pre-activation z = g x + c, layer by layer; every end carries
    a bound on its position error, and patterns that floating point cannot decide are
    decided in exact rational arithmetic (module docstring).

    Limits: when the partition would exceed max_pieces segments (status "max_pieces") or
    time_limit seconds have passed (status "time_limit"), it stops and returns value None,
    certified_exact False and a bracket lower_bound <= Lip_p(f) <= upper_bound: lower, the
    largest secant slope between the breakpoints found so far; upper, min over the layers l
    reached of max_j ||dz_l/dx on segment j||_p * layerwise(layers from l) (||J_tail g||_p <=
    ||J_tail||_{p->p} ||g||_p), and layerwise(f) before any.  When the exact step runs out of
    time: status "not_certified", value None, a reason and the bracket.  The upper end of a
    verdict adds `jacobian_rounding` (upper_margin_kind "jacobian_rounding").

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.

    Examples
    --------
    >>> from reference.nn import Dense, Network, ReLU
    >>> from reference.lipschitz import exact_1d
    >>> net = Network([Dense([[1.0], [-2.0]]), ReLU(), Dense([[1.0, 1.0]])])
    >>> result = exact_1d(net)
    >>> print(result["status"], result["value"], result["pieces"], result["breakpoints"])
    optimal 2.0 2 [0.]
    """
    p = parse_p(p)
    check_finite(net)
    if net.n_in != 1:
        raise ValueError(f"model: exact_1d needs a network with 1 input, got {net.n_in}")
    max_pieces = check_limit(max_pieces, "max_pieces")
    deadline = Deadline(time_limit)
    out = BoundResult(_exact(net, p, (-np.inf, np.inf), max_pieces, deadline))
    if out["status"] == "optimal":
        lo, hi = out["argmax_segment"]
        out["argmax_point"] = float(inside(np.array([lo]), np.array([hi]))[0])
    for key in ("argmax_segment", "best_segment"):
        out.pop(key, None)
    out.update(domain="R", seconds=deadline.elapsed())
    return out


def exact_1d_on_box(net: Network, p: float | str, box: float, max_pieces: int = MAX_PIECES,
                    time_limit: float = TIME_LIMIT) -> BoundResult:
    """Exact Lipschitz constant over [-box, box] of a network with one input.

    Parameters
    ----------
    net : Network
        The network f, with N_0 = 1 input; its parameters must be finite.
    p : {1, 2, inf} or str
        The l_p norm on the outputs.
    box : float
        The half-width R > 0 of the interval [-R, R].
    max_pieces : int, default MAX_PIECES (1e6)
        The most segments of the partition.
    time_limit : float, default TIME_LIMIT (60.0)
        Seconds.

    Returns
    -------
    result : BoundResult
        The keys marked [exact_1d_on_box] in `BoundResult` (no ``value``: they complete the
        result of `exact_1d` over R, as the ladder does).  When certified: ``box_value``
        (float: Lip_p(f) over the box), ``box_pieces`` (int), ``witness_x`` and
        ``witness_x_pair`` (lists of one float: a `chord_pair` in the segment of the value, f
        affine between them) and ``witness`` (float: their secant ratio).  Otherwise
        ``box_value`` None, ``box_reason`` (str), ``box_upper_bound`` (float or None) and
        ``box_pieces``.

    Raises
    ------
    ValueError
        When p, box or max_pieces is out of range, or a parameter is not finite.

    See Also
    --------
    exact_1d : The method, over R.

    Notes
    -----
    The same method as `exact_1d` over the box, normalised to [-m, m] by a power of two
    (`scaled_input`, exact); the box's ends are the domain's.

    Examples
    --------
    >>> from reference.nn import Dense, Network, ReLU
    >>> from reference.lipschitz import exact_1d_on_box
    >>> net = Network([Dense([[1.0], [-2.0]]), ReLU(), Dense([[1.0, 1.0]])])
    >>> result = exact_1d_on_box(net, 2, box=0.5)
    >>> print(result["box_value"], result["box_pieces"], round(result["witness"], 6))
    2.0 2 2.0
    """
    p = parse_p(p)
    check_finite(net)
    box = check_box(box)
    deadline = Deadline(time_limit)
    scale = input_scale(box)
    unit = scaled_input(net, scale)
    out = _exact(unit, p, (-box / scale, box / scale), check_limit(max_pieces, "max_pieces"),
                 deadline, scale)
    if out["status"] != "optimal":
        return BoundResult(box_value=None, box_reason=out["reason"],
                           box_upper_bound=finite_or_none((out["upper_bound"] or np.inf)
                                                          / scale),
                           box_pieces=out.get("pieces"))
    for lo, hi in (out["argmax_segment"], out["best_segment"]):
        try:
            x_a, x_b, ratio = chord_pair(unit, p, np.array([[1.0], [-1.0]]), np.array([hi, -lo]),
                                         x=inside(np.array([lo]), np.array([hi])))
            break
        except (ValueError, TypeError):   # thinner than float64 resolves: the best attained
            continue
    return BoundResult(box_value=out["value"] / scale, box_pieces=out["pieces"],
                       witness_x=(scale * x_a).tolist(), witness_x_pair=(scale * x_b).tolist(),
                       witness=ratio / scale)
