"""An import of a project module inside a function is there for one reason only: it keeps a heavy library
(torch, transformers, umap, Ray, OpenVINO, gradio, matplotlib...) out of the importing module's import time, so
``app.py`` decides within seconds and a job's ``--help`` answers at once. Any other late import (a leftover of
a broken cycle, a habit) belongs at the top of the module; the few exceptions are listed with their reason.

Heaviness is read from the static import graph: the third-party packages a module imports at module level,
directly or through the project modules it imports at module level."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from tests.core.test_import_cycles import ROOT, _is_type_checking, node_targets, project_modules

HEAVY = {"torch", "transformers", "umap", "ray", "openvino", "gradio", "matplotlib", "spaces", "onnxruntime",
         "huggingface_hub", "timm", "sentence_transformers", "numba", "pynndescent", "pyarrow", "cv2"}
#: (importer, imported) -> why the import stays inside a function although it adds no heavy library
ALLOWED = {
    ("explorer.services", "explorer.spaces"): "ZeroGPU: `spaces` must be imported before torch; app.py does that "
                                              "first, and tests build Services without the GPU boundary",
}


def _module_level(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported (not inside functions, classes or TYPE_CHECKING)."""
    out, stack = [], list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node.test) or isinstance(node, (ast.Try, ast.With)):
            stack.extend(ast.iter_child_nodes(node))
    return out


def _third_party(node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name.split(".")[0] for a in node.names}
    return set() if node.level else {(node.module or "").split(".")[0]}


class Graph:
    """Module-level and function-level imports of every project module."""

    def __init__(self, root: Path):
        self.modules = project_modules(root)
        self.trees = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in self.modules.items()}

    def _targets(self, module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
        return node_targets(node, module, self.modules[module].name == "__init__.py", self.modules)

    def heavy(self, module: str) -> frozenset[str]:
        """Heavy libraries importing ``module`` loads (through its module-level imports)."""
        return _heavy(self, module)

    def late_imports(self) -> list[tuple[str, str, int]]:
        """(importer, imported project module, line) for each import inside a function."""
        out = []
        for module, tree in self.trees.items():
            for fn in ast.walk(tree):
                if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    for node in ast.walk(fn):
                        if isinstance(node, (ast.Import, ast.ImportFrom)):
                            out += [(module, t, node.lineno) for t in sorted(self._targets(module, node))]
        return out


@cache
def _heavy(graph: Graph, module: str, _seen: frozenset[str] = frozenset()) -> frozenset[str]:
    found: set[str] = set()
    parent = module.rpartition(".")[0]
    deps = {parent} if parent in graph.modules else set()
    for node in _module_level(graph.trees[module]):
        found |= _third_party(node) & HEAVY
        deps |= graph._targets(module, node)
    for dep in deps - _seen - {module}:
        found |= _heavy(graph, dep, _seen | {module})
    return frozenset(found)


def needless_late_imports(graph: Graph) -> list[str]:
    """``importer:line -> imported`` for each late import that keeps no heavy library out and is not allowed."""
    return sorted(
        f"{src}:{line} -> {dst}"
        for src, dst, line in graph.late_imports()
        if not (graph.heavy(dst) - graph.heavy(src)) and (src, dst) not in ALLOWED
    )


def test_late_imports_only_defer_heavy_libraries():
    graph = Graph(ROOT)
    assert graph.late_imports(), "the heavy ones (torch models, umap, ray) are imported late: the scan sees them"
    assert needless_late_imports(graph) == []


def test_the_rule_tells_heavy_from_light(tmp_path):
    pkg = tmp_path / "covr_core"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "model.py").write_text("import torch\n")
    (pkg / "names.py").write_text("X = 1\n")
    (pkg / "user.py").write_text("def f():\n    from covr_core.model import x\n    from covr_core.names import X\n")
    graph = Graph(tmp_path)
    assert graph.heavy("covr_core.model") == {"torch"} and graph.heavy("covr_core.names") == frozenset()
    assert needless_late_imports(graph) == ["covr_core.user:3 -> covr_core.names"]
