"""The sweep runner on Dask (issue 8, item 3): records, engines, resume, tables."""
import contextlib
import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from reference.io._model_file import load_model
from reference.training import _sweep as sweep
from reference.training._experiments import RunConfig
from reference.training._sweep import expand, load_records, run_sweep, table, without_timings

TINY = {"dataset": ["circle"], "epochs": [2], "size": [9]}
BAD = RunConfig(dataset="mnist", data_path="/nonexistent/mnist", epochs=1)
STARTUP_TIMEOUT = 90          # seconds for a hand-started scheduler and worker to be ready


def tiny_configs():
    return expand(activation=["spline", "relu"], lam=[1e-3, 1.0], seeds=[0, 1], **TINY) + [BAD]


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The reference: the tiny sweep run in this process, without Dask."""
    root = tmp_path_factory.mktemp("serial")
    return root, run_sweep(tiny_configs(), root, workers=0, progress=False)


def same_records(a, b, root_a, root_b):
    assert [r["key"] for r in a] == [r["key"] for r in b]
    for ra, rb in zip(a, b):
        assert without_timings(ra) == without_timings(rb), ra["key"]
        if ra["status"] == "ok":
            na, nb = load_model(root_a / ra["model"]), load_model(root_b / rb["model"])
            for (ka, va), (kb, vb) in zip(na.named_params(), nb.named_params()):
                assert ka == kb and np.array_equal(va, vb)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_expand_is_the_product_with_one_config_per_baseline():
    configs = expand(dataset=["circle", "s_shape"], activation=["spline", "relu"],
                     hidden=[2, (8, 8)], reg=["tv2", "bv2"], lam=[1e-3, 1e-1, 1.0],
                     seeds=range(3), epochs=5)
    spline = [c for c in configs if c.activation == "spline"]
    relu = [c for c in configs if c.activation == "relu"]
    assert len(spline) == 2 * 2 * 2 * 3 * 3 and len(relu) == 2 * 2 * 3
    assert len({c.key() for c in configs}) == len(configs)
    assert [c.seed for c in configs[:3]] == [0, 1, 2]          # seeds vary fastest
    assert all(c.lam == RunConfig().lam and c.reg == "tv2" for c in relu)
    assert all(c.sparsify == "auto" for c in spline) and all(c.sparsify is None for c in relu)
    assert {c.hidden for c in configs} == {(2,), (8, 8)} and all(c.epochs == 5 for c in configs)
    with pytest.raises(ValueError, match="unknown fields .*'width'"):
        expand(width=[2])
    with pytest.raises(ValueError, match="^lam: expected at least one choice"):
        expand(lam=[])
    with pytest.raises(ValueError, match="^seeds: give seeds or seed"):
        expand(seed=[0], seeds=[1])


def test_records_layout_and_a_failing_run(serial):
    root, result = serial
    configs = tiny_configs()
    assert (result.done, result.cached, result.failed) == (len(configs) - 1, 0, 1)
    assert [r["key"] for r in result.records] == [c.key() for c in configs]
    for config, record in zip(configs, result.records):
        on_disk = json.loads((root / "records" / f"{config.key()}.json").read_text())
        assert on_disk == record and record["run_config"] == config.to_dict()
        if record["status"] == "ok":
            assert record["model"] == f"models/{config.key()}.npz"
            assert (root / record["model"]).is_file()
            assert "test_accuracy" in record and record["config"]["seed"] == config.seed
    failed = result.records[-1]
    assert failed["status"] == "failed" and failed["error"].startswith("FileNotFoundError: "
                                                                       "data_path:")
    assert not list(root.rglob("*.tmp"))
    assert sorted(r["key"] for r in load_records(root)) == sorted(c.key() for c in configs)


def test_local_cluster_with_two_workers_gives_the_serial_records(serial, tmp_path):
    root, reference = serial
    result = run_sweep(tiny_configs(), tmp_path, workers=2, progress=False)
    assert (result.done, result.failed) == (reference.done, reference.failed)
    same_records(reference.records, result.records, root, tmp_path)


@contextlib.contextmanager
def dask_processes(*commands):
    """Start the commands; stop them (terminate, then kill) however the block ends."""
    procs = []
    try:
        for command in commands:
            procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        yield procs
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_hand_started_dask_scheduler_and_worker(serial, tmp_path):
    """`dask scheduler` and `dask worker` as processes on 127.0.0.1, the sweep sent there with
    scheduler=: the same records as the serial run; both processes stopped at the end."""
    from distributed import Client

    root, reference = serial
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
              "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"]
    with dask_processes(dask + ["--host", "127.0.0.1", "--port", str(port), "--no-dashboard",
                                "--dashboard-address", "127.0.0.1:0"],
                        worker) as procs:
        with Client(address, timeout=STARTUP_TIMEOUT) as client:
            client.wait_for_workers(1, timeout=STARTUP_TIMEOUT)
        result = run_sweep(tiny_configs(), tmp_path, scheduler=address, progress=False)
        assert all(p.poll() is None for p in procs)           # still running until the end
    assert all(p.returncode is not None for p in procs)
    same_records(reference.records, result.records, root, tmp_path)


def test_rerun_skips_valid_records_and_force_recomputes(serial, tmp_path):
    configs = tiny_configs()
    first = run_sweep(configs, tmp_path, workers=0, progress=False)
    ok = [c for c, r in zip(configs, first.records) if r["status"] == "ok"]
    stamps = {c.key(): os.stat(sweep.record_path(tmp_path, c.key())).st_mtime_ns for c in ok}
    again = run_sweep(configs, tmp_path, workers=0, progress=False)
    assert (again.done, again.cached, again.failed) == (0, len(ok), 1)   # failed: retried
    assert {k: os.stat(sweep.record_path(tmp_path, k)).st_mtime_ns for k in stamps} == stamps
    assert again.records[:-1] == first.records[:-1]           # read back as written
    # a damaged record, a record without its model and a foreign file: recomputed / skipped
    damaged, orphan = ok[0].key(), ok[1].key()
    sweep.record_path(tmp_path, damaged).write_text('{"key": "')
    (tmp_path / "models" / f"{orphan}.npz").unlink()
    third = run_sweep(configs, tmp_path, workers=0, progress=False)
    assert (third.done, third.cached) == (2, len(ok) - 2)
    forced = run_sweep(configs[:2], tmp_path, workers=0, force=True, progress=False)
    assert (forced.done, forced.cached) == (2, 0)
    (tmp_path / "records" / "notes.json").write_text("not json")
    with pytest.warns(UserWarning, match="notes.json"):
        assert len(load_records(tmp_path)) == len(configs)


def test_bad_engine_arguments(tmp_path, monkeypatch):
    configs = tiny_configs()[:1]
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="^workers: expected an integer >= 0"):
            run_sweep(configs, tmp_path, workers=bad, progress=False)
    with pytest.raises(ValueError, match="^scheduler: expected an address"):
        run_sweep(configs, tmp_path, scheduler="127.0.0.1:8786", progress=False)
    with pytest.raises(TypeError, match=r"^configs\[0\]: expected a RunConfig"):
        run_sweep([{"dataset": "circle"}], tmp_path, progress=False)
    monkeypatch.setattr(sweep, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(OSError, match="^scheduler: cannot connect"):
        run_sweep(configs, tmp_path, scheduler=f"tcp://127.0.0.1:{free_port()}",
                  progress=False)
    assert not list((tmp_path / "records").iterdir())


def test_table_groups_seeds_with_mean_and_std(serial, tmp_path):
    _, result = serial
    rows = table(result.records)
    assert len(rows) == 4                           # 2 spline lambdas, relu, the failing one
    for row in rows[:3]:
        group = [r for r in result.records if r["status"] == "ok"
                 and r["run_config"]["activation"] == row["activation"]
                 and row["lam"] in (r["run_config"]["lam"], None)]
        assert row["seeds"] == len(group) == 2 and row["failed"] == 0
        acc = [r["test_accuracy"] for r in group]
        assert row["test_accuracy_mean"] == pytest.approx(np.mean(acc), rel=1e-15)
        assert row["test_accuracy_std"] == pytest.approx(np.std(acc, ddof=1), rel=1e-12)
        if row["activation"] == "spline":
            assert row["knots_mean"] == np.mean([sum(r["knots"]) for r in group])
        else:
            assert row["knots_mean"] is None
    assert [(r["dataset"], r["activation"], r["lam"]) for r in rows] == [
        ("circle", "relu", None), ("circle", "spline", 1e-3), ("circle", "spline", 1.0),
        ("mnist", "spline", 1e-3)]                     # sorted by config
    assert rows[3]["seeds"] == 0 and rows[3]["failed"] == 1
    path = sweep.write_csv(rows, tmp_path / "t.csv")
    parsed = list(csv.DictReader(io.StringIO(path.read_text())))
    assert len(parsed) == 4 and float(parsed[1]["test_accuracy_mean"]) == \
        rows[1]["test_accuracy_mean"]
    assert parsed[0]["knots_mean"] == "" and parsed[0]["lam"] == ""   # relu: no lambda
    text = sweep.format_table(rows)
    assert "lam" in text and "+-" in text and len(text.splitlines()) == 5


def wait_for_a_record(proc, records, timeout=STARTUP_TIMEOUT):
    """Until the sweep process `proc` has written a record in `records` (it must still run)."""
    deadline = time.monotonic() + timeout
    while not (records.is_dir() and any(records.glob("*.json"))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no record in time"
        time.sleep(0.02)


def test_interrupted_sweep_resumes_without_recomputing(tmp_path):
    """`python -m reference sweep` on a LocalCluster, SIGINT once the first record exists:
    exit 130, only whole records; the rerun (in-process engine: the records do not depend
    on it) reuses them untouched and computes the rest."""
    argv = [sys.executable, "-m", "reference", "sweep", "--results", str(tmp_path),
            "--lam", "1e-4,1e-3,1e-2,1e-1,1", "--seeds", "0-1", "--epochs", "2", "--size", "9",
            "--quiet"]
    records = tmp_path / "records"
    proc = subprocess.Popen(argv + ["--workers", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_a_record(proc, records)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    finished = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert 1 <= len(finished) < 10
    assert not list(tmp_path.rglob(".*.tmp"))
    for name in finished:
        record = json.loads((records / name).read_text())
        assert record["status"] == "ok" and (tmp_path / record["model"]).is_file()
    rerun = subprocess.run(argv + ["--workers", "0"], capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert (f"10 runs: {10 - len(finished)} done, {len(finished)} cached, 0 failed"
            in rerun.stdout)
    assert {n: (records / n).stat().st_mtime_ns for n in finished} == finished
    assert len(list(records.glob("*.json"))) == 10


def test_table_command(serial, tmp_path, capsys):
    from reference.cli import main
    root, result = serial
    out = tmp_path / "table.csv"
    assert main(["sweep", "--results", str(root), "--table", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert sweep.format_table(table(result.records)) in text
    assert out.read_text() == sweep.table_csv(table(result.records))
    assert main(["sweep", "--results", str(tmp_path / "none"), "--table"]) == 2
    assert "results: no records directory" in capsys.readouterr().err


@pytest.mark.parametrize("record", [
    {"key": "x", "status": "ok"},
    {"key": "x", "status": "ok", "run_config": {"dataset": "circle"}},
    {"key": "x", "status": "ok", "run_config": {"nonsense": 1}},
    [1, 2],
])
def test_table_skips_unusable_records_with_a_warning(tmp_path, record, capsys):
    from reference.cli import main
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "x.json").write_text(json.dumps(record))
    assert main(["sweep", "--results", str(tmp_path), "--table"]) == 0
    captured = capsys.readouterr()
    assert "no records" in captured.out
    lines = captured.err.splitlines()           # one line each, in the CLI's own format
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"warning: results: skipped {tmp_path / 'records' / 'x.json'} (")


def test_scheduler_without_workers_is_an_error_not_a_hang(monkeypatch):
    """A scheduler with no worker: refused after CONNECT_TIMEOUT instead of waiting."""
    from distributed import LocalCluster
    monkeypatch.setattr(sweep, "CONNECT_TIMEOUT", "2s")
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        with pytest.raises(OSError, match="has no worker"):
            with sweep.dask_client(scheduler=cluster.scheduler_address):
                pass


def test_too_many_combinations_are_refused_before_any_is_built(tmp_path, capsys):
    """3 x 400 x 400 lambdas/seeds is counted (480 000 > MAX_RUNS), not built; the CLI names
    the flag that raises the limit, and refuses a seed range over MAX_SEEDS at parse time."""
    from reference.cli._args import MAX_SEEDS
    from reference.exceptions import TooLarge
    with pytest.raises(TooLarge, match="max_runs"):
        expand(lam=[0.1, 0.2, 0.3], size=list(range(3, 403)), seeds=range(400))
    assert len(expand(lam=[0.1, 0.2], max_runs=2)) == 2
    from reference.cli import main
    assert main(["sweep", "--results", str(tmp_path / "r"), "--seeds", "0-399",
                 "--lam", "0.1,0.2,0.3", "--size", ",".join(map(str, range(3, 403)))]) == 2
    assert "--max-runs" in capsys.readouterr().err
    assert main(["sweep", "--results", str(tmp_path / "r"),
                 "--seeds", f"0-{MAX_SEEDS}"]) == 2
    assert f"at most {MAX_SEEDS} seeds" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# ------------------------------------------------- dead workers (issue 21, item 9)
DEAD_LAMS = ["1e-4", "1e-3", "1e-2", "1e-1", "0.3", "1"]       # six runs of 40 epochs


def sweep_losing(process, tmp_path):
    """`python -m reference sweep --scheduler` on a hand-started scheduler and one worker
    (no nanny: a nanny would restart it), with `process` ('worker' or 'scheduler') killed
    once the first record exists: (exit status, stdout, stderr, the stored records).  A
    sweep that hangs fails here (120 s)."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                 "--port", str(port), "--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
    worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
              "--host", "127.0.0.1", "--no-dashboard", "--no-nanny"]
    argv = [sys.executable, "-m", "reference", "sweep", "--results", str(tmp_path),
            "--lam", ",".join(DEAD_LAMS), "--epochs", "40", "--size", "9", "--quiet",
            "--scheduler", address, "--worker-timeout", "5"]
    records = tmp_path / "records"
    with dask_processes(scheduler, worker) as procs:
        with Client(address, timeout=STARTUP_TIMEOUT) as client:
            client.wait_for_workers(1, timeout=STARTUP_TIMEOUT)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            wait_for_a_record(proc, records)
            victim = procs[0 if process == "scheduler" else 1]
            victim.kill()
            victim.wait()
            out, err = proc.communicate(timeout=120)         # a hang fails here
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return proc.returncode, out, err, [json.loads(p.read_text()) for p in records.glob("*.json")]


def assert_pending_runs_failed(status, out, err, stored, reason):
    """Exit status 1; every run has its record, some ok, the others failed with `reason`
    and each named on stdout; stderr holds no traceback or log line of the engine."""
    assert status == 1, err
    assert len(stored) == len(DEAD_LAMS)                     # every run has its record
    failed = [r for r in stored if r["status"] == "failed"]
    assert failed and len(failed) < len(DEAD_LAMS)
    for record in failed:
        assert record["error"].startswith(reason), record["error"]
        assert f"failed {record['key']}: {reason}" in out
    assert f"{len(failed)} failed" in out
    assert not any(word in err for word in ("Traceback", "ERROR", "Error")), err


class ScriptedScheduler:
    """A client whose scheduler answers `workers(t)` at time t: a number of workers, or an
    exception (the scheduler unreachable, or silent)."""

    def __init__(self, workers, clock):
        self.workers, self.clock, self.questions = workers, clock, 0

    def nthreads(self, callback_timeout):
        self.questions += 1
        answer = self.workers(self.clock())
        if isinstance(answer, Exception):
            raise answer
        return {f"tcp://worker-{i}": 1 for i in range(answer)}


@pytest.mark.parametrize("workers, expires", [
    (lambda t: 1, None),                                   # always a worker
    (lambda t: 2 if t <= 10 else 0, 30),                   # the last one gone after t = 10
    (lambda t: 0, 20),                                     # none from the start
    (lambda t: 0 if 10 < t < 29 else 1, None),             # back 19 s later: no failure
    (lambda t: 0 if 10 < t < 29 or t > 40 else 1, 60),     # back, then gone for good
    (lambda t: 1 if t <= 5 else OSError("connection refused"), 25),
    (lambda t: 1 if t <= 5 else TimeoutError(), 25),        # a scheduler that stops answering
    (lambda t: 1 if t <= 5 else RuntimeError("client closed"), 25),
], ids=["alive", "last worker dies", "never a worker", "worker back in time",
        "back then gone", "scheduler unreachable", "scheduler silent", "client closed"])
def test_worker_watch_expires_after_the_timeout_without_a_worker(workers, expires):
    """The watch as _run_all uses it (asked every 0.1 s), on a fake clock: it expires exactly
    `timeout` (20 s) after the last answer with a worker, never while one comes back in
    time, and asks the scheduler about once a second, not at every look."""
    now = [0.0]
    client = ScriptedScheduler(workers, lambda: now[0])
    watch = sweep._WorkerWatch(client, 20.0, clock=lambda: now[0])
    expired_at = None
    for step in range(1, 1001):                            # 100 s in steps of 0.1 s
        now[0] = step / 10
        if watch.expired():
            expired_at = now[0]
            break
    assert expired_at == pytest.approx(expires, abs=0.05) if expires else expired_at is None
    assert client.questions == pytest.approx(now[0], abs=1.5)     # one a second


def test_a_scheduler_whose_last_worker_dies_fails_the_pending_runs(tmp_path):
    """Issue 21, item 9: `sweep --scheduler` whose only worker is killed mid-sweep used to
    wait forever.  With no worker for --worker-timeout seconds (5 here; 20 by default) the
    pending runs are recorded as failed, each named on stdout, and the exit status is 1."""
    assert_pending_runs_failed(*sweep_losing("worker", tmp_path),
                               "engine: no Dask worker for 5 s")


def test_a_scheduler_that_dies_fails_the_pending_runs_quietly(tmp_path):
    """The scheduler killed mid-sweep: the pending runs fail at once (Dask cancels them),
    recorded and named, exit 1; Dask's client used to log its reconnection attempts to
    stderr as an ERROR with a traceback."""
    assert_pending_runs_failed(*sweep_losing("scheduler", tmp_path), "engine: ")


class LostResultFuture:
    """A run that finished on a worker which then died: Dask reported it done, but its
    result went with the worker, so `result()` waits for a recomputation that no worker
    will do (without a timeout: forever; here an error, so the old code cannot hang).
    Its status still says finished: the scheduler's news of the loss comes later."""

    status = "finished"

    def result(self, timeout=None):
        if timeout is None:
            raise RuntimeError("future.result() without a timeout would wait forever")
        raise TimeoutError

    def release(self):
        pass


class OneBatchAsCompleted:
    """as_completed over fake futures: every future once, then those added back."""

    def __init__(self, futures):
        self.queue = list(futures)
        self.pending = set(self.queue)

    def next_batch(self, block=False):
        batch, self.queue = self.queue, []
        return batch

    def add(self, future):                 # a lost result: pending again, never done
        self.pending.add(future)

    def is_empty(self):
        return not self.pending and not self.queue


def test_a_result_lost_with_its_worker_is_pending_under_the_watch(monkeypatch):
    """Issue 21, item 9: a run that finished on a worker that died before its result was
    fetched made `future.result()` wait forever (the dead-worker test hung in 1 of 3-5
    runs).  It is pending again, and the watch fails it with the others."""
    import distributed

    configs = tiny_configs()[:2]
    futures = [LostResultFuture() for _ in configs]

    to_submit = iter(futures)

    class Client:
        class loop:                        # the client's event loop, as _run_all uses it
            class asyncio_loop:
                @staticmethod
                def set_exception_handler(handler):
                    pass

        def submit(self, *args, **kwargs):
            return next(to_submit)

        def cancel(self, pending):
            cancelled.extend(pending)

        def nthreads(self, callback_timeout=None):
            return {}                      # no worker left

    cancelled, outcomes = [], []
    monkeypatch.setattr(distributed, "as_completed", OneBatchAsCompleted)
    monkeypatch.setattr(sweep, "dask_client",
                        contextlib.contextmanager(lambda workers, scheduler: iter([Client()])))
    sweep._run_all(configs, 1, None, lambda c, o: outcomes.append((c, o)), worker_timeout=0.2)
    assert [c for c, _ in outcomes] == configs
    assert all(o[0] == "failed" and o[1].startswith("engine: no Dask worker for 0.2 s")
               for _, o in outcomes), outcomes
    assert cancelled == futures
