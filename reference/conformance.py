"""The conformance suite: golden cases written to a directory, and the grading of another
implementation's answers to them (issue 9, item 3).

Layout of a suite DIR (format FORMAT):
    DIR/manifest.json         {"format", "generated_by", "seed", "cases": [CASE, ...]}
    DIR/NAME/model.npz        the model file (reference.io)
    DIR/NAME/inputs.npy       the inputs (M, N_0) (for a solve case: the data X)
    DIR/NAME/data.npz         solve cases only: X (M, N_0) and y, as `solve --data` reads
    DIR/NAME/expected.npz     the reference's answers, one entry per answer key
CASE = {"name", "tests" (one sentence), "kind", "model", "inputs", "expected" (paths relative
to DIR), "rtol", "atol", "key_tolerances" ({key: [rtol, atol]} overriding the case's),
"answer_keys", "shapes" ({key: shape}), "parameters" (p, box, layer, loss, lam, reg, grid,
lip_max, data ...), "certificate" (how the expected values are certified)}.
The manifest is written last: a directory without one is not a suite.

Answers (ANSWERS_DIR): one NAME.npz per case holding the case's answer keys.  A key passes
when |got - expected| <= atol + rtol |expected| elementwise (shapes equal); the keys that
oracle.reference_answers knows (outputs, input_jacobian, param_gradients/..., layer{i}/output,
tv2/{i}, bv2/{i}, lipschitz_bound/...) are graded by oracle.check, which accepts either
one-sided derivative on rows whose pre-activation lies on a knot and localises a failure;
the others (exact Lipschitz values, solve optima, layer-wise bounds) by oracle.compare
against expected.npz.  A missing file or key fails, named.  Every grading also checks that
the suite's expected.npz agrees with this reference's answers, computed afresh for every kind
(rows 'expected:KEY'), so `--self` tests the shipped numbers, not only the code, and a
damaged expected value is never blamed on the answers.
"""
from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from reference import __version__, oracle
from reference import conformance_cases as cases
from reference.files import (FileError, NpzReader, atomic_write, describe, dumps_json, file_kind,
                             load_npy, load_npz, prepare_output_dir, write_npz, write_text)
from reference.io import load_model, save_model

FORMAT_NAME = "deepspline-reference-conformance"
FORMAT_VERSION = 1
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
MANIFEST = "manifest.json"
CASE_FIELDS = {"name": str, "tests": str, "kind": str, "model": str, "inputs": str,
               "expected": str, "rtol": (int, float), "atol": (int, float),
               "answer_keys": list, "parameters": dict}
KIND_PARAMETERS = {"objective": ("loss", "lam", "reg", "mu", "data"),   # what `answer` reads
                   "lipschitz_exact": ("p", "box"),
                   "solve": ("layer", "loss", "lam", "reg", "grid", "lip_max", "data")}
ANSWER_ERRORS = (ValueError, KeyError, TypeError, IndexError, RuntimeError)


class SuiteError(ValueError):
    """A directory that is not a conformance suite this version can read."""


# ------------------------------------------------------------------------------ export
def write_npy(path, array, arg: str) -> Path:
    return atomic_write(path, lambda f: np.save(f, np.asarray(array, dtype=np.float64)), arg)


def _check_export_dir(directory: Path, arg: str) -> None:
    """DIR must be new, empty, or an earlier suite (which is replaced case by case)."""
    if directory.is_file():
        raise FileError(f"{arg}: {directory} is a file, expected a directory")
    if not directory.is_dir() or not any(directory.iterdir()):
        return
    try:
        earlier = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        ours = str(earlier.get("format", "")).startswith(FORMAT_NAME + "/")
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise FileError(f"{arg}: {directory} is not empty and holds no conformance suite "
                        f"({MANIFEST}): choose a new or empty directory (an earlier suite "
                        "may be overwritten)")


def _export_case(case: cases.Case, directory: Path, arg: str) -> dict:
    """Write one case's files and return its manifest entry; the expected answers are
    computed on the files as written (model and inputs read back)."""
    case_dir = prepare_output_dir(directory / case.name, arg)
    save_model(case.net, case_dir / "model.npz", arg)
    write_npy(case_dir / "inputs.npy", case.inputs, arg)
    parameters = dict(case.parameters)
    if case.targets is not None:
        write_npz(case_dir / "data.npz", {"X": case.inputs, "y": case.targets}, arg)
        parameters["data"] = f"{case.name}/data.npz"
    net, names = load_model(case_dir / "model.npz", with_names=True)
    x = load_npy(case_dir / "inputs.npy", arg)
    answers, certificate = cases.answer(case.kind, net, names, x, parameters, case.targets)
    keys = cases.resolve_keys(case.answer_keys or cases.DEFAULT_KEYS[case.kind], answers)
    graded = {}
    if case.kind == "solve":
        unique, why = cases.unique_solve_keys(net, x, parameters)
        keys, graded = [k for k in keys if k in unique], {"graded": why}
    if not keys:
        raise RuntimeError(f"conformance: case {case.name} has no answer key")
    expected = {k: answers[k] for k in keys}
    write_npz(case_dir / "expected.npz", expected, arg)
    tolerances = {**case.key_tolerances, **cases.certified_tolerances(
        case.kind, expected, certificate, case.rtol, case.atol)}
    return {"name": case.name, "tests": case.tests, "kind": case.kind,
            "model": f"{case.name}/model.npz", "inputs": f"{case.name}/inputs.npy",
            "expected": f"{case.name}/expected.npz", "rtol": case.rtol, "atol": case.atol,
            "key_tolerances": {k: v for k, v in tolerances.items() if k in keys},
            "answer_keys": keys, "shapes": {k: list(np.shape(v)) for k, v in expected.items()},
            "parameters": parameters, "certificate": certificate, **graded}


def export(directory, arg: str = "DIR") -> dict:
    """Write every case of conformance_cases.build_cases() to `directory` (new, empty or an
    earlier suite) and, last, the manifest, which is returned.  The expected answers come
    from the functions `run --self` uses."""
    directory = Path(directory)
    _check_export_dir(directory, arg)
    prepare_output_dir(directory, arg)
    (directory / MANIFEST).unlink(missing_ok=True)   # a re-export stopped halfway: no suite
    entries = [_export_case(case, directory, arg) for case in cases.build_cases()]
    manifest = {"format": FORMAT, "generated_by": f"deepspline-reference {__version__}",
                "seed": cases.SEED, "cases": entries}
    write_text(directory / MANIFEST, dumps_json(manifest, indent=1) + "\n", arg)
    return manifest


# ------------------------------------------------------------------------------ reading
@dataclass
class Suite:
    directory: Path
    manifest: dict

    @property
    def cases(self) -> list:
        return self.manifest["cases"]

    def path(self, relative: str) -> Path:
        return self.directory / relative


def _check_format(value, where: str) -> None:
    """FORMAT_NAME/1 only: another name is not a suite, a higher version needs a newer
    reference."""
    name, _, version = str(value).rpartition("/")
    if name != FORMAT_NAME or not version.isdigit():
        raise SuiteError(f"{where}: 'format' is {value!r}, expected {FORMAT!r}: not a "
                         "conformance suite")
    if int(version) > FORMAT_VERSION:
        raise SuiteError(f"{where}: the suite has format version {version} ({value!r}); this "
                         f"reference (deepspline-reference {__version__}) reads version "
                         f"{FORMAT_VERSION}: upgrade deepspline-reference to grade it")
    if int(version) < 1:
        raise SuiteError(f"{where}: unknown format version {value!r}")


def _check_case(entry, i: int, where: str, seen: set) -> None:
    if not isinstance(entry, dict):
        raise SuiteError(f"{where}: cases[{i}] should be an object")
    for key, types in CASE_FIELDS.items():
        if not isinstance(entry.get(key), types) or isinstance(entry.get(key), bool):
            raise SuiteError(f"{where}: cases[{i}] ({entry.get('name')!r}): field {key!r} is "
                             f"missing or not a {getattr(types, '__name__', 'number')}")
    name = entry["name"]
    if not name or "/" in name or "\\" in name or name.startswith(".") or name in seen:
        raise SuiteError(f"{where}: cases[{i}]: name {name!r} is empty, a path, or repeated")
    seen.add(name)
    if entry["kind"] not in cases.KINDS:
        raise SuiteError(f"{where}: case {name!r} has kind {entry['kind']!r}, expected one of "
                         f"{sorted(cases.KINDS)}")
    if not (math.isfinite(entry["rtol"]) and math.isfinite(entry["atol"])
            and entry["rtol"] >= 0 and entry["atol"] >= 0):
        raise SuiteError(f"{where}: case {name!r}: rtol and atol should be finite numbers >= 0")
    keys = entry["answer_keys"]
    if not keys or not all(isinstance(k, str) and k for k in keys) or len(set(keys)) < len(keys):
        raise SuiteError(f"{where}: case {name!r}: answer_keys should be a non-empty list of "
                         f"distinct key names, got {keys!r}")
    tolerances = entry.get("key_tolerances", {})
    if not isinstance(tolerances, dict) or not all(
            isinstance(v, list) and len(v) == 2 and all(_tolerance_number(t) for t in v)
            for v in tolerances.values()):
        raise SuiteError(f"{where}: case {name!r}: key_tolerances should map keys to [rtol, "
                         f"atol], finite numbers >= 0, got {tolerances!r}")
    missing = [k for k in KIND_PARAMETERS.get(entry["kind"], ()) if k not in entry["parameters"]]
    if missing:
        raise SuiteError(f"{where}: case {name!r} ({entry['kind']}): parameters lack {missing}")


def _tolerance_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


def load_suite(directory, arg: str = "DIR") -> Suite:
    """Read and validate DIR/manifest.json (SuiteError naming `arg` and the problem); the
    case files are checked when the case is graded."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SuiteError(f"{arg}: {directory} is not a directory (expected a conformance suite "
                         "written by `conformance export`)")
    path = directory / MANIFEST
    if not path.is_file():
        raise SuiteError(f"{arg}: {directory} has no {MANIFEST}: not a conformance suite "
                         "(write one with `python -m reference conformance export DIR`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{arg}: {path} is not valid JSON ({exc})") from None
    where = f"{arg}: {path}"
    if not isinstance(manifest, dict) or "format" not in manifest:
        raise SuiteError(f"{where}: expected a JSON object with a 'format' entry")
    _check_format(manifest["format"], where)
    if not isinstance(manifest.get("cases"), list) or not manifest["cases"]:
        raise SuiteError(f"{where}: 'cases' should be a non-empty list")
    seen = set()
    for i, entry in enumerate(manifest["cases"]):
        _check_case(entry, i, where, seen)
    return Suite(directory, manifest)


# ------------------------------------------------------------------------------ grading
@dataclass
class CaseResult:
    """The grading of one case: rows as oracle.check reports them (one per key, plus a failed
    row per missing key and per expected value this reference does not reproduce)."""
    name: str
    kind: str
    passed: bool
    rows: list
    localisation: dict | None = None
    ignored_keys: list = field(default_factory=list)


@dataclass
class SuiteReport:
    suite: str
    answers: str
    format: str
    generated_by: str
    cases: list

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)

    @property
    def failed(self) -> list:
        return [c.name for c in self.cases if not c.passed]

    def to_json(self) -> dict:
        return {"suite": self.suite, "answers": self.answers, "format": self.format,
                "generated_by": self.generated_by, "passed": self.passed,
                "cases_passed": len(self.cases) - len(self.failed), "cases_failed": self.failed,
                "cases": [{"name": c.name, "kind": c.kind, "passed": c.passed,
                           "rows": [asdict(r) for r in c.rows], "localisation": c.localisation,
                           "ignored_keys": c.ignored_keys} for c in self.cases]}

    def format_table(self) -> str:
        """The human report: one line per case, then every failed row (rows failing for the
        same reason without a comparison, e.g. a missing file, on one line)."""
        lines = [f"conformance suite {self.suite} ({self.format}, {len(self.cases)} cases, "
                 f"made by {self.generated_by}); answers: {self.answers}",
                 f"  {'case':30s} {'kind':16s} {'keys':>4s}  {'result':6s}  "
                 f"{'max abs err':>11s}  {'max rel err':>11s}  notes"]
        for c in self.cases:
            compared = [r for r in c.rows if r.compared]
            errors = (f"{max(r.max_abs for r in compared):11.3g}  "
                      f"{max(r.max_rel for r in compared):11.3g}" if compared
                      else f"{'-':>11s}  {'-':>11s}")
            kinks = [r for r in c.rows if r.on_knot]
            note = (max(kinks, key=lambda r: ("closest" in r.note, r.on_knot)).note
                    if kinks else "")
            lines.append(f"  {c.name:30s} {c.kind:16s} {len(c.rows):4d}  "
                         f"{'pass' if c.passed else 'FAIL':6s}  {errors}  {note}".rstrip())
        for c in self.cases:
            if c.ignored_keys:
                lines.append(f"  {c.name}: ignored keys not asked by the case: "
                             f"{', '.join(c.ignored_keys)}")
        for c in self.cases:
            if not c.passed:
                lines.extend(failure_lines(c))
        lines.append(f"{len(self.cases)} cases: {len(self.cases) - len(self.failed)} passed, "
                     f"{len(self.failed)} failed" + (f" ({', '.join(self.failed)})"
                                                     if self.failed else ""))
        return "\n".join(lines)


def failure_lines(c: CaseResult) -> list:
    lines = [f"FAILED {c.name} ({c.kind}):"]
    unread = {}
    for r in c.rows:
        if r.passed:
            continue
        if not r.compared and r.note:
            unread.setdefault(r.note, []).append(r.key)
            continue
        where = f" at {r.worst_index}" if r.worst_index is not None else ""
        lines.append(f"  {r.key}: max abs err {r.max_abs:.3g}, max rel err {r.max_rel:.3g}"
                     f"{where}" + (f"; {r.note}" if r.note else ""))
    for note, keys in unread.items():
        named = (f"all {len(keys)} answer keys" if len(keys) == len(c.rows) > 3
                 else ", ".join(keys))
        lines.append(f"  {named}: {note}")
    if c.localisation:
        from reference.localise import format_localisation

        lines.extend(f"  {line}" for line in format_localisation(c.localisation))
    return lines


def tolerance(entry: dict, key: str) -> tuple[float, float]:
    rtol, atol = entry.get("key_tolerances", {}).get(key, (entry["rtol"], entry["atol"]))
    return float(rtol), float(atol)


def read_case(suite: Suite, entry: dict):
    """(net, names, inputs, targets, expected) of a case, each file checked (SuiteError
    naming the case when one is missing or damaged)."""
    name = entry["name"]
    try:
        net, names = load_model(suite.path(entry["model"]), with_names=True)
        x = net.check_inputs(load_npy(suite.path(entry["inputs"]), "inputs"))
        targets = None
        if "data" in entry["parameters"]:
            targets = load_npz(suite.path(entry["parameters"]["data"]), "data", ["y"])["y"]
        expected = load_npz(suite.path(entry["expected"]), "expected", entry["answer_keys"])
    except (ValueError, OSError, TypeError) as exc:
        raise SuiteError(f"DIR: {suite.directory}, case {name!r}: {exc}") from None
    return net, names, x, targets, expected


def read_answers(path: Path, keys: list) -> tuple[dict, list, str | None]:
    """(answers present among keys, other keys in the file, problem or None)."""
    if not path.is_file():
        return {}, [], f"no answers file {path}"
    if file_kind(path) == "torch":             # a zip too, but no .npz of answers
        return {}, [], f"answers: {path} is {describe(path)}, not an .npz of answer arrays"
    try:
        with NpzReader(path, "answers") as reader:
            got = {k: np.asarray(reader[k]) for k in keys if k in reader}
            return got, [k for k in reader.names if k not in keys], None
    except FileError as exc:
        return {}, [], str(exc)


def case_answers(suite: Suite, entry: dict, case=None) -> dict:
    """This reference's answers to a case (cases.answer on the suite's files), errors naming
    the case; `case` = read_case's tuple when already read."""
    net, names, x, targets, _ = case or read_case(suite, entry)
    try:
        return cases.answer(entry["kind"], net, names, x, entry["parameters"], targets)[0]
    except ANSWER_ERRORS as exc:
        raise SuiteError(f"DIR: {suite.directory}, case {entry['name']!r}: this reference "
                         f"could not answer it (parameters {entry['parameters']!r}; "
                         f"{type(exc).__name__}: {exc})") from None


def checked_by_oracle(kind: str, key: str) -> bool:
    """Keys graded by oracle.check (one-sided rule, localisation): those it knows, in the
    kinds it answers; the others (exact values, solve optima, layer-wise bounds) are compared
    with expected.npz."""
    return kind in cases.CHECKED_KINDS and oracle.key_order(key)[0] < len(oracle.KEY_PATTERNS)


def grade_case(suite: Suite, entry: dict, answers_path: Path, live: dict | None = None
               ) -> CaseResult:
    """Grade one case (see the module docstring); live: this reference's answers to it
    (computed when None)."""
    case = read_case(suite, entry)
    net, names, x, targets, expected = case
    keys = entry["answer_keys"]
    answers, ignored, problem = read_answers(answers_path, keys)
    objective = cases.objective_of(entry["parameters"], targets)
    live = case_answers(suite, entry, case) if live is None else live
    rows, localisation = [], None
    by_check = {k: v for k, v in answers.items() if checked_by_oracle(entry["kind"], k)}
    if by_check:
        report = oracle.check(net, x, by_check, names=names, rtol=entry["rtol"],
                              atol=entry["atol"], objective=objective)
        rows.extend(report.rows)
        localisation = report.localisation
    for key in keys:
        if key not in answers:
            rows.append(oracle.failed_row(key, problem or f"missing from {answers_path}"))
        elif key not in by_check:
            rtol, atol = tolerance(entry, key)
            rows.append(oracle.compare(key, expected[key], answers[key], rtol=rtol, atol=atol))
        if key in live:       # the shipped expected value against this reference
            rtol, atol = tolerance(entry, key)
            row = oracle.compare(f"expected:{key}", expected[key], live[key], rtol=rtol,
                                 atol=atol)
            if not row.passed:
                row.note = (f"the suite's expected value disagrees with deepspline-reference "
                            f"{__version__} (suite made by {suite.manifest.get('generated_by')})")
                rows.append(row)
    order = {k: i for i, k in enumerate(keys)}
    rows.sort(key=lambda r: order.get(r.key, len(keys)))
    return CaseResult(entry["name"], entry["kind"], all(r.passed for r in rows), rows,
                      localisation, ignored)


def grade(suite: Suite, answers_dir, label: str | None = None, live: dict | None = None
          ) -> SuiteReport:
    """Grade ANSWERS_DIR/NAME.npz against every case of the suite (live: case name -> this
    reference's answers, when already computed)."""
    answers_dir = Path(answers_dir)
    if not answers_dir.is_dir():
        raise FileError(f"--answers: {answers_dir} is not a directory (expected one NAME.npz "
                        "per case of the suite)")
    live = live or {}
    results = [grade_case(suite, entry, answers_dir / f"{entry['name']}.npz",
                          live.get(entry["name"])) for entry in suite.cases]
    return SuiteReport(str(suite.directory), label or str(answers_dir), suite.manifest["format"],
                       str(suite.manifest.get("generated_by")), results)


def self_answers(suite: Suite, out_dir) -> dict:
    """The reference's own answers to every case, written as an outside implementation
    would: OUT/NAME.npz with the case's answer keys, from the suite's files; returned as
    case name -> answers."""
    found = {}
    for entry in suite.cases:
        found[entry["name"]] = answers = case_answers(suite, entry)
        write_npz(Path(out_dir) / f"{entry['name']}.npz",
                  {k: answers[k] for k in entry["answer_keys"] if k in answers}, "--self")
    return found


def run_self(suite: Suite) -> SuiteReport:
    """`conformance run DIR --self`: the reference's answers, graded like anyone's."""
    with tempfile.TemporaryDirectory(prefix="conformance-self-") as tmp:
        live = self_answers(suite, tmp)
        return grade(suite, tmp, label="--self (this reference)", live=live)


def check_report_path(path, suite: Suite, answers_dir=None, arg: str = "--json") -> None:
    """The report may not land in the suite (its files are the graded reference) nor on an
    answers file of a case: FileError naming `arg`."""
    target = Path(path).resolve()
    if target.is_relative_to(suite.directory.resolve()):
        raise FileError(f"{arg}: {path} is inside the suite DIR {suite.directory}; writing "
                        "there could replace a case file (choose a path outside it)")
    if answers_dir is not None:
        for entry in suite.cases:
            if target == (Path(answers_dir) / f"{entry['name']}.npz").resolve():
                raise FileError(f"{arg}: {path} is the answers file of case "
                                f"{entry['name']!r}; writing there would destroy it")
