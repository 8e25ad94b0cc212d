"""The import graph of `reference/`, read from the source with `ast`: no circle among its
modules (imports at any depth, function bodies included), no `reference` import inside a
function (those are kept for optional, heavy dependencies), and no circle among its
subpackages.

An edge A -> B means that executing module A imports module B: `import reference.x.y`,
`from reference.x import y` (an edge to reference.x.y when y is a submodule, to
reference.x otherwise), and relative imports resolved against A's package.  The parent
packages that Python imports on the way (reference.x's `__init__` for reference.x.y) are not
edges: a package face that imports its private modules, which import each other, is the
layout, not a circle.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "reference"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def module_name(path: Path) -> str:
    """reference/lipschitz/_exact.py -> reference.lipschitz._exact (a package: its name)."""
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(name: str, path: Path) -> str:
    """The package that relative imports in module `name` (at `path`) resolve against."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def resolve(node: ast.ImportFrom, name: str, path: Path) -> str:
    """The absolute module name of `from ... import` (relative levels resolved)."""
    if node.level == 0:
        return node.module or ""
    base = package_of(name, path).split(".")
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(node: ast.AST, name: str, path: Path) -> list[str]:
    """The package modules an import statement imports (empty for anything else)."""
    targets = []
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        source = resolve(node, name, path)
        for alias in node.names:
            sub = f"{source}.{alias.name}"
            targets.append(sub if sub in MODULES else source)
    return [t for t in targets if t in MODULES]


def imports(function_level: bool | None = None) -> dict[str, dict[str, list[int]]]:
    """module -> {imported module: [line numbers]}: every import when function_level is
    None, else only those inside (True) or outside (False) a function body."""
    graph: dict[str, dict[str, list[int]]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: dict[str, list[int]] = {}

        def visit(node: ast.AST, in_function: bool) -> None:
            for target in imported_modules(node, name, path):
                if function_level is None or function_level == in_function:
                    lines = edges.setdefault(target, [])
                    if node.lineno not in lines:
                        lines.append(node.lineno)
            inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                      ast.Lambda))
            for child in ast.iter_child_nodes(node):
                visit(child, inside)

        visit(tree, False)
        edges.pop(name, None)
        graph[name] = edges
    return graph


def cycles(graph) -> list[tuple[list[str], list[str]]]:
    """Per strongly connected component of more than one node (the modules tied in one
    circle or more): (its members, one cycle [a, b, ..., a] through them); empty when the
    graph (node -> successors) is acyclic."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def strong(node: str) -> None:             # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                strong(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            strong(node)
    return [(sorted(c), cycle_within(graph, sorted(c))) for c in components]


def cycle_within(graph, component: list[str]) -> list[str]:
    """A cycle through the first node of a strongly connected component (breadth-first
    search back to it inside the component: the shortest such cycle)."""
    start, members = component[0], set(component)
    parent = {start: None}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for succ in sorted(graph.get(node, ())):
            if succ == start:
                path = [node]
                while parent[path[-1]] is not None:
                    path.append(parent[path[-1]])
                return [start] + path[::-1][1:] + [start]
            if succ in members and succ not in parent:
                parent[succ] = node
                queue.append(succ)
    raise AssertionError(f"no cycle through {start} in {component}")


def describe(found: list[tuple[list[str], list[str]]]) -> str:
    """One line per component: its members, then a cycle through them."""
    return "\n".join(f"{{{', '.join(members)}}}: {' -> '.join(cycle)}"
                     for members, cycle in found)


def subpackage(module: str) -> str:
    """reference.lipschitz._exact -> reference.lipschitz; top-level modules stay themselves."""
    return ".".join(module.split(".")[:2])


def test_graph_sees_the_package():
    """The scan reads every module and finds the edges it should (a scan that saw nothing
    would pass the tests below vacuously)."""
    graph = imports()
    assert len(MODULES) > 50
    assert "reference.lipschitz._exact1d" in graph["reference.lipschitz"]
    assert "reference.exceptions" in graph["reference.lipschitz._milp"]


def test_no_import_cycle_between_modules():
    found = cycles(imports())
    assert not found, "import circles:\n" + describe(found)


def test_no_package_import_inside_functions():
    """Imports inside functions are for optional or heavy third-party dependencies only;
    a function-level import of a package module hides a dependency (and a circle)."""
    found = [f"{name}:{line} imports {target}"
             for name, edges in imports(function_level=True).items()
             for target, lines in sorted(edges.items()) for line in lines]
    assert not found, "function-level imports of the package:\n" + "\n".join(found)


def test_no_import_cycle_between_subpackages():
    """reference.nn, reference.lipschitz, ...: the graph of the subpackages (and top-level
    modules) is acyclic too, so the layers read bottom-up."""
    graph: dict[str, set[str]] = {}
    for name, edges in imports().items():
        here = subpackage(name)
        graph.setdefault(here, set()).update(subpackage(t) for t in edges)
        graph[here].discard(here)
    found = cycles(graph)
    assert not found, "subpackage import circles:\n" + describe(found)


@pytest.mark.parametrize("source, module, expected", [
    ("from reference.lipschitz import _milp", "reference.cli._main",
     "reference.lipschitz._milp"),
    ("from reference.lipschitz import lipsdp", "reference.cli._main", "reference.lipschitz"),
    ("import reference.lipschitz._milp as m", "reference.cli._main",
     "reference.lipschitz._milp"),
    ("from . import _milp", "reference.lipschitz._exact", "reference.lipschitz._milp"),
    ("from .._numerics import gamma", "reference.lipschitz._exact", "reference._numerics"),
])
def test_edges_of_each_import_form(source, module, expected):
    node = ast.parse(source).body[0]
    assert imported_modules(node, module, MODULES[module]) == [expected]


def exception_classes() -> dict[str, str]:
    """class name -> module, for every class of the package that derives (directly or
    through another of them) from an exception class, read from the source."""
    bases: dict[str, tuple[str, list[str]]] = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases[node.name] = (name, [ast.unparse(b).rpartition(".")[2]
                                           for b in node.bases])

    def is_exception(cls: str, seen: frozenset = frozenset()) -> bool:
        if cls in seen:
            return False
        if cls.endswith(("Error", "Exception")) or cls in ("Exception", "BaseException"):
            return True
        return cls in bases and any(is_exception(b, seen | {cls}) for b in bases[cls][1])

    return {cls: module for cls, (module, parents) in bases.items()
            if any(is_exception(b) for b in parents)}


def test_every_exception_class_in_reference_exceptions():
    """One place for the package's exceptions (private control flow, `_Stop`, may stay
    where it is used): each public one in reference.exceptions, listed in its __all__,
    derived from DeepSplineError and, except the base, from ValueError or RuntimeError
    (AssertionError for the test helpers' NumpyRepr)."""
    import reference.exceptions as exceptions

    found = exception_classes()
    elsewhere = sorted(f"{cls} in {module}" for cls, module in found.items()
                       if module != "reference.exceptions" and not cls.startswith("_"))
    assert not elsewhere, "exception classes outside reference.exceptions: " + str(elsewhere)
    public = {cls for cls, module in found.items() if module == "reference.exceptions"}
    assert public == set(exceptions.__all__)
    for cls in public - {"DeepSplineError"}:
        error = getattr(exceptions, cls)
        assert issubclass(error, exceptions.DeepSplineError)
        assert issubclass(error, (ValueError, RuntimeError, AssertionError)), cls


def test_cycle_finder_on_a_known_graph():
    """The finder reports each circle once, with its members, and nothing on a DAG."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert sorted(cycles(graph)) == [(["a", "b", "c"], ["a", "b", "c", "a"]),
                                     (["d", "e"], ["d", "e", "d"])]
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []
