"""The profiles of the figures: which sweeps they run.

A profile fixes the training recipe and the grids of the two sweeps that every figure reads:
- the lambda sweep: spline networks (TV2 and BV2) over the lambda grid, plus the ReLU /
  PReLU / LeakyReLU networks of the same widths (one config each: lambda does not apply);
- the prox sweep: the same spline networks (TV2) trained with the proximal step instead;
- the width sweep: every activation at each width of WIDTHS, spline networks at one lambda.

Profiles:
- quick: a small profile for the tests and `reproduce` (about a minute on 2 cores);
- default: the project's training recipe (`train`'s defaults: one hidden layer, K = 21 on
  [-2, 2], Adam lr 1e-2, batch 16, 100 epochs), 7 lambdas from 1e-6 to 1, 5 seeds;
- twodnet: DeepSplines' published twoDnet recipe (two hidden layers of 4, K = 21 on [-1, 1],
  Adam lr 1e-3, batch 10, 500 epochs); about 100 s a spline run here, so its sweeps take
  hours on 2 cores: run it on a cluster (`--scheduler`).
Every spline run is sparsified with `sparsify='auto'` (the paper's knot count).

SWEEPS is the registry of the sweeps (name -> the Profile method that lists its configs): a
new sweep is one method plus one entry; figures name the sweeps they read in FIGURES
(figures/make.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from reference.training._experiments import RunConfig
from reference.training._sweep import expand

DATASETS = ("circle", "s_shape")
BASELINES = ("relu", "prelu", "leaky_relu")
ACTIVATIONS = ("spline",) + BASELINES
REGS = ("tv2", "bv2")


@dataclass(frozen=True)
class Profile:
    """A figure profile: the recipe (RunConfig fields shared by every run) and the grids."""
    name: str
    lams: tuple
    seeds: tuple
    hidden: tuple                     # widths of the lambda sweep's networks
    widths: tuple                     # hidden widths of the width sweep (one hidden layer)
    width_lam: float                  # lambda of the spline runs of the width sweep
    representer_lam: float            # lambda of the representer figure (nearest in lams)
    boundary_width: int               # width of the decision-boundary panels (width sweep)
    recipe: dict = field(default_factory=dict)

    def lambda_configs(self) -> list:
        """The lambda sweep: spline x REGS x lams x seeds, and each baseline x seeds."""
        splines = expand(dataset=list(DATASETS), activation="spline", hidden=[self.hidden],
                         reg=list(REGS), lam=list(self.lams), seeds=list(self.seeds),
                         **self.recipe)
        baselines = expand(dataset=list(DATASETS), activation=list(BASELINES),
                           hidden=[self.hidden], seeds=list(self.seeds), **self.recipe)
        return splines + baselines

    def prox_configs(self) -> list:
        """Spline networks trained with the proximal TV2 step (exact zeros, no sparsify):
        the third curve of the sparsity figure."""
        return expand(dataset=list(DATASETS), activation="spline", hidden=[self.hidden],
                      reg="tv2", lam=list(self.lams), seeds=list(self.seeds), prox=True,
                      sparsify=None, **self.recipe)

    def width_configs(self) -> list:
        """The width sweep: every activation x WIDTHS x seeds (splines: TV2, width_lam)."""
        return expand(dataset=list(DATASETS), activation=list(ACTIVATIONS),
                      hidden=[(w,) for w in self.widths], reg="tv2", lam=self.width_lam,
                      seeds=list(self.seeds), **self.recipe)

    def describe(self) -> str:
        recipe = ", ".join(f"{k}={v}" for k, v in sorted(self.recipe.items()))
        return (f"profile {self.name}: hidden {list(self.hidden)}, lambdas "
                f"{[f'{v:g}' for v in self.lams]}, seeds {list(self.seeds)}, widths "
                f"{list(self.widths)} (spline lambda {self.width_lam:g}), {recipe}")


SWEEPS = {"lambda": Profile.lambda_configs, "prox": Profile.prox_configs,
          "width": Profile.width_configs}   # sweep name (as FIGURES lists them) -> its configs


PROFILES = {
    "quick": Profile("quick", lams=(1e-4, 1e-2, 1e-1, 1.0), seeds=(0, 1), hidden=(2,),
                     widths=(2, 4, 8), width_lam=1e-4, representer_lam=1e-1,
                     boundary_width=4, recipe={"epochs": 6, "batch_size": 32, "lr": 2e-2}),
    "default": Profile("default", lams=(1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0),
                       seeds=(0, 1, 2, 3, 4), hidden=(2,), widths=(2, 4, 8), width_lam=1e-4,
                       representer_lam=1e-1, boundary_width=4,
                       recipe={"epochs": 100, "batch_size": 16, "lr": 1e-2}),
    "twodnet": Profile("twodnet", lams=(1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0),
                       seeds=(0, 1, 2, 3, 4), hidden=(4, 4), widths=(2, 4, 8), width_lam=1e-5,
                       representer_lam=1e-1, boundary_width=4,
                       recipe={"epochs": 500, "batch_size": 10, "lr": 1e-3, "size": 21,
                               "range_": 1.0}),
}


def config_of(record: dict) -> RunConfig:
    return RunConfig.from_dict(record["run_config"])
