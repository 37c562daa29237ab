"""A gallery: embeddings + items table + FAISS index + manifest, saved as one folder.

Folder layout (docs/ARCHITECTURE.md): ``index.faiss``, ``embeddings.npy`` (float16/float32, row-aligned),
``items.parquet`` (``id, kind, media, caption, split, duration, thumbnail``), ``manifest.json``, and optional
extras (``frames/``, ``thumbs/``, ``umap.parquet``) that ``save`` keeps when it overwrites a folder.

- ``save`` is atomic (``covr_core.atomic.atomic_folder``): a crash leaves the previous gallery loadable. It
  records the sha256 and size of every file (``covr_core.gallery_integrity``); a writer that adds files to a
  saved gallery (thumbnails, ``umap.parquet``) calls ``Gallery.record_files(folder, changed)``.
- ``load`` verifies every recorded file (cached hashes: an unchanged gallery is not re-read) and refuses a
  damaged or modified one; a gallery without per-file hashes (format 1) is refused with the rebuild
  command. It memory-maps the embeddings and the index's vectors (``IO_FLAG_MMAP_IFC``), so a 1M-item
  gallery starts without reading 1 GB; it checks the manifest against the active encoder and the files
  against each other (see ``covr_core.gallery_files`` for what is checked when).
- ``media_path``: ``media`` is relative to ``media_root``; a relative ``media_root`` is relative to the
  gallery folder (so a folder can be moved together with its media), an absolute one is used as is.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import covr_core
from covr_core import gallery_files as gf
from covr_core import gallery_index as gi
from covr_core import gallery_integrity as gint
from covr_core.atomic import atomic_folder, cleanup_stale_temps, recover_folder
from covr_core.datasets.webvid import webvid_video_id
from covr_core.gallery_files import GalleryError, GalleryMismatchError
from covr_core.types import EncoderInfo, SearchHits

__all__ = ["Gallery", "GalleryError", "GalleryMismatchError"]
logger = logging.getLogger(__name__)


class Gallery:
    """Searchable set of image/video embeddings with its items table and manifest."""

    def __init__(self, manifest: dict, items: pd.DataFrame, embeddings: np.ndarray, index: Any,
                 folder: Path | None = None) -> None:  # fmt: skip
        self.manifest = manifest
        self.items = items
        self.embeddings = embeddings
        self.index = index
        self.folder = folder
        self._index_mmapped = False
        self._row_index: pd.Index | None = None
        self._id_array: np.ndarray | None = None
        self._video_groups: dict[str, np.ndarray] | None = None
        self._nested: gint.NestedFiles | None = None

    # ------------------------------------------------------------------ build / add
    @classmethod
    def build(
        cls,
        embeddings: Any,
        items: Any,
        encoder: EncoderInfo,
        name: str,
        media_root: str | Path,
        index_type: str = "flat",
        provenance: dict | None = None,
        *,
        dtype: str = "float32",
        normalize: bool = False,
        index_params: dict | None = None,
        recall_queries: np.ndarray | None = None,
        target_recall: float = 0.95,
    ) -> Gallery:
        """Build a gallery from [N, dim] embeddings and an N-row items table (DataFrame or records).

        ``dtype`` is the stored embedding type (float16 halves disk and page cache). ``normalize=True``
        L2-normalises; otherwise rows must already have unit norm. ``index_type`` is ``flat`` (exact),
        ``hnsw`` or ``ivf``; approximate indexes store their recall@10 vs exact (measured on
        ``recall_queries`` or on perturbed gallery rows) in the manifest as ``index_recall_at_10``, after
        raising efSearch/nprobe until that recall reaches ``target_recall`` (0 keeps the given values).
        """
        emb = gf.validate_embeddings(embeddings, encoder.dim, normalize, dtype)
        table = gf.validate_items(items, len(emb))
        params = gi.index_params(index_type, index_params)
        index = gi.build_index(emb, index_type, params)
        if index_type == "ivf":
            params["nlist"] = int(index.nlist)
        manifest: dict[str, Any] = {
            "format_version": gf.FORMAT_VERSION,
            "name": name,
            **gf.encoder_fields(encoder),
            "count": len(emb),
            "normalised": True,
            "dtype": dtype,
            "index_type": index_type,
            "index_params": params,
            "index_recall_at_10": None,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "package_version": covr_core.__version__,
            "embeddings_sha256": gf.embeddings_sha256(emb),
            "media_root": str(media_root),
            "provenance": dict(provenance or {}),
        }
        manifest["target_recall_at_10"] = target_recall
        gallery = cls(manifest, table, emb, index)
        if index_type != "flat":
            gallery._measure_recall(recall_queries)
        return gallery

    def _measure_recall(self, queries: np.ndarray | None = None) -> float:
        target = float(self.manifest.get("target_recall_at_10", 0.0))
        recall, chosen = gi.tune_recall(self.index, self.embeddings, queries, target=target)
        self.manifest["index_params"].update(chosen)
        self.manifest["index_recall_at_10"] = round(recall, 4)
        logger.info("%s index recall@10 vs exact: %.4f (%s)", self.manifest["index_type"], recall, chosen)
        return recall

    def add(self, embeddings: Any, items: Any, *, normalize: bool = False) -> None:
        """Append rows (ids must be new). Approximate indexes re-measure their recall."""
        emb = gf.validate_embeddings(embeddings, self.dim, normalize, self.manifest["dtype"])
        table = gf.validate_items(items, len(emb), existing_ids=self._ids())
        if self._index_mmapped:
            self.index = gi.writable_copy(self.index)
            self._index_mmapped = False
        gi.add_to_index(self.index, emb)
        self.embeddings = np.concatenate([np.asarray(self.embeddings), emb], axis=0)
        self.items = pd.concat([self.items, table], ignore_index=True)
        self.manifest["count"] = len(self.embeddings)
        self.manifest["embeddings_sha256"] = gf.embeddings_sha256(self.embeddings)
        self._row_index = None
        self._id_array = None
        self._video_groups = None
        if self.manifest["index_type"] != "flat":
            self._measure_recall()

    # ------------------------------------------------------------------ save / load
    def save(self, folder: str | Path) -> None:
        """Write the gallery to ``folder`` atomically (temp folder in the same parent, fsync, swap).

        Extra files already in the destination (or in the folder this gallery was loaded from), such as
        ``thumbs/`` or ``umap.parquet``, are carried over.
        """
        folder = Path(folder)
        cleanup_stale_temps(folder)
        with atomic_folder(folder) as tmp:
            for source in {p for p in (folder, self.folder) if p is not None and p.is_dir()}:
                _carry_extras(source, tmp)
            with open(tmp / gf.EMBEDDINGS, "wb") as fh:
                np.save(fh, np.ascontiguousarray(self.embeddings), allow_pickle=False)
            self.items.to_parquet(tmp / gf.ITEMS, index=False)
            gi.write_index(self.index, tmp / gf.INDEX)
            self.manifest["format_version"] = gf.FORMAT_VERSION
            self.manifest["files"] = gint.record_files(tmp)
            gf.json_dump(self.manifest, tmp / gf.MANIFEST)
        self.folder = folder
        self._nested = None
        logger.info("saved gallery %r (%d items) to %s", self.name, len(self), folder)

    @staticmethod
    def record_files(folder: str | Path, changed: Sequence[str] = (), cache: gint.HashCache | None = None) -> dict:
        """Record files written into a saved gallery folder after ``save`` (thumbnails, frame strips,
        ``umap.parquet``...) in its manifest: files not yet recorded and the ``changed`` ones (relative paths)
        are hashed, the other entries kept; ``manifest.json`` is rewritten atomically. Returns the table."""
        return gint.record_into_manifest(Path(folder), changed, cache)

    @classmethod
    def load(
        cls,
        folder: str | Path,
        expected: EncoderInfo | None = None,
        mmap: bool = True,
        *,
        verify: bool = True,
        hash_cache: gint.HashCache | None = None,
    ) -> Gallery:
        """Open a gallery folder; refuse another encoder's gallery and damaged or inconsistent files.

        ``expected``: the active encoder; a different name, version, dim or checkpoint raises
        GalleryMismatchError naming the rebuild command. ``mmap``: memory-map embeddings and index vectors.
        ``verify``: check every recorded file's sha256 (through ``hash_cache``: unchanged files are not
        re-read; default: a per-process cache). ``verify=False`` (trusted callers only) checks sizes only and
        also opens galleries built before per-file hashes existed.
        """
        folder = Path(folder)
        recover_folder(folder)
        if not folder.is_dir():
            raise GalleryError(f"no gallery folder at {folder}")
        manifest = gf.read_manifest(folder)
        if expected is not None:
            gf.check_encoder(manifest, expected, folder)
        table: dict[str, gint.FileRecord] = {}
        if verify or "files" in manifest:
            table = gint.file_table(manifest, (gf.EMBEDDINGS, gf.ITEMS, gf.INDEX), f"gallery {folder.name!r}")
            gint.verify_files(folder, table, hash_cache, hashes=verify)
        emb = gf.read_embeddings(folder, manifest, mmap)
        items = gf.read_items(folder, manifest)
        index_path = folder / gf.INDEX
        if not index_path.is_file():
            raise GalleryError(f"{index_path} is missing; rebuild the gallery")
        try:
            index = gi.read_index(index_path, mmap=mmap)
        except RuntimeError as exc:
            reason = str(exc).splitlines()[0]
            raise GalleryError(f"{index_path} is corrupt ({reason}); rebuild the gallery") from exc
        if index.ntotal != int(manifest["count"]) or index.d != int(manifest["dim"]):
            raise GalleryError(
                f"{index_path} holds {index.ntotal} vectors of dim {index.d} but {gf.MANIFEST} says "
                f"{manifest['count']} x {manifest['dim']}: the gallery files disagree; rebuild the gallery"
            )
        gi.apply_search_params(index, manifest.get("index_params") or {})
        gallery = cls(manifest, items, emb, index, folder)
        gallery._index_mmapped = mmap
        gallery._nested = gint.NestedFiles(folder, gint.FILE_LIST in table, hash_cache)
        return gallery

    def verify(self) -> None:
        """Re-hash every recorded file (no cache) and check the embeddings' content hash (reads all bytes)."""
        if self.folder is not None and "files" in self.manifest:
            table = gint.file_table(self.manifest, (), f"gallery {self.folder.name!r}")
            gint.verify_files(self.folder, table, gint.HashCache())
        actual = gf.embeddings_sha256(self.embeddings)
        if actual != self.manifest["embeddings_sha256"]:
            raise GalleryError(
                f"embeddings of gallery {self.name!r} at {self.folder} do not match the manifest's "
                f"embeddings_sha256 ({actual[:10]} != {self.manifest['embeddings_sha256'][:10]}): "
                "the files were modified or are corrupt; rebuild the gallery"
            )

    # ------------------------------------------------------------------ lookup
    @property
    def name(self) -> str:
        """Gallery name from the manifest."""
        return str(self.manifest["name"])

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.manifest["dim"])

    def __len__(self) -> int:
        return int(self.manifest["count"])

    def _ids(self) -> pd.Index:
        if self._row_index is None:
            index = pd.Index(self.items["id"].astype(str))
            if not index.is_unique:
                dup = index[index.duplicated()][:3].tolist()
                raise GalleryError(f"gallery {self.name!r} at {self.folder} has duplicate item ids, e.g. {dup}; "
                                   "rebuild the gallery")  # fmt: skip
            self._row_index = index
        return self._row_index

    def warm(self) -> None:
        """Build the lazy lookup structures (id index, id array) now, e.g. in a background thread after
        start, so the first search does not pay for them (~0.7 s at 1M items)."""
        self._ids()
        if self._id_array is None:
            self._id_array = np.asarray(self.items["id"].astype(str).to_numpy(dtype=object))

    def row_of(self, item_id: str) -> int:
        """Row of ``item_id``; KeyError when the gallery has no such item."""
        try:
            return int(self._ids().get_loc(str(item_id)))
        except KeyError:
            raise KeyError(f"item {item_id!r} is not in gallery {self.name!r}") from None

    def media_root(self) -> Path:
        """Folder that item ``media`` paths are relative to."""
        root = Path(self.manifest["media_root"])
        if not root.is_absolute() and self.folder is not None:
            root = self.folder / root
        return root

    def media_path(self, item_id: str) -> Path:
        """Path of an item's media file; GalleryError when it leaves the media root (``..``, an absolute path
        or a symlink in the items table: a gallery may only point at its own media)."""
        root = self.media_root()
        path = root / str(self.items["media"].iloc[self.row_of(item_id)])
        real_root = root.resolve()
        if real_root not in path.resolve().parents:
            raise GalleryError(f"gallery {self.name!r}: the media of item {item_id!r} lies outside its media folder")
        return path

    def thumbnail_path(self, item_id: str) -> Path | None:
        """Path of the item's thumbnail in the gallery folder when it is recorded and intact; None otherwise
        (no thumbnail, not listed in ``files.sha256``, damaged, or a symlink out of the folder)."""
        thumb = str(self.items["thumbnail"].iloc[self.row_of(item_id)] or "")
        if not thumb or self.folder is None:
            return None
        if self._nested is None:  # a gallery this process built and saved: its list was just written
            self._nested = gint.NestedFiles(self.folder, (self.folder / gint.FILE_LIST).is_file())
        return self._nested.verified(thumb)

    # ------------------------------------------------------------------ search
    def _same_video_rows(self, reference_id: str) -> np.ndarray:
        if self._video_groups is None:
            vids = pd.Series([webvid_video_id(i) for i in self.items["id"]])
            groups = vids.groupby(vids).groups.items()
            self._video_groups = {k: np.asarray(v, dtype=np.int64) for k, v in groups}
        return self._video_groups.get(webvid_video_id(reference_id), np.zeros(0, dtype=np.int64))

    def _excluded_rows(self, n: int, exclude_ids, exclude_same_video: bool, reference_ids) -> list[set[int]]:
        if exclude_ids is not None and len(exclude_ids) != n:
            raise ValueError(f"exclude_ids has {len(exclude_ids)} entries for {n} queries")
        if reference_ids is not None and len(reference_ids) != n:
            raise ValueError(f"reference_ids has {len(reference_ids)} entries for {n} queries")
        if exclude_same_video and reference_ids is None:
            raise ValueError("exclude_same_video needs reference_ids")
        ids = self._ids()
        out: list[set[int]] = []
        for i in range(n):
            wanted = [str(x) for x in (exclude_ids[i] if exclude_ids is not None else ())]
            if reference_ids is not None and reference_ids[i] is not None:
                wanted.append(str(reference_ids[i]))
            excluded = set()
            for item_id in wanted:  # get_loc per id: no per-call index construction (~1 ms saved)
                loc = ids.get_loc(item_id) if item_id in ids else None
                if isinstance(loc, (int, np.integer)):
                    excluded.add(int(loc))
            if exclude_same_video and reference_ids[i] is not None:
                excluded.update(self._same_video_rows(str(reference_ids[i])).tolist())
            out.append(excluded)
        return out

    def search(
        self,
        queries: Any,
        k: int = 10,
        exclude_ids: Sequence[Collection[str]] | None = None,
        exclude_same_video: bool = False,
        reference_ids: Sequence[str] | None = None,
        *,
        ef_search: int | None = None,
        nprobe: int | None = None,
        threads: int | None = None,
    ) -> SearchHits:
        """Top-``k`` items by inner product for [dim] or [N, dim] queries.

        Per query, excluded are the ids in ``exclude_ids[i]``, the reference item ``reference_ids[i]``
        (CoVR removes the reference), and with ``exclude_same_video`` every row whose video id (last path
        component of the id, as WebVid ``pth``) equals the reference's. The index is over-fetched by the
        largest exclusion so that k results remain. ``ef_search``/``nprobe`` tune approximate indexes;
        ``threads`` sets FAISS's OpenMP threads for this call (default: one thread for small searches).
        """
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries must be [N, {self.dim}], got shape {q.shape}")
        if k < 1:
            raise ValueError("k must be >= 1")
        n = len(q)
        excluded = self._excluded_rows(n, exclude_ids, exclude_same_video, reference_ids)
        extra = max((len(e) for e in excluded), default=0)
        fetch = min(k + extra, len(self))
        rows_out = np.full((n, k), -1, dtype=np.int64)
        scores_out = np.full((n, k), -np.inf, dtype=np.float32)
        ids_out: list[list[str]] = []
        if self._id_array is None:  # cached: converting 1M arrow strings takes tens of ms
            self._id_array = np.asarray(self.items["id"].astype(str).to_numpy(dtype=object))
        id_values = self._id_array
        if fetch > 0:
            scores, rows = gi.index_search(self.index, q, fetch, threads, ef_search=ef_search, nprobe=nprobe)
        for i in range(n):
            if fetch == 0:
                ids_out.append([])
                continue
            ex = excluded[i]
            keep = [j for j, row in enumerate(rows[i].tolist()) if row >= 0 and row not in ex][:k]
            r, s = rows[i][keep], scores[i][keep]
            rows_out[i, : len(r)] = r
            scores_out[i, : len(r)] = s
            ids_out.append([str(x) for x in id_values[r]])
        return SearchHits(ids=ids_out, scores=scores_out, rows=rows_out)

    def scores(self, queries: Any, chunk_rows: int = 262144) -> np.ndarray:
        """Exact [N, count] float32 inner products of queries with every item (for evaluation)."""
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if q.shape[1] != self.dim:
            raise ValueError(f"queries must be [N, {self.dim}], got shape {q.shape}")
        out = np.empty((len(q), len(self)), dtype=np.float32)
        for start in range(0, len(self), chunk_rows):
            block = np.asarray(self.embeddings[start : start + chunk_rows], dtype=np.float32)
            out[:, start : start + len(block)] = q @ block.T
        return out

    def __repr__(self) -> str:
        return (
            f"Gallery(name={self.name!r}, count={len(self)}, encoder={self.manifest['encoder']!r}, "
            f"index={self.manifest['index_type']!r}, folder={str(self.folder) if self.folder else None!r})"
        )


def _carry_extras(source: Path, dest: Path) -> None:
    """Hard-link (or copy) files of ``source`` that are not core gallery files into ``dest``."""
    for entry in source.iterdir():
        if entry.name in gf.CORE_FILES or entry.name.startswith(".") or (dest / entry.name).exists():
            continue
        if entry.is_dir():
            shutil.copytree(entry, dest / entry.name, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, dest / entry.name)


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
