"""`import-deepsplines CKPT.pth --out MODEL.npz [--layers ORDER] [--json]`: a DeepSplines
(PyTorch) checkpoint as a model file (reference.import_deepsplines)."""
from __future__ import annotations

import argparse

from reference._format import exact, plain
from reference.cli._args import positive_float
from reference.io import _deepsplines as ds
from reference.io._files import check_not_an_input, check_writable, dumps_json
from reference.io._model_file import save_model

NAME = "import-deepsplines"
HELP = "a DeepSplines (PyTorch) checkpoint as a model file"
DESCRIPTION = ("Read a checkpoint of DeepSplines' training loop (dict with model_state and "
               "params: the layer order is the forward of params['net']) or a torch.save'd "
               f"state dict, and write it as a model file.  Needs PyTorch: {ds.TORCH_INSTALL}.")


def layer_order(text):
    """argparse type: the syntax of --layers (names are checked against the file later)."""
    try:
        return ds.parse_layer_order(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--layers: ")) from None


def _layer_line(layer) -> str:
    shapes = ", ".join(f"{k} {plain(tuple(v))}" for k, v in layer.shapes.items())
    text = f"  layer {layer.index}: {layer.type:12s} <- {layer.source} ({layer.module}" \
           + (f": {shapes})" if shapes else ")")
    if layer.grid:
        g = layer.grid
        text += (f"\n      K = {g['size']}, step {exact(g['step'])} ({g['dtype']} grid), "
                 f"x_min {exact(g['x_min'])}")
    return text


def report(result, args) -> dict:
    """The JSON report (also what the text lines are printed from)."""
    return {"checkpoint": str(args.checkpoint), "out": str(args.out), "source": result.source,
            "net": result.net_name, "loaded_with": result.loaded_with,
            "order": result.order, "order_from": result.order_from,
            "layers": [vars(layer) for layer in result.layers],
            "output": "logit" if result.link == "logistic" else "identity",
            "link": result.link,
            "extrapolation_gap": result.extrapolation_gap,
            "check": vars(result.check), "notes": result.notes,
            "written": result.check.passed}


def run(args):
    check_writable(args.out, "--out")
    check_not_an_input(args.out, "--out", {"CKPT": args.checkpoint})
    result = ds.import_deepsplines(args.checkpoint, args.layers, args.spline_range,
                                   args.spline_grid, args.grid_dtype, args.unsafe_pickle)
    if result.check.passed:
        save_model(result.network, args.out, arg="--out")
    info = report(result, args)
    if args.json:
        print(dumps_json(info))
        return 0 if result.check.passed else 1
    net = f", params['net'] = {result.net_name!r}" if result.net_name else ""
    print(f"{args.checkpoint}: DeepSplines {result.source}{net}, read with "
          f"{result.loaded_with}")
    print(f"layer order (from {result.order_from}): {', '.join(result.order)}")
    for layer in result.layers:
        print(_layer_line(layer))
    if result.link == "logistic":
        print("output: the logit; the checkpoint's network ends in a sigmoid, stated as the "
              "logistic link (probability = 1 / (1 + exp(-output))), not stored as a layer")
    for note in result.notes:
        print(f"note: {note}")
    if result.extrapolation_gap > 0:
        print(f"note: beyond its grid ends DeepSplines' own forward jumps by up to "
              f"{result.extrapolation_gap:.3g} (its extrapolation offset is rounded to float32); "
              "the model file holds the continuous spline")
    check = result.check
    print(f"check: activations against DeepSplines' formulas re-evaluated in NumPy at "
          f"{check.points} points per neuron: max |difference| {check.max_error:.3g} "
          f"(tolerance {check.tolerance:.3g}) {'pass' if check.passed else 'FAIL'}")
    if not check.passed:
        print("nothing was written")
        return 1
    print(f"model written to {args.out}")
    return 0


def add_arguments(p) -> None:
    """The arguments of `import-deepsplines`."""
    p.add_argument("checkpoint", metavar="CKPT", help="torch.save file (.pth)")
    p.add_argument("--out", required=True, help="model file to write (.npz)")
    p.add_argument("--layers", type=layer_order, default=None, metavar="ORDER",
                   help="comma-separated layer order: state-dict module names and relu, "
                        "leaky_relu[:SLOPE], identity, sigmoid (last: the logistic link), "
                        "e.g. fc1,activations.0,fc2,activations.1,fc_last,sigmoid")
    grid = p.add_mutually_exclusive_group()
    grid.add_argument("--spline-range", type=positive_float, default=None, metavar="R",
                      help="state dict: DeepSplines' range_ of its activations (the step is "
                           "ds_utils.spline_grid_from_range(K, R))")
    grid.add_argument("--spline-grid", type=positive_float, default=None, metavar="T",
                      help="state dict: DeepSplines' grid argument (the step) instead")
    p.add_argument("--grid-dtype", choices=ds.GRID_DTYPES, default=ds.GRID_DTYPES[0],
                   help="torch's default dtype when the activations were built (their grid "
                        "is kept in it; default float32, torch's default)")
    p.add_argument("--unsafe-pickle", action="store_true",
                   help="load with torch.load(weights_only=False) a file holding Python "
                        "objects beyond tensors (runs code named in the file, arbitrary code "
                        "execution: trusted files only)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
