"""Per-file integrity of gallery folders: the sha256 and size of every file, recorded and verified.

A gallery folder (``covr_core.gallery.Gallery`` owns the format) records its files like this:

- ``manifest.json["files"]``: ``{relative path: {"sha256": hex, "size": bytes}}`` for every file at the top of
  the folder (``embeddings.npy``, ``items.parquet``, ``index.faiss``, ``umap.parquet``, ... and
  ``files.sha256``); the manifest itself is the root of trust and is not listed.
- ``files.sha256``: one line ``<sha256> <size> <relative path>`` per file in a sub-folder (``thumbs/``,
  ``frames/``): a 1M-item gallery has a million thumbnails, too many for the manifest.

Verification: ``verify_files`` checks every listed top-level file on load (size, then sha256; a file that is
a symlink leading out of the folder is refused). Hashes are cached by ``(path, size, mtime, ctime, inode,
device)`` in a :class:`HashCache` (kept in memory, optionally persisted outside the gallery folder), so an
unchanged 1M-item gallery (1.5 GB) opens in well under a second once it has been hashed. Files in
sub-folders are verified lazily, on first use (``NestedFiles.verified``). ``record_files`` writes both
lists; it skips dot-files and the job folder ``_parts/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from covr_core.atomic import atomic_write_json, atomic_write_text
from covr_core.gallery_files import FORMAT_VERSION, MANIFEST, GalleryError, read_manifest

logger = logging.getLogger(__name__)

FILE_LIST = "files.sha256"
SKIPPED_DIRS = ("_parts",)
CHUNK = 4 * 1024 * 1024
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FileRecord:
    """What a gallery records about one of its files."""

    sha256: str
    size: int

    def as_json(self) -> dict[str, Any]:
        """The manifest form ``{"sha256": ..., "size": ...}``."""
        return {"sha256": self.sha256, "size": self.size}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class HashCache:
    """sha256 of files, keyed by path and the stat fields that change when the content can have changed.

    ``ctime`` and the inode are part of the key: rewriting a file and setting its mtime back (``os.utime``)
    still changes its ctime, and replacing it changes its inode. ``path``: a JSON file to persist the cache
    in (never inside a gallery folder: a downloaded gallery must not bring its own "already verified").
    """

    def __init__(self, path: str | os.PathLike | None = None, max_entries: int = 50_000):
        self.path = Path(path) if path else None
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._entries: dict[str, str] = {}
        self._dirty = False
        if self.path is not None and self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    self._entries = {str(k): str(v) for k, v in data.items() if _HEX64.match(str(v))}
            except (OSError, ValueError) as exc:
                logger.warning("ignoring the unreadable hash cache %s: %s", self.path, exc)

    @staticmethod
    def _key(path: Path, st: os.stat_result) -> str:
        return f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}|{st.st_dev}"

    def sha256(self, path: str | os.PathLike, st: os.stat_result | None = None) -> str:
        """The file's sha256, from the cache when its stat fields are unchanged."""
        path = Path(path)
        st = st or path.stat()
        key = self._key(path, st)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self.hits += 1
                return cached
        digest = file_sha256(path)
        with self._lock:
            self.misses += 1
            if len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = digest
            self._dirty = True
        return digest

    def save(self) -> None:
        """Persist the cache (atomically) when it has a ``path`` and changed."""
        if self.path is None or not self._dirty:
            return
        with self._lock:
            snapshot = dict(self._entries)
            self._dirty = False
        try:
            atomic_write_json(self.path, snapshot, indent=None)
        except OSError as exc:
            logger.warning("could not save the hash cache %s: %s", self.path, exc)


#: The process-wide default cache (in memory).
DEFAULT_CACHE = HashCache()


def inside(folder: Path, relpath: str) -> Path:
    """``folder / relpath`` when it is a plain relative path that stays in ``folder`` after following symlinks.

    Raises GalleryError for absolute paths, ``..`` and symlinks leading out of the folder.
    """
    rel = Path(relpath)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or "\x00" in relpath:
        raise GalleryError(f"gallery {folder.name!r}: the file name {relpath!r} is not a plain relative path")
    base = folder.resolve()
    target = (folder / rel).resolve()
    if base not in target.parents:
        raise GalleryError(
            f"gallery {folder.name!r}: {relpath} is a symlink that leads out of the gallery folder; "
            "copy the file into the folder instead"
        )
    return target


def list_files(folder: Path) -> list[str]:
    """Relative paths (POSIX) of the gallery's files: all regular files except the manifest, dot-files and
    ``_parts/``."""
    out = []
    for root, dirs, files in os.walk(folder):
        rel_root = Path(root).relative_to(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (rel_root == Path(".") and d in SKIPPED_DIRS))
        for name in files:
            rel = (rel_root / name).as_posix()
            if name.startswith(".") or rel == MANIFEST:
                continue
            out.append(rel)
    return sorted(out)


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def describe_files(folder: Path, relpaths: Iterable[str], cache: HashCache | None = None) -> dict[str, FileRecord]:
    """``{relpath: FileRecord}`` of the given files (hashed in parallel, through ``cache``)."""
    cache = cache or DEFAULT_CACHE
    rels = list(relpaths)

    def one(rel: str) -> tuple[str, FileRecord]:
        path = inside(folder, rel)
        st = path.stat()
        return rel, FileRecord(cache.sha256(path, st), st.st_size)

    with ThreadPoolExecutor(_workers()) as pool:
        return dict(pool.map(one, rels))


def record_files(folder: Path, cache: HashCache | None = None, keep: dict[str, Any] | None = None) -> dict:
    """Hash every file of ``folder``, write ``files.sha256`` for files in sub-folders and return the
    manifest's ``files`` table for the top-level ones (including ``files.sha256``).

    ``keep``: a ``files`` table whose entries are reused for files not re-hashed (``Gallery.record_files``).
    """
    keep = keep or {}
    rels = [r for r in list_files(folder) if r != FILE_LIST]
    todo = [r for r in rels if r not in keep]
    fresh = describe_files(folder, todo, cache)
    records = {r: (fresh[r] if r in fresh else _record(keep[r], r)) for r in rels}
    nested = {r: rec for r, rec in records.items() if "/" in r}
    top = {r: rec.as_json() for r, rec in records.items() if "/" not in r}
    list_path = folder / FILE_LIST
    if nested:
        atomic_write_text(list_path, "".join(f"{rec.sha256} {rec.size} {r}\n" for r, rec in sorted(nested.items())))
        top[FILE_LIST] = describe_files(folder, [FILE_LIST], cache)[FILE_LIST].as_json()
    elif list_path.exists():
        list_path.unlink()
    return dict(sorted(top.items()))


def record_into_manifest(folder: Path, changed: Iterable[str] = (), cache: HashCache | None = None) -> dict:
    """``record_files`` for a saved gallery: keep the manifest's entries except ``changed`` ones, hash the rest,
    rewrite ``manifest.json`` atomically (format 2); returns the new ``files`` table."""
    manifest = read_manifest(folder)
    skip = {FILE_LIST, *changed}
    keep = {k: v for k, v in (manifest.get("files") or {}).items() if k not in skip}
    manifest["files"] = record_files(folder, cache, keep=keep)
    manifest["format_version"] = FORMAT_VERSION
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest["files"]


def _record(entry: Any, rel: str) -> FileRecord:
    """A FileRecord from a manifest entry; GalleryError when it is malformed."""
    if not isinstance(entry, dict):
        raise GalleryError(f"manifest entry of {rel!r} is not an object")
    sha, size = entry.get("sha256"), entry.get("size")
    if not isinstance(sha, str) or not _HEX64.match(sha) or not isinstance(size, int) or isinstance(size, bool) \
            or size < 0:  # fmt: skip
        raise GalleryError(f"manifest entry of {rel!r} needs a 64-hex sha256 and a size in bytes")
    return FileRecord(sha, size)


def file_table(manifest: dict, required: Iterable[str], where: str) -> dict[str, FileRecord]:
    """The manifest's ``files`` table as FileRecords; GalleryError when it is absent, malformed or lacks a
    ``required`` file. ``where`` names the gallery in messages."""
    files = manifest.get("files")
    if files is None:
        raise GalleryError(
            f"{where} has no per-file checksums (it was built before gallery format 2), so a damaged or "
            "modified file could not be detected; rebuild it with python -m precompute.gallery (see --help)"
        )
    if not isinstance(files, dict):
        raise GalleryError(f"{where}: manifest 'files' must be an object of file name -> sha256/size")
    table = {str(rel): _record(entry, str(rel)) for rel, entry in files.items()}
    missing = [r for r in required if r not in table]
    if missing:
        raise GalleryError(f"{where}: manifest 'files' does not list {missing}; rebuild the gallery")
    return table


def verify_files(folder: Path, table: dict[str, FileRecord], cache: HashCache | None = None, *,
                 hashes: bool = True) -> None:  # fmt: skip
    """Check each listed file: inside the folder (no symlink out), regular, its size and (``hashes``) its
    sha256. Raises GalleryError naming the first file that does not match."""
    cache = cache or DEFAULT_CACHE
    where = f"gallery {folder.name!r}"
    stats = {}
    for rel, rec in table.items():
        path = inside(folder, rel)
        if not path.is_file():
            raise GalleryError(f"{where}: {rel} is missing; rebuild the gallery or download it again")
        st = path.stat()
        if st.st_size != rec.size:
            raise GalleryError(
                f"{where}: {rel} has {st.st_size:,} bytes but the manifest records {rec.size:,}: the file is "
                "incomplete or was replaced; rebuild the gallery or download it again"
            )
        stats[rel] = (path, st)
    if not hashes:
        return

    def check(rel: str) -> str | None:
        path, st = stats[rel]
        return None if cache.sha256(path, st) == table[rel].sha256 else rel

    with ThreadPoolExecutor(_workers()) as pool:
        bad = [rel for rel in pool.map(check, list(stats)) if rel]
    cache.save()
    if bad:
        raise GalleryError(
            f"{where}: {', '.join(bad)} {'does' if len(bad) == 1 else 'do'} not match the sha256 recorded in "
            "the manifest (damaged or modified); the gallery is refused rather than giving wrong answers. "
            "Rebuild it or download it again"
        )


class NestedFiles:
    """The files in a gallery's sub-folders (``files.sha256``), verified one by one on first use."""

    def __init__(self, folder: Path, has_list: bool, cache: HashCache | None = None):
        self.folder = folder
        self._has_list = has_list
        self._cache = cache or DEFAULT_CACHE
        self._records: dict[str, FileRecord] | None = None
        self._checked: dict[str, Path | None] = {}
        self._lock = threading.Lock()

    def _load(self) -> dict[str, FileRecord]:
        if self._records is None:
            records: dict[str, FileRecord] = {}
            if self._has_list:
                for line in (self.folder / FILE_LIST).read_text(encoding="utf-8").splitlines():
                    sha, size, rel = line.split(" ", 2)
                    records[rel] = FileRecord(sha, int(size))
            self._records = records
        return self._records

    def verified(self, relpath: str) -> Path | None:
        """The file's path when it is listed and its size and sha256 match; None otherwise (logged once)."""
        with self._lock:
            if relpath in self._checked:
                return self._checked[relpath]
        result: Path | None = None
        try:
            rec = self._load().get(relpath)
            if rec is None:
                logger.warning("gallery %r: %s is not listed in %s; not used", self.folder.name, relpath, FILE_LIST)
            else:
                path = inside(self.folder, relpath)
                st = path.stat()
                if st.st_size == rec.size and self._cache.sha256(path, st) == rec.sha256:
                    result = path
                else:
                    logger.warning("gallery %r: %s does not match %s; not used", self.folder.name, relpath,
                                   FILE_LIST)  # fmt: skip
        except (OSError, ValueError, GalleryError) as exc:
            logger.warning("gallery %r: %s not usable: %s", self.folder.name, relpath, exc)
        with self._lock:
            self._checked[relpath] = result
        return result
