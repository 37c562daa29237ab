"""Gallery: build/validate, save/load round trip, encoder mismatch, crash-safe save, corrupt files, search."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import covr_core
from covr_core.gallery import Gallery, GalleryError, GalleryMismatchError
from covr_core.types import EncoderInfo

DIM = 16
ENC = EncoderInfo(
    name="blip-tiny", version="1", checkpoint="tiny.safetensors", checkpoint_sha256="ab" * 32, dim=DIM
)


def unit(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def items(n: int, prefix: str = "", video_every: int = 0) -> pd.DataFrame:
    if video_every:  # WebVid-like ids <folder>/<videoid>: rows i and i+video_every share a video id
        ids = [f"{prefix}f{i // video_every}/{i % video_every}" for i in range(n)]
        return pd.DataFrame({"id": ids, "kind": "video", "media": [f"{i}.mp4" for i in ids]})
    ids = [f"{prefix}img{i}" for i in range(n)]
    media = [f"images/{i}.png" for i in ids]
    return pd.DataFrame({"id": ids, "kind": "image", "media": media, "caption": "c"})


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Gallery, Path]:
    g = Gallery.build(unit(50), items(50), ENC, "demo", "media", dtype="float16", provenance={"src": "test"})
    folder = tmp_path / "galleries" / "demo"
    g.save(folder)
    return g, folder


def test_build_manifest_and_items(saved: tuple[Gallery, Path]) -> None:
    g, folder = saved
    m = json.loads((folder / "manifest.json").read_text())
    assert m["encoder"] == "blip-tiny" and m["encoder_version"] == "1"
    assert m["dim"] == DIM and m["count"] == 50
    assert m["checkpoint_sha256"] == "ab" * 32 and m["dtype"] == "float16" and m["normalised"] is True
    assert m["index_type"] == "flat" and m["package_version"] == covr_core.__version__
    assert len(m["embeddings_sha256"]) == 64 and m["provenance"] == {"src": "test"}
    assert m["media_root"] == "media"
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["embeddings.npy", "index.faiss", "items.parquet", "manifest.json"]
    assert list(g.items.columns[:7]) == ["id", "kind", "media", "caption", "split", "duration", "thumbnail"]


def test_load_round_trip_memmap_and_search_equal(saved: tuple[Gallery, Path]) -> None:
    g, folder = saved
    loaded = Gallery.load(folder, ENC, verify=True)
    assert isinstance(loaded.embeddings, np.memmap) and loaded.embeddings.dtype == np.float16
    np.testing.assert_array_equal(np.asarray(loaded.embeddings), g.embeddings)
    q = unit(4, seed=1)
    a, b = g.search(q, 5), loaded.search(q, 5)
    assert a.ids == b.ids
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    assert len(loaded) == 50 and loaded.row_of("img7") == 7
    assert loaded.media_path("img7") == folder / "media" / "images/img7.png"
    eager = Gallery.load(folder, ENC, mmap=False)
    assert not isinstance(eager.embeddings, np.memmap)


def test_search_matches_bruteforce_scores(saved: tuple[Gallery, Path]) -> None:
    g, _ = saved
    q = unit(3, seed=2)
    full = g.scores(q)
    assert full.shape == (3, 50)
    hits = g.search(q, 10)
    expected = np.argsort(-full, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(hits.rows, expected)
    np.testing.assert_allclose(hits.scores, np.take_along_axis(full, expected, 1), rtol=1e-5)
    one = g.search(q[0], 3)  # a single [dim] query
    assert one.ids[0] == hits.ids[0][:3]


def test_search_excludes_ids_and_reference_still_returns_k() -> None:
    emb = unit(30)
    g = Gallery.build(emb, items(30), ENC, "x", "/m")
    top = g.search(emb[:1], 5).ids[0]
    assert top[0] == "img0"  # the item itself is its own best match
    hits = g.search(emb[:1], 5, exclude_ids=[top[:3]])
    assert len(hits.ids[0]) == 5 and not set(top[:3]) & set(hits.ids[0])
    assert hits.ids[0][:2] == top[3:5]
    ref = g.search(emb[:1], 5, reference_ids=["img0"])  # CoVR: the reference is removed
    assert "img0" not in ref.ids[0] and len(ref.ids[0]) == 5
    all_but = g.search(emb[:1], 40, exclude_ids=[[f"img{i}" for i in range(1, 30)]])
    assert all_but.ids[0] == ["img0"] and (all_but.rows[0, 1:] == -1).all()
    assert np.isneginf(all_but.scores[0, 1:]).all()


def test_search_same_video_exclusion() -> None:
    emb = unit(40)
    table = items(40, video_every=10)  # ids f0/0..f0/9, f1/0..: video id = last path component
    g = Gallery.build(emb, table, ENC, "w", "/m")
    same = [i for i, x in enumerate(table["id"]) if x.endswith("/3")]
    hits = g.search(emb[3:4], 40, reference_ids=["f0/3"], exclude_same_video=True)
    assert len(hits.ids[0]) == 40 - len(same)
    assert not {table["id"][i] for i in same} & set(hits.ids[0])
    with pytest.raises(ValueError, match="reference_ids"):
        g.search(emb[:1], 5, exclude_same_video=True)


def test_mismatched_encoder_is_refused_with_rebuild_command(saved: tuple[Gallery, Path]) -> None:
    _, folder = saved
    for other in (
        EncoderInfo("lite", "1", "tiny.safetensors", "ab" * 32, DIM),
        EncoderInfo("blip-tiny", "1", "tiny.safetensors", "ab" * 32, 32),
        EncoderInfo("blip-tiny", "1", "other.ckpt", "cd" * 32, DIM),
        EncoderInfo("blip-tiny", "2", "tiny.safetensors", "ab" * 32, DIM),
    ):
        with pytest.raises(GalleryMismatchError) as err:
            Gallery.load(folder, other)
        assert "python -m precompute.gallery" in str(err.value) and other.name in str(err.value)
    Gallery.load(folder, ENC)  # the right encoder loads


def test_build_validation_errors() -> None:
    emb = unit(5)
    with pytest.raises(GalleryError, match="dim"):
        Gallery.build(unit(5, dim=8), items(5), ENC, "x", "/m")
    with pytest.raises(GalleryError, match="2-D"):
        Gallery.build(emb[0], items(1), ENC, "x", "/m")
    bad = emb.copy()
    bad[1, 0] = np.nan
    with pytest.raises(GalleryError, match="NaN"):
        Gallery.build(bad, items(5), ENC, "x", "/m")
    with pytest.raises(GalleryError, match="rows"):
        Gallery.build(emb, items(4), ENC, "x", "/m")
    dup = items(5)
    dup.loc[3, "id"] = "img0"
    with pytest.raises(GalleryError, match="duplicate"):
        Gallery.build(emb, dup, ENC, "x", "/m")
    with pytest.raises(GalleryError, match="normalised"):
        Gallery.build(emb * 3, items(5), ENC, "x", "/m")
    g = Gallery.build(emb * 3, items(5), ENC, "x", "/m", normalize=True)
    np.testing.assert_allclose(np.linalg.norm(g.embeddings, axis=1), 1, rtol=1e-5)


def test_add_then_save_load(saved: tuple[Gallery, Path], tmp_path: Path) -> None:
    g, folder = saved
    loaded = Gallery.load(folder, ENC)  # memory-mapped index: add must copy it first
    new = unit(5, seed=9)
    loaded.add(new, items(5, prefix="new"))
    with pytest.raises(GalleryError, match="already"):
        loaded.add(new[:1], items(1, prefix="new"))
    assert len(loaded) == 55 and loaded.search(new[2], 1).ids[0] == ["newimg2"]
    (folder / "thumbs").mkdir()
    (folder / "thumbs" / "t.jpg").write_bytes(b"jpg")
    loaded.save(folder)
    again = Gallery.load(folder, ENC, verify=True)
    assert len(again) == 55 and again.row_of("newimg4") == 54
    assert (folder / "thumbs" / "t.jpg").read_bytes() == b"jpg"  # extras survive a re-save


def test_interrupted_save_keeps_old_gallery(saved, monkeypatch: pytest.MonkeyPatch) -> None:
    g, folder = saved
    bigger = Gallery.build(unit(60, seed=3), items(60), ENC, "demo", "media")

    def broken_to_parquet(self, *a, **k):
        raise OSError("disk full while writing items")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken_to_parquet)
    with pytest.raises(OSError, match="disk full"):
        bigger.save(folder)
    monkeypatch.undo()
    old = Gallery.load(folder, ENC, verify=True)
    assert len(old) == 50
    assert [p.name for p in folder.parent.iterdir()] == ["demo"]  # temp folder removed


def test_killed_save_keeps_old_gallery_and_temp_ignored(saved: tuple[Gallery, Path]) -> None:
    _, folder = saved
    code = textwrap.dedent(
        f"""
        import os, numpy as np, pandas as pd
        from covr_core.gallery import Gallery
        from covr_core.types import EncoderInfo
        enc = EncoderInfo("blip-tiny", "1", "tiny.safetensors", "ab" * 32, {DIM})
        x = np.random.default_rng(5).standard_normal((70, {DIM})).astype("float32")
        items = pd.DataFrame({{"id": [f"k{{i}}" for i in range(70)], "kind": "image", "media": "m.png"}})
        g = Gallery.build(x, items, enc, "demo", "media", normalize=True)
        def die(*a, **k):
            os._exit(7)  # the process dies after embeddings.npy was written, before the index
        import covr_core.gallery_index as gi
        gi.write_index = die
        g.save({str(folder)!r})
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2])
    assert proc.returncode == 7
    temps = [p for p in folder.parent.iterdir() if p.name != "demo"]
    assert len(temps) == 1 and (temps[0] / "embeddings.npy").exists()
    assert len(Gallery.load(folder, ENC, verify=True)) == 50
    with pytest.raises(GalleryError):
        Gallery.load(temps[0])  # the half-written temp folder itself is not a gallery
    Gallery.build(unit(3), items(3), ENC, "demo", "media").save(folder)  # next save cleans the leftover
    assert [p.name for p in folder.parent.iterdir()] == ["demo"]


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda f: (f / "manifest.json").unlink(), "manifest.json is missing"),
        (lambda f: (f / "manifest.json").write_text("{not json"), "corrupt"),
        (lambda f: (f / "index.faiss").unlink(), "index.faiss is missing"),
        (lambda f: (f / "index.faiss").write_bytes(b"garbage"), "corrupt"),
        (lambda f: (f / "items.parquet").write_bytes(b"garbage"), "corrupt"),
        (lambda f: (f / "embeddings.npy").unlink(), "missing"),
        (lambda f: _truncate(f / "embeddings.npy"), "corrupt or truncated|disagree"),
        (lambda f: np.save(f / "embeddings.npy", unit(49).astype(np.float16)), "disagree"),
        (lambda f: np.save(f / "embeddings.npy", unit(50)), "disagree"),  # float32 vs manifest float16
        (lambda f: pd.read_parquet(f / "items.parquet")[:49].to_parquet(f / "items.parquet"), "disagree"),
        (lambda f: _set_manifest(f, count=51), "disagree"),
        (lambda f: _set_manifest(f, dim=DIM), None),  # unchanged value: still loads
    ],
)
@pytest.mark.parametrize("hashes", [True, False], ids=["recorded-hashes", "cheap-checks-only"])
def test_missing_corrupt_or_disagreeing_files_refuse_to_load(saved, damage, match, hashes) -> None:
    """With recorded hashes a damaged file is refused by its size or sha256; without them (a trusted caller
    opening a gallery with verify=False and no 'files' table) the cheap consistency checks still refuse it."""
    _, folder = saved
    if not hashes:
        _drop_manifest_keys(folder, "files")
    damage(folder)
    load = (lambda: Gallery.load(folder)) if hashes else (lambda: Gallery.load(folder, verify=False))
    if match is None:
        load()
        return
    integrity = "|bytes but the manifest records|do(es)? not match the sha256" if hashes else ""
    with pytest.raises(GalleryError, match=match + integrity):
        load()


def test_changed_embeddings_refused_on_default_load(saved: tuple[Gallery, Path]) -> None:
    """Same shape, same dtype, different values: the default load refuses it (sha256 of the file)."""
    _, folder = saved
    emb = np.load(folder / "embeddings.npy")
    emb[3] = emb[4]
    np.save(folder / "embeddings.npy", emb)
    with pytest.raises(GalleryError, match="embeddings.npy does not match the sha256"):
        Gallery.load(folder)
    gallery = Gallery.load(folder, verify=False)  # a trusted caller can still open it; verify() says why
    with pytest.raises(GalleryError, match="embeddings.npy does not match"):
        gallery.verify()


def test_missing_folder_is_a_gallery_error(tmp_path: Path) -> None:
    with pytest.raises(GalleryError, match="no gallery folder"):
        Gallery.load(tmp_path / "nope")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _drop_manifest_keys(folder: Path, *keys: str) -> None:
    m = json.loads((folder / "manifest.json").read_text())
    for key in keys:
        m.pop(key, None)
    (folder / "manifest.json").write_text(json.dumps(m))


def _set_manifest(folder: Path, **changes) -> None:
    m = json.loads((folder / "manifest.json").read_text())
    m.update(changes)
    (folder / "manifest.json").write_text(json.dumps(m))


def test_thread_setting_does_not_change_results_and_is_restored() -> None:
    import faiss

    from covr_core import gallery_index as gi

    emb = unit(300)
    g = Gallery.build(emb, items(300), ENC, "t", "/m")
    before = faiss.omp_get_max_threads()
    assert gi.auto_threads(g.index, 1) == 1  # a small exact search runs on one thread
    results = [g.search(emb[:20], 7, threads=t).rows for t in (None, 0, 1, 2)]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    assert faiss.omp_get_max_threads() == before


def test_empty_gallery_builds_searches_and_grows(tmp_path: Path) -> None:
    g = Gallery.build(np.zeros((0, DIM), np.float32), items(0), ENC, "empty", "m")
    hits = g.search(unit(1)[0], 3)
    assert hits.ids == [[]] and (hits.rows == -1).all() and g.scores(unit(2)).shape == (2, 0)
    g.save(tmp_path / "e")
    loaded = Gallery.load(tmp_path / "e", ENC)
    loaded.add(unit(2), items(2))
    assert len(loaded) == 2 and loaded.search(unit(2)[1], 1).ids == [["img1"]]


def test_duplicate_ids_in_items_file_are_refused_on_first_lookup(saved: tuple[Gallery, Path]) -> None:
    _, folder = saved
    table = pd.read_parquet(folder / "items.parquet")
    table.loc[5, "id"] = "img4"
    table.to_parquet(folder / "items.parquet")
    _drop_manifest_keys(folder, "files")
    Gallery.record_files(folder)  # a hand-made gallery whose recorded hashes include the duplicates
    g = Gallery.load(folder, ENC)  # checked lazily: hashing 1M ids would cost ~1 s of every start
    with pytest.raises(GalleryError, match="duplicate item ids"):
        g.row_of("img1")
    with pytest.raises(GalleryError, match="duplicate item ids"):
        g.search(unit(1), 3, reference_ids=["img1"])
