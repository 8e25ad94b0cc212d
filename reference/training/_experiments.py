"""One run = a config -> a trained network and its summary: what `train`, the sweeps
(reference.training.run_sweep), the figures and the theory checks share.  Below the CLI:
nothing here imports it.

A run is a `RunConfig` (every field that changes the result; `key()` names it) and
`run(config) -> (net, summary)`.  Everything is seeded from the config (data split, weights,
minibatches, the lower bound's sample), so a run gives the same summary in any process.

Summary (JSON-ready after reference.io._files.jsonable): the keys of `train --json` --
dataset, activation, hidden, loss, test_accuracy, valid_accuracy, train_accuracy,
train_loss, objective, tv2, bv2, knots, knot_tolerance (per spline layer), lipschitz_bound
(Theorem 1, BV2 form, p = 2), lipschitz_bound_form, seconds (training), config (the
TrainConfig) -- plus
- run_config: RunConfig.to_dict();
- ladder: {"1", "2", "inf"} -> {theorem1, theorem1_bv2, layerwise, lower} and, for "2",
  lipsdp_neuron; each a dict with `value` (None with a `reason` when it does not apply),
  `kind` (reference.lipschitz._ladder.KINDS), `seconds`, and the method's certificate
  fields (see `lipschitz_ladder`);
- sparsification (one report per spline layer) and sparsify (totals; for 'auto' the
  chosen threshold, the accuracy drop, the knots removed and the search) when the config
  sparsifies (reference.training.sparsify_auto).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from reference._numerics import check_choice
from reference.convex._problem import knot_counts
from reference.data import _datasets as datasets
from reference.lipschitz import _bounds as lipschitz
from reference.lipschitz import _ladder as ladder
from reference.nn._network import ACTIVATIONS, Network, build_mlp
from reference.training._convention import CONVENTIONS
from reference.training._train import (
    ACC_DROP,
    REGULARISERS,
    TrainConfig,
    accuracy,
    check_sparsify,
    objective,
    train,
)

TRAIN_DEFAULTS: dict[str, Any] = {"lam": 1e-3, "reg": "tv2", "size": 21, "range_": 2.0,
                                  "epochs": 100, "seed": 0, "batch_size": 16, "lr": 1e-2,
                                  "spline_init": "leaky_relu"}
SPLINE_INITS = ("leaky_relu", "relu", "identity", "abs", "even_odd")
RUN_ACTIVATIONS = tuple(a for a in ACTIVATIONS if a != "identity")
# the fields that only matter for spline networks (ignored, and set to their defaults by
# RunConfig.canonical, for relu / leaky_relu / prelu)
SPLINE_FIELDS = ("reg", "lam", "size", "range_", "spline_init", "sparsify", "acc_drop", "prox")
# the fields added in 0.2: to_dict writes them only when they differ from their defaults, so
# the configs of 0.1 keep their keys and their stored records stay valid
ADDED_FIELDS = ("mu", "milestones", "convention", "first_bias", "test_grid")
KEY_LENGTH = 16             # hex digits of the sha256 kept in RunConfig.key()
LADDER_P = ("1", "2", "inf")
CLOSED_FORM_RUNGS = ("theorem1", "theorem1_bv2", "layerwise")     # every p
LADDER_RUNGS = {p: CLOSED_FORM_RUNGS + ("lower",) + (("lipsdp_neuron",) if p == "2" else ())
                for p in LADDER_P}     # p -> the rungs lipschitz_ladder gives (in records)
LOWER_BOX = 1.0             # lower bounds over [-1, 1]^N_0 (holds every data set's inputs)
LOWER_POINTS = 500          # lower bound budget: seeded points ...
LOWER_ROUNDS = 10           # ... and rounds of local search (lipschitz.lower); ~10 ms at 2-2-1
LOWER_FIELDS = ("value", "pair_ratio", "x", "points_evaluated", "seed")   # kept in records
LIPSDP_MAX_COST = 1e9       # LipSDP-neuron when its estimated work (lipsdp.sdp_cost) is <= this:
                            # ~10 s (MNIST 784-50-10: 8e6, 0.1 s; 2-300-300-1: 1.7e9, 16 s)


@dataclass(frozen=True)
class RunConfig:
    """Every input of one run: the data set, the network, the training, the sparsification.

    Values are checked and normalised when the config is built; a frozen dataclass, so
    equal configs compare equal and have equal keys (`key`).

    Parameters
    ----------
    dataset : str, default 'circle'
        A data set of ``reference.data.DATASETS`` ('circle', 's_shape', 'digits', 'mnist').
    activation : str, default 'spline'
        The hidden activation: 'spline', 'relu', 'leaky_relu' or 'prelu' (the baselines).
    hidden : int or sequence of int, default (2,)
        The hidden widths, each >= 1; stored as a tuple.
    reg : {'tv2', 'bv2'}, default 'tv2'
        The regulariser R of the splines.
    lam : float, default 1e-3
        Its weight lambda >= 0.
    size : int, default 21
        Spline coefficients per neuron (grid points), >= 2.
    range_ : float, default 2.0
        The splines' grid spans ``[-range_, range_]``, ``range_ > 0``.
    epochs : int, default 100
        Training epochs, >= 1.
    seed : int, default 0
        Seeds everything: the data split, the weights, the minibatches, the lower bound's
        sample; >= 0.
    batch_size : int, default 16
        Samples per minibatch, >= 1.
    lr : float, default 1e-2
        The learning rate of every optimiser, > 0.
    spline_init : {'leaky_relu', 'relu', 'identity', 'abs', 'even_odd'}, default 'leaky_relu'
        The splines' initial shape.
    sparsify : float or 'auto' or None, default None
        After training: a knot threshold T >= 0, 'auto' (`sparsify_auto`) or None.
    acc_drop : float, default 0.0025
        The tolerated training-accuracy drop of 'auto', in [0, 1].
    prox : bool, default False
        The TV(2) part of R by a proximal step (`prox_tv2`).
    data_path : str or None, default None
        Where MNIST is read from (the other data sets take none).
    mu : float, default 1e-4
        The weight decay, >= 0 (`TrainConfig`: its meaning depends on `convention`).
    milestones : tuple of float, default (0.75, 0.9)
        Fractions of the epochs, each in (0, 1], at which every learning rate is multiplied
        by 0.1; stored sorted.  DeepSplines' epochs 440 and 480 of 500: (0.88, 0.96).
    convention : {'project', 'deepsplines'}, default 'project'
        The minibatch gradient (`TrainConfig`): the project's (gradient of J / M) or
        DeepSplines' per-batch objective (mean data term, (mu / 2) ||theta||^2 on weights,
        biases and PReLU slopes, lam R, nothing divided by M).  The summary's
        ``train_loss`` and ``objective`` follow it (the mean data term under
        'deepsplines').
    first_bias : bool, default True
        Whether the first dense layer has a bias (DeepSplines' ``TwoDNet`` with spline
        activations has none, its ReLU baselines have one).
    test_grid : {'corners', 'centres'}, default 'corners'
        The test set of the two-dimensional data sets (``reference.data.test_grid``): the
        project's grid -1 .. 0.99 or DeepSplines' cell centres -0.995 .. 0.995; other data
        sets take only the default.

    Raises
    ------
    ValueError
        Naming the field, when a value is not of the kind or range documented above.

    See Also
    --------
    run : Train and measure the network of a config.
    expand : Many configs from lists of choices.

    Examples
    --------
    >>> from reference.training import RunConfig
    >>> config = RunConfig(hidden=4, epochs=10)
    >>> config.hidden
    (4,)
    >>> config.key() == RunConfig(hidden=(4,), epochs=10).key()
    True
    >>> len(config.key())
    16
    >>> RunConfig.from_dict(config.to_dict()) == config
    True
    >>> RunConfig(activation="relu", lam=0.5).canonical().lam
    0.001
    """
    dataset: str = "circle"
    activation: str = "spline"
    hidden: tuple = (2,)
    reg: str = TRAIN_DEFAULTS["reg"]
    lam: float = TRAIN_DEFAULTS["lam"]
    size: int = TRAIN_DEFAULTS["size"]
    range_: float = TRAIN_DEFAULTS["range_"]
    epochs: int = TRAIN_DEFAULTS["epochs"]
    seed: int = TRAIN_DEFAULTS["seed"]
    batch_size: int = TRAIN_DEFAULTS["batch_size"]
    lr: float = TRAIN_DEFAULTS["lr"]
    spline_init: str = TRAIN_DEFAULTS["spline_init"]
    sparsify: float | str | None = None
    acc_drop: float = ACC_DROP
    prox: bool = False
    data_path: str | None = None
    mu: float = TrainConfig.mu
    milestones: tuple = TrainConfig.milestones
    convention: str = "project"
    first_bias: bool = True
    test_grid: str = "corners"

    def __post_init__(self):
        put = lambda name, value: object.__setattr__(self, name, value)   # noqa: E731
        check_choice(self.dataset, datasets.DATASETS, "dataset")
        check_choice(self.activation, RUN_ACTIVATIONS, "activation")
        check_choice(self.reg, REGULARISERS, "reg")
        check_choice(self.spline_init, SPLINE_INITS, "spline_init")
        put("hidden", _widths(self.hidden))
        put("lam", _real(self.lam, "lam", low=0.0))
        put("range_", _real(self.range_, "range_", low=0.0, open_low=True))
        put("lr", _real(self.lr, "lr", low=0.0, open_low=True))
        put("acc_drop", _real(self.acc_drop, "acc_drop", low=0.0, high=1.0))
        put("size", _integer(self.size, "size", 2))
        put("epochs", _integer(self.epochs, "epochs", 1))
        put("seed", _integer(self.seed, "seed", 0))
        put("batch_size", _integer(self.batch_size, "batch_size", 1))
        put("sparsify", check_sparsify(self.sparsify, "sparsify"))
        if not isinstance(self.prox, (bool, np.bool_)):
            raise ValueError(f"prox: expected True or False, got {self.prox!r}")
        put("prox", bool(self.prox))
        if self.data_path is not None:
            if str(self.data_path) == "":
                raise ValueError("data_path: expected a path or None, got ''")
            put("data_path", str(self.data_path))
        put("mu", _real(self.mu, "mu", low=0.0))
        put("milestones", _milestones(self.milestones))
        check_choice(self.convention, CONVENTIONS, "convention")
        if not isinstance(self.first_bias, (bool, np.bool_)):
            raise ValueError(f"first_bias: expected True or False, got {self.first_bias!r}")
        put("first_bias", bool(self.first_bias))
        check_choice(self.test_grid, datasets.TEST_GRIDS, "test_grid")
        if self.test_grid != "corners" and self.dataset not in datasets.GENERATED:
            raise ValueError(f"test_grid: expected 'corners' for dataset {self.dataset!r} "
                             f"(only {list(datasets.GENERATED)} have a test grid), got "
                             f"{self.test_grid!r}")

    def all_fields(self) -> dict:
        """Every field, JSON-ready.

        Returns
        -------
        values : dict
            Field name -> value, hidden and milestones as lists.
        """
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        out["milestones"] = list(self.milestones)
        return out

    def to_dict(self) -> dict:
        """The config as runs and sweep records store it, JSON-ready.

        Returns
        -------
        values : dict
            `all_fields`, except that the fields added in 0.2 (ADDED_FIELDS: ``mu``,
            ``milestones``, ``convention``, ``first_bias``, ``test_grid``) are left out
            where they hold their defaults: a config of 0.1 has the same dict, hence the
            same `key`, as in 0.1.
        """
        out, defaults = self.all_fields(), _default_fields()
        return {name: value for name, value in out.items()
                if name not in ADDED_FIELDS or value != defaults[name]}

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        """The config of a dict, the inverse of `to_dict`.

        Parameters
        ----------
        values : dict
            Field name -> value; missing fields take their defaults.

        Returns
        -------
        config : RunConfig
            The config, checked as when built.

        Raises
        ------
        ValueError
            Naming the unknown keys, or a field whose value is out of range.
        """
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"config: unknown fields {sorted(unknown)}")
        return cls(**values)

    def key(self) -> str:
        """The name of the run: a hash of every field.

        Returns
        -------
        key : str
            The first KEY_LENGTH = 16 hex digits of the sha256 of the canonical JSON of
            `to_dict` (sorted keys, no spaces): equal configs have equal keys in every
            process.
        """
        return json_sha256(self.to_dict())[:KEY_LENGTH]

    def canonical(self) -> "RunConfig":
        """The same run with the fields that do not change its result at their defaults.

        Returns
        -------
        config : RunConfig
            For a network without splines, a copy with the spline-only fields
            (SPLINE_FIELDS: ``reg``, ``lam``, ``size``, ``range_``, ``spline_init``,
            ``sparsify``, ``acc_drop``, ``prox``)
            at their defaults; for a spline network, the config itself.
        """
        if self.activation == "spline":
            return self
        defaults = RunConfig()
        return RunConfig(**{**self.to_dict(),
                            **{name: getattr(defaults, name) for name in SPLINE_FIELDS}})

    def train_config(self, loss: str, quiet: bool = True) -> TrainConfig:
        """The hyper-parameters of `train` for this run.

        Parameters
        ----------
        loss : {'logistic', 'xent', 'squared'}
            The loss (`run` takes 'logistic' for two classes, 'xent' for more).
        quiet : bool, default True
            No progress bar.

        Returns
        -------
        config : TrainConfig
            epochs, batch_size, lr (also the splines' learning rate), lam, reg, seed,
            sparsify (as sparsify_threshold), acc_drop, prox, mu, milestones and
            convention of this config; the other fields at their defaults.
        """
        return TrainConfig(loss=loss, epochs=self.epochs, batch_size=self.batch_size,
                           lr=self.lr, spline_lr=self.lr, lam=self.lam, reg=self.reg,
                           seed=self.seed, quiet=quiet, sparsify_threshold=self.sparsify,
                           acc_drop=self.acc_drop, prox=self.prox, mu=self.mu,
                           milestones=self.milestones, convention=self.convention)


@functools.lru_cache(maxsize=1)
def _default_fields() -> dict:
    """RunConfig().all_fields(), built once (read only)."""
    return RunConfig().all_fields()


def canonical_json(value) -> str:
    """The JSON text hashed for keys and record hashes: sorted keys, no spaces, strict (no
    NaN / Infinity); JSON numbers read back as the same floats, so parsing and re-encoding
    gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def json_sha256(value) -> str:
    """Hex sha256 of canonical_json(value) in UTF-8: the one hash of a JSON value (a run's
    key, a sweep record's content hash)."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def _real(value, name, low=None, high=None, open_low=False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = None
    ok = (number is not None and not isinstance(value, bool) and np.isfinite(number)
          and (low is None or (number > low if open_low else number >= low))
          and (high is None or number <= high))
    if not ok:
        where = (f" {'>' if open_low else '>='} {low:g}" if low is not None else "") + (
            f" and <= {high:g}" if high is not None else "")
        raise ValueError(f"{name}: expected a finite number{where}, got {value!r}")
    assert number is not None                     # ok above requires it
    return number


def _integer(value, name, low) -> int:
    try:
        number = int(value)
        ok = number == value and not isinstance(value, bool) and number >= low
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return number


def _milestones(milestones) -> tuple:
    """The milestones as a sorted tuple of floats in (0, 1]; else ValueError naming them."""
    try:
        values = tuple(sorted(_real(f, "milestones", low=0.0, high=1.0, open_low=True)
                              for f in milestones))
    except (TypeError, ValueError):
        raise ValueError(f"milestones: expected fractions of the epochs in (0, 1], e.g. "
                         f"(0.88, 0.96), got {milestones!r}") from None
    return values


def _widths(hidden) -> tuple:
    items = (hidden,) if isinstance(hidden, (int, np.integer)) else hidden
    try:
        widths = tuple(_integer(w, "hidden", 1) for w in items)
    except (TypeError, ValueError):
        widths = ()
    if not widths:
        raise ValueError(f"hidden: expected one or more widths >= 1, e.g. (2,) or (8, 8), "
                         f"got {hidden!r}")
    return widths


def spline_summary(net) -> list:
    """Per spline layer: index, TV2, BV2, Lip and knot counts per neuron, tolerance used."""
    rows = []
    for i, layer in enumerate(net.layers):
        if layer.uniform_grid:
            knots, tols = layer.spline.num_knots()
        elif layer.is_spline:                  # knot form, solver output: solver-aware tolerance
            knots, tols, _ = knot_counts(layer)
        else:
            continue
        s = layer.spline
        rows.append({"layer": i, "tv2": s.tv2().tolist(), "bv2": s.bv2().tolist(),
                     "lipschitz": s.lipschitz().tolist(), "knots": knots.tolist(),
                     "knot_tolerance": tols.tolist()})
    return rows


def lipschitz_ladder(net: Network, seed: int = 0) -> dict[str, dict[str, dict]]:
    r"""The cheap rungs of the Lipschitz ladder of a network, for p = 1, 2 and infinity.

    Parameters
    ----------
    net : Network
        The network f: R^N_0 -> R^N_L.
    seed : int, default 0
        Seed of the lower bound's sample points.

    Returns
    -------
    ladder : dict of str to dict
        p ("1", "2", "inf") -> rung name -> entry.  The rungs: 'theorem1', 'theorem1_bv2',
        'layerwise' (closed forms, over R^N_0), 'lower' (``lipschitz.lower`` over
        [-LOWER_BOX, LOWER_BOX]^N_0 with LOWER_POINTS seeded points and LOWER_ROUNDS
        rounds; its pair check, evaluation count and budget) and, for p = 2,
        'lipsdp_neuron' (certified value, solver, status, attempts, relative_gap,
        certificate) when its size guard ``max_sdp_cost = LIPSDP_MAX_COST`` admits it, else
        value None with the reason.  Each entry is a dict with 'value', 'kind', 'seconds'
        and the method's certificate fields, as ``reference.lipschitz`` ``run_method``
        gives them.

    Notes
    -----
    In exact arithmetic the rungs are ordered [1]_:

    .. math::

        \mathrm{lower} \le \mathrm{layerwise} \le \mathrm{theorem1}
        \le \mathrm{theorem1\_bv2}, \qquad \mathrm{lower} \le \mathrm{lipsdp\_neuron}.

    References
    ----------
    .. [1] S. Aziznejad, H. Gupta, J. Campos, M. Unser, "Deep Neural Networks With Trainable
       Activations and Controlled Lipschitz Constant", IEEE Trans. Signal Process. 68,
       2020, arXiv:2001.06263.
    """
    out = {}
    for p_name in LADDER_P:
        p = lipschitz.parse_p(p_name)
        rungs: dict[str, dict] = {name: ladder.run_method(name, net, p)
                                  for name in CLOSED_FORM_RUNGS}
        low = ladder.run_method("lower", net, p, box=LOWER_BOX, num_points=LOWER_POINTS,
                                rounds=LOWER_ROUNDS, seed=seed)
        if low["value"] is None:             # size guard (TooLarge) or an overflowing net
            rungs["lower"] = low
        else:
            rungs["lower"] = {**{k: low[k] for k in LOWER_FIELDS}, "num_points": LOWER_POINTS,
                              "rounds": LOWER_ROUNDS, "domain": low["domain"],
                              "kind": low["kind"], "seconds": low["seconds"]}
        if p_name == "2":
            rungs["lipsdp_neuron"] = ladder.run_method("lipsdp_neuron", net, p,
                                                       max_sdp_cost=LIPSDP_MAX_COST)
        out[p_name] = rungs
    return out


def run(config: RunConfig, quiet: bool = True,
        data_arg: str = "data_path") -> tuple[Network, dict]:
    """Train the network of a config and measure it.

    Parameters
    ----------
    config : RunConfig
        The run; everything is seeded from it, so a run gives the same summary in any
        process.
    quiet : bool, default True
        No progress bar.
    data_arg : str, default 'data_path'
        How error messages name ``config.data_path`` (e.g. '--data-path').

    Returns
    -------
    net : Network
        The trained (possibly sparsified) network.
    summary : dict
        JSON-ready after ``reference.io`` ``jsonable``: the keys of ``train --json`` --
        dataset, activation, hidden, loss, test_accuracy, valid_accuracy, train_accuracy,
        train_loss, objective, tv2, bv2, knots, knot_tolerance (per spline layer),
        lipschitz_bound (Theorem 1, BV(2) form, p = 2), lipschitz_bound_form, seconds
        (training), config (the TrainConfig) -- plus run_config (`RunConfig.to_dict`),
        ladder (`lipschitz_ladder`) and, when the config sparsifies, sparsification and
        sparsify (as in `train`'s history).  Every number is measured on the final model.

    Raises
    ------
    TypeError
        When `config` is not a RunConfig.
    ValueError
        When the data set cannot be loaded from ``config.data_path``.

    See Also
    --------
    run_training : The same from keyword arguments.
    run_sweep : Many runs, stored.

    Examples
    --------
    >>> from reference.training import RunConfig, run
    >>> net, summary = run(RunConfig(hidden=(2,), epochs=1))
    >>> summary["dataset"], summary["hidden"], summary["loss"]
    ('circle', [2], 'logistic')
    >>> sorted(summary["ladder"])
    ['1', '2', 'inf']
    >>> 0.0 <= summary["test_accuracy"] <= 1.0
    True
    """
    if not isinstance(config, RunConfig):
        raise TypeError(f"config: expected a RunConfig, got {type(config).__name__}")
    ds = datasets.load(config.dataset, seed=config.seed, path=config.data_path,
                       arg=data_arg, grid=config.test_grid)
    loss = "logistic" if ds.num_classes == 2 else "xent"
    widths = [ds.x_train.shape[1], *config.hidden, 1 if loss == "logistic" else ds.num_classes]
    net = build_mlp(widths, config.activation, rng=config.seed, first_bias=config.first_bias,
                    spline_init=config.spline_init, size=config.size, range_=config.range_)
    train_config = config.train_config(loss, quiet)
    t0 = time.perf_counter()
    history = train(net, ds.x_train, ds.y_train, train_config, ds.x_valid, ds.y_valid)
    seconds = time.perf_counter() - t0
    train_out = net.forward(ds.x_train)
    terms = objective(net, ds.x_train, ds.y_train, train_config, train_out)
    splines = spline_summary(net)
    rungs = lipschitz_ladder(net, config.seed)
    summary = {
        "dataset": config.dataset, "activation": config.activation,
        "hidden": list(config.hidden), "loss": loss,
        "test_accuracy": accuracy(net, ds.x_test, ds.y_test, loss),
        "valid_accuracy": accuracy(net, ds.x_valid, ds.y_valid, loss),
        "train_accuracy": accuracy(net, ds.x_train, ds.y_train, loss, train_out),
        "train_loss": terms["data"], "objective": terms["total"],
        "tv2": [float(np.sum(r["tv2"])) for r in splines],
        "bv2": [float(np.sum(r["bv2"])) for r in splines],
        "knots": [int(np.sum(r["knots"])) for r in splines],
        "knot_tolerance": [r["knot_tolerance"] for r in splines],
        # the ladder's value (None with its reason there when it leaves float64)
        "lipschitz_bound": rungs["2"]["theorem1_bv2"]["value"],
        "lipschitz_bound_form": "theorem1_bv2, p=2",
        "seconds": seconds, "config": history["config"], "run_config": config.to_dict(),
        "ladder": rungs,
    }
    for key in ("sparsification", "sparsify"):
        if key in history:
            summary[key] = history[key]
    return net, summary


def run_training(dataset: str, activation: str, hidden: Sequence[int], *,
                 data_path: str | os.PathLike | None = None, quiet: bool = True,
                 sparsify: float | str | None = None, acc_drop: float = ACC_DROP,
                 prox: bool = False, data_arg: str = "data_path",
                 **options: Any) -> tuple[Network, dict]:
    """Train and measure one network given by keyword arguments: ``run(RunConfig(...))``.

    Parameters
    ----------
    dataset : str
        The data set (`RunConfig`).
    activation : str
        The hidden activation.
    hidden : sequence of int
        The hidden widths.
    data_path : str or path-like, optional
        Where MNIST is read from.
    quiet : bool, default True
        No progress bar.
    sparsify : float or 'auto' or None, default None
        The sparsification after training.
    acc_drop : float, default 0.0025
        The tolerated accuracy drop of 'auto'.
    prox : bool, default False
        The proximal step for TV(2).
    data_arg : str, default 'data_path'
        How error messages name `data_path`.
    **options
        Override TRAIN_DEFAULTS: ``lam``, ``reg``, ``size``, ``range_``, ``epochs``,
        ``seed``, ``batch_size``, ``lr``, ``spline_init``; or set a field added in 0.2
        (ADDED_FIELDS: ``mu``, ``milestones``, ``convention``, ``first_bias``,
        ``test_grid``), which otherwise holds its `RunConfig` default.

    Returns
    -------
    net : Network
        The trained network.
    summary : dict
        As `run` returns it.

    Raises
    ------
    TypeError
        Naming the unknown options.
    ValueError
        Naming the field, when a value is out of range.
    """
    unknown = set(options) - set(TRAIN_DEFAULTS) - set(ADDED_FIELDS)
    if unknown:
        raise TypeError(f"run_training: unknown options {sorted(unknown)}")
    config = RunConfig(dataset=dataset, activation=activation, hidden=tuple(hidden),
                       data_path=None if data_path is None else str(Path(data_path)),
                       sparsify=sparsify, acc_drop=acc_drop, prox=prox,
                       **{**TRAIN_DEFAULTS, **options})
    return run(config, quiet=quiet, data_arg=data_arg)
