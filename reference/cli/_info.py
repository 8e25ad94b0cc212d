"""`info MODEL [--json]`: the layers of a model file, its splines' statistics (TV2, BV2,
Lipschitz constant and knots per neuron) and its Theorem-1 bounds for p = 1, 2, inf."""
from __future__ import annotations

from reference.exceptions import OverflowResult
from reference.io._files import dumps_json
from reference.io._model_file import load_model
from reference.lipschitz import _bounds as lipschitz
from reference.training._experiments import spline_summary

NAME = "info"
HELP = "layers, spline statistics and Theorem-1 bounds"
DESCRIPTION = None


def run(args) -> int:
    net = load_model(args.model)
    info = {"layers": [], "splines": spline_summary(net), "theorem1": {}, "theorem1_bv2": {}}
    for i, layer in enumerate(net.layers):
        info["layers"].append({"index": i, "type": layer.kind,
                               **{k: list(v.shape) for k, v in layer.params.items()}})
    for p in ("1", "2", "inf"):
        for key in ("theorem1", "theorem1_bv2"):
            try:
                info[key][p] = getattr(lipschitz, key)(net, p)
            except OverflowResult:                   # beyond float64: no number (null)
                info[key][p] = None
    if args.json:
        print(dumps_json(info))
        return 0
    print(f"model {args.model}: input width {net.n_in}, output width {net.n_out}")
    for row in info["layers"]:
        shapes = ", ".join(f"{k} {tuple(v)}" for k, v in row.items() if k not in ("index", "type"))
        print(f"  layer {row['index']}: {row['type']}" + (f" ({shapes})" if shapes else ""))
    for row in info["splines"]:
        print(f"  spline layer {row['layer']} (knots: |a_k| > tolerance, per neuron):")
        print("    neuron        TV2        BV2        Lip  knots  tolerance")
        for n, vals in enumerate(zip(row["tv2"], row["bv2"], row["lipschitz"], row["knots"],
                                     row["knot_tolerance"])):
            print(f"    {n:6d} {vals[0]:10.4g} {vals[1]:10.4g} {vals[2]:10.4g} {vals[3]:6d}"
                  f"  {vals[4]:.1e}")
    print("  Theorem-1 Lipschitz bounds       p=1         p=2       p=inf")
    for key, label in (("theorem1", "exact activation slopes"), ("theorem1_bv2", "BV2 norms")):
        vals = info[key]
        print(f"    {label:26s} " + "  ".join(f"{vals[p]:10.4g}" if vals[p] is not None
                                            else f"{'overflow':>10s}" for p in ("1", "2", "inf")))
    return 0


def add_arguments(p) -> None:
    """The arguments of `info`."""
    p.add_argument("model")
    p.add_argument("--json", action="store_true")
