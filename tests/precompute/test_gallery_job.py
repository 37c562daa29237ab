"""End-to-end tests of ``python -m precompute.gallery`` on synthetic CIRR / WebVid-CoVR / demo data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from covr_core import media
from covr_core.gallery import Gallery
from precompute import gallery as job


def _run(dataset_args, out, encoder, **kw):
    return job.run(**dataset_args, out=str(out), encoder=encoder, device="cpu", batch_size=4, flush_every=4,
                   argv=["--test"], **kw)


def test_cirr_gallery_lite_holds_exactly_the_split_images(cirr_data, lite_encoder, tmp_path):
    out = tmp_path / "g"
    # an image in the folder but not in the split file must not enter the gallery
    Image.new("RGB", (8, 8)).save(cirr_data.root / "img_raw" / "dev" / "not-in-split.png")
    try:
        s = _run({"dataset": "cirr", "root": str(cirr_data.root), "split": "val"}, out, lite_encoder)
    finally:
        (cirr_data.root / "img_raw" / "dev" / "not-in-split.png").unlink()
    assert (s.done, s.failed, s.skipped, s.complete) == (9, 3, 0, True)
    g = Gallery.load(out, expected=lite_encoder.info)
    assert g.items["id"].tolist() == cirr_data.good_names  # split-file order, broken ones left out
    assert set(g.items["kind"]) == {"image"} and len(g) == 9
    # every item finds itself first
    hits = g.search(np.asarray(g.embeddings[:3], dtype=np.float32), k=1)
    assert [h[0] for h in hits.ids] == cirr_data.good_names[:3]
    # same embedding as encoding the image directly
    direct = lite_encoder.encode_images([media.load_image(g.media_path(cirr_data.good_names[0]))])[0]
    np.testing.assert_allclose(np.asarray(g.embeddings[0], dtype=np.float32), direct, atol=1e-4)
    # thumbnails: JPEG, longest side <= 256
    for rel in g.items["thumbnail"]:
        with Image.open(out / rel) as im:
            assert im.format == "JPEG" and max(im.size) <= 256
    failures = pd.read_csv(out / "failures.csv")
    assert dict(zip(failures["item"], failures["reason"])).keys() == cirr_data.bad.keys()
    assert failures["reason"].str.len().min() > 5
    prov = g.manifest["provenance"]
    assert "precompute" in prov["command"] and "torch" in prov["versions"]
    assert g.manifest["checkpoint_sha256"] == lite_encoder.info.checkpoint_sha256


def test_webvid_gallery_tiny_blip_pools_frames_with_scores(webvid_data, tiny_blip, tmp_path):
    out = tmp_path / "gv"
    s = _run({"dataset": "webvid", "csv": str(webvid_data.csv), "video_root": str(webvid_data.video_root)},
             out, tiny_blip, num_workers=1)
    good = [t for t in webvid_data.targets if t not in webvid_data.bad]
    assert (s.done, s.failed, s.complete) == (len(good), 2, True)
    g = Gallery.load(out, expected=tiny_blip.info)
    assert g.items["id"].tolist() == good and set(g.items["kind"]) == {"video"}
    assert (g.items["duration"] > 0).all()
    # recompute one pooled target by hand: 15 sampled frames (RGB), softmax(scores / 0.1) when lengths match
    row = next(r for r in webvid_data.rows if r["pth2"] == good[0])
    path = webvid_data.video_root / f"{good[0]}.mp4"
    frames = media.read_frames(path, media.sample_frame_indices(media.probe_video(path).frame_count, 15))
    assert len(frames) == 15
    scores = json.loads(row["scores"])
    expected = media.pool_frame_embeddings(tiny_blip.encode_images(frames), scores if len(scores) == 15 else None)
    np.testing.assert_allclose(np.asarray(g.embeddings[0], dtype=np.float32), expected, atol=1e-4)
    for rel in list(g.items["thumbnail"]) + list(g.items["frames"]):
        assert (out / rel).is_file()
    with Image.open(out / g.items["frames"].iloc[0]) as strip:
        assert strip.width > strip.height * 10  # 15 frames side by side
    assert g.search(np.asarray(g.embeddings[1:2], dtype=np.float32), k=1).ids[0][0] == good[1]


def test_webvid_subset_first(webvid_data, lite_encoder, tmp_path):
    s = _run({"dataset": "webvid", "csv": str(webvid_data.csv), "video_root": str(webvid_data.video_root),
              "subset_first": 3}, tmp_path / "g", lite_encoder, thumbs=False)
    expected = [r["pth2"] for r in webvid_data.rows[:3] if r["pth2"] not in webvid_data.bad]
    assert Gallery.load(tmp_path / "g").items["id"].tolist() == expected and s.total == 3


def test_build_demo_gallery_loads_and_searches(demo_assets, lite_encoder, tmp_path):
    seen = []
    g = job.build_demo_gallery(lite_encoder, tmp_path / "demo", assets=demo_assets,
                               on_progress=lambda d, t: seen.append((d, t)))
    assert g.items["id"].tolist() == ["img-0", "img-1", "img-2", "vid-0"]
    assert g.items["kind"].tolist() == ["image"] * 3 + ["video"]
    assert g.media_path("vid-0").is_file() and seen[-1] == (4, 4)
    assert g.search(np.asarray(g.embeddings[3:4], dtype=np.float32), k=1).ids[0] == ["vid-0"]
    # a second call reuses the finished parts (nothing recomputed)
    calls = lite_encoder.vision_calls
    job.build_demo_gallery(lite_encoder, tmp_path / "demo", assets=demo_assets)
    assert lite_encoder.vision_calls == calls


def test_cli_help_lists_shared_flags(capsys):
    with pytest.raises(SystemExit) as exc:
        job.parse_args(["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--encoder", "--checkpoint", "--blip-source", "--device", "--dtype", "--batch-size",
                 "--num-workers", "--num-shards", "--shard-id", "--flush-every", "--out", "--subset-random"):
        assert flag in text
    assert "write a part file every N finished items (default: 256)" in text


def test_bad_shard_arguments_are_refused(cirr_data, tmp_path):
    with pytest.raises(ValueError, match="shard"):
        _run({"dataset": "cirr", "root": str(cirr_data.root)}, tmp_path / "x", "lite",
             num_shards=2, shard_id=2)


def test_rerun_skips_finished_and_retry_failed_picks_up_repaired_files(tiny_blip, tmp_path):
    from helpers.synthetic_data import make_cirr, pattern_image

    data = make_cirr(tmp_path / "cirr", n_images=8, n_triplets=2)
    args = {"dataset": "cirr", "root": str(data.root), "split": "val"}
    first = _run(args, tmp_path / "g", tiny_blip, thumbs=False)
    assert (first.done, first.failed) == (5, 3)
    again = _run(args, tmp_path / "g", tiny_blip, thumbs=False)
    assert (again.done, again.skipped, again.failed) == (0, 8, 0) and again.complete
    missing = next(n for n, why in data.bad.items() if why == "missing")
    pattern_image(99).save(data.root / "img_raw" / "dev" / f"{missing}.png")  # the file shows up
    retried = _run(args, tmp_path / "g", tiny_blip, thumbs=False, retry_failed=True)
    assert (retried.done, retried.skipped, retried.failed) == (1, 5, 2)
    g = Gallery.load(tmp_path / "g")
    assert missing in set(g.items["id"]) and len(g) == 6 and g.items["id"].is_unique
    assert [i for i in g.items["id"]] == [n for n in data.names if n == missing or n not in data.bad]
