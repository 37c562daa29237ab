"""Report export (PNG layout, snippets, ZIP) and the pinned-example store."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from explorer.curation import CurationStore
from explorer.export import (
    TARGET_COLOUR,
    ResultTile,
    example_snippets,
    latex_escape,
    manifest_hash,
    render_example_png,
    write_export_zip,
)

RECORD = {
    "id": "x1",
    "text": "make it 50% red & shiny",
    "combiner": "AVG",
    "weights": {"w_mm": 0.5, "w_img": 0.2, "w_txt": 0.3},
    "encoder": "lite",
    "checkpoint": "pkg",
    "checkpoint_sha256": "ab" * 32,
    "gallery": "demo",
    "gallery_manifest_sha256": "cd" * 32,
    "target_id": "t",
    "target_rank": 2,
    "results": [
        {"rank": 1, "id": "a", "score": 0.9},
        {"rank": 2, "id": "t", "score": 0.8, "is_target": True},
    ],
}


def _tiles():
    return [
        ResultTile(Image.new("RGB", (50, 80), "blue"), "#1 · 0.900 · a"),
        ResultTile(Image.new("RGB", (90, 40), "yellow"), "#2 · 0.800 · t", is_target=True),
    ]


def test_png_layout_reference_arrow_results_and_target_outline():
    img = render_example_png(Image.new("RGB", (60, 60), "red"), RECORD["text"], _tiles(), title="AVG")
    arr = np.asarray(img)
    assert img.width > 3 * 224 and img.height > 224
    # the target (second result) is outlined in green; the first result is not
    from explorer.export import ARROW_W, PAD, TILE

    x_target = PAD + TILE + ARROW_W + (TILE + PAD)
    top = PAD + 28
    assert tuple(arr[top + TILE // 2, x_target - 2]) == TARGET_COLOUR
    assert tuple(arr[top + TILE // 2, x_target - TILE - PAD - 2]) != TARGET_COLOUR
    # the reference is drawn at the left
    assert tuple(arr[top + TILE // 2, PAD + TILE // 2]) == (255, 0, 0)


def test_snippets_escape_latex_and_name_the_png():
    md, tex = example_snippets(RECORD, "figure.png")
    assert "![make it 50% red & shiny](figure.png)" in md and "rank 2" in md
    assert r"50\% red \& shiny" in tex and r"\includegraphics" in tex and "figure.png" in tex
    assert latex_escape("a_b#c") == r"a\_b\#c"


def test_zip_holds_png_json_and_snippets(tmp_path):
    png = render_example_png(Image.new("RGB", (60, 60), "red"), "t", _tiles())
    out = write_export_zip([(RECORD, png), (dict(RECORD, id="x2", text="other"), png)], tmp_path / "e.zip")
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert len([n for n in names if n.endswith("figure.png")]) == 2
        first = sorted(n for n in names if n.startswith("01-"))
        assert [n.split("/")[1] for n in first] == ["figure.png", "record.json", "snippet.md", "snippet.tex"]
        Image.open(io.BytesIO(zf.read(first[0]))).verify()
        assert json.loads(zf.read(first[1]))["results"][1]["rank"] == 2
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
