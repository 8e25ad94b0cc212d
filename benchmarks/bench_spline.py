"""Throughput of the spline activation, forward + backward, float64.

Measures reference.spline.LinearSpline against DeepSplines' DeepBSpline (PyTorch CPU,
float64, 2 threads) in the same run, when torch and deepsplines are installed; without
them it measures ours alone.  Timings of the two alternate in rounds
of 5 calls each, and the medians are reported.  Writes a JSON record (default benchmarks/out/bench_spline.json).

    python benchmarks/bench_spline.py [--rows 16384] [--channels 64] [--size 51]
                                      [--repeats 30] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from reference.spline import LinearSpline


def time_call(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def make_ours(x, grad_out, size, range_):
    spline = LinearSpline.initialise("leaky_relu", x.shape[1], size, range_)

    def step():                 # the training hot path: inputs validated once upstream
        spline.forward_unchecked(x)
        spline.backward_unchecked(x, grad_out)
    return step


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
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "bench_spline.json"))
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    x = rng.normal(scale=2.0, size=(args.rows, args.channels))
    grad_out = rng.normal(size=x.shape)
    ours = make_ours(x, grad_out, args.size, args.range_)
    theirs, theirs_info = make_deepsplines(x, grad_out, args.size, args.range_, args.threads)

    for _ in range(3):                        # warm-up
        ours()
        if theirs:
            theirs()
    # Rounds of `batch` calls of each, alternating, so both see the same machine load while
    # the idle-spinning of torch's OpenMP threads does not spill into our timings.
    t_ours, t_theirs = [], []
    batch = 5
    for _ in range(max(1, args.repeats // batch)):
        t_ours += [time_call(ours) for _ in range(batch)]
        if theirs:
            t_theirs += [time_call(theirs) for _ in range(batch)]

    elements = args.rows * args.channels
    record = {
        "benchmark": "spline forward+backward, float64",
        "shape": [args.rows, args.channels], "size": args.size, "repeats": args.repeats,
        "ours_median_s": float(np.median(t_ours)),
        "ours_melements_per_s": elements / np.median(t_ours) / 1e6,
        "deepsplines": theirs_info,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__},
    }
    print(f"ours        : {1e3 * np.median(t_ours):8.2f} ms  "
          f"({record['ours_melements_per_s']:.0f} M elements/s)")
    if theirs:
        record["deepsplines_median_s"] = float(np.median(t_theirs))
        record["ratio"] = float(np.median(t_theirs) / np.median(t_ours))
        print(f"DeepSplines : {1e3 * np.median(t_theirs):8.2f} ms  ({theirs_info})")
        print(f"ratio (throughput ours / DeepSplines): {record['ratio']:.2f}x  (goal >= 3x)")
    else:
        print(f"DeepSplines : {theirs_info}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"JSON record: {args.out}")


if __name__ == "__main__":
    main()
