"""``python -m precompute.queries``: f_mm, f_img, f_txt per triplet, row-aligned with the annotation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from covr_core import media
from covr_core.query_folder import QuerySet
from precompute import queries as job


def test_cirr_queries_align_with_annotation(cirr_data, lite_encoder, tmp_path):
    out = tmp_path / "q"
    s = job.run(dataset="cirr", root=str(cirr_data.root), split="val", out=str(out), encoder=lite_encoder,
                device="cpu", batch_size=3, flush_every=3, argv=["--test"])
    good = [t for t in cirr_data.triplets if t["reference"] not in cirr_data.bad]
    assert (s.done, s.failed, s.complete) == (len(good), len(cirr_data.triplets) - len(good), True)
    q = QuerySet.load(out)
    table, arrays, manifest = q.table, q.arrays(), q.manifest
    assert table["query_id"].tolist() == [t["pairid"] for t in good]
    assert table["reference"].tolist() == [t["reference"] for t in good]
    assert table["target"].tolist() == [t["target_hard"] for t in good]
    assert table["caption"].tolist() == [t["caption"] for t in good]
    assert [json.loads(m) for m in table["members"]] == [t["img_set"]["members"] for t in good]
    assert [json.loads(m) for m in table["target_soft"]] == [t["target_soft"] for t in good]
    assert manifest["count"] == len(good) and manifest["encoder"] == "lite" and manifest["dim"] == 384
    for name in ("f_mm", "f_img", "f_txt"):
        assert arrays[name].shape == (len(good), 384) and arrays[name].dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(arrays[name], axis=1), 1.0, atol=1e-4)
    # row 1 equals encoding the same reference and caption directly
    t = good[1]
    img = media.load_image(cirr_data.root / "img_raw" / "dev" / f"{t['reference']}.png")
    direct = lite_encoder.encode_queries([img], [t["caption"]])
    for name in ("f_mm", "f_img", "f_txt"):
        np.testing.assert_allclose(arrays[name][1], getattr(direct, name)[0], atol=1e-4)
    assert set(pd.read_csv(out / "failures.csv")["item"].astype(str)) == {
        str(t["pairid"]) for t in cirr_data.triplets if t["reference"] in cirr_data.bad}


def test_webvid_queries_use_middle_frame_of_pth1(webvid_data, tiny_blip, tmp_path):
    out = tmp_path / "qv"
    s = job.run(dataset="webvid", csv=str(webvid_data.csv), video_root=str(webvid_data.video_root), out=str(out),
                encoder=tiny_blip, device="cpu", batch_size=4, flush_every=4, argv=["--test"])
    rows = [(i, r) for i, r in enumerate(webvid_data.rows) if r["pth1"] not in webvid_data.bad]
    assert s.done == len(rows) and s.complete
    q = QuerySet.load(out)
    table, arrays = q.table, q.arrays()
    assert table["query_id"].tolist() == [i for i, _ in rows]  # CSV row numbers
    assert table["reference"].tolist() == [r["pth1"] for _, r in rows]
    assert table["target"].tolist() == [r["pth2"] for _, r in rows]
    assert table["caption"].tolist() == [r["edit"] for _, r in rows]
    i, r = rows[0]
    frame = media.middle_frame(webvid_data.video_root / f"{r['pth1']}.mp4")
    direct = tiny_blip.encode_queries([frame], [r["edit"]])
    np.testing.assert_allclose(arrays["f_mm"][0], direct.f_mm[0], atol=1e-4)
    np.testing.assert_allclose(arrays["f_img"][0], direct.f_img[0], atol=1e-4)
