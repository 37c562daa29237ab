"""Galleries from a Hugging Face dataset repo (real snapshot_download on a pre-populated cache, offline)
and from mounted folders: checked before use, damaged or foreign ones refused with a reason."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from covr_core.evaluation_folder import PER_QUERY_FILE, Evaluation
from explorer.gallery_sources import fetch_repo_galleries, mounted_galleries, parse_repo
from helpers.gallery_repo import build_photo_gallery, make_gallery_repo

REPO_ID = "covr-tests/galleries"


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "hf"


def test_repo_galleries_are_verified_and_linked(offline_hub, tmp_path, tiny_encoder):
    snap = make_gallery_repo(offline_hub, REPO_ID, tiny_encoder, tmp_path / "work")
    data = tmp_path / "data"
    steps = []
    rep = fetch_repo_galleries(REPO_ID, data, tiny_encoder.info, lambda m, f: steps.append(m))
    assert not rep.error and [p.name for p in rep.galleries] == ["fruit-photos"]
    assert len(rep.skipped) == 1 and rep.skipped[0].startswith("damaged:") and "sha256" in rep.skipped[0]
    linked = data / "galleries" / "fruit-photos"
    assert (linked / "manifest.json").is_file() and (linked / "media" / "apple.jpg").is_file()
    src = snap / "galleries" / "fruit-photos" / "embeddings.npy"
    assert (
        os.stat(linked / "embeddings.npy").st_ino == os.stat(os.path.realpath(src)).st_ino
    )  # no second copy
    assert Evaluation.load(data / "evaluations" / "repo-eval").combiners == ["AVG"]
    assert not (data / "galleries" / "damaged").exists()
    assert any("downloading the dataset repo" in m for m in steps)
    assert "fruit-photos" in rep.message() and "skipped 1" in rep.message()


def test_damaged_repo_evaluation_is_skipped_with_its_reason(offline_hub, tmp_path, tiny_encoder):
    snap = make_gallery_repo(offline_hub, REPO_ID, tiny_encoder, tmp_path / "work")
    broken = snap / "evaluations" / "broken"
    shutil.copytree(snap / "evaluations" / "repo-eval", broken)  # real files (the snapshot holds symlinks)
    (broken / PER_QUERY_FILE).write_bytes(b"not a parquet file")
    data = tmp_path / "data"
    rep = fetch_repo_galleries(REPO_ID, data, tiny_encoder.info)
    assert [p.name for p in rep.evaluations] == ["repo-eval"]
    assert any(s.startswith("evaluation broken:") and "corrupt" in s for s in rep.skipped)
    assert not (data / "evaluations" / "broken").exists()


def test_galleries_of_another_encoder_or_escaping_media_are_refused(offline_hub, tmp_path, tiny_encoder):
    from covr_core.types import EncoderInfo

    snap = make_gallery_repo(offline_hub, REPO_ID, tiny_encoder, tmp_path / "work")
    other = EncoderInfo(name="lite", version="x", checkpoint="c", checkpoint_sha256="ab" * 32, dim=384)
    rep = fetch_repo_galleries(REPO_ID, tmp_path / "d1", other, None)
    assert rep.error.startswith("holds no valid gallery") and "different encoder" in rep.error
    # a manifest whose media_root leaves the gallery would make the server serve that folder
    manifest = snap / "galleries" / "fruit-photos" / "manifest.json"
    data = json.loads(manifest.read_text())
    for bad in ("/", "../.."):
        manifest.write_text(json.dumps({**data, "media_root": bad}))
        rep = fetch_repo_galleries(REPO_ID, tmp_path / "d2", tiny_encoder.info, None)
        assert not rep.galleries and "points outside the gallery" in rep.error, rep.error


def test_missing_or_malformed_repo_gives_one_clear_message(offline_hub, tmp_path, tiny_encoder):
    rep = fetch_repo_galleries("nobody/nothing", tmp_path / "d", tiny_encoder.info, None)
    assert "could not be downloaded" in rep.error and "HF_HUB_OFFLINE" in rep.error
    assert rep.message().startswith("gallery repo nobody/nothing:")
    rep = fetch_repo_galleries("not a repo; rm -rf /", tmp_path / "d", tiny_encoder.info, None)
    assert "is not a dataset repo id" in rep.error
    assert parse_repo("me/galleries@v1.2") == ("me/galleries", "v1.2")


def test_mounted_folders_are_checked_and_used_in_place(tmp_path, tiny_encoder):
    mount = tmp_path / "mount"
    good = build_photo_gallery(mount / "galleries" / "mine", tiny_encoder, "mine")
    shutil.copytree(good, mount / "broken")
    (mount / "broken" / "index.faiss").write_bytes(b"not an index")
    rep = mounted_galleries(f"{mount}{os.pathsep}{tmp_path / 'absent'}", tiny_encoder.info)
    assert rep.galleries == [good.resolve()]
    assert any(s.startswith("broken:") for s in rep.skipped) and any("not a folder" in s for s in rep.skipped)
    assert not rep.error
