"""Resumable part files under ``<out>/_parts/``: the source of truth of what a job has finished.

Layout:

- ``job.json``: what the job computes (kind ``gallery`` or ``queries``, name, dataset key, encoder, media root,
  item count, provenance) — written once, checked by every later run, worker and merge;
- ``plan.parquet``: every item of the job in dataset order (row ``i`` of the plan is item ``i``);
- ``part-<unit>-<seq>-<token>.npz``: one atomic flush of a unit of work (a chunk of at most ``--chunk-items``
  plan rows): ``rows`` (plan rows), the embedding arrays, ``records`` (a JSON list of per-item fields found
  while processing, e.g. duration), ``failed_rows`` and ``failed_reasons``;
- ``seg-<unit>-<seq>-<token>.npz``: the same content for a whole unit: when a unit finishes its parts are
  compacted into one segment, so a finished job holds one file per unit (2.5M items at 16,384 per unit:
  153 files) and a running one at most ``chunk_items / flush_every`` small parts per active unit.

Every file is written with one atomic rename and named with a per-writer token, so a SIGKILL loses at most
the items buffered since the last flush, two attempts of one unit (a Ray retry next to a lost worker) never
overwrite each other, and a rerun skips every row found in a file (failed rows too, unless
``--retry-failed``). A row found twice is kept once (the first file in name order wins).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from covr_core.atomic import atomic_write_bytes, atomic_write_json, cleanup_stale_temps

from .common import JobInputError

log = logging.getLogger(__name__)

PARTS_DIR = "_parts"
_FILE_RE = re.compile(r"^(?P<type>part|seg)-(?P<unit>[A-Za-z0-9]+)-(?P<seq>\d+)(?:-(?P<token>[0-9a-f]+))?\.npz$")
#: job.json keys that must match for a rerun, a worker or a merge to use existing parts
IDENTITY_KEYS = ("kind", "dataset_key", "encoder_name", "encoder_sha256")


class PlanMismatchError(JobInputError):
    """The output folder already holds parts of a different job."""


def plan_sha256(plan: pd.DataFrame) -> str:
    """sha256 of the plan's item ids in order (two runs with the same hash list the same items)."""
    h = hashlib.sha256()
    for start in range(0, len(plan), 65536):
        h.update("\n".join(plan["id"].iloc[start:start + 65536].astype(str)).encode("utf-8") + b"\n")
    return h.hexdigest()


@dataclass
class Part:
    """The contents of one part or segment file."""

    path: Path
    rows: np.ndarray
    arrays: dict[str, np.ndarray]
    records: list[dict]
    failed_rows: np.ndarray
    failed_reasons: list[str]


def read_part(path: Path, arrays: bool = True) -> Part:
    """Load one file (no pickle); ``arrays=False`` reads only the row lists (cheap: npz members are lazy)."""
    with np.load(path, allow_pickle=False) as z:
        embs = {k[2:]: z[k] for k in z.files if k.startswith("a_")} if arrays else {}
        records = json.loads(str(z["records"])) if arrays else []
        return Part(path=path, rows=z["rows"], arrays=embs, records=records, failed_rows=z["failed_rows"],
                    failed_reasons=[str(s) for s in z["failed_reasons"]])


def _payload(rows: Sequence[int], arrays: dict[str, np.ndarray], records: list[dict],
             failed: Sequence[tuple[int, str]]) -> bytes:
    payload = {f"a_{k}": np.ascontiguousarray(v) for k, v in arrays.items()}
    payload["rows"] = np.asarray(list(rows), dtype=np.int64)
    payload["records"] = np.array(json.dumps(records, default=_json_default))
    payload["failed_rows"] = np.asarray([r for r, _ in failed], dtype=np.int64)
    payload["failed_reasons"] = np.array([str(m) for _, m in failed] or [""])[: len(failed)]
    buf = io.BytesIO()
    np.savez(buf, **payload)
    return buf.getvalue()


class PartStore:
    """Reads and writes the part files of one output folder."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.dir = self.out / PARTS_DIR

    # -- plan ----------------------------------------------------------------------------------------
    def init_plan(self, job: dict, plan: pd.DataFrame) -> None:
        """Write ``job.json`` + ``plan.parquet`` (first run) or check they match (rerun / other shard)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for tmp in list(self.dir.glob(".*.tmp-*")):  # temp files of killed writers
            cleanup_stale_temps(self.dir / tmp.name[1:].split(".tmp-")[0])
        if self.exists():
            old_job = self.read_job()
            for key in IDENTITY_KEYS:
                if old_job.get(key) != job.get(key):
                    raise PlanMismatchError(
                        f"{self.out} already holds parts of another job ({key}: {old_job.get(key)!r} != "
                        f"{job.get(key)!r}); use a fresh --out or delete {self.dir}")
            old_sha = old_job.get("plan_sha256") or plan_sha256(self.read_plan(["id"]))  # older stores: no hash
            if old_sha != plan_sha256(plan):
                raise PlanMismatchError(f"{self.out} holds parts for a different item list "
                                        f"({old_job.get('count')} vs {len(plan)} items); use a fresh --out")
            return
        buf = io.BytesIO()
        plan.reset_index(drop=True).to_parquet(buf, index=False)
        atomic_write_bytes(self.dir / "plan.parquet", buf.getvalue())
        atomic_write_json(self.dir / "job.json", job)

    def read_job(self) -> dict:
        """The job description (``job.json``)."""
        return json.loads((self.dir / "job.json").read_text(encoding="utf-8"))

    def read_plan(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Every item of the job, in dataset order (optionally only ``columns``)."""
        return pd.read_parquet(self.dir / "plan.parquet", columns=list(columns) if columns else None)

    def exists(self) -> bool:
        """True when this folder holds a job plan."""
        return (self.dir / "job.json").exists() and (self.dir / "plan.parquet").exists()

    def remove(self) -> None:
        """Delete ``_parts/`` (after a successful merge: the output now holds everything)."""
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- files ---------------------------------------------------------------------------------------
    def files(self, unit: str | None = None, kind: str | None = None) -> list[Path]:
        """Part and segment files (of one ``unit`` / of one ``kind``: part, seg), sorted by name."""
        if not self.dir.is_dir():
            return []
        found = []
        for p in self.dir.iterdir():
            m = _FILE_RE.match(p.name)
            if m and (unit is None or m["unit"] == unit) and (kind is None or m["type"] == kind):
                found.append(p)
        return sorted(found, key=lambda p: p.name)

    def finished_rows(self, include_failed: bool = True, unit: str | None = None) -> set[int]:
        """Plan rows already computed (and failed ones unless ``include_failed=False``)."""
        done: set[int] = set()
        for path in self.files(unit):
            try:
                part = read_part(path, arrays=False)
            except FileNotFoundError:  # compacted away by a concurrent writer of the same unit
                continue
            done.update(part.rows.tolist())
            if include_failed:
                done.update(part.failed_rows.tolist())
        return done

    def finished_mask(self, n_plan: int, include_failed: bool = True) -> np.ndarray:
        """[n_plan] bool: True where a row is computed (or failed, unless ``include_failed=False``)."""
        mask = np.zeros(n_plan, dtype=bool)
        for path in self.files():
            try:
                part = read_part(path, arrays=False)
            except FileNotFoundError:
                continue
            mask[part.rows] = True
            if include_failed:
                mask[part.failed_rows] = True
        return mask

    def writer(self, unit: str) -> UnitWriter:
        """A writer of ``unit``'s files (a fresh token per writer)."""
        return UnitWriter(self, unit)


class UnitWriter:
    """Writes one unit's parts (``write_part``) and compacts them into one segment (``compact``)."""

    def __init__(self, store: PartStore, unit: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9]+", unit):
            raise ValueError(f"unit labels are alphanumeric, got {unit!r}")
        self.store, self.unit = store, unit
        self.token = secrets.token_hex(4)
        self.seq = 0

    def _path(self, kind: str) -> Path:
        self.seq += 1
        return self.store.dir / f"{kind}-{self.unit}-{self.seq:06d}-{self.token}.npz"

    def write_part(self, rows: Iterable[int], arrays: dict[str, np.ndarray], records: list[dict],
                   failed: Sequence[tuple[int, str]]) -> Path:
        """Write one part atomically; returns its path."""
        path = self._path("part")
        atomic_write_bytes(path, _payload(list(rows), arrays, records, failed))
        return path

    def compact(self) -> Path | None:
        """Join every small part of this unit (this writer's and earlier attempts') into one segment file.

        The segment is written before the parts are deleted, so a crash in between leaves duplicates
        (harmless: a row is kept once), never a gap. Returns the segment's path (None: nothing to join).
        """
        parts = []
        for path in self.store.files(self.unit, kind="part"):
            try:
                parts.append(read_part(path))
            except FileNotFoundError:  # a concurrent attempt of this unit compacted it
                continue
        if not parts:
            return None
        rows, arrays, records, failed = [], {}, [], []
        seen: set[int] = set()
        for part in parts:
            keep = [j for j, r in enumerate(part.rows.tolist()) if r not in seen]
            seen.update(part.rows[keep].tolist())
            rows.extend(part.rows[keep].tolist())
            records.extend(part.records[j] for j in keep)
            for k, v in part.arrays.items():
                arrays.setdefault(k, []).append(v[keep])
            failed.extend(zip(part.failed_rows.tolist(), part.failed_reasons))
        failed = [(r, m) for r, m in dict(failed).items() if r not in seen]
        joined = {k: np.concatenate(v) for k, v in arrays.items()}
        path = self._path("seg")
        atomic_write_bytes(path, _payload(rows, joined, records, failed))
        for part in parts:
            part.path.unlink(missing_ok=True)
        return path


# ------------------------------------------------------------------------------------------ streaming merge
@dataclass
class RowIndex:
    """Where each plan row lives: file number and position (-1: not computed), plus the failures."""

    files: list[Path]
    file_of: np.ndarray  #: int32 [n_plan]
    pos_of: np.ndarray  #: int32 [n_plan]
    failures: dict[int, str] = field(default_factory=dict)  #: failed rows that never succeeded
    duplicates: int = 0

    @property
    def done_rows(self) -> np.ndarray:
        """Computed plan rows, ascending."""
        return np.flatnonzero(self.file_of >= 0)


def scan(stores: Iterable[PartStore], n_plan: int) -> RowIndex:
    """Pass 1 of a merge: read only the row lists of every file (memory: 8 bytes per plan row)."""
    files: list[Path] = []
    file_of = np.full(n_plan, -1, dtype=np.int32)
    pos_of = np.full(n_plan, -1, dtype=np.int32)
    failures: dict[int, str] = {}
    duplicates = 0
    for store in stores:
        for path in store.files():
            part = read_part(path, arrays=False)
            rows = part.rows
            if len(rows) and (rows.min() < 0 or rows.max() >= n_plan):
                raise ValueError(f"{path} holds rows outside the plan (0..{n_plan - 1})")
            fresh = file_of[rows] < 0
            _, first = np.unique(rows, return_index=True)  # a row twice inside one file counts once
            once = np.zeros(len(rows), dtype=bool)
            once[first] = True
            keep = fresh & once
            duplicates += int(len(rows) - keep.sum())
            file_of[rows[keep]] = len(files)
            pos_of[rows[keep]] = np.flatnonzero(keep)
            for r, reason in zip(part.failed_rows.tolist(), part.failed_reasons):
                failures.setdefault(r, reason)
            files.append(path)
    failures = {r: m for r, m in sorted(failures.items()) if file_of[r] < 0}
    return RowIndex(files, file_of, pos_of, failures, duplicates)


def gather(index: RowIndex, outputs: dict[str, np.ndarray]) -> pd.DataFrame:
    """Pass 2: copy each computed row's arrays into ``outputs[name][k]`` (k = its rank among computed rows),
    one file at a time; returns the per-item records (one row per computed row, same order)."""
    done = index.done_rows
    owner = index.file_of[done]
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(len(index.files) + 1))
    frames = []
    for f, path in enumerate(index.files):
        dest = order[bounds[f]:bounds[f + 1]]
        if not len(dest):
            continue
        part = read_part(path)
        pos = index.pos_of[done[dest]]
        for name, out in outputs.items():
            out[dest] = part.arrays[name][pos]
        rec = pd.DataFrame([part.records[p] for p in pos.tolist()])
        rec.index = dest
        frames.append(rec)
    records = pd.concat(frames).sort_index() if frames else pd.DataFrame(index=pd.RangeIndex(0))
    return records.reset_index(drop=True)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)
