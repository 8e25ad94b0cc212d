"""Generate the figures of a profile: run the sweeps they need, draw them, write the index."""
from __future__ import annotations

import time
import traceback
from pathlib import Path

from figures.make import FIGURES, figure_sweeps
from figures.profiles import PROFILES, SWEEPS, Profile
from reference.io._files import prepare_output_dir, write_text
from reference.training._sweep import damaged_line, run_sweep

OUT = "figures/out"


def check_names(only) -> list:
    """The figure names to make (all when only is None); unknown names: ValueError."""
    names = list(FIGURES) if not only else [n.strip() for n in only]
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"--only: unknown figures {unknown}, expected names from "
                         f"{list(FIGURES)}")
    return names


def check_engine(workers, scheduler) -> None:
    """--workers and --scheduler checked before anything is created."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 0):
        raise ValueError(f"--workers: expected an integer >= 0, got {workers!r}")
    if scheduler is not None and "://" not in str(scheduler):
        raise ValueError(f"--scheduler: expected an address like tcp://HOST:PORT, got "
                         f"{scheduler!r}")


def generate(profile="default", out=OUT, results=None, only=None, scheduler=None,
             workers=None, force=False, progress=True, log=print) -> dict:
    """Make the figures `only` (default all) of `profile` (a name of PROFILES, or a Profile)
    in `out`; the runs are stored in `results` (default OUT/results) and reused.  Returns
    {name: {"files", "summary"} or {"error"} or {"skipped"}}; a figure whose runs failed, or
    that raised, is reported and the others are still made; a figure that reads a sweep the
    profile does not run is skipped with the reason (figures.make.figure_sweeps).  Writes
    OUT/index.md."""
    if isinstance(profile, Profile):
        prof = profile
    elif profile in PROFILES:
        prof = PROFILES[profile]
    else:
        raise ValueError(f"--profile: expected one of {list(PROFILES)}, got {profile!r}")
    names = check_names(only)
    check_engine(workers, scheduler)
    out = prepare_output_dir(out, "--out")
    results = prepare_output_dir(Path(results) if results else out / "results", "--results")
    reads = {name: figure_sweeps(name, prof) for name in names}
    needed = sorted({s for n in names if reads[n][0] for s in reads[n][0]})
    sweeps = {"results": results}
    t0 = time.perf_counter()
    configs = {s: SWEEPS[s](prof) for s in needed}
    todo = [c for s in needed for c in configs[s]]
    log(f"{prof.describe()}\nsweeps {needed}: {len({c.key() for c in todo})} runs (cached "
        f"ones are reused) in {results}")
    result = run_sweep(todo, results, workers=workers, scheduler=scheduler, force=force,
                       progress=progress)
    by_key = {r["key"]: r for r in result.records}
    for s in needed:
        sweeps[s] = [by_key[c.key()] for c in configs[s]]
    sweep_seconds = time.perf_counter() - t0
    log(f"runs: {result.done} done, {result.cached} cached, {result.failed} failed "
        f"({sweep_seconds:.1f} s)")
    for key, problem in result.damaged:       # recomputed: the figures never read them
        log(f"  {damaged_line(key, problem)}")
    report = {}
    for name in names:
        read, reason = reads[name]
        if read is None:
            report[name] = {"skipped": reason}
            log(f"  {name}: skipped ({reason})")
            continue
        t1 = time.perf_counter()
        try:
            files, summary = FIGURES[name][0]({"results": results,
                                               **{s: sweeps[s] for s in read}}, prof, out)
            report[name] = {"files": [str(f) for f in files], "summary": summary,
                            "seconds": time.perf_counter() - t1}
            log(f"  {name}: {', '.join(Path(f).name for f in files)}")
        except Exception as exc:        # reported by name; the other figures are still made
            report[name] = {"error": f"{type(exc).__name__}: {exc}",
                            "traceback": traceback.format_exc()}
            log(f"  {name}: FAILED ({type(exc).__name__}: {exc})")
    write_index(out, prof, report, result, sweep_seconds, results)
    return report


def write_index(out: Path, prof, report: dict, result, sweep_seconds, results) -> Path:
    """OUT/index.md: each figure with its files, the command and the config that made it."""
    lines = [f"# Figures ({prof.name} profile)", "",
             f"Made by `python -m figures --profile {prof.name} --results {results}`; "
             f"{prof.describe()}.", "",
             f"Runs: {result.done} computed, {result.cached} reused, {result.failed} failed; "
             f"sweeps took {sweep_seconds:.1f} s. Each CSV holds the data behind its figure "
             "(with the key of every run: its record is `RESULTS/records/<key>.json`).", ""]
    if result.damaged:
        lines += ["Stored records found damaged or unverified, and recomputed:", ""]
        lines += [f"- {damaged_line(key, problem)}" for key, problem in result.damaged] + [""]
    for name, entry in report.items():
        lines.append(f"## {name}")
        lines.append("")
        lines.append(f"Command: `python -m figures --profile {prof.name} --only {name}`")
        lines.append("")
        if "error" in entry:
            lines.append(f"FAILED: {entry['error']}")
        elif "skipped" in entry:
            lines.append(f"Not made: this figure {entry['skipped']}.")
        else:
            lines.append(entry["summary"])
            lines.append("")
            lines += [f"- `{Path(f).name}`" for f in entry["files"]]
            png = [f for f in entry["files"] if f.endswith(".png")]
            if png:
                lines += ["", f"![{name}]({Path(png[0]).name})"]
        lines.append("")
    return write_text(out / "index.md", "\n".join(lines), "--out")
