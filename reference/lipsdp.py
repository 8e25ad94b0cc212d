"""LipSDP (Fazlyab et al., NeurIPS 2019): l2 Lipschitz upper bounds by semidefinite
programming (an interior-point solver in NumPy by default; CVXOPT, cvxpy's solvers), with a
certificate re-evaluated in NumPy on the unreduced LMI.

Network x^0 -> z^{i+1} = W_i x^i -> x^{i+1} = phi_i(z^{i+1}) (i < k hidden blocks) ->
f = W_out x^k, every hidden neuron slope-restricted in [alpha_n, beta_n]: for two inputs,
the increments satisfy (dx - alpha dz)(beta dz - dx) >= 0 per neuron.  LipSDP multiplies
each by lambda >= 0 (T = diag(lambda)); M(lambda, rho) <= 0 below gives
||df||^2 <= rho ||dx^0||^2, so Lip_2(f) <= sqrt(rho); minimise rho.  One multiplier per
neuron (LipSDP-neuron) or per layer (LipSDP-layer).  The coupled "network" variant is left
out (its validity as an upper bound has been disputed).

Loop transformation (an exact change of variables): write every neuron as
x = alpha z + (beta - alpha) psi, psi slope-restricted in [0, 1], i.e. dpsi (dz - dpsi) >= 0,
which is the QC above divided by (beta - alpha)^2 (multiplier lambda' = lambda (beta -
alpha)^2).  The state is v = [x^0; psi] (N = n_0 + n, n the nonlinear neurons), z = A v,
f = C v (A, C: the weights with the linear parts alpha z folded in), B = [0, I_n], and

    M(lambda, rho) = A^T T B + B^T T A - 2 B^T T B + C^T C - rho E_0  <=  0,

E_0 = blkdiag(I_{n_0}, 0).  For ReLU (alpha 0, beta 1) this is the published LMI.  A neuron
with alpha = beta (identity, PReLU slope 1, a spline with K = 2) is linear: its QC reads
-(dx - alpha dz)^2 >= 0 and the untransformed SDP needs lambda -> infinity to use it (CVXOPT
failed with ZeroDivisionError there); here it has no psi and is absorbed into A and C
exactly (`lipsdp_data`), which is that limit.  With every hidden neuron linear the network is
affine and the value is ||C||_2 with no SDP.  A nearly linear neuron keeps lambda' of order
1 (the untransformed lambda ~ 1/(beta - alpha)^2 left the solvers inaccurate).  LipSDP-layer
shares the untransformed multiplier: lambda'_n = mu_l (beta_n - alpha_n)^2
(`lipsdp_solvers.multiplier_map`).

Exact reduction of the input block.  Only the x^0-columns X = [A_x; C_x] ((n + N_L, n0))
of A and C touch x^0 (B and the psi-block do not), and they lie in the row space of the first
weight W_0 (every later row is a product ending in W_0).  With the thin SVD X = U S V1^T
(rank r, V1 (n0, r)) and V2 completing V1 to an orthogonal [V1 V2], the congruence
Q = blkdiag([V1 V2], I_n) gives

    Q^T M(lambda, rho) Q = blkdiag(M_r(lambda, rho), -rho I_{n0 - r}),

M_r the same LMI for the data A_r = [A_x V1, A_psi], C_r = [C_x V1, C_psi] (the network whose
first weight is U S, (n_1, r)), since X V2 = 0 and E_0 becomes I (coordinates ordered
(V1^T x^0, psi, V2^T x^0)).  So M <= 0 iff M_r <= 0 (rho >= 0), for either multiplier
variant and any slope bounds: the SDPs have the same optimum (`reduce_input`; applied when
r < n0).  Rank: singular values <= s_max max(shape) eps (zero
to rounding) are dropped, and the result says how many and the largest one dropped.

Normalisation (the same answer in any units).  Scaling the weight W_k by c_k > 0 and the
slope bounds of hidden layer l by d_l > 0 scales the LipSDP optimum by exactly
c = prod c_k prod d_l, for either variant: with sigma_l the factor of hidden layer l's
pre-activation z_l (c_0 for the first, then times d_l c_l per layer) and sigma_out = c, the
data become A = S A' D^{-1} and C = c C' D^{-1}, D = blkdiag(I_{n0}, S) and S = diag(sigma_l)
on psi (psi, the [0, 1]-sector part of a neuron, scales as its z; the slope bounds' factor
d_l goes with y_l into the next layer's rows), so

    M(lambda, rho) = c^2 D^{-T} M'(lambda', rho') D^{-1},
    lambda'_i = lambda_i sigma_i^2 / c^2,  rho' = rho / c^2,

(D^T E_0 D = E_0): M <= 0 iff M' <= 0, a bijection of the feasible sets that keeps
LipSDP-layer's shared multipliers shared (sigma is constant on a layer), and sqrt(rho) =
c sqrt(rho').  `lipsdp` solves and certifies the normalised network (`normalise`): W_k
divided by 2^e_k <= ||W_k||_2 < 2^(e_k + 1), the slope bounds of layer l by 2^g_l <=
max_n max(|alpha_n|, |beta_n|) < 2^(g_l + 1); powers of two, so the normalised data are
the exact scaled ones (an entry falling below the normal range is the exception: its
weight's rounding enters `data_rounding`, slope bounds are rounded outwards, and
`Normalisation.lossless` says so), and the value and its proven rounding bound are mapped
back by 2^E, E = sum e_k + sum g_l, exactly (the rounding bound rounded up; a value outside
the normal float64 range is an OverflowResult).  So the certificate is the normalised
network's, and it holds for the network as given: its statement -M'*(lambda', rho'_up) >= 0
for the exact normalised data is, by the congruence, -M*(lambda, c^2 rho'_up) >= 0 for the
exact data of the network.  The solver works in units where every weight and slope has norm
in [1, 2): a network with its layers rescaled by any factors (1e-8 .. 1e8) is the same
problem up to factors in [1/2, 2) per layer, and the tolerances (relative gap, stretch,
margins, the rank tolerance) are relative to its own scale.  Before it, the solvers'
tolerances were absolute: at weights x 1e3 every solver failed, at x 1e-6 NUMPY certified
6.5e12 times the exact value.

LipSDP against the layer-wise bound L_w = prod_l ||diag(L_l) W_l||_2 (L_n = max(|alpha_n|,
|beta_n|)).  For every neuron with alpha_n < beta_n the 2 x 2 form L_n^2 dz^2 - dx^2 -
tau (dx - alpha_n dz)(beta_n dz - dx) is positive semidefinite for some tau_n >= 0 (S-lemma:
the sector implies |dx| <= L_n |dz|); chaining ||dx_l|| <= ||diag(L_l) W_{l-1} dx_{l-1}||
with the weights c_l = prod_{j > l} ||diag(L_j) W_j||^2 gives a feasible point of
LipSDP-neuron with lambda_n = c_l tau_n and rho = L_w^2: LipSDP-neuron <= L_w in exact
arithmetic.  LipSDP-layer needs one tau for the whole layer, and tau_n depends on
(alpha_n, beta_n) (ReLU [0, 1]: tau = 2 exactly; [0.5, 1]: tau = 4 exactly), so with
heterogeneous slope bounds in a layer (PReLU, splines) it can exceed L_w.  The rule, in one
place (`_at_most_layerwise`): a certified value above L_w is never reported; the result
gives L_w (with its closed-form margin as rounding_bound), says so (capped_by_layerwise) and
keeps both certificates.

Certificate (on the unreduced LMI, whatever was solved): with the solver's multipliers lambda
(clipped at 0), write M(lambda, 0) = [[P, Q], [Q^T, R]] (P the input block, (n0, n0)).  If
R < 0 (eigvalsh, and the Cholesky factorisation of -R), M(lambda, rho) <= 0 iff
rho >= lambda_max(P - Q R^{-1} Q^T) (Schur complement; computed as a Gram matrix,
`schur_rho`), so sqrt of that is an upper bound certified in NumPy whatever the solver's
accuracy and whatever the rank tolerance (dropping a singular value that is not zero could
only make the multipliers less good, never the bound invalid).  It equals the reduced LMI's:
P = V1 P_r V1^T and Q = V1 Q_r (R unchanged), so P - Q R^{-1} Q^T = V1 (P_r - Q_r R^{-1}
Q_r^T) V1^T, whose other eigenvalues are 0.  At the optimum R is often singular (e.g. random
2-H-H-1 ReLU nets: max eigenvalue +2e-12 at the solver's multipliers), so the multipliers are
first stretched: M((1 + e) lambda, (1 + e) rho) = (1 + e) M(lambda, rho) - e C^T C, so a
feasible (lambda, rho) stays feasible with rho (1 + e) and R becomes negative wherever C is
not 0; every e in STRETCHES is evaluated and the least bound kept (each one is certified;
e = 1e-10 moves the bound by ~1e-10, while a solver's slightly infeasible multipliers can
certify less with e = 1e-6 than with 0).  When that fails too (the solver's tolerance), the
SDP is solved again with M <= -margin I (MARGINS, relative to the solver's rho at margin 0):
strictly feasible multipliers, a bound larger by O(margin); every attempt is reported.

Solvers (registry SOLVE; every one only proposes multipliers, the certificate is the above):
NUMPY by default (`reference.lipsdp_ipm`: a primal-dual interior-point method in NumPy whose
Newton system uses the rank-2 structure of every multiplier's matrix, O(N^3) per iteration
in NumPy's BLAS); CVXOPT (`reference.lipsdp_solvers`: CVXOPT's conelp called directly with
a KKT solver using the same structure; its own dense N x N work, with the BLAS it ships,
makes it ~10x slower than NUMPY at N = 400); CLARABEL, SCS and MOSEK through cvxpy (CLARABEL
factors a dense block of side N(N+1)/2: 3.4 s on the 2-10-30-20-2 anchor).  When the default
fails at every margin, FALLBACK_SOLVERS are tried in turn, each only when its own estimate
passes the size guard.

Size guard (reference.limits): before anything is built, `sdp_cost` (in lipsdp_solvers)
estimates the work of the solve from the reduced LMI's side (r bounded by min(n0, n1), no
SVD), the number of multipliers and the widths; over max_sdp_cost (MAX_SDP_COST) it is
refused with TooLarge.  There is no time limit: the cost of the interior-point solves is
predictable (calibration in `sdp_cost`).
"""
from __future__ import annotations

import time
from functools import partial
from typing import NamedTuple

import numpy as np

from reference._checks import OverflowResult
from reference.blas import LIPSDP_BLAS_THREADS, check_threads
from reference.blas import blas_threads as threads_of_blas
from reference.errors import SolveFailed
from reference.limits import guard
from reference.lipschitz import (blocks, check_finite, closed_form_rtol, layerwise,
                                 product_or_overflow, slope_bounds)
from reference.lipsdp_ipm import solve_numpy
from reference.lipsdp_rounding import (ROUNDING_CHECKS, UNIT_ROUNDOFF, USELESS_RTOL,  # noqa: F401
                                       RoundingBound, _gamma, rounding_bound, rounding_fields,
                                       rounding_text)
from reference.lipsdp_solvers import (CVXPY_SOLVERS, SdpSolution, lmi_size, multiplier_map,
                                      sdp_cost, solve_cvxopt, solve_cvxpy)
from reference.network import Identity, Network

VARIANTS = ("neuron", "layer")
SOLVE = {"NUMPY": solve_numpy, "CVXOPT": solve_cvxopt,      # name -> (data, K, margin) -> solution
         **{name: partial(solve_cvxpy, solver=name) for name in CVXPY_SOLVERS}}
SDP_SOLVERS = tuple(SOLVE)
DEFAULT_SOLVER = "NUMPY"
FALLBACK_SOLVERS = ("CVXOPT", "CLARABEL")   # tried in turn when the default one fails
STRETCHES = (0.0, 1e-10, 1e-8, 1e-6)  # certify (1 + e) lambda (module docstring)
MARGINS = (0.0, 1e-7, 1e-5)        # retries with M <= -margin * scale I (scale: see lipsdp)
MAX_SDP_COST = 8e10                # size guard on sdp_cost (units of about 1e-8 s here)
SUBNORMAL = 2.0 ** -1074           # the least positive float64


def solver_installed(name: str) -> bool:
    """Whether the solver can run: NUMPY always, CVXOPT importable (it is called directly),
    the others known to cvxpy as installed."""
    if name == "NUMPY":
        return True
    if name == "CVXOPT":
        try:
            import cvxopt  # noqa: F401
        except ImportError:
            return False
        return True
    import cvxpy as cp

    return name in cp.installed_solvers()


def check_solver(solver: str) -> str:
    """The solver name, upper-cased, if it is one of SDP_SOLVERS and installed; else a
    ValueError naming the argument and the choices."""
    name = str(solver).upper()
    if name not in SDP_SOLVERS or not solver_installed(name):
        usable = [s for s in SDP_SOLVERS if solver_installed(s)]
        raise ValueError(f"solver: expected an installed SDP solver, one of {usable}, "
                         f"got {solver!r}")
    return name


class LmiData(NamedTuple):
    """The LMI of `lipsdp` after the loop transformation (module docstring), with
    v = [x^0; psi] (N = n_0 + n entries, n the nonlinear hidden neurons, in layer order):
    a_mat (n, N): z = A v, the pre-activations of the nonlinear neurons; out_mat (N_L, N):
    f = C v (up to a constant); alpha, beta, scale = beta - alpha (n,): their slope bounds;
    layer_of_neuron (n,): the index of each one's layer among the layers that have one;
    n0; absorbed: the number of linear hidden neurons (alpha = beta) folded into A and C."""
    a_mat: np.ndarray
    out_mat: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    scale: np.ndarray
    layer_of_neuron: np.ndarray
    n0: int
    absorbed: int


class Normalisation(NamedTuple):
    """The power-of-two normalisation LipSDP is solved and certified on (module docstring):
    weight_exponents e_k (one per hidden layer, then the output layer's; 0 for W_out = I),
    slope_exponents g_l (one per hidden layer), exponent E = sum e_k + sum g_l (the value of
    the network is 2^E times that of the normalised one), lossless (no scaled entry fell
    below the normal float64 range: the scaled weights and slope bounds are exact; otherwise
    the weights' rounding (<= 2^-1074 an entry) is in `data_rounding` and the slope bounds are
    rounded outwards)."""
    weight_exponents: tuple
    slope_exponents: tuple
    exponent: int
    lossless: bool

    def summary(self) -> dict:
        """The fields a result reports (JSON-ready)."""
        return {"weight_exponents": list(self.weight_exponents),
                "slope_exponents": list(self.slope_exponents), "exponent": self.exponent,
                "lossless": self.lossless}


class _Layers(NamedTuple):
    """What the LMI is built from: the hidden layers' weights (n_l, n_{l-1}) with entrywise
    bounds on their rounding (0 unless normalised into subnormals), their slope bounds
    (alpha, beta), each (n_l,), the output weight (None: W_out = I) and its rounding bound,
    n0, and the normalisation (None: the weights as given)."""
    weights: list
    weight_errors: list
    bounds: list
    w_out: np.ndarray | None
    w_out_error: np.ndarray | None
    n0: int
    normalisation: Normalisation | None


def _layers(net: Network) -> _Layers:
    """The network's hidden layers (weights and slope bounds) and output weight, as given."""
    check_finite(net)
    parts = blocks(net)
    if isinstance(parts[-1][1], Identity):
        hidden, w_out = parts[:-1], parts[-1][0]
    else:                                  # an activation on the output: W_out = I
        hidden, w_out = parts, None
    weights = [w for w, _ in hidden]
    return _Layers(weights, [np.zeros_like(w) for w in weights],
                   [slope_bounds(layer, w.shape[0]) for w, layer in hidden], w_out,
                   None if w_out is None else np.zeros_like(w_out), net.n_in, None)


def _exponent_below(x: float) -> int:
    """e with 2^e <= x < 2^(e + 1) for a finite x > 0 (np.frexp); 0 for x = 0."""
    return int(np.frexp(x)[1]) - 1 if x > 0 else 0


def _spectral_exponent(w: np.ndarray) -> int:
    """e with 2^e <= ||W||_2 < 2^(e + 1) (0 for W = 0), without overflow: the norm of W
    divided by the power of two of its largest entry first."""
    top = _exponent_below(float(np.abs(w).max())) if w.size else 0
    return top + _exponent_below(float(np.linalg.norm(np.ldexp(w, -top), 2)))


def _scale_weight(w: np.ndarray, e: int) -> tuple[np.ndarray, np.ndarray]:
    """(W 2^-e rounded, entrywise bound on its rounding): exact unless an entry falls below
    the normal range (then <= half the least subnormal; the bound given is the least
    subnormal 2^-1074, as 2^-1075 is not a float64)."""
    scaled = np.ldexp(w, -e)
    return scaled, np.where(np.ldexp(scaled, e) == w, 0.0, SUBNORMAL)


def _scale_outwards(lo: np.ndarray, hi: np.ndarray, g: int) -> tuple[np.ndarray, np.ndarray]:
    """[lo 2^-g, hi 2^-g], rounded outwards where inexact (subnormal), so that the scaled
    sector contains the exact one."""
    lo_s, hi_s = np.ldexp(lo, -g), np.ldexp(hi, -g)
    lo_s = np.where(np.ldexp(lo_s, g) > lo, np.nextafter(lo_s, -np.inf), lo_s)
    hi_s = np.where(np.ldexp(hi_s, g) < hi, np.nextafter(hi_s, np.inf), hi_s)
    return lo_s, hi_s


def normalise(layers: _Layers) -> _Layers:
    """The layers with every weight divided by the power of two 2^e_k <= ||W_k||_2 and every
    hidden layer's slope bounds by the power of two 2^g_l <= max_n max(|alpha_n|, |beta_n|)
    (`Normalisation`; the module docstring proves the value scales by exactly 2^E)."""
    e_w = [_spectral_exponent(w) for w in layers.weights]
    e_out = 0 if layers.w_out is None else _spectral_exponent(layers.w_out)
    g = [_exponent_below(float(np.maximum(np.abs(lo), np.abs(hi)).max(initial=0.0)))
         for lo, hi in layers.bounds]
    weights = [_scale_weight(w, e) for w, e in zip(layers.weights, e_w)]
    w_out = None if layers.w_out is None else _scale_weight(layers.w_out, e_out)
    bounds = [_scale_outwards(lo, hi, gl) for (lo, hi), gl in zip(layers.bounds, g)]
    lossless = (all(not err.any() for _, err in weights + ([w_out] if w_out else []))
                and all(np.array_equal(np.ldexp(lo, gl), lo0) and np.array_equal(
                    np.ldexp(hi, gl), hi0) for (lo, hi), (lo0, hi0), gl in zip(
                        bounds, layers.bounds, g)))
    return _Layers([w for w, _ in weights], [err for _, err in weights], bounds,
                   None if w_out is None else w_out[0], None if w_out is None else w_out[1],
                   layers.n0, Normalisation(tuple(e_w + ([] if w_out is None else [e_out])),
                                            tuple(g), sum(e_w) + e_out + sum(g), lossless))


def lipsdp_data(net: Network) -> LmiData:
    """The LMI data of the network (see LmiData), from its weights as given (`lipsdp` solves
    on `normalised_data`).  Hidden layer l maps y^{l-1} = G v to z = W_l G v (rows of A for
    its nonlinear neurons) and y^l = diag(alpha) W_l G v + D psi_l, D = diag(beta - alpha) on
    the new state entries psi_l of its nonlinear neurons, so the new G is alpha * (W_l G) plus
    those entries; a linear neuron (alpha = beta) gets no entry: it is absorbed exactly.  At
    the end C = W_out G."""
    return _build_data(_layers(net))[0]


def data_rounding(net: Network) -> tuple[np.ndarray, np.ndarray]:
    """Entrywise bounds (n, N) and (N_L, N) on |A - A*| and |C - C*|, A*, C* the LMI data of
    `lipsdp_data` in exact arithmetic from the same weights and slope bounds, by a running
    error analysis of its products (any summation order):
        Z = W G:  e_Z = |W| e_G + e_W |G| + gamma_k |W| |G|  (k = the inner dimension; e_W
                  the weights' own rounding, 0 except in `normalised_data`'s subnormals);
        G' = alpha Z (one product): e = |alpha| e_Z + u |alpha Z|;  D = beta - alpha: u |D|;
        C = W_out G: as Z (exact for W_out = I)."""
    return _build_data(_layers(net))[1:]


class NormalisedLmi(NamedTuple):
    """`normalised_data`'s answer: data (LmiData of the normalised network), errors (its
    `data_rounding`: e_A, e_C) and normalisation (`Normalisation`: exponent E)."""
    data: LmiData
    errors: tuple
    normalisation: Normalisation


def normalised_data(net: Network) -> NormalisedLmi:
    """The LMI data and rounding bounds of the normalised network (`normalise`), on which
    `lipsdp` solves and certifies: its value times 2^E is the network's (module docstring)."""
    layers = normalise(_layers(net))
    data, *errors = _build_data(layers)
    return NormalisedLmi(data, tuple(errors), layers.normalisation)


def _build_data(layers: _Layers) -> tuple[LmiData, np.ndarray, np.ndarray]:
    """(`lipsdp_data`, its `data_rounding`) of the layers: one pass over them."""
    u = UNIT_ROUNDOFF
    nonlinear = [lo != hi for lo, hi in layers.bounds]
    n0 = layers.n0
    side = n0 + sum(int(k.sum()) for k in nonlinear)
    g = np.eye(n0, side)                   # y^0 = x^0 = G v, (n_0, N)
    e_g = np.zeros_like(g)                 # bound on |G - G*|
    rows, e_rows, col = [], [], n0

    def product(w, e_w, g, e_g):           # W G and its error bound
        return w @ g, (np.abs(w) @ e_g + e_w @ np.abs(g)
                       + _gamma(w.shape[1]) * (np.abs(w) @ np.abs(g)))
    with np.errstate(over="ignore", invalid="ignore"):          # checked below
        for w, e_w, (lo, hi), keep in zip(layers.weights, layers.weight_errors,
                                          layers.bounds, nonlinear):
            z, e_z = product(w, e_w, g, e_g)    # (n_l, N)
            g = lo[:, None] * z            # y = alpha z + (beta - alpha) psi
            e_g = np.abs(lo)[:, None] * e_z + u * np.abs(g)
            new = np.flatnonzero(keep)
            g[new, col + np.arange(len(new))] = (hi - lo)[new]
            e_g[new, col + np.arange(len(new))] = u * np.abs(hi - lo)[new]
            rows.append(z[new])
            e_rows.append(e_z[new])
            col += len(new)
        out_mat, e_out = ((g, e_g) if layers.w_out is None else
                          product(layers.w_out, layers.w_out_error, g, e_g))
    bounds = layers.bounds
    alpha = np.concatenate([lo[k] for (lo, _), k in zip(bounds, nonlinear)] or [np.zeros(0)])
    beta = np.concatenate([hi[k] for (_, hi), k in zip(bounds, nonlinear)] or [np.zeros(0)])
    layer_ids = np.concatenate([np.full(int(k.sum()), i) for i, k in enumerate(nonlinear)]
                               or [np.zeros(0, int)])
    data = LmiData(np.vstack(rows) if rows else np.zeros((0, side)), out_mat, alpha, beta,
                   beta - alpha, np.unique(layer_ids, return_inverse=True)[1].astype(int),
                   n0, sum(int((~k).sum()) for k in nonlinear))
    if not (np.all(np.isfinite(data.a_mat)) and np.all(np.isfinite(data.out_mat))):
        raise OverflowResult("model: LipSDP's matrices (products of weights and slopes) leave "
                             "the float64 range for these finite parameters")
    return data, (np.vstack(e_rows) if e_rows else np.zeros((0, side))), e_out


class InputReduction(NamedTuple):
    """The LMI data after the exact reduction of the input block (module docstring): data
    (LmiData with n0 = rank, A_x and C_x replaced by A_x V1 and C_x V1), n0 (the input
    dimension before), rank r, tolerance (singular values <= it counted as zero: s_max
    max(shape) eps), largest_dropped (the largest singular value counted as zero, 0.0 when
    none was computed: the n0 - min(n0, rows) structural ones are exactly 0), basis V1
    (n0, r): x^0 = V1 y on the kept directions."""
    data: LmiData
    n0: int
    rank: int
    tolerance: float
    largest_dropped: float
    basis: np.ndarray

    def summary(self) -> dict:
        """The fields a result reports (JSON-ready)."""
        return {"n0": self.n0, "rank": self.rank, "dropped": self.n0 - self.rank,
                "tolerance": self.tolerance, "largest_dropped": self.largest_dropped,
                "side": self.data.a_mat.shape[1]}


def reduce_input(data: LmiData) -> InputReduction:
    """The exact reduction of the input block: thin SVD of X = [A_x; C_x] ((n + N_L, n0)),
    X = U S V1^T with the singular values above s_max max(shape) eps kept (rank r), and the
    data A_r = [A_x V1, A_psi] (n, r + n), C_r = [C_x V1, C_psi] (N_L, r + n), n0 = r.  The SDP
    on the reduced data has the same optimum (module docstring); r = n0 returns the data
    unchanged, r = 0 means f does not depend on x."""
    n0 = data.n0
    x_cols = np.vstack([data.a_mat[:, :n0], data.out_mat[:, :n0]])
    _, sing, vt = np.linalg.svd(x_cols, full_matrices=False)
    tol = float(sing[0] * max(x_cols.shape) * np.finfo(np.float64).eps) if sing.size else 0.0
    rank = int(np.count_nonzero(sing > tol))
    dropped = float(sing[rank:].max()) if rank < sing.size else 0.0
    if rank == n0:
        return InputReduction(data, n0, n0, tol, dropped, np.eye(n0))
    v1 = vt[:rank].T                                              # (n0, r)
    reduced = data._replace(
        a_mat=np.hstack([data.a_mat[:, :n0] @ v1, data.a_mat[:, n0:]]),
        out_mat=np.hstack([data.out_mat[:, :n0] @ v1, data.out_mat[:, n0:]]), n0=rank)
    return InputReduction(reduced, n0, rank, tol, dropped, v1)


def lmi_matrix(data: LmiData, lam: np.ndarray, rho: float) -> np.ndarray:
    """M(lambda, rho) = A^T T B + B^T T A - 2 B^T T B + C^T C - rho E_0 in NumPy, (N, N);
    lam (n,) the multipliers of psi (T = diag(lam)), B = [0, I_n]."""
    n0 = data.n0
    m = data.out_mat.T @ data.out_mat
    m[n0:, :] += lam[:, None] * data.a_mat           # B^T T A
    m[:, n0:] += (lam[:, None] * data.a_mat).T       # A^T T B
    m[n0:, n0:] -= 2 * np.diag(lam)
    m[:n0, :n0] -= rho * np.eye(n0)
    return m


def schur_rho(data: LmiData, lam: np.ndarray) -> float:
    """The least rho with M(lambda, rho) <= 0, inf when -R is not positive definite (its
    Cholesky factorisation -R = L L^T fails).  With P = C_x^T C_x the input block of
    M(lambda, 0), the Schur complement is the Gram matrix
    P - Q R^{-1} Q^T = C_x^T C_x + Q (L L^T)^{-1} Q^T = F^T F,  F = [C_x; L^{-1} Q^T],
    so rho* = ||F||_2^2 (F (N_L + n, n0): an SVD of the small side).  With no nonlinear
    neuron, rho* = ||C||_2^2."""
    from scipy.linalg import LinAlgError, cholesky, solve_triangular

    n0 = data.n0
    m = lmi_matrix(data, lam, 0.0)
    q_blk, r_blk = m[:n0, n0:], m[n0:, n0:]
    try:
        low = cholesky(-r_blk, lower=True)
    except (LinAlgError, ValueError):              # not positive definite, or not finite
        return np.inf
    f = np.vstack([data.out_mat[:, :n0], solve_triangular(low, q_blk.T, lower=True)])
    return float(np.linalg.norm(f, 2)) ** 2


def certified_rho(data: LmiData, lam: np.ndarray) -> tuple[float, float]:
    """(rho*, max eigenvalue of R): the least rho with M(lambda, rho) <= 0 when R < 0
    (eigvalsh, and `schur_rho`'s Cholesky factorisation), inf otherwise."""
    r_blk = lmi_matrix(data, lam, 0.0)[data.n0:, data.n0:]
    r_max = float(np.linalg.eigvalsh(r_blk).max()) if r_blk.size else -np.inf
    return (schur_rho(data, lam) if r_max < 0 else np.inf), r_max


def lipsdp(net: Network, variant: str = "neuron", solver: str = DEFAULT_SOLVER,
           max_sdp_cost: float = MAX_SDP_COST, reduce: bool = True,
           blas_threads: int | None = LIPSDP_BLAS_THREADS) -> dict:
    """LipSDP-neuron or LipSDP-layer (p = 2), solved and certified on the normalised network
    and scaled back exactly (module docstring: the value of the network with its layers
    rescaled is the value rescaled, to the solver's relative accuracy).  Returns
    - value: the NumPy-certified bound sqrt(rho*) on the unreduced LMI, or the layer-wise bound
      when that is lower (capped_by_layerwise; module docstring); sdp_value: LipSDP's own
      certified bound either way; layerwise: prod_l ||diag(L_l) W_l||_2 (None outside the
      float64 range: not compared);
    - rounding_bound (absolute, on value: LipSDP's proven rounding bound, or the closed-form
      margin of the layer-wise bound when capped), rounding_useless (above 1e-3 relative),
      sdp_rounding_bound (LipSDP's own);
    - solver_value (sqrt of the solver's rho), relative_gap (value - solver_value) / value
      (how far the certified bound sits above the solver's optimum, relative: the same in any
      units), accuracy (an estimate, not a certificate, of how far sdp_value may sit above the
      SDP's optimum, relative: the larger of max(relative_gap, 0) + the solver's relative gap
      tolerance on rho (SdpSolution.rtol) + the margin of the retry that certified it + the
      stretch of the multipliers e (STRETCHES), and 1 - sqrt(rho_lower) / sdp_value with
      rho_lower the solver's dual bound (SdpSolution.rho_lower) when it gives one);
    - status, solver (the one that solved it), iterations, attempts (each solver and margin
      tried with its status: when the default NUMPY fails at every margin, FALLBACK_SOLVERS
      are tried, each if its own estimate passes the size guard);
    - normalisation (`Normalisation.summary`: weight_exponents, slope_exponents, exponent E,
      lossless), reduction (`InputReduction.summary` of the normalised data: n0, rank,
      dropped, tolerance and largest_dropped in its units, side of the solved LMI; None with
      reduce=False), lmi_side (N of the unreduced LMI), absorbed_neurons (linear hidden
      neurons folded into A and C), seconds, build_seconds and the certificate (both, when
      capped).
    With reduce (default) the SDP is solved on the exactly reduced input block (module
    docstring) whenever its rank r < n0.  A network whose output does not depend on its input
    (C = 0, or rank 0): value 0 exactly.  An affine network (no nonlinear hidden neuron, e.g.
    no hidden layer at all): value = ||C||_2 exactly, solver "none (affine network)".  No
    certified bound after every attempt: SolveFailed (a RuntimeError).  A value outside the
    normal float64 range: OverflowResult.  Estimated cost (`sdp_cost`) over max_sdp_cost:
    TooLarge before anything is built.  blas_threads: the BLAS libraries' threads while it
    runs (reference.blas: one by default, 1.1-3x faster than two on the reference machine;
    None leaves them as they are)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
    requested = str(solver).upper()
    if requested not in SDP_SOLVERS:
        raise ValueError(f"solver: expected an SDP solver, one of {list(SDP_SOLVERS)}, "
                         f"got {solver!r}")
    if not isinstance(reduce, (bool, np.bool_)):
        raise ValueError(f"reduce: expected True or False, got {reduce!r}")
    blas_threads = check_threads(blas_threads, "blas_threads")
    check_finite(net)
    side = lmi_size(net)[0]
    guard(f"model: LipSDP-{variant} with {requested} (LMI side N = {side}"
          + (f", reduced to at most {lmi_size(net, True)[0]}" if reduce else "")
          + "), cost (about 1e-8 s per unit)", sdp_cost(net, variant, requested, reduce),
          max_sdp_cost, "max_sdp_cost")
    solver = check_solver(requested)                  # installed
    with threads_of_blas(blas_threads):
        return _lipsdp(net, variant, solver, max_sdp_cost, reduce)


def _lipsdp(net: Network, variant: str, solver: str, max_sdp_cost: float,
            reduce: bool) -> dict:
    """`lipsdp` once its arguments are checked: solved and certified on the normalised
    network (`normalised_data`), scaled back by 2^E (`_in_network_units`), never above the
    layer-wise bound (`_at_most_layerwise`)."""
    t0 = time.perf_counter()
    data, errors, normalisation = normalised_data(net)
    result = _lipsdp_normalised(net, variant, solver, max_sdp_cost, reduce, data, errors, t0)
    result = _in_network_units(result, normalisation, f"LipSDP-{variant}")
    return _at_most_layerwise(net, result)


def _lipsdp_normalised(net: Network, variant: str, solver: str, max_sdp_cost: float,
                       reduce: bool, data: LmiData, errors, t0: float) -> dict:
    """The result of `lipsdp` for the normalised LMI data (its units: value, solver_value
    and rounding_bound of the normalised network), with its RoundingBound under "_rounding"."""
    if len(data.scale) == 0:
        return _affine(data, errors, t0)
    reduction = reduce_input(data) if reduce else None
    if not np.any(data.out_mat) or (reduction is not None and reduction.rank == 0):
        return _closed_form(data, 0.0, "none (constant network)", t0, (
            "the output does not depend on the input (C = 0, or A and C have no input "
            "columns): value = 0 exactly"), reduction)
    solved = reduction.data if reduction is not None else data
    k_mat = multiplier_map(data, variant)
    build = time.perf_counter() - t0

    def fallback() -> list:
        if solver != DEFAULT_SOLVER:
            return []
        return [name for name in FALLBACK_SOLVERS if solver_installed(name)
                and sdp_cost(net, variant, name, reduce) <= max_sdp_cost]
    found, tried = _solve_certified(data, solved, k_mat, solver, fallback)
    seconds = time.perf_counter() - t0
    if found is None:
        raise SolveFailed(f"LipSDP-{variant}: no certified bound ({'; '.join(tried)}); "
                          "no bound is reported")
    solver, sol = found.solver, found.solution
    value = float(np.sqrt(max(found.rho, 0.0)))
    rounding = rounding_bound(data, errors, found.lam, found.rho, found.r_max)
    solver_value = float(np.sqrt(max(sol.rho, 0.0)))
    gap = (value - solver_value) / value if value > 0 else 0.0
    accuracy = max(gap, 0.0) + sol.rtol + found.margin + found.stretch
    if sol.rho_lower is not None and value > 0:             # the solver's dual bound
        accuracy = max(accuracy, 1.0 - np.sqrt(max(sol.rho_lower, 0.0)) / value)
    reduced_text = ("" if reduction is None or reduction.rank == reduction.n0 else
                    f"; solved on the reduced LMI (input block rank {reduction.rank} of "
                    f"{reduction.n0}, side {solved.a_mat.shape[1]}, singular values <= "
                    f"{reduction.tolerance:.3g} dropped, largest {reduction.largest_dropped:.3g})")
    return {"value": value, "solver_value": solver_value, "relative_gap": gap,
            "accuracy": accuracy, "status": sol.status, "solver": solver, "iterations": sol.iterations,
            "attempts": tried, "seconds": seconds, "build_seconds": build,
            "reduction": None if reduction is None else reduction.summary(),
            "lmi_side": data.a_mat.shape[1], "absorbed_neurons": data.absorbed,
            "_rounding": rounding, "certificate": (
                "sqrt(lambda_max(P - Q R^-1 Q^T)) at the solver's multipliers (times "
                f"1 + {found.stretch:g}) on its unreduced LMI (N = {data.a_mat.shape[1]}), "
                f"hidden block max eigenvalue {found.r_max:.3g} < 0, re-evaluated in NumPy"
                + reduced_text)}


def _times_power_of_two_up(x: float, exponent: int) -> float:
    """x 2^exponent for x >= 0, rounded up where it falls below the normal range (a bound
    that must not shrink); inf stays inf, overflow gives inf."""
    with np.errstate(over="ignore", under="ignore"):
        y = float(np.ldexp(x, exponent))
        if np.isfinite(x) and float(np.ldexp(y, -exponent)) < x:
            y = float(np.nextafter(y, np.inf))
    return y


def _in_network_units(result: dict, normalisation: Normalisation, what: str) -> dict:
    """The result of the normalised network (`_lipsdp_normalised`) in the network's units:
    value, solver_value and rounding_bound times 2^E (E = normalisation.exponent; exact, the
    value rounded as `lipschitz.product_or_overflow` rounds: outside the normal float64
    range an OverflowResult naming `what`; the rounding bound rounded up), the certificate
    sentence completed, and the normalisation reported."""
    rounding = result.pop("_rounding")
    e = normalisation.exponent
    value = product_or_overflow([(result["value"], e)], what)
    if value == 0.0:
        return {**result, "normalisation": normalisation.summary()}
    rounding = rounding._replace(bound=_times_power_of_two_up(rounding.bound, e))
    with np.errstate(over="ignore", under="ignore"):
        solver_value = float(np.ldexp(result["solver_value"], e))
    return {**result, "value": value, "solver_value": solver_value,
            **rounding_fields(rounding, value), "normalisation": normalisation.summary(),
            "certificate": (
                f"value = 2^{e} x {result['value']!r}, the latter certified on the normalised "
                "network (weights / 2^e_k, slope bounds / 2^g_l: exact, the value scales by "
                f"exactly 2^E, E = {e}): " + result["certificate"] + "; "
                + rounding_text(rounding, value))}


def _at_most_layerwise(net: Network, result: dict) -> dict:
    """The rule "a LipSDP value is never reported above the layer-wise bound", in one place.
    LipSDP-neuron's optimum is <= prod_l ||diag(L_l) W_l||_2 in exact arithmetic (module
    docstring), LipSDP-layer's need not be (heterogeneous slope bounds in a layer).  When the
    certified value is above the layer-wise bound (`lipschitz.layerwise`), the result
    reports the layer-wise bound as value, with its closed-form rounding margin as
    rounding_bound (`lipschitz.closed_form_rtol`), capped_by_layerwise True, and both
    certificates; sdp_value and sdp_rounding_bound keep LipSDP's own, layerwise the bound
    (None outside the float64 range: not compared)."""
    try:
        layer_wise = layerwise(net, 2)
    except OverflowResult:
        layer_wise = None
    out = {**result, "sdp_value": result["value"], "sdp_rounding_bound": result[
        "rounding_bound"], "layerwise": layer_wise, "capped_by_layerwise": False}
    if layer_wise is None or not result["value"] > layer_wise:
        return out
    rtol, rtol_text = closed_form_rtol(net)
    return {**out, "value": layer_wise, "rounding_bound": layer_wise * rtol,
            "rounding_useless": False, "capped_by_layerwise": True, "certificate": (
                f"LipSDP's certified value {result['value']!r} is above the layer-wise bound "
                f"{layer_wise!r}: the layer-wise bound is reported (prod_l ||diag(L_l) W_l||_2, "
                f"closed form, margin {rtol_text}); LipSDP's certificate: "
                + result["certificate"])}


class Certified(NamedTuple):
    """A certified solve: rho (the least rho with M(lambda, rho) <= 0 on the unreduced LMI),
    r_max (max eigenvalue of its hidden block, < 0), solver, margin (of the solve, relative
    to rho) and stretch (lambda = (1 + stretch) x the solver's multipliers), solution,
    lam (n,): the multipliers certified."""
    rho: float
    r_max: float
    solver: str
    margin: float
    stretch: float
    solution: SdpSolution
    lam: np.ndarray


def _solve_certified(data: LmiData, solved: LmiData, k_mat: np.ndarray, solver: str,
                     fallback):
    """Solve the SDP on `solved` (the data itself or its reduction) with `solver`, at every
    margin of MARGINS (M <= -margin * scale I, scale the solver's rho at margin 0: a strictly
    feasible retry), then with the solvers fallback() returns (asked only when the first one
    failed), until the multipliers, stretched by 1 + e (the e in STRETCHES with the least
    `schur_rho`), certify a bound on the unreduced `data` (`certified_rho`).  Returns
    (Certified or None, the attempts as text)."""
    scale = float(np.linalg.norm(data.out_mat, 2)) ** 2 or 1.0   # until a solve gives rho
    tried, queue = [], [solver]
    while queue:
        name = queue.pop(0)
        for margin_value in MARGINS:
            sol: SdpSolution = SOLVE[name](solved, k_mat, margin_value * scale)
            status = sol.status
            if margin_value == 0 and sol.rho is not None and 0 < sol.rho < np.inf:
                scale = float(sol.rho)
            if status == "optimal" and not np.all(np.isfinite(sol.lam)):
                status += ", but multipliers not finite"
            elif status == "optimal":
                lam = np.maximum(sol.lam, 0.0)
                stretch = min(STRETCHES, key=lambda e: schur_rho(data, lam * (1.0 + e)))
                lam = lam * (1.0 + stretch)
                rho_cert, r_max = certified_rho(data, lam)
                if np.isfinite(rho_cert):
                    tried.append(f"{name} margin {margin_value:g}: {status}" + (
                        f", multipliers x (1 + {stretch:g})" if stretch else ""))
                    return Certified(rho_cert, r_max, name, margin_value, stretch, sol,
                                     lam), tried
                status += (f", not certified (max eigenvalue of the hidden block {r_max:.3g} "
                           ">= 0)")
            tried.append(f"{name} margin {margin_value:g}: {status}")
        if name == solver:
            queue += fallback()
    return None, tried


def _affine(data: LmiData, errors, t0: float) -> dict:
    """The result of `lipsdp` when every hidden neuron is linear: the network is affine,
    f(x) = C x + c, and LipSDP is exact: Lip_2(f) = ||C||_2 (largest singular value)."""
    value = float(np.linalg.norm(data.out_mat, 2))
    if not np.isfinite(value):
        raise OverflowResult("model: LipSDP: ||C||_2 leaves the float64 range for these "
                             "finite parameters")
    rounding = rounding_bound(data, errors, np.zeros(0), value ** 2, -np.inf)
    return {**_closed_form(data, value, "none (affine network)", t0, (
        "the network is affine (every hidden neuron has alpha_n = beta_n), f(x) = C x "
        "+ c: value = ||C||_2, its largest singular value (numpy.linalg.norm), the "
        "exact Lipschitz constant and the optimum of both LipSDP variants"), None),
        "_rounding": rounding}


def _closed_form(data: LmiData, value: float, solver: str, t0: float, certificate: str,
                 reduction) -> dict:
    """A result of `lipsdp` known exactly without an SDP (affine or constant network)."""
    return {"value": value, "solver_value": value, "relative_gap": 0.0, "accuracy": 0.0,
            "status": "optimal", "solver": solver, "iterations": 0, "attempts": [],
            "seconds": time.perf_counter() - t0, "build_seconds": 0.0,
            "reduction": None if reduction is None else reduction.summary(),
            "lmi_side": data.a_mat.shape[1], "absorbed_neurons": data.absorbed,
            "_rounding": RoundingBound(0.0, value ** 2, 0.0, 0.0, 0),
            "rounding_bound": 0.0, "rounding_useless": False, "certificate": certificate}


def lipsdp_neuron(net: Network, solver: str = DEFAULT_SOLVER, **limits) -> dict:
    """LipSDP-neuron: one multiplier per hidden neuron (see `lipsdp`)."""
    return lipsdp(net, "neuron", solver, **limits)


def lipsdp_layer(net: Network, solver: str = DEFAULT_SOLVER, **limits) -> dict:
    """LipSDP-layer: one multiplier per hidden layer (see `lipsdp`)."""
    return lipsdp(net, "layer", solver, **limits)
