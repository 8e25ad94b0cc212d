"""The command registry (reference/cli/_registry.py), how `reproduce` finds the checkout's
theory checks and figures (reference/cli/_reproduce.py), and the figures' registries
(figures.make.FIGURES, figures.profiles.SWEEPS)."""
import argparse
import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import reference
from reference.cli import _reproduce, build_parser, main
from reference.cli._registry import COMMANDS

PACKAGE = Path(reference.__file__).resolve().parent
CHECKOUT = PACKAGE.parent


def subcommands(parser) -> dict:
    """name -> subparser of the parser's (only) subparsers action, in the order added."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return dict(actions[0].choices)


def test_every_registered_command_has_the_interface():
    names = [command.NAME for command in COMMANDS]
    assert len(set(names)) == len(names)
    for command in COMMANDS:
        assert isinstance(command.NAME, str) and command.NAME
        assert isinstance(command.HELP, str) and command.HELP
        assert command.DESCRIPTION is None or isinstance(command.DESCRIPTION, str)
        assert callable(command.add_arguments) and callable(command.run)


def test_the_parser_is_the_registry_in_its_order():
    parser = build_parser()
    found = subcommands(parser)
    assert list(found) == [command.NAME for command in COMMANDS]
    for command in COMMANDS:
        sub = found[command.NAME]
        assert sub.description == command.DESCRIPTION
        assert sub.get_default("func") is command.run
    help_lines = parser.format_help().splitlines()
    listed = [line.split()[0] for line in help_lines          # the lines 'NAME  HELP'
              if line.startswith("    ") and not line.lstrip().startswith(("{", "..."))]
    assert listed == [command.NAME for command in COMMANDS]


def test_no_command_module_outside_the_registry():
    """Every module of reference/cli that defines a command (NAME and run) is registered:
    the registry is the only place a command is added, and none is forgotten there."""
    registered = {Path(command.__file__).name for command in COMMANDS}
    for path in sorted((PACKAGE / "cli").glob("_*.py")):
        tree = ast.parse(path.read_text())
        defined = {t.id for node in tree.body if isinstance(node, ast.Assign)
                   for t in node.targets if isinstance(t, ast.Name)}
        defined |= {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        if {"NAME", "run", "add_arguments"} <= defined:
            assert path.name in registered, f"{path.name} defines a command not in COMMANDS"


def test_nothing_in_the_package_imports_the_command_line():
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "cli") in path.parents or path == PACKAGE / "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n == "reference.cli" or n.startswith("reference.cli.")
                           for n in names), f"{path.relative_to(PACKAGE)} imports the CLI"


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_reproduce_without_the_checkout_is_refused_before_any_work(tmp_path, capsys,
                                                                   monkeypatch):
    """A package installed without figures/ and theory_checks/ beside it (a wheel): exit 2,
    one line saying that reproduce needs a source checkout, nothing trained or written."""
    monkeypatch.setattr(_reproduce, "checkout_root", lambda: tmp_path)
    monkeypatch.setattr(_reproduce, "run_training", lambda *a, **k: pytest.fail("work started"))
    out = tmp_path / "out"
    status = main(["reproduce", "--epochs", "1", "--checks-dir", str(out / "checks"),
                   "--figures-dir", str(out / "figures"), "--json-out", str(out / "r.json")])
    captured = capsys.readouterr()
    assert status == 2 and captured.out == ""
    line = one_error_line(captured.err)
    assert "reproduce needs a source checkout" in line
    assert "theory_checks/ and figures/" in line and f"{tmp_path}/reference" in line
    assert not out.exists()


def test_reproduce_no_figures_needs_only_the_theory_checks(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_reproduce, "checkout_root", lambda: tmp_path)
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "__init__.py").write_text("")
    assert main(["reproduce", "--no-figures"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "it runs theory_checks/ beside reference/" in line


def test_a_shadowing_package_of_the_same_name_is_refused(tmp_path, capsys, monkeypatch):
    """The checkout's theory_checks is already imported; a checkout root that holds another
    one must not run it under that name."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(_reproduce, "checkout_root", lambda: tmp_path)
    monkeypatch.setattr(_reproduce, "run_training", lambda *a, **k: pytest.fail("work started"))
    import theory_checks.lipschitz_bound  # noqa: F401  (the worktree's, imported first)
    (tmp_path / "theory_checks").mkdir()
    (tmp_path / "theory_checks" / "__init__.py").write_text("")
    assert main(["reproduce", "--no-figures"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"is imported from {CHECKOUT / 'theory_checks'}, not from the checkout" in line


def run_python(args, cwd, site):
    """python ARGS in cwd with only `site` (and the venv) to import from."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_reproduce_from_a_wheel_like_install_says_what_it_needs(tmp_path):
    """The package alone (copied as a wheel installs it), run from another directory."""
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    shutil.copytree(PACKAGE, site / "reference", ignore=shutil.ignore_patterns("__pycache__"))
    elsewhere.mkdir()
    run = run_python(["-m", "reference", "reproduce", "--epochs", "1"], elsewhere, site)
    assert run.returncode == 2 and run.stdout == ""
    line = one_error_line(run.stderr)
    assert "reproduce needs a source checkout" in line and f"{site}/reference" in line
    assert list(elsewhere.iterdir()) == []
    help_run = run_python(["-m", "reference", "reproduce", "--help"], elsewhere, site)
    assert help_run.returncode == 0 and "--no-figures" in help_run.stdout


def test_reproduce_from_another_directory_imports_the_checkouts_entry_points(tmp_path):
    """An install that links the checkout's package (setuptools' strict editable mode, a
    symbolic link), run from a directory without figures/: the entry points are imported
    from the checkout that holds the package."""
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    site.mkdir()
    elsewhere.mkdir()
    (site / "reference").symlink_to(PACKAGE, target_is_directory=True)
    code = ("from reference.cli import _reproduce as r\n"
            "root = r.find_checkout()\n"
            "for name in ('theory_checks.lipschitz_bound', 'theory_checks._report', "
            "'figures.run'):\n"
            "    print(r.import_from_checkout(name, root).__file__)\n")
    run = run_python(["-c", code], elsewhere, site)
    assert run.returncode == 0, run.stderr
    files = [Path(line).resolve() for line in run.stdout.splitlines()]
    assert files == [CHECKOUT / "theory_checks" / "lipschitz_bound.py",
                     CHECKOUT / "theory_checks" / "_report.py", CHECKOUT / "figures" / "run.py"]


def test_every_figure_reads_registered_sweeps():
    from figures.make import FIGURES
    from figures.profiles import PROFILES, SWEEPS

    for name, (function, sweeps) in FIGURES.items():
        assert callable(function) and sweeps, name
        names = {s for entry in sweeps for s in (entry if isinstance(entry, tuple) else (entry,))}
        assert names - {None} <= set(SWEEPS), f"{name} reads an unregistered sweep"
    for profile in PROFILES.values():
        for sweep in profile.sweeps:
            assert SWEEPS[sweep](profile), f"{profile.name}: sweep {sweep} has no runs"


def test_a_namespace_package_of_that_name_is_refused_in_one_line(monkeypatch):
    """A directory theory_checks/ without __init__.py imported first (a namespace package, no
    __file__): the same ImportError as any shadowing package, not a TypeError."""
    import types
    monkeypatch.setattr(sys, "path", list(sys.path))
    namespace = types.ModuleType("theory_checks")
    namespace.__path__ = ["/elsewhere/theory_checks"]
    monkeypatch.setitem(sys.modules, "theory_checks", namespace)
    with pytest.raises(ImportError, match="is imported from .*/elsewhere/theory_checks.*not "
                                          "from the checkout"):
        _reproduce.import_from_checkout("theory_checks", CHECKOUT)
