"""Seconds per training epoch: this version against an older one and DeepSplines.

The recipe is `train`'s default (Adam lr 1e-2 for the weights and for the spline
coefficients, batch 16, weight decay 1e-4, TV2 with lambda 1e-3, K = 21 on [-2, 2],
leaky-ReLU init), and an epoch includes the evaluation of the objective and the accuracy
on the training set.  Networks: circle 2-2-1, circle 2-64-64-1 and digits 64-64-64-10
(digits needs scikit-learn; skipped, and said so, without it).

Contenders, each in its own worker process, all timed in the same run in alternating
rounds (medians reported):
- `new`: reference/ of this checkout (or --new DIR), with the default spline kernels, and
  `new[numpy]` with the NumPy kernels when the default is numba;
- `old`: reference/ of a git revision (--old, default HEAD; exported with `git archive`
  into a temporary directory) or a directory holding reference/;
- `torch-1t`, `torch-2t`: the same network and recipe in PyTorch with DeepSplines'
  DeepBSpline activations (float64, CPU, torch.set_num_threads 1 and 2,
  OMP_WAIT_POLICY=PASSIVE: with OpenMP's default busy waiting, torch's idle threads
  spin and, on a loaded machine, take the cores from everyone), when torch and
  deepsplines are installed (skipped, and said so, otherwise).  TV2 = sum |D2 c| / T
  is computed with torch.diff (DeepSplines' own totalVariation() raises on float64).

Each timing reports wall-clock and CPU seconds per epoch (CPU time counts every thread:
for torch with 2 threads it is up to twice the wall time; on a loaded machine it is the
steadier measure of our single-threaded steps).  Medians over the rounds are the result,
minima are recorded too.  Writes a JSON record (default benchmarks/out/bench_train.json).

    python benchmarks/bench_train.py [--configs circle-2-2-1,circle-2-64-64-1,digits-64-64-64-10]
                                     [--rounds 5] [--epochs 2] [--old REV_OR_DIR]
                                     [--new DIR] [--torch-threads 1,2] [--out PATH]

`--paper` times the paper's recipe instead (issue 18; DeepSplines' twoDnet, `PAPER`): the
2-4-4-1 network with splines K = 21 on [-1, 1] on circle (1500 points), batch 10, Adam lr
1e-3, lambda 1e-4 with TV2, weight decay 1e-5 (train's convention='deepsplines', first
dense layer without bias), in three workers timed in alternating rounds: `compiled`
(train with engine='compiled'), `numpy` (engine='numpy', the reference loop) and
`deepsplines` (DeepSplines' own TwoDNet built in float64, its TV2() and
l2sqsum_weights_biases(), sigmoid and BCELoss, one Adam, 1 torch thread,
OMP_WAIT_POLICY=PASSIVE), each for its own number of epochs per timing (--paper-epochs,
default 100,3,2).  The record adds the seconds of a 500-epoch run (75 000 steps) and the
goals of issue 18: compiled <= 2 s, >= 10x the NumPy loop, >= 50x DeepSplines (wall and CPU
medians; on a loaded machine the CPU ratios are the steadier ones).  Default output
benchmarks/out/bench_train_paper.json.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {                       # name -> (data set, widths)
    "circle-2-2-1": ("circle", [2, 2, 1]),
    "circle-2-64-64-1": ("circle", [2, 64, 64, 1]),
    "digits-64-64-64-10": ("digits", [64, 64, 64, 10]),
}
RECIPE = {"size": 21, "range_": 2.0, "lr": 1e-2, "batch_size": 16, "mu": 1e-4, "lam": 1e-3,
          "seed": 0}
# the paper's recipe (DeepSplines' scripts/run_twoDnet.py), trained by `train` under
# convention='deepsplines' (lambda and the weight decay are per-batch weights, the first
# dense layer has no bias)
PAPER = {"dataset": "circle", "widths": [2, 4, 4, 1], "size": 21, "range_": 1.0, "lr": 1e-3,
         "batch_size": 10, "lambda": 1e-4, "weight_decay": 1e-5, "reg": "tv2", "seed": 0,
         "epochs_of_a_run": 500}
PAPER_GOALS = {"compiled_run_seconds": 2.0, "numpy_over_compiled": 10.0,
               "deepsplines_over_compiled": 50.0}


# ------------------------------------------------------------------------- workers
def ours_worker(dataset: str, widths: list) -> callable:
    """A function running `epochs` epochs of reference.training.train on a fixed network."""
    from reference.data import _datasets as datasets
    from reference.nn._network import build_mlp
    from reference.training._train import TrainConfig, train

    data = datasets.load(dataset)
    loss = "logistic" if widths[-1] == 1 else "xent"
    net = build_mlp(widths, "spline", rng=RECIPE["seed"], size=RECIPE["size"],
                    range_=RECIPE["range_"])

    def run(epochs: int):
        train(net, data.x_train, data.y_train, TrainConfig(
            loss=loss, epochs=epochs, batch_size=RECIPE["batch_size"], lr=RECIPE["lr"],
            spline_lr=RECIPE["lr"], mu=RECIPE["mu"], lam=RECIPE["lam"], quiet=True))
    return run


def torch_worker(dataset: str, widths: list, threads: int) -> callable:
    """The same recipe in PyTorch with DeepSplines' DeepBSpline activations."""
    import torch
    from deepsplines.ds_modules import DeepBSpline

    from reference.data import _datasets as datasets

    torch.set_num_threads(threads)
    data = datasets.load(dataset)
    x = torch.from_numpy(np.asarray(data.x_train, dtype=np.float64))
    classes = widths[-1] > 1
    y = torch.from_numpy(np.asarray(data.y_train)).long() if classes else \
        torch.from_numpy(np.asarray(data.y_train, dtype=np.float64)).reshape(-1, 1)
    torch.manual_seed(RECIPE["seed"])
    layers, splines = [], []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(widths) - 2:
            splines.append(DeepBSpline("fc", n_out, size=RECIPE["size"],
                                       range_=RECIPE["range_"], init="leaky_relu"))
            layers.append(splines[-1])
    model = torch.nn.Sequential(*layers).double()
    spline_params = [s._coefficients_vect for s in splines]
    ids = {id(p) for p in spline_params}
    weight_params = [p for p in model.parameters() if id(p) not in ids]
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    optimisers = [torch.optim.Adam(weight_params, lr=RECIPE["lr"]),
                  torch.optim.Adam(spline_params, lr=RECIPE["lr"])]
    loss_fn = torch.nn.CrossEntropyLoss() if classes else torch.nn.BCEWithLogitsLoss()
    m = x.shape[0]
    steps = [float(s.grid) for s in splines]
    generator = torch.Generator().manual_seed(RECIPE["seed"])

    def penalty():
        """(mu/M) sum ||W||^2 + (lambda/M) sum TV2, TV2 = sum |D2 c| / T."""
        decay = sum(w.pow(2).sum() for w in weights)
        tv2 = sum(torch.diff(s.coefficients, n=2, dim=1).abs().sum() / t
                  for s, t in zip(splines, steps))
        return (RECIPE["mu"] * decay + RECIPE["lam"] * tv2) / m

    def run(epochs: int):
        for _ in range(epochs):
            order = torch.randperm(m, generator=generator)
            for start in range(0, m, RECIPE["batch_size"]):
                batch = order[start:start + RECIPE["batch_size"]]
                for o in optimisers:
                    o.zero_grad(set_to_none=True)
                loss = loss_fn(model(x[batch]), y[batch]) + penalty()
                loss.backward()
                for o in optimisers:
                    o.step()
            with torch.no_grad():                  # the per-epoch evaluation
                out = model(x)
                loss_fn(out, y).item()
                (out.argmax(1) == y).double().mean().item() if classes else \
                    ((out > 0).double() == y).double().mean().item()
    return run


def paper_ours_worker(engine: str) -> callable:
    """The paper's recipe in reference.training.train with the given engine."""
    from reference.data import _datasets as datasets
    from reference.nn._network import build_mlp
    from reference.training._train import TrainConfig, train

    data = datasets.load(PAPER["dataset"])
    net = build_mlp(PAPER["widths"], "spline", rng=PAPER["seed"], size=PAPER["size"],
                    range_=PAPER["range_"], first_bias=False)

    def run(epochs: int):
        train(net, data.x_train, data.y_train, TrainConfig(
            loss="logistic", epochs=epochs, batch_size=PAPER["batch_size"], lr=PAPER["lr"],
            spline_lr=PAPER["lr"], lam=PAPER["lambda"], reg=PAPER["reg"],
            mu=PAPER["weight_decay"], convention="deepsplines", quiet=True, engine=engine))
    return run


def paper_deepsplines_worker() -> callable:
    """The paper's recipe in DeepSplines: its TwoDNet (built in float64, so that its TV2
    works), BCELoss on the sigmoid output, (weight_decay / 2) l2sqsum_weights_biases() +
    lambda TV2() per batch, one Adam over every parameter (scripts/run_twoDnet.py with
    Manager's order of operations), and the accuracy on the training set every epoch."""
    import torch
    from deepsplines.networks import TwoDNet

    from reference.data import _datasets as datasets

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(PAPER["seed"])
    data = datasets.load(PAPER["dataset"])
    x = torch.from_numpy(np.asarray(data.x_train, dtype=np.float64))
    y = torch.from_numpy(np.asarray(data.y_train, dtype=np.float64))
    net = TwoDNet(num_hidden_layers=2, num_hidden_neurons=PAPER["widths"][1],
                  activation_type="deepBspline", num_classes=2, spline_size=PAPER["size"],
                  spline_range=PAPER["range_"], spline_init="leaky_relu",
                  save_memory=False, knot_threshold=0.0)
    optimiser = torch.optim.Adam(net.parameters(), lr=PAPER["lr"])
    criterion = torch.nn.BCELoss()
    m = x.shape[0]

    def run(epochs: int):
        for _ in range(epochs):
            order = torch.randperm(m)
            for start in range(0, m, PAPER["batch_size"]):
                batch = order[start:start + PAPER["batch_size"]]
                optimiser.zero_grad()
                criterion(net(x[batch]), y[batch]).backward()
                (PAPER["weight_decay"] / 2 * net.l2sqsum_weights_biases()
                 + PAPER["lambda"] * net.TV2()).backward()
                optimiser.step()
            with torch.no_grad():                          # the per-epoch evaluation
                p = net(x)
                criterion(p, y).item()
                ((p > 0.5).double() == y).double().mean().item()
    return run


def worker_main(args) -> None:
    """Serve `run EPOCHS` lines on stdin with the seconds they took (wall clock, and CPU
    time of the process), until EOF."""
    if args.kind == "paper-deepsplines":
        run = paper_deepsplines_worker()
    elif args.kind.startswith("paper-"):
        run = paper_ours_worker(args.kind.removeprefix("paper-"))
    elif args.kind == "ours":
        run = ours_worker(args.dataset, args.widths)
    else:
        run = torch_worker(args.dataset, args.widths, args.threads)
    run(1)                                                        # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        epochs = int(line.split()[1])
        t0, c0 = time.perf_counter(), time.process_time()
        run(epochs)
        print(time.perf_counter() - t0, time.process_time() - c0, flush=True)


# ------------------------------------------------------------------------- parent
def environment(root: Path, extra=None) -> dict:
    """This process's environment with `root` first on PYTHONPATH (its reference/ is
    imported, not the installed one) and the `extra` variables."""
    paths = [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths), **(extra or {}))


class Worker:
    """A worker process for one contender and one network (`config` None: the paper's)."""

    def __init__(self, name, kind, root, config, env_extra=None, threads=1):
        dataset, widths = CONFIGS[config] if config else (PAPER["dataset"], PAPER["widths"])
        env = environment(root, env_extra)
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--dataset",
             dataset, "--widths", ",".join(map(str, widths)), "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=root, env=env)
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            raise RuntimeError(f"{name}: worker failed: {self.process.stderr.read()[-2000:]}")

    def time(self, epochs: int) -> tuple[float, float]:
        """(wall, CPU) seconds per epoch."""
        self.process.stdin.write(f"run {epochs}\n")
        self.process.stdin.flush()
        wall, cpu = map(float, self.process.stdout.readline().split())
        return wall / epochs, cpu / epochs

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def export_revision(source: str) -> Path:
    """A directory holding reference/ of a git revision, or `source` if it is a directory."""
    if Path(source).is_dir():
        return Path(source).resolve()
    data = subprocess.run(["git", "archive", "--format=tar", source, "reference"], cwd=ROOT,
                          check=True, capture_output=True).stdout
    target = Path(tempfile.mkdtemp(prefix="bench_train_old_"))
    with tarfile.open(fileobj=BytesIO(data)) as archive:
        archive.extractall(target)
    return target


def available(module: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {module}"],
                          capture_output=True).returncode == 0


def default_backend(root: Path) -> str:
    """The spline kernels' backend a checkout chooses by default.

    The layout of issue 16 moved them from ``reference.spline_kernels`` to ``reference.nn``;
    an older revision has the former.
    """
    code = ("try:\n    from reference.nn import backend\n"
            "except ImportError:\n    from reference.spline_kernels import backend\n"
            "print(backend().name)")
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                            text=True, env=environment(root))
    return result.stdout.strip() or "numpy (no spline kernels)"


def contenders(args, new_root: Path, old_root: Path) -> list:
    """(name, kind, root, extra environment, threads) of every contender that can run."""
    out = [("new", "ours", new_root, {}, 1), ("old", "ours", old_root, {}, 1)]
    if default_backend(new_root) == "numba":
        out.append(("new[numpy]", "ours", new_root, {"DSREF_SPLINE_BACKEND": "numpy"}, 1))
    if available("torch") and available("deepsplines"):
        for t in args.torch_threads:
            out.append((f"torch-{t}t", "torch", new_root, {"OMP_WAIT_POLICY": "PASSIVE"}, t))
    return out


def finish(record: dict, out) -> None:
    """Record the load average after the timings, print it and write the JSON record."""
    record["load_average_after"] = os.getloadavg()
    print(f"load average before {record['load_average_before'][0]:.2f}, after "
          f"{record['load_average_after'][0]:.2f}")
    from _record import write_record  # here: a worker imports the revision it times
    write_record(record, out)
    print(f"JSON record: {out}")


def paper_main(args) -> None:
    """--paper: seconds per epoch of the paper's recipe, compiled, NumPy and DeepSplines."""
    root = Path(args.new).resolve()
    epochs = dict(zip(("compiled", "numpy", "deepsplines"),
                      (int(e) for e in args.paper_epochs.split(","))))
    entries = [("compiled", "paper-compiled", {}), ("numpy", "paper-numpy", {})]
    notes = []
    if available("torch") and available("deepsplines"):
        entries.append(("deepsplines", "paper-deepsplines", {"OMP_WAIT_POLICY": "PASSIVE"}))
    else:
        notes.append("torch or deepsplines not installed: DeepSplines not measured")
    record = {"benchmark": "seconds per training epoch, the paper's recipe (issue 18)",
              "recipe": PAPER, "goals": PAPER_GOALS, "new": str(root), "rounds": args.rounds,
              "epochs_per_timing": {name: epochs[name] for name, *_ in entries},
              "load_average_before": os.getloadavg(), "notes": notes,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "numpy": np.__version__}}
    workers = [Worker(name, kind, root, None, env, 1) for name, kind, env in entries]
    times = {w.name: [] for w in workers}
    for _ in range(args.rounds):                         # alternating rounds
        for w in workers:
            times[w.name].append(w.time(epochs[w.name]))
    for w in workers:
        w.close()
    record["all_wall_cpu"] = times
    run_epochs = PAPER["epochs_of_a_run"]
    for i, clock in enumerate(("wall", "cpu")):
        median = {name: float(np.median([t[i] for t in ts])) for name, ts in times.items()}
        record[f"{clock}_median"] = median
        record[f"{clock}_min"] = {name: float(np.min([t[i] for t in ts]))
                                  for name, ts in times.items()}
        record[f"{clock}_run_seconds"] = {name: run_epochs * v for name, v in median.items()}
        ratios = {f"{name} / compiled": v / median["compiled"] for name, v in median.items()
                  if name != "compiled"}
        record[f"{clock}_ratios"] = ratios
        goals = {"compiled_run_seconds": run_epochs * median["compiled"]
                 <= PAPER_GOALS["compiled_run_seconds"],
                 "numpy_over_compiled": ratios["numpy / compiled"]
                 >= PAPER_GOALS["numpy_over_compiled"]}
        if "deepsplines / compiled" in ratios:
            goals["deepsplines_over_compiled"] = (ratios["deepsplines / compiled"]
                                                  >= PAPER_GOALS["deepsplines_over_compiled"])
        record[f"{clock}_goals_met"] = goals
        print(f"paper recipe ({clock} s/epoch, median of {args.rounds}): " + ", ".join(
            f"{name} {v:.5f} ({run_epochs * v:.2f} s / {run_epochs} epochs)"
            for name, v in median.items()))
        print("    " + ", ".join(f"{name} = {r:.1f}x" for name, r in ratios.items())
              + "; goals met: " + ", ".join(f"{k} {v}" for k, v in goals.items()))
    finish(record, args.out or ROOT / "benchmarks" / "out" / "bench_train_paper.json")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timing")
    parser.add_argument("--old", default="HEAD", help="git revision or directory")
    parser.add_argument("--new", default=str(ROOT), help="directory holding reference/")
    parser.add_argument("--torch-threads", default="1,2")
    parser.add_argument("--out", default=None, help="JSON record (default "
                        "benchmarks/out/bench_train.json, with --paper bench_train_paper.json)")
    parser.add_argument("--paper", action="store_true",
                        help="the paper's recipe: compiled, NumPy and DeepSplines")
    parser.add_argument("--paper-epochs", default="100,3,2",
                        help="--paper: epochs per timing of compiled, numpy, deepsplines")
    parser.add_argument("--worker", choices=["ours", "torch", "paper-compiled", "paper-numpy",
                                             "paper-deepsplines"], help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--widths", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.kind, args.widths = args.worker, [int(w) for w in args.widths.split(",")]
        return worker_main(args)
    if args.paper:
        return paper_main(args)
    args.torch_threads = [int(t) for t in args.torch_threads.split(",")]
    new_root, old_root = Path(args.new).resolve(), export_revision(args.old)
    entries = contenders(args, new_root, old_root)
    notes = []
    if not any(kind == "torch" for _, kind, *_ in entries):
        notes.append("torch or deepsplines not installed: DeepSplines not measured")
    record = {"benchmark": "seconds per training epoch", "recipe": RECIPE,
              "old": args.old, "new": str(new_root), "rounds": args.rounds,
              "epochs_per_timing": args.epochs, "backend": default_backend(new_root),
              "load_average_before": os.getloadavg(), "configs": {}, "notes": notes,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "numpy": np.__version__}}
    for config in args.configs.split(","):
        if CONFIGS[config][0] == "digits" and not available("sklearn"):
            notes.append(f"{config}: scikit-learn not installed, skipped")
            print(notes[-1])
            continue
        workers = [Worker(name, kind, root, config, env, threads)
                   for name, kind, root, env, threads in entries]
        times = {w.name: [] for w in workers}
        for _ in range(args.rounds):                     # alternating rounds
            for w in workers:
                times[w.name].append(w.time(args.epochs))
        for w in workers:
            w.close()
        result = {"all_wall_cpu": times}
        for i, clock in enumerate(("wall", "cpu")):
            median = {name: float(np.median([t[i] for t in ts])) for name, ts in times.items()}
            best = {name: float(np.min([t[i] for t in ts])) for name, ts in times.items()}
            result[f"{clock}_median"], result[f"{clock}_min"] = median, best
            result[f"{clock}_ratios"] = {f"{name} / new": median[name] / median["new"]
                                         for name in median if name != "new"}
            print(f"{config} ({clock} s/epoch, median; min): " + ", ".join(
                f"{name} {median[name]:.4f}; {best[name]:.4f}" for name in median))
            print("    " + ", ".join(f"{name} = {r:.2f}x"
                                     for name, r in result[f"{clock}_ratios"].items()))
        record["configs"][config] = result
    finish(record, args.out or ROOT / "benchmarks" / "out" / "bench_train.json")


if __name__ == "__main__":
    main()
