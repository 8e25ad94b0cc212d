"""`evaluate MODEL --inputs X.npy --output OUT.npz`: outputs, input Jacobians and parameter
gradients of a model file; with flags, everything the oracle compares (reference.oracle):
layer outputs, one-sided Jacobians at kinks, regulariser values and bounds, and the
training objective with its terms and gradient."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from reference.cli._args import nonneg_float
from reference.exceptions import OverflowResult
from reference.io._files import check_not_an_input, check_writable, load_npy, write_npz
from reference.io._model_file import load_model
from reference.nn._losses import LOSSES
from reference.oracle import _check as oracle
from reference.oracle._one_sided import ForwardPass
from reference.training._train import REGULARISERS

NAME = "evaluate"
HELP = "outputs, input Jacobians and parameter gradients"
DESCRIPTION = None

OBJECTIVE_DEFAULTS = oracle.Objective._field_defaults      # lam 0, reg tv2, mu 0
KNOT_TOL_HELP = ("z is on a kink tau when |z - tau| <= KNOT_TOL max(|z|_mag, |tau|), |z|_mag "
                 "= |W| |y| + |b| propagated from |x| (or within a uniform spline's knot "
                 f"snap) (default {oracle.KNOT_TOL:g})")


def check_finite_results(arrays: dict, what: str) -> None:
    """OverflowResult naming the first array with a NaN or inf (inputs were finite)."""
    for name, value in arrays.items():
        if not np.all(np.isfinite(value)):
            raise OverflowResult(f"{what}: {name} leaves the float64 range for these finite "
                                 "inputs and parameters (and --lam, --mu); nothing was "
                                 "written")


@contextmanager
def inputs_named():
    """An overflow of the forward pass ('x: layer 0 (spline) overflows ...') names --inputs."""
    try:
        yield
    except OverflowResult as exc:
        text = str(exc)
        raise OverflowResult("--inputs: " + text.removeprefix("x: ")) from None


def load_inputs(net, path) -> np.ndarray:
    """--inputs as (M, N_0) (M = 0 allowed: empty answers), errors naming --inputs."""
    x = load_npy(path, "--inputs")
    try:
        return net.check_inputs(x)
    except ValueError as exc:
        raise ValueError(f"--inputs: {exc}") from None


def add_objective_arguments(p) -> None:
    """--loss --targets --lam --reg --mu (the training objective of reference.train)."""
    p.add_argument("--loss", choices=LOSSES, default=None,
                   help="also the objective J = sum_m E + mu sum ||W||_F^2 + lam sum R")
    p.add_argument("--targets", default=None,
                   help=".npy targets y, (M,) or (M, N_L) (with --loss)")
    p.add_argument("--lam", type=nonneg_float, default=None,
                   help=f"lambda on sum R (default {OBJECTIVE_DEFAULTS['lam']:g})")
    p.add_argument("--reg", choices=REGULARISERS, default=None,
                   help=f"R (default {OBJECTIVE_DEFAULTS['reg']})")
    p.add_argument("--mu", type=nonneg_float, default=None,
                   help=f"mu on the dense weights (default {OBJECTIVE_DEFAULTS['mu']:g})")


def objective_from_args(args, outputs) -> oracle.Objective | None:
    """The Objective of the flags, None without --loss; errors name the flag (the targets
    are checked against the outputs (M, N_L) of the model at --inputs)."""
    extra = [f"--{k}" for k in ("targets", "lam", "reg", "mu") if getattr(args, k) is not None]
    if args.loss is None:
        if extra:
            raise ValueError(f"--loss: {', '.join(extra)} given without --loss; the "
                             f"objective needs --loss {{{','.join(LOSSES)}}} and --targets")
        return None
    if args.targets is None:
        raise ValueError("--targets: the objective (--loss) needs targets, a .npy of shape "
                         "(M,) or (M, N_L)")
    y = load_npy(args.targets, "--targets")
    values = {k: OBJECTIVE_DEFAULTS[k] if getattr(args, k) is None else getattr(args, k)
              for k in ("lam", "reg", "mu")}
    objective = oracle.Objective(args.loss, y, **values)
    try:
        oracle.objective_grad_out(objective, outputs)
    except ValueError as exc:
        raise ValueError(f"--targets: {exc}") from None
    return objective


def run(args):
    check_writable(args.output, "--output")
    inputs = {"MODEL": args.model, "--inputs": args.inputs}
    if args.targets is not None:
        inputs["--targets"] = args.targets
    check_not_an_input(args.output, "--output", inputs)
    net, names = load_model(args.model, with_names=True)
    x = load_inputs(net, args.inputs)
    knot_tol = oracle.check_knot_tol(net, args.knot_tol, "--knot-tol")
    with np.errstate(all="ignore"), inputs_named():    # beyond float64: refused, once
        forward = ForwardPass(net, x, knot_tol, "--knot-tol")    # one forward pass
        if args.one_sided:
            forward.masks                          # --knot-tol against these inputs, first
        objective = objective_from_args(args, forward.outputs)
        result = oracle.reference_answers(net, x, names=names, layers=args.layers,
                                          one_sided=args.one_sided, objective=objective,
                                          knot_tol=knot_tol, info=args.info, forward=forward)
    check_finite_results(result, "evaluate")
    write_npz(args.output, result, "--output")
    extras = [what for flag, what in ((args.layers, "layer outputs"),
                                      (args.one_sided, f"one-sided Jacobians "
                                       f"({int(result.get('on_kink', np.zeros(0)).sum())} rows "
                                       "on a kink)"),
                                      (args.info, "regularisers and bounds"),
                                      (objective is not None,
                                       f"objective {float(result.get('objective', 0)):.10g} "
                                       "with its terms and gradient")) if flag]
    print(f"wrote {args.output}: outputs {result['outputs'].shape}, input_jacobian "
          f"{result['input_jacobian'].shape}, {len(names)} parameter gradients"
          + "".join(f", {e}" for e in extras))
    clamped = forward.mags.clamped_note(net) if args.one_sided else None
    if clamped:
        print(f"note: {clamped}")
    return 0


def add_arguments(p) -> None:
    """The arguments of `evaluate`."""
    p.add_argument("model")
    p.add_argument("--inputs", required=True, help=".npy array of shape (M, N_0)")
    p.add_argument("--output", required=True, help=".npz to write")
    p.add_argument("--layers", action="store_true",
                   help="also every layer's output: layer{i}/output (M, N_i)")
    p.add_argument("--one-sided", action="store_true",
                   help="also input_jacobian_left / _right (every pre-activation on a kink "
                        "takes the piece left / right of it) and on_kink (M,)")
    p.add_argument("--knot-tol", type=nonneg_float, default=oracle.KNOT_TOL,
                   help=KNOT_TOL_HELP)
    p.add_argument("--info", action="store_true",
                   help="also tv2/{i}, bv2/{i} per spline layer and the Theorem-1 bounds "
                        "lipschitz_bound/p1|p2|pinf (BV2 form), lipschitz_bound_slopes/p*")
    add_objective_arguments(p)
