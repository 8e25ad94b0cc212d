"""`evaluate MODEL --inputs X.npy --output OUT.npz`: outputs, input Jacobians and parameter
gradients of a model file."""
from __future__ import annotations

import numpy as np

from reference._checks import OverflowResult
from reference.files import check_not_an_input, check_writable, load_npy, write_npz
from reference.io import load_model


def check_finite_results(arrays: dict, what: str) -> None:
    """OverflowResult naming the first array with a NaN or inf (inputs were finite)."""
    for name, value in arrays.items():
        if not np.all(np.isfinite(value)):
            raise OverflowResult(f"{what}: {name} leaves the float64 range for these finite "
                                 "inputs and parameters; nothing was written")


def run(args):
    check_writable(args.output, "--output")
    check_not_an_input(args.output, "--output", {"MODEL": args.model, "--inputs": args.inputs})
    net, names = load_model(args.model, with_names=True)
    x = load_npy(args.inputs, "--inputs")
    try:
        x = net.check_inputs(x)
    except ValueError as exc:
        raise ValueError(f"--inputs: {exc}") from None
    outputs, caches = net.forward(x, keep_cache=True)
    _, grads = net.backward(caches, np.ones_like(outputs))
    result = {"outputs": outputs, "input_jacobian": net.input_jacobian(x)}
    for file_name, own_name in names.items():
        result[f"param_gradients/{file_name}"] = grads[own_name]
    check_finite_results(result, "evaluate")
    write_npz(args.output, result, "--output")
    print(f"wrote {args.output}: outputs {outputs.shape}, input_jacobian "
          f"{result['input_jacobian'].shape}, {len(names)} parameter gradients")
    return 0



def register(sub) -> None:
    p = sub.add_parser("evaluate", help="outputs, input Jacobians and parameter gradients")
    p.add_argument("model")
    p.add_argument("--inputs", required=True, help=".npy array of shape (M, N_0)")
    p.add_argument("--output", required=True, help=".npz to write")
    p.set_defaults(func=run)
