"""Join the part files of one or more shard folders into one gallery or queries file, streaming.

    python -m precompute.merge --out data/galleries/cirr-val                      # parts in OUT/_parts
    python -m precompute.merge --out data/galleries/cirr-val --inputs shard0/ shard1/   # one folder per shard

Every item of the job's plan appears exactly once, in dataset order; items that failed are listed in
``failures.csv``. Merging refuses (exit 1) while items are still missing, unless ``--allow-missing``, and
while a shard of the job is still running (the folders' locks). The parts are read twice, one file at a
time: first only their row lists (8 bytes per item), then their arrays straight into a memory-mapped
output, so memory does not grow with the number or size of the part files. After a successful merge the
inputs' ``_parts/`` folders are deleted (``--keep-parts`` keeps them).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from covr_core import query_folder as qf
from covr_core.atomic import fsync_dir
from covr_core.gallery import Gallery
from covr_core.query_folder import QuerySet
from covr_core.types import EncoderInfo

from .engine import common as C
from .engine.lock import job_lock
from .engine.parts import IDENTITY_KEYS, PartStore, RowIndex, gather, plan_sha256, scan

log = logging.getLogger(__name__)

GALLERY_FILES_LAST = "manifest.json"
ITEM_COLUMNS = ("id", "kind", "media", "caption", "split", "duration", "thumbnail")
STAGE = "_final"


@dataclass
class MergeResult:
    """What ``finalize`` did."""

    complete: bool
    count: int = 0
    missing: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    duplicates: int = 0
    out: str = ""


def _open_stores(out: Path, inputs: Sequence[str | Path] | None) -> list[PartStore]:
    stores = [s for s in (PartStore(p) for p in (inputs or [out])) if s.exists()]
    if not stores:
        raise FileNotFoundError(f"no job parts (_parts/job.json) under {', '.join(map(str, inputs or [out]))}")
    job = stores[0].read_job()
    sha = job.get("plan_sha256") or plan_sha256(stores[0].read_plan(["id"]))
    for s in stores[1:]:
        other = s.read_job()
        for key in IDENTITY_KEYS:
            if other.get(key) != job.get(key):
                raise ValueError(f"{s.out} holds a different job ({key}: {other.get(key)!r} != {job.get(key)!r})")
        if (other.get("plan_sha256") or plan_sha256(s.read_plan(["id"]))) != sha:
            raise ValueError(f"{s.out} holds a different item list")
    return stores


def finalize(out: str | Path, inputs: Sequence[str | Path] | None = None, index_type: str | None = None,
             allow_missing: bool = False) -> MergeResult:
    """Merge the parts found under each input folder (default: ``out``) into ``out`` (the caller holds the
    folders' locks: the jobs do, ``run`` takes them)."""
    out = Path(out)
    stores = _open_stores(out, inputs)
    job, plan = stores[0].read_job(), stores[0].read_plan()
    index = scan(stores, len(plan))
    ids = plan["id"].astype(str)
    accounted = index.file_of >= 0
    accounted[list(index.failures)] = True
    missing = ids[~accounted].tolist()
    failures = [(ids.iat[r], reason) for r, reason in index.failures.items()]
    res = MergeResult(complete=False, count=len(index.done_rows), missing=missing, failures=failures,
                      duplicates=index.duplicates, out=str(out))
    if index.duplicates:
        log.info("ignored %d duplicate item(s) found in more than one part", index.duplicates)
    if missing and not allow_missing:
        log.warning("%d of %d items not computed yet (e.g. %s): run the missing shards, then merge again",
                    len(missing), len(plan), ", ".join(missing[:3]))
        return res
    if not res.count:
        raise RuntimeError(f"no item could be computed ({len(failures)} failed); see the failure log")
    out.mkdir(parents=True, exist_ok=True)
    C.maybe_kill("finalize")
    C.write_failures(out / "failures.csv", failures)
    stage = out / "_parts" / STAGE
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        FINALIZERS[job["kind"]](out, stage, stores, job, plan, index, index_type or job.get("index_type", "flat"))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    C.maybe_kill("finalized")
    res.complete = True
    log.info("merged %d items (%d failed, %d missing) into %s", res.count, len(failures), len(missing), out)
    return res


def _gather_to_disk(stage: Path, index: RowIndex, names: Sequence[str], dim: int) -> tuple[dict, pd.DataFrame]:
    """Every computed row's arrays in memory-mapped ``[n, dim]`` float32 files under ``stage``."""
    n = len(index.done_rows)
    arrays = {k: np.lib.format.open_memmap(stage / f"{k}.npy", mode="w+", dtype=np.float32, shape=(n, dim))
              for k in names}
    records = gather(index, arrays)
    for a in arrays.values():
        a.flush()
    return arrays, records


def _items_table(plan: pd.DataFrame, rows: np.ndarray, records: pd.DataFrame) -> pd.DataFrame:
    items = plan.iloc[rows].reset_index(drop=True).copy()
    for c in records.columns:
        if c == "n_frames":
            continue
        values = records[c]
        items[c] = values.where(values.notna(), items[c]) if c in items else values
    if "thumbnail" not in items:
        items["thumbnail"] = ""
    items["thumbnail"] = items["thumbnail"].fillna("").astype(str)
    items["duration"] = pd.to_numeric(items["duration"], errors="coerce").astype("float64")
    keep = list(ITEM_COLUMNS) + (["frames"] if "frames" in items else [])
    if "frames" in items:
        items["frames"] = items["frames"].fillna("").astype(str)
    return items[keep]


def _finalize_gallery(out: Path, stage: Path, stores: list[PartStore], job: dict, plan: pd.DataFrame,
                      index: RowIndex, index_type: str) -> None:
    arrays, records = _gather_to_disk(stage, index, ["emb"], int(job["encoder"]["dim"]))
    items = _items_table(plan, index.done_rows, records)
    for s in stores:  # thumbnails written by other shard folders
        if s.out.resolve() != out.resolve():
            for sub in ("thumbs", "frames"):
                if (s.out / sub).is_dir():
                    shutil.copytree(s.out / sub, out / sub, dirs_exist_ok=True)
    prov = dict(job.get("provenance", {}))
    prov.update(merged_from=[str(s.out) for s in stores], failed=len(index.failures),
                merge_command=C.provenance().get("command"))
    gallery = Gallery.build(arrays.pop("emb"), items, EncoderInfo(**job["encoder"]), name=job["name"],
                            media_root=job["media_root"], index_type=index_type, provenance=prov)
    gallery.save(stage / "gallery")
    _move_files_in(stage / "gallery", out)
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
    fsync_dir(out)


def _finalize_queries(out: Path, stage: Path, stores: list[PartStore], job: dict, plan: pd.DataFrame,
                      index: RowIndex, index_type: str) -> None:
    arrays, _ = _gather_to_disk(stage, index, qf.ARRAYS, int(job["encoder"]["dim"]))
    table = plan.iloc[index.done_rows].reset_index(drop=True)
    table = table[[c for c in qf.COLUMNS if c in table]]
    queries = QuerySet.build(arrays, table, EncoderInfo(**job["encoder"]), job["name"], planned=len(plan),
                             failed=len(index.failures), dataset=job.get("dataset_key"),
                             media_root=job.get("media_root", ""), provenance=job.get("provenance", {}))
    queries.save(out)  # streamed from the memory maps under stage


#: job kind -> writer of its final output
FINALIZERS: dict[str, Callable[..., None]] = {"gallery": _finalize_gallery, "queries": _finalize_queries}


def run(*, out: str, inputs: Sequence[str] | None = None, index_type: str | None = None,
        allow_missing: bool = False, keep_parts: bool = False, log_level: str = "INFO") -> MergeResult:
    """Merge shard outputs into ``out`` (see module docstring); holds every folder's lock meanwhile."""
    folders = list(dict.fromkeys(Path(p) for p in (inputs or [out])))
    with contextlib.ExitStack() as stack:
        for folder in dict.fromkeys([Path(out), *folders]):
            stack.enter_context(job_lock(PartStore(folder).dir))
        res = finalize(out, inputs or None, index_type=index_type, allow_missing=allow_missing)
        if res.complete and not keep_parts:
            for folder in dict.fromkeys([Path(out), *folders]):
                PartStore(folder).remove()
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
    p.add_argument("--keep-parts", action="store_true",
                   help="keep the inputs' _parts/ after a successful merge (by default they are deleted)")
    C.add_log_arg(p)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit code 1 when items are missing."""
    args = parse_args(argv)
    C.setup_logging(args.log_level)
    return 0 if run(**vars(args)).complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
