"""The layout of the test suite (issue 16): tests/ mirrors the subpackages of `reference`,
every test directory is a package, no test module imports another module of tests/ (shared
helpers live in `reference.testing`, shared fixtures in conftest.py), and only
tests/test_theory_checks.py imports `theory_checks` (the user's entry points, tested as a
user runs them; everything else takes its networks from `reference.testing`).  The sources
are read with ast, nothing is imported."""
import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "reference"
THEORY_CHECKS_TESTS = {
    "test_theory_checks.py",   # runs the checks as a user would
    "test_cli_registry.py",    # reproduce finds and runs theory_checks from the checkout
}


def imported_modules(path: Path):
    """(line, module) of every import statement in the file, at any depth (function-level
    imports included); a relative import gives its dots and module ('.', '..x')."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, "." * node.level + (node.module or "")


def layout_violations(tests: Path) -> list[str]:
    """'file:line: reason' for every import of a module of `tests` (by package name, by the
    name of one of its files, or relative) and of `theory_checks` outside
    THEORY_CHECKS_TESTS."""
    own = {p.stem for p in tests.rglob("*.py") if p.stem != "__init__"}
    found = []
    for path in sorted(tests.rglob("*.py")):
        where = path.relative_to(tests.parent)
        for line, module in imported_modules(path):
            top = module.split(".")[0]
            if module.startswith(".") or top == tests.name or top in own:
                found.append(f"{where}:{line}: imports the test module {module!r}")
            elif top == "theory_checks" and path.name not in THEORY_CHECKS_TESTS:
                found.append(f"{where}:{line}: imports {module!r} (take it from "
                             "reference.testing)")
    return found


def test_no_test_module_imports_another_or_theory_checks():
    assert layout_violations(TESTS) == []


def test_the_scan_sees_each_kind_of_forbidden_import(tmp_path):
    """The scan itself: a module-level, a function-level, a relative and a package import of
    a test module, and a theory_checks import, are each reported; the standard library's
    `io` (a test directory's name too) and reference.testing are not."""
    tests = tmp_path / "tests"
    (tests / "io").mkdir(parents=True)
    (tests / "helpers.py").write_text("X = 1\n")
    (tests / "io" / "test_a.py").write_text(
        "import io\nfrom reference.testing import random_net\nfrom helpers import X\n"
        "def test():\n    from tests.io.test_b import Y\n    from . import test_b\n"
        "    from theory_checks.lipschitz_bound import random_net\n")
    (tests / "io" / "test_b.py").write_text("Y = 2\n")
    (tests / "test_theory_checks.py").write_text("import theory_checks.representer\n")
    found = layout_violations(tests)
    assert [f.split(": ")[0] for f in found] == ["tests/io/test_a.py:3", "tests/io/test_a.py:5",
                                                 "tests/io/test_a.py:6", "tests/io/test_a.py:7"]


def test_tests_mirror_the_subpackages():
    """One test directory (a package: its own __init__.py, so two directories may hold files
    of the same name) per subpackage of reference, holding at least one test module, and no
    test directory without a subpackage."""
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    directories = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert directories == subpackages
    assert (TESTS / "__init__.py").is_file()
    for name in subpackages:
        assert (TESTS / name / "__init__.py").is_file(), name
        assert list((TESTS / name).glob("test_*.py")), name
