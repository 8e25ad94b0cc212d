"""The figures of the paper profile's extra grids: the spline-size sweep (knots, error rate
and Lipschitz bound against the number K of spline coefficients) and the baselines' weight
decays (validation and test error against the weight decay, the chosen one marked).

Each function takes (records of the sweeps, profile, output directory) and returns (files,
summary), as those of figures/make.py, whose FIGURES registers them.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from figures.common import (  # noqa: E402
    CHOICE_RULE,
    COLOURS,
    baseline_choice,
    mean_std,
    ok_records,
    rho_text,
    save_csv,
    save_figure,
    spearman,
)
from figures.profiles import BASELINES, DATASETS, config_of  # noqa: E402

SIZE_QUANTITIES = {   # name -> (axis label, value of a record, log scale)
    "knots": ("knots after sparsify auto", lambda r: float(sum(r["knots"])), False),
    "error_rate": ("test error rate (%)", lambda r: 100.0 * (1 - r["test_accuracy"]), False),
    "lipschitz_bound": ("Lipschitz bound (Theorem 1, BV2, p=2)",
                        lambda r: r["lipschitz_bound"], True),
}


def _shared(records, names) -> dict:
    """The config fields `names` that every record shares (ValueError naming one that
    differs: a size sweep varies K and the seed only)."""
    values = {}
    for name in names:
        seen = {str(getattr(config_of(r), name)) for r in records}
        if len(seen) != 1:
            raise ValueError(f"spline_size: the size sweep's runs differ in {name} ({seen}); "
                             f"expected one value")
        values[name] = getattr(config_of(records[0]), name)
    return values


def spline_size(sweeps, profile, out):
    """Knots, test error rate and the Lipschitz bound against the spline size K (mean +- std
    over the seeds), with the Spearman correlation of the knots against K."""
    records = ok_records(sweeps["size"])
    fixed = _shared(records, ("dataset", "hidden", "reg", "lam"))
    rows = [{"figure": "spline_size", "size": config_of(r).size, "seed": config_of(r).seed,
             "quantity": quantity, "key": r["key"], "value": value(r)}
            for r in records for quantity, (_, value, _) in SIZE_QUANTITIES.items()]
    sizes = sorted({r["size"] for r in rows})
    fig, axes = plt.subplots(1, len(SIZE_QUANTITIES), layout="constrained",
                             figsize=(4.8 * len(SIZE_QUANTITIES), 3.8))
    means = {}
    for ax, (quantity, (label, _, log_y)) in zip(axes, SIZE_QUANTITIES.items()):
        stats = [mean_std([r["value"] for r in rows if r["size"] == k
                           and r["quantity"] == quantity]) for k in sizes]
        mean = np.array([m for m, _ in stats])
        std = np.array([s for _, s in stats])
        means[quantity] = mean
        ax.errorbar(sizes, mean, yerr=std, marker="o", capsize=3, color="tab:orange")
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("spline size K (coefficients per neuron)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    knot_runs = [r for r in rows if r["quantity"] == "knots"]
    rho, p = spearman([r["size"] for r in knot_runs], [r["value"] for r in knot_runs])
    fig.suptitle(f"Spline size sweep: {fixed['dataset']}, hidden {list(fixed['hidden'])}, "
                 f"{fixed['reg'].upper()}, lambda {fixed['lam']:g} (mean +- std over "
                 f"{len(profile.seeds)} seeds)")
    files = save_figure(fig, out, "spline_size") + [save_csv(out, "spline_size", rows)]
    ends = [0, len(sizes) - 1]
    summary = "; ".join(
        f"K = {sizes[i]}: knots {means['knots'][i]:.3g}, error {means['error_rate'][i]:.3g}%, "
        f"bound {means['lipschitz_bound'][i]:.4g}" for i in ends)
    best = int(np.argmin(means["error_rate"]))
    summary += (f"; lowest mean error {means['error_rate'][best]:.3g}% at K = {sizes[best]}; "
                f"Spearman correlation of the knots with K over the runs: "
                f"{rho_text(rho, p, len(knot_runs))}")
    return files, summary


def baseline_weight_decay(sweeps, profile, out):
    """Each baseline's validation and test error rate against its weight decay (mean +- std
    over the seeds), the weight decay of best validation accuracy marked: the one the other
    figures and the claims table use."""
    records = [r for r in ok_records(sweeps["lambda"]) if r["activation"] != "spline"]
    choice = baseline_choice(records)
    rows = []
    for r in records:
        c = config_of(r)
        chosen = choice[(c.dataset, c.activation)]["mu"] == c.mu
        for split in ("valid", "test"):
            rows.append({"figure": "baseline_weight_decay", "dataset": c.dataset,
                         "activation": c.activation, "mu": c.mu, "seed": c.seed,
                         "split": split, "chosen": chosen, "key": r["key"],
                         "value": 100.0 * (1 - r[f"{split}_accuracy"])})
    fig, axes = plt.subplots(len(DATASETS), len(BASELINES), layout="constrained",
                             figsize=(4.2 * len(BASELINES), 3.4 * len(DATASETS)),
                             squeeze=False, sharex=True)
    notes = []
    for row_axes, dataset in zip(axes, DATASETS):
        for ax, act in zip(row_axes, BASELINES):
            mus = choice[(dataset, act)]["mus"]
            best = mus.index(choice[(dataset, act)]["mu"])
            for split, style in (("valid", "o-"), ("test", "s--")):
                stats = [mean_std([r["value"] for r in rows if r["dataset"] == dataset
                                   and r["activation"] == act and r["mu"] == mu
                                   and r["split"] == split]) for mu in mus]
                mean = np.array([m for m, _ in stats])
                ax.errorbar(mus, mean, yerr=[s for _, s in stats], fmt=style, capsize=2,
                            color=COLOURS[act] if split == "test" else "k", ms=4,
                            label=f"{split} error")
                ax.plot(mus[best], mean[best], "*", ms=14, color="gold", markeredgecolor="k")
                if split == "test":
                    notes.append(f"{dataset} {act}: mu {mus[best]:g}, validation error "
                                 f"{100 * (1 - choice[(dataset, act)]['valid_accuracy']):.3g}%, "
                                 f"test error {mean[best]:.3g}%")
            ax.set_xscale("log")
            ax.set_xlabel("weight decay mu")
            ax.set_ylabel("error rate (%)")
            ax.set_title(f"{dataset}, {act}, hidden {list(profile.hidden)}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("Baselines against their weight decay (mean +- std over "
                 f"{len(profile.seeds)} seeds); star: the chosen weight decay, best "
                 "validation accuracy")
    files = save_figure(fig, out, "baseline_weight_decay")
    return files + [save_csv(out, "baseline_weight_decay", rows)], (
        f"chosen: {CHOICE_RULE}. " + "; ".join(notes))
