"""The conformance suite: golden cases written to a directory, and the grading of another
implementation's answers to them (issue 9, item 3).

Layout of a suite DIR (format FORMAT):
    DIR/manifest.json         {"format", "generated_by", "seed", "tolerance_rule", "cases":
                               [CASE, ...]}
    DIR/NAME/model.npz        the model file (reference.io)
    DIR/NAME/inputs.npy       the inputs (M, N_0) (for a solve case: the data X)
    DIR/NAME/data.npz         objective and solve cases only: X (M, N_0) and y
    DIR/NAME/expected.npz     the reference's answers, one entry per answer key
CASE = {"name", "tests" (one sentence), "kind", "model", "inputs", "expected" (paths relative
to DIR, exactly NAME/model.npz, NAME/inputs.npy, NAME/expected.npz), "rtol", "atol",
"key_tolerances" ({key: [rtol, atol]} overriding the case's), "answer_keys", "shapes" ({key:
shape}), "parameters" (p, box, layer, loss, lam, reg, grid, lip_max, data ...),
"certificate" (how the expected values are certified)}.
The manifest is written last: a directory without one is not a suite.

Answers (ANSWERS_DIR): one NAME.npz per case holding the case's answer keys.  A key passes
when |got - expected| <= atol S + rtol |expected| elementwise (shapes equal), S the key's
scale (max(max |expected| over the key, the quantity's magnitude): reference.oracle._key_scales, as
for `check`; a key that a zero answer would pass too is listed as unresolved); the keys that
oracle.reference_answers knows (outputs, input_jacobian, param_gradients/..., layer{i}/output,
tv2/{i}, bv2/{i}, lipschitz_bound/...) are graded by oracle.check, which accepts either
one-sided derivative on rows whose pre-activation lies on a knot and localises a failure;
the others (exact Lipschitz values, solve optima, layer-wise bounds) by oracle.compare
against expected.npz.  A missing file or key fails, named.  Every grading also checks that
the suite's expected.npz agrees with this reference's answers, computed afresh for every kind
(rows 'expected:KEY'), so `--self` tests the shipped numbers, not only the code, and a
damaged expected value is never blamed on the answers.

What the grader trusts (`load_suite`): nothing in the manifest that decides a verdict.  The
tolerances are built in (reference.conformance._cases: each case's rtol, atol and
key_tolerances, and for the certified exact values the bracket this reference certifies now); a
manifest whose cases, kinds, parameters, file paths or tolerances differ from the built-in ones
of its format
version is refused (SuiteError naming DIR, the manifest and the field), and its answer keys
must be those this reference derives for the case; the model, input and data arrays must be,
bit for bit, those of the case this version builds (`read_case`).  A path never leaves DIR
(no absolute path, no '..', no symlink out), and no error message echoes the bytes of a file.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from reference import __version__
from reference._format import clipped, shown
from reference.conformance import _cases as cases
from reference.exceptions import FileError, SuiteError
from reference.io._files import (
    NpzReader,
    atomic_write,
    describe,
    dumps_json,
    file_kind,
    load_npy,
    load_npz,
    prepare_output_dir,
    write_npz,
    write_text,
)
from reference.io._model_file import layer_entries, load_model, save_model
from reference.oracle import _check as oracle
from reference.oracle._key_scales import KeyScales, solve_unit
from reference.oracle._localise import format_localisation

FORMAT_NAME = "deepspline-reference-conformance"
FORMAT_VERSION = 2            # 2: tolerances built in, atol a fraction of each key's scale
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 2**24    # the manifest of this version is ~60 kB
TOLERANCE_RULE = ("|got - expected| <= atol S + rtol |expected| per entry, S = max(max "
                  "|expected| over the key, the quantity's magnitude); the tolerances "
                  "are built into the grader for this format version")
CASE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "name": str, "tests": str, "kind": str, "model": str, "inputs": str, "expected": str,
    "rtol": (int, float), "atol": (int, float), "answer_keys": list, "parameters": dict}
KIND_PARAMETERS = {"objective": ("loss", "lam", "reg", "mu", "data"),   # what `answer` reads
                   "lipschitz_exact": ("p", "box"),
                   "solve": ("layer", "loss", "lam", "reg", "grid", "lip_max", "data")}
ANSWER_ERRORS = (ValueError, KeyError, TypeError, IndexError, RuntimeError)




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


def _check_case_dirs(directory: Path, built: list, arg: str) -> None:
    """Before anything is written: no case directory DIR/NAME of an earlier suite is a
    symbolic link (the case's files would be written where it leads, out of DIR or into
    another case), FileError naming `arg` and the link.  A linked case file is harmless:
    atomic_write replaces the link itself."""
    for case in built:
        path = directory / case.name
        if path.is_symlink():
            raise FileError(f"{arg}: {path} is a symbolic link (to {os.readlink(path)}); a "
                            "suite's case directories are written in place, never through a "
                            "link: remove it, or choose a new or empty directory")


def _export_case(case: cases.Case, directory: Path, arg: str) -> dict:
    """Write one case's files and return its manifest entry; the expected answers are
    computed on the files as written (model and inputs read back)."""
    files = cases.case_files(case)
    case_dir = prepare_output_dir(directory / case.name, arg)
    save_model(case.net, directory / files["model"], arg)
    write_npy(directory / files["inputs"], case.inputs, arg)
    parameters = dict(case.parameters)
    if case.targets is not None:
        write_npz(directory / files["data"], {"X": case.inputs, "y": case.targets}, arg)
        parameters["data"] = files["data"]
    net, names = load_model(case_dir / "model.npz", with_names=True)
    x = load_npy(case_dir / "inputs.npy", arg)
    answers, certificate = cases.answer(case.kind, net, names, x, parameters, case.targets)
    keys, graded = cases.case_keys(case.kind, case.answer_keys, answers, net, x, parameters)
    if not keys:
        raise RuntimeError(f"conformance: case {case.name} has no answer key")
    expected = {k: answers[k] for k in keys}
    write_npz(directory / files["expected"], expected, arg)
    return {"name": case.name, "tests": case.tests, "kind": case.kind,
            "model": files["model"], "inputs": files["inputs"], "expected": files["expected"],
            "rtol": case.rtol, "atol": case.atol,
            "key_tolerances": cases.case_tolerances(case, expected, certificate),
            "answer_keys": keys, "shapes": {k: list(np.shape(v)) for k, v in expected.items()},
            "parameters": parameters, "certificate": certificate, **graded}


def export(directory: str | os.PathLike, arg: str = "DIR",
           built: list[cases.Case] | None = None) -> dict:
    """Write the conformance suite to a directory: the cases' files, then the manifest.

    Parameters
    ----------
    directory : str or path-like
        The suite directory DIR: new, empty or an earlier suite (overwritten).
    arg : str, default 'DIR'
        How error messages name `directory`.
    built : list of Case, optional
        The cases to write; None: every case of `build_cases`.

    Returns
    -------
    manifest : dict
        The manifest written last to DIR/manifest.json: 'format'
        ('deepspline-reference-conformance/2'), 'generated_by', 'seed', 'tolerance_rule'
        and 'cases', one entry per case with its name, tests, kind, the paths of its files
        (relative to DIR), rtol, atol, key_tolerances, answer_keys, shapes, parameters and
        certificate.

    Raises
    ------
    FileError
        Naming `arg`, when DIR is not new, empty or a suite, a case directory of an earlier
        suite is a symbolic link (checked before anything is written), or a file cannot be
        written.

    See Also
    --------
    load_suite : Read a suite back.
    grade : Grade answers to it.

    Notes
    -----
    Per case NAME the directory holds NAME/model.npz (the model file), NAME/inputs.npy
    (the inputs, of shape (n_samples, n_in)), NAME/data.npz (objective and solve cases: X
    and y) and NAME/expected.npz (the reference's answers, computed on the files as written
    and read back, by the functions ``conformance run --self`` uses).  Every file is
    written atomically, and the manifest last: a directory without one is not a suite.

    Examples
    --------
    A suite of one tiny case, exported, answered by the reference itself and graded:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from reference.nn import build_mlp
    >>> from reference.conformance import Case, export, grade, load_suite, self_answers
    >>> case = Case(name="tiny", tests="a small spline network", kind="evaluate",
    ...             net=build_mlp([2, 3, 1], "spline", rng=0),
    ...             inputs=np.random.default_rng(1).normal(size=(4, 2)))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     manifest = export(os.path.join(tmp, "suite"), built=[case])
    ...     files = sorted(os.listdir(os.path.join(tmp, "suite", "tiny")))
    ...     suite = load_suite(os.path.join(tmp, "suite"), built=[case])
    ...     os.mkdir(os.path.join(tmp, "answers"))
    ...     live = self_answers(suite, os.path.join(tmp, "answers"))
    ...     report = grade(suite, os.path.join(tmp, "answers"), live=live)
    >>> manifest["format"], files
    ('deepspline-reference-conformance/2', ['expected.npz', 'inputs.npy', 'model.npz'])
    >>> manifest["cases"][0]["answer_keys"][:2]
    ['outputs', 'input_jacobian']
    >>> report.passed, report.failed
    (True, [])
    """
    directory = Path(directory)
    _check_export_dir(directory, arg)
    built = cases.build_cases() if built is None else built
    _check_case_dirs(directory, built, arg)
    prepare_output_dir(directory, arg)
    (directory / MANIFEST).unlink(missing_ok=True)   # a re-export stopped halfway: no suite
    entries = [_export_case(case, directory, arg) for case in built]
    manifest = {"format": FORMAT, "generated_by": f"deepspline-reference {__version__}",
                "seed": cases.SEED, "tolerance_rule": TOLERANCE_RULE, "cases": entries}
    write_text(directory / MANIFEST, dumps_json(manifest, indent=1) + "\n", arg)
    return manifest


# ------------------------------------------------------------------------------ reading
@dataclass
class Suite:
    """A suite read and checked by `load_suite`: its directory, the manifest, and per case
    name the built-in case (reference.conformance._cases.Case) whose tolerances grade it."""
    directory: Path
    manifest: dict
    built: dict = field(default_factory=dict)
    arg: str = "DIR"

    @property
    def cases(self) -> list:
        return self.manifest["cases"]

    @property
    def where(self) -> str:
        """How messages name the suite: 'DIR: DIR/manifest.json'."""
        return f"{self.arg}: {self.directory / MANIFEST}"

    def path(self, entry: dict, what: str) -> Path:
        """The file `what` (model, inputs, expected, data) of a case, inside DIR (its path
        was checked by load_suite; a symlink that leads out of DIR is refused here, when the
        file is read)."""
        relative = entry["parameters"]["data"] if what == "data" else entry[what]
        path = self.directory / relative
        real, top = Path(os.path.realpath(path)), Path(os.path.realpath(self.directory))
        if not real.is_relative_to(top):
            raise SuiteError(f"{self.where}: the {what} of case {entry['name']!r}, "
                             f"{relative}, leads out of DIR (a symbolic link): refused")
        return path


FORMAT_PATTERN = re.compile(r"(?P<name>[A-Za-z0-9._-]+)/(?P<version>[0-9]+)", re.ASCII)


def _check_format(value, where: str) -> None:
    """FORMAT only: another name (or not a string) is not a suite, a higher version needs a
    newer reference, a lower one a re-export (its tolerances meant something else)."""
    match = FORMAT_PATTERN.fullmatch(value) if isinstance(value, str) else None
    if match is None or match["name"] != FORMAT_NAME:
        raise SuiteError(f"{where}: 'format' is {shown(value)}, expected {FORMAT!r}: not a "
                         "conformance suite")
    version = match["version"]
    if len(version) > 9 or version != str(int(version)) or int(version) < 1:
        raise SuiteError(f"{where}: 'format' is {shown(value)}, an unknown format version; "
                         f"expected {FORMAT!r}")
    if int(version) > FORMAT_VERSION:
        raise SuiteError(f"{where}: the suite has format version {version} ({value!r}); this "
                         f"reference (deepspline-reference {__version__}) reads version "
                         f"{FORMAT_VERSION}: upgrade deepspline-reference to grade it")
    if int(version) < FORMAT_VERSION:
        raise SuiteError(f"{where}: the suite has format version {version} ({value!r}), whose "
                         "tolerances were absolute and read from the manifest; this reference "
                         f"grades {FORMAT!r} with built-in tolerances relative to each key's "
                         "scale: re-export the suite (`python -m reference conformance export "
                         "DIR`)")


def _check_case(entry, i: int, where: str, seen: set) -> None:
    if not isinstance(entry, dict):
        raise SuiteError(f"{where}: cases[{i}] should be an object")
    for key, types in CASE_FIELDS.items():
        if not isinstance(entry.get(key), types) or isinstance(entry.get(key), bool):
            raise SuiteError(f"{where}: cases[{i}] ({shown(entry.get('name'))}): field {key!r} "
                             f"is missing or not a {getattr(types, '__name__', 'number')}")
    name = entry["name"]
    if not name or "/" in name or "\\" in name or name.startswith(".") or name in seen:
        raise SuiteError(f"{where}: cases[{i}]: name {shown(name)} is empty, a path, or "
                         "repeated")
    seen.add(name)
    if entry["kind"] not in cases.KINDS:
        raise SuiteError(f"{where}: case {name!r} has kind {shown(entry['kind'])}, expected one "
                         f"of {sorted(cases.KINDS)}")
    if not (math.isfinite(entry["rtol"]) and math.isfinite(entry["atol"])
            and entry["rtol"] >= 0 and entry["atol"] >= 0):
        raise SuiteError(f"{where}: case {name!r}: rtol and atol should be finite numbers >= 0")
    keys = entry["answer_keys"]
    if not keys or not all(isinstance(k, str) and k for k in keys) or len(set(keys)) < len(keys):
        raise SuiteError(f"{where}: case {name!r}: answer_keys should be a non-empty list of "
                         f"distinct key names, got {shown(keys)}")
    tolerances = entry.get("key_tolerances", {})
    if not isinstance(tolerances, dict) or not all(
            isinstance(v, list) and len(v) == 2 and all(_tolerance_number(t) for t in v)
            for v in tolerances.values()):
        raise SuiteError(f"{where}: case {name!r}: key_tolerances should map keys to [rtol, "
                         f"atol], finite numbers >= 0, got {shown(tolerances)}")
    missing = [k for k in KIND_PARAMETERS.get(entry["kind"], ()) if k not in entry["parameters"]]
    if missing:
        raise SuiteError(f"{where}: case {name!r} ({entry['kind']}): parameters lack {missing}")


def _tolerance_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


def _check_paths(entry: dict, case: cases.Case, where: str) -> None:
    """Every path the manifest names is the built-in layout's (NAME/model.npz, ...): relative,
    inside DIR, never absolute nor through '..'."""
    files = cases.case_files(case)
    named = {k: entry.get(k) for k in ("model", "inputs", "expected")}
    if "data" in entry["parameters"]:
        named["data"] = entry["parameters"]["data"]
    if set(named) - set(files):
        raise SuiteError(f"{where}: case {entry['name']!r}: parameters name a data file "
                         f"({shown(named['data'])}); the built-in case has none")
    for what, path in named.items():
        if path != files[what]:
            reason = ("an absolute path" if isinstance(path, str) and (
                path.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", path))
                else "a path through '..'" if isinstance(path, str) and ".." in
                re.split(r"[/\\]", path) else "not the suite's layout")
            raise SuiteError(f"{where}: case {entry['name']!r}: the {what} path is "
                             f"{shown(path)} ({reason}); expected {files[what]!r}, "
                             "relative to DIR")


def _check_builtin(entry: dict, case: cases.Case, version: str, where: str) -> None:
    """The case of the manifest is the built-in one: kind, parameters, paths, rtol, atol and
    key_tolerances (those of a certified exact value only record the export's bracket: the
    grading takes the bracket this reference certifies, see `tolerance`)."""
    name = entry["name"]
    own = f"the built-in value of {version}"
    if entry["kind"] != case.kind:
        raise SuiteError(f"{where}: case {name!r} has kind {entry['kind']!r}, {own} is "
                         f"{case.kind!r}")
    _check_paths(entry, case, where)
    parameters = {k: v for k, v in entry["parameters"].items() if k != "data"}
    if parameters != json.loads(dumps_json(case.parameters)):
        raise SuiteError(f"{where}: case {name!r}: parameters {shown(parameters, 200)} differ "
                         f"from {own}, {case.parameters!r}")
    for field_name in ("rtol", "atol"):
        if entry[field_name] != getattr(case, field_name):
            raise SuiteError(f"{where}: case {name!r}: {field_name} {entry[field_name]!r} differs "
                             f"from {own}, {getattr(case, field_name)!r}: the tolerances are "
                             "built in; re-export the suite")
    for key, value in entry.get("key_tolerances", {}).items():
        built = case.key_tolerances.get(key)
        if built is None and case.kind == "lipschitz_exact":
            continue                           # certified: graded with this run's bracket
        if built is None or [float(v) for v in built] != value:
            theirs = ("which has none for this key" if built is None
                      else f"{[float(v) for v in built]!r}")
            raise SuiteError(f"{where}: case {name!r}: key_tolerances[{shown(key)}] = "
                             f"{shown(value)} differs from {own}, {theirs}: the tolerances are "
                             "built in; re-export the suite")


def _read_manifest(directory: Path, arg: str) -> tuple[Path, dict]:
    """DIR/manifest.json as JSON: a regular file inside DIR, at most MAX_MANIFEST_BYTES."""
    if not directory.is_dir():
        raise SuiteError(f"{arg}: {directory} is not a directory (expected a conformance suite "
                         "written by `conformance export`)")
    path = directory / MANIFEST
    if not path.is_file():
        raise SuiteError(f"{arg}: {directory} has no {MANIFEST}: not a conformance suite "
                         "(write one with `python -m reference conformance export DIR`)")
    if not Path(os.path.realpath(path)).is_relative_to(os.path.realpath(directory)):
        raise SuiteError(f"{arg}: {path} leads out of DIR (a symbolic link): refused")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise SuiteError(f"{arg}: {path} holds {path.stat().st_size} bytes, more than a "
                         f"manifest of {FORMAT!r} can ({MAX_MANIFEST_BYTES})")
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        reason = (f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
                  if isinstance(exc, json.JSONDecodeError) else type(exc).__name__)
        raise SuiteError(f"{arg}: {path} is not valid JSON ({reason})") from None


def load_suite(directory: str | os.PathLike, arg: str = "DIR",
               built: list[cases.Case] | None = None) -> Suite:
    """Read a suite's manifest and check it against the built-in cases.

    Parameters
    ----------
    directory : str or path-like
        The suite directory DIR, holding DIR/manifest.json.
    arg : str, default 'DIR'
        How error messages name `directory`.
    built : list of Case, optional
        The built-in cases to check against; None: `build_cases`.

    Returns
    -------
    suite : Suite
        ``directory``, ``manifest``, ``built`` (case name -> the built-in Case whose
        tolerances grade it), ``cases`` (the manifest's case entries) and ``where`` (how
        messages name the suite).

    Raises
    ------
    SuiteError
        Naming `arg`, the manifest and the problem, when DIR is not a directory or has no
        manifest, the manifest is too large, not JSON or not of a known format, or its
        cases, kinds, parameters, file paths or tolerances differ from the built-in ones of
        its format version.

    Notes
    -----
    The grader trusts nothing in the manifest that decides a verdict: the tolerances are
    built in, the answer keys must be those this reference derives for the case, and the
    model, input and data arrays must be, bit for bit, those of the case this version
    builds (checked when the case is graded).  A path never leaves DIR (no absolute path,
    no '..', no symbolic link out).
    """
    directory = Path(directory)
    path, manifest = _read_manifest(directory, arg)
    where = f"{arg}: {path}"
    if not isinstance(manifest, dict) or "format" not in manifest:
        raise SuiteError(f"{where}: expected a JSON object with a 'format' entry")
    _check_format(manifest["format"], where)
    if not isinstance(manifest.get("cases"), list) or not manifest["cases"]:
        raise SuiteError(f"{where}: 'cases' should be a non-empty list")
    seen: set[str] = set()
    for i, entry in enumerate(manifest["cases"]):
        _check_case(entry, i, where, seen)
    known = {c.name: c for c in (cases.build_cases() if built is None else built)}
    missing, extra = sorted(set(known) - seen), sorted(seen - set(known))
    if missing or extra:
        raise SuiteError(f"{where}: the cases differ from the built-in ones of {FORMAT!r}: "
                         + "; ".join(f"{what} {shown(names, 200)}" for what, names in
                                     (("missing", missing), ("unknown", extra)) if names))
    for entry in manifest["cases"]:
        _check_builtin(entry, known[entry["name"]], FORMAT, where)
    return Suite(directory, manifest, known, arg)


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

    @property
    def unresolved(self) -> list:
        """Keys whose rows pass but would pass a zero answer too (oracle.Row.resolved)."""
        return [r.key for r in self.rows if r.passed and not r.resolved]


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
                "generated_by": self.generated_by, "tolerances": TOLERANCE_RULE,
                "passed": self.passed,
                "cases_passed": len(self.cases) - len(self.failed), "cases_failed": self.failed,
                "cases": [{"name": c.name, "kind": c.kind, "passed": c.passed,
                           "rows": [asdict(r) for r in c.rows], "localisation": c.localisation,
                           "ignored_keys": c.ignored_keys, "unresolved": c.unresolved}
                          for c in self.cases]}

    def format_table(self) -> str:
        """The human report: one line per case, then every failed row (rows failing for the
        same reason without a comparison, e.g. a missing file, on one line)."""
        lines = [f"conformance suite {self.suite} ({self.format}, {len(self.cases)} cases, "
                 f"made by {self.generated_by}); answers: {self.answers}",
                 f"tolerances: {TOLERANCE_RULE}",
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
            if c.unresolved:
                lines.append(f"  {c.name}: unresolved keys (pass, but a zero answer would "
                             f"pass too: {oracle.UNRESOLVED_NOTE.split(': ', 1)[1]}): "
                             f"{', '.join(c.unresolved)}")
        for c in self.cases:
            if not c.passed:
                lines.extend(failure_lines(c))
        lines.append(f"{len(self.cases)} cases: {len(self.cases) - len(self.failed)} passed, "
                     f"{len(self.failed)} failed" + (f" ({', '.join(self.failed)})"
                                                     if self.failed else ""))
        return "\n".join(lines)


def failure_lines(c: CaseResult) -> list:
    lines = [f"FAILED {c.name} ({c.kind}):"]
    unread: dict[str, list[str]] = {}             # note -> the keys not compared for it
    for r in c.rows:
        if r.passed:
            continue
        if not r.compared and r.note:
            unread.setdefault(r.note, []).append(r.key)
            continue
        where = f" at {r.worst_index}" if r.worst_index is not None else ""
        lines.append(f"  {r.key}: max abs err {r.max_abs:.3g}, max rel err {r.max_rel:.3g}"
                     f"{where} (atol S {r.atol_effective:.3g})" + (f"; {r.note}" if r.note
                                                                   else ""))
    for note, keys in unread.items():
        named = (f"all {len(keys)} answer keys" if len(keys) == len(c.rows) > 3
                 else ", ".join(keys))
        lines.append(f"  {named}: {note}")
    if c.localisation:
        lines.extend(f"  {line}" for line in format_localisation(c.localisation))
    return lines


def without_bytes(text: str, limit: int = 300) -> str:
    """An error message with any bytes literal (b'...', what NumPy quotes from a file's first
    bytes) replaced by <bytes>, cut to `limit` characters: no file's contents in a message."""
    text = re.sub(r"""\bb(['"]).*?(?<!\\)\1""", "<bytes>", text)
    return text if len(text) <= limit else text[:limit] + "..."


CASE_FILES = {"model": ("npz", "a model file (an .npz archive)"),   # what -> (kind, what)
              "inputs": ("npy", "a .npy array"),
              "data": ("npz", "an .npz archive"),
              "expected": ("npz", "an .npz archive")}


def _entries_needed(entry: dict, what: str) -> list:
    """The arrays a case's .npz file must hold: X and y (data), the answer keys (expected);
    none checked here for the model (load_model knows its entries)."""
    return {"data": ["X", "y"], "expected": list(entry["answer_keys"])}.get(what, [])


def _read_file(suite: Suite, entry: dict, what: str, read):
    """read(path) of the case's file `what`, after checking that it stays in DIR, exists, is
    the kind of file expected (from its first bytes) and holds the arrays the case needs;
    SuiteError naming DIR, the manifest, the case and the file otherwise.

    No message quotes the file: a reader's error text may hold the file's own text (NumPy
    quotes a header's keys, dtype and shape, the model reader a layer type), so a file that
    cannot be read is named with the type of the error only (and the system's reason for an
    OSError).  The names a message lists are the manifest's (answer keys) or the format's."""
    kind, expected = CASE_FILES[what]
    path = suite.path(entry, what)
    where = (f"{suite.where}: case {entry['name']!r}: its {what} file "
             f"{path.relative_to(suite.directory)}")
    if not path.is_file():
        raise SuiteError(f"{where} is missing (or not a regular file)")
    if file_kind(path) != kind:
        raise SuiteError(f"{where} is not {expected} ({describe(path)})")
    try:
        needed = _entries_needed(entry, what)
        if needed:
            with NpzReader(path, what) as reader:
                missing = [k for k in needed if k not in reader]
                held = len(reader.names)
            if missing:
                raise SuiteError(f"{where} lacks the arrays {shown(missing, 200)} (it holds "
                                 f"{held} entries): re-export the suite (`python -m reference "
                                 "conformance export DIR`)")
        return read(path)
    except SuiteError:
        raise
    except (ValueError, OSError, TypeError) as exc:
        reason = (f"{type(exc).__name__}: {exc.strerror}" if isinstance(exc, OSError)
                  and exc.strerror else type(exc).__name__)
        raise SuiteError(f"{where} cannot be read as {expected} ({reason}; what it holds is "
                         "not quoted): the file is damaged or was not written by `conformance "
                         "export`; re-export the suite (`python -m reference conformance "
                         "export DIR`)") from None


def read_case(suite: Suite, entry: dict):
    """(net, names, inputs, targets, expected) of a case, each file checked (SuiteError
    naming DIR, the manifest, the case and the file when one is missing or damaged, or when
    its arrays are not, bit for bit, those of the case this version builds: `_check_built`)."""
    built = suite.built[entry["name"]]
    net, names = _read_file(suite, entry, "model",
                            lambda p: load_model(p, with_names=True))
    x = _read_file(suite, entry, "inputs", lambda p: load_npy(p, "inputs"))
    _check_built(suite, entry, "model", layer_entries(net), layer_entries(built.net))
    _check_built(suite, entry, "inputs", x, built.inputs)    # the shape the network takes
    x = net.check_inputs(x)
    targets = None
    if "data" in entry["parameters"]:
        data = _read_file(suite, entry, "data", lambda p: load_npz(p, "data", ["X", "y"]))
        _check_built(suite, entry, "data", (data["X"], data["y"]),
                     (built.inputs, built.targets))
        targets = data["y"]
    expected = _read_file(suite, entry, "expected",
                          lambda p: load_npz(p, "expected", entry["answer_keys"]))
    return net, names, x, targets, expected


def same_bits(a, b) -> bool:
    """a and b hold the same values bit for bit: the same structure of dicts, lists and
    tuples, equal strings, None and booleans, and numbers and arrays of the same shape whose
    float64 values have the same bytes (0.0 and -0.0 differ, NaN equals itself)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_bits(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_bits(u, v) for u, v in zip(a, b))
    numeric = [isinstance(v, (int, float, np.number, np.ndarray)) and not isinstance(
        v, (bool, np.bool_)) for v in (a, b)]
    if all(numeric):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        return a.shape == b.shape and a.tobytes() == b.tobytes()
    return not any(numeric) and type(a) is type(b) and a == b


def _check_built(suite: Suite, entry: dict, what: str, found, built) -> None:
    """SuiteError naming the case and its file `what` when `found` (read from the suite) is
    not bit for bit `built` (the case as this version builds it): the expected answers are
    checked against this reference's answers on the suite's files, so files edited together
    with their expected.npz (dense weights set to 0) would otherwise grade zero answers."""
    if not same_bits(found, built):
        raise SuiteError(f"{suite.where}: case {entry['name']!r}: its {what} file "
                         f"{entry['parameters']['data'] if what == 'data' else entry[what]} "
                         "differs from the case this version builds (from seed "
                         f"{cases.SEED}, with NumPy {np.__version__}): the suite's files were "
                         "edited, or made by another version of deepspline-reference or "
                         "NumPy; re-export the suite (`python -m reference conformance "
                         "export DIR`)")


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


def case_answers(suite: Suite, entry: dict, case=None) -> tuple[dict, dict]:
    """This reference's answers to a case and their certificate (cases.answer on the suite's
    files), errors naming the case; `case` = read_case's tuple when already read."""
    net, names, x, targets, _ = case or read_case(suite, entry)
    try:
        return cases.answer(entry["kind"], net, names, x, entry["parameters"], targets)
    except ANSWER_ERRORS as exc:
        raise SuiteError(f"{suite.where}: case {entry['name']!r}: this reference could not "
                         f"answer it (parameters {shown(entry['parameters'], 200)}; "
                         f"{type(exc).__name__}: {without_bytes(str(exc))})") from None


def case_scales(net, names, x, targets, parameters: dict, kind: str, ours: dict,
                objective) -> KeyScales:
    """The scales S of a case's keys (reference.oracle._key_scales, as `check` takes them): with the
    objective's gradient for an objective case, the solve's unit T for a solve case."""
    gradient = None if objective is None else (
        oracle.objective_grad_out(objective, net.forward(x)),
        oracle.objective_extra_grads(net, objective))
    unit = (solve_unit(net, parameters["layer"], parameters["loss"], targets)
            if kind == "solve" else None)
    own = {v: k for k, v in oracle.file_names(net, names).items()}
    return KeyScales(net, x, ours, own_names=own, objective_gradient=gradient, unit=unit)


def checked_by_oracle(kind: str, key: str) -> bool:
    """Keys graded by oracle.check (one-sided rule, localisation): those it knows, in the
    kinds it answers; the others (exact values, solve optima, layer-wise bounds) are compared
    with expected.npz."""
    return kind in cases.CHECKED_KINDS and oracle.key_order(key)[0] < len(oracle.KEY_PATTERNS)


def grade_case(suite: Suite, entry: dict, answers_path: Path, live: tuple | None = None
               ) -> CaseResult:
    """Grade one case (see the module docstring) with the built-in tolerances of the case
    (`Suite.built`; the certified exact values within the bracket this reference certifies
    now); live: this reference's (answers, certificate) for it (computed when None).
    SuiteError when the manifest asks for other answer keys than the reference derives."""
    case = read_case(suite, entry)
    net, names, x, targets, expected = case
    built = suite.built[entry["name"]]
    ours, certificate = case_answers(suite, entry, case) if live is None else live
    keys = entry["answer_keys"]
    derived, _ = cases.case_keys(built.kind, built.answer_keys, ours, net, x,
                                 entry["parameters"])
    if set(derived) != set(keys):
        raise SuiteError(f"{suite.where}: case {entry['name']!r}: answer_keys "
                         f"{shown(keys, 200)} differ from those this reference asks for the "
                         f"case, {derived}")
    tolerances = cases.case_tolerances(built, ours, certificate)
    answers, ignored, problem = read_answers(answers_path, keys)
    objective = cases.objective_of(entry["parameters"], targets)
    rows, localisation = [], None
    by_check = {k: v for k, v in answers.items() if checked_by_oracle(entry["kind"], k)}
    if by_check:
        report = oracle.check(net, x, by_check, names=names, rtol=built.rtol, atol=built.atol,
                              objective=objective)
        rows.extend(report.rows)
        localisation = report.localisation
    scales = case_scales(net, names, x, targets, entry["parameters"], built.kind,
                         {**expected, **ours}, objective)
    for key in keys:
        rtol, atol = tolerances.get(key, (built.rtol, built.atol))
        scale, source = scales[key]
        tol = dict(rtol=rtol, atol=atol, scale=scale, scale_from=source)
        if key not in answers:
            rows.append(oracle.failed_row(key, problem or f"missing from {answers_path}"))
        elif key not in by_check:
            rows.append(oracle.mark_unresolved(oracle.compare(key, expected[key], answers[key],
                                                              **tol)))
        if key in ours:       # the shipped expected value against this reference
            row = oracle.compare(f"expected:{key}", expected[key], ours[key], **tol)
            if not row.passed:
                row.note = (f"the suite's expected value disagrees with deepspline-reference "
                            f"{__version__} (suite made by "
                            f"{clipped(str(suite.manifest.get('generated_by')))})")
                rows.append(row)
    order = {k: i for i, k in enumerate(keys)}
    rows.sort(key=lambda r: order.get(r.key, len(keys)))
    return CaseResult(entry["name"], entry["kind"], all(r.passed for r in rows), rows,
                      localisation, ignored)


def grade(suite: Suite, answers_dir: str | os.PathLike, label: str | None = None,
          live: dict[str, tuple[dict, dict]] | None = None) -> SuiteReport:
    r"""Grade another implementation's answers to every case of a suite.

    Parameters
    ----------
    suite : Suite
        The suite, as `load_suite` returns it.
    answers_dir : str or path-like
        The directory ANSWERS_DIR holding one NAME.npz per case, with the case's answer
        keys.
    label : str, optional
        How the report names the answers; None: `answers_dir`.
    live : dict, optional
        Case name -> this reference's (answers, certificate) for it, when already computed
        (`self_answers`); the others are computed here.

    Returns
    -------
    report : SuiteReport
        ``cases``, one CaseResult per case (name, kind, passed, the rows of each key,
        the localisation of a failure, the ignored and unresolved keys), ``passed``,
        ``failed`` (the names of the failed cases); ``format_table()`` is the human
        report, ``to_json()`` the JSON form.

    Raises
    ------
    FileError
        When `answers_dir` is not a directory.
    SuiteError
        When a case's files are not those of the built-in case, its manifest asks for other
        answer keys than the reference derives, or the reference cannot answer it.

    See Also
    --------
    reference.oracle.check : Grades the keys the oracle knows.

    Notes
    -----
    A key passes when, entry by entry (shapes equal),

    .. math::

        |\mathrm{got} - \mathrm{expected}| \le \mathrm{atol}\, S + \mathrm{rtol}\,
        |\mathrm{expected}|, \qquad
        S = \max\bigl(\max_{\mathrm{key}} |\mathrm{expected}|,\ \mathrm{magnitude}\bigr),

    with the case's built-in rtol and atol (for a certified exact value, the bracket this
    reference certifies now) and the magnitude of the quantity as in
    ``reference.oracle.check``.  The keys the oracle knows (outputs, input_jacobian,
    param_gradients/..., layer{i}/output, tv2/{i}, bv2/{i}, lipschitz_bound/...,
    objective...) are graded by ``reference.oracle.check``, which accepts either one-sided
    derivative on rows whose pre-activation lies on a kink and localises a failure; the
    others (exact Lipschitz values, solve optima, layer-wise bounds) by
    ``reference.oracle.compare`` against expected.npz.  A missing file or key fails, named;
    a key a zero answer would pass too is listed as unresolved.  Every grading also checks
    the suite's expected.npz against this reference's answers, computed afresh (rows
    'expected:KEY'), so a damaged expected value is never blamed on the answers.

    Examples
    --------
    See `export`.
    """
    answers_dir = Path(answers_dir)
    if not answers_dir.is_dir():
        raise FileError(f"--answers: {answers_dir} is not a directory (expected one NAME.npz "
                        "per case of the suite)")
    live = live or {}
    results = [grade_case(suite, entry, answers_dir / f"{entry['name']}.npz",
                          live.get(entry["name"])) for entry in suite.cases]
    return SuiteReport(str(suite.directory), label or str(answers_dir), suite.manifest["format"],
                       clipped(str(suite.manifest.get("generated_by"))), results)


def self_answers(suite: Suite, out_dir: str | os.PathLike) -> dict[str, tuple[dict, dict]]:
    """Answer every case of a suite with this reference, written as an outside one would.

    Parameters
    ----------
    suite : Suite
        The suite, as `load_suite` returns it.
    out_dir : str or path-like
        An existing directory; OUT/NAME.npz is written (atomically) for each case, with
        the case's answer keys, computed from the suite's files.

    Returns
    -------
    answers : dict
        Case name -> (answers, certificate): key -> ndarray, and how the values are
        certified; the `live` argument of `grade`.

    Raises
    ------
    FileError
        When `out_dir` does not exist or a file cannot be written.
    SuiteError
        When a case's files are not those of the built-in case, or the reference cannot
        answer it.
    """
    found = {}
    for entry in suite.cases:
        found[entry["name"]] = answers, certificate = case_answers(suite, entry)
        write_npz(Path(out_dir) / f"{entry['name']}.npz",
                  {k: answers[k] for k in entry["answer_keys"] if k in answers}, "--self")
    return found


def run_self(suite: Suite) -> SuiteReport:
    """`conformance run DIR --self`: the reference's answers, graded like anyone's."""
    with tempfile.TemporaryDirectory(prefix="conformance-self-") as tmp:
        live = self_answers(suite, tmp)
        return grade(suite, tmp, label="--self (this reference)", live=live)


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def check_report_path(path, suite: Suite, answers_dir=None, arg: str = "--json") -> None:
    """The report may not land in the suite (its files are the graded reference) nor on an
    answers file of a case: FileError naming `arg`.  A path inside DIR is refused as written,
    before any link is followed (a symlink inside DIR would be replaced by the report), and
    also where its directory or itself leads."""
    given = Path(os.path.abspath(path))
    candidates = (given, Path(os.path.realpath(given.parent)) / given.name,
                  Path(os.path.realpath(given)))
    tops = (Path(os.path.abspath(suite.directory)), Path(os.path.realpath(suite.directory)))
    if any(_inside(c, top) for c in candidates for top in tops):
        raise FileError(f"{arg}: {path} is inside the suite DIR {suite.directory}; writing "
                        "there could replace a case file (choose a path outside it)")
    if answers_dir is not None:
        for entry in suite.cases:
            answer = Path(answers_dir) / f"{entry['name']}.npz"
            if set(candidates) & {Path(os.path.abspath(answer)), Path(os.path.realpath(answer))}:
                raise FileError(f"{arg}: {path} is the answers file of case "
                                f"{entry['name']!r}; writing there would destroy it")
