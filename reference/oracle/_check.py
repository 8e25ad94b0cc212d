"""The oracle: the reference's answers for a model file and inputs, and their comparison with
another implementation's answers (`check`), with the first disagreement localised
(reference.oracle.localise).

Answer keys (arrays, float64; M samples, N_0 inputs, N_L outputs, N_i the width of layer i,
NAME an array name of the model file):
    outputs                    (M, N_L)       f(x_m)
    input_jacobian             (M, N_L, N_0)  d f(x_m) / dx (right piece at a kink)
    input_jacobian_left/right  (M, N_L, N_0)  every pre-activation on a kink takes the
                                              piece left / right of it
    on_kink                    (M,) bool      some pre-activation of row m is on a kink
    param_gradients/NAME       like NAME      d/dNAME of sum_m sum_j f_j(x_m)
    layer{i}/output            (M, N_i)       output of layer i (an index in the layer list)
    tv2/{i}, bv2/{i}           (N_i,)         per neuron of spline layer i
    lipschitz_bound/p1|p2|pinf ()             Theorem 1, BV2 form (as `info`)
    lipschitz_bound_slopes/p*  ()             Theorem 1 with the exact slopes (as `info`)
    objective                  ()             J = data + weight_decay + regulariser
    objective/data             ()             sum_m E(y_m, f(x_m)) (sums, not means)
    objective/weight_decay     ()             mu sum_l ||W_l||_F^2 (dense weights only)
    objective/regulariser      ()             lambda sum_{n,l} R(sigma_{n,l}), R = TV2 or
                                              BV2, over every spline neuron
    objective_gradients/NAME   like NAME      dJ/dNAME (sign(0) = 0 in |.|)
with E the loss of reference.nn.loss_and_grad: squared (1/2)(f - y)^2, logistic
log(1 + e^f) - y f, xent logsumexp(f) - f_y.

Comparison: |theirs - ours| <= atol S + rtol |ours| entrywise, S the scale of the key:
max(max |ours| over the key, the magnitude of the quantity) (reference.oracle._key_scales: the same
quantity computed with |W|, |b|, Lip and |x|, which bounds every term a correct
implementation sums, hence the scale of its float64 rounding).  atol is thus a fraction of
the key's own scale, and the answers of a network whose outputs are 1e-12 are compared as
strictly as those of one whose outputs are 1: an all-zero or sign-flipped answer fails at any
scale.  A key whose values all cancel to within atol S of zero (outputs 5e-9 summed from
terms ~5) cannot tell a zero answer from a right one at that atol: its row passes but is
marked unresolved (`Row.resolved`, `resolves`), never a plain pass; a smaller atol resolves
it.  One-sided rule (reference.oracle._one_sided): a Jacobian row or gradient entry with a
pre-activation within the kink window (relative to the magnitude of the pre-activation) of a
kink passes when it matches some choice of left / right piece at each of its kinks.
When the answers hold input_jacobian, each kink row's choices are narrowed to those its
Jacobian row matches (an implementation takes one side per pre-activation, the same in its
Jacobian and its backward pass): with one matching choice per row the gradient check is
exact, not a range.  The report counts these rows.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reference._numerics import check_choice
from reference.exceptions import OverflowResult
from reference.lipschitz import _bounds as lipschitz
from reference.nn import _regularisers as regularisers
from reference.nn._losses import LOSSES, check_targets, loss_and_grad
from reference.nn._network import Network
from reference.oracle._key_scales import KeyScales, array_scale, is_objective_key
from reference.oracle._localise import format_localisation, localise
from reference.oracle._one_sided import (  # noqa: F401
    KNOT_TOL,
    KNOT_TOL_MAX,
    KNOT_TOL_SPACING,
    MAX_ENUMERATED_KINKS,
    ForwardPass,
    Spread,
    check_knot_tol,
    check_tolerance,
    choice_label,
    gradient_range,
    jacobian_candidates,
    kink_choices,
    kink_masks,
    kink_rows,
    sides_from_masks,
)
from reference.training._train import TrainConfig, _regulariser_grads
from reference.training._train import objective as train_objective

DEFAULT_RTOL = 1e-7
DEFAULT_ATOL = 1e-9          # a fraction of each key's scale S (see the module docstring)
TOLERANCE_RULE = ("|theirs - ours| <= atol S + rtol |ours|, S = max(max |ours| over the key, "
                  "the magnitude of the quantity, from |W|, |b|, Lip, |x|: the scale of its "
                  "rounding)")
P_KEYS: dict[str, float | str] = {"p1": 1, "p2": 2, "pinf": "inf"}
OBJECTIVE_TERMS = ("data", "weight_decay", "regulariser")


class Objective(NamedTuple):
    r"""The training objective J whose terms and gradients the oracle answers.

    Parameters
    ----------
    loss : {'squared', 'logistic', 'xent'}
        The data term E (``reference.nn.loss_and_grad``).
    targets : ndarray of shape (n_samples,) or (n_samples, n_out)
        The targets y_m: class labels for 'logistic' and 'xent', values for 'squared'.
    lam : float, default 0.0
        The weight lambda >= 0 of the regulariser of the spline neurons.
    reg : {'tv2', 'bv2'}, default 'tv2'
        The regulariser R.
    mu : float, default 0.0
        The weight decay mu >= 0 on the dense weights.

    See Also
    --------
    reference.training.objective : The same terms, for training.

    Notes
    -----
    .. math::

        J = \sum_{m=1}^{M} E(y_m, f(x_m)) + \mu \sum_l \|W_l\|_F^2
            + \lambda \sum_{n,l} R(\sigma_{n,l}),

    a sum over the samples, not a mean; R is TV(2) or the BV(2) norm of each spline neuron
    sigma_{n,l} [1]_.

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.
    """
    loss: str
    targets: np.ndarray
    lam: float = 0.0
    reg: str = "tv2"
    mu: float = 0.0


def spline_layers(net: Network) -> list:
    """Indices of the uniform- and knot-form spline layers."""
    return [i for i, l in enumerate(net.layers) if l.is_spline]


def file_names(net: Network, names=None) -> dict:
    """Own parameter name 'layer{i}.{key}' -> name in the model file (`names` as returned by
    io.load_model(..., with_names=True), file name -> own name; None: the same names)."""
    own = [name for name, _ in net.named_params()]
    if names is None:
        return {n: n for n in own}
    inverse = {v: k for k, v in names.items()}
    missing = [n for n in own if n not in inverse]
    if missing:
        raise ValueError(f"names: no file name for the parameters {missing}")
    return {n: inverse[n] for n in own}


def _train_config(objective: Objective):
    return TrainConfig(loss=objective.loss, lam=float(objective.lam), reg=objective.reg,
                       mu=float(objective.mu)).validate()


def objective_answers(net: Network, x, objective: Objective, names=None,
                      outputs=None, caches=None) -> dict:
    """objective, objective/{data, weight_decay, regulariser} and objective_gradients/NAME.

    Terms from reference.training.objective (its regulariser covers uniform spline layers; the
    knot-form layers' lambda sum R is added here), gradients: the backward pass of the
    loss gradient plus reference.training's 2 mu W and lambda grad R."""
    config = _train_config(objective)
    if outputs is None:
        outputs, caches = net.forward(x, keep_cache=True)
    terms = train_objective(net, x, objective.targets, config, outputs)
    grad_out = objective_grad_out(objective, outputs)
    _, grads = net.backward(caches, grad_out)
    for key, g in objective_extra_grads(net, objective).items():
        grads[key] = grads[key] + g
    for layer in net.layers:
        if _free_knot(layer) and config.lam > 0:
            extra = config.lam * float(regularisers.get(config.reg).value(layer.spline).sum())
            terms["regulariser"] += extra
            terms["total"] += extra
    result = {"objective": np.float64(terms["total"])}
    result.update({f"objective/{t}": np.float64(terms[t]) for t in OBJECTIVE_TERMS})
    for own, file in file_names(net, names).items():
        result[f"objective_gradients/{file}"] = grads[own]
    return result


def _free_knot(layer) -> bool:
    """A spline layer that the training loop does not regularise (knot form, not on a
    uniform grid): its regulariser term and gradient are added here."""
    return layer.is_spline and not layer.uniform_grid


def objective_extra_grads(net: Network, objective: Objective) -> dict:
    """Own parameter name -> the part of dJ/dNAME that does not pass through the outputs:
    2 mu W for the dense weights, lambda grad R for the spline layers (one term per key)."""
    config = _train_config(objective)
    extra = dict(_regulariser_grads(net, config, 1))
    for i, layer in enumerate(net.layers):
        if _free_knot(layer) and config.lam > 0:
            for key, g in layer.regulariser_grads(config.reg).items():
                extra[f"layer{i}.{key}"] = config.lam * g
    return extra


def objective_grad_out(objective: Objective, outputs) -> np.ndarray:
    """dE/df (M, N_L) of the objective's loss at the outputs."""
    check_choice(objective.loss, LOSSES, "loss")
    targets = check_targets(objective.loss, outputs.shape, objective.targets)
    return loss_and_grad(objective.loss, outputs, targets)[1]


def reference_answers(net: Network, x: ArrayLike, *, names: Mapping[str, str] | None = None,
                      layers: bool = False, one_sided: bool = False,
                      objective: Objective | None = None, knot_tol: float = KNOT_TOL,
                      info: bool = True,
                      forward: ForwardPass | None = None) -> dict[str, NDArray]:
    r"""The reference's answers for a network and inputs: the quantities `check` compares.

    Parameters
    ----------
    net : Network
        The network f: R^N_0 -> R^N_L.
    x : array_like of shape (n_samples, n_in)
        The inputs x_m, m = 1 .. M.
    names : mapping of str to str, optional
        File name -> own parameter name ('layer{i}.{key}'), as
        ``reference.io.load_model(..., with_names=True)`` returns it; the gradient keys use
        the file names.  None: the own names.
    layers : bool, default False
        Also answer layer{i}/output.
    one_sided : bool, default False
        Also answer input_jacobian_left, input_jacobian_right and on_kink.
    objective : Objective, optional
        Also answer the objective keys for this objective.
    knot_tol : float, default 1e-9
        The relative width of the kink window (see Notes), in [0, 1e-3].
    info : bool, default True
        Also answer tv2/{i}, bv2/{i} and the Lipschitz bounds.
    forward : ForwardPass, optional
        ``ForwardPass(net, x, knot_tol)`` when the caller already has it (not redone).

    Returns
    -------
    answers : dict of str to ndarray
        float64 arrays (on_kink bool), with M samples, N_0 inputs, N_L outputs, N_i the
        width of layer i and NAME a parameter array's name:

        - outputs, (M, N_L): f(x_m);
        - input_jacobian, (M, N_L, N_0): df(x_m)/dx (the right piece at a kink);
        - param_gradients/NAME, like NAME: the gradient of sum_m sum_j f_j(x_m);
        - layer{i}/output, (M, N_i): the output of layer i (with `layers`);
        - input_jacobian_left, input_jacobian_right, (M, N_L, N_0), and on_kink, (M,): every
          pre-activation on a kink takes the piece left / right of it (with `one_sided`);
        - tv2/{i}, bv2/{i}, (N_i,): per neuron of spline layer i (with `info`);
        - lipschitz_bound/p1, p2, pinf and lipschitz_bound_slopes/p1, p2, pinf, (): Theorem 1
          of [1]_ with the BV(2) norms and with the exact slopes (with `info`; a bound
          beyond float64 is left out);
        - objective, objective/data, objective/weight_decay, objective/regulariser, () and
          objective_gradients/NAME, like NAME: J, its terms and dJ/dNAME (with
          `objective`; ``sign(0) = 0`` in ``|.|``).

    Raises
    ------
    ValueError
        When x does not fit the network, `knot_tol` is out of range or its window reaches
        1% of the distance between two kinks, or `names` misses a parameter.
    OverflowResult
        When the forward pass leaves the float64 range, naming x and the layer.

    See Also
    --------
    check : Compare another implementation's answers with these.

    Notes
    -----
    A pre-activation z is on a kink tau when

    .. math::

        |z - \tau| \le \max(\mathrm{knot\_tol} \max(|z|_{\mathrm{mag}}, |\tau|),
        \mathrm{snap}),

    with :math:`|z|_{\mathrm{mag}}` the magnitude of z (``|W| |y| + |b|`` propagated from
    ``|x|``)
    and snap the width below a grid point that a uniform spline puts on it.  The losses E:
    squared :math:`\tfrac12 (f - y)^2`, logistic :math:`\log(1 + e^f) - y f`, cross-entropy
    :math:`\operatorname{logsumexp}(f) - f_y`.

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.

    Examples
    --------
    >>> import numpy as np
    >>> from reference.nn import build_mlp
    >>> from reference.oracle import reference_answers
    >>> net = build_mlp([2, 3, 1], "spline", rng=0)
    >>> x = np.random.default_rng(1).normal(size=(4, 2))
    >>> answers = reference_answers(net, x)
    >>> answers["outputs"].shape, answers["input_jacobian"].shape
    ((4, 1), (4, 1, 2))
    >>> for key in sorted(answers):
    ...     if key.startswith("param_gradients/"):
    ...         print(key, answers[key].shape)
    param_gradients/layer0.bias (3,)
    param_gradients/layer0.weight (3, 2)
    param_gradients/layer1.coefficients (3, 51)
    param_gradients/layer2.bias (1,)
    param_gradients/layer2.weight (1, 3)
    """
    if forward is None:
        forward = ForwardPass(net, x, knot_tol)
    else:
        forward.match_knot_tol(knot_tol)
    x, outputs, caches = forward.x, forward.outputs, forward.caches
    _, grads = net.backward(caches, np.ones_like(outputs))
    result = {"outputs": outputs, "input_jacobian": net.input_jacobian(x)}
    for own, file in file_names(net, names).items():
        result[f"param_gradients/{file}"] = grads[own]
    if layers:
        for i in range(len(net.layers)):
            result[f"layer{i}/output"] = caches[i + 1] if i + 1 < len(caches) else outputs
    if one_sided:
        result.update(one_sided_jacobians(net, x, forward.masks, result["input_jacobian"]))
    if info:
        result.update(info_answers(net))
    if objective is not None:
        result.update(objective_answers(net, x, objective, names, outputs, caches))
    return result


def one_sided_jacobians(net: Network, x, masks: list, jacobian) -> dict:
    """input_jacobian_left / _right (M, N_L, N_0) and on_kink (M,): `jacobian` (the input
    Jacobian, (M, N_L, N_0)) with each row on a kink (masks: one_sided.kink_masks) replaced by
    its Jacobian with every kink of the row taking the piece left / right of it; the other
    rows have no kink to choose a side at (their one-sided Jacobians are the Jacobian), so
    only the rows on a kink are computed again."""
    on_kink = kink_rows(masks, x.shape[0])
    rows = np.flatnonzero(on_kink)
    result = {"on_kink": on_kink}
    for side, key in ((-1, "input_jacobian_left"), (1, "input_jacobian_right")):
        result[key] = np.array(jacobian)
        if len(rows):
            sides = sides_from_masks([None if m is None else m[rows] for m in masks], side)
            result[key][rows] = net.input_jacobian(x[rows], sides)
    return result


def info_answers(net: Network) -> dict:
    """tv2/{i}, bv2/{i} (N_i,) per spline layer; lipschitz_bound/p* (Theorem 1, BV2 form) and
    lipschitz_bound_slopes/p* (exact slopes) unless they leave float64."""
    result = {}
    for i in spline_layers(net):
        spline = net.layers[i].spline
        result[f"tv2/{i}"], result[f"bv2/{i}"] = spline.tv2(), spline.bv2()
    for key, p in P_KEYS.items():
        for prefix, bound in (("lipschitz_bound", lipschitz.theorem1_bv2),
                              ("lipschitz_bound_slopes", lipschitz.theorem1)):
            try:
                result[f"{prefix}/{key}"] = np.float64(bound(net, p))
            except OverflowResult:
                pass
    return result


# ------------------------------------------------------------------------- comparison
@dataclass
class Row:
    """One compared quantity: entries compared, max |theirs - ours|, max of that over |ours|,
    the index of the entry that most exceeds its tolerance, pass / fail, rows on a kink
    (one-sided rule), a note; scale: the key's scale S, atol_effective = atol S, the
    absolute part of the tolerance used, and scale_from: 'reference' (S = max |ours|),
    'magnitude' (S = the quantity's magnitude, larger than max |ours|) or 'given';
    resolved: False when a zero answer would pass too (`resolves`): a passing row is then
    reported as unresolved, not as a pass."""
    key: str
    compared: int
    max_abs: float
    max_rel: float
    worst_index: tuple | None
    passed: bool
    on_knot: int = 0
    note: str = ""
    scale: float = float("nan")
    atol_effective: float = float("nan")
    scale_from: str = ""
    resolved: bool = True

    @property
    def result(self) -> str:
        """'pass', 'FAIL', or 'unresolved' (passes, but so would a zero answer)."""
        return "FAIL" if not self.passed else "pass" if self.resolved else "unresolved"


UNRESOLVED_NOTE = ("unresolved: every |ours| is within atol S + rtol |ours| of 0 (the values "
                   "cancel below atol times their magnitude S), so a zero answer would pass "
                   "too; a smaller atol resolves it")


def failed_row(key: str, note: str) -> Row:
    return Row(key, 0, float("nan"), float("nan"), None, False, note=note)


def resolves(nearest_to_zero, atol_effective: float, rtol: float) -> bool:
    """Whether a comparison tells a zero answer from the reference's: False when the accepted
    value nearest to zero (the reference's array; for a one-sided comparison the choice or
    range point nearest to zero) is nonzero somewhere yet within atol S + rtol |.| of zero
    everywhere, so that a zero answer passes by the tolerance alone."""
    values = np.abs(np.asarray(nearest_to_zero, dtype=np.float64))
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.any(values > atol_effective + rtol * values)) or not np.any(values)


def compare(key: str, expected: ArrayLike, got: ArrayLike, *, rtol: float = DEFAULT_RTOL,
            atol: float = DEFAULT_ATOL, scale: float | None = None,
            scale_from: str = "given") -> Row:
    r"""Compare one array with the expected one, entrywise, relative to its scale.

    Parameters
    ----------
    key : str
        The name of the quantity, for the row.
    expected : array_like
        The expected values (the reference's), any shape.
    got : array_like
        The values compared, of the same shape.
    rtol : float, default 1e-7
        The tolerance relative to each entry.
    atol : float, default 1e-9
        The tolerance relative to the scale S of the whole array.
    scale : float, optional
        The scale S; None: ``max |expected|`` (``array_scale``).
    scale_from : str, default 'given'
        Where S came from, recorded in the row ('reference' when S is computed here).

    Returns
    -------
    row : Row
        key, entries compared, ``max |got - expected|``, the largest of that over
        ``|expected|``,
        worst_index (the entry that most exceeds its tolerance), passed, note, scale,
        atol_effective (atol S), scale_from and resolved (False when a zero answer would
        pass too, see Notes).  A shape mismatch, a non-real array or NaN / inf in `got` is a
        failed row with a note, never an exception.

    See Also
    --------
    check : Every key of a network's answers, with the one-sided rule at kinks.

    Notes
    -----
    An entry passes when

    .. math::

        |\mathrm{got} - \mathrm{expected}| \le \mathrm{atol}\, S
        + \mathrm{rtol}\, |\mathrm{expected}|.

    A passing row is unresolved (``resolved`` False) when every entry of `expected` is
    within that tolerance of zero but some is nonzero: a zero answer would pass by the
    tolerance alone.

    Examples
    --------
    >>> from reference.oracle import compare
    >>> compare("y", [1.0, 2.0], [1.0, 2.0 + 1e-12]).passed
    True
    >>> row = compare("y", [1.0, 2.0], [1.0, 2.1])
    >>> row.passed, row.worst_index
    (False, (1,))
    >>> compare("y", [1.0, 2.0], [1.0]).note
    'shape (1,), expected (2,)'
    """
    expected = np.asarray(expected, dtype=np.float64)
    if scale is None:
        scale, scale_from = array_scale(expected), "reference"
    scales: dict[str, Any] = dict(scale=float(scale), atol_effective=float(atol * scale),
                                  scale_from=scale_from)
    try:
        got = np.asarray(got)
        if got.dtype.kind not in "biuf":
            return Row(key, 0, float("nan"), float("nan"), None, False,
                       note=f"not a real array (dtype {got.dtype})", **scales)
        got = got.astype(np.float64)
    except (TypeError, ValueError):
        return Row(key, 0, float("nan"), float("nan"), None, False, note="not an array",
                   **scales)
    if got.shape != expected.shape:
        return Row(key, 0, float("nan"), float("nan"), None, False,
                   note=f"shape {got.shape}, expected {expected.shape}", **scales)
    if not np.all(np.isfinite(got)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(got))[0])
        return Row(key, got.size, float("inf"), float("inf"), bad, False,
                   note=f"NaN or inf at {bad}", **scales)
    if got.size == 0:
        return Row(key, 0, 0.0, 0.0, None, True, **scales)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        diff = np.abs(got - expected)
        allowed = scales["atol_effective"] + rtol * np.abs(expected)
        rel = np.where(diff == 0, 0.0, diff / np.abs(expected))
        excess = np.where(diff == 0, 0.0, diff / allowed)
    worst = (tuple(int(i) for i in np.unravel_index(np.argmax(excess), diff.shape))
             if diff.max() > 0 else None)
    return Row(key, int(got.size), float(diff.max()), float(rel.max()), worst,
               bool(np.all(diff <= allowed)), **scales,
               resolved=resolves(expected, scales["atol_effective"], rtol))


# ------------------------------------------------- comparisons under the one-sided rule
def closest_choices(expected, got, candidates: dict, atol_effective: float, rtol: float):
    """Each kink row of `expected` (M, N_L, N_0) replaced by its one-sided choice closest to
    `got` (by the largest ratio of |got - choice| to its tolerance); returns that array, per
    row whose `got` matches some choice the (1 + C,) bool mask of the matching ones (index 0:
    the reference's own Jacobian), and the count of rows per closest choice's label."""
    expected = np.array(expected, dtype=np.float64)
    matched: dict[str, int]                       # closest choice's label -> rows
    matched, allowed = {}, {}
    for row, (labels, jacs) in candidates.items():
        options = np.concatenate([expected[row][None], jacs])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            excess = np.abs(got[row] - options) / (atol_effective + rtol * np.abs(options))
        excess = np.nan_to_num(excess.reshape(len(options), -1).max(axis=1), nan=np.inf)
        best = int(np.argmin(excess))
        if excess[best] <= 1:
            allowed[row] = excess <= 1
        expected[row] = options[best]
        label = "reference" if best == 0 else labels[best - 1]
        matched[label] = matched.get(label, 0) + 1
    return expected, allowed, matched


def compare_jacobian(key, expected, got, candidates: dict, *, rtol, atol, scale, scale_from):
    """`compare`, with each kink row compared with its closest one-sided choice
    (`closest_choices`); returns the row, the expected array after those choices and, per
    kink row whose Jacobian matches some choice, the (1 + C,) bool mask of the matching ones
    (index 0: the reference's own Jacobian), which narrows the gradient check
    (`gradient_range`).  row.resolved: `resolves` the choices closest to a zero answer."""
    expected = np.array(expected, dtype=np.float64)
    got_arr = np.asarray(got)
    scales = dict(rtol=rtol, atol=atol, scale=scale, scale_from=scale_from)
    if (got_arr.shape != expected.shape or got_arr.dtype.kind not in "biuf"
            or not candidates):
        return compare(key, expected, got, **scales), expected, {}
    got_arr = got_arr.astype(np.float64)
    chosen, allowed, matched = closest_choices(expected, got_arr, candidates, atol * scale, rtol)
    row = compare(key, chosen, got_arr, **scales)
    row.resolved = resolves(closest_choices(expected, np.zeros_like(expected), candidates,
                                            atol * scale, rtol)[0], row.atol_effective, rtol)
    row.on_knot = len(candidates)
    row.note = (f"{len(candidates)} rows on a kink, closest: "
                + ", ".join(f"{k} {v}" for k, v in sorted(matched.items())))
    return row, chosen, allowed


def compare_gradient(key, expected, got, spread: Spread | None, *, rtol, atol, scale,
                     scale_from, kink_count, jacobian: bool = False):
    """`compare` against the nearest point of center + [low, high] (the range of the
    one-sided choices, narrowed by input_jacobian where given; `expected` without kink
    rows); returns the row and that nearest point.  The note says whether the comparison
    was exact or a range pass (jacobian: input_jacobian was among the answers);
    row.resolved: `resolves` the point of the range nearest to zero."""
    got_arr = np.asarray(got)
    scales = dict(rtol=rtol, atol=atol, scale=scale, scale_from=scale_from)
    if (spread is None or got_arr.shape != np.shape(expected)
            or got_arr.dtype.kind not in "biuf" or not np.all(np.isfinite(got_arr))):
        return compare(key, expected, got, **scales), expected
    low, high = spread.center + spread.low, spread.center + spread.high
    nearest = np.clip(got_arr.astype(np.float64), low, high)
    row = compare(key, nearest, got_arr, **scales)
    row.resolved = resolves(np.clip(0.0, low, high), row.atol_effective, rtol)
    row.on_knot = kink_count
    if spread.affected:
        row.note = f"{kink_count} rows on a kink: " + _spread_note(spread, kink_count, jacobian)
    return row, nearest


def _spread_note(spread: Spread, kink_count: int, jacobian: bool) -> str:
    """How a gradient with kink rows was compared: exactly (every row's side pinned by its
    input_jacobian row) or as a range pass."""
    if not np.any(spread.high > spread.low):
        return ("each with the side its input_jacobian row takes" if spread.pinned
                else "the one-sided choices agree here")
    if not jacobian:
        return ("a range pass (each entry within the sums of either side's gradient; give "
                "input_jacobian to pin the sides)")
    return (f"{spread.pinned} pinned by input_jacobian, {kink_count - spread.pinned} "
            "matching no side or several: a range pass over those")


# -------------------------------------------------------------------------- the check
@dataclass
class CheckReport:
    """The rows, pass / fail (unresolved rows pass: no row fails), the localisation of the
    first disagreement (None when all pass) and the tolerances used: rtol, atol (a fraction
    of each key's scale S; each row holds its S and atol S), knot_tol, the rule as text;
    notes: what the report must say besides (a magnitude clamped at the float64 maximum)."""
    rows: list
    passed: bool
    localisation: dict | None
    rtol: float
    atol: float
    knot_tol: float = KNOT_TOL
    samples: int = 0
    kink_rows: int = 0
    tolerance_rule: str = TOLERANCE_RULE
    notes: list = field(default_factory=list)

    @property
    def unresolved(self) -> list:
        """The keys whose rows pass but would pass a zero answer too (`Row.resolved`)."""
        return [r.key for r in self.rows if r.passed and not r.resolved]

    def to_json(self) -> dict:
        data = asdict(self)
        data["rows"] = [asdict(r) for r in self.rows]
        data["unresolved"] = self.unresolved
        return data

    def format(self) -> str:
        """The human table (with each key's effective absolute tolerance atol S), then the
        localisation."""
        width = max([len(r.key) for r in self.rows] + [3])
        result = max([len(r.result) for r in self.rows] + [6])
        lines = [f"  {'key':{width}s} {'compared':>8s} {'max abs':>9s} {'max rel':>9s} "
                 f"{'atol S':>9s} {'worst index':>12s} {'result':{result}s}  note"]
        for r in self.rows:
            worst = "-" if r.worst_index is None else str(tuple(r.worst_index)).replace(" ", "")
            atol = f"{r.atol_effective:9.2e}" if np.isfinite(r.atol_effective) else "-"
            lines.append(f"  {r.key:{width}s} {r.compared:8d} {r.max_abs:9.2e} "
                         f"{r.max_rel:9.2e} {atol:>9s} {worst:>12s} "
                         f"{r.result:{result}s}  {r.note}".rstrip())
        count, unresolved = sum(r.result == "pass" for r in self.rows), len(self.unresolved)
        lines.append(f"{count} of {len(self.rows)} quantities pass"
                     + (f", {unresolved} unresolved" if unresolved else "")
                     + f" (|theirs - ours| <= atol S + rtol |ours|, atol {self.atol:g}, rtol "
                     f"{self.rtol:g}, S = max(max |ours| over the key, its magnitude |W| |y| + "
                     f"|b|)); {self.kink_rows} of {self.samples} samples have a "
                     f"pre-activation on a kink (within knot_tol {self.knot_tol:g} "
                     "max(|z|_mag, |tau|), |z|_mag = |W| |y| + |b| from |x|, or the spline's "
                     "knot snap), compared with both one-sided derivatives")
        lines.extend(f"note: {n}" for n in self.notes)
        if self.localisation is not None:
            lines.extend(format_localisation(self.localisation))
        return "\n".join(lines)


KEY_PATTERNS = (r"outputs", r"layer\d+/output", r"input_jacobian(_left|_right)?", r"on_kink",
                r"param_gradients/.+", r"(tv2|bv2)/\d+", r"lipschitz_bound(_slopes)?/p(1|2|inf)",
                r"objective(/(data|weight_decay|regulariser))?", r"objective_gradients/.+")


def key_order(key: str) -> tuple:
    """Rows in the order outputs, layer outputs, Jacobians, gradients, regularisers,
    bounds, objective; within a kind by layer index (p1, p2, pinf for the bounds)."""
    for rank, pattern in enumerate(KEY_PATTERNS):
        if re.fullmatch(pattern, key):
            numbers = [int(n) for n in re.findall(r"\d+", key.replace("pinf", "p9"))]
            return (rank, numbers, key)
    return (len(KEY_PATTERNS), [], key)


needs_objective = is_objective_key       # the keys that need the Objective


def unknown_key_note(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")


def check(net: Network, x: ArrayLike, answers: Mapping[str, ArrayLike], *,
          names: Mapping[str, str] | None = None, rtol: float = DEFAULT_RTOL,
          atol: float = DEFAULT_ATOL, knot_tol: float = KNOT_TOL,
          objective: Objective | None = None, reference: dict[str, NDArray] | None = None,
          forward: ForwardPass | None = None) -> CheckReport:
    r"""Compare another implementation's answers with the reference's, key by key.

    Parameters
    ----------
    net : Network
        The network both implementations evaluate.
    x : array_like of shape (n_samples, n_in)
        The inputs.
    answers : mapping of str to array_like
        Key -> the other implementation's array, with the keys and shapes of
        `reference_answers` (e.g. outputs of shape (n_samples, n_out)).
    names : mapping of str to str, optional
        File name -> own parameter name, as in `reference_answers`.
    rtol : float, default 1e-7
        The tolerance relative to each entry, finite and >= 0.
    atol : float, default 1e-9
        The tolerance as a fraction of each key's scale S, finite and >= 0.
    knot_tol : float, default 1e-9
        The relative width of the kink window of the one-sided rule, in [0, 1e-3].
    objective : Objective, optional
        The objective the objective keys refer to; without it those keys fail.
    reference : dict of str to ndarray, optional
        ``reference_answers(net, x, names=names, layers=True, one_sided=True,
        objective=objective, knot_tol=knot_tol)`` when the caller already has it.
    forward : ForwardPass, optional
        ``ForwardPass(net, x, knot_tol)`` when the caller already has it.

    Returns
    -------
    report : CheckReport
        ``rows`` (one `compare` row per key, in the order outputs, layer outputs,
        Jacobians, gradients, regularisers, bounds, objective), ``passed`` (no row fails;
        unresolved rows pass), ``localisation`` (where the first disagreement is, see
        `localise`; None when every row passes), the tolerances used (rtol, atol,
        knot_tol, the rule as text), ``samples`` and ``kink_rows`` (samples with a
        pre-activation on a kink), ``notes`` and ``unresolved`` (the keys a zero answer
        would pass too).  ``report.format()`` is the human table, ``report.to_json()`` the
        JSON form.

    Raises
    ------
    ValueError
        When `rtol`, `atol` or `knot_tol` is out of range, x does not fit the network, or
        `names` misses a parameter.
    OverflowResult
        When the reference's forward pass leaves the float64 range.

    See Also
    --------
    reference_answers : The answers compared against.
    compare : The comparison of one array.
    gradient_range : The range of a gradient under the one-sided rule.

    Notes
    -----
    **Tolerance.**  An entry passes when

    .. math::

        |\mathrm{theirs} - \mathrm{ours}| \le \mathrm{atol}\, S + \mathrm{rtol}\,
        |\mathrm{ours}|,
        \qquad S = \max\bigl(\max_{\mathrm{key}} |\mathrm{ours}|,\ \mathrm{magnitude}\bigr),

    where the magnitude of the quantity is the same quantity computed with ``|W|``, ``|b|``,
    Lip and ``|x|``: it bounds every term a correct implementation sums, hence it is the
    scale of its float64 rounding. atol is thus a fraction of the key's own scale, and the
    answers of a network whose outputs are 1e-12 are compared as strictly as those of one
    whose outputs are 1: an all-zero or sign-flipped answer fails at any scale. A key whose
    values all cancel to within atol S of zero cannot tell a zero answer from a right one at
    that atol: its row passes but is marked unresolved, never a plain pass; a smaller atol
    resolves it. Unknown keys, and objective keys without `objective`, are failed rows.

    **One-sided rule.**  At a kink an implementation may take the piece on either side.
    A pre-activation z is on a kink tau when

    .. math::

        |z - \tau| \le \max\bigl(\mathrm{knot\_tol} \max(|z|_{\mathrm{mag}}, |\tau|),\
        \mathrm{snap}\bigr),

    with :math:`|z|_{\mathrm{mag}} = |W| |y| + |b|` propagated from ``|x|`` and snap the width
    below a grid point that a uniform spline puts on it.  A Jacobian row with such a
    pre-activation passes when it matches the Jacobian of some choice of left / right piece
    at each of its kinks (every choice for at most 6 kinks in the row, else all-left and
    all-right); a gradient entry passes when it lies, within the tolerance, in the range of
    the sums of such per-row choices.  When the answers hold input_jacobian, each kink
    row's choices are narrowed to those its Jacobian row matches (an implementation takes
    one side per pre-activation, the same in its Jacobian and its backward pass): with one
    matching choice per row the gradient check is exact, not a range.

    Examples
    --------
    >>> import numpy as np
    >>> from reference.nn import build_mlp
    >>> from reference.oracle import check, reference_answers
    >>> net = build_mlp([2, 3, 1], "spline", rng=0)
    >>> x = np.random.default_rng(1).normal(size=(4, 2))
    >>> ours = reference_answers(net, x, layers=True)
    >>> theirs = {"outputs": ours["outputs"] * (1 + 1e-12),
    ...           "input_jacobian": ours["input_jacobian"]}
    >>> report = check(net, x, theirs)
    >>> report.passed, [row.result for row in report.rows]
    (True, ['pass', 'pass'])

    A wrong spline layer is found and named:

    >>> theirs = {"outputs": ours["outputs"] + 1, "layer0/output": ours["layer0/output"],
    ...           "layer1/output": 2 * ours["layer1/output"]}
    >>> report = check(net, x, theirs)
    >>> report.passed, [(row.key, row.result) for row in report.rows]
    (False, [('outputs', 'FAIL'), ('layer0/output', 'pass'), ('layer1/output', 'FAIL')])
    >>> report.localisation["first_layer"]["layer"]
    1
    """
    rtol, atol = check_tolerance(rtol, "rtol"), check_tolerance(atol, "atol")
    if forward is None:
        forward = ForwardPass(net, x, knot_tol)
    else:
        forward.match_knot_tol(knot_tol)
    x, outputs, caches, masks = forward.x, forward.outputs, forward.caches, forward.masks
    keys = sorted(answers, key=key_order)
    want_layers = any(re.fullmatch(r"layer\d+/output", k) for k in keys)
    want_objective = objective is not None and any(needs_objective(k) for k in keys)
    ref = reference if reference is not None else reference_answers(
        net, x, names=names, layers=want_layers, one_sided=True,
        objective=objective if want_objective else None, knot_tol=forward.knot_tol,
        forward=forward)
    choices = kink_choices(masks)
    own_to_file = file_names(net, names)
    gradient = ((objective_grad_out(objective, outputs), objective_extra_grads(net, objective))
                if want_objective and objective is not None else None)
    scales = KeyScales(net, x, ref, mags=forward.mags, objective_gradient=gradient,
                       own_names={v: k for k, v in own_to_file.items()})
    pinned: dict[int, np.ndarray]        # kink row -> mask of the matching choices
    lazy, pinned = {}, {}

    def spread(prefix):
        if prefix not in lazy:
            grad_out, extra = (np.ones_like(outputs), None) if prefix == "param_gradients" \
                else gradient
            lazy[prefix] = gradient_range(net, caches, grad_out, choices, own_to_file, pinned,
                                          extra)
        return lazy[prefix]

    rows, used = [], {}
    for key in keys:
        got = answers[key]
        if key not in ref:
            note = ("needs the objective (loss, targets, lam, reg, mu)" if needs_objective(key)
                    else "the reference has no value (a bound beyond float64)"
                    if key.startswith("lipschitz_bound") else unknown_key_note(key, ref))
            rows.append(failed_row(key, note))
            continue
        scale, source = scales[key]
        tol = dict(rtol=rtol, atol=atol, scale=scale, scale_from=source)
        if key == "input_jacobian":
            if "jacobian" not in lazy:
                lazy["jacobian"] = jacobian_candidates(net, x, caches, choices)
            row, used[key], found = compare_jacobian(key, ref[key], got, lazy["jacobian"],
                                                     **tol)
            pinned.update(found)      # before the gradients: key_order puts Jacobians first
        elif key.startswith(("param_gradients/", "objective_gradients/")) and choices:
            prefix, name = key.split("/", 1)
            row, used[key] = compare_gradient(key, ref[key], got, spread(prefix).get(name),
                                              kink_count=len(choices),
                                              jacobian="input_jacobian" in answers, **tol)
        else:
            row, used[key] = compare(key, ref[key], got, **tol), ref[key]
        rows.append(mark_unresolved(row))
    passed = all(r.passed for r in rows)
    clamped = forward.mags.clamped_note(net)
    report = CheckReport(rows, passed, None, rtol, atol, forward.knot_tol, x.shape[0],
                         int(kink_rows(masks, x.shape[0]).sum()), notes=[clamped] if clamped
                         else [])
    if not passed:
        report.localisation = localise(net, x, used, answers, rows, caches, own_to_file,
                                       rtol=rtol, masks=masks)
    return report


def mark_unresolved(row: Row) -> Row:
    """row, its note saying why when it passes unresolved (UNRESOLVED_NOTE)."""
    if row.passed and not row.resolved and UNRESOLVED_NOTE not in row.note:
        row.note = "; ".join(n for n in (row.note, UNRESOLVED_NOTE) if n)
    return row
