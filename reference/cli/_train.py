"""`train [--dataset NAME] [--activation NAME] [--hidden W,...] ... [--out MODEL.npz]`: train a
network and report its accuracy, the splines' TV2 and knots and its Lipschitz bound."""
from __future__ import annotations

from reference._format import plain
from reference.cli._args import (
    fraction,
    list_of,
    milestone,
    nonneg_float,
    nonneg_int,
    parse_hidden,
    positive_float,
    positive_int,
    size_int,
    sparsify_value,
)
from reference.data import _datasets as datasets
from reference.data._datasets import TEST_GRIDS
from reference.io._files import check_writable, dumps_json
from reference.io._model_file import save_model
from reference.nn._spline_grid import grid_from_range
from reference.training._convention import CONVENTIONS
from reference.training._experiments import (
    RUN_ACTIVATIONS,
    SPLINE_INITS,
    TRAIN_DEFAULTS,
    run_training,
    spline_summary,
)
from reference.training._train import ACC_DROP, REGULARISERS, TrainConfig

NAME = "train"
HELP = "train a network and report accuracy, TV2, knots, bound"
DESCRIPTION = None


def run(args) -> int:
    hidden = parse_hidden(args.hidden)
    if args.activation == "spline":       # the grid is checked before any training
        try:
            grid_from_range(args.size, args.range)
        except ValueError as exc:
            raise ValueError(f"--size/--range: {exc}") from None
    if args.out is not None:
        check_writable(args.out, "--out")
    net, summary = run_training(
        args.dataset, args.activation, hidden, lam=args.lam, reg=args.reg, size=args.size,
        range_=args.range, epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
        lr=args.lr, spline_init=args.spline_init, data_path=args.data_path,
        quiet=args.quiet or args.json, sparsify=args.sparsify, acc_drop=args.acc_drop,
        prox=args.prox, data_arg="--data-path", mu=args.mu, milestones=args.milestones,
        convention=args.convention, first_bias=args.first_bias, test_grid=args.test_grid)
    if args.out is not None:
        save_model(net, args.out, "--out")
        summary["model"] = args.out
    if args.json:
        print(dumps_json(summary))
        return 0
    print(f"{args.activation} network {plain(summary['hidden'])} on {args.dataset}: "
          f"test accuracy {summary['test_accuracy']:.4f}, train loss {summary['train_loss']:.4g}, "
          f"{summary['seconds']:.1f} s")
    for report in summary.get("sparsification", []):
        print(f"  sparsified layer {report['layer']} at |a_k| <= {report['threshold']:g}: "
              f"removed {plain(report['knots_removed'])} knots, largest change on the grid "
              f"{max(report['max_change_on_grid']):.3g}")
    search = summary.get("sparsify", {})
    if search.get("mode") == "auto":
        print(f"  --sparsify auto: threshold {search['threshold']} (the largest on the ladder "
              f"with a training-accuracy drop <= {search['acc_drop_max']:g}): drop "
              f"{search['acc_drop']:.4g}, {search['knots_removed']} of "
              f"{search['knots_before']} knots removed")
    for row in spline_summary(net):
        print(f"  spline layer {row['layer']}: TV2 {sum(row['tv2']):.4g}, "
              f"BV2 {sum(row['bv2']):.4g}, knots per neuron {plain(row['knots'])} "
              f"(|a_k| > {max(row['knot_tolerance']):.1e})")
    print(f"  Lipschitz bound (Theorem 1, BV2 form, p=2): {summary['lipschitz_bound']:.4g}")
    if args.out is not None:
        print(f"  model written to {args.out}")
    return 0


def add_arguments(p) -> None:
    """The arguments of `train`."""
    p.add_argument("--dataset", default="circle", choices=datasets.DATASETS)
    p.add_argument("--data-path", default=None, help="MNIST: directory of IDX files or .npz")
    p.add_argument("--activation", default="spline", choices=RUN_ACTIVATIONS)
    p.add_argument("--hidden", default="2", help="hidden widths, e.g. 2 or 8,8 (default 2)")
    p.add_argument("--lam", type=nonneg_float, default=TRAIN_DEFAULTS["lam"],
                   help="lambda on the splines' TV2/BV2 (data term summed over samples)")
    p.add_argument("--reg", default=TRAIN_DEFAULTS["reg"], choices=REGULARISERS)
    p.add_argument("--size", type=size_int, default=TRAIN_DEFAULTS["size"],
                   help="spline coefficients K per neuron")
    p.add_argument("--range", type=positive_float, default=TRAIN_DEFAULTS["range_"],
                   help="spline grid [-R, R]")
    p.add_argument("--spline-init", default="leaky_relu",
                   choices=SPLINE_INITS)
    p.add_argument("--epochs", type=positive_int, default=TRAIN_DEFAULTS["epochs"])
    p.add_argument("--batch-size", type=positive_int, default=TRAIN_DEFAULTS["batch_size"])
    p.add_argument("--lr", type=positive_float, default=TRAIN_DEFAULTS["lr"])
    p.add_argument("--seed", type=nonneg_int, default=TRAIN_DEFAULTS["seed"])
    p.add_argument("--mu", type=nonneg_float, default=TrainConfig.mu,
                   help="weight decay on the dense weights (its meaning follows --convention)")
    p.add_argument("--milestones", type=list_of(milestone), default=list(TrainConfig.milestones),
                   metavar="F,...",
                   help="fractions of the epochs at which the learning rate is divided by 10 "
                        "(default %(default)s)")
    p.add_argument("--convention", default="project", choices=CONVENTIONS,
                   help="how lambda and mu enter a minibatch step: the project's sum over the "
                        "samples, or DeepSplines' mean (TrainConfig.convention)")
    p.add_argument("--no-first-bias", dest="first_bias", action="store_false",
                   help="no bias in the first layer (DeepSplines' spline networks)")
    p.add_argument("--test-grid", default="corners", choices=TEST_GRIDS,
                   help="circle/s_shape: the test grid's points at the cell corners (the "
                        "project's) or centres (DeepSplines')")
    p.add_argument("--sparsify", type=sparsify_value, default=None, metavar="T|auto",
                   help="after training, zero the spline slope jumps |a_k| <= T; 'auto': the "
                        "largest T of DeepSplines' ladder whose training-accuracy drop is "
                        "<= --acc-drop")
    p.add_argument("--acc-drop", type=fraction, default=ACC_DROP, metavar="D",
                   help="--sparsify auto: tolerated training-accuracy drop, a fraction "
                        f"(default {ACC_DROP:g} = 0.25 percentage points, as DeepSplines)")
    p.add_argument("--prox", action="store_true",
                   help="proximal step for TV2 after each update (soft-thresholding of the "
                        "slope jumps: exact zeros)")
    p.add_argument("--out", default=None, help="write the trained model here (.npz)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
