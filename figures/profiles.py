"""The profiles of the figures: which sweeps they run.

A profile fixes the training recipe, the sweeps it runs (`Profile.sweeps`, names of SWEEPS)
and their grids:
- the lambda sweep: spline networks (TV2 and BV2) over the lambda grid, plus the ReLU /
  PReLU / LeakyReLU networks of the same widths (one config each, or one per weight decay
  of `baseline_mus`: lambda does not apply);
- the prox sweep: the same spline networks (TV2) trained with the proximal step instead;
- the width sweep: every activation at each width of WIDTHS, spline networks at one lambda;
- the size sweep: spline networks over a grid of spline sizes K (`size_grid`).

Profiles:
- quick: a small profile for the tests and `reproduce` (about a minute on 2 cores);
- default: the project's training recipe (`train`'s defaults: one hidden layer, K = 21 on
  [-2, 2], Adam lr 1e-2, batch 16, 100 epochs), 7 lambdas from 1e-6 to 1, 5 seeds;
- twodnet: DeepSplines' twoDnet network (two hidden layers of 4, K = 21 on [-1, 1], Adam lr
  1e-3, batch 10, 500 epochs) on the project's conventions (weight decay 1e-4 on the
  weights, lr x0.1 at 75% and 90% of the epochs, a first-layer bias, 7 lambdas);
- paper: DeepSplines' own recipe (scripts/run_twoDnet.py and the grid searches of the
  paper's era): twoDnet with the first dense layer without bias for splines, its per-batch
  objective (convention 'deepsplines': mean BCE, (mu / 2) ||theta||^2 on weights and
  biases, lam R per batch), mu = 1e-5, lr x0.1 at epochs 440 and 480 of 500, batch 10,
  the cell-centre test grid; lambda in {1e-6, ..., 1e-2}; the baselines over weight decays
  {1e-6, ..., 1e-2}; the spline-size sweep (K = 3 .. 151, one hidden layer of 2, BV2,
  lambda 1e-4, circle). It needs the compiled training engine (a minute of NumPy
  steps per 100 epochs; TrainConfig.engine).
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
CLASSIC_SWEEPS = ("lambda", "prox", "width")     # what the profiles of 0.1 run


@dataclass(frozen=True)
class Profile:
    """A figure profile: the recipe (RunConfig fields shared by every run), the sweeps it
    runs and their grids.

    `spline_recipe` adds RunConfig fields to the spline runs only (DeepSplines' twoDnet has
    no first-layer bias with splines, a bias with ReLU); `baseline_mus`, when not empty,
    runs each baseline at each of these weight decays (the figures then show each at the
    one of best validation accuracy); `size_grid` holds the RunConfig fields of the size
    sweep's spline runs (lists: their choices); `boundary_lam` is the lambda of the spline
    panel of the decision boundaries when the profile runs no width sweep;
    `representer_runs` lists the runs the representer figure tries, in order, when the
    layer problem of the lambda sweep's run is not certified.  At their defaults the
    configs are those of 0.1, key for key (cached records stay valid).
    """
    name: str
    lams: tuple
    seeds: tuple
    hidden: tuple                     # widths of the lambda sweep's networks
    widths: tuple                     # hidden widths of the width sweep (one hidden layer)
    width_lam: float                  # lambda of the spline runs of the width sweep
    representer_lam: float            # lambda of the representer figure (nearest in lams)
    boundary_width: int               # width of the decision-boundary panels (width sweep)
    recipe: dict = field(default_factory=dict)
    sweeps: tuple = CLASSIC_SWEEPS    # the sweeps the profile runs (names of SWEEPS)
    spline_recipe: dict = field(default_factory=dict)
    baseline_mus: tuple = ()
    size_grid: dict = field(default_factory=dict)
    boundary_lam: float = 1e-4        # lambda of the spline panel without a width sweep
    representer_runs: tuple = ()      # the representer's next runs: (sweep, RunConfig fields)

    def __post_init__(self):
        unknown = [s for s in self.sweeps if s not in SWEEPS]
        if unknown:
            raise ValueError(f"profile {self.name}: unknown sweeps {unknown}, expected names "
                             f"from {list(SWEEPS)}")

    def lambda_configs(self) -> list:
        """The lambda sweep: spline x REGS x lams x seeds, and each baseline x seeds (x
        baseline_mus when given)."""
        splines = expand(dataset=list(DATASETS), activation="spline", hidden=[self.hidden],
                         reg=list(REGS), lam=list(self.lams), seeds=list(self.seeds),
                         **{**self.recipe, **self.spline_recipe})
        mus = {"mu": list(self.baseline_mus)} if self.baseline_mus else {}
        baselines = expand(dataset=list(DATASETS), activation=list(BASELINES),
                           hidden=[self.hidden], seeds=list(self.seeds),
                           **{**self.recipe, **mus})
        return splines + baselines

    def prox_configs(self) -> list:
        """Spline networks trained with the proximal TV2 step (exact zeros, no sparsify):
        the third curve of the sparsity figure."""
        return expand(dataset=list(DATASETS), activation="spline", hidden=[self.hidden],
                      reg="tv2", lam=list(self.lams), seeds=list(self.seeds), prox=True,
                      sparsify=None, **{**self.recipe, **self.spline_recipe})

    def width_configs(self) -> list:
        """The width sweep: every activation x WIDTHS x seeds (splines: TV2, width_lam)."""
        return expand(dataset=list(DATASETS), activation=list(ACTIVATIONS),
                      hidden=[(w,) for w in self.widths], reg="tv2", lam=self.width_lam,
                      seeds=list(self.seeds), **self.recipe)

    def size_configs(self) -> list:
        """The size sweep: spline networks over size_grid (e.g. size: the K of each run)
        x seeds, on the recipe and spline_recipe; none when size_grid is empty."""
        if not self.size_grid:
            return []
        return expand(activation="spline", seeds=list(self.seeds),
                      **{**self.recipe, **self.spline_recipe, **self.size_grid})

    def describe(self) -> str:
        recipe = ", ".join(f"{k}={v}" for k, v in sorted(self.recipe.items()))
        text = (f"profile {self.name}: hidden {list(self.hidden)}, lambdas "
                f"{[f'{v:g}' for v in self.lams]}, seeds {list(self.seeds)}, ")
        if "width" in self.sweeps:
            text += f"widths {list(self.widths)} (spline lambda {self.width_lam:g}), "
        text += recipe
        if self.spline_recipe:
            text += "; splines only: " + ", ".join(f"{k}={v}" for k, v in
                                                    sorted(self.spline_recipe.items()))
        if self.baseline_mus:
            text += f"; baselines at weight decays {[f'{v:g}' for v in self.baseline_mus]}"
        if "size" in self.sweeps:
            text += "; size sweep: " + ", ".join(f"{k}={v}" for k, v in
                                                 sorted(self.size_grid.items()))
        return text


SWEEPS = {"lambda": Profile.lambda_configs, "prox": Profile.prox_configs,
          "width": Profile.width_configs,
          "size": Profile.size_configs}   # sweep name (as FIGURES lists them) -> its configs

# DeepSplines' twoDnet recipe (scripts/run_twoDnet.py, deepsplines 1.0.0), its sweeps those of
# the paper's era (scripts/gridsearch/twoD, scripts/bash/twoDnet_lipschitz_single_lmbda.sh)
PAPER_RECIPE = {"epochs": 500, "batch_size": 10, "lr": 1e-3, "size": 21, "range_": 1.0,
                "mu": 1e-5, "milestones": (0.88, 0.96), "convention": "deepsplines",
                "test_grid": "centres"}
PAPER_SIZES = (3, 5, 7, 11, 15, 21, 31, 51, 81, 101, 121, 151)
DECADES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)

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
    "paper": Profile("paper", lams=DECADES, seeds=(0, 1, 2, 3, 4), hidden=(4, 4), widths=(),
                     width_lam=1e-4, representer_lam=1e-2, boundary_width=4,
                     recipe=PAPER_RECIPE, sweeps=("lambda", "size"),
                     spline_recipe={"first_bias": False}, baseline_mus=DECADES,
                     size_grid={"dataset": "circle", "hidden": [(2,)], "reg": "bv2",
                                "lam": 1e-4, "size": list(PAPER_SIZES)},
                     boundary_lam=1e-5,
                     # the (4, 4) networks' last-layer problem is not certified by CLARABEL
                     # (optimal_inaccurate: nearly separable data, logits up to 50); the
                     # size sweep's network of the paper's era, K = 21, is
                     representer_runs=(("size", {"size": 21}),)),
}


def config_of(record: dict) -> RunConfig:
    return RunConfig.from_dict(record["run_config"])
