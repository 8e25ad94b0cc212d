"""Pass/fail bookkeeping shared by the theory checks: per check, the number of instances,
how many passed and the worst margin (the smallest relative slack; negative = violated)."""
from __future__ import annotations

import os
from collections import defaultdict

from reference.io._files import check_writable, dumps_json, prepare_output_dir, write_text


class Report:
    def __init__(self, name: str):
        self.name = name
        self.checks = defaultdict(lambda: {"instances": 0, "passed": 0, "worst_margin": None,
                                           "worst_instance": None})
        self.records = []

    def check(self, check: str, margin: float, instance: str, tol: float = 0.0) -> bool:
        """Record one instance of a check that passes when margin >= -tol."""
        row = self.checks[check]
        row["instances"] += 1
        ok = bool(margin >= -tol)
        row["passed"] += ok
        if row["worst_margin"] is None or margin < row["worst_margin"]:
            row["worst_margin"], row["worst_instance"] = float(margin), instance
        return ok

    @property
    def failures(self) -> int:
        return sum(r["instances"] - r["passed"] for r in self.checks.values())

    def print_table(self, title: str) -> None:
        print(title)
        width = max([len("check")] + [len(name) for name in self.checks])
        print(f"  {'check':{width}s} {'instances':>9s} {'passed':>7s} {'worst margin':>13s}")
        for name, r in self.checks.items():
            print(f"  {name:{width}s} {r['instances']:9d} {r['passed']:7d} "
                  f"{r['worst_margin']:13.3e}")
        print(f"  {'ALL PASSED' if self.failures == 0 else f'{self.failures} VIOLATIONS'}")

    def finish(self, path: str, extra: dict) -> int:
        """Write the JSON report, say where, and return the exit status (1 on a violation)."""
        self.write_json(path, extra)
        print(f"JSON report: {path}")
        return 0 if self.failures == 0 else 1

    def write_json(self, path: str, extra: dict) -> None:
        """The report as strict JSON, written atomically (non-finite numbers as null)."""
        write_text(path, dumps_json({"name": self.name, "checks": dict(self.checks), **extra,
                                     "records": self.records}, indent=1), "--json-out")


def prepare_json_out(path: str, arg: str = "--json-out") -> None:
    """Check before a run that its JSON report can be written (directory created)."""
    prepare_output_dir(os.path.dirname(path) or ".", arg)
    check_writable(path, arg)


def main_for(name: str, doc: str, run, argv=None) -> int:
    """The command line shared by the checks: [--quick] [--json-out PATH]; returns run's
    exit status (0 all passed, 1 a violation)."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m theory_checks.{name}",
                                     description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small profile (< 1 min)")
    parser.add_argument("--json-out", default=f"theory_checks/out/{name}.json")
    args = parser.parse_args(argv)
    try:
        prepare_json_out(args.json_out)
    except ValueError as exc:
        parser.error(str(exc))
    return run(args.quick, args.json_out)
