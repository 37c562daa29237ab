"""The layers import downwards only: covr_core (the library) imports neither the jobs nor the app; the app
(explorer) reads what the jobs (precompute) write and imports none of them; only ``app.py`` composes both.

Read with the same static import graph as the cycle test (late imports inside functions count)."""

from __future__ import annotations

from tests.core.test_import_cycles import ROOT, import_graph

#: package -> packages it must never import
FORBIDDEN = {
    "covr_core": ("explorer", "precompute"),
    "explorer": ("precompute",),
    "precompute": ("explorer",),
}


def _package(module: str) -> str:
    return module.split(".")[0]


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for every edge that crosses a forbidden line."""
    return sorted(
        f"{src} -> {dst}"
        for src, targets in graph.items()
        for dst in targets
        if _package(dst) in FORBIDDEN.get(_package(src), ())
    )


def test_layers_import_downwards_only():
    graph = import_graph(ROOT)
    assert "app" in graph and any(_package(m) == "explorer" for m in graph["app"])
    assert any(_package(m) == "precompute" for m in graph["app"]), "app.py hands the demo jobs to the start-up"
    assert layer_violations(graph) == []


def test_violations_are_found():
    graph = {"explorer.bootstrap": {"precompute.gallery", "covr_core.gallery"}, "covr_core.x": {"explorer.ui"},
             "precompute.demo": {"covr_core.gallery"}}
    assert layer_violations(graph) == ["covr_core.x -> explorer.ui", "explorer.bootstrap -> precompute.gallery"]
