"""`conformance export DIR` writes the suite of golden cases; `conformance run DIR --answers
ANSWERS_DIR [--json OUT]` grades another implementation's answers to it, `conformance run DIR
--self` the reference's own (exit 0 all pass, 1 some fail, 2 bad input)."""
from __future__ import annotations

from pathlib import Path

from reference.conformance import _suite as conformance
from reference.io._files import check_not_an_input, check_writable, dumps_json, write_text

NAME = "conformance"
HELP = "golden cases: export the suite, grade answers"
DESCRIPTION = __doc__


def run_export(args):
    manifest = conformance.export(args.dir, "DIR")
    print(f"wrote {len(manifest['cases'])} cases to {args.dir} ({manifest['format']}, "
          f"{manifest['generated_by']}, seed {manifest['seed']}):")
    print(f"  {'case':30s} {'kind':16s} {'rtol':>7s} {'atol':>7s}  answer keys")
    for case in manifest["cases"]:
        keys = case["answer_keys"]
        shown = ", ".join(keys[:3]) + (f", ... ({len(keys)} keys)" if len(keys) > 3 else "")
        print(f"  {case['name']:30s} {case['kind']:16s} {case['rtol']:7.0e} "
              f"{case['atol']:7.0e}  {shown}")
    print(f"manifest: {args.dir}/manifest.json; answer with one NAME.npz per case, then "
          f"`python -m reference conformance run {args.dir} --answers ANSWERS_DIR`")
    return 0


def run_grade(args):
    if args.json is not None:
        check_writable(args.json, "--json")
        check_not_an_input(args.json, "--json", {"DIR/manifest.json":
                                                 Path(args.dir) / "manifest.json"})
    suite = conformance.load_suite(args.dir, "DIR")
    if args.json is not None:
        conformance.check_report_path(args.json, suite, None if args.self_ else args.answers)
    report = (conformance.run_self(suite) if args.self_
              else conformance.grade(suite, args.answers))
    print(report.format_table())
    if args.json is not None:
        write_text(args.json, dumps_json(report.to_json(), indent=1) + "\n", "--json")
        print(f"report written to {args.json}")
    return 0 if report.passed else 1


def run(args) -> int:
    """`conformance export` or `conformance run`, as args.action says."""
    return ACTIONS[args.action](args)


ACTIONS = {"export": run_export, "run": run_grade}


def add_arguments(p) -> None:
    """The arguments of `conformance`: its actions export and run (the order of ACTIONS)."""
    actions = p.add_subparsers(dest="action", required=True)
    e = actions.add_parser("export", help="write the conformance suite to DIR")
    e.add_argument("dir", metavar="DIR", help="a new or empty directory (or an earlier suite)")
    r = actions.add_parser("run", help="grade answers (one NAME.npz per case) against DIR")
    r.add_argument("dir", metavar="DIR", help="a suite written by `conformance export`")
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--answers", metavar="ANSWERS_DIR",
                     help="directory with one NAME.npz per case, holding its answer keys")
    who.add_argument("--self", dest="self_", action="store_true",
                     help="grade the reference's own answers (computed afresh)")
    r.add_argument("--json", metavar="OUT", default=None, help="also write the report as JSON")
