"""The rounding margins of the built-in upper bounds: what `Method.upper_margin` holds.

A method's certified upper bound is its value plus a margin that covers the rounding of its
computation (`reference.lipschitz._verdict.upper_margin` asks the method's record).  Each
function here takes ``(net, result, p)`` (the network, the method's ladder result, the norm's
p) and returns ``(value, margin, text)``: the value the bound starts from, the margin added to
it, what the margin is.
"""
from __future__ import annotations

import numpy as np

from reference.lipschitz import _exact as exact_mod
from reference.lipschitz._bounds import closed_form_rtol
from reference.nn._network import Network


def closed_form_margin(net: Network, result: dict, p: float) -> tuple[float, float, str]:
    """The margin of a closed form (theorem1*, layerwise): 16 gamma_n relative.

    Parameters
    ----------
    net : Network
        The network the bound is of.
    result : dict
        The method's ladder result (its ``value`` is used).
    p : float
        The norm's p (unused: the margin is the same for every p).

    Returns
    -------
    value, margin, text : float, float, str
        The value, ``value * 16 gamma_n`` and what that is.

    Notes
    -----
    n = sum of the blocks' (N_in + 2) + N_0 + N_L: sums of at most n terms and one product
    per block; 16 for LAPACK's SVD, backward stable with no sharp constant
    (`reference.lipschitz._bounds.closed_form_rtol`).
    """
    closed, closed_text = closed_form_rtol(net)
    return result["value"], result["value"] * closed, closed_text


def lipsdp_margin(net: Network, result: dict, p: float) -> tuple[float, float, str]:
    """The margin of a LipSDP bound: its proven `rounding_bound`.

    Parameters
    ----------
    net : Network
        The network the bound is of (unused: the result holds its bound).
    result : dict
        LipSDP's ladder result (``value``, ``rounding_bound``, ``rounding_useless``).
    p : float
        The norm's p (2).

    Returns
    -------
    value, margin, text : float, float, str
        The value, its rounding bound (inf when no check passed: never sound then) and
        what that is; above 1e-3 relative the text says the bound is useless.

    Notes
    -----
    reference.lipsdp.rounding_bound: -M(lambda, rho_up) >= 0 for the exact LMI data checked
    by a shifted Cholesky factorisation, the error of forming M and of the weights' products
    included; inf when R is too close to singular.
    """
    value, bound = result["value"], result["rounding_bound"]
    if not np.isfinite(bound):
        return value, np.inf, ("rounding bound NOT PROVEN (R nearly singular): no sound "
                               "verdict from LipSDP")
    rel = bound / value if value > 0 else 0.0
    return value, bound, (f"proven rounding bound {bound:.3g} ({rel:.3g} relative)" + (
        ", USELESS (> 1e-3 relative: the hidden block R is ill-conditioned)"
        if result.get("rounding_useless") else ""))


def exact_margin(net: Network, result: dict, p: float) -> tuple[float, float, str]:
    """The margin of an exact method's upper end, by its ``upper_margin_kind``.

    Parameters
    ----------
    net : Network
        The network the bound is of.
    result : dict
        The exact method's ladder result (``upper_bound``, ``upper_margin_kind`` and the
        field that kind names).
    p : float
        The norm's p.

    Returns
    -------
    value, margin, text : float, float, str
        The value the upper end starts from, its margin and what that is.

    Raises
    ------
    ValueError
        An ``upper_margin_kind`` outside ``exact.UPPER_MARGIN_KINDS``.

    Notes
    -----
    exact_1d_on_box ("jacobian_rounding") and regions_2d ("rounding_bound") add the rounding
    bound of a computed Jacobian norm (`exact.jacobian_rounding`; regions_2d's upper_bound
    holds it already); the MILP ("tolerance") its tolerance (HiGHS's bound + MILP_TOLERANCE
    x max(|bound|, layer-wise bound)); a layer-wise upper end ("closed_form": the layer-wise
    fallback of a MILP, interrupted brackets) as the closed forms.
    """
    closed, closed_text = closed_form_rtol(net)
    upper, how = result.get("upper_bound"), result.get("upper_margin_kind", "closed_form")
    if how not in exact_mod.UPPER_MARGIN_KINDS:       # a new kind must say its margin here
        raise ValueError(f"upper_margin_kind: expected one of "
                         f"{list(exact_mod.UPPER_MARGIN_KINDS)}, got {how!r}")
    if how == "jacobian_rounding":                             # exact_1d over the box
        return (result["box_value"], exact_mod.jacobian_rounding(net, p),
                "rounding bound of a computed Jacobian norm")
    if how == "rounding_bound":
        return (upper - result["rounding_bound"], result["rounding_bound"],
                "rounding bound of a computed Jacobian norm")
    if how == "tolerance":
        return upper - result["tolerance"], result["tolerance"], "HiGHS's tolerance"
    assert upper is not None                 # _collect asks only when there is an upper bound
    return upper, upper * closed, closed_text
