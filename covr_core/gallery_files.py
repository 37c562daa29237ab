"""Gallery folder files: validation of inputs, manifest checks, hashing and reading with clear errors.

What is checked when (``Gallery.load``; a 1M-item gallery must open in under 3 s when unchanged):

- the manifest: a JSON object (UTF-8) with every required key of the right type; a malformed one raises
  GalleryError (never AttributeError/UnicodeDecodeError), so a caller scanning many folders can skip it;
- every file the manifest lists (``covr_core.gallery_integrity``): present, inside the folder (no symlink
  out), its size, and its sha256 (cached by size, mtime, ctime and inode, so unchanged files are not
  re-read); files in ``thumbs/`` and ``frames/`` on first use;
- cheap consistency: ``embeddings.npy`` shape and dtype equal ``count``/``dim``/``dtype``; ``items.parquet``
  has ``count`` rows and the required columns; ``index.faiss`` has ``count`` vectors of ``dim``;
- on first use of the id index (``row_of``, ``search``): item ids are unique;
- ``Gallery.verify()``: every listed file re-hashed (no cache) and the embeddings' content hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from covr_core.json_file import read_json_object
from covr_core.types import EncoderInfo

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: per-file sha256 + size in manifest['files']
MANIFEST, EMBEDDINGS, ITEMS, INDEX = "manifest.json", "embeddings.npy", "items.parquet", "index.faiss"
CORE_FILES = (MANIFEST, EMBEDDINGS, ITEMS, INDEX)
ITEM_COLUMNS = ("id", "kind", "media", "caption", "split", "duration", "thumbnail")
KINDS = ("image", "video")
DTYPES = ("float32", "float16")
REQUIRED_MANIFEST_KEYS = (
    "name", "encoder", "encoder_version", "checkpoint", "checkpoint_sha256", "dim", "count", "normalised",
    "dtype", "index_type", "created", "package_version", "embeddings_sha256", "media_root", "provenance",
)  # fmt: skip
REBUILD_HINT = (
    "python -m precompute.gallery --dataset {dataset} --encoder {encoder} --out {folder} "
    "(plus the data flags, see --help)"
)


class GalleryError(RuntimeError):
    """A gallery folder is missing, corrupt or inconsistent, or an input to build/add is invalid."""


class GalleryMismatchError(GalleryError):
    """A gallery was built with a different encoder (name, version, dim or checkpoint) than the active one."""


def embeddings_sha256(emb: np.ndarray, chunk_rows: int = 65536) -> str:
    """sha256 (hex) of the raw array bytes in C order (chunked, so memory-mapped arrays stay on disk)."""
    h = hashlib.sha256()
    h.update(f"{emb.dtype.str}:{tuple(emb.shape)}".encode())
    for start in range(0, len(emb), chunk_rows):
        h.update(np.ascontiguousarray(emb[start : start + chunk_rows]).tobytes())
    return h.hexdigest()


def validate_embeddings(embeddings: Any, dim: int, normalize: bool, dtype: str) -> np.ndarray:
    """Check a 2-D finite [N, dim] array, L2-normalise or check norms, cast to ``dtype``."""
    if dtype not in DTYPES:
        raise GalleryError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    emb = np.asarray(embeddings)
    if emb.ndim != 2:
        raise GalleryError(f"embeddings must be 2-D [N, dim], got shape {emb.shape}")
    if emb.shape[1] != dim:
        raise GalleryError(f"embeddings have dim {emb.shape[1]} but the encoder's dim is {dim}")
    if not np.issubdtype(emb.dtype, np.floating):
        raise GalleryError(f"embeddings must be floating point, got {emb.dtype}")
    emb = emb.astype(np.float32, copy=False)
    if not np.isfinite(emb).all():
        bad = int((~np.isfinite(emb).all(axis=1)).sum())
        raise GalleryError(f"embeddings contain NaN or inf in {bad} row(s)")
    norms = np.linalg.norm(emb, axis=1)
    if normalize:
        if (norms == 0).any():
            raise GalleryError(f"{int((norms == 0).sum())} embedding row(s) are all zeros; cannot normalise")
        emb = emb / norms[:, None]
    elif len(emb) and np.abs(norms - 1).max() > 1e-2:
        raise GalleryError(
            f"embeddings are not L2-normalised (norms {norms.min():.4f}..{norms.max():.4f}); "
            "pass normalize=True to normalise them"
        )
    return np.ascontiguousarray(emb.astype(dtype))


def validate_items(items: Any, n_rows: int, existing_ids: pd.Index | None = None) -> pd.DataFrame:
    """Items table with all ITEM_COLUMNS (optional ones filled), ``n_rows`` rows, unique ids, valid kinds."""
    df = pd.DataFrame(items).reset_index(drop=True)
    for col in ("id", "kind", "media"):
        if col not in df.columns:
            raise GalleryError(f"items table lacks required column {col!r} (has {list(df.columns)})")
    if len(df) != n_rows:
        raise GalleryError(f"items table has {len(df)} rows but embeddings have {n_rows}")
    df["id"] = df["id"].astype(str)
    dup = df["id"][df["id"].duplicated()]
    if len(dup):
        raise GalleryError(f"{len(dup)} duplicate item id(s), e.g. {dup.iloc[:3].tolist()}")
    if existing_ids is not None:
        clash = df["id"][df["id"].isin(existing_ids)]
        if len(clash):
            examples = clash.iloc[:3].tolist()
            raise GalleryError(f"{len(clash)} item id(s) already in the gallery, e.g. {examples}")
    bad_kind = ~df["kind"].isin(KINDS)
    if bad_kind.any():
        raise GalleryError(f"item kind must be image or video, got {sorted(set(df['kind'][bad_kind]))[:3]}")
    for col in ("media", "caption", "split", "thumbnail"):
        df[col] = df[col].fillna("").astype(str) if col in df.columns else ""
    df["duration"] = pd.to_numeric(df["duration"], errors="coerce") if "duration" in df.columns else np.nan
    df["duration"] = df["duration"].astype("float64")
    extra = [c for c in df.columns if c not in ITEM_COLUMNS]
    return df[list(ITEM_COLUMNS) + extra]


def encoder_fields(info: EncoderInfo) -> dict[str, Any]:
    """The manifest fields that identify an encoder."""
    return {
        "encoder": info.name,
        "encoder_version": info.version,
        "checkpoint": info.checkpoint,
        "checkpoint_sha256": info.checkpoint_sha256,
        "dim": int(info.dim),
    }


def check_encoder(manifest: dict, expected: EncoderInfo, folder: Path | str) -> None:
    """Raise GalleryMismatchError when ``manifest`` was built by another encoder than ``expected``."""
    problems = []
    if manifest["encoder"] != expected.name:
        problems.append(f"encoder {manifest['encoder']!r} != active {expected.name!r}")
    if str(manifest["encoder_version"]) != str(expected.version):
        problems.append(f"encoder version {manifest['encoder_version']!r} != active {expected.version!r}")
    if int(manifest["dim"]) != int(expected.dim):
        problems.append(f"dim {manifest['dim']} != active {expected.dim}")
    sha_g, sha_e = manifest.get("checkpoint_sha256") or "", expected.checkpoint_sha256 or ""
    if sha_g and sha_e and sha_g != sha_e:
        problems.append(
            f"checkpoint {manifest['checkpoint']!r} (sha256 {sha_g[:10]}) != active "
            f"{expected.checkpoint!r} (sha256 {sha_e[:10]})"
        )
    elif not (sha_g and sha_e) and manifest.get("checkpoint") != expected.checkpoint:
        problems.append(f"checkpoint {manifest['checkpoint']!r} != active {expected.checkpoint!r}")
    if problems:
        raise GalleryMismatchError(
            f"gallery {manifest.get('name')!r} at {folder} was built with a different encoder: "
            + "; ".join(problems)
            + ". Its embeddings are not comparable with the active encoder's queries. Rebuild it with: "
            + REBUILD_HINT.format(dataset=_dataset_of(manifest), encoder=expected.name, folder=folder)
            + _original_command(manifest)
        )


def _dataset_of(manifest: dict) -> str:
    """The dataset a gallery was built from (its provenance), or a placeholder."""
    return str((manifest.get("provenance") or {}).get("dataset") or "{cirr,webvid,demo}")


def _original_command(manifest: dict) -> str:
    """'; it was built by: <command>' when the manifest records the command line."""
    command = (manifest.get("provenance") or {}).get("command")
    return f"; it was built by: {command}" if command else ""


def read_manifest(folder: Path) -> dict:
    """Read and check ``manifest.json`` (all keys present, sane values)."""
    path = folder / MANIFEST
    manifest = read_json_object(path, GalleryError, f"{folder} is not a gallery: {MANIFEST} is missing",
                                "rebuild the gallery")
    missing = [k for k in REQUIRED_MANIFEST_KEYS if k not in manifest]
    if missing:
        raise GalleryError(f"{path} lacks key(s) {missing}; rebuild the gallery")
    wrong = [f"{key} ({_TYPE_NAMES[kind]})" for key, kind in MANIFEST_TYPES.items()
             if key in manifest and not _is_type(manifest[key], kind)]  # fmt: skip
    if wrong:
        raise GalleryError(f"{path} has values of the wrong type: {', '.join(wrong)}; rebuild the gallery")
    if manifest["dtype"] not in DTYPES:
        raise GalleryError(f"{path}: unsupported dtype {manifest['dtype']!r}")
    if manifest["dim"] <= 0 or manifest["count"] < 0:
        raise GalleryError(f"{path}: dim must be > 0 and count >= 0")
    return manifest


#: Manifest keys and their JSON types (checked on load: a manifest from a download is untrusted input).
MANIFEST_TYPES: dict[str, type] = {
    "name": str, "encoder": str, "encoder_version": (str, int), "checkpoint": str, "checkpoint_sha256": str,
    "dim": int, "count": int, "normalised": bool, "dtype": str, "index_type": str, "created": str,
    "package_version": str, "embeddings_sha256": str, "media_root": str, "provenance": dict,
    "index_params": dict, "files": dict, "format_version": int,
}  # fmt: skip
_TYPE_NAMES = {str: "text", int: "a whole number", bool: "true/false", dict: "an object", (str, int): "text"}


def _is_type(value: Any, kind: Any) -> bool:
    if kind is int or kind == (str, int):  # bool is an int subclass: refuse it where a number is meant
        if isinstance(value, bool):
            return False
    return isinstance(value, kind)


def read_embeddings(folder: Path, manifest: dict, mmap: bool) -> np.ndarray:
    """Load ``embeddings.npy`` (memory-mapped by default) and check it against the manifest."""
    path = folder / EMBEDDINGS
    if not path.is_file():
        raise GalleryError(f"{path} is missing; rebuild the gallery")
    try:
        emb = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise GalleryError(f"{path} is corrupt or truncated ({exc}); rebuild the gallery") from exc
    expected = (int(manifest["count"]), int(manifest["dim"]))
    if emb.shape != expected or emb.dtype != np.dtype(manifest["dtype"]):
        raise GalleryError(
            f"{path} has shape {emb.shape} {emb.dtype} but {MANIFEST} says {expected} {manifest['dtype']}: "
            "the gallery files disagree; rebuild the gallery"
        )
    return emb


def read_items(folder: Path, manifest: dict) -> pd.DataFrame:
    """Load ``items.parquet`` and check its row count and columns."""
    path = folder / ITEMS
    if not path.is_file():
        raise GalleryError(f"{path} is missing; rebuild the gallery")
    try:
        items = pq.read_table(path).to_pandas()  # ~2x faster than pd.read_parquet for 1M string rows
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise GalleryError(f"{path} is corrupt ({type(exc).__name__}: {exc}); rebuild the gallery") from exc
    missing = [c for c in ITEM_COLUMNS if c not in items.columns]
    if missing:
        raise GalleryError(f"{path} lacks column(s) {missing}; rebuild the gallery")
    if len(items) != int(manifest["count"]):
        raise GalleryError(
            f"{path} has {len(items)} rows but {MANIFEST} says count={manifest['count']}: "
            "the gallery files disagree; rebuild the gallery"
        )
    # unique ids are checked at build/add; on load they are checked lazily when the id index is first
    # needed (Gallery.row_of / search), because hashing 1M ids here costs ~0.8 s of the 3 s start budget
    return items


def json_dump(obj: Any, path: Path) -> None:
    """Write ``obj`` as indented UTF-8 JSON (inside a temp folder that is swapped in atomically)."""
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
