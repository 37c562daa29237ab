"""Read the project's Markdown documentation the way GitHub renders it: tables, headings (anchors) and links.

Used by the tests that keep README.md and docs/*.md honest (tests/core/test_docs.py, test_app_options.py,
test_settings.py). Fenced code blocks are skipped everywhere: a ``# comment`` in a shell block is no heading
and a ``|`` in a code block is no table.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
VARIABLE_CELL = re.compile(r"^`(COVR_[A-Z0-9_]+)`$")


def doc_files() -> list[Path]:
    """README.md and every docs/*.md."""
    return [README, *sorted((REPO / "docs").glob("*.md"))]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, line) of every line outside fenced code blocks."""
    out, fenced = [], False
    for no, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((no, line))
    return out


def split_row(line: str) -> list[str]:
    """The cells of a table row (GitHub splits on every ``|`` not escaped as ``\\|``, even inside code)."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [c.strip() for c in re.split(r"(?<!\\)\|", body)]


def tables(text: str) -> list[list[tuple[int, list[str]]]]:
    """Every table: its rows as (line number, cells), header first, the ``|---|`` delimiter row left out."""
    found: list[list[tuple[int, list[str]]]] = []
    current: list[tuple[int, list[str]]] = []
    for no, line in [*prose_lines(text), (0, "")]:
        if line.lstrip().startswith("|"):
            cells = split_row(line)
            if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                current.append((no, cells))
            continue
        if current:
            found.append(current)
            current = []
    return found


def documented_variables(files: list[Path] | None = None) -> dict[str, list[str]]:
    """``COVR_*`` variable -> where a table row documents it (``file:line``): a row whose first or second cell
    is exactly that variable in backticks (``| `COVR_X` | ...`` or ``| `--flag` | `COVR_X` | ...``)."""
    rows: dict[str, list[str]] = {}
    for path in files or doc_files():
        for table in tables(path.read_text(encoding="utf-8")):
            for no, cells in table[1:]:
                for cell in cells[:2]:
                    if m := VARIABLE_CELL.match(cell):
                        rows.setdefault(m.group(1), []).append(f"{path.relative_to(REPO)}:{no}")
                        break
    return rows


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation other than ``-`` and ``_`` dropped, spaces
    to hyphens (markup such as backticks is punctuation too)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (a repeated heading gets ``-1``, ``-2``... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for _no, line in prose_lines(path.read_text(encoding="utf-8")):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = github_anchor(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def relative_links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link of ``path`` that is not a URL (code spans skipped)."""
    out = []
    for no, line in prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(re.sub(r"`[^`]*`", "``", line)):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
                out.append((no, target))
    return out
