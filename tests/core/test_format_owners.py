"""Every folder format has one owner: the file names of the queries folder, the evaluation folder and the WebVid
filter run appear as string literals only in their owner modules, so no job, reader, fixture or bench writes or reads them by hand.

The scan reads the string constants of every ``.py`` file of covr_core, precompute, explorer, bench, tests and
app.py with ``ast`` (f-string pieces included); docstrings and comments may name the files.
"""

from __future__ import annotations

import ast
from pathlib import Path

from covr_core import evaluation_folder as ef
from covr_core import filter_run as fr
from covr_core import query_folder as qf

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("covr_core", "precompute", "explorer", "bench", "tests")
#: owned file name -> the one module that may spell it
OWNERS = {
    qf.ARRAYS_FILE: "covr_core/query_folder.py",
    qf.TABLE_FILE: "covr_core/query_folder.py",
    ef.PER_QUERY_FILE: "covr_core/evaluation_folder.py",
    fr.STATS_FILE: "covr_core/filter_run.py",
    fr.MARKDOWN_FILE: "covr_core/filter_run.py",
}


def _docstring_nodes(tree: ast.AST) -> set[int]:
    """ids of the docstring constants of the module, its classes and functions."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                out.add(id(body[0].value))
    return out


def hand_written_names(source: str, owned: dict[str, str] = OWNERS, path: str = "") -> list[tuple[int, str]]:
    """(line, file name) of every owned file name in a string literal of ``source`` that is not a docstring,
    unless ``path`` is that name's owner."""
    tree = ast.parse(source)
    docs = _docstring_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            found += [(node.lineno, name) for name, owner in owned.items() if name in node.value and path != owner]
    return found


def test_format_file_names_are_spelled_only_by_their_owners() -> None:
    files = [ROOT / "app.py", *(p for d in SCANNED for p in sorted((ROOT / d).rglob("*.py")))]
    offenders = []
    for f in files:
        rel = f.relative_to(ROOT).as_posix()
        offenders += [f"{rel}:{line}: {name!r}" for line, name in hand_written_names(f.read_text(), path=rel)]
    assert not offenders, ("these files spell a folder format's file name; go through its owner class "
                           "(covr_core.query_folder.QuerySet, covr_core.evaluation_folder.Evaluation, "
                           "covr_core.filter_run.FilterRun) instead:\n"
                           + "\n".join(offenders))


def test_the_scan_catches_a_format_written_by_hand() -> None:
    by_hand = (f'import numpy as np\nnp.savez(folder / "{qf.ARRAYS_FILE}", f_mm=a)\n'
               f'frame.to_parquet(out / f"{{name}}/{ef.PER_QUERY_FILE}")\n')
    assert hand_written_names(by_hand) == [(2, qf.ARRAYS_FILE), (3, ef.PER_QUERY_FILE)]
    documented = (f'"""Reads {qf.TABLE_FILE}."""\n\n\ndef f():\n    """Writes {ef.PER_QUERY_FILE}."""\n'
                  f"    # {qf.ARRAYS_FILE} by hand would be caught\n    return 1\n")
    assert hand_written_names(documented) == []
    assert hand_written_names(by_hand, path="covr_core/query_folder.py") == [(3, ef.PER_QUERY_FILE)]
