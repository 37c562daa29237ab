"""Join the part files of one or more shard folders into one gallery or queries file.

    python -m precompute.merge --out data/galleries/cirr-val                      # parts in OUT/_parts
    python -m precompute.merge --out data/galleries/cirr-val --inputs shard0/ shard1/   # one folder per shard

Every item of the job's plan appears exactly once, in dataset order; items that failed are listed in
``failures.csv``. Merging refuses (exit 1) while items are still missing, unless ``--allow-missing``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from covr_core.atomic import atomic_write_bytes, atomic_write_json, fsync_dir
from covr_core.types import EncoderInfo

from . import _common as C
from ._parts import Collected, PartStore, collect

log = logging.getLogger(__name__)

GALLERY_FILES_LAST = "manifest.json"
ITEM_COLUMNS = ("id", "kind", "media", "caption", "split", "duration", "thumbnail")


@dataclass
class MergeResult:
    """What ``finalize`` did."""

    complete: bool
    count: int = 0
    missing: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    duplicates: int = 0
    out: str = ""


def finalize(out: str | Path, inputs: Sequence[str | Path] | None = None, index_type: str | None = None,
             allow_missing: bool = False) -> MergeResult:
    """Merge the parts found under each input folder (default: ``out``) into ``out``."""
    out = Path(out)
    stores = [PartStore(p) for p in (inputs or [out])]
    stores = [s for s in stores if s.exists()]
    if not stores:
        raise FileNotFoundError(f"no job parts (_parts/job.json) under {', '.join(map(str, inputs or [out]))}")
    job, plan = stores[0].read_job(), stores[0].read_plan()
    for s in stores[1:]:
        other = s.read_job()
        for key in ("kind", "dataset_key", "encoder_name", "encoder_sha256"):
            if other.get(key) != job.get(key):
                raise ValueError(f"{s.out} holds a different job ({key}: {other.get(key)!r} != {job.get(key)!r})")
        if s.read_plan()["id"].astype(str).tolist() != plan["id"].astype(str).tolist():
            raise ValueError(f"{s.out} holds a different item list")
    col = collect(stores)
    ids = plan["id"].astype(str).tolist()
    accounted = set(col.rows.tolist()) | set(col.failures)
    missing = [ids[i] for i in range(len(plan)) if i not in accounted]
    failures = [(ids[r], reason) for r, reason in col.failures.items()]
    res = MergeResult(complete=False, count=len(col.rows), missing=missing, failures=failures,
                      duplicates=col.duplicates, out=str(out))
    if col.duplicates:
        log.info("ignored %d duplicate item(s) found in more than one part", col.duplicates)
    if missing and not allow_missing:
        log.warning("%d of %d items not computed yet (e.g. %s): run the missing shards, then merge again",
                    len(missing), len(plan), ", ".join(missing[:3]))
        return res
    if not len(col.rows):
        raise RuntimeError(f"no item could be computed ({len(failures)} failed); see the failure log")
    out.mkdir(parents=True, exist_ok=True)
    C.maybe_kill("finalize")
    C.write_failures(out / "failures.csv", failures)
    if job["kind"] == "gallery":
        _finalize_gallery(out, stores, job, plan, col, index_type or job.get("index_type", "flat"))
    elif job["kind"] == "queries":
        _finalize_queries(out, job, plan, col)
    else:
        raise ValueError(f"unknown job kind {job['kind']!r}")
    C.maybe_kill("finalized")
    res.complete = True
    log.info("merged %d items (%d failed, %d missing) into %s", len(col.rows), len(failures), len(missing), out)
    return res


def _items_table(plan: pd.DataFrame, col: Collected) -> pd.DataFrame:
    items = plan.iloc[col.rows].reset_index(drop=True).copy()
    extra = pd.DataFrame(col.records)
    for c in extra.columns:
        if c == "n_frames":
            continue
        values = extra[c]
        items[c] = values.where(values.notna(), items[c]) if c in items else values
    if "thumbnail" not in items:
        items["thumbnail"] = ""
    items["thumbnail"] = items["thumbnail"].fillna("").astype(str)
    items["duration"] = pd.to_numeric(items["duration"], errors="coerce").astype("float64")
    keep = list(ITEM_COLUMNS) + (["frames"] if "frames" in items else [])
    if "frames" in items:
        items["frames"] = items["frames"].fillna("").astype(str)
    return items[keep]


def _finalize_gallery(out: Path, stores: list[PartStore], job: dict, plan: pd.DataFrame, col: Collected,
                      index_type: str) -> None:
    from covr_core.gallery import Gallery

    items = _items_table(plan, col)
    for s in stores:  # thumbnails written by other shard folders
        if s.out.resolve() != out.resolve():
            for sub in ("thumbs", "frames"):
                if (s.out / sub).is_dir():
                    shutil.copytree(s.out / sub, out / sub, dirs_exist_ok=True)
    prov = dict(job.get("provenance", {}))
    prov.update(merged_from=[str(s.out) for s in stores], failed=len(col.failures),
                merge_command=C.provenance().get("command"))
    gallery = Gallery.build(col.arrays["emb"].astype(np.float32), items, EncoderInfo(**job["encoder"]),
                            name=job["name"], media_root=job["media_root"], index_type=index_type,
                            provenance=prov)
    stage = out / "_parts" / "_final"
    shutil.rmtree(stage, ignore_errors=True)
    gallery.save(stage)
    _move_files_in(stage, out)
    Gallery.record_files(out)  # thumbnails and frame strips written by the workers get their hashes too


def _move_files_in(stage: Path, out: Path) -> None:
    """Move the staged gallery files into ``out`` (manifest last: a manifest means a complete gallery)."""
    names = sorted(p.name for p in stage.iterdir() if p.is_file())
    if GALLERY_FILES_LAST in names:
        names.remove(GALLERY_FILES_LAST)
        (out / GALLERY_FILES_LAST).unlink(missing_ok=True)  # a half-replaced gallery must not look complete
        names.append(GALLERY_FILES_LAST)
    for n in names:
        os.replace(stage / n, out / n)
    for p in stage.iterdir():  # sub-folders written by save (none expected) keep their place
        if p.is_dir():
            shutil.copytree(p, out / p.name, dirs_exist_ok=True)
    shutil.rmtree(stage, ignore_errors=True)
    fsync_dir(out)


def _finalize_queries(out: Path, job: dict, plan: pd.DataFrame, col: Collected) -> None:
    from .queries import QUERY_COLUMNS

    table = plan.iloc[col.rows].reset_index(drop=True)
    table = table[[c for c in QUERY_COLUMNS if c in table]]
    (out / "manifest.json").unlink(missing_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **{k: col.arrays[k].astype(np.float32) for k in ("f_mm", "f_img", "f_txt")})
    atomic_write_bytes(out / "queries.npz", buf.getvalue())
    pbuf = io.BytesIO()
    table.to_parquet(pbuf, index=False)
    atomic_write_bytes(out / "queries.parquet", pbuf.getvalue())
    enc = job["encoder"]
    atomic_write_json(out / "manifest.json", {
        "name": job["name"], "kind": "queries", "encoder": enc["name"], "encoder_version": enc["version"],
        "checkpoint": enc["checkpoint"], "checkpoint_sha256": enc["checkpoint_sha256"], "dim": enc["dim"],
        "count": int(len(table)), "planned": int(len(plan)), "failed": len(col.failures), "normalised": True,
        "dtype": "float32", "dataset": job.get("dataset_key"), "created": C.provenance()["created"],
        "package_version": C.package_versions().get("covr-explorer", ""),
        "queries_sha256": C.sha256_file(out / "queries.npz"), "media_root": job.get("media_root", ""),
        "provenance": job.get("provenance", {})})


def load_queries(folder: str | Path) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict]:
    """Read a queries folder: (table, {f_mm, f_img, f_txt}, manifest); rows aligned."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    table = pd.read_parquet(folder / "queries.parquet")
    with np.load(folder / "queries.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in ("f_mm", "f_img", "f_txt")}
    if any(len(a) != len(table) for a in arrays.values()):
        raise ValueError(f"{folder}: queries.npz and queries.parquet disagree on the row count")
    return table, arrays, manifest


def run(*, out: str, inputs: Sequence[str] | None = None, index_type: str | None = None,
        allow_missing: bool = False, **_: object) -> MergeResult:
    """Merge shard outputs into ``out`` (see module docstring)."""
    res = finalize(out, inputs or None, index_type=index_type, allow_missing=allow_missing)
    log.info("done=%d skipped=0 failed=%d missing=%d complete=%s out=%s", res.count, len(res.failures),
             len(res.missing), res.complete, res.out)
    return res


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags of ``python -m precompute.merge``."""
    p = C.make_parser("python -m precompute.merge", __doc__)
    p.add_argument("--out", required=True, help="the merged gallery / queries folder")
    p.add_argument("--inputs", nargs="*", default=None,
                   help="job folders whose _parts to merge (default: OUT itself)")
    p.add_argument("--index-type", choices=("flat", "hnsw", "ivf"), default=None,
                   help="FAISS index type (default: the one the job was started with)")
    p.add_argument("--allow-missing", action="store_true", help="merge even if some items were never computed")
    C.add_log_arg(p)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit code 1 when items are missing."""
    args = parse_args(argv)
    C.setup_logging(args.log_level)
    return 0 if run(**vars(args)).complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
