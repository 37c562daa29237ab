"""``Services`` is read-only to the UI: its state sits behind properties without setters, only the start-up
(``explorer.bootstrap``) calls its three writers, no explorer module assigns to it, and no explorer module
writes the data folder's job outputs (the jobs do: tests/core/test_layering.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WRITERS = {"set_encoder", "use_default_gallery", "add_gallery_folders"}
#: modules allowed to change Services: its own, and the start-up that installs what it loaded
MAY_WRITE = {"services.py", "bootstrap.py"}


def _explorer_trees() -> dict[str, ast.AST]:
    return {p.name: ast.parse(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "explorer").glob("*.py"))}


def services_writes(trees: dict[str, ast.AST]) -> list[str]:
    """``file: what`` for each call of a writer and each assignment to an attribute of ``services`` / ``svc``."""
    found = []
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITERS:
                found.append(f"{name}: {node.func.attr}()")
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for t in targets if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) else []:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id in {"services", "svc"}:
                    found.append(f"{name}: {t.value.id}.{t.attr} =")
    return sorted(found)


def test_only_the_startup_changes_services():
    writes = services_writes(_explorer_trees())
    assert writes, "the start-up installs the encoder: the scan must see it"
    assert {w.split(":")[0] for w in writes} <= MAY_WRITE, writes


def test_the_scan_sees_assignments_and_writer_calls():
    tree = ast.parse("def f(services):\n    services.default_gallery = 'x'\n    services.use_default_gallery('y')\n")
    assert services_writes({"ui_x.py": tree}) == ["ui_x.py: services.default_gallery =", "ui_x.py: use_default_gallery()"]


def test_state_has_no_setters(tiny_services):
    svc = tiny_services
    for attr, value in (("default_gallery", "other"), ("extra_galleries", []), ("mlp", None), ("encoder", None)):
        with pytest.raises(AttributeError):
            setattr(svc, attr, value)
    assert isinstance(svc.extra_galleries, tuple)  # a copy: extending it changes nothing
    assert svc.default_gallery == "pics"
