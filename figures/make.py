"""One function per figure: (records of the sweeps, profile, output directory) -> files.

Each function writes NAME.png, NAME.pdf and NAME.csv (the data behind the figure: one row per
run and plotted quantity, with the run's key so that every value can be traced to its record
in RESULTS/records/<key>.json) and returns a short description with the numbers that matter.
FIGURES is the registry, in the order the index lists them: name -> (function, the sweeps
it reads); a new figure is one function plus one entry.  Each sweep entry is a name of
figures.profiles.SWEEPS, or a tuple of alternatives in order of preference (the first one the
profile runs is read; None last: the figure can do without), so that a figure applies to a
profile that runs a sweep of each entry (`figure_sweeps`) and says why not otherwise.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from figures import claims, size_baselines  # noqa: E402
from figures.common import (  # noqa: E402  (ok_records, mean_std, save_*: the figures' API)
    COLOURS,
    baseline_choice,
    is_chosen,
    load_net,
    mean_std,
    nearest,
    ok_records,
    pick,
    save_csv,
    save_figure,
)
from figures.profiles import BASELINES, DATASETS, REGS, config_of  # noqa: E402
from reference.convex import _solve as convex  # noqa: E402
from reference.convex._problem import numpy_objective  # noqa: E402
from reference.data import _datasets as datasets  # noqa: E402
from reference.exceptions import SolveFailed  # noqa: E402
from reference.io._files import write_text  # noqa: E402
from reference.nn._network import KnotSplineActivation, SplineActivation  # noqa: E402

__all__ = ["FIGURES", "figure_sweeps", "mean_std", "ok_records", "save_csv", "save_figure"]

LADDER_METHODS = {"theorem1_bv2": "Theorem 1, BV2 form (paper)",
                  "theorem1": "Theorem 1, exact slopes", "layerwise": "layer-wise",
                  "lipsdp_neuron": "LipSDP-neuron", "lower": "lower bound (sampled)"}
LAMBDA_METRICS = {
    "lambda_error_rate": ("test error rate (%)", lambda r: 100.0 * (1 - r["test_accuracy"]),
                          False),
    "lambda_sparsity": ("knots (|slope jump| > tolerance)", lambda r: float(sum(r["knots"])),
                        False),
    "lambda_lipschitz": ("Lipschitz bound (Theorem 1, BV2, p=2)",
                         lambda r: r["lipschitz_bound"], True),
}


# ---------------------------------------------------------------------------- helpers
def _lambda_rows(records, name, value, curve=None, choice=None) -> list:
    """One row per run: its config, key and value; `curve` (default: the regulariser of a
    spline run) names the line it belongs to; a baseline's `chosen` says whether its weight
    decay is the one `choice` (baseline_choice) picked."""
    rows = []
    for r in records:
        c = config_of(r)
        spline = c.activation == "spline"
        rows.append({"figure": name, "dataset": c.dataset, "activation": c.activation,
                     "reg": c.reg if spline else "", "lam": c.lam if spline else "",
                     "mu": c.mu, "seed": c.seed,
                     "curve": curve or (c.reg if spline else c.activation),
                     "chosen": "" if spline or choice is None else is_chosen(r, choice),
                     "key": r["key"], "value": value(r)})
    return rows


def _spline_curve(rows, dataset, curve):
    """lams (sorted), mean and std over seeds of the spline rows of (dataset, curve)."""
    sel = [r for r in rows if r["dataset"] == dataset and r["activation"] == "spline"
           and r["curve"] == curve and r["value"] is not None]
    lams = sorted({r["lam"] for r in sel})
    stats = [mean_std([r["value"] for r in sel if r["lam"] == lam]) for lam in lams]
    return np.array(lams), np.array([s[0] for s in stats]), np.array([s[1] for s in stats])


def baseline_label(act: str, choice: dict, dataset: str, profile) -> str:
    """A baseline's legend: its chosen weight decay when the profile has a grid of them."""
    if not profile.baseline_mus:
        return f"{act} (mean over seeds)"
    return f"{act}, mu {choice[(dataset, act)]['mu']:g} (best validation acc.)"


# ------------------------------------------------------------ lambda sweep: 3 plots
SPARSITY_VARIANTS = {   # extra curves of the sparsity figure: label -> (sweep, knots of a run)
    "TV2, Adam alone (before sparsify)": ("lambda", lambda r: r["sparsify"]["knots_before"]),
    "TV2, proximal step (no sparsify)": ("prox", lambda r: float(sum(r["knots"]))),
}


def lambda_figure(name: str):
    label, value, log_y = LAMBDA_METRICS[name]

    def make(sweeps, profile, out):
        records = ok_records(sweeps["lambda"])
        choice = baseline_choice(records)
        rows = _lambda_rows(records, name, value, choice=choice)
        variants = [v for v, (sweep, _) in SPARSITY_VARIANTS.items()
                    if name == "lambda_sparsity" and sweep in sweeps]   # prox: if it ran
        for variant in variants:
            sweep, knots = SPARSITY_VARIANTS[variant]
            extra = [r for r in ok_records(sweeps[sweep])
                     if r["activation"] == "spline" and config_of(r).reg == "tv2"]
            rows += _lambda_rows(extra, name, knots, curve=variant)
        fig, axes = plt.subplots(1, len(DATASETS), layout='constrained',
                                 figsize=(5.5 * len(DATASETS), 4))
        notes = []
        for ax, dataset in zip(axes, DATASETS):
            for reg in list(REGS) + variants:
                lams, mean, std = _spline_curve(rows, dataset, reg)
                title = (f"spline, {reg.upper()}" + (", sparsify auto" if name ==
                                                      "lambda_sparsity" else "")
                         if reg in REGS else f"spline, {reg}")
                colour = COLOURS.get(reg)
                ax.plot(lams, mean, "o-" if reg in REGS else "s--", color=colour, label=title)
                ax.fill_between(lams, mean - std, mean + std, color=colour, alpha=0.2)
                notes.append(f"{dataset} {title}: {mean[0]:.4g} at lambda {lams[0]:g}, "
                             f"{mean[-1]:.4g} at lambda {lams[-1]:g}")
            if name != "lambda_sparsity":
                for act in BASELINES:
                    base = [r["value"] for r in rows if r["dataset"] == dataset
                            and r["activation"] == act and r["chosen"]]
                    legend = baseline_label(act, choice, dataset, profile)
                    ax.axhline(np.mean(base), color=COLOURS[act], ls="--", lw=1, label=legend)
                    notes.append(f"{dataset} {legend}: {np.mean(base):.4g}")
            ax.set_xscale("log")
            if log_y:
                ax.set_yscale("log")
            ax.set_xlabel(r"$\lambda$")
            ax.set_ylabel(label)
            ax.set_title(f"{dataset}, hidden {list(profile.hidden)}")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{label} against lambda (mean +- std over {len(profile.seeds)} seeds)"
                     + ("; baselines at the weight decay of best validation accuracy"
                        if profile.baseline_mus and name != "lambda_sparsity" else ""))
        files = save_figure(fig, out, name) + [save_csv(out, name, rows)]
        return files, "; ".join(notes)
    return make


# ------------------------------------------------------------- the Lipschitz ladder
def lambda_lipschitz_ladder(sweeps, profile, out):
    records = [r for r in ok_records(sweeps["lambda"]) if r["activation"] == "spline"]
    rows = []
    for method in LADDER_METHODS:
        rows += [{**row, "method": method} for row in _lambda_rows(
            records, "lambda_lipschitz_ladder",
            lambda r, m=method: r["ladder"]["2"][m]["value"])]
    fig, axes = plt.subplots(len(REGS), len(DATASETS), layout='constrained',
                             figsize=(5.5 * len(DATASETS), 8),
                             squeeze=False)
    notes = []
    for i, reg in enumerate(REGS):
        for j, dataset in enumerate(DATASETS):
            ax = axes[i][j]
            for method, label in LADDER_METHODS.items():
                lams, mean, std = _spline_curve([r for r in rows if r["method"] == method],
                                                dataset, reg)
                if len(lams):
                    ax.plot(lams, mean, "o-", label=label, ms=3)
                    ax.fill_between(lams, mean - std, mean + std, alpha=0.15)
                if method in ("theorem1_bv2", "lower") and reg == "tv2" and len(lams):
                    notes.append(f"{dataset} TV2 {method}: {mean[0]:.4g} -> {mean[-1]:.4g}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(r"$\lambda$")
            ax.set_ylabel("Lipschitz constant, p = 2")
            ax.set_title(f"{dataset}, spline {reg.upper()}")
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("The Lipschitz ladder (p = 2): the true constant lies between LipSDP-neuron "
                 "and the lower bound (equal where the lines meet)")
    files = save_figure(fig, out, "lambda_lipschitz_ladder")
    return files + [save_csv(out, "lambda_lipschitz_ladder", rows)], "; ".join(notes)


# ------------------------------------------------------------------- activations
def activations(sweeps, profile, out):
    """The learned activations (circle, TV2, first seed) at the smallest and the largest
    lambda: one row per lambda and spline layer, one panel per neuron."""
    records = ok_records(sweeps["lambda"])
    lams = (min(profile.lams), max(profile.lams))
    chosen = [pick(records, dataset="circle", activation="spline", reg="tv2", lam=lam,
                   seed=profile.seeds[0]) for lam in lams]
    nets = [load_net(sweeps["results"], r) for r in chosen]
    layers = [i for i, layer in enumerate(nets[0].layers) if isinstance(layer, SplineActivation)]
    width = max(nets[0].layers[i].n_in for i in layers)
    fig, axes = plt.subplots(len(lams) * len(layers), width, layout='constrained',
                             figsize=(3.2 * width, 3 * len(lams) * len(layers)),
                             squeeze=False)
    rows, notes = [], []
    panels = [(lam, net, record, i) for lam, net, record in zip(lams, nets, chosen)
              for i in layers]
    for row_axes, (lam, net, record, i) in zip(axes, panels):
        spline = net.layers[i].spline
        for n, ax in enumerate(row_axes):
            if n >= spline.num_channels:
                ax.axis("off")
                continue
            x = np.linspace(spline.grid[0] - spline.step, spline.grid[-1] + spline.step, 401)
            y = spline(np.tile(x[:, None], (1, spline.num_channels)))[:, n]
            knots = spline.knots()[0][n]
            ax.plot(x, y, color="tab:blue")
            ax.plot(knots, spline(np.tile(knots[:, None], (1, spline.num_channels)))[:, n]
                    if len(knots) else [], "o", color="tab:red", ms=4, label="knots")
            ax.set_title(f"lambda {lam:g}: layer {i} neuron {n}, {len(knots)} knots",
                         fontsize=8)
            ax.grid(True, alpha=0.3)
            for k, t in enumerate(spline.grid):
                rows.append({"lam": lam, "key": record["key"], "layer": i, "neuron": n,
                             "x": t, "sigma": spline.coefficients[n, k],
                             "knot": bool(np.any(np.isclose(knots, t)))})
    for lam, record in zip(lams, chosen):
        notes.append(f"lambda {lam:g}: {sum(record['knots'])} knots in total")
    fig.suptitle(f"Learned activations, circle, TV2, seed {profile.seeds[0]} (grid values; "
                 "knots = |slope jump| above the tolerance, after sparsify auto)")
    files = save_figure(fig, out, "activations") + [save_csv(out, "activations", rows)]
    return files, "; ".join(notes)


# ------------------------------------------------------------ decision boundaries
def _true_boundary(ax, dataset):
    g = np.linspace(-1, 1, 401)
    g1, g2 = np.meshgrid(g, g, indexing="ij")
    points = np.stack([g1.ravel(), g2.ravel()], axis=1)
    labels = (datasets.circle_labels if dataset == "circle" else datasets.s_shape_labels)(points)
    ax.contour(g1, g2, labels.reshape(g1.shape), levels=[0.5], colors="k", linewidths=1.2)


def _boundary_runs(sweeps, profile, dataset) -> tuple:
    """The runs of the decision-boundary panels of a data set (spline, then each baseline;
    first seed) and how they were chosen: the width sweep's at boundary_width when the
    profile runs it, else the lambda sweep's (the spline network at boundary_lam, TV2; each
    baseline at its weight decay of best validation accuracy)."""
    seed = profile.seeds[0]
    if "width" in sweeps:
        records = ok_records(sweeps["width"])
        runs = [pick(records, dataset=dataset, activation=act, hidden=(profile.boundary_width,),
                     seed=seed) for act in ("spline",) + BASELINES]
        return runs, f"width {profile.boundary_width}"
    records = ok_records(sweeps["lambda"])
    choice = baseline_choice(records)
    lam = nearest(profile.lams, profile.boundary_lam)
    runs = [pick(records, dataset=dataset, activation="spline", reg="tv2", lam=lam, seed=seed)]
    runs += [pick(records, dataset=dataset, activation=act, seed=seed,
                  mu=choice[(dataset, act)]["mu"]) for act in BASELINES]
    return runs, (f"hidden {list(profile.hidden)}, spline TV2 lambda {lam:g}, baselines at "
                  "the weight decay of best validation accuracy")


def decision_boundaries(sweeps, profile, out):
    acts = ("spline",) + BASELINES
    fig, axes = plt.subplots(len(DATASETS), len(acts), layout='constrained',
                             figsize=(3.2 * len(acts), 3.3 * 2),
                             squeeze=False)
    rows, notes = [], []
    for row_axes, dataset in zip(axes, DATASETS):
        ds = datasets.load(dataset, seed=profile.seeds[0])
        g = np.linspace(-1, 1, 201)
        g1, g2 = np.meshgrid(g, g, indexing="ij")
        grid = np.stack([g1.ravel(), g2.ravel()], axis=1)
        runs, how = _boundary_runs(sweeps, profile, dataset)
        for ax, act, record in zip(row_axes, acts, runs):
            c = config_of(record)
            net = load_net(sweeps["results"], record)
            logit = net.forward(grid)[:, 0].reshape(g1.shape)
            ax.contourf(g1, g2, logit > 0, levels=[-0.5, 0.5, 1.5],
                        colors=["#f3f3f3", "#bcd7f0"])
            sub = slice(0, 400)
            ax.scatter(ds.x_train[sub, 0], ds.x_train[sub, 1], c=ds.y_train[sub], s=3,
                       cmap="coolwarm", vmin=0, vmax=1)
            _true_boundary(ax, dataset)
            what = act if act == "spline" or not profile.baseline_mus else f"{act}, mu {c.mu:g}"
            ax.set_title(f"{dataset}, {what}: test acc {record['test_accuracy']:.3f}",
                         fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
            rows.append({"dataset": dataset, "activation": act,
                         "width": ",".join(str(w) for w in c.hidden),
                         "lam": c.lam if act == "spline" else "", "mu": c.mu,
                         "seed": c.seed, "key": record["key"], "model": record["model"],
                         "test_accuracy": record["test_accuracy"]})
            notes.append(f"{dataset} {act} {record['test_accuracy']:.3f}")
    fig.suptitle(f"Decision regions (blue: class 1), {how}; black: the true boundary; dots: "
                 "400 training points")
    files = save_figure(fig, out, "decision_boundaries")
    return files + [save_csv(out, "decision_boundaries", rows)], "test accuracy: " + \
        ", ".join(notes) + f" ({how})"


# ------------------------------------------------------------------- representer
def _representer_candidates(sweeps, profile) -> list:
    """The runs the representer figure tries, in order: the lambda sweep's circle TV2 run at
    representer_lam (first seed), then those of profile.representer_runs ((sweep, RunConfig
    fields) of circle spline runs, first seed) whose sweep ran."""
    seed = profile.seeds[0]
    first = pick(ok_records(sweeps["lambda"]), dataset="circle", activation="spline",
                 reg="tv2", lam=nearest(profile.lams, profile.representer_lam), seed=seed)
    return [first] + [pick(ok_records(sweeps[sweep]), dataset="circle", activation="spline",
                           seed=seed, **fields)
                      for sweep, fields in profile.representer_runs if sweep in sweeps]


def _run_name(config) -> str:
    return (f"{config.dataset}, {config.reg.upper()}, hidden {list(config.hidden)}, K = "
            f"{config.size}, lambda {config.lam:g}")


def representer(sweeps, profile, out):
    """The last spline layer of a trained network against the exact continuous-domain
    optimum of that layer with every other weight fixed (certified): the first run of
    `_representer_candidates` whose layer problem the solver certifies; the runs before it
    are named in the summary with the solver's status.

    The layer problem sums the data term over the M training samples (convex.solve_layer):
    a network trained under DeepSplines' convention (mean data term + lam R per batch)
    minimised 1/M times it with lambda M lam, which the problem then takes."""
    failures = []
    for record in _representer_candidates(sweeps, profile):
        config = config_of(record)
        net = load_net(sweeps["results"], record)
        layer = max(i for i, l in enumerate(net.layers) if isinstance(l, SplineActivation))
        ds = datasets.load(config.dataset, seed=config.seed)
        loss, reg, lam = record["loss"], config.reg, config.lam
        scale = len(ds.x_train) if config.convention == "deepsplines" else 1
        lam_sum = lam * scale                 # lambda of the summed data term
        try:
            solved, cert = convex.solve_layer(net, layer, ds.x_train, ds.y_train, loss=loss,
                                              lam=lam_sum, reg=reg, grid="data")
            break
        except SolveFailed as exc:            # named in the summary; the next run is tried
            failures.append(f"{_run_name(config)} (seed {config.seed}): not certified, "
                            f"{str(exc).split(' (attempts')[0]}")
    else:
        raise SolveFailed("representer: no run's layer problem was certified: "
                          + "; ".join(failures))
    trained_value = numpy_objective(net, layer, ds.x_train, ds.y_train, loss, lam_sum, reg)
    if cert["objective_check"] > trained_value * (1 + 1e-9):
        raise RuntimeError(f"representer: the certified optimum {cert['objective_check']} is "
                           f"above the trained network's objective {trained_value}")
    problem = (f"{_run_name(config)}" if scale == 1 else
               f"{_run_name(config)} per batch (DeepSplines' convention: the summed "
               f"problem's lambda is M lambda = {lam_sum:g})")
    z = ds.x_train
    for l in net.layers[:layer]:
        z = l.forward(z)[0]
    trained, optimum = net.layers[layer], solved.layers[layer]
    assert isinstance(optimum, KnotSplineActivation)
    width = trained.n_in
    fig, axes = plt.subplots(1, width, layout='constrained',
                             figsize=(4.5 * width, 3.8), squeeze=False)
    rows = []
    for n, ax in enumerate(axes[0]):
        lo, hi = z[:, n].min(), z[:, n].max()
        pad = 0.1 * (hi - lo)
        x = np.linspace(lo - pad, hi + pad, 600)
        xs = np.tile(x[:, None], (1, width))
        ax.plot(x, trained.forward(xs)[0][:, n], label="trained (sparsified)")
        ax.plot(x, optimum.forward(xs)[0][:, n], label="exact optimum, weights fixed")
        spline = optimum.spline
        rule = cert["knot_rule"]
        knots = spline.knots[n][np.abs(spline.jumps[n]) > rule["threshold"][n]]
        at_data = int(np.isin(knots, z[:, n]).sum())
        certain, possible = cert["knots_bracket"][n]
        count = (f"{len(knots)}" if certain == possible else
                 f"{len(knots)} (between {certain} and {possible})")
        ax.plot(knots, optimum.forward(np.tile(knots[:, None], (1, width)))[0][:, n]
                if len(knots) else [], "o", color="tab:red", ms=4,
                label=f"optimum's knots: {count}, {at_data} at data points")
        ax.plot(z[:, n], np.full(len(z), ax.get_ylim()[0]), "|", color="grey", ms=4, alpha=0.3)
        ax.set_title(f"layer {layer}, neuron {n}", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, title=(f"objective: trained {trained_value:.6g}\n"
                                     f"optimum {cert['objective_check']:.6g}"),
                  title_fontsize=7)
        for p, v in zip(optimum.points[n], optimum.values[n]):
            rows.append({"neuron": n, "z": p, "optimum": v,
                         "trained": trained.forward(np.full((1, width), p))[0][0, n],
                         "knot": bool(np.any(knots == p))})
    gap = "n/a" if cert["gap"] is None else f"{cert['gap']:.1e}"
    how = ("exact knot count" if cert["knot_rule"]["decided"] else
           "knot count bracketed [certain, possible]" if cert["knot_rule"]["jump_accuracy"]
           is not None else "knots above the tolerance (accuracy not estimated)")
    fig.suptitle(f"Representer theorem, {problem}, {loss} loss: solver "
                 f"{cert['solver']} {cert['status']} (certified by the "
                 f"{cert['certified_by']}), gap {gap}; {how}", fontsize=9)
    files = save_figure(fig, out, "representer") + [save_csv(out, "representer", rows)]
    tried = "" if not failures else " Tried first: " + "; ".join(failures) + "."
    bracket = "" if cert["knot_rule"]["decided"] else \
        f" (between [certain, possible] {cert['knots_bracket']})"
    return files, (f"{problem}: layer {layer}, trained objective {trained_value:.6g}, exact "
                   f"optimum {cert['objective_check']:.6g} (solver {cert['status']}, "
                   f"certified by the {cert['certified_by']}, gap {gap}), knots per neuron "
                   f"{cert['knots']}{bracket}, a jump counted above thresholds "
                   f"{[float(f'{t:.2g}') for t in cert['knot_rule']['threshold']]}.{tried}")


# --------------------------------------------------------------------- width table
def width_table(sweeps, profile, out):
    records = ok_records(sweeps["width"])
    acts = ("spline",) + BASELINES
    rows = []
    for dataset in DATASETS:
        for act in acts:
            for width in profile.widths:
                accs = [r["test_accuracy"] for r in records
                        if config_of(r).dataset == dataset and config_of(r).activation == act
                        and config_of(r).hidden == (width,)]
                mean, std = mean_std(accs)
                rows.append({"dataset": dataset, "activation": act, "width": width,
                             "seeds": len(accs), "test_accuracy_mean": mean,
                             "test_accuracy_std": std})
    lines = ["| data set | activation | " + " | ".join(f"width {w}" for w in profile.widths)
             + " |", "|---|---|" + "---|" * len(profile.widths)]
    for dataset in DATASETS:
        for act in acts:
            cells = [f"{r['test_accuracy_mean']:.4f} +- {r['test_accuracy_std']:.4f}"
                     for r in rows if r["dataset"] == dataset and r["activation"] == act]
            lines.append(f"| {dataset} | {act} | " + " | ".join(cells) + " |")
    markdown = write_text(out / "width_table.md", "\n".join(lines) + "\n", "--out")
    fig, axes = plt.subplots(1, len(DATASETS), layout='constrained',
                             figsize=(5.5 * len(DATASETS), 4))
    for ax, dataset in zip(axes, DATASETS):
        for act in acts:
            sel = [r for r in rows if r["dataset"] == dataset and r["activation"] == act]
            ax.errorbar([r["width"] for r in sel], [r["test_accuracy_mean"] for r in sel],
                        yerr=[r["test_accuracy_std"] for r in sel], marker="o", capsize=3,
                        label=act, color=COLOURS[act])
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(profile.widths), [str(w) for w in profile.widths])
        ax.set_xlabel("hidden width")
        ax.set_ylabel("test accuracy")
        ax.set_title(dataset)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Test accuracy (mean +- std over {len(profile.seeds)} seeds), spline lambda "
                 f"{profile.width_lam:g} TV2")
    files = save_figure(fig, out, "width_table") + [save_csv(out, "width_table", rows),
                                                    markdown]
    best = {d: max((r for r in rows if r["dataset"] == d and r["width"] == profile.widths[0]),
                   key=lambda r: r["test_accuracy_mean"])["activation"] for d in DATASETS}
    return files, f"best at width {profile.widths[0]}: {best}"


FIGURES = {
    "claims": (claims.claims, ("lambda",)),
    "lambda_error_rate": (lambda_figure("lambda_error_rate"), ("lambda",)),
    "lambda_sparsity": (lambda_figure("lambda_sparsity"), ("lambda", ("prox", None))),
    "lambda_lipschitz": (lambda_figure("lambda_lipschitz"), ("lambda",)),
    "lambda_lipschitz_ladder": (lambda_lipschitz_ladder, ("lambda",)),
    "baseline_weight_decay": (size_baselines.baseline_weight_decay, ("lambda",)),
    "spline_size": (size_baselines.spline_size, ("size",)),
    "activations": (activations, ("lambda",)),
    "decision_boundaries": (decision_boundaries, (("width", "lambda"),)),
    "representer": (representer, ("lambda", ("size", None))),
    "width_table": (width_table, ("width",)),
}


def figure_sweeps(name: str, profile) -> tuple:
    """The sweeps figure `name` reads under `profile`, and why it does not apply.

    Parameters
    ----------
    name : str
        A name of FIGURES.
    profile : figures.profiles.Profile
        The profile; its ``sweeps`` are the sweeps it runs.

    Returns
    -------
    sweeps : tuple of str or None
        For each entry of the figure's sweeps, the first alternative the profile runs
        (an optional entry the profile does not run is left out); None when an entry has
        no alternative the profile runs.
    reason : str or None
        Why the figure does not apply (None when it does).
    """
    chosen = []
    for entry in FIGURES[name][1]:
        options = entry if isinstance(entry, tuple) else (entry,)
        found = [s for s in options if s is None or s in profile.sweeps]
        if not found:
            wanted = " or ".join(f"the {s} sweep" for s in options)
            return None, (f"does not apply to the {profile.name} profile: it reads {wanted}, "
                          f"which the profile does not run (its sweeps: "
                          f"{', '.join(profile.sweeps)})")
        if found[0] is not None:
            chosen.append(found[0])
    return tuple(chosen), None
