"""Numerical comparisons of the tests: central differences, relative error, a sampled
Lipschitz lower bound, LipSDP certificates against each other and against the 50-digit LMI,
and the check that printed text holds numbers, not NumPy reprs."""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

from reference.exceptions import NumpyRepr
from reference.lipschitz._bounds import blocks, jacobian_norms
from reference.nn import Network

REDUCTION_OUTPUT_RTOL = 1e-10
"""The representer reduction keeps the outputs at the data to this, relative to
max(1, max |f|) (theory_checks.representer and the property tests)."""


def central_difference(fn: Callable[[], float], array: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """d fn() / d array by central differences, perturbing ``array`` in place.

    Parameters
    ----------
    fn : callable
        No argument, returns a float that depends on ``array``.
    array : ndarray
        Perturbed entry by entry and restored afterwards.
    h : float, optional
        The step.

    Returns
    -------
    ndarray, shape of ``array``
        (fn(a + h e_i) - fn(a - h e_i)) / 2h per entry i.
    """
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        old = array[idx]
        array[idx] = old + h
        plus = fn()
        array[idx] = old - h
        minus = fn()
        array[idx] = old
        grad[idx] = (plus - minus) / (2 * h)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|, b the reference (its maximum floored at 1e-12).

    Parameters
    ----------
    a, b : ndarray
        Broadcastable.

    Returns
    -------
    float
        The relative error of ``a``.
    """
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)


def sampled_max_norm(net: Network, p: float, box: float, points: int = 400_000,
                     seed: int = 0) -> float:
    """A sampled lower bound on Lip_p over a box: max ||J(x)||_{p->p} over uniform samples.

    Parameters
    ----------
    net : Network
        The network whose Jacobian is sampled.
    p : float
        1, 2 or inf.
    box : float
        Half-width of the box [-box, box]^N_0.
    points : int, optional
        Number of samples.
    seed : int, optional
        Seed of the samples.

    Returns
    -------
    float
        The largest sampled norm.
    """
    x = np.random.default_rng(seed).uniform(-box, box, (points, net.n_in))
    return float(jacobian_norms(net.input_jacobian(x), p).max())


def lipsdp_brackets_meet(a: dict, b: dict, scale: float = 1.0) -> bool:
    """Whether two certified LipSDP results bracket one SDP optimum (b's in units ``scale``
    times a's): each one's proven lower bound (optimum_lower) is at most the other's
    certified upper bound (sdp_value + sdp_rounding_bound).  The honest form of "equal to
    the stated accuracy": the accuracy bounds value - optimum, the rounding bound
    optimum - value.

    Parameters
    ----------
    a, b : dict
        Results of ``reference.lipschitz.lipsdp``.
    scale : float, optional
        b's units in a's.

    Returns
    -------
    bool
        True when the brackets meet.
    """
    return (a["optimum_lower"] * scale <= b["sdp_value"] + b["sdp_rounding_bound"]
            and b["optimum_lower"] <= (a["sdp_value"] + a["sdp_rounding_bound"]) * scale)


def lipsdp_ordered(neuron: dict, layer: dict) -> bool:
    """Whether LipSDP-neuron's optimum <= LipSDP-layer's holds as far as the certificates
    show: the neuron's proven lower bound is at most the layer's certified value (capped or
    not) plus its rounding bound.

    Parameters
    ----------
    neuron, layer : dict
        Results of ``reference.lipschitz.lipsdp`` with the two variants.

    Returns
    -------
    bool
        True when the certificates allow the order.
    """
    return neuron["optimum_lower"] <= layer["value"] + layer["rounding_bound"]


def exact_lmi(net: Network):
    """The LMI data of a ReLU network (alpha 0, beta 1) in 50-digit arithmetic (mpmath),
    from its weights as given.

    Parameters
    ----------
    net : Network
        Dense layers with ReLU between them.

    Returns
    -------
    rows : list of mpmath matrices
        The rows of A.
    c : mpmath matrix
        C.
    n0 : int
        Input width.
    side : int
        N_0 + number of hidden neurons.
    """
    import mpmath as mp

    mp.mp.dps = 50
    ws = [mp.matrix(w.tolist()) for w, _ in blocks(net)]
    n0 = net.n_in
    n = sum(w.rows for w in ws[:-1])
    side = n0 + n
    g = mp.matrix(n0, side)
    for i in range(n0):
        g[i, i] = 1
    rows, col = [], n0
    for w in ws[:-1]:                                 # ReLU: alpha 0, beta 1
        z = w * g
        rows += [z[i, :] for i in range(z.rows)]
        g = mp.matrix(z.rows, side)
        for i in range(z.rows):
            g[i, col + i] = 1
        col += z.rows
    return rows, ws[-1] * g, n0, side


def exact_rho(net: Network, lam: np.ndarray):
    """rho* = lambda_max(P - Q R^-1 Q^T) of the LMI built from the weights in 50-digit
    arithmetic (``exact_lmi``), at the float64 multipliers ``lam``: the value the LipSDP
    certificate rounds.

    Parameters
    ----------
    net : Network
        As ``exact_lmi``.
    lam : ndarray, shape (number of hidden neurons,)
        The multipliers.

    Returns
    -------
    mpmath.mpf
        rho*, to 50 digits.
    """
    import mpmath as mp

    rows, c, n0, side = exact_lmi(net)
    m = c.T * c
    for i, row in enumerate(rows):
        for j in range(side):
            m[n0 + i, j] += mp.mpf(lam[i]) * row[j]
            m[j, n0 + i] += mp.mpf(lam[i]) * row[j]
        m[n0 + i, n0 + i] -= 2 * mp.mpf(lam[i])
    p_blk, q_blk, r_blk = m[:n0, :n0], m[:n0, n0:], m[n0:, n0:]
    schur = p_blk - q_blk * mp.inverse(r_blk) * q_blk.T
    return max(mp.eigsy(schur, eigvals_only=True))


NUMPY_REPR = re.compile(r"\bnp\.[a-z_]+\d*\(|\bnp\.(True|False)_|\barray\(")
"""NumPy's repr of a number or an array (``np.float64(1.5)``, ``np.True_``, ``array(``)."""


def assert_numbers_only(text: str) -> None:
    """Check that printed text holds numbers, never NumPy's repr of them.

    Parameters
    ----------
    text : str
        Printed output.

    Raises
    ------
    NumpyRepr
        Showing the lines of ``text`` that match NUMPY_REPR.
    """
    bad = [line for line in text.splitlines() if NUMPY_REPR.search(line)]
    if bad:
        raise NumpyRepr("\n".join(bad))


def numpy_typed(value):
    """A value with every Python number as a NumPy scalar: what a computation in NumPy may
    hand the printing code instead (the tests of printed numbers print both).

    Parameters
    ----------
    value : object
        A number, or dicts, lists and tuples of them (other objects are kept).

    Returns
    -------
    object
        The same structure (a dict subclass becomes a dict) with float -> np.float64,
        int -> np.int64, bool -> np.bool_.
    """
    if isinstance(value, dict):
        return {k: numpy_typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(numpy_typed(v) for v in value)
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int):
        return np.int64(value)
    if isinstance(value, float):
        return np.float64(value)
    return value
