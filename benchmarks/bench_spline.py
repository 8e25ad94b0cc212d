"""Throughput of the spline activation, forward + backward, float64.

Measures reference.nn.LinearSpline through its checked API (y, pieces = s.forward(x);
s.backward(x, g, pieces)) with the default kernels and with each backend (numpy, and numba
when installed), against DeepSplines' DeepBSpline (PyTorch CPU, float64, --threads threads,
OMP_WAIT_POLICY=PASSIVE unless set) in the same run, when torch and deepsplines are
installed; without them it measures ours alone.  Also in the same run: the streaming
bandwidth of the machine (np.add over the same block, read 2 arrays, write 1; the DESIGN
bar is >= 30% of its element rate) and, with --baseline, another version of
reference/nn/_linear_spline.py through its checked API (a git revision such as HEAD, or a
file), so that a change of the spline class is measured against its predecessor under the same load
(the baseline imports the kernels of this tree, reference/nn/_kernels.py: a change of
the kernels themselves is compared by timing both checkouts in alternation).
Timings alternate in rounds of 5 calls each, and the medians are reported, of the wall
time and of the CPU time (all threads: np.add uses one, ours --threads; CPU time is the
steadier measure when other processes load the machine).  The first
call of the numba kernels in a fresh process (importing numba, loading the compiled
kernels from numba's cache) is timed in a subprocess.  Writes a JSON record (default
benchmarks/out/bench_spline.json).

    python benchmarks/bench_spline.py [--rows 16384] [--channels 64] [--size 51]
                                      [--repeats 30] [--threads 2]
                                      [--baseline REV_OR_FILE] [--out PATH]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _record import write_record  # benchmarks/_record.py (run as a script)

from reference.nn import _kernels as spline_kernels
from reference.nn._linear_spline import LinearSpline


def time_call(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of one call; CPU time counts every thread of this process."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def make_ours(x, grad_out, size, range_, backend=None, buffers=True):
    """Forward and backward through the checked API, the backward reusing the pieces; with
    `buffers` the outputs go to arrays given once (out=, grad_x_out=; as np.add's out=),
    else each call allocates its outputs (a fresh 8 MB array is mapped page by page)."""
    spline = LinearSpline.initialise("leaky_relu", x.shape[1], size, range_)
    out, grad_x = (np.empty_like(x), np.empty_like(x)) if buffers else (None, None)

    def step():
        if backend is not None:
            spline_kernels.set_backend(backend)
        _, pieces = spline.forward(x, out=out)
        spline.backward(x, grad_out, pieces, grad_x_out=grad_x)
    return step


def make_baseline(x, grad_out, size, range_, spline_class):
    """Another version's checked API (forward, then backward from x)."""
    spline = spline_class.initialise("leaky_relu", x.shape[1], size, range_)

    def step():
        spline(x)
        spline.backward(x, grad_out)
    return step


def first_call_seconds(backend: str) -> float | None:
    """Seconds of the first forward + backward in a fresh process that has imported the
    package (numba: importing it and loading its cached kernels); None if it fails."""
    code = ("import time, numpy as np\n"
            "from reference import network, train, spline_kernels\n"
            "from reference.nn import LinearSpline\n"
            f"spline_kernels.set_backend({backend!r})\n"
            "s = LinearSpline.initialise('relu', 2, 5, 1.0); x = np.zeros((3, 2))\n"
            "t = time.perf_counter(); y, p = s.forward(x); s.backward(x, x, p)\n"
            "print(time.perf_counter() - t)\n")
    runs = []
    for _ in range(2):                       # the first may compile (fills numba's cache)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if result.returncode != 0:
            return None
        runs.append(float(result.stdout))
    return runs[-1]


SPLINE_MODULE = "reference/nn/_linear_spline.py"


def load_baseline(source: str):
    """LinearSpline of another reference/nn/_linear_spline.py: a file, or a git revision of
    this one (from 0.2.0 on: the module imports the installed package's other modules, so
    revisions before the layout change cannot be loaded this way)."""
    path = Path(source)
    if not path.is_file():
        result = subprocess.run(["git", "show", f"{source}:{SPLINE_MODULE}"],
                                capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent.parent)
        if result.returncode != 0:
            raise SystemExit(f"error: --baseline: {source} has no {SPLINE_MODULE} (a revision "
                             "from 0.2.0 on, or a file, is needed)")
        text = result.stdout
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
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # read when torch starts OpenMP
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
    return step, (f"torch {torch.__version__}, {threads} threads, "
                  f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16384)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=51)
    parser.add_argument("--range", type=float, default=4.0, dest="range_")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baseline", default=None,
                        help="git revision or file of reference/nn/_linear_spline.py to "
                             "compare with")
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "bench_spline.json"))
    args = parser.parse_args(argv)

    spline_kernels.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.normal(scale=2.0, size=(args.rows, args.channels))
    grad_out = rng.normal(size=x.shape)
    default_backend = spline_kernels.backend().name
    contenders = {"ours": make_ours(x, grad_out, args.size, args.range_, default_backend)}
    for name in spline_kernels.BACKENDS:
        try:
            spline_kernels.set_backend(name)
        except ImportError:
            continue
        contenders[f"ours[{name}]"] = make_ours(x, grad_out, args.size, args.range_, name)
    spline_kernels.set_backend(default_backend)
    contenders["ours (allocating)"] = make_ours(x, grad_out, args.size, args.range_,
                                                default_backend, buffers=False)
    contenders["np.add"] = make_bandwidth(x)
    if args.baseline:
        contenders["baseline"] = make_baseline(x, grad_out, args.size, args.range_,
                                               load_baseline(args.baseline))
    theirs, theirs_info = make_deepsplines(x, grad_out, args.size, args.range_, args.threads)
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
    median = {name: float(np.median([t[0] for t in ts])) for name, ts in times.items()}
    cpu = {name: float(np.median([t[1] for t in ts])) for name, ts in times.items()}
    spline_kernels.set_backend(default_backend)

    elements = args.rows * args.channels
    rate = {name: elements / t / 1e6 for name, t in median.items()}
    load = os.getloadavg()
    record = {
        "benchmark": "spline forward+backward, float64, checked API with pieces",
        "shape": [args.rows, args.channels], "size": args.size, "repeats": args.repeats,
        "threads": args.threads, "backend": default_backend,
        "median_s": median, "melements_per_s": rate,
        "ours_median_s": median["ours"],
        "ours_melements_per_s": rate["ours"],
        "np_add_melements_per_s": rate["np.add"],
        "fraction_of_bandwidth": rate["ours"] / rate["np.add"],
        "fraction_of_bandwidth_allocating": rate["ours (allocating)"] / rate["np.add"],
        "fraction_of_bandwidth_by_backend": {
            name: rate[name] / rate["np.add"] for name in rate if name.startswith("ours[")},
        "cpu_median_s": cpu,
        "fraction_of_bandwidth_per_core": {       # CPU time: steadier on a loaded machine
            name: cpu["np.add"] / cpu[name] for name in cpu if name.startswith("ours")},
        "first_call_s": {name: first_call_seconds(name) for name in spline_kernels.BACKENDS},
        "deepsplines": theirs_info,
        "load_average": load,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__},
    }
    for name in contenders:
        if name.startswith("ours"):
            label = name if name != "ours" else f"ours ({default_backend}, out=)"
            print(f"{label:19s}: {1e3 * median[name]:8.2f} ms  ({rate[name]:.0f} M elements/s,"
                  f" {rate[name] / rate['np.add']:.3f} of np.add; CPU {1e3 * cpu[name]:.2f} ms,"
                  f" per core {cpu['np.add'] / cpu[name]:.3f} of np.add)")
    print(f"np.add             : {1e3 * median['np.add']:8.2f} ms  "
          f"({rate['np.add']:.0f} M elements/s);"
          f" ours / np.add = {record['fraction_of_bandwidth']:.3f}  (goal >= 0.3)")
    if args.baseline:
        record["baseline"] = args.baseline
        record["baseline_melements_per_s"] = rate["baseline"]
        record["ratio_to_baseline"] = median["baseline"] / median["ours"]
        print(f"baseline           : {1e3 * median['baseline']:8.2f} ms  ({rate['baseline']:.0f} M "
              f"elements/s, {args.baseline}); ours / baseline = "
              f"{record['ratio_to_baseline']:.2f}x")
    if theirs:
        record["deepsplines_median_s"] = median["deepsplines"]
        record["ratio"] = median["deepsplines"] / median["ours"]
        record["ratio_by_backend"] = {name: median["deepsplines"] / median[name]
                                      for name in median if name.startswith("ours[")}
        print(f"DeepSplines        : {1e3 * median['deepsplines']:8.2f} ms  ({theirs_info})")
        print(f"ratio (throughput ours / DeepSplines): {record['ratio']:.2f}x  (goal >= 4x)"
              + "".join(f"; {name} {value:.2f}x"
                        for name, value in record["ratio_by_backend"].items()))
    else:
        print(f"DeepSplines        : {theirs_info}")
    print("first forward + backward in a fresh process: " + ", ".join(
        f"{name} {'n/a' if t is None else f'{t:.2f} s'}"
        for name, t in record["first_call_s"].items()))
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    write_record(record, args.out)
    print(f"JSON record: {args.out}")


if __name__ == "__main__":
    main()
