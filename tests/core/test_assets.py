"""The bundled demo gallery (assets/): provenance, bounds, and the mini benchmark in the real formats."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import av
import pandas as pd
import pytest
from PIL import Image

from covr_core.datasets.cirr import CirrDataset, load_cirr_split, load_cirr_triplets
from covr_core.datasets.webvid import read_webvid_covr, webvid_video_id, webvid_video_path

ASSETS = Path(__file__).resolve().parents[2] / "assets"
CIRR_DIR = ASSETS / "benchmark" / "cirr"
WEBVID_CSV = ASSETS / "benchmark" / "webvid" / "webvid-covr_demo.csv"
CLEANVID_CSV = ASSETS / "benchmark" / "webvid" / "cleanvid_map_demo.csv"
MEDIA_DIRS = ("images", "videos")


@pytest.fixture(scope="module")
def gallery() -> pd.DataFrame:
    return pd.read_csv(ASSETS / "gallery.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def attribution() -> list[dict]:
    with open(ASSETS / "ATTRIBUTION.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _media_files() -> list[str]:
    files = (p for d in MEDIA_DIRS for p in (ASSETS / d).rglob("*") if p.is_file())
    return sorted(str(p.relative_to(ASSETS)) for p in files)


def test_gallery_table_counts_and_columns(gallery):
    assert list(gallery.columns) == ["id", "kind", "media", "caption", "split", "duration"]
    images, videos = gallery[gallery.kind == "image"], gallery[gallery.kind == "video"]
    assert 40 <= len(images) <= 80
    assert len(videos) >= 8
    assert set(gallery.kind) == {"image", "video"}
    assert gallery.id.is_unique
    assert (gallery.split == "demo").all()
    assert all(len(c.split()) >= 4 for c in gallery.caption), "every item needs a one-line caption"
    assert all("\n" not in c for c in gallery.caption)
    assert (images.duration == "").all()
    assert all(2.0 <= float(d) <= 10.0 for d in videos.duration)


def test_gallery_media_exist_and_every_file_is_in_the_gallery(gallery):
    for rel in gallery.media:
        assert (ASSETS / rel).is_file(), rel
    assert sorted(gallery.media) == _media_files()
    assert all(m.startswith("images/") and m.endswith(".jpg") for m in gallery[gallery.kind == "image"].media)
    assert all(m.startswith("videos/") and m.endswith(".mp4") for m in gallery[gallery.kind == "video"].media)


def test_every_asset_file_has_provenance_and_a_licence(attribution):
    listed = {row["media"]: row for row in attribution}
    assert len(listed) == len(attribution), "duplicate rows in ATTRIBUTION.csv"
    files = _media_files()
    assert sorted(listed) == files
    for rel, row in listed.items():
        for col in ("source_package", "original_file", "licence"):
            assert row[col].strip(), f"{rel}: empty {col}"
    licences = " ".join(r["licence"] for r in attribution)
    for known in ("CC0", "CC-BY-2.0", "Apache-2.0 AND BSD-3-Clause", "public domain"):
        assert known in licences
    md = (ASSETS / "ATTRIBUTION.md").read_text(encoding="utf-8")
    for rel in files:
        assert rel in md, f"{rel} missing from ATTRIBUTION.md"
    assert "danielbuechele" in md  # CC BY 2.0 attribution of the scikit-learn photos


def test_images_are_small_jpegs():
    for path in sorted((ASSETS / "images").glob("*")):
        with Image.open(path) as im:
            assert im.format == "JPEG", path.name
            assert max(im.size) <= 640, (path.name, im.size)
            assert min(im.size) >= 100, (path.name, im.size)


def test_videos_are_short_h264_mp4_at_most_480p(gallery):
    durations = dict(zip(gallery.media, gallery.duration))
    for path in sorted((ASSETS / "videos").glob("*")):
        with av.open(str(path)) as container:
            assert "mp4" in container.format.name, path.name
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264", path.name
            assert stream.height <= 480 and stream.width <= 854, (path.name, stream.width, stream.height)
            frames = sum(1 for _ in container.decode(stream))
            duration = frames / float(stream.average_rate)
        assert 2.0 <= duration <= 10.0, (path.name, duration)
        assert abs(duration - float(durations[f"videos/{path.name}"])) < 0.1


def test_total_size_under_25_mb():
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total < 25 * 1024 * 1024, total


def test_cirr_mini_benchmark_parses_with_the_project_reader(gallery):
    data = CirrDataset(CIRR_DIR, split="demo")
    assert len(data.triplets) >= 40
    assert data.missing == [] and data.unlisted == [], data.missing_report()
    image_ids = set(gallery[gallery.kind == "image"].id)
    assert set(data.split_map) == image_ids  # CIRR names are the gallery ids
    for name, path in data.image_paths.items():
        assert path == (ASSETS / "images" / f"{name}.jpg").resolve()
    pairids = [t.pairid for t in data.triplets]
    assert len(set(pairids)) == len(pairids)
    for t in data.triplets:
        assert t.reference != t.target_hard
        assert len(t.members) == 6 and len(set(t.members)) == 6
        assert t.reference in t.members and t.target_hard in t.members
        assert t.target_soft.get(t.target_hard) == 1.0
        assert len(t.caption.split()) >= 3
    # the raw files are plain CIRR JSON
    raw = json.loads((CIRR_DIR / "cap.rc2.demo.json").read_text())
    assert {"pairid", "reference", "target_hard", "target_soft", "caption", "img_set"} <= set(raw[0])
    assert {"id", "members", "reference_rank", "target_rank"} <= set(raw[0]["img_set"])
    assert len(load_cirr_triplets(CIRR_DIR / "cap.rc2.demo.json")) == len(raw)
    assert load_cirr_split(CIRR_DIR / "split.rc2.demo.json") == data.split_map


def test_webvid_mini_benchmark_parses_with_the_project_reader(gallery):
    df = read_webvid_covr(WEBVID_CSV)
    assert len(df) >= 12
    assert {"pth1", "pth2", "txt1", "txt2", "edit", "scores", "sim_txt", "sim_vid"} <= set(df.columns)
    assert df.pth2.is_unique  # like the real test split: one row per target
    video_ids = set(gallery[gallery.kind == "video"].id)
    captions = dict(zip(gallery.id, gallery.caption))
    for row in df.itertuples():
        assert row.pth1 != row.pth2
        for pth in (row.pth1, row.pth2):
            assert webvid_video_path(ASSETS, pth).is_file(), pth
            assert pth in video_ids  # demo gallery ids follow WebVid's pth convention
        assert row.txt1 == captions[row.pth1]
        assert row.txt2 == captions[row.pth2]
        assert isinstance(row.scores, list) and len(row.scores) == 15
        assert all(isinstance(s, float) for s in row.scores)
        assert len(row.edit.split()) >= 3


def test_cleanvid_map_covers_the_benchmark_videos():
    df = pd.read_csv(CLEANVID_CSV, dtype=str)
    assert list(df.columns) == ["id", "author", "categories"]
    bench = read_webvid_covr(WEBVID_CSV)
    ids = {webvid_video_id(p) for p in pd.concat([bench.pth1, bench.pth2])}
    assert ids <= set(df.id)
    authors = []
    for row in df.itertuples():
        author = json.loads(row.author)
        assert author["accountsId"]
        authors.append(author["accountsId"])
        cats = json.loads(row.categories)
        assert isinstance(cats, list) and cats and all(isinstance(c, str) for c in cats)
    # the same-author and same-category rules both have something to find
    assert len(set(authors)) < len(authors)
    assert len(set(authors)) > 1


def test_imagenet_class_file_ships_names_and_licences():
    path = Path(__file__).resolve().parents[2] / "covr_core" / "data" / "imagenet_classes.json"
    data = json.loads(path.read_text())
    classes = data["classes"]
    assert [c["index"] for c in classes] == list(range(1000))
    assert all(c["name"] and c["gloss"] and c["wnid"].startswith("n") for c in classes)
    assert classes[950]["name"] == "orange" and "apple" in classes[948]["hypernyms"]
    assert any("MIT" in s["licence"] for s in data["sources"])
    assert any("Princeton" in s.get("licence_text", "") for s in data["sources"])
