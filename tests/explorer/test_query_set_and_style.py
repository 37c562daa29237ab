"""The composed query set file format, and the shared print style (covr_core.figure_style)."""

from __future__ import annotations

import json

import pytest

from covr_core.figure_style import (
    COLUMN_WIDTHS_IN,
    MIN_FONT_PT,
    new_figure,
    paper_style,
    save_figure,
    text_kwargs,
    too_small_text,
    visible_texts,
)
from explorer.query_set import ComposedQuerySet


def _write(path, queries, **extra):
    data = {"name": "s", "provenance": "p", "licence": "CC0-1.0", "queries": queries, **extra}
    path.write_text(json.dumps(data))
    return path


def test_query_set_loads_and_checks_ids(tmp_path):
    q = [{"id": "q1", "reference": "a", "text": "make it b", "target": "b"}]
    qs = ComposedQuerySet.load(_write(tmp_path / "ok.json", q))
    assert qs.queries[0].target == "b" and qs.licence == "CC0-1.0"
    qs.check_ids(["a", "b"])
    with pytest.raises(ValueError, match="not in the gallery"):
        qs.check_ids(["a"])
    with pytest.raises(ValueError, match="lacks"):
        ComposedQuerySet.load(_write(tmp_path / "bad.json", [{"id": "q1", "reference": "a"}]))
    with pytest.raises(ValueError, match="duplicate"):
        ComposedQuerySet.load(_write(tmp_path / "dup.json", q + q))
    (tmp_path / "noprov.json").write_text(json.dumps({"name": "s", "queries": q, "licence": "x"}))
    with pytest.raises(ValueError, match="provenance"):
        ComposedQuerySet.load(tmp_path / "noprov.json")
    same = [{"id": "q1", "reference": "a", "text": "t", "target": "a"}]
    with pytest.raises(ValueError, match="the target is the reference"):
        ComposedQuerySet.load(_write(tmp_path / "same.json", same)).check_ids(["a"])


def test_bundled_demo_set_loads():
    qs = ComposedQuerySet.load()
    assert len(qs.queries) >= 40 and "issue 13" in qs.provenance


def test_style_makes_column_wide_figures_with_embedded_fonts(tmp_path):
    with paper_style(8):
        fig = new_figure("double", 2.0, font_pt=8)
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1])
        ax.set_xlabel("weight")
        ax.set_title("Figure 1")
        fig.text(0.5, 0.5, "label", **text_kwargs(fig))
    assert tuple(fig.get_size_inches()) == (COLUMN_WIDTHS_IN["double"], 2.0)
    assert {t.get_fontsize() for t in visible_texts(fig)} == {8.0}  # ticks, labels, title: the style's size
    assert not too_small_text(fig)
    files = save_figure(fig, tmp_path / "fig1")
    assert sorted(files) == ["pdf", "png", "svg"]
    assert b"/FontFile2" in files["pdf"].read_bytes() and b"<text" not in files["svg"].read_bytes()
    from PIL import Image

    assert Image.open(files["png"]).size == (round(6.9 * 300), 600)
    small = new_figure("single", 1.0, font_pt=MIN_FONT_PT)
    small.text(0, 0, "tiny", fontsize=5)
    assert too_small_text(small) == [("tiny", 5.0)]
    with pytest.raises(ValueError, match="too small"):
        new_figure("single", 1.0, font_pt=6)
