"""Throughput of the spline activation, forward + backward, float64.

Measures reference.spline.LinearSpline against DeepSplines' DeepBSpline (PyTorch CPU,
float64, 2 threads) in the same run, when torch and deepsplines are installed; without
them it measures ours alone.  Also in the same run: the streaming bandwidth of the machine
(np.add over the same block, the DESIGN bar is >= 30% of it) and, with --baseline, the
kernel of another version of reference/spline.py (a git revision such as HEAD, or a file),
so that a change of the kernel is measured against its predecessor under the same load.
Timings alternate in rounds of 5 calls each, and the medians are reported.  Writes a JSON
record (default benchmarks/out/bench_spline.json).

    python benchmarks/bench_spline.py [--rows 16384] [--channels 64] [--size 51]
                                      [--repeats 30] [--baseline REV_OR_FILE] [--out PATH]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from reference.spline import LinearSpline


def time_call(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def make_ours(x, grad_out, size, range_, spline_class=LinearSpline):
    spline = spline_class.initialise("leaky_relu", x.shape[1], size, range_)

    def step():                 # the training hot path: inputs validated once upstream
        spline.forward_unchecked(x)
        spline.backward_unchecked(x, grad_out)
    return step


def load_baseline(source: str):
    """LinearSpline of another reference/spline.py: a file, or a git revision of this one."""
    path = Path(source)
    if not path.is_file():
        text = subprocess.run(["git", "show", f"{source}:reference/spline.py"], check=True,
                              capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent).stdout
        path = Path(tempfile.mkdtemp()) / "baseline_spline.py"
        path.write_text(text)
    spec = importlib.util.spec_from_file_location("baseline_spline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_spline"] = module                       # dataclasses need it
    spec.loader.exec_module(module)
    return module.LinearSpline


def make_bandwidth(x):
    """np.add over the block: the streaming bandwidth (read 2, write 1)."""
    out = np.empty_like(x)
    return lambda: np.add(x, x, out=out)


def make_deepsplines(x, grad_out, size, range_, threads):
    try:
        import torch
        from deepsplines.ds_modules import DeepBSpline
    except ImportError as exc:
        return None, f"not measured: {exc}"
    torch.set_num_threads(threads)
    act = DeepBSpline("fc", x.shape[1], size=size, range_=range_, init="leaky_relu").double()
    xt = torch.from_numpy(x).requires_grad_()
    gt = torch.from_numpy(grad_out)

    def step():
        xt.grad = None
        act.zero_grad(set_to_none=True)
        act(xt).backward(gt)
    return step, f"torch {torch.__version__}, {threads} threads"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16384)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=51)
    parser.add_argument("--range", type=float, default=4.0, dest="range_")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baseline", default=None,
                        help="git revision or file of reference/spline.py to compare with")
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "bench_spline.json"))
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    x = rng.normal(scale=2.0, size=(args.rows, args.channels))
    grad_out = rng.normal(size=x.shape)
    ours = make_ours(x, grad_out, args.size, args.range_)
    theirs, theirs_info = make_deepsplines(x, grad_out, args.size, args.range_, args.threads)
    contenders = {"ours": ours, "np.add": make_bandwidth(x)}
    if args.baseline:
        contenders["baseline"] = make_ours(x, grad_out, args.size, args.range_,
                                           load_baseline(args.baseline))
    if theirs:
        contenders["deepsplines"] = theirs

    for _ in range(3):                        # warm-up
        for fn in contenders.values():
            fn()
    # Rounds of `batch` calls of each, alternating, so all see the same machine load while
    # the idle-spinning of torch's OpenMP threads does not spill into our timings.
    times = {name: [] for name in contenders}
    batch = 5
    for _ in range(max(1, args.repeats // batch)):
        for name, fn in contenders.items():
            times[name] += [time_call(fn) for _ in range(batch)]
    median = {name: float(np.median(t)) for name, t in times.items()}

    elements = args.rows * args.channels
    rate = {name: elements / t / 1e6 for name, t in median.items()}
    record = {
        "benchmark": "spline forward+backward, float64",
        "shape": [args.rows, args.channels], "size": args.size, "repeats": args.repeats,
        "ours_median_s": median["ours"],
        "ours_melements_per_s": rate["ours"],
        "np_add_melements_per_s": rate["np.add"],
        "fraction_of_bandwidth": rate["ours"] / rate["np.add"],
        "deepsplines": theirs_info,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__},
    }
    print(f"ours        : {1e3 * median['ours']:8.2f} ms  ({rate['ours']:.0f} M elements/s)")
    print(f"np.add      : {1e3 * median['np.add']:8.2f} ms  ({rate['np.add']:.0f} M elements/s);"
          f" ours / np.add = {record['fraction_of_bandwidth']:.3f}  (goal >= 0.3)")
    if args.baseline:
        record["baseline"] = args.baseline
        record["baseline_melements_per_s"] = rate["baseline"]
        record["ratio_to_baseline"] = median["baseline"] / median["ours"]
        print(f"baseline    : {1e3 * median['baseline']:8.2f} ms  ({rate['baseline']:.0f} M "
              f"elements/s, {args.baseline}); ours / baseline = "
              f"{record['ratio_to_baseline']:.3f}")
    if theirs:
        record["deepsplines_median_s"] = median["deepsplines"]
        record["ratio"] = median["deepsplines"] / median["ours"]
        print(f"DeepSplines : {1e3 * median['deepsplines']:8.2f} ms  ({theirs_info})")
        print(f"ratio (throughput ours / DeepSplines): {record['ratio']:.2f}x  (goal >= 4x)")
    else:
        print(f"DeepSplines : {theirs_info}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"JSON record: {args.out}")


if __name__ == "__main__":
    main()
