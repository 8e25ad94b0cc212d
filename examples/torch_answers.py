"""Answer the conformance suite with the published `deepsplines` package (PyTorch, float64).

    python -m reference conformance export suite
    python examples/torch_answers.py suite answers
    python -m reference conformance run suite --answers answers

An outside implementation's view of the suite: it reads only manifest.json and the files it
names, with NumPy (the formats are in the README), rebuilds each model from torch.nn.Linear,
deepsplines' DeepBSpline ('fc' mode), nn.ReLU, nn.LeakyReLU and nn.PReLU, and writes
ANSWERS/NAME.npz with the case's answer keys:
    outputs                 the forward pass (M, N_L)
    input_jacobian          autograd, one backward per output (M, N_L, N_0)
    param_gradients/NAME    autograd of the sum of all outputs, for every parameter array
    layer{i}/output         the output of the i-th layer of the model file
    tv2/{i}, bv2/{i}        DeepBSpline.totalVariation() and + fZerofOneAbs() per neuron
    objective, objective/data, objective/weight_decay, objective/regulariser,
    objective_gradients/NAME
                            the training objective written out in torch (sums over samples,
                            (1/2) in the squared loss, mu on the Linear weights only, lam on
                            the package's TV2 / BV2) and its autograd gradient

Every tensor is float64: torch's default dtype is set to float64 before any DeepBSpline is
built, so its grid tensor holds the model file's step exactly.  (Built under the default
float32, DeepBSpline keeps its step in float32 even after .double(): 0.1 becomes
0.10000000149011612 and the outputs move by ~3e-8; the suite's case deepsplines_step_f32
uses that very step, written in the model file.)

Cases the package cannot express are skipped, with the reason printed (and left out of
ANSWERS, so `conformance run` reports them as failed for lack of answers: the skipped list
says which failures are expected):  a spline layer with an even K or a grid that is not
DeepSplines' symmetric one (x_min = -(K // 2) * step); knot-form layers; the Lipschitz
kinds (the package's lipschitz_bound() is only the p = 1 BV2 form without the factor N_L,
and it has no layer-wise or exact values); the convex solves (no solver in the package).
Needs: pip install torch && pip install --no-deps deepsplines.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import numpy as np

MANIFEST_FORMAT = "deepspline-reference-conformance/2"
KINDS = ("evaluate", "regulariser", "objective")      # the kinds this adapter answers


class Unsupported(Exception):
    """A case the deepsplines package cannot express (the message says why)."""


def read_model(path: Path) -> tuple[list, dict]:
    """The layer list (JSON) and the arrays of a model file, read with NumPy only."""
    with np.load(path, allow_pickle=False) as data:
        layers = json.loads(str(data["layers"]))
        arrays = {name: data[name] for name in data.files if name not in ("format", "layers")}
    return layers, arrays


def spline_module(entry: dict, coefficients: np.ndarray):
    """A DeepBSpline ('fc') holding the model file's spline layer exactly."""
    import torch
    from deepsplines.ds_modules import DeepBSpline

    neurons, size = coefficients.shape
    step, x_min = float(entry["step"]), float(entry["x_min"])
    if size % 2 == 0:
        raise Unsupported(f"DeepBSpline needs an odd number of coefficients, K = {size}")
    if x_min != -(size // 2) * step:
        raise Unsupported(f"DeepBSpline's grid is symmetric about 0 (x_min = -(K // 2) * step "
                          f"= {-(size // 2) * step!r}), this one starts at {x_min!r}")
    module = DeepBSpline("fc", neurons, size=size, range_=None, grid=step)
    with torch.no_grad():
        module.coefficients_vect.copy_(torch.from_numpy(coefficients.reshape(-1)))
    return module


def build(layers: list, arrays: dict) -> tuple[list, dict]:
    """torch modules in the model file's order, and NAME -> (tensor, shape) for every
    parameter array of the file."""
    import torch

    modules, params = [], {}
    for i, entry in enumerate(layers):
        kind = entry["type"]
        if kind == "dense":
            weight = arrays[entry["weight"]]
            module = torch.nn.Linear(weight.shape[1], weight.shape[0],
                                     bias=entry["bias"] is not None)
            with torch.no_grad():
                module.weight.copy_(torch.from_numpy(weight))
                params[entry["weight"]] = (module.weight, weight.shape)
                if entry["bias"] is not None:
                    module.bias.copy_(torch.from_numpy(arrays[entry["bias"]]))
                    params[entry["bias"]] = (module.bias, arrays[entry["bias"]].shape)
        elif kind == "spline":
            coefficients = arrays[entry["coefficients"]]
            module = spline_module(entry, coefficients)
            params[entry["coefficients"]] = (module.coefficients_vect, coefficients.shape)
        elif kind == "relu":
            module = torch.nn.ReLU()
        elif kind == "leaky_relu":
            module = torch.nn.LeakyReLU(float(entry["slope"]))
        elif kind == "prelu":
            slope = arrays[entry["slope"]]
            module = torch.nn.PReLU(len(slope))
            with torch.no_grad():
                module.weight.copy_(torch.from_numpy(slope))
            params[entry["slope"]] = (module.weight, slope.shape)
        elif kind == "identity":
            module = torch.nn.Identity()
        else:
            raise Unsupported(f"layer {i} is a {kind} layer, which DeepSplines does not have")
        modules.append(module)
    return modules, params


def evaluate(modules: list, params: dict, x: np.ndarray) -> dict:
    """outputs, input_jacobian, param_gradients/NAME and layer{i}/output."""
    import torch

    xt = torch.from_numpy(x).requires_grad_(True)
    y, layer_outputs = xt, []
    for module in modules:
        y = module(y)
        layer_outputs.append(y)
    answers = {"outputs": y.detach().numpy().copy()}
    answers.update({f"layer{i}/output": out.detach().numpy().copy()
                    for i, out in enumerate(layer_outputs)})
    jac = np.empty((x.shape[0], y.shape[1], x.shape[1]))
    for i in range(y.shape[1]):               # rows are independent: d sum_m y[m, i] / d x
        (grad,) = torch.autograd.grad(y[:, i].sum(), xt, retain_graph=True)
        jac[:, i, :] = grad.numpy()
    answers["input_jacobian"] = jac
    tensors = [t for t, _ in params.values()]
    grads = torch.autograd.grad(y.sum(), tensors, allow_unused=True) if tensors else []
    for (name, (_, shape)), grad in zip(params.items(), grads):
        answers[f"param_gradients/{name}"] = (np.zeros(shape) if grad is None
                                              else grad.numpy().reshape(shape).copy())
    return answers


def regularisers(modules: list) -> dict:
    """tv2/{i} = DeepBSpline.totalVariation(), bv2/{i} = that + fZerofOneAbs(), per neuron."""
    from deepsplines.ds_modules import DeepBSpline

    out = {}
    for i, module in enumerate(modules):
        if isinstance(module, DeepBSpline):
            tv2 = module.totalVariation()
            out[f"tv2/{i}"] = tv2.detach().numpy().copy()
            out[f"bv2/{i}"] = (tv2 + module.fZerofOneAbs()).detach().numpy().copy()
    return out


def data_term(loss: str, f, y):
    """sum_m E(y_m, f_m): squared (1/2)||f - y||^2, logistic log(1 + e^f) - y f, xent
    logsumexp(f) - f_y; sums over the samples, not means."""
    import torch
    import torch.nn.functional as F

    y = torch.from_numpy(y)
    if loss == "squared":
        return 0.5 * ((f - y.reshape(f.shape)) ** 2).sum()
    if loss == "logistic":
        return F.binary_cross_entropy_with_logits(f[:, 0], y, reduction="sum")
    return F.cross_entropy(f, y.long(), reduction="sum")


def objective(modules: list, params: dict, x: np.ndarray, y: np.ndarray, p: dict) -> dict:
    """J = data + mu sum ||W||_F^2 (Linear weights, not biases) + lam sum R(sigma), R the
    package's totalVariation() (TV2) or that + fZerofOneAbs() (BV2); and dJ/dNAME."""
    import torch
    from deepsplines.ds_modules import DeepBSpline

    f = torch.from_numpy(x)
    for module in modules:
        f = module(f)
    data = data_term(p["loss"], f, y)
    decay = p["mu"] * sum((m.weight ** 2).sum() for m in modules
                          if isinstance(m, torch.nn.Linear))
    reg = sum((m.totalVariation() + (m.fZerofOneAbs() if p["reg"] == "bv2" else 0)).sum()
              for m in modules if isinstance(m, DeepBSpline))
    reg = p["lam"] * reg
    total = data + decay + reg
    answers = {"objective": total, "objective/data": data, "objective/weight_decay": decay,
               "objective/regulariser": reg}
    answers = {k: np.float64(torch.as_tensor(v).item()) for k, v in answers.items()}
    grads = torch.autograd.grad(total, [t for t, _ in params.values()], allow_unused=True)
    for (name, (_, shape)), grad in zip(params.items(), grads):
        answers[f"objective_gradients/{name}"] = (np.zeros(shape) if grad is None
                                                  else grad.numpy().reshape(shape).copy())
    return answers


def case_file(suite: Path, relative) -> Path:
    """A file the manifest names, which must stay inside the suite's directory (no absolute
    path, no '..', no symbolic link out of it)."""
    path = suite / str(relative)
    if (Path(str(relative)).is_absolute() or ".." in Path(str(relative)).parts
            or not path.resolve().is_relative_to(suite.resolve())):
        raise Unsupported(f"the manifest names {str(relative)[:60]!r}, outside the suite")
    return path


def answer_case(suite: Path, case: dict) -> dict:
    if case["kind"] not in KINDS:
        reason = {"lipschitz": "the package computes only the p = 1 BV2 bound, without the "
                               "factor N_L, and no layer-wise bound",
                  "lipschitz_exact": "the package has no exact Lipschitz computation",
                  "solve": "the package has no convex solver for the activations"}
        raise Unsupported(reason.get(case["kind"], f"kind {case['kind']!r} is not answered"))
    layers, arrays = read_model(case_file(suite, case["model"]))
    modules, params = build(layers, arrays)
    x = np.load(case_file(suite, case["inputs"]), allow_pickle=False).astype(np.float64)
    if case["kind"] == "objective":
        with np.load(case_file(suite, case["parameters"]["data"]), allow_pickle=False) as data:
            answers = objective(modules, params, x, data["y"], case["parameters"])
    else:
        answers = evaluate(modules, params, x) if case["kind"] == "evaluate" else {}
        answers.update(regularisers(modules))
    missing = [k for k in case["answer_keys"] if k not in answers]
    if missing:
        raise Unsupported(f"no answer for {missing}")
    return {k: answers[k] for k in case["answer_keys"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", type=Path, help="a directory written by `conformance export`")
    parser.add_argument("answers", type=Path, help="directory for the NAME.npz answers")
    args = parser.parse_args(argv)
    try:
        import torch
        importlib.import_module("deepsplines.ds_modules")
    except ImportError as exc:
        print(f"error: {exc}; install with: pip install torch && pip install --no-deps "
              "deepsplines", file=sys.stderr)
        return 2
    try:
        manifest = json.loads((args.suite / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        print(f"error: suite: {args.suite} is not a conformance suite (its manifest.json: "
              f"{exc}); write one with `python -m reference conformance export DIR`",
              file=sys.stderr)
        return 2
    if args.answers.exists() and not args.answers.is_dir():
        print(f"error: answers: {args.answers} is a file, expected a directory for the "
              "NAME.npz answers", file=sys.stderr)
        return 2
    if args.answers.resolve() == args.suite.resolve():
        print("error: answers: the answers directory should not be the suite itself",
              file=sys.stderr)
        return 2
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        print(f"error: {args.suite}: format {found!r}, this adapter reads "
              f"{MANIFEST_FORMAT!r}", file=sys.stderr)
        return 2
    args.answers.mkdir(parents=True, exist_ok=True)
    answered, skipped = [], []
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)         # DeepBSpline's grid tensor in float64
    try:
        for case in manifest["cases"]:
            try:
                answers = answer_case(args.suite, case)
            except Unsupported as exc:
                skipped.append((case["name"], str(exc)))
                continue
            np.savez(args.answers / f"{case['name']}.npz", **answers)
            answered.append(case["name"])
    finally:
        torch.set_default_dtype(default)
    print(f"answered {len(answered)} of {len(manifest['cases'])} cases with deepsplines "
          f"(torch {torch.__version__}, float64) in {args.answers}")
    for name, reason in skipped:
        print(f"  skipped {name}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
