"""Packaging: pyproject declares the packages and takes its pins from the requirements files; the
editable install (``make venv``) makes the project importable everywhere, so no code edits sys.path."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGES = ("covr_core", "explorer", "precompute")
SCANNED = [*PACKAGES, "bench", "app.py"]

# Files allowed to edit sys.path: none (this list may only shrink).
KNOWN_SYS_PATH_EDITS: set[str] = set()


def _requirement_lines(name: str) -> list[str]:
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def test_dependencies_come_from_the_requirements_files():
    project, dynamic = PYPROJECT["project"], PYPROJECT["tool"]["setuptools"]["dynamic"]
    assert {"dependencies", "optional-dependencies", "version"} <= set(project["dynamic"])
    assert "dependencies" not in project and "optional-dependencies" not in project  # one source of pins
    assert dynamic["dependencies"] == {"file": ["requirements.txt"]}
    assert dynamic["optional-dependencies"]["ray"] == {"file": ["requirements-ray.txt"]}
    assert dynamic["version"] == {"attr": "covr_core.__version__"}
    for name in ("requirements.txt", "requirements-ray.txt"):
        lines = _requirement_lines(name)
        # setuptools reads these files itself: plain requirement lines only (no -r, no pip options)
        assert lines and not [line for line in lines if line.startswith("-")], name
        names = [Requirement(line).name for line in lines]
        assert len(names) == len(set(names)), f"{name} names a package twice"
    # torch is installed first, the build that fits the machine (pre-requirements.txt on a Space, the Makefile
    # here): a bare `torch` requirement would pull a multi-GB CUDA build (test_space_build says the same)
    assert "torch" not in {Requirement(line).name for line in _requirement_lines("requirements.txt")}


def test_packages_and_their_data_are_declared():
    setuptools = PYPROJECT["tool"]["setuptools"]
    include = setuptools["packages"]["find"]["include"]
    assert sorted(include) == sorted(f"{p}*" for p in PACKAGES)
    assert setuptools["py-modules"] == ["app"]
    data = setuptools["package-data"]
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            rel = path.relative_to(ROOT / pkg)
            assert any(rel.match(pattern) for pattern in data.get(pkg, [])), f"{pkg}/{rel} is not package data"


def _sys_path_edits(source: str) -> list[int]:
    """Lines that assign to, insert into or extend ``sys.path``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        targets: list[ast.AST] = []
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            targets = [node.func.value]
        for target in targets:
            base = target.value if isinstance(target, ast.Subscript) else target
            if isinstance(base, ast.Attribute) and base.attr == "path" and getattr(base.value, "id", "") == "sys":
                lines.append(node.lineno)
    return sorted(lines)


def test_no_code_edits_sys_path():
    found = {}
    for entry in SCANNED:
        path = ROOT / entry
        for f in [path] if path.is_file() else sorted(path.rglob("*.py")):
            if lines := _sys_path_edits(f.read_text(encoding="utf-8")):
                found[f.relative_to(ROOT).as_posix()] = lines
    new = {k: v for k, v in found.items() if k not in KNOWN_SYS_PATH_EDITS}
    assert not new, f"sys.path edited (install the project with `make venv` / `pip install -e .`): {new}"
    source = "import sys\nsys.path.insert(0, 'a')\nsys.path[:0] = ['b']\nsys.path += ['c']\nsys.path.append('d')\n"
    assert _sys_path_edits(source) == [2, 3, 4, 5]
    assert _sys_path_edits("import os, sys\nos.path.join('a')\nprint(sys.path[0])\n") == []


def test_editable_install_makes_the_project_importable_anywhere(tmp_path):
    """From an unrelated folder, this interpreter imports the packages, app and the bench/test helpers
    from this checkout (``make venv`` installs it with ``pip install -e .``)."""
    code = ("import app, covr_core, explorer, precompute, tests.helpers.media_files as m\n"
            "print(covr_core.__file__); print(m.__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, "run `make venv` (installs the project editable):\n" + out.stderr[-2000:]
    lines = out.stdout.split()
    assert lines == [str(ROOT / "covr_core" / "__init__.py"), str(ROOT / "tests" / "helpers" / "media_files.py")]
