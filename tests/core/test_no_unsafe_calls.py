"""No code path may unpickle or evaluate untrusted data (issue 8, "Untrusted files").

Scans every ``.py`` file of the project (covr_core, explorer, precompute, app.py, bench) with ``ast``
and fails listing ``file:line`` for calls to:

* ``pickle.load/loads/Unpickler`` (also ``cPickle``, ``_pickle``, ``dill``, ``cloudpickle``): checkpoints
  load through ``covr_core/safe_load.py``, which uses torch's weights-only unpickler;
* ``joblib.load``, ``pandas.read_pickle``, ``marshal.load(s)``, ``shelve.open``;
* the builtins ``eval`` / ``exec`` (``model.eval()`` is a method and is fine);
* ``torch.load`` without ``weights_only=True``;
* ``numpy.load(..., allow_pickle=True)``; ``yaml.load`` without a safe loader, ``yaml.unsafe_load``.

Imports are resolved (``import pickle as p; p.loads``, ``from torch import load``), so aliases are caught.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ["covr_core", "explorer", "precompute", "bench", "app.py"]

PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle"}
PICKLE_CALLS = {f"{m}.{f}" for m in PICKLE_MODULES for f in ("load", "loads", "Unpickler")}
ALWAYS_BAD = {
    "joblib.load": "joblib.load unpickles arbitrary objects",
    "pandas.read_pickle": "pandas.read_pickle unpickles arbitrary objects",
    "marshal.load": "marshal.load runs on untrusted bytes",
    "marshal.loads": "marshal.loads runs on untrusted bytes",
    "shelve.open": "shelve unpickles its values",
    "builtins.eval": "eval executes code",
    "builtins.exec": "exec executes code",
    "yaml.unsafe_load": "yaml.unsafe_load builds arbitrary objects",
}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


class _Scanner(ast.NodeVisitor):
    def __init__(self, rel: str) -> None:
        self.rel = rel
        self.aliases: dict[str, str] = {}  # local name -> dotted origin
        self.problems: list[str] = []

    # ---- imports
    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if a.asname:
                self.aliases[a.asname] = a.name
            else:
                self.aliases.setdefault(a.name.split(".")[0], a.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level:
            for a in node.names:
                self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"

    # ---- calls
    def _dotted(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            if node.id in ("eval", "exec", "__import__"):
                return f"builtins.{node.id}"
            return node.id
        if isinstance(node, ast.Attribute):
            base = self._dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def visit_Call(self, node: ast.Call) -> None:
        name = self._dotted(node.func)
        if name:
            name = name.replace("numpy.lib.npyio", "numpy")
            for prefix, canon in (("np.", "numpy."), ("pd.", "pandas.")):
                if name.startswith(prefix) and prefix[:-1] not in self.aliases:
                    name = canon + name[len(prefix):]
            reason = self._reason(name, node)
            if reason:
                self.problems.append(f"{self.rel}:{node.lineno}: {name}(...): {reason}")
        self.generic_visit(node)

    def _reason(self, name: str, node: ast.Call) -> str | None:
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        if name in PICKLE_CALLS:
            return "pickle unpickles arbitrary objects"
        if name in ALWAYS_BAD:
            return ALWAYS_BAD[name]
        if name == "torch.load":
            if _is_true(kw.get("weights_only")):
                return None
            return "torch.load without weights_only=True"
        if name == "numpy.load" and _is_true(kw.get("allow_pickle")):
            return "numpy.load with allow_pickle=True"
        if name == "yaml.load":
            loader = kw.get("Loader") or (node.args[1] if len(node.args) > 1 else None)
            loader_name = self._dotted(loader) if loader is not None else None
            if not loader_name or loader_name.split(".")[-1] not in SAFE_YAML_LOADERS:
                return "yaml.load without a safe Loader"
        return None


def scan_source(source: str, rel: str) -> list[str]:
    """Problems (``file:line: call: reason``) found in one file's source."""
    scanner = _Scanner(rel)
    scanner.visit(ast.parse(source, filename=rel))
    return scanner.problems


def project_files() -> list[Path]:
    files: list[Path] = []
    for entry in SCANNED:
        path = ROOT / entry
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(p for p in sorted(path.rglob("*.py")) if ".venv" not in p.parts)
    return files


def test_project_has_no_unsafe_calls():
    files = project_files()
    assert any(f.parts[-2:] == ("covr_core", "media.py") for f in files), "scanner must see the package"
    problems: list[str] = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        problems.extend(scan_source(path.read_text(encoding="utf-8"), rel))
    assert not problems, "unsafe calls found:\n" + "\n".join(problems)


BAD_SNIPPETS = [
    "import pickle\npickle.loads(b'')",
    "import pickle as pk\npk.load(open('f','rb'))",
    "from pickle import Unpickler\nUnpickler(f)",
    "from pickle import loads as l\nl(b'')",
    "import cloudpickle\ncloudpickle.loads(b'')",
    "import joblib\njoblib.load('m.joblib')",
    "from joblib import load\nload('m')",
    "eval('1+1')",
    "exec('x=1')",
    "import builtins\nbuiltins.eval('1')",
    "import torch\ntorch.load('x.pt')",
    "import torch\ntorch.load('x.pt', weights_only=False)",
    "import torch\ntorch.load('x.pt', map_location='cpu', pickle_module=p)",
    "from torch import load\nload('x.pt')",
    "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
    "import pandas as pd\npd.read_pickle('a.pkl')",
    "import yaml\nyaml.load(s)",
    "import yaml\nyaml.load(s, Loader=yaml.Loader)",
    "import marshal\nmarshal.loads(b'')",
]


@pytest.mark.parametrize("source", BAD_SNIPPETS)
def test_scanner_catches_unsafe_call(source):
    problems = scan_source(source, "covr_core/example.py")
    assert len(problems) == 1 and problems[0].startswith("covr_core/example.py:")


GOOD_SNIPPETS = [
    "model.eval()",
    "import torch\ntorch.load('x.pt', weights_only=True, map_location='cpu')",
    "import numpy as np\nnp.load('a.npy')\nnp.load('b.npy', allow_pickle=False, mmap_mode='r')",
    "import json\njson.loads('{}')",
    "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)\nyaml.safe_load(s)",
    "from safetensors.torch import load_file\nload_file('m.safetensors')",
    "import pandas as pd\npd.read_parquet('a.parquet')",
]


@pytest.mark.parametrize("source", GOOD_SNIPPETS)
def test_scanner_allows_safe_calls(source):
    assert scan_source(source, "covr_core/example.py") == []


def test_no_file_is_exempt():
    """Not even the checkpoint loader may unpickle by itself or hand torch.load a pickle module."""
    source = "import pickle, torch\nclass R(pickle.Unpickler):\n    pass\npickle.Unpickler(f)\n" \
             "torch.load(f, weights_only=False, pickle_module=m)"
    assert len(scan_source(source, "covr_core/safe_load.py")) == 2
