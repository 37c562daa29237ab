"""The bounded on-disk cache of exported model artifacts (covr_core.artifact_cache)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from covr_core.artifact_cache import MANIFEST, ArtifactCache, artifact_key, default_cache, tensor_fingerprint


def _writer(payload: bytes, calls: list):
    def build(folder):
        calls.append(folder)
        (folder / "model.xml").write_bytes(b"<xml/>")
        (folder / "model.bin").write_bytes(payload)
        return ["model.xml", "model.bin"]

    return build


def test_build_once_then_hit(tmp_path):
    cache, calls = ArtifactCache(tmp_path), []
    key = artifact_key("a", 1)
    first = cache.get_or_build(key, _writer(b"x" * 10, calls))
    again = cache.get_or_build(key, _writer(b"y", calls))
    assert first == again == tmp_path / key and len(calls) == 1
    assert (first / "model.bin").read_bytes() == b"x" * 10
    record = json.loads((first / MANIFEST).read_text())
    assert record["files"] == {"model.bin": 10, "model.xml": 6}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_bounded_by_entries_and_bytes_least_recently_used_first(tmp_path):
    cache = ArtifactCache(tmp_path, max_entries=2, max_bytes=10_000)
    keys = [artifact_key(i) for i in range(3)]
    for k in keys[:2]:
        cache.get_or_build(k, _writer(b"x" * 100, []))
    old = os.stat(tmp_path / keys[0] / MANIFEST).st_mtime - 100
    os.utime(tmp_path / keys[1] / MANIFEST, (old, old))  # keys[1] is now the least recently used
    cache.get_or_build(keys[2], _writer(b"x" * 100, []))
    assert {p.name for p in cache.entries()} == {keys[0], keys[2]}
    small = ArtifactCache(tmp_path, max_entries=5, max_bytes=150)
    small.get_or_build(artifact_key("big"), _writer(b"x" * 120, []))
    assert [p.name for p in small.entries()] == [artifact_key("big")]  # only the newest fits


def test_incomplete_or_tampered_entries_are_rebuilt(tmp_path):
    cache, calls = ArtifactCache(tmp_path), []
    key = artifact_key("t")
    folder = cache.get_or_build(key, _writer(b"x" * 10, calls))
    (folder / "model.bin").write_bytes(b"short")  # truncated weights
    assert cache.get(key) is None and not folder.exists()
    cache.get_or_build(key, _writer(b"x" * 10, calls))
    (folder / MANIFEST).write_text(json.dumps({"key": key, "files": {"../../etc/passwd": 1}}))
    assert cache.get(key) is None  # names outside the folder are never followed
    cache.get_or_build(key, _writer(b"x" * 10, calls))
    (folder / "model.bin").unlink()
    (folder / "model.bin").symlink_to(tmp_path / "elsewhere")
    assert cache.get(key) is None
    assert len(calls) == 3


def test_failed_build_leaves_nothing(tmp_path):
    cache = ArtifactCache(tmp_path)

    def broken(folder):
        (folder / "model.xml").write_text("half")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError, match="export failed"):
        cache.get_or_build(artifact_key("b"), broken)
    assert list(tmp_path.iterdir()) == []


def test_keys_and_names_are_validated(tmp_path):
    cache = ArtifactCache(tmp_path)
    with pytest.raises(ValueError):
        cache.get("../outside")
    with pytest.raises(ValueError, match="invalid artifact file name"):
        cache.get_or_build(artifact_key("n"), lambda folder: ["../escape"])


def test_fingerprint_sees_every_weight_and_dtype():
    a = torch.nn.Linear(3, 2)
    fp = tensor_fingerprint(a)
    assert tensor_fingerprint(a) == fp
    with torch.no_grad():
        a.bias[0] += 1e-7
    assert tensor_fingerprint(a) != fp
    assert tensor_fingerprint(a.to(torch.bfloat16)) != tensor_fingerprint(a.float())


def test_default_cache_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("COVR_COMPILE_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("COVR_COMPILE_CACHE_MB", "10")
    cache = default_cache()
    assert cache.root == tmp_path / "c" and cache.max_bytes == 10 << 20
    monkeypatch.setenv("COVR_COMPILE_CACHE", "off")
    assert default_cache() is None
    monkeypatch.delenv("COVR_COMPILE_CACHE")
    monkeypatch.setenv("COVR_DATA_DIR", str(tmp_path / "data"))
    assert default_cache().root == tmp_path / "data" / "cache" / "compiled"
