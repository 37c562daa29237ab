"""A bounded on-disk cache of exported model artifacts (OpenVINO IR, ONNX), so a restart does not export again.

One folder per key under ``root``; the key is a sha256 of what the artifact depends on (model tensors,
config, library versions, backend, precision: :func:`artifact_key`). A folder is published by an atomic
rename once complete and carries ``artifact.json`` listing its files and sizes; anything else (partial
folders, wrong sizes, links, names outside the folder) is ignored and removed. Only data formats live here
(OpenVINO IR XML + weights, ONNX protobuf): nothing in the cache is unpickled or executed. The cache keeps at
most ``max_entries`` folders and ``max_bytes`` bytes, evicting the least recently used.

Environment: ``COVR_COMPILE_CACHE`` (folder; default ``<COVR_DATA_DIR>/cache/compiled``; ``off`` disables it),
``COVR_COMPILE_CACHE_MB`` (size bound, default 4096), ``COVR_COMPILE_CACHE_ENTRIES`` (default 3).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from covr_core.settings import load_settings

logger = logging.getLogger(__name__)

MANIFEST = "artifact.json"
DEFAULT_MAX_MB = 4096
DEFAULT_MAX_ENTRIES = 3
_TMP_PREFIX = ".tmp-"


def tensor_fingerprint(module: torch.nn.Module) -> str:
    """sha256 over the names, dtypes, shapes and bytes of every parameter and buffer of ``module``."""
    h = hashlib.sha256()
    tensors = list(module.named_parameters()) + list(module.named_buffers())
    for name, tensor in sorted(tensors, key=lambda kv: kv[0]):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:".encode())
        if t.numel():
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def artifact_key(*parts: object) -> str:
    """sha256 of the JSON of ``parts`` (fingerprints, versions, backend, precision, shapes)."""
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()


class ArtifactCache:
    """Bounded folder-per-key cache; see the module docstring."""

    def __init__(self, root: str | Path, max_bytes: int = DEFAULT_MAX_MB << 20,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.max_entries = int(max_entries)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reading
    def get(self, key: str) -> Path | None:
        """The complete folder of ``key`` (its use time refreshed), or None."""
        folder = self.root / _check_key(key)
        if not folder.is_dir():
            return None
        if not _is_complete(folder):
            logger.warning("compiled-artifact cache: dropping invalid entry %s", folder.name[:12])
            shutil.rmtree(folder, ignore_errors=True)
            return None
        os.utime(folder / MANIFEST)
        return folder

    def entries(self) -> list[Path]:
        """Complete entry folders, least recently used first."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(_TMP_PREFIX)]
        found = [p for p in found if _is_complete(p)]
        return sorted(found, key=lambda p: (p / MANIFEST).stat().st_mtime)

    # ------------------------------------------------------------------ writing
    def get_or_build(self, key: str, build: Callable[[Path], Iterable[str]], info: dict | None = None) -> Path:
        """The folder of ``key``; on a miss ``build(tmp_folder)`` writes the files it returns the names of,
        then the folder is published atomically and the cache trimmed to its bounds."""
        hit = self.get(key)
        if hit is not None:
            return hit
        with self._lock:
            hit = self.get(key)
            if hit is not None:
                return hit
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f"{_TMP_PREFIX}{key[:16]}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            try:
                names = sorted(set(build(tmp)))
                files = {name: (tmp / _check_name(name)).stat().st_size for name in names}
                record = {"key": key, "files": files, "created": time.time(), **(info or {})}
                (tmp / MANIFEST).write_text(json.dumps(record, indent=1))
                final = self.root / key
                try:
                    os.rename(tmp, final)
                except OSError:  # another process published the same key first
                    shutil.rmtree(tmp, ignore_errors=True)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self.trim(keep=key)
            got = self.get(key)
            if got is None:
                raise RuntimeError(f"compiled-artifact cache: entry {key[:12]} vanished after publishing")
            return got

    def trim(self, keep: str | None = None) -> None:
        """Remove stale temp folders, then least recently used entries beyond ``max_entries`` / ``max_bytes``."""
        if not self.root.is_dir():
            return
        for stale in self.root.glob(f"{_TMP_PREFIX}*"):
            if time.time() - stale.stat().st_mtime > 3600:
                shutil.rmtree(stale, ignore_errors=True)
        entries = self.entries()
        sizes = {p: _entry_bytes(p) for p in entries}
        while entries and (len(entries) > self.max_entries or sum(sizes[p] for p in entries) > self.max_bytes):
            victim = next((p for p in entries if p.name != keep), None)
            if victim is None:
                break
            logger.info("compiled-artifact cache: evicting %s (%.0f MB)", victim.name[:12], sizes[victim] / 2**20)
            shutil.rmtree(victim, ignore_errors=True)
            entries.remove(victim)


def default_cache() -> ArtifactCache | None:
    """The cache configured by ``COVR_COMPILE_CACHE*`` (None when set to ``off``)."""
    root = os.environ.get("COVR_COMPILE_CACHE", "").strip()
    if root.lower() in ("off", "none", "0"):
        return None
    if not root:
        root = str(load_settings().data_dir / "cache" / "compiled")
    max_mb = int(os.environ.get("COVR_COMPILE_CACHE_MB", "") or DEFAULT_MAX_MB)
    max_entries = int(os.environ.get("COVR_COMPILE_CACHE_ENTRIES", "") or DEFAULT_MAX_ENTRIES)
    if max_mb <= 0 or max_entries <= 0:
        raise ValueError("COVR_COMPILE_CACHE_MB and COVR_COMPILE_CACHE_ENTRIES must be positive")
    return ArtifactCache(root, max_bytes=max_mb << 20, max_entries=max_entries)


def _check_key(key: str) -> str:
    if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise ValueError(f"invalid artifact key {key!r}")
    return key


def _check_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith(".") or name == MANIFEST:
        raise ValueError(f"invalid artifact file name {name!r}")
    return name


def _is_complete(folder: Path) -> bool:
    """True when ``artifact.json`` names plain files of the recorded sizes directly inside ``folder``."""
    try:
        if folder.is_symlink():
            return False
        record = json.loads((folder / MANIFEST).read_text())
        files = record["files"]
        if record.get("key") != folder.name or not isinstance(files, dict) or not files:
            return False
        for name, size in files.items():
            path = folder / _check_name(name)
            if path.is_symlink() or not path.is_file() or path.stat().st_size != int(size):
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _entry_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
