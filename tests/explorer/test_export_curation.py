"""Report export (print-grade matplotlib figure, snippets, ZIP) and the pinned-example store."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from matplotlib.colors import to_hex
from matplotlib.patches import Rectangle
from PIL import Image

from explorer.curation import CurationStore
from explorer.export import example_snippets, latex_escape, latex_quoted, manifest_hash, write_export_zip
from explorer.export_figure import FigureOptions, Panel, render_example, smart_quotes, wrap_id
from covr_core.figure_style import MIN_FONT_PT, TARGET_COLOUR, too_small_text, visible_texts

RECORD = {
    "id": "x1",
    "text": 'make it 50% "red" & shiny',
    "combiner": "AVG",
    "weights": {"w_mm": 0.5, "w_img": 0.2, "w_txt": 0.3},
    "encoder": "lite",
    "checkpoint": "pkg",
    "checkpoint_sha256": "ab" * 32,
    "gallery": "demo",
    "gallery_manifest_sha256": "cd" * 32,
    "target_id": "t",
    "target_rank": 2,
    "rank_scope": {"candidates": 63, "noun": "items", "protocol": "free"},
    "rank_text": "rank 2 among 63 items",
    "results": [
        {"rank": 1, "id": "a", "score": 0.9},
        {"rank": 2, "id": "t", "score": 0.8, "is_target": True},
    ],
}


def _panels():
    ref = Panel(Image.new("RGB", (60, 60), "red"))
    results = [
        Panel(Image.new("RGB", (50, 80), "blue"), rank=1, item_id="a", score=0.9),
        Panel(Image.new("RGB", (90, 40), "yellow"), rank=2, item_id="t", score=0.8, is_target=True),
        Panel(
            Image.new("RGB", (64, 48), "gray"),
            is_video=True,
            rank=3,
            item_id="videos/fade_apple_orange",
            score=0.7,
        ),
    ]
    return ref, results


def _texts(fig) -> list[str]:
    return [t.get_text() for t in visible_texts(fig)]


@pytest.mark.parametrize("preset, width_in", [("single", 3.3), ("double", 6.9)])
@pytest.mark.parametrize("font_pt", [MIN_FONT_PT, 9.0])
def test_figure_is_column_wide_and_legible_at_print_size(preset, width_in, font_pt):
    ref, results = _panels()
    opts = FigureOptions(
        preset=preset,
        n_results=3,
        font_pt=font_pt,
        show_ids=True,
        show_scores=True,
        title="Composition at work",
    )
    fig = render_example(ref, RECORD["text"], results, opts)
    assert tuple(fig.get_size_inches())[0] == pytest.approx(width_in)
    assert fig.get_size_inches()[1] < width_in  # a row figure
    sizes = [t.get_fontsize() for t in visible_texts(fig)]
    assert sizes and min(sizes) >= MIN_FONT_PT and not too_small_text(fig)
    # every text lies inside the figure (nothing cut at the edges)
    renderer = fig.canvas.get_renderer()
    for t in visible_texts(fig):
        box = t.get_window_extent(renderer)
        assert box.x0 >= -0.5 and box.x1 <= fig.bbox.width + 0.5 and box.y0 >= -0.5, t.get_text()


def test_options_results_ids_scores_title_and_font_floor():
    ref, results = _panels()
    fig = render_example(ref, "x", results, FigureOptions(n_results=2))
    texts = _texts(fig)
    assert len(fig.axes) == 3 and "3" not in texts  # the reference and 2 results
    assert not any(re.fullmatch(r"0\.\d{3}", t) for t in texts) and "a" not in texts  # no scores or ids
    fig = render_example(
        ref, "x", results, FigureOptions(n_results=3, show_ids=True, show_scores=True, title="T")
    )
    texts = _texts(fig)
    assert "0.900" in texts and "a" in texts and "T" in texts
    # the long id is wrapped, never cut: its lines put back together give the full id
    start = texts.index("videos/")
    assert "".join(texts[start : start + 4]) == "videos/fade_apple_orange"
    for bad in (dict(font_pt=6.5), dict(n_results=0), dict(preset="a4"), dict(title="x" * 500)):
        with pytest.raises(ValueError):
            FigureOptions(**bad)


def test_no_internal_jargon_and_typographic_quotes():
    ref, results = _panels()
    fig = render_example(ref, RECORD["text"], results, FigureOptions())
    texts = _texts(fig)
    quote = next(t for t in texts if t.startswith("“"))
    assert quote == "“make it 50% ‘red’ & shiny”"
    joined = " ".join(texts)
    for jargon in ("AVG", "lite", "demo", "benchmark:", "·", "…"):
        assert jargon not in joined, jargon
    assert smart_quotes('say "hi" to Bob\'s cat') == "“say ‘hi’ to Bob’s cat”"
    assert smart_quotes('"already quoted"') == "“already quoted”"


def test_target_is_framed_and_videos_wear_a_film_strip():
    ref, results = _panels()
    fig = render_example(ref, "x", results, FigureOptions(n_results=3))
    ax_plain, ax_target, ax_video = fig.axes[1], fig.axes[2], fig.axes[3]
    frames = [
        p
        for p in ax_target.patches
        if isinstance(p, Rectangle) and to_hex(p.get_edgecolor()) == TARGET_COLOUR
    ]
    assert len(frames) == 1 and not ax_plain.patches
    black = [p for p in ax_video.patches if to_hex(p.get_facecolor()) == "#000000"]
    holes = [p for p in ax_video.patches if to_hex(p.get_facecolor()) == "#ffffff"]
    assert len(black) == 2 and len(holes) >= 6
    assert "2 (target)" in _texts(fig)


def test_wrap_id_breaks_at_separators():
    assert wrap_id("videos/fade_apple_orange", 0.5, 8) == ["videos/", "fade_", "apple_", "orange"]
    assert "".join(wrap_id("x" * 40, 0.3, 8)) == "x" * 40


def test_snippets_include_the_figure_and_the_rank_with_its_scope():
    md, tex = example_snippets(RECORD, FigureOptions())
    assert "(figure.png)" in md and "rank 2 among 63 items" in md and "“make it 50% ‘red’ & shiny”" in md
    assert r"\includegraphics[width=\columnwidth]{figure.pdf}" in tex and r"\begin{figure}" in tex
    assert "rank 2 among 63 items" in tex and r"``make it 50\% `red' \& shiny''" in tex
    _md, tex2 = example_snippets(RECORD, FigureOptions(preset="double", n_results=1))
    assert "figure*" in tex2 and r"\textwidth" in tex2 and "rank 2 among 63 items (not shown)" in tex2
    assert "target" not in example_snippets(dict(RECORD, target_id=None), FigureOptions())[1].lower()
    assert latex_escape("a_b#c") == r"a\_b\#c"
    assert latex_quoted('say "hi"') == "``say `hi'''" and latex_quoted('"hi"') == "``hi''"


def test_zip_holds_pdf_svg_png_json_and_snippets(tmp_path):
    ref, results = _panels()
    fig = render_example(ref, "t", results, FigureOptions())
    out = write_export_zip(
        [(RECORD, fig), (dict(RECORD, id="x2", text="other"), fig)], tmp_path / "e.zip", FigureOptions()
    )
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        first = sorted(n for n in names if n.startswith("01-"))
        assert [n.split("/")[1] for n in first] == [
            "figure.pdf",
            "figure.png",
            "figure.svg",
            "record.json",
            "snippet.md",
            "snippet.tex",
        ]
        pdf, png, svg = (zf.read(first[i]) for i in range(3))
        assert pdf.startswith(b"%PDF") and b"/FontFile2" in pdf  # TrueType fonts embedded
        assert b"<text" not in svg and b"<path" in svg  # glyphs as paths: renders the same everywhere
        img = Image.open(io.BytesIO(png))
        assert img.size[0] == round(3.3 * 300) and img.info.get("dpi", (0,))[0] == pytest.approx(300, abs=1)
        record = json.loads(zf.read(first[3]))
        assert record["results"][1]["rank"] == 2 and record["figure"]["width_in"] == 3.3
        assert len([n for n in names if n.endswith("figure.pdf")]) == 2
    with pytest.raises(ValueError):
        write_export_zip([], tmp_path / "none.zip")


def test_manifest_hash_is_order_independent():
    assert (
        manifest_hash({"a": 1, "b": 2}) == manifest_hash({"b": 2, "a": 1}) != manifest_hash({"a": 2, "b": 2})
    )


def test_store_survives_a_new_instance_and_removes(tmp_path):
    store = CurationStore(tmp_path / "curated")
    rec = store.add(RECORD, Image.new("RGB", (30, 30), "green"))
    assert rec["id"] != "x1" and "created" in rec
    again = CurationStore(tmp_path / "curated")  # a restart
    assert [r["id"] for r in again.list()] == [rec["id"]]
    assert again.get(rec["id"])["text"] == RECORD["text"]
    assert again.reference_image(rec["id"]).getpixel((0, 0)) == (0, 128, 0)
    assert not list((tmp_path / "curated").glob(".*tmp*"))  # no temp files left behind
    with pytest.raises(KeyError):
        again.get("../../etc/passwd")
    again.remove(rec["id"])
    assert len(again) == 0


def test_store_skips_corrupt_files(tmp_path):
    store = CurationStore(tmp_path)
    store.add(RECORD)
    (tmp_path / "broken.json").write_text("{not json")
    assert len(store.list()) == 1
