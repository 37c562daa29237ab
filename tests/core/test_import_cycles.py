"""No import cycles among the project's own modules (covr_core, explorer, precompute, app.py).

The import graph is read statically with ``ast``: every ``import`` / ``from ... import`` of a project
module is an edge, including imports inside functions (a "late import" still closes a cycle at run time)
and relative imports; imports under ``if TYPE_CHECKING:`` never run and are skipped. A cycle is a strongly
connected component of more than one module. Each must lie inside a group of :data:`KNOWN_CYCLES`; a
new cycle, or one that joins two known groups, fails the test with the modules and edges involved.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("covr_core", "explorer", "precompute")
SCRIPTS = ("app.py",)

# Cycles allowed (none: issue 16 removed the last ones); a new cycle must be broken, not listed here.
KNOWN_CYCLES: list[frozenset[str]] = []


def module_name(path: Path, root: Path) -> str:
    """Dotted module name of a project file (``pkg/__init__.py`` -> ``pkg``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path, packages: Iterable[str] = PACKAGES,
                    scripts: Iterable[str] = SCRIPTS) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` of the packages and the top-level scripts."""
    files = [root / s for s in scripts if (root / s).is_file()]
    for pkg in packages:
        files.extend(sorted((root / pkg).rglob("*.py")))
    return {module_name(f, root): f for f in files}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterable[ast.AST]:
    """All nodes except the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def node_targets(node: ast.Import | ast.ImportFrom, name: str, is_package: bool,
                 modules: dict[str, Path]) -> set[str]:
    """Project modules that one import statement of module ``name`` runs."""
    found: set[str] = set()

    def add(target: str) -> None:
        # "import a.b.c" binds a, but runs a.b.c: the deepest project module named is the edge
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    if isinstance(node, ast.Import):
        for alias in node.names:
            add(alias.name)
        return found
    if node.level:
        base = name if is_package else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        source = f"{base}.{node.module}" if node.module else base
    else:
        source = node.module or ""
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        add(sub if sub in modules else source)
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules that module ``name`` (file ``path``) imports."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= node_targets(node, name, path.name == "__init__.py", modules)
    return found


def import_graph(root: Path, packages: Iterable[str] = PACKAGES,
                 scripts: Iterable[str] = SCRIPTS) -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    modules = project_modules(root, packages, scripts)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[frozenset[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(frozenset(component))
    return out


def new_cycles(graph: dict[str, set[str]], known: list[frozenset[str]]) -> list[str]:
    """Each cycle not inside a known group, described as its edges."""
    problems = []
    for component in cycles(graph):
        if not any(component <= group for group in known):
            edges = sorted(f"{a} -> {b}" for a in component for b in graph[a] if b in component)
            problems.append("cycle: " + ", ".join(edges))
    return problems


def test_project_has_no_new_import_cycles():
    graph = import_graph(ROOT)
    assert {"covr_core.metrics", "explorer.services", "precompute.merge", "app"} <= set(graph)
    assert "covr_core.atomic" in graph["covr_core.cirr_submission"]  # the scanner sees real edges
    problems = new_cycles(graph, KNOWN_CYCLES)
    assert not problems, "import cycles (break them; do not extend KNOWN_CYCLES):\n" + "\n".join(problems)


def test_fixed_cycles_stay_fixed():
    """The cycles broken in issue 16 (a shared ranking module; merge/queries; the tabs' shared helpers in
    explorer.ui_common) are gone for good."""
    found = cycles(import_graph(ROOT))
    for pair in ({"covr_core.metrics", "covr_core.cirr_submission"}, {"precompute.merge", "precompute.queries"},
                 {"explorer.ui", "explorer.ui_search"}, {"covr_core.blip", "covr_core.blip_load"},
                 {"covr_core.blip_load", "covr_core.convert"}):
        assert not any(pair <= c for c in found), pair


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")


def test_detector_finds_late_relative_and_package_cycles(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "from pkg.c import thing\n",
        "pkg/a.py": "from . import b\n",
        "pkg/b.py": "def f():\n    from pkg.a import x  # late import\n",
        "pkg/c.py": "import pkg\nthing = 1\n",  # c -> pkg (__init__) -> c
        "pkg/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.e import y\n",
        "pkg/e.py": "import pkg.d\n",
        "pkg/sub/__init__.py": "from ..a import z\n",
        "pkg/f.py": "import json, os.path\nfrom pkg.sub import q\n",
    })
    graph = import_graph(tmp_path, packages=("pkg",), scripts=())
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"}
    assert graph["pkg.sub"] == {"pkg.a"} and graph["pkg.f"] == {"pkg.sub"}
    assert graph["pkg.d"] == set() and graph["pkg.e"] == {"pkg.d"}  # TYPE_CHECKING import skipped
    assert sorted(map(sorted, cycles(graph))) == [["pkg", "pkg.c"], ["pkg.a", "pkg.b"]]
    assert len(new_cycles(graph, [frozenset({"pkg.a", "pkg.b"})])) == 1
    assert new_cycles(graph, [frozenset({"pkg.a", "pkg.b"}), frozenset({"pkg", "pkg.c", "pkg.x"})]) == []
    # two known groups joined into one larger cycle count as new
    _write(tmp_path, {"pkg/c.py": "import pkg\nimport pkg.a\nthing = 1\n", "pkg/a.py": "from . import b, c\n"})
    joined = import_graph(tmp_path, packages=("pkg",), scripts=())
    assert len(new_cycles(joined, [frozenset({"pkg.a", "pkg.b"}), frozenset({"pkg", "pkg.c"})])) == 1
