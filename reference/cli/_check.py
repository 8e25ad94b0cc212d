"""`check MODEL --inputs X.npy --answers THEIRS.npz`: compare another implementation's answers
with the reference's (reference.oracle.check), one row per quantity, and say where the first
disagreement is.  Exit status 0 when every quantity passes, 1 otherwise, 2 for bad input."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from reference.cli._args import nonneg_float
from reference.cli._evaluate import (
    KNOT_TOL_HELP,
    add_objective_arguments,
    inputs_named,
    load_inputs,
    objective_from_args,
)
from reference.io._files import (
    check_not_an_input,
    check_writable,
    describe,
    dumps_json,
    load_npz,
    write_text,
)
from reference.io._model_file import load_model
from reference.oracle import _check as oracle
from reference.oracle._one_sided import ForwardPass

NAME = "check"
HELP = "compare another implementation's answers with ours"
DESCRIPTION = ("Compare the arrays of --answers (any subset of the keys evaluate writes, plus "
               "layer{i}/output, tv2/{i}, bv2/{i}, lipschitz_bound/p1|p2|pinf, objective...) with "
               "the reference's, entrywise |theirs - ours| <= ATOL S + RTOL |ours|, S the key's "
               "scale: max(max |ours| over the key, its magnitude |W| |y| + |b|).  Rows with a "
               "pre-activation on a kink pass if they match either one-sided derivative; a row "
               "that a zero answer would pass too is 'unresolved'.  Exit status 0: no row fails; "
               "1: some fail; 2: bad input.")


def load_answers(path) -> dict:
    """The arrays of --answers (an .npz); another kind of file, a model file included, is
    refused with what it is."""
    kind = describe(path) if Path(path).is_file() else None
    if kind is not None and kind != "an .npz archive" and not _empty_zip(path):
        raise ValueError(f"--answers: {path} is {kind}; expected an .npz of answer arrays "
                         "(np.savez(path, outputs=..., input_jacobian=..., ...))")
    answers = load_npz(path, "--answers")
    if {"format", "layers"} <= set(answers):
        raise ValueError(f"--answers: {path} is a model file (entries format and layers); "
                         "expected an .npz of answer arrays (`evaluate` writes the "
                         "reference's)")
    return answers


def all_answers(net, x, names=None, objective=None, knot_tol=oracle.KNOT_TOL,
                forward=None) -> dict:
    """Every answer key the reference can give for these inputs (the objective keys only
    with `objective`, an oracle.Objective): what oracle.check takes as `reference`
    (forward: one_sided.ForwardPass of net at x, when the caller has it)."""
    return oracle.reference_answers(net, x, names=names, layers=True, one_sided=True,
                                    objective=objective, knot_tol=knot_tol, forward=forward)


def expected_shapes(net, x, names=None, objective=None, knot_tol=oracle.KNOT_TOL) -> dict:
    """key -> shape of every answer key the reference can give for these inputs."""
    return {k: np.shape(v) for k, v in all_answers(net, x, names, objective, knot_tol).items()}


def validate_answers(answers: dict, shapes: dict, arg: str = "answers") -> None:
    """ValueError naming `arg` for: no key, an unknown key, a non-real array, a wrong shape,
    NaN or inf (what `check` would otherwise report as failed rows)."""
    if not answers:
        raise ValueError(f"{arg}: holds no array; expected some of the keys outputs, "
                         "input_jacobian, param_gradients/NAME, layer{i}/output, tv2/{i}, "
                         "bv2/{i}, lipschitz_bound/p1|p2|pinf, objective...")
    for key in sorted(answers, key=oracle.key_order):
        value = np.asarray(answers[key])
        if key not in shapes:
            if oracle.needs_objective(key):
                raise ValueError(f"{arg}: key {key!r} needs the objective: give --loss and "
                                 "--targets (and --lam, --reg, --mu)")
            raise ValueError(f"{arg}: key {key!r}: {oracle.unknown_key_note(key, shapes)}; the "
                             f"keys for this model are {sorted(shapes, key=oracle.key_order)}")
        if value.dtype.kind not in "biuf":
            raise ValueError(f"{arg}: key {key!r} is not a real array (dtype {value.dtype})")
        if value.shape != shapes[key]:
            raise ValueError(f"{arg}: key {key!r} has shape {value.shape}, expected "
                             f"{shapes[key]}")
        if not np.all(np.isfinite(value)):
            where = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
            raise ValueError(f"{arg}: key {key!r} holds NaN or inf (first at {where})")


def _empty_zip(path) -> bool:
    """np.savez with no arrays writes an empty zip: an .npz without entries."""
    try:
        with zipfile.ZipFile(path) as zf:
            return not zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def run(args):
    if args.json is not None:
        check_writable(args.json, "--json")
        inputs = {"MODEL": args.model, "--inputs": args.inputs, "--answers": args.answers}
        if args.targets is not None:
            inputs["--targets"] = args.targets
        check_not_an_input(args.json, "--json", inputs)
    net, names = load_model(args.model, with_names=True)
    x = load_inputs(net, args.inputs)
    answers = load_answers(args.answers)
    knot_tol = oracle.check_knot_tol(net, args.knot_tol, "--knot-tol")
    with np.errstate(all="ignore"), inputs_named():     # huge values: no warnings
        forward = ForwardPass(net, x, knot_tol, "--knot-tol")    # one forward pass for all
        forward.masks                              # --knot-tol against these inputs, first
        return _check(args, net, names, forward, answers)


def _check(args, net, names, forward, answers) -> int:
    x, knot_tol = forward.x, forward.knot_tol
    objective = objective_from_args(args, forward.outputs)
    if objective is not None and not any(oracle.needs_objective(k) for k in answers):
        raise ValueError(f"--loss: {args.answers} holds no objective key (objective, "
                         "objective/data, objective/weight_decay, objective/regulariser, "
                         "objective_gradients/NAME) to compare")
    ref = all_answers(net, x, names, objective, knot_tol, forward)
    validate_answers(answers, {k: np.shape(v) for k, v in ref.items()}, "--answers")
    report = oracle.check(net, x, answers, names=names, rtol=args.rtol, atol=args.atol,
                          knot_tol=knot_tol, objective=objective, reference=ref,
                          forward=forward)
    print(f"check of {args.answers} against {args.model} on {args.inputs} "
          f"({x.shape[0]} samples):")
    print(report.format())
    if args.json is not None:
        data = report.to_json()
        data.update(model=args.model, inputs=args.inputs, answers=args.answers)
        write_text(args.json, dumps_json(data, indent=1) + "\n", "--json")
        print(f"report written to {args.json}")
    return 0 if report.passed else 1


def add_arguments(p) -> None:
    """The arguments of `check`."""
    p.add_argument("model")
    p.add_argument("--inputs", required=True, help=".npy array of shape (M, N_0)")
    p.add_argument("--answers", required=True, help=".npz of the other implementation's arrays")
    p.add_argument("--rtol", type=nonneg_float, default=oracle.DEFAULT_RTOL,
                   help=f"tolerance relative to each entry (default {oracle.DEFAULT_RTOL:g})")
    p.add_argument("--atol", type=nonneg_float, default=oracle.DEFAULT_ATOL,
                   help="absolute tolerance as a fraction of each key's scale S = max(max "
                        "|ours| over the key, its magnitude) (the report prints ATOL S per "
                        f"key; default {oracle.DEFAULT_ATOL:g})")
    p.add_argument("--knot-tol", type=nonneg_float, default=oracle.KNOT_TOL,
                   help=KNOT_TOL_HELP)
    p.add_argument("--json", default=None, metavar="OUT",
                   help="also write the report as JSON here")
    add_objective_arguments(p)
