"""Plots of the measured benchmark curves, made at every docs build from the records in
``docs/benchmarks/*.json`` (never by running a benchmark: they take minutes to hours).

Each record holds the numbers as measured by a script of ``benchmarks/`` (named in the
record, with the machine state it was measured in); :func:`make_plots` draws one PNG per
record into ``docs/benchmarks/_plots/``, which ``benchmarks.md`` shows.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter, ScalarFormatter  # noqa: E402

HERE = Path(__file__).resolve().parent.parent / "benchmarks"


def _plot_series(record: dict, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    for series in record["series"]:
        points = [(x, y) for x, y in zip(series["x"], series["y"]) if y is not None]
        if not points:
            continue
        xs, ys = zip(*points)
        ax.plot(xs, ys, series.get("style", "o-"), label=series["label"], ms=4)
    if record.get("hline"):
        ax.axhline(record["hline"]["y"], color="grey", ls="--", lw=1,
                   label=record["hline"]["label"])
    ax.set_xscale(record.get("xscale", "linear"))
    ax.set_yscale(record.get("yscale", "linear"))
    if record.get("xscale") == "log":       # the measured sizes as plain tick labels
        ax.set_xticks(sorted({x for s in record["series"] for x in s["x"]}))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(record["xlabel"])
    ax.set_ylabel(record["ylabel"])
    ax.set_title(textwrap.fill(record["title"], 70), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _plot_bars(record: dict, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.45 * len(record["bars"])),
                           layout="constrained")
    labels = [b["label"] for b in record["bars"]]
    values = [b["value"] for b in record["bars"]]
    ax.barh(labels, values, color="tab:blue")
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:g}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale(record.get("xscale", "linear"))
    ax.set_xlabel(record["xlabel"])
    fig.suptitle(textwrap.fill(record["title"], 80), fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def make_plots(app=None) -> list:
    """Draw every record of docs/benchmarks/ into docs/benchmarks/_plots/NAME.png."""
    out_dir = HERE / "_plots"
    out_dir.mkdir(exist_ok=True)
    written = []
    for path in sorted(HERE.glob("*.json")):
        record = json.loads(path.read_text())
        out = out_dir / f"{path.stem}.png"
        (_plot_bars if "bars" in record else _plot_series)(record, out)
        written.append(out)
    return written
