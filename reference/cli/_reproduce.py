"""`reproduce`: the main job.  Trains spline, ReLU, PReLU and LeakyReLU networks on the circle
data set and prints a table, runs the quick profiles of the two theory checks and writes the
quick-profile figures.

The theory checks and the figures are the entry points of a source checkout
(``theory_checks/`` and ``figures/`` beside ``reference/``); they are not installed with the
package.  `reproduce` imports them from the checkout that holds the imported ``reference``
(found from ``reference.__file__``, so an editable install works from any directory); a
package installed without its checkout (a wheel) is refused before any work with one line
saying what is missing."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import reference
from reference.cli._args import nonneg_int, positive_int
from reference.io._files import check_writable, dumps_json, prepare_output_dir, write_text
from reference.training._experiments import TRAIN_DEFAULTS, run_training

NAME = "reproduce"
HELP = "the main job: spline vs ReLU-family on circle"
DESCRIPTION = None

REPRODUCE_FIGURES = "figures/out/quick"
ENTRY_POINTS = ("theory_checks", "figures")       # the checkout's packages reproduce runs


def checkout_root() -> Path:
    """The directory that holds the imported package ``reference`` (symbolic links resolved:
    an editable install in strict mode links the checkout's files)."""
    return Path(reference.__file__).resolve().parent.parent


def find_checkout(needed=ENTRY_POINTS) -> Path:
    """The checkout holding ``reference`` when it also holds the packages `needed`; otherwise
    ImportError (the command line's exit 2) saying that reproduce needs a source checkout."""
    root = checkout_root()
    missing = [name for name in needed if not (root / name / "__init__.py").is_file()]
    if missing:
        raise ImportError(f"reproduce needs a source checkout of deepspline-reference: it runs "
                          f"{' and '.join(f'{name}/' for name in missing)} beside reference/, "
                          f"not installed with the package (found at {root}/reference); clone "
                          "the repository, `pip install -e .` there and run it again")
    return root


def import_from_checkout(module: str, root: Path):
    """Import `module` (e.g. 'figures.run') from the checkout `root` (put first on sys.path),
    ImportError if a package of that name elsewhere shadows the checkout's."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    imported = importlib.import_module(module)
    package = sys.modules[module.partition(".")[0]]
    found = getattr(package, "__file__", None)         # None: a namespace package
    where = Path(found).resolve().parent if found else list(getattr(package, "__path__", []))
    if where != root / package.__name__:
        raise ImportError(f"reproduce: the package {package.__name__!r} is imported from "
                          f"{where}, not from the checkout {root}; run reproduce from a "
                          "checkout whose packages are not shadowed")
    return imported


def run(args) -> int:
    root = find_checkout(ENTRY_POINTS[:1] if args.no_figures else ENTRY_POINTS)
    lipschitz_bound = import_from_checkout("theory_checks.lipschitz_bound", root)
    representer = import_from_checkout("theory_checks.representer", root)
    prepare_json_out = import_from_checkout("theory_checks._report", root).prepare_json_out

    if args.json_out is not None:
        check_writable(args.json_out, "--json-out")
    prepare_output_dir(args.checks_dir, "--checks-dir")
    for check in (lipschitz_bound, representer):
        prepare_json_out(check_report_path(args.checks_dir, check), "--checks-dir")
    if not args.no_figures:
        prepare_output_dir(args.figures_dir, "--figures-dir")
    print("Circle data set (1500 training points, 200x200 test grid), one hidden layer:")
    print(f"{'activation':>11} {'width':>5} {'test acc':>9} {'TV2':>9} {'knots':>6} "
          f"{'Lip bound':>10} {'seconds':>8}")
    results = []
    for width in (2, 4):
        for activation in ("spline", "relu", "prelu", "leaky_relu"):
            _, s = run_training("circle", activation, [width], epochs=args.epochs,
                                seed=args.seed)
            results.append(s)
            tv2 = f"{s['tv2'][0]:9.4g}" if s["tv2"] else f"{'-':>9}"
            knots = f"{s['knots'][0]:6d}" if s["knots"] else f"{'-':>6}"
            print(f"{activation:>11} {width:5d} {s['test_accuracy']:9.4f} {tv2} {knots} "
                  f"{s['lipschitz_bound']:10.4g} {s['seconds']:8.1f}", flush=True)
    print("Lip bound: Theorem 1, BV2 form, p = 2.  TV2 and knots: the spline layer "
          "(knots |a_k| > 1e-6 max|a|).")
    if args.json_out is not None:
        write_text(args.json_out, dumps_json(results, indent=1), "--json-out")
    status = 0
    for check in (lipschitz_bound, representer):
        print()
        status |= check.run(quick=True, json_out=check_report_path(args.checks_dir, check))
    if not args.no_figures:
        generate = import_from_checkout("figures.run", root).generate

        print("\nFigures, quick profile (python -m figures --quick):")
        report = generate("quick", out=args.figures_dir, progress=False)
        failed = [name for name, entry in report.items() if "error" in entry]
        for name in failed:
            print(f"  figure {name} could not be made: {report[name]['error']}")
        print(f"figures and the data behind them: {args.figures_dir}/ "
              f"(index: {args.figures_dir}/index.md)")
        status |= 1 if failed else 0
    return status


def check_report_path(directory, check) -> str:
    """Where `reproduce` writes a theory check's JSON report: DIR/NAME.json."""
    return os.path.join(directory, check.__name__.rsplit(".", 1)[-1] + ".json")


def add_arguments(p) -> None:
    """The arguments of `reproduce`."""
    p.add_argument("--epochs", type=positive_int, default=TRAIN_DEFAULTS["epochs"])
    p.add_argument("--seed", type=nonneg_int, default=TRAIN_DEFAULTS["seed"])
    p.add_argument("--json-out", default=None, help="also write the results as JSON")
    p.add_argument("--checks-dir", default="theory_checks/out",
                   help="where the theory checks (quick profile) write their JSON reports")
    p.add_argument("--figures-dir", default=REPRODUCE_FIGURES,
                   help="where the quick-profile figures go (their runs are cached there)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
