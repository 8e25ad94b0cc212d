"""What the figure functions share: writing a figure and its CSV, reading the records of a
sweep, and the choice of each baseline's weight decay (on validation accuracy).

A leaf of the figures package: figures/make.py (the registry and the figures of the lambda
and width sweeps), figures/size_baselines.py (the size sweep, the baselines' weight decays)
and figures/claims.py (the claims table) import it.
"""
from __future__ import annotations

import csv
import io as _io
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from figures.profiles import config_of  # noqa: E402
from reference.io._files import atomic_write, write_text  # noqa: E402
from reference.io._model_file import load_model  # noqa: E402

COLOURS = {"tv2": "tab:blue", "bv2": "tab:orange", "relu": "tab:red", "prelu": "tab:green",
           "leaky_relu": "tab:purple", "spline": "tab:blue",
           "TV2, Adam alone (before sparsify)": "tab:grey",
           "TV2, proximal step (no sparsify)": "tab:green"}
CHOICE_RULE = ("each baseline at the weight decay of highest validation accuracy (mean over "
               "seeds; a tie goes to the smaller weight decay)")


def save_figure(fig, out: Path, name: str) -> list:
    """NAME.png and NAME.pdf, written atomically; returns their paths."""
    paths = []
    for ext in ("png", "pdf"):
        path = out / f"{name}.{ext}"
        atomic_write(path, lambda f, ext=ext: fig.savefig(f, format=ext, dpi=110,
                                                          bbox_inches="tight"), "--out")
        paths.append(path)
    plt.close(fig)
    return paths


def save_csv(out: Path, name: str, rows: list) -> Path:
    """NAME.csv from a list of dicts (the columns of the first row)."""
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(out / f"{name}.csv", buffer.getvalue(), "--out")


def ok_records(records: list) -> list:
    """The records with status 'ok'; a failed run makes the figure fail (its name and
    error in the message)."""
    failed = [r for r in records if r.get("status") != "ok"]
    if failed:
        raise RuntimeError(f"{len(failed)} run(s) failed, e.g. {failed[0]['key']}: "
                           f"{failed[0].get('error')}")
    return records


def mean_std(values) -> tuple:
    """Mean and sample standard deviation (ddof = 1; 0 for a single value)."""
    values = np.asarray(values, dtype=float)
    return values.mean(), (values.std(ddof=1) if len(values) > 1 else 0.0)


def spearman(x, y) -> tuple:
    """Spearman's rank correlation of y with x (scipy.stats.spearmanr, two-sided p-value),
    (nan, nan) where it is undefined: fewer than 3 pairs, or x or y constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # a new degenerate case: fail, never guess
        result = spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def rho_text(rho: float, p: float, runs: int) -> str:
    """How the figures print a Spearman correlation."""
    if not np.isfinite(rho):
        return f"undefined ({runs} runs: the values do not vary)"
    return f"{rho:+.2f} (p = {p:.2g})"


def load_net(results: Path, record: dict):
    """The trained network of a record (RESULTS/models/<key>.npz)."""
    return load_model(results / record["model"])


def pick(records, **fields):
    """The record whose config has these field values (the first one)."""
    for r in records:
        c = config_of(r)
        if all(getattr(c, k) == v for k, v in fields.items()):
            return r
    raise RuntimeError(f"no run with {fields} among the records")


def nearest(values, target: float) -> float:
    """The value of `values` nearest to `target` on a log scale (values and target > 0)."""
    return min(values, key=lambda v: abs(np.log(v) - np.log(target)))


def baseline_choice(records) -> dict:
    """The weight decay of each baseline, chosen on validation accuracy (CHOICE_RULE).

    Parameters
    ----------
    records : list of dict
        Sweep records; the spline runs among them are ignored.

    Returns
    -------
    choice : dict
        (dataset, activation) -> {"mu": the chosen weight decay, "valid_accuracy": its
        mean validation accuracy, "seeds": the runs at it, "mus": every weight decay
        tried}.
    """
    groups: dict = {}
    for r in records:
        c = config_of(r)
        if c.activation != "spline":
            groups.setdefault((c.dataset, c.activation), {}).setdefault(c.mu, []).append(
                r["valid_accuracy"])
    choice = {}
    for group, by_mu in groups.items():
        mus = sorted(by_mu)
        best = max(mus, key=lambda mu: (np.mean(by_mu[mu]), -mu))
        choice[group] = {"mu": best, "valid_accuracy": float(np.mean(by_mu[best])),
                         "seeds": len(by_mu[best]), "mus": mus}
    return choice


def is_chosen(record, choice: dict) -> bool:
    """Whether a baseline record is at its chosen weight decay (`baseline_choice`)."""
    c = config_of(record)
    return c.activation != "spline" and choice[(c.dataset, c.activation)]["mu"] == c.mu
