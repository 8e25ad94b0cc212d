"""The paper's claims as measured: a table of the lambda sweep for the figures index.

Per data set and regulariser, at each lambda: the test error rate, the knots after
sparsify and the Lipschitz bound (Theorem 1, BV2 form; p = 2 as the figures draw it, and p
= 1, DeepSplines' ``lipschitz_bound()``), mean +- std over the seeds; the baselines' at the
weight decay of best validation accuracy; the Spearman rank correlation of the knots and of
the bounds with lambda over the runs; and, for each claim of the paper (fewer knots and a
lower bound as lambda grows, accuracy comparable to the baselines), whether it shows up in
these numbers, by the rules TREND_RULE and ACCURACY_RULE.
"""
from __future__ import annotations

import numpy as np

from figures.common import (
    CHOICE_RULE,
    baseline_choice,
    is_chosen,
    ok_records,
    rho_text,
    save_csv,
    spearman,
)
from figures.profiles import BASELINES, DATASETS, REGS, config_of
from reference.io._files import write_text

SIGNIFICANCE = 0.05          # two-sided p-value below which a Spearman trend counts
ACCURACY_MARGIN = 1.0        # percentage points of test error that still count as comparable
TREND_RULE = (f"a trend shows up when Spearman's rho over the runs (every seed at every "
              f"lambda) is negative with a two-sided p-value below {SIGNIFICANCE:g}")
ACCURACY_RULE = (f"the spline network's accuracy is comparable to the baselines' at a lambda "
                 f"when its mean test error rate is at most {ACCURACY_MARGIN:g} percentage "
                 f"point above the best baseline's (the lowest mean test error among them, "
                 f"each at its chosen weight decay)")
QUANTITIES = {   # column -> (what the claim says of it, value of a record or None)
    "error_rate": ("test error rate (%)", lambda r: 100.0 * (1 - r["test_accuracy"])),
    "knots": ("knots after sparsify", lambda r: float(sum(r["knots"])) if r["knots"] else None),
    "bound_p2": ("Lipschitz bound, p = 2", lambda r: r["lipschitz_bound"]),
    "bound_p1": ("Lipschitz bound, p = 1", lambda r: r["ladder"]["1"]["theorem1_bv2"]["value"]),
}
TRENDS = ("knots", "bound_p2", "bound_p1")        # the quantities the paper says fall


def _stats(records, column) -> tuple:
    """Mean and sample std (ddof = 1) of a quantity over records; (None, None) where it
    does not apply (a baseline's knots) or a value is missing (an overflowing bound)."""
    values = [QUANTITIES[column][1](r) for r in records]
    if not values or any(v is None for v in values):
        return None, None
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _row(dataset, network, lam, mu, records) -> dict:
    row = {"dataset": dataset, "network": network, "lam": lam, "mu": mu,
           "runs": len(records)}
    for column in QUANTITIES:
        row[f"{column}_mean"], row[f"{column}_std"] = _stats(records, column)
    row["keys"] = ";".join(r["key"] for r in records)
    return row


def _cell(row, column, digits) -> str:
    mean, std = row[f"{column}_mean"], row[f"{column}_std"]
    if mean is None:
        return "-"
    return f"{mean:.{digits}g} +- {std:.2g}"


def _trend(records, column) -> dict:
    """Spearman's rho of a quantity against lambda over the runs, and the verdict."""
    pairs = [(config_of(r).lam, QUANTITIES[column][1](r)) for r in records]
    pairs = [(lam, v) for lam, v in pairs if v is not None]
    rho, p = spearman([a for a, _ in pairs], [b for _, b in pairs])
    shows = bool(np.isfinite(rho) and rho < 0 and p < SIGNIFICANCE)
    return {"rho": rho, "p": p, "runs": len(pairs), "shows": shows}


def _rises(curve, column) -> str:
    """Where the mean over seeds goes up from one lambda to the next (a trend can show up
    in the ranks without being monotone in the means), as a clause; '' where it does not."""
    means = [(row["lam"], row[f"{column}_mean"]) for row in curve]
    rises = [f"{a:g} -> {b:g}: {x:.4g} -> {y:.4g}" for (a, x), (b, y) in zip(means, means[1:])
             if x is not None and y is not None and y > x]
    return "" if not rises else f"; but the mean rises from lambda {'; '.join(rises)}"


def _rho_text(t) -> str:
    return rho_text(t["rho"], t["p"], t["runs"])


def claims(sweeps, profile, out):
    """claims.md (the tables and the verdicts, also the summary the index shows),
    claims.csv (one row per data set, network and lambda or weight decay: the means and
    stds, the keys of the runs) and claims_spearman.csv."""
    records = ok_records(sweeps["lambda"])
    choice = baseline_choice(records)
    rows, trends, lines, verdicts = [], [], [], []
    lines += ["| data set | network | lambda | test error (%) | knots | bound p = 2 | "
              "bound p = 1 |", "|---|---|---|---|---|---|---|"]
    for dataset in DATASETS:
        baselines = []
        for act in BASELINES:
            mu = choice[(dataset, act)]["mu"]
            chosen = [r for r in records if r["activation"] == act
                      and config_of(r).dataset == dataset and is_chosen(r, choice)]
            baselines.append(_row(dataset, f"{act}, mu {mu:g}", "", mu, chosen))
        best = min(baselines, key=lambda b: b["error_rate_mean"])
        for reg in REGS:
            runs = [r for r in records if r["activation"] == "spline"
                    and config_of(r).dataset == dataset and config_of(r).reg == reg]
            lams = sorted({config_of(r).lam for r in runs})
            worse = []
            for lam in lams:
                at = [r for r in runs if config_of(r).lam == lam]
                row = _row(dataset, f"spline {reg.upper()}", lam, config_of(at[0]).mu, at)
                rows.append(row)
                lines.append(f"| {dataset} | spline {reg.upper()} | {lam:g} | "
                             f"{_cell(row, 'error_rate', 3)} | {_cell(row, 'knots', 3)} | "
                             f"{_cell(row, 'bound_p2', 4)} | {_cell(row, 'bound_p1', 4)} |")
                gap = row["error_rate_mean"] - best["error_rate_mean"]
                if gap > ACCURACY_MARGIN:
                    worse.append(f"{lam:g} (+{gap:.2f} pp)")
            curve = [row for row in rows if row["dataset"] == dataset
                     and row["network"] == f"spline {reg.upper()}"]
            for column in TRENDS:
                t = _trend(runs, column)
                trends.append({"dataset": dataset, "reg": reg, "quantity": column, **t})
                what = "fewer knots" if column == "knots" else \
                    f"a lower {QUANTITIES[column][0]}"
                verdicts.append(
                    f"- {dataset}, {reg.upper()}: {what} as lambda grows: " +
                    ("shows up" if t["shows"] else "**does not show up**") +
                    f", Spearman rho {_rho_text(t)} over {t['runs']} runs" +
                    _rises(curve, column))
            below = sum(row["error_rate_mean"] < best["error_rate_mean"] for row in curve)
            verdicts.append(
                f"- {dataset}, {reg.upper()}: accuracy comparable to the best baseline "
                f"({best['network']}, {best['error_rate_mean']:.3g}% test error): " +
                (f"shows up at every lambda (below it at {below} of {len(curve)})"
                 if not worse else f"**does not show up** at lambda {', '.join(worse)}"))
        for row in baselines:
            rows.append(row)
            lines.append(f"| {dataset} | {row['network']} | - | "
                         f"{_cell(row, 'error_rate', 3)} | - | {_cell(row, 'bound_p2', 4)} | "
                         f"{_cell(row, 'bound_p1', 4)} |")
    lines += ["", "| data set | regulariser | knots vs lambda | bound p = 2 vs lambda | "
              "bound p = 1 vs lambda |", "|---|---|---|---|---|"]
    for dataset in DATASETS:
        for reg in REGS:
            cells = [_rho_text(t) for t in trends if t["dataset"] == dataset
                     and t["reg"] == reg]
            lines.append(f"| {dataset} | {reg.upper()} | " + " | ".join(cells) + " |")
    text = "\n".join(
        ["Mean +- std over the seeds (the runs of each row: claims.csv). Test error on the "
         "test grid; knots after sparsify auto; the bounds are Theorem 1's BV2 form (p = 2: "
         "the figures'; p = 1: DeepSplines' lipschitz_bound()). Baselines: " + CHOICE_RULE +
         ". Spearman's rho of each quantity against lambda, over the runs:", ""]
        + lines + ["", f"Verdicts ({TREND_RULE}; {ACCURACY_RULE}):", ""] + verdicts)
    files = [write_text(out / "claims.md", text + "\n", "--out"), save_csv(out, "claims", rows),
             save_csv(out, "claims_spearman", trends)]
    return files, text
