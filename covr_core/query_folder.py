"""A queries folder: the three query embeddings of every triplet of a split, its table and a manifest.

Folder layout (docs/ARCHITECTURE.md), written by ``precompute.queries`` (through ``precompute.merge``):

- ``queries.npz``: arrays ``f_mm, f_img, f_txt`` (:data:`ARRAYS`), each [count, dim] float32, row-aligned with
- ``queries.parquet``: ``query_id`` (CIRR pairid or WebVid CSV row), ``reference``, ``target``, ``caption`` and
  CIRR's ``members`` / ``target_soft`` as JSON text (:data:`COLUMNS`; other columns are kept as they are);
- ``manifest.json``: name, encoder identity, ``dim``, ``count`` and provenance (:data:`REQUIRED_MANIFEST_KEYS`).

The folder may hold more (``failures.csv`` and ``_parts/`` of the job, ``umap.parquet`` of the map job): ``save``
writes its three files in place and leaves the others alone. ``save`` removes the manifest first and writes it
last, after the arrays (streamed from memory maps, fsynced) and the table: a folder with a manifest is complete.
``load`` treats the folder as untrusted input (a download, a hand-made fixture): every mismatch between the
files and the manifest raises :class:`QueryFolderError` (a ``ValueError``) naming the file and the fix.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

import covr_core
from covr_core.atomic import atomic_open, atomic_write_json, cleanup_stale_temps, fsync_dir
from covr_core.gallery_integrity import file_sha256
from covr_core.json_file import read_json_object
from covr_core.types import EMBEDDING_NAMES, EncoderInfo, QueryEmbeddings

__all__ = ["QueryFolderError", "QuerySet"]

ARRAYS_FILE, TABLE_FILE, MANIFEST_FILE = "queries.npz", "queries.parquet", "manifest.json"
ARRAYS: tuple[str, str, str] = EMBEDDING_NAMES  #: array names in ``queries.npz``
COLUMNS = ("query_id", "reference", "target", "caption", "members", "target_soft")  #: columns the jobs write
REQUIRED_COLUMNS = ("query_id", "reference")  #: columns every reader relies on
REQUIRED_MANIFEST_KEYS = ("name", "encoder", "encoder_version", "checkpoint", "checkpoint_sha256", "dim", "count")
KIND = "queries"  #: the manifest's ``kind``
REBUILD_HINT = "recompute it with python -m precompute.queries (see --help)"
_CHECK_ROWS = 65536  #: rows per block when scanning arrays for NaN / inf


class QueryFolderError(ValueError):
    """A queries folder is missing, damaged or inconsistent, or an input to ``build`` is invalid."""


@dataclass
class QuerySet:
    """The queries of one split: embeddings (``emb``) row-aligned with ``table``, plus the ``manifest``."""

    emb: QueryEmbeddings
    table: pd.DataFrame
    manifest: dict
    folder: Path | None = None

    # ------------------------------------------------------------------ build / save
    @classmethod
    def build(
        cls,
        embeddings: QueryEmbeddings | Mapping[str, np.ndarray],
        table: pd.DataFrame,
        encoder: EncoderInfo,
        name: str,
        *,
        planned: int | None = None,
        failed: int = 0,
        dataset: str | None = None,
        media_root: str = "",
        provenance: dict | None = None,
    ) -> QuerySet:
        """A query set from [N, dim] ``f_mm, f_img, f_txt`` (a ``QueryEmbeddings`` or a mapping; memory maps
        stay on disk) and an N-row table holding at least :data:`REQUIRED_COLUMNS`.

        ``planned`` / ``failed``: how many queries the job planned and how many failed (default: N and 0);
        ``provenance``: what made the set (its ``benchmark`` key is also recorded at the top level)."""
        n = len(table)
        arrays = {k: _float32(a, k) for k, a in _as_mapping(embeddings).items()}
        for key, a in arrays.items():
            _check_array(a, key, (n, int(encoder.dim)), "the table's rows x the encoder's dim")
        _check_columns(table.columns, REQUIRED_COLUMNS, "the table")
        prov = dict(provenance or {})
        manifest: dict[str, Any] = {
            "name": name, "kind": KIND, "encoder": encoder.name, "encoder_version": encoder.version,
            "checkpoint": encoder.checkpoint, "checkpoint_sha256": encoder.checkpoint_sha256, "dim": int(encoder.dim),
            "count": n, "planned": n if planned is None else int(planned), "failed": int(failed), "normalised": True,
            "dtype": "float32", "dataset": dataset, "benchmark": prov.get("benchmark"),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "package_version": covr_core.__version__,
            "queries_sha256": None, "media_root": str(media_root), "provenance": prov,
        }  # fmt: skip
        emb = QueryEmbeddings(*(arrays[k] for k in ARRAYS))
        return cls(emb=emb, table=table.reset_index(drop=True), manifest=manifest)

    def save(self, folder: str | Path) -> None:
        """Write ``queries.npz``, ``queries.parquet`` and ``manifest.json`` into ``folder`` (other files stay).

        The manifest is removed first and written last, each file goes through a temp sibling (fsync, rename),
        and the arrays are streamed (numpy's zip writer, 16 MiB blocks), so memory-mapped inputs of any size
        never sit in memory and a crash never leaves a manifest beside half-written files."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in (ARRAYS_FILE, TABLE_FILE, MANIFEST_FILE):
            cleanup_stale_temps(folder / name)  # temp files of a writer that was killed
        (folder / MANIFEST_FILE).unlink(missing_ok=True)
        with atomic_open(folder / ARRAYS_FILE) as fh:
            np.savez(fh, **self.arrays())
        with atomic_open(folder / TABLE_FILE) as fh:
            self.table.to_parquet(fh, index=False)
        self.manifest["queries_sha256"] = file_sha256(folder / ARRAYS_FILE)
        atomic_write_json(folder / MANIFEST_FILE, self.manifest)
        fsync_dir(folder)
        self.folder = folder

    # ------------------------------------------------------------------ load
    @staticmethod
    def exists(folder: str | Path) -> bool:
        """True when ``folder`` holds a finished queries folder (arrays and manifest; checked on ``load``)."""
        folder = Path(folder)
        return (folder / ARRAYS_FILE).is_file() and (folder / MANIFEST_FILE).is_file()

    @classmethod
    def load(cls, folder: str | Path) -> QuerySet:
        """Open a queries folder and check it: manifest keys and types, the table's columns and row count,
        the three arrays' names, shapes ([count, dim]), dtype (float32) and values (finite); no pickles."""
        folder = Path(folder)
        manifest = read_manifest(folder)
        table = read_table(folder, manifest)
        count, dim = manifest["count"], manifest["dim"]
        path = folder / ARRAYS_FILE
        if not path.is_file():
            raise QueryFolderError(f"{path} is missing; {REBUILD_HINT}")
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in ARRAYS if k not in z.files]
                if missing:
                    raise QueryFolderError(f"{path} lacks array(s) {missing}; {REBUILD_HINT}")
                arrays = {k: z[k] for k in ARRAYS}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            if isinstance(exc, QueryFolderError):
                raise
            raise QueryFolderError(f"{path} is corrupt or not plain arrays ({exc}); {REBUILD_HINT}") from exc
        for key, a in arrays.items():
            _check_array(a, f"{path}[{key}]", (count, dim), f"count x dim of {MANIFEST_FILE}; {REBUILD_HINT}")
        emb = QueryEmbeddings(*(np.ascontiguousarray(arrays[k]) for k in ARRAYS))
        return cls(emb=emb, table=table, manifest=manifest, folder=folder)

    # ------------------------------------------------------------------ use
    def __len__(self) -> int:
        return len(self.table)

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.emb.f_mm.shape[1])

    def arrays(self) -> dict[str, np.ndarray]:
        """``{f_mm, f_img, f_txt}`` (the arrays of ``queries.npz``)."""
        return {k: getattr(self.emb, k) for k in ARRAYS}

    def take(self, rows: Sequence[int] | np.ndarray) -> QuerySet:
        """The queries at these row positions (embeddings and table stay aligned; same manifest and folder)."""
        rows = np.asarray(rows)
        emb = QueryEmbeddings(*(np.ascontiguousarray(a[rows]) for a in self.arrays().values()))
        return QuerySet(emb=emb, table=self.table.iloc[rows].reset_index(drop=True), manifest=self.manifest,
                        folder=self.folder)  # fmt: skip


def read_manifest(folder: Path) -> dict:
    """``manifest.json`` of a queries folder, checked: a JSON object with :data:`REQUIRED_MANIFEST_KEYS`,
    a whole ``dim`` > 0 and ``count`` >= 0, ``kind`` (when given) ``queries`` and ``dtype`` (when given) float32."""
    path = Path(folder) / MANIFEST_FILE
    manifest = read_json_object(
        path, QueryFolderError, f"{folder} is not a finished queries folder: {MANIFEST_FILE} is missing; {REBUILD_HINT}",
        REBUILD_HINT)
    missing = [k for k in REQUIRED_MANIFEST_KEYS if k not in manifest]
    if missing:
        raise QueryFolderError(f"{path} lacks key(s) {missing}; {REBUILD_HINT}")
    for key, low in (("dim", 1), ("count", 0)):
        value = manifest[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise QueryFolderError(f"{path}: {key} must be a whole number >= {low}, got {value!r}")
    if manifest.get("kind", KIND) != KIND:
        raise QueryFolderError(f"{path}: kind is {manifest['kind']!r}, not {KIND!r}: not a queries folder")
    if manifest.get("dtype", "float32") != "float32":
        raise QueryFolderError(f"{path}: dtype {manifest['dtype']!r} is not supported (float32 only)")
    return manifest


def read_table(folder: str | Path, manifest: dict | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """``queries.parquet`` of a queries folder (only ``columns`` when given), checked against its manifest:
    readable, :data:`REQUIRED_COLUMNS` (or the asked ones) present, ``count`` rows. Reads no embeddings."""
    folder = Path(folder)
    manifest = read_manifest(folder) if manifest is None else manifest
    path = folder / TABLE_FILE
    if not path.is_file():
        raise QueryFolderError(f"{path} is missing; {REBUILD_HINT}")
    try:
        names = pq.read_schema(path).names
        _check_columns(names, columns or REQUIRED_COLUMNS, str(path))
        table = pq.read_table(path, columns=list(columns) if columns else None).to_pandas()
    except QueryFolderError:
        raise
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise QueryFolderError(f"{path} is corrupt ({type(exc).__name__}: {exc}); {REBUILD_HINT}") from exc
    if len(table) != manifest["count"]:
        raise QueryFolderError(f"{path} has {len(table)} rows but {MANIFEST_FILE} says count={manifest['count']}: "
                               f"the files disagree; {REBUILD_HINT}")  # fmt: skip
    return table


def _as_mapping(embeddings: QueryEmbeddings | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if isinstance(embeddings, QueryEmbeddings):
        return {k: getattr(embeddings, k) for k in ARRAYS}
    missing = [k for k in ARRAYS if k not in embeddings]
    if missing:
        raise QueryFolderError(f"query embeddings lack {missing}")
    return {k: embeddings[k] for k in ARRAYS}


def _float32(a: Any, what: str) -> np.ndarray:
    """``a`` as a float32 array (float32 arrays and memory maps as they are, other floats cast)."""
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise QueryFolderError(f"{what} must be floating point, got {a.dtype}")
    return a if a.dtype == np.float32 else a.astype(np.float32)


def _check_columns(names: Sequence[str], required: Sequence[str], what: str) -> None:
    missing = [c for c in required if c not in set(names)]
    if missing:
        raise QueryFolderError(f"{what} lacks column(s) {missing}")


def _check_array(a: np.ndarray, what: str, shape: tuple[int, int], expected: str) -> None:
    """Refuse anything but a finite float32 array of ``shape`` (``expected`` says where the shape comes from)."""
    if a.shape != shape or a.dtype != np.float32:
        raise QueryFolderError(f"{what} is {a.dtype} {a.shape}, expected float32 {shape} ({expected})")
    for start in range(0, len(a), _CHECK_ROWS):  # blocks: a memory-mapped input stays on disk
        if not np.isfinite(a[start : start + _CHECK_ROWS]).all():
            raise QueryFolderError(f"{what} holds NaN or inf values")
