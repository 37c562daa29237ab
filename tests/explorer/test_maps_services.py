"""Gallery map (points, query placement, overlays) and the Services/header helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.header import header_markdown
from explorer.curation import export_pinned, pinned_table
from explorer.export import record_figure
from explorer.export_figure import FigureOptions
from explorer.maps import load_map_points, map_json, overlays_for, place_by_neighbours
from explorer.search import search_with_session
from explorer.services import Session, scan_galleries
from explorer.visitors import identify

LOCAL = identify(None, None, b"", private=False)  # the shared store of a local run


def test_map_points_and_overlays(tiny_gallery):
    gal, emb = tiny_gallery
    pts = load_map_points(gal, lambda i: f"/t/{i}.png", colour_by="split")
    assert list(pts["id"]) == [f"img{i}" for i in range(10)]
    assert set(pts["group"]) == {"a", "b"} and pts.loc[3, "thumb_url"] == "/t/img3.png"
    # a query equal to item 4's embedding lands near item 4
    x, y = place_by_neighbours(pts, gal, emb[4], n=1)
    assert (x, y) == pytest.approx((4.0, 2.0))
    ov = overlays_for(pts, (x, y), ["img4", "img1", "missing"], target_id="img1")
    assert [o["name"] for o in ov] == ["top-k", "target", "query"]
    assert ov[0]["ids"] == ["img4", "img1"] and ov[1]["x"] == [1.0]
    fig = map_json(pts, ov, title="t")
    json.dumps(fig)  # plain JSON for the browser
    assert [t["name"] for t in fig["data"]] == ["a", "b", "top-k", "target", "query"]


def test_map_without_umap_file(tiny_gallery):
    gal, _ = tiny_gallery
    (gal.folder / "umap.parquet").unlink()
    assert load_map_points(gal, str) is None
    assert "precompute.umap" in map_json(None)["layout"]["title"]["text"]


@pytest.mark.slow
def test_services_galleries_header_and_thumbs(tiny_services):
    assert tiny_services.gallery_names() == ["pics"]
    assert "pics" in scan_galleries(tiny_services.data_dir)
    h = header_markdown(tiny_services)
    assert "blip-tiny" in h and tiny_services.info.short_sha in h and "9 items" in h and "`cpu`" in h
    assert "Lite offline encoder" not in h
    served = tiny_services.served
    folder = tiny_services.data_dir / "galleries" / "pics"
    assert served.allows(tiny_services.data_dir / "media" / "p1.png")  # the media root inside the data folder
    assert not served.allows(folder / "manifest.json")  # index, embeddings and manifest are never served
    assert not served.allows(tiny_services.data_dir / "curated" / "x.png")
    assert tiny_services.thumb_url("pics", "p1").endswith("/media/p1.png")
    assert tiny_services.thumb_url("pics", "clip") == ""  # a video without thumbnail
    assert "MLP" not in tiny_services.combiners() and "AVG" in tiny_services.combiners()
    with pytest.raises(KeyError):
        tiny_services.get_gallery("nope")


@pytest.mark.slow
def test_pin_render_and_export(tiny_services, tmp_path):
    import io
    import zipfile

    from PIL import Image

    from explorer.query import make_reference
    from explorer.search import load_reference, remember_reference

    img = str(tiny_services.item_path("pics", "p2"))
    s = Session()
    remember_reference(s, make_reference(tiny_services, load_reference(img)).key)
    s.target_id = "p2"  # a ground truth for this reference
    out = search_with_session(tiny_services, s, img, None, "keep it", "IMAGE", "pics", 4).outcomes["IMAGE"]
    store = tiny_services.curation.for_visitor(LOCAL)
    rec = store.add(s.last, Image.open(img))
    assert pinned_table(store)[-1][:4] == [rec["id"], "keep it", "IMAGE", f"1 of {out.scope}"]
    ref = store.reference_image(rec["id"])
    fig = record_figure(tiny_services, rec, ref, FigureOptions(n_results=3))
    assert len(fig.axes) == 4
    z = export_pinned(tiny_services, store, [rec["id"]], tmp_path / "one.zip", FigureOptions(n_results=3))
    with zipfile.ZipFile(z) as zf:
        names = zf.namelist()
        record = json.loads(zf.read(next(n for n in names if n.endswith("record.json"))))
        Image.open(io.BytesIO(zf.read(next(n for n in names if n.endswith("figure.png"))))).load()
        tex = zf.read(next(n for n in names if n.endswith("snippet.tex"))).decode()
    assert [r["id"] for r in record["results"]] == out.ids
    assert record["target_rank"] == out.target_rank == 1 and f"rank 1 among {out.scope}" in tex
    assert record["checkpoint_sha256"] == tiny_services.info.checkpoint_sha256
    store.remove(rec["id"])
    with pytest.raises(ValueError, match="Nothing to export"):
        export_pinned(tiny_services, store, None, tmp_path / "all.zip")
    assert np.isfinite(out.weights).all()


@pytest.mark.slow
def test_open_benchmark_query_through_services(tiny_services):
    import pandas as pd

    from explorer.browse import open_query

    out = tiny_services.data_dir / "evaluations" / "mini-pics"
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "query_id": ["7"],
            "combiner": ["AVG"],
            "reference": ["p1"],
            "target": ["p2"],
            "rank": [2],
            "top_ids": [["p4", "p2", "missing"]],
            "top_scores": [np.array([0.9, 0.8, 0.1], np.float32)],
            "w_mm": [1 / 3],
            "w_img": [1 / 3],
            "w_txt": [1 / 3],
        }
    ).to_parquet(out / "per_query.parquet")
    (out / "metrics.json").write_text(
        json.dumps({"info": {"gallery": str(tiny_services.data_dir / "galleries" / "pics")}})
    )
    assert "mini-pics" in tiny_services.benchmark_names()
    bench = tiny_services.get_benchmark("mini-pics")
    assert tiny_services.gallery_for_benchmark(bench) == "pics"
    v = open_query(tiny_services, "mini-pics", "7", "NOPE")  # unknown combiner -> the default one
    assert v.detail["combiner"] == "AVG" and v.gallery == "pics"
    assert v.reference_path.endswith("p1.png") and v.target_path.endswith("p2.png")
    assert v.reference_media == v.reference_path  # an image reference: the image itself
    assert [c for _, c in v.results] == ["#1 · p4 · 0.900", "#2 · p2 · 0.800 · ✔ target"]
    n = len(tiny_services.get_gallery("pics"))
    assert f"rank of the target: **2** among {n - 1} items" in v.markdown()  # CIRR protocol: no reference
