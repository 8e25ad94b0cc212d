"""Sweeps: many runs (reference.training.run) on Dask, stored one record per run.

Layout of a results directory RESULTS:
    RESULTS/records/<key>.json   the run's summary (every key of `train --json`, the ladder,
                                 the sparsification) plus `key`, `run_config`, `status`
                                 ('ok'), `model` (the model file, relative to RESULTS),
                                 `model_sha256` (its bytes' hash) and `record_sha256` (the
                                 hash of everything else, reference.training._records);
                                 a failed run: `key`, `run_config`, status 'failed', `error`,
                                 `traceback`, `record_sha256`
    RESULTS/models/<key>.npz     the trained model (reference.io format)
<key> = RunConfig.key(), a hash of the full config.  The client writes both files when a run
completes, atomically (reference.io._files: temporary file, fsync, rename; the model first, then
the record that points to it), so an interrupted sweep (SIGINT, a killed worker or client)
leaves whole records only.  Workers only compute: they need no access to RESULTS, so a
remote cluster (`scheduler=`) works unchanged.

Resuming: a config whose record is verified (reference.training._records.check_record: strict JSON,
its key, the types and ranges of its values, its content hash, its model file's hash) and
has status 'ok' and the config's run_config is not recomputed.  Every other config is: no
record; a failed record (failures are cheap to repeat when deterministic, and worth
retrying when they came from the engine); a damaged record (edited, truncated, a missing or
changed model file, values of the wrong type or range) or an unverified one (written before
records carried record_sha256): these two are reported in SweepResult.damaged with what is
wrong.  `force=True` recomputes everything.  A run that raises is recorded as failed with
its error and the sweep goes on.  Tables (load_records) skip damaged and unverified records
with a warning naming each.

Engine: Dask.  By default a distributed.LocalCluster on this machine (`workers` processes,
default the number of cores, one thread each); `scheduler='tcp://HOST:PORT'` sends the same
tasks to an existing Dask cluster; `workers=0` runs them one after the other in this
process, without Dask (debugging, and the reference of the engine tests).  Inside a worker
the spline kernels use one thread (reference.nn.set_num_threads(1)), so N workers use N
cores; the results do not depend on the engine or the number of workers (every run is seeded
from its config).  While runs are pending the client asks the scheduler for its workers
about once a second; with none for `worker_timeout` seconds in a row (default
WORKER_TIMEOUT = 20 s: every worker died or left, or the scheduler is unreachable) the
pending runs are recorded as failed ('engine: no Dask worker for ...') and the sweep returns
instead of waiting forever.
"""
from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from reference._limits import guard
from reference._numerics import check_positive
from reference.io._files import dumps_json, prepare_output_dir, write_text
from reference.io._model_file import save_model
from reference.nn import _linear_spline as spline
from reference.training._experiments import SPLINE_FIELDS, RunConfig, run
from reference.training._records import HASH_KEYS, MODELS, RECORDS, check_record, model_path, seal

if TYPE_CHECKING:                    # optional dependency: imported where a client is made
    import distributed

MAX_RUNS = 100_000            # size guard of expand: combinations (before any is built)
SWEEP_SPARSIFY = "auto"       # expand's default `sparsify` (used by spline runs only)
# Dask settings while our LocalCluster runs: no statistical profiler (it samples every worker
# every 10 ms for the dashboard) and slower monitors; idle CPU measured on this machine,
# 3.6% -> 0.9% of a core per worker and 4.0% -> 1.3% for the scheduler and client process
LOCAL_CLUSTER_CONFIG = {"distributed.worker.profile.enabled": False,
                        "distributed.admin.system-monitor.interval": "2s",
                        "distributed.admin.system-monitor.gil.enabled": False,
                        "distributed.admin.tick.interval": "500ms",
                        "distributed.worker.memory.monitor-interval": "1s"}
CONNECT_TIMEOUT = "20s"       # connecting to a --scheduler
WORKER_TIMEOUT = 20.0         # seconds with no Dask worker after which the pending runs fail
WORKER_POLL = 1.0             # seconds between two questions to the scheduler for its workers
COMPLETION_POLL = 0.1         # seconds between two looks for finished runs (as as_completed)
# the LocalCluster scheduler's HTTP server (always started): loopback, a free port (the
# default 8787 may be held by another cluster, e.g. a second sweep)
DASHBOARD_ADDRESS = "127.0.0.1:0"
TIMING_KEYS = ("seconds", "build_seconds")      # keys that differ between identical runs
# ... and the hashes: of the record (which holds the timings) and of the model file (whose
# zip entries carry the time they were written)
VARYING_KEYS = TIMING_KEYS + HASH_KEYS
GROUP_FIELDS = tuple(f.name for f in fields(RunConfig) if f.name != "seed")
TABLE_METRICS = {        # name -> the number of a record (None where it does not apply)
    "test_accuracy": lambda r: r["test_accuracy"],
    "train_accuracy": lambda r: r["train_accuracy"],
    "knots": lambda r: sum(r["knots"]) if r["knots"] else None,
    "tv2": lambda r: sum(r["tv2"]) if r["tv2"] else None,
    "bv2": lambda r: sum(r["bv2"]) if r["bv2"] else None,
    "lipschitz_bound": lambda r: r["lipschitz_bound"],
    "layerwise_2": lambda r: r["ladder"]["2"]["layerwise"]["value"],
    "lower_2": lambda r: r["ladder"]["2"]["lower"]["value"],
    "sparsify_threshold": lambda r: r.get("sparsify", {}).get("threshold"),
    "seconds": lambda r: r["seconds"],
}
SHOWN_METRICS = ("test_accuracy", "knots", "lipschitz_bound")   # format_table's columns


@dataclass
class SweepResult:
    """records: one dict per config, in the order of the configs (as stored on disk);
    done / cached / failed: runs computed successfully in this call / verified records
    reused / runs recorded as failed in this call; seconds: wall time of the call;
    damaged: (key, what was wrong) for each stored record found damaged or unverified and
    therefore recomputed (reference.training._records), in the order of the configs."""
    records: list
    done: int
    cached: int
    failed: int
    seconds: float
    damaged: list = field(default_factory=list)


# ------------------------------------------------------------------------ configs
def _choices(value) -> list:
    return list(value) if isinstance(value, (list, range)) else [value]


def expand(max_runs: float = MAX_RUNS, **lists: Any) -> list[RunConfig]:
    """The cartesian product of lists of choices, as RunConfigs.

    Parameters
    ----------
    max_runs : float, default 100000
        The size guard: more combinations than this (counted before any is built) is
        refused.
    **lists
        Each keyword a RunConfig field (or ``seeds``, the same as ``seed``) with a list of
        choices (a list or a range) or one value; hidden's choices are ints or tuples, e.g.
        ``hidden=[2, (8, 8)]``.  ``sparsify`` defaults to SWEEP_SPARSIFY, 'auto' (knots
        counted as the paper counts them, `sparsify_auto`).

    Returns
    -------
    configs : list of RunConfig
        One per distinct combination, the fields in RunConfig order, seeds varying fastest.
        Networks without splines get the spline-only fields at their defaults
        (`RunConfig.canonical`: one config per baseline, whatever the lists of lam, reg,
        ...), and duplicates are dropped (first occurrence kept).

    Raises
    ------
    ValueError
        Naming unknown fields, an empty list of choices, or both ``seed`` and ``seeds``.
    TooLarge
        When the combinations exceed `max_runs`.

    Examples
    --------
    >>> from reference.training import expand
    >>> configs = expand(activation=["spline", "relu"], lam=[1e-3, 1e-2], seeds=range(2))
    >>> len(configs)       # the relu baseline ignores lam: 2 x 2 spline + 2 relu runs
    6
    >>> [(c.activation, c.lam, c.seed) for c in configs[-2:]]
    [('relu', 0.001, 0), ('relu', 0.001, 1)]
    """
    lists.setdefault("sparsify", SWEEP_SPARSIFY)
    if "seeds" in lists:
        if "seed" in lists:
            raise ValueError("seeds: give seeds or seed, not both")
        lists["seed"] = lists.pop("seeds")
    names = [f.name for f in fields(RunConfig)]
    unknown = set(lists) - set(names)
    if unknown:
        raise ValueError(f"expand: unknown fields {sorted(unknown)}, expected names from "
                         f"{names} or seeds")
    order = [n for n in names if n in lists and n != "seed"] + (["seed"] if "seed" in lists
                                                                else [])
    choices = [_choices(lists[n]) for n in order]
    for name, values in zip(order, choices):
        if not values:
            raise ValueError(f"{name}: expected at least one choice, got none")
    guard("sweep: combinations", float(np.prod([len(c) for c in choices], dtype=float)),
          max_runs, "max_runs")
    out: dict[str, RunConfig] = {}              # key -> config: each distinct run once
    for combo in itertools.product(*choices):
        config = RunConfig(**dict(zip(order, combo))).canonical()
        out.setdefault(config.key(), config)
    return list(out.values())


# ------------------------------------------------------------------------ records
def record_path(results, key: str) -> Path:
    return Path(results) / RECORDS / f"{key}.json"


def stored_record(results, config: RunConfig) -> tuple:
    """(record, problem) for `config`'s stored record: (record, None) when it can be reused
    (verified, which implies the config's run_config, and status 'ok'); (None, problem)
    when it is damaged or unverified (reference.training._records.check_record says what); (None,
    None) when there is no record or it is a verified failed run (both: computed, nothing
    to report)."""
    path = record_path(results, config.key())
    if not path.exists():
        return None, None
    record, problem = check_record(path, results)
    if problem is not None:
        return None, problem
    return (record, None) if record["status"] == "ok" else (None, None)


def damaged_line(key: str, problem: str) -> str:
    """How the sweep command and the figures report a record they recomputed."""
    return f"recomputed {key}: its record was not used ({problem})"


def _store(results: Path, config: RunConfig, outcome: tuple) -> dict:
    """Write the model (if any) then the record (reference.training._records.seal: with its hashes),
    each atomically; returns the record as stored (parsed back from its JSON)."""
    key = config.key()
    base = {"key": key, "run_config": config.to_dict()}
    if outcome[0] == "ok":
        _, net, summary = outcome
        model = model_path(key)
        save_model(net, results / model)
        record = seal({**summary, **base, "status": "ok", "model": model}, results / model)
    else:
        _, error, trace = outcome
        record = seal({**base, "status": "failed", "error": error, "traceback": trace})
    text = dumps_json(record, indent=1)
    write_text(record_path(results, key), text, "results")
    return json.loads(text)


def read_records(results: str | os.PathLike) -> tuple[list[dict], list[tuple[Path, str]]]:
    """(the verified records of RESULTS/records sorted by key, (path, what is wrong) for each
    other file there): `load_records` without its warnings, for callers that report the
    skipped files themselves (the sweep command: one line each).  FileNotFoundError when
    RESULTS has no records directory."""
    directory = Path(results) / RECORDS
    if not directory.is_dir():
        raise FileNotFoundError(f"results: no records directory {directory}")
    records, skipped = [], []
    for path in sorted(directory.glob("*.json")):
        record, problem = check_record(path, results)
        if problem is None:
            records.append(record)
        else:
            skipped.append((path, problem))
    return records, skipped


def skipped_line(path, problem: str) -> str:
    """How a record that a table skips is reported (load_records' warning, the CLI's line)."""
    return f"results: skipped {path} ({problem})"


def load_records(results: str | os.PathLike) -> list[dict]:
    """Every verified record of a results directory.

    Parameters
    ----------
    results : str or path-like
        The results directory RESULTS of `run_sweep`.

    Returns
    -------
    records : list of dict
        The records of RESULTS/records (ok and failed), sorted by key.  A file that is not
        one (unreadable, not JSON, damaged, unverified, its model file missing or changed)
        is skipped with a warning naming it and what is wrong.

    Raises
    ------
    FileNotFoundError
        When RESULTS has no records directory.
    """
    records, skipped = read_records(results)
    for path, problem in skipped:
        warnings.warn(skipped_line(path, problem), stacklevel=2)
    return records


def without_timings(value):
    """A copy of a record without its timings and hashes (VARYING_KEYS, at any depth): what
    two runs of the same config share exactly."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in VARYING_KEYS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


# ------------------------------------------------------------------------ engine
def run_task(config: dict) -> tuple:
    """One run inside a Dask worker: ('ok', net, summary) or ('failed', error, traceback).
    The spline kernels get one thread (one core per worker)."""
    spline.set_num_threads(1)
    return _outcome(RunConfig.from_dict(config))


def _outcome(config: RunConfig) -> tuple:
    try:
        net, summary = run(config)
    except Exception as exc:                 # recorded as failed; the sweep goes on
        return ("failed", f"{type(exc).__name__}: {exc}", traceback.format_exc())
    return ("ok", net, summary)


def _check_workers(workers):
    if workers is None:
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
        raise ValueError(f"workers: expected an integer >= 0 (0: in this process, without "
                         f"Dask), got {workers!r}")
    return int(workers)


@contextlib.contextmanager
def dask_client(workers: int | None = None,
                scheduler: str | None = None) -> Iterator["distributed.Client"]:
    """A Dask client, as a context manager: closed on exit (also on SIGINT).

    Parameters
    ----------
    workers : int, optional
        Processes of the new LocalCluster, one thread each (default: the number of cores);
        ignored with `scheduler`.
    scheduler : str, optional
        The address of an existing Dask scheduler, 'tcp://HOST:PORT'; None: a new
        LocalCluster on this machine, under LOCAL_CLUSTER_CONFIG.

    Yields
    ------
    client : distributed.Client
        Connected to `scheduler`, or to the LocalCluster (closed with it).

    Raises
    ------
    OSError
        When the scheduler cannot be reached or has no worker after CONNECT_TIMEOUT.
    ValueError
        When `workers` is not an integer >= 0.
    """
    import dask
    from distributed import Client, LocalCluster
    from distributed.utils import silence_logging_cmgr

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            raise OSError(f"scheduler: cannot connect to {scheduler!r} ({exc})") from None
        # Dask's log quiet, as LocalCluster's below: a scheduler that died left an ERROR
        # with a traceback of the client's reconnection on stderr; the runs it took with it
        # are recorded as failed with the engine's error
        with silence_logging_cmgr(logging.CRITICAL), client:
            try:                          # a scheduler without workers would wait forever
                client.wait_for_workers(
                    1, timeout=CONNECT_TIMEOUT)  # type: ignore[arg-type]  # takes "20s" too
            except (OSError, TimeoutError) as exc:
                raise OSError(f"scheduler: {scheduler!r} has no worker after "
                              f"{CONNECT_TIMEOUT} ({type(exc).__name__}); start one with "
                              f"`dask worker {scheduler}`") from None
            yield client
        return
    # the cluster's own log stays quiet (shutdown heartbeats, ...): a run's error is in its
    # record, an engine error reaches the client as an exception
    with dask.config.set(LOCAL_CLUSTER_CONFIG), \
            LocalCluster(n_workers=_check_workers(workers) or 1, threads_per_worker=1,
                         processes=True, dashboard_address=DASHBOARD_ADDRESS,
                         silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        yield client


def _run_all(todo: list, workers: int, scheduler, on_outcome,
             worker_timeout: float = WORKER_TIMEOUT) -> None:
    """Run every config of `todo`, calling on_outcome(config, outcome) as each completes;
    on Dask, with no worker for `worker_timeout` seconds, every pending config gets a
    failed outcome instead (see the module docstring)."""
    if scheduler is None and workers == 0:
        for config in todo:
            on_outcome(config, _outcome(config))
        return
    from distributed import as_completed

    with dask_client(workers, scheduler) as client:
        futures = {client.submit(run_task, config.to_dict(), pure=False): config
                   for config in todo}
        completed = as_completed(futures)          # O(1) a completion, in completion order
        _ignore_abandoned_fetches(client)
        watch = _WorkerWatch(client, worker_timeout)
        while not completed.is_empty():
            progressed = False
            for future in completed.next_batch(block=False):
                outcome = _result(future, timeout=watch.poll)
                if outcome is None:                # its result was lost with its worker:
                    completed.add(future)          # pending again, under the watch
                    continue
                on_outcome(futures.pop(future), outcome)
                future.release()
                progressed = True
            if progressed:
                continue
            if watch.expired():                    # futures: the pending ones, in order
                for config in futures.values():
                    on_outcome(config, watch.outcome())
                client.cancel(list(futures))
                return
            time.sleep(COMPLETION_POLL)


def _ignore_abandoned_fetches(client) -> None:
    """On the client's event loop, asyncio's report of a task that failed unobserved is
    dropped when the failure is Dask's AllExit (a fetch of a result given up by `_result`,
    ended when the client closes); any other is reported as asyncio would."""
    from distributed.client import AllExit

    def handler(loop, context):
        if not isinstance(context.get("exception"), AllExit):
            loop.default_exception_handler(context)

    client.loop.asyncio_loop.set_exception_handler(handler)


def _result(future, timeout: float) -> tuple | None:
    """A finished future's outcome; the engine's own failure (e.g. KilledWorker, a lost
    scheduler) as a failed outcome; None when the result does not arrive within `timeout`
    seconds (a finished run whose worker died before the result was fetched: the scheduler
    recomputes it, and without a worker `future.result()` waited forever).  A future the
    scheduler already reported lost is not asked (an abandoned fetch leaves Dask a task that
    asyncio reports on stderr when it is collected)."""
    if future.status in ("lost", "pending"):
        return None
    try:
        return future.result(timeout=timeout)
    except TimeoutError:
        return None
    except Exception as exc:
        return ("failed", f"engine: {type(exc).__name__}: {exc}", traceback.format_exc())


class _WorkerWatch:
    """Whether a Dask cluster has been without any worker for `timeout` seconds in a row,
    asking the scheduler at most every `poll` = min(WORKER_POLL, timeout / 4) seconds.  A
    slow answer still counts (the question waits up to `timeout`: a busy scheduler answered
    in 0.5 s and more while the runs were submitted); a scheduler that cannot be reached, or
    does not answer within `timeout`, counts as no worker.  `clock`: seconds, monotonic
    (the tests' fake clock)."""

    def __init__(self, client, timeout: float, clock=time.monotonic):
        self.client, self.timeout, self.clock = client, timeout, clock
        self.poll = min(WORKER_POLL, timeout / 4)
        self.last_seen = self.last_asked = clock()

    def workers(self) -> int:
        try:
            return len(self.client.nthreads(callback_timeout=self.timeout))
        except (OSError, TimeoutError, RuntimeError):
            return 0

    def expired(self) -> bool:
        now = self.clock()
        if now - self.last_asked >= self.poll:
            self.last_asked = now
            if self.workers() > 0:
                self.last_seen = now
        return now - self.last_seen >= self.timeout

    def outcome(self) -> tuple:
        reason = (f"engine: no Dask worker for {self.timeout:g} s (every worker died or left, "
                  "or the scheduler is unreachable); the run did not complete")
        return ("failed", reason, "")


def run_sweep(configs: Iterable[RunConfig], results: str | os.PathLike, *,
              workers: int | None = None, scheduler: str | None = None, force: bool = False,
              progress: bool = True, worker_timeout: float = WORKER_TIMEOUT) -> SweepResult:
    """Run many configs, on Dask, storing one record and one model per run.

    Parameters
    ----------
    configs : iterable of RunConfig
        The runs (e.g. from `expand`); equal configs are run once.
    results : str or path-like
        The results directory RESULTS: RESULTS/records/KEY.json and RESULTS/models/KEY.npz,
        KEY = `RunConfig.key`, each written atomically when its run completes.
    workers : int, optional
        LocalCluster processes (default: the number of cores); 0: one run after the other
        in this process, without Dask.
    scheduler : str, optional
        The address of an existing Dask scheduler ('tcp://HOST:PORT'), which replaces the
        LocalCluster.
    force : bool, default False
        Recompute every config, even those with a verified record.
    progress : bool, default True
        A tqdm bar over the runs on stderr (when it is a terminal) with done / cached /
        failed, elapsed time and an estimate.
    worker_timeout : float, default 20.0
        Seconds without any Dask worker after which the pending runs are recorded as failed
        instead of waiting forever.

    Returns
    -------
    result : SweepResult
        ``records`` (one dict per config, in the order of `configs`), ``done``, ``cached``
        and ``failed`` (runs computed in this call, verified records reused, runs recorded
        as failed), ``seconds`` (wall time) and ``damaged`` ((key, what was wrong) for each
        stored record found damaged or unverified, and therefore recomputed).

    Raises
    ------
    TypeError
        When a config is not a RunConfig, naming its index.
    ValueError
        When `workers`, `scheduler` or `worker_timeout` is not of the documented kind.

    See Also
    --------
    load_records, table, format_table : Read and summarise the stored records.

    Notes
    -----
    A config whose record is verified (strict JSON, its key, the types and ranges of its
    values, its content hash, its model file's hash), has status 'ok' and the config's
    run_config is not recomputed.  A run that raises is recorded as failed with its error,
    and the sweep goes on.  Every run is seeded from its config, so the results do not
    depend on the engine or the number of workers.

    Examples
    --------
    >>> import tempfile
    >>> from reference.training import expand, format_table, load_records, run_sweep, table
    >>> configs = expand(hidden=[2], epochs=[1], seeds=range(2))
    >>> with tempfile.TemporaryDirectory() as results:
    ...     first = run_sweep(configs, results, workers=0, progress=False)
    ...     again = run_sweep(configs, results, workers=0, progress=False)
    ...     rows = table(load_records(results))
    >>> first.done, first.failed, again.done, again.cached
    (2, 0, 0, 2)
    >>> len(rows), rows[0]["seeds"]
    (1, 2)
    >>> format_table(rows).splitlines()[0].split()
    ['dataset', 'activation', 'seeds', 'failed', 'test_accuracy', 'knots', 'lipschitz_bound']
    """
    t0 = time.perf_counter()
    configs = list(configs)
    for i, config in enumerate(configs):
        if not isinstance(config, RunConfig):
            raise TypeError(f"configs[{i}]: expected a RunConfig, got {type(config).__name__}")
    workers = _check_workers(workers)
    worker_timeout = check_positive(worker_timeout, "worker_timeout")
    if scheduler is not None and (not isinstance(scheduler, str) or "://" not in scheduler):
        raise ValueError(f"scheduler: expected an address like tcp://HOST:PORT, got "
                         f"{scheduler!r}")
    root = Path(results)
    for sub in (RECORDS, MODELS):
        prepare_output_dir(root / sub, "results")
    unique = {config.key(): config for config in configs}
    stored, todo, damaged = {}, [], []
    for key, config in unique.items():
        record, problem = (None, None) if force else stored_record(root, config)
        if problem is not None:
            damaged.append((key, problem))
        if record is None:
            todo.append(config)
        else:
            stored[key] = record
    counts = {"done": 0, "cached": len(stored), "failed": 0}
    bar = tqdm(total=len(unique), initial=len(stored), unit="run", desc="sweep",
               disable=not progress or not sys.stderr.isatty())
    bar.set_postfix(counts)

    def on_outcome(config, outcome):
        record = _store(root, config, outcome)
        stored[config.key()] = record
        counts["done" if record["status"] == "ok" else "failed"] += 1
        bar.set_postfix(counts)
        bar.update()

    try:
        if todo:
            _run_all(todo, workers, scheduler, on_outcome, worker_timeout)
    finally:
        bar.close()
    return SweepResult([stored[c.key()] for c in configs], counts["done"], counts["cached"],
                       counts["failed"], time.perf_counter() - t0, damaged)


# ------------------------------------------------------------------------ tables
def _sort_key(row: dict) -> tuple:
    """Rows ordered by their config fields: None first, then numbers, then text."""
    def rank(value):
        if value is None:
            return (0, 0.0, "")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (1, float(value), "")
        return (2, 0.0, str(value))
    return tuple(rank(row[name]) for name in GROUP_FIELDS)


def table(records: Iterable[dict]) -> list[dict]:
    """The records grouped over seeds: mean and standard deviation of each metric.

    Parameters
    ----------
    records : iterable of dict
        Sweep records (`load_records`, ``SweepResult.records``).

    Returns
    -------
    rows : list of dict
        One row per config without the seed (GROUP_FIELDS), sorted by those fields (hidden
        compared as text): the config fields (hidden as '8,8'; the spline-only fields None
        for the baselines, which ignore them), 'seeds' (ok records), 'failed' (failed
        records) and for each metric NAME of TABLE_METRICS (test_accuracy, train_accuracy,
        knots, tv2, bv2, lipschitz_bound, layerwise_2, lower_2, sparsify_threshold,
        seconds) NAME_mean and NAME_std over the ok records (std: the sample standard
        deviation, ddof = 1; None with fewer than two values or where the metric does not
        apply).
    """
    groups: dict[tuple, dict[str, Any]] = {}
    for record in records:
        config = RunConfig.from_dict(record["run_config"]).all_fields()
        group = tuple((name, json.dumps(config[name])) for name in GROUP_FIELDS)
        groups.setdefault(group, {"config": config, "ok": [], "failed": 0})
        if record.get("status") == "ok":
            groups[group]["ok"].append(record)
        else:
            groups[group]["failed"] += 1
    rows = []
    for entry in groups.values():
        row = {name: entry["config"][name] for name in GROUP_FIELDS}
        row["hidden"] = ",".join(str(w) for w in row["hidden"])
        if row["activation"] != "spline":        # not used by a baseline: no value shown
            row.update({name: None for name in SPLINE_FIELDS})
        row["seeds"], row["failed"] = len(entry["ok"]), entry["failed"]
        for name, metric in TABLE_METRICS.items():
            values = [v for v in (metric(r) for r in entry["ok"]) if v is not None]
            row[f"{name}_mean"] = float(np.mean(values)) if values else None
            row[f"{name}_std"] = float(np.std(values, ddof=1)) if len(values) >= 2 else None
        rows.append(row)
    return sorted(rows, key=_sort_key)


def table_csv(rows) -> str:
    """The rows as CSV text (header = the keys of the first row; None as an empty cell)."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def write_csv(rows, path, arg: str = "csv") -> Path:
    """table_csv(rows) to `path`, atomically."""
    return write_text(path, table_csv(rows), arg)


def format_table(rows: Sequence[dict]) -> str:
    """The rows of `table` for a terminal.

    Parameters
    ----------
    rows : sequence of dict
        The rows of `table`.

    Returns
    -------
    text : str
        Aligned columns: the config fields that differ between rows (dataset and
        activation always), seeds, failed, and SHOWN_METRICS (test_accuracy, knots,
        lipschitz_bound) as mean +- std; 'no records' when there is no row.
    """
    if not rows:
        return "no records"
    varying = [n for n in GROUP_FIELDS
               if n in ("dataset", "activation") or len({str(r[n]) for r in rows}) > 1]
    header = varying + ["seeds", "failed"] + list(SHOWN_METRICS)

    def cell(row, name):
        if name not in SHOWN_METRICS:
            return "-" if row[name] is None else str(row[name])
        mean, std = row[f"{name}_mean"], row[f"{name}_std"]
        if mean is None:
            return "-"
        return f"{mean:.4g}" + ("" if std is None else f" +- {std:.2g}")

    lines = [header] + [[cell(r, n) for n in header] for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines)
