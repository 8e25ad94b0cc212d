"""The golden cases of the conformance suite (reference.conformance writes and grades them).

A case is a small model, its inputs, the parameters of the question asked (p, box, lambda,
...), the answer keys an implementation must write, and the tolerances it is graded with.
The builders below make every case from a fixed seed (`SEED`, mixed with the case's name),
so an export is the same on every machine; the reference's own answers to a case come from
`answer` (one function per kind, registered in KINDS), which both the export (expected.npz)
and `conformance run --self` call on the files as written.

Kinds and their answer keys (shapes for M inputs, N_0 -> N_L, N_i neurons in layer i):
    evaluate         outputs (M, N_L), input_jacobian (M, N_L, N_0),
                     param_gradients/NAME (shape of NAME: the gradient of the sum of all
                     outputs), layer{i}/output (M, N_i)                 [graded by oracle.check]
    regulariser      tv2/{i}, bv2/{i} (N_i,) per spline layer i        [oracle.check]
    lipschitz        lipschitz_bound/p1|p2|pinf (Theorem 1, BV2 norms),
                     lipschitz_bound_slopes/p1|p2|pinf (exact slopes)   [oracle.check]
                     lipschitz_layerwise/p1|p2|pinf: prod_l ||diag(L_l) W_l||_{p->p}
    objective        objective, objective/data, objective/weight_decay,
                     objective/regulariser (), objective_gradients/NAME  [oracle.check]
    lipschitz_exact  lipschitz_exact/p1|p2|pinf: the exact constant (over R for one input,
                     over the box [-R, R]^N_0 otherwise), with its certificate
    solve            solve/objective (), solve/fitted_outputs (M, N_L), and where unique
                     solve/layer_outputs (M, N) and solve/coefficients (N, K)
"""
from __future__ import annotations

import fnmatch
import zlib
from dataclasses import dataclass, field

import numpy as np

from reference.convex import _solve as convex
from reference.exceptions import SolveFailed
from reference.lipschitz import _bounds as lipschitz
from reference.lipschitz import _exact1d as exact1d
from reference.lipschitz import _milp as milp
from reference.nn._linear_spline import LinearSpline
from reference.nn._network import (
    Dense,
    Identity,
    KnotSplineActivation,
    LeakyReLU,
    Network,
    PReLU,
    ReLU,
    SplineActivation,
)
from reference.oracle import _check as oracle

SEED = 20200106                     # every case: default_rng([SEED, crc32(name)])
EVALUATE_RTOL, EVALUATE_ATOL = 1e-10, 1e-10
EXACT_RTOL = 1e-9                   # exact_1d: exact up to round-off
MAX_CERTIFIED_WIDTH = 1e-4          # an exact value's bracket (HiGHS's relative gap is 1e-4)
SOLVE_OBJECTIVE_RTOL = 1e-6         # the certified optimum: gap and re-evaluation ~1e-8
SOLVE_VALUES_TOL = 1e-4             # fitted values: an objective eps from the optimum moves
                                    # them by up to sqrt(2 eps) (squared loss)


@dataclass
class Case:
    """One golden case of the conformance suite, before it is written.

    Parameters
    ----------
    name : str
        The case's name, unique in the suite: its directory and answers file NAME.npz.
    tests : str
        What the case tests, one sentence.
    kind : {'evaluate', 'regulariser', 'lipschitz', 'objective', 'lipschitz_exact', 'solve'}
        The question asked; it decides the answer keys (see `build_cases`).
    net : Network
        The model, N_0 inputs, N_L outputs.
    inputs : ndarray of shape (n_samples, n_in)
        The inputs (for 'solve' and 'objective', the data X).
    rtol : float, default 1e-10
        The relative tolerance the case's keys are graded with.
    atol : float, default 1e-10
        The absolute tolerance, a fraction of each key's scale S.
    parameters : dict, optional
        The parameters of the question (p, box, layer, loss, lam, reg, grid, lip_max, ...),
        JSON-ready.
    answer_keys : tuple of str, optional
        fnmatch patterns of the keys asked (None: every key of the kind, e.g.
        'outputs', 'input_jacobian', 'param_gradients/*', 'layer*/output' for 'evaluate').
    targets : ndarray of shape (n_samples,) or (n_samples, n_out), optional
        The targets y, for the 'solve' and 'objective' kinds only.
    key_tolerances : dict, optional
        Key -> [rtol, atol] overriding the case's tolerances for that key.

    See Also
    --------
    build_cases : The cases of the suite.
    export : Write cases to a directory.
    """
    name: str
    tests: str
    kind: str
    net: Network
    inputs: np.ndarray
    rtol: float = EVALUATE_RTOL
    atol: float = EVALUATE_ATOL
    parameters: dict = field(default_factory=dict)
    answer_keys: tuple | None = None
    targets: np.ndarray | None = None
    key_tolerances: dict = field(default_factory=dict)   # key -> [rtol, atol]


def case_rng(name: str) -> np.random.Generator:
    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


# ----------------------------------------------------------------------------- pieces
def spline_layer(rng, neurons: int, size: int, x_min: float, step: float) -> SplineActivation:
    """Random coefficients ~ N(0, 1) (N, K) on the grid x_min + k*step: kinks of both
    signs and nonzero end slopes."""
    return SplineActivation(LinearSpline(rng.normal(size=(neurons, size)), x_min, step))


def dense(rng, n_out: int, n_in: int, bias: bool = True) -> Dense:
    return Dense(rng.normal(size=(n_out, n_in)), rng.normal(size=n_out) if bias else None)


def one_per_row(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Rows (M, 2) with exactly one coordinate taken from `points` (the other from `others`,
    off the grid): at most one pre-activation of a row sits on a knot, so a row's input
    Jacobian is one of its two one-sided Jacobians whatever side an implementation takes."""
    n = len(points)
    left = np.column_stack([points, others[:n]])
    right = np.column_stack([others[n:2 * n], points])
    return np.concatenate([left, right])


def spline_net(rng, n_in: int, splines, n_out: int, bias: bool = True) -> Network:
    """dense -> spline -> ... -> dense -> spline -> dense -> identity, one (neurons, K, x_min,
    step) per spline layer in `splines`; random parameters drawn layer by layer in order."""
    layers, width = [], n_in
    for neurons, size, x_min, step in splines:
        layers += [dense(rng, neurons, width, bias), spline_layer(rng, neurons, size, x_min,
                                                                  step)]
        width = neurons
    return Network(layers + [dense(rng, n_out, width, bias), Identity()])


def first_layer_spline_net(rng, size, x_min, step) -> Network:
    """spline (2 neurons acting on the inputs) -> dense 2->2 -> identity: the inputs are the
    spline's pre-activations, exactly as written."""
    return Network([spline_layer(rng, 2, size, x_min, step), dense(rng, 2, 2), Identity()])


# ------------------------------------------------------------------------- evaluate
def case_knots() -> Case:
    name = "knots"
    rng = case_rng(name)
    net = first_layer_spline_net(rng, 11, -1.0, 0.2)
    grid = net.layers[0].spline.grid                     # x_min + k*step in float64
    decimal = 0.2 * np.arange(-5, 6)                     # the same points computed as k*0.2
    points = np.concatenate([grid, decimal])
    others = rng.uniform(-0.93, 0.93, 2 * len(points)) + 0.01
    return Case(name, "inputs exactly on every grid point of a first-layer spline, computed "
                "as x_min + k*step and as k*0.2 (they differ by an ulp for some k): the value "
                "is continuous there, the input Jacobian may take either one-sided slope "
                "(the reference takes the right piece)", "evaluate", net,
                one_per_row(points, others))


def case_kinks_hidden() -> Case:
    name = "kinks_hidden"
    rng = case_rng(name)
    net = Network([Dense(np.eye(2), np.zeros(2)), spline_layer(rng, 2, 11, -1.0, 0.2),
                   dense(rng, 2, 2), Identity()])
    points = net.layers[1].spline.grid[1:-1]
    others = rng.uniform(-0.93, 0.93, 2 * len(points)) + 0.01
    return Case(name, "pre-activations exactly on the interior knots of a hidden spline layer "
                "(identity weights, zero bias): the gradients of the dense layer before it "
                "depend on the one-sided slope taken, and pass when they lie in the range "
                "of the one-sided choices", "evaluate", net, one_per_row(points, others))


def case_relu_kink() -> Case:
    name = "relu_kink"
    rng = case_rng(name)
    net = Network([Dense(np.eye(2), np.zeros(2)), ReLU(), dense(rng, 3, 2), LeakyReLU(0.2),
                   dense(rng, 1, 3), Identity()])
    others = rng.uniform(-1, 1, 12)
    return Case(name, "ReLU pre-activations exactly 0 (the reference takes slope 1 there, "
                "PyTorch 0: either passes), then a LeakyReLU layer", "evaluate", net,
                one_per_row(np.zeros(6), others))


def case_grid_ends() -> Case:
    name = "grid_ends"
    rng = case_rng(name)
    net = first_layer_spline_net(rng, 7, -0.75, 0.25)         # grid [-0.75, 0.75]
    lo, hi = -0.75, 0.75
    points = np.array([lo, hi, np.nextafter(lo, -np.inf), np.nextafter(lo, np.inf),
                       np.nextafter(hi, -np.inf), np.nextafter(hi, np.inf),
                       lo - 1e-9, lo + 1e-9, hi - 1e-9, hi + 1e-9])
    others = rng.uniform(-0.7, 0.7, 2 * len(points)) + 0.01
    return Case(name, "inputs at the two ends of the grid, one ulp and 1e-9 on either side: "
                "the spline continues linearly with its end slopes, so value and slope are "
                "continuous there (no clamping, no zero slope outside)", "evaluate", net,
                one_per_row(points, others))


def case_outside() -> Case:
    name = "outside_grid"
    rng = case_rng(name)
    net = Network([spline_layer(rng, 2, 9, -1.0, 0.25), dense(rng, 3, 2),
                   spline_layer(rng, 3, 5, -1.0, 0.5), dense(rng, 1, 3), Identity()])
    x = rng.uniform(1.0, 10.0, (24, 2)) * rng.choice([-1.0, 1.0], (24, 2))
    return Case(name, "inputs outside the grid [-1, 1] (1 < |x| < 10) of a first-layer "
                "spline, and a second spline layer: linear extrapolation with the end "
                "slopes (c_1 - c_0)/T and (c_{K-1} - c_{K-2})/T", "evaluate", net, x)


def case_far_outside() -> Case:
    name = "far_outside"
    rng = case_rng(name)
    net = first_layer_spline_net(rng, 11, -1.0, 0.2)
    x = np.array([[1e3, -1e3], [-1e3, 1e3], [987.654321, -1234.5], [-777.7, 999.9],
                  [1e3, 0.3], [-0.7, -1e3]])
    return Case(name, "inputs far outside the grid (|x| up to 1.2e3, grid [-1, 1]): the end "
                "pieces extrapolate linearly; an implementation that clamps or that forms "
                "the offsets in float32 fails here", "evaluate", net, x)


def case_k2() -> Case:
    name = "k2"
    rng = case_rng(name)
    net = spline_net(rng, 2, [(3, 2, -1.0, 2.0)], 1)
    return Case(name, "K = 2 coefficients per neuron: one linear piece, no knot; both end "
                "slopes are the same piece's slope", "evaluate", net,
                rng.uniform(-3, 3, (16, 2)))


def case_single_neuron() -> Case:
    name = "single_neuron"
    rng = case_rng(name)
    net = spline_net(rng, 1, [(1, 9, -2.0, 0.5)], 1)
    return Case(name, "a 1 -> 1 -> 1 network (one input, one spline neuron, one output): "
                "shapes (M, 1), (M, 1, 1), weights (1, 1), coefficients (1, 9)", "evaluate",
                net, rng.uniform(-3, 3, (12, 1)))


def case_bias_null() -> Case:
    name = "bias_null"
    rng = case_rng(name)
    net = spline_net(rng, 3, [(4, 7, -1.5, 0.5)], 2, bias=False)
    return Case(name, "dense layers without bias (\"bias\": null in the model file): no "
                "param_gradients entry for a bias", "evaluate", net,
                rng.uniform(-2, 2, (10, 3)))


def case_per_layer_grids() -> Case:
    name = "per_layer_grids"
    rng = case_rng(name)
    net = spline_net(rng, 2, [(3, 5, -1.0, 0.5), (3, 13, -2.5, 0.5)], 2)
    return Case(name, "two spline layers with different K (5 and 13) and ranges ([-1, 1] and "
                "the asymmetric [-2.5, 3.5])", "evaluate", net, rng.uniform(-2, 2, (14, 2)))


def case_leaky_prelu() -> Case:
    name = "relu_leaky_prelu"
    rng = case_rng(name)
    net = Network([dense(rng, 3, 2), ReLU(), dense(rng, 3, 3), LeakyReLU(0.1),
                   dense(rng, 3, 3), PReLU(np.array([0.25, -0.5, 2.0])), dense(rng, 1, 3),
                   Identity()])
    return Case(name, "ReLU, LeakyReLU (slope 0.1, fixed) and PReLU (one learned slope per "
                "neuron, here 0.25, -0.5, 2.0: d sigma_n/d a_n = min(z, 0)) layers",
                "evaluate", net, rng.uniform(-2, 2, (16, 2)))


def case_knot_form() -> Case:
    name = "knot_form"
    rng = case_rng(name)
    points = [np.array([-1.3, -0.2, 0.05, 0.9]), np.array([-0.5, 0.7, 0.71, 1.6, 2.0, 3.1])]
    values = [rng.normal(size=len(p)) for p in points]
    net = Network([dense(rng, 2, 2), KnotSplineActivation(points, values), dense(rng, 1, 2),
                   Identity()])
    return Case(name, "a knot-form layer (\"knot_spline\", model format /2): per neuron the "
                "interpolant through free, unequally spaced points, continued linearly "
                "with its end slopes; its parameters are the flat arrays points and values "
                "(gradients param_gradients/layer1.points and .../layer1.values)", "evaluate",
                net, rng.uniform(-3, 3, (16, 2)))


def deepsplines_case(name: str, step: float, what: str) -> Case:
    """DeepSplines' grid: K = 21 on x_min = -(K // 2) * step; inputs on its grid points
    k * step (float64) one per row, and random ones inside."""
    rng = case_rng(name)
    net = first_layer_spline_net(rng, 21, -10 * step, step)
    points = step * np.arange(-10, 11)
    others = rng.uniform(-2.0, 2.0, 2 * len(points)) * step * 5 + 0.01
    x = np.concatenate([one_per_row(points, others), rng.uniform(-2.5, 2.5, (8, 2)) * step * 5])
    return Case(name, f"DeepSplines' grid convention: K = 21, x_min = -10 * step, step = "
                f"{step!r} ({what}); inputs on its grid points k * step (computed in "
                "float64) and inside", "evaluate", net, x)


def case_deepsplines_f64() -> Case:
    return deepsplines_case("deepsplines_step_f64", 0.19999999999999998,
                            "spline_grid_from_range(21, 2) = (2 / 10 // 1e-6) * 1e-6 in "
                            "float64, not 0.2")


def case_deepsplines_f32() -> Case:
    return deepsplines_case("deepsplines_step_f32", float(np.float32(0.1)),
                            "range 1, size 21 built under the float32 default dtype: the "
                            "step tensor stays float32 after .double()")


# ------------------------------------------------------------------ other kinds
def case_regularisers() -> Case:
    name = "tv2_bv2"
    rng = case_rng(name)
    net = spline_net(rng, 2, [(3, 11, -1.0, 0.2), (2, 5, -1.5, 0.75)], 1)
    return Case(name, "TV2 = sum_k |a_k| with a = (1/T) D2 c per neuron (step 0.2: an "
                "implementation that forgets the 1/T is off by a factor 5) and BV2 = TV2 + "
                "|sigma(0)| + |sigma(1)|, for two uniform layers (steps 0.2 and 0.75: 1 is "
                "not a grid point of the second)", "regulariser", net,
                rng.uniform(-1, 1, (2, 2)))


def case_regularisers_other() -> Case:
    name = "tv2_bv2_knot_form_far_grid"
    rng = case_rng(name)
    points = [np.array([-1.0, 0.3, 0.6, 2.0]), np.array([-2.0, -0.5, 1.5])]
    net = Network([dense(rng, 2, 2), spline_layer(rng, 2, 5, 1.5, 0.75), dense(rng, 2, 2),
                   KnotSplineActivation(points, [rng.normal(size=len(p)) for p in points]),
                   dense(rng, 1, 2), Identity()])
    return Case(name, "TV2 and BV2 per neuron of a uniform layer whose grid [1.5, 4.5] leaves "
                "0 and 1 in the left extrapolation piece, and of a knot-form layer (TV2 = "
                "sum of the slope changes at its interior points)", "regulariser", net,
                rng.uniform(-1, 1, (2, 2)))


def case_bounds() -> Case:
    name = "lipschitz_bounds"
    rng = case_rng(name)
    net = Network([dense(rng, 3, 2), spline_layer(rng, 3, 9, -2.0, 0.5), dense(rng, 3, 3),
                   PReLU(np.array([0.3, -1.5, 0.5])), dense(rng, 2, 3), Identity()])
    return Case(name, "the paper's Theorem-1 bounds for p = 1, 2, inf (exact activation "
                "slopes and BV2 norms; two outputs, so DeepSplines' lipschitz_bound(), which "
                "drops the factor N_L, differs) and the layer-wise bounds prod_l "
                "||diag(L_l) W_l||_{p->p}", "lipschitz", net, rng.uniform(-1, 1, (2, 2)))


def case_exact_1d() -> Case:
    name = "exact_1d"
    rng = case_rng(name)
    net = spline_net(rng, 1, [(4, 7, -1.5, 0.5), (3, 5, -1.0, 0.5)], 2)
    return Case(name, "the exact Lipschitz constant over R of a network with one input and "
                "two outputs (breakpoints propagated layer by layer), p = 1, 2, inf",
                "lipschitz_exact", net, np.zeros((1, 1)), rtol=EXACT_RTOL, atol=1e-12,
                parameters={"p": ["1", "2", "inf"], "box": None})


def case_exact_milp() -> Case:
    name = "exact_milp"
    rng = case_rng(name)
    net = spline_net(rng, 2, [(3, 5, -1.0, 0.5)], 1)
    return Case(name, "the exact Lipschitz constant over the box [-1, 1]^2 of a 2-3-1 "
                "spline network, p = 1 and inf (mixed-integer LP, certified by an attained "
                "witness and HiGHS's dual bound; graded within the certified bracket)",
                "lipschitz_exact", net, np.zeros((1, 2)), rtol=EXACT_RTOL, atol=1e-12,
                parameters={"p": ["1", "inf"], "box": 1.0})


def objective_case(name, tests, loss, n_out, targets, lam, reg, mu) -> Case:
    rng = case_rng(name)
    net = spline_net(rng, 2, [(3, 9, -2.0, 0.5)], n_out)
    return Case(name, tests, "objective", net, rng.uniform(-2, 2, (len(targets), 2)),
                targets=targets, parameters={"loss": loss, "lam": lam, "reg": reg, "mu": mu})


def case_objectives() -> list:
    rng = case_rng("objective_targets")
    common = ("the training objective J = sum_m E(y_m, f(x_m)) + mu sum_l ||W_l||_F^2 + "
              "lam sum_{n,l} R(sigma_{n,l}) (sums over samples, not means; biases not "
              "decayed), its three terms and its gradient")
    return [
        objective_case("objective_squared_tv2", f"{common}; E = (1/2)||f - y||^2 (the 1/2 "
                       "included), two outputs, R = TV2, lam 0.1, mu 0.01", "squared", 2,
                       rng.normal(size=(12, 2)), 0.1, "tv2", 0.01),
        objective_case("objective_logistic_bv2", f"{common}; E = log(1 + e^f) - y f (f a "
                       "logit, y in {0, 1}), R = BV2, lam 0.05, mu 0", "logistic", 1,
                       rng.integers(0, 2, 12).astype(float), 0.05, "bv2", 0.0),
        objective_case("objective_xent_tv2", f"{common}; E = logsumexp(f) - f_y (three "
                       "logits, integer labels y), R = TV2, lam 0.02, mu 0.001", "xent", 3,
                       rng.integers(0, 3, 12).astype(float), 0.02, "tv2", 0.001),
    ]


def solve_data(rng, m: int, n_in: int):
    x = rng.uniform(-1, 1, (m, n_in))
    y = np.sin(2.5 * x[:, 0]) + 0.5 * x[:, -1] ** 2 + 0.05 * rng.normal(size=m)
    return x, y


def solve_case(name: str, *, neurons: int, grid: str, reg: str, lip_max, tests: str) -> Case:
    rng = case_rng(name)
    weight = np.array([[2.0, 0.3], [-0.4, 1.8]])[:neurons]     # pre-activations cover [-2, 2]
    net = Network([Dense(weight, rng.normal(size=neurons) * 0.1),
                   spline_layer(rng, neurons, 9, -2.0, 0.5),
                   Dense(rng.normal(size=(1, neurons)) + 1.0, np.array([0.1])), Identity()])
    x, y = solve_data(rng, 60, 2)
    return Case(name, tests, "solve", net, x, targets=y,
                parameters={"layer": 1, "loss": "squared", "lam": 0.05, "reg": reg,
                            "grid": grid, "lip_max": lip_max},
                rtol=SOLVE_OBJECTIVE_RTOL, atol=1e-8,
                key_tolerances={"solve/fitted_outputs": [SOLVE_VALUES_TOL, SOLVE_VALUES_TOL],
                                "solve/layer_outputs": [SOLVE_VALUES_TOL, SOLVE_VALUES_TOL],
                                "solve/coefficients": [SOLVE_VALUES_TOL, SOLVE_VALUES_TOL]})


def case_solves() -> list:
    common = ("the certified optimum of sum_m (1/2)(f(x_m) - y_m)^2 + lam * sum_n R(sigma_n) "
              "over the activations of layer 1, every weight fixed")
    return [
        solve_case("solve_data_tv2", neurons=1, grid="data", reg="tv2", lip_max=None,
                   tests=f"{common}; R = TV2, data grid (the continuous-domain optimum)"),
        solve_case("solve_data_bv2_lip", neurons=1, grid="data", reg="bv2", lip_max=0.5,
                   tests=f"{common}; R = BV2, data grid, with Lip(sigma) <= 0.5 (active)"),
        solve_case("solve_uniform_tv2_lip", neurons=1, grid="uniform", reg="tv2", lip_max=2.0,
                   tests=f"{common}; R = TV2 on the layer's uniform grid (K = 9 on [-2, 2]), "
                   "with Lip(sigma) <= 2 (active)"),
        solve_case("solve_uniform_bv2", neurons=1, grid="uniform", reg="bv2", lip_max=None,
                   tests=f"{common}; R = BV2 on the layer's uniform grid (K = 9 on [-2, 2])"),
        solve_case("solve_data_tv2_two_neurons", neurons=2, grid="data", reg="tv2",
                   lip_max=None, tests=f"{common}; two neurons, R = TV2, data grid: the "
                   "activations are not unique (affine shifts the output cannot see), so "
                   "only the objective and the fitted outputs are graded"),
    ]


CASE_BUILDERS = (case_knots, case_kinks_hidden, case_relu_kink, case_grid_ends, case_outside,
                 case_far_outside, case_k2, case_single_neuron, case_bias_null,
                 case_per_layer_grids, case_leaky_prelu, case_knot_form, case_deepsplines_f64,
                 case_deepsplines_f32, case_regularisers, case_regularisers_other, case_bounds,
                 case_objectives, case_exact_1d, case_exact_milp, case_solves)


def build_cases() -> list[Case]:
    r"""Every golden case of the suite, built from a fixed seed.

    Returns
    -------
    cases : list of Case
        In the suite's order, names unique.  Each case's random numbers come from
        ``default_rng([SEED, crc32(name)])``, so an export is the same on every machine.

    See Also
    --------
    export : Write them to a directory.

    Notes
    -----
    The kinds and their answer keys (M inputs, N_0 -> N_L, N_i neurons in layer i):

    - evaluate: outputs (M, N_L), input_jacobian (M, N_L, N_0), param_gradients/NAME (the
      gradient of the sum of all outputs, shape of NAME), layer{i}/output (M, N_i);
    - regulariser: tv2/{i}, bv2/{i} (N_i,) per spline layer i;
    - lipschitz: lipschitz_bound/p1, p2, pinf (Theorem 1 of Aziznejad et al., IEEE Trans.
      Signal Process. 2020, arXiv:2001.06263, with the BV(2) norms),
      lipschitz_bound_slopes/p1, p2, pinf (with the exact slopes) and
      lipschitz_layerwise/p1, p2, pinf, the product over the layers of
      :math:`\|\mathrm{diag}(L_l) W_l\|_{p \to p}`;
    - objective: objective, objective/data, objective/weight_decay,
      objective/regulariser (), objective_gradients/NAME;
    - lipschitz_exact: lipschitz_exact/p1, p2, pinf, the exact constant (over R for one
      input, over the box [-R, R]^N_0 otherwise), with its certificate;
    - solve: solve/objective (), solve/fitted_outputs (M, N_L) and, where unique,
      solve/layer_outputs (M, N) and solve/coefficients (N, K).

    The first four kinds are graded by ``reference.oracle.check``, the others by
    ``reference.oracle.compare``.

    Examples
    --------
    >>> from reference.conformance import build_cases
    >>> cases = build_cases()
    >>> sorted({case.kind for case in cases})  # doctest: +NORMALIZE_WHITESPACE
    ['evaluate', 'lipschitz', 'lipschitz_exact', 'objective', 'regulariser', 'solve']
    >>> cases[0].name, cases[0].inputs.ndim
    ('knots', 2)
    """
    cases: list[Case] = []
    for builder in CASE_BUILDERS:
        made = builder()
        cases.extend(made if isinstance(made, list) else [made])
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), names
    return cases


# ------------------------------------------------------------------ the reference's answers
def answer_oracle(net, names, x, parameters, targets) -> tuple[dict, dict]:
    """evaluate, regulariser: every key of oracle.reference_answers with layer outputs."""
    return oracle.reference_answers(net, x, names=names, layers=True), {}


def p_key(p) -> str:
    """'1' -> 'p1', '2' -> 'p2', 'inf' -> 'pinf'."""
    p = lipschitz.parse_p(p)
    return "pinf" if p == np.inf else f"p{int(p)}"


def answer_lipschitz(net, names, x, parameters, targets) -> tuple[dict, dict]:
    """The Theorem-1 keys of oracle.reference_answers, and lipschitz_layerwise/pP =
    prod_l ||diag(L_l) W_l||_{p->p} (lipschitz.layerwise)."""
    out = {k: v for k, v in oracle.reference_answers(net, x, names=names).items()
           if k.startswith(("lipschitz_bound/", "lipschitz_bound_slopes/"))}
    for p in ("1", "2", "inf"):
        out[f"lipschitz_layerwise/{p_key(p)}"] = np.array(lipschitz.layerwise(net, p))
    return out, {}


def objective_of(parameters: dict, targets) -> oracle.Objective | None:
    """The training objective of an objective case (None for the other kinds)."""
    if "mu" not in parameters:
        return None
    return oracle.Objective(parameters["loss"], targets, parameters["lam"], parameters["reg"],
                            parameters["mu"])


def answer_objective(net, names, x, parameters, targets) -> tuple[dict, dict]:
    """objective keys of oracle.reference_answers (reference.training's objective and its
    gradient)."""
    ref = oracle.reference_answers(net, x, names=names, objective=objective_of(parameters,
                                                                                targets))
    return {k: v for k, v in ref.items() if k == "objective" or
            k.startswith(("objective/", "objective_gradients/"))}, {}


EXACT_CERTIFICATE = ("method", "status", "certified_exact", "lower_bound", "upper_bound",
                     "tolerance", "witness_x", "milp_dual_bound", "binaries", "pieces",
                     "linear_pieces", "domain", "reason")


def answer_exact(net, names, x, parameters, targets) -> tuple[dict, dict]:
    """lipschitz_exact/pP: exact_1d over R for one input (box null), exact_milp over
    [-box, box]^N_0 otherwise; only certified values (status optimal, a bracket at most
    MAX_CERTIFIED_WIDTH wide relative to the value: it becomes the grading tolerance) are
    answers.  The
    certificate holds, per p, the bracket lower_bound <= Lip <= upper_bound (equal for
    exact_1d; for the MILP the attained witness and HiGHS's bound + its tolerance)."""
    out, certificate = {}, {}
    for p in parameters["p"]:
        if parameters.get("box") is None:
            result = dict(exact1d.exact_1d(net, p), method="exact_1d (breakpoint propagation)")
        else:
            result = dict(milp.exact_milp(net, p, box=parameters["box"]),
                          method="exact_milp (scipy.optimize.milp, HiGHS)")
        if not result.get("certified_exact"):
            raise SolveFailed(f"lipschitz_exact: no certified exact value for p = {p} "
                              f"({result.get('status')}: {result.get('reason')})")
        width = ((result["upper_bound"] - result["lower_bound"])
                 / max(abs(float(result["value"])), np.finfo(np.float64).tiny))
        if not width <= MAX_CERTIFIED_WIDTH:
            raise SolveFailed(f"lipschitz_exact: the certified bracket for p = {p}, "
                              f"[{result['lower_bound']:.17g}, {result['upper_bound']:.17g}], "
                              f"is {width:.3g} relative, above {MAX_CERTIFIED_WIDTH:g}: no "
                              "exact value to grade against")
        out[f"lipschitz_exact/{p_key(p)}"] = np.array(result["value"])
        certificate[p_key(p)] = {k: result[k] for k in EXACT_CERTIFICATE if k in result}
    return out, certificate


def answer_solve(net, names, x, parameters, targets) -> tuple[dict, dict]:
    """reference.convex.solve_layer with the case's parameters: solve/objective (the
    objective re-evaluated in NumPy on the solved model), solve/fitted_outputs = f(X) with
    the optimal activations, solve/layer_outputs = sigma_n(z_m) (M, N) and, on the uniform
    grid, solve/coefficients (N, K)."""
    layer = parameters["layer"]
    new, cert = convex.solve_layer(net, layer, x, targets, loss=parameters["loss"],
                                   lam=parameters["lam"], reg=parameters["reg"],
                                   grid=parameters["grid"], lip_max=parameters["lip_max"])
    outputs, caches = new.forward(x, keep_cache=True)
    out = {"solve/objective": np.array(cert["objective_check"]),    # NumPy, on the model
           "solve/fitted_outputs": outputs,
           "solve/layer_outputs": new.layers[layer].forward(caches[layer])[0]}
    if parameters["grid"] == "uniform":
        out["solve/coefficients"] = new.layers[layer].params["coefficients"]
    keep = ("method", "solver", "status", "objective", "objective_check", "check_rtol", "gap",
            "grid_points", "gauge_directions_pinned", "knots", "knot_tolerance", "lipschitz")
    return out, {k: cert[k] for k in keep if k in cert}


def certified_tolerances(kind: str, answers: dict, certificate: dict, rtol: float,
                         atol: float) -> dict:
    """Per-key [rtol, atol] widened to the certificate: an exact value is graded within its
    certified bracket, |got - value| <= atol S + rtol |value| with rtol >= (upper - lower) /
    |value| (the MILP's bracket is ~1e-5 relative, HiGHS's tolerance; answer_exact refuses
    one wider than MAX_CERTIFIED_WIDTH)."""
    out = {}
    if kind == "lipschitz_exact":
        for key, value in answers.items():
            cert = certificate[key.rpartition("/")[2]]
            width = ((cert["upper_bound"] - cert["lower_bound"])
                     / max(abs(float(value)), np.finfo(np.float64).tiny))
            if width > rtol:
                out[key] = [float(width + rtol), atol]
    return out


def unique_solve_keys(net, x, parameters) -> tuple[list, str]:
    """Which solve answers the fitted outputs determine, and why.  The optimal outputs f(x_m)
    are unique for the squared and logistic losses (strictly convex in f, the regulariser
    convex); for the cross-entropy only the objective is (f_m + c 1 has the same loss).
    sigma(z_m) = A^+ (f - c) is unique when the affine map A (N_L, N) after the layer has rank N; a
    uniform-grid coefficient vector is then unique when every grid interval
    [t_k, t_{k+1}] holds >= 2 distinct pre-activations (the line on each piece is fixed)."""
    head, layer, a_mat, _ = convex.split_at(net, parameters["layer"])
    if parameters["loss"] == "xent":
        return ["solve/objective"], ("the cross-entropy does not change when a constant is "
                                     "added to every logit of a sample: the fitted logits, "
                                     "layer outputs and coefficients need not be unique")
    keys, why = ["solve/objective", "solve/fitted_outputs"], "the loss is strictly convex in f"
    if np.linalg.matrix_rank(a_mat) < a_mat.shape[1]:
        return keys, why + "; the affine map after the layer has rank < N: layer outputs and " \
            "coefficients are not unique"
    keys.append("solve/layer_outputs")
    why += "; the affine map after the layer has full column rank"
    if parameters["grid"] != "uniform":
        return keys, why
    z = head.forward(x) if head is not None else x
    grid = layer.spline.grid
    counts = [min(len(np.unique(zn[(zn >= lo) & (zn <= hi)])) for lo, hi in
                  zip(grid[:-1], grid[1:])) for zn in z.T]
    if min(counts) >= 2:
        keys.append("solve/coefficients")
        return keys, why + "; every grid interval holds >= 2 data pre-activations"
    return keys, why + "; some grid interval holds < 2 data pre-activations: coefficients " \
        "are not graded"


KINDS = {"evaluate": answer_oracle, "regulariser": answer_oracle,
         "lipschitz": answer_lipschitz, "objective": answer_objective,
         "lipschitz_exact": answer_exact, "solve": answer_solve}
CHECKED_KINDS = ("evaluate", "regulariser", "lipschitz", "objective")   # graded by oracle.check
DEFAULT_KEYS = {"evaluate": ("outputs", "input_jacobian", "param_gradients/*",
                             "layer*/output"),
                "regulariser": ("tv2/*", "bv2/*"),
                "lipschitz": ("lipschitz_bound/*", "lipschitz_bound_slopes/*",
                              "lipschitz_layerwise/*"),
                "objective": ("objective", "objective/*", "objective_gradients/*"),
                "lipschitz_exact": ("lipschitz_exact/*",), "solve": ("solve/*",)}


def answer(kind: str, net, names, x, parameters, targets=None) -> tuple[dict, dict]:
    """The reference's answers (key -> float64 array) to a case of this kind, and the
    certificate that goes with them (JSON-ready)."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {sorted(KINDS)}, got {kind!r}")
    return KINDS[kind](net, names, x, parameters, targets)


def case_keys(kind: str, patterns, answers: dict, net, x, parameters) -> tuple[list, dict]:
    """The answer keys of a case: those of `answers` (the reference's) that match its
    patterns (None: DEFAULT_KEYS[kind]); for a solve case only those the fitted outputs
    determine, and then {'graded': why} (else {}).  The export writes them to the manifest;
    the grading derives them again and refuses a manifest that asks for others."""
    keys = resolve_keys(patterns or DEFAULT_KEYS[kind], answers)
    if kind != "solve":
        return keys, {}
    unique, why = unique_solve_keys(net, x, parameters)
    return [k for k in keys if k in unique], {"graded": why}


def case_tolerances(case: Case, answers: dict, certificate: dict) -> dict:
    """key -> [rtol, atol] for every key of `answers` whose tolerance is not the case's own
    (case.rtol, case.atol): the case's key_tolerances, then the certified ones
    (`certified_tolerances`, from this certificate)."""
    tolerances = {**case.key_tolerances, **certified_tolerances(
        case.kind, answers, certificate, case.rtol, case.atol)}
    return {k: [float(r), float(a)] for k, (r, a) in tolerances.items() if k in answers}


def case_files(case: Case) -> dict:
    """The paths (relative to the suite's directory) of a case's files, as the manifest names
    them: model, inputs, expected, and data (objective and solve cases)."""
    files = {"model": f"{case.name}/model.npz", "inputs": f"{case.name}/inputs.npy",
             "expected": f"{case.name}/expected.npz"}
    if case.targets is not None:
        files["data"] = f"{case.name}/data.npz"
    return files


def resolve_keys(patterns, available) -> list:
    """The keys of `available` matching the patterns (fnmatch, e.g. 'param_gradients/*'),
    in the order of `available`."""
    return [k for k in available if any(fnmatch.fnmatchcase(k, p) for p in patterns)]
