"""python -m figures [--quick | --profile NAME] [--results DIR] [--only NAME,...]
[--scheduler ADDR] [--workers N] [--out DIR] [--force]"""
from __future__ import annotations

import argparse
import sys

from figures.make import FIGURES
from figures.profiles import PROFILES
from figures.run import OUT, generate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m figures", description=(
        "Regenerate the paper's experiments as figures (PNG, PDF, and the CSV behind each) "
        "with an index; the runs are cached in --results and reused."))
    parser.add_argument("--quick", action="store_true", help="the quick profile (~1 min)")
    parser.add_argument("--profile", default="default", choices=list(PROFILES))
    parser.add_argument("--results", default=None, help="runs directory (default OUT/results)")
    parser.add_argument("--only", default=None,
                        help="comma-separated subset of " + ",".join(FIGURES))
    parser.add_argument("--scheduler", default=None, help="Dask scheduler tcp://HOST:PORT")
    parser.add_argument("--workers", type=int, default=None,
                        help="LocalCluster workers (default: the number of cores)")
    parser.add_argument("--out", default=OUT, help=f"output directory (default {OUT})")
    parser.add_argument("--force", action="store_true", help="recompute cached runs")
    args = parser.parse_args(argv)
    try:
        report = generate("quick" if args.quick else args.profile, args.out, args.results,
                          args.only.split(",") if args.only else None, args.scheduler,
                          args.workers, args.force)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept in the results directory",
              file=sys.stderr)
        return 130
    failed = [n for n, r in report.items() if "error" in r]
    for name in failed:
        print(f"figure {name} could not be made: {report[name]['error']}", file=sys.stderr)
    print(f"index: {args.out}/index.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
