"""The documentation stays a short Space card plus docs/ that hold together: README.md within 250 lines, every
relative link (and heading anchor) of README.md and docs/*.md resolves, every table renders (as many cells per
row as its header), and each ``COVR_*`` variable is documented in exactly one table row, none of them stale."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from covr_core.encoder_registry import EXTRA_CONFIGS_ENV
from covr_core.extensions import EXTENSIONS_ENV
from covr_core.pretrained import PROBE_TIMEOUT_ENV
from covr_core.settings import APP_ENV_VARS, COMPUTE_ENV_VARS, ENV_VARS
from explorer.safety import TEMP_MAX_AGE_ENV
from helpers.docs import (
    README,
    REPO,
    anchors,
    doc_files,
    documented_variables,
    github_anchor,
    relative_links,
    tables,
)

README_MAX_LINES = 250
#: every variable an operator sets, from the constants the code reads them by
OPERATOR_VARIABLES = {*ENV_VARS, *APP_ENV_VARS, *COMPUTE_ENV_VARS, EXTRA_CONFIGS_ENV, PROBE_TIMEOUT_ENV,
                      TEMP_MAX_AGE_ENV, EXTENSIONS_ENV}
SOURCES = [*sorted((REPO / "covr_core").rglob("*.py")), *sorted((REPO / "explorer").rglob("*.py")),
           *sorted((REPO / "precompute").rglob("*.py")), REPO / "app.py"]


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(REPO)) for p in paths]


def test_readme_is_a_short_space_card():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    assert lines[0] == "---", "README.md must start with the Space's front matter"


@pytest.mark.parametrize("path", doc_files(), ids=_ids(doc_files()))
def test_every_relative_link_resolves(path: Path):
    broken = []
    for no, target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"line {no}: {target} (no file {dest})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"line {no}: {target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"{path.relative_to(REPO)}:\n" + "\n".join(broken)


def test_link_checker_sees_real_links_and_github_anchors(tmp_path):
    """The checker itself: it finds links (not images, URLs or code), and computes GitHub's anchors."""
    assert github_anchor("Gallery integrity (`covr_core/gallery.py`, `gallery_files.py`)") == (
        "gallery-integrity-covr_coregallerypy-gallery_filespy")
    assert github_anchor("Load (issue 8) — `bench/bench_load.py`") == "load-issue-8--benchbench_loadpy"
    doc = tmp_path / "x.md"
    doc.write_text("# A\n## A\n```\n# not a heading [no](nowhere.md)\n```\n"
                   "[b](other.md#sec) ![img](pic.png) [u](https://x.org) `[c](code.md)` [`d`](#a-1)\n")
    assert anchors(doc) == {"a", "a-1"}
    assert [t for _no, t in relative_links(doc)] == ["other.md#sec", "#a-1"]


@pytest.mark.parametrize("path", doc_files(), ids=_ids(doc_files()))
def test_every_table_renders(path: Path):
    """A row with more or fewer cells than its header (an unescaped ``|`` in a cell) breaks the table."""
    bad = [f"line {no}: {len(cells)} cells, header has {len(table[0][1])}"
           for table in tables(path.read_text(encoding="utf-8")) for no, cells in table[1:]
           if len(cells) != len(table[0][1])]
    assert not bad, f"{path.relative_to(REPO)}:\n" + "\n".join(bad)


def test_each_variable_is_documented_in_exactly_one_table_row():
    rows = documented_variables()
    missing = sorted(OPERATOR_VARIABLES - set(rows))
    twice = {var: where for var, where in rows.items() if len(where) > 1}
    stale = {var: where for var, where in rows.items() if var not in OPERATOR_VARIABLES}
    assert not missing, f"no table row documents {missing}"
    assert not twice, f"documented more than once (keep one row, link to it): {twice}"
    assert not stale, f"table rows for variables the code does not read: {stale}"


def test_no_doc_names_a_variable_the_code_does_not_read():
    source = "\n".join(p.read_text(encoding="utf-8") for p in SOURCES)
    named = {(p.relative_to(REPO), v) for p in doc_files()
             for v in re.findall(r"COVR_[A-Z0-9_]*[A-Z0-9]", p.read_text(encoding="utf-8"))}
    stale = sorted(f"{p}: {v}" for p, v in named if v not in source)
    assert not stale, "\n".join(stale)
