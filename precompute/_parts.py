"""Resumable, shardable part files under ``<out>/_parts/``.

Layout:

- ``job.json``: what the job computes (kind ``gallery`` or ``queries``, name, encoder, media root, item count,
  provenance) — written once, checked by every later run, shard and merge;
- ``plan.parquet``: every item of the job in dataset order (row ``i`` goes to shard ``i % num_shards``);
- ``part-<shard>-<seq>.npz``: one atomic flush: ``rows`` (plan rows), the embedding arrays, ``records`` (a JSON
  list of per-item fields found while processing, e.g. duration), ``failed_rows`` and ``failed_reasons``.

A part is written with one atomic rename, so a SIGKILL loses at most the items buffered since the last flush,
and a rerun skips every row found in a part (failed rows too, unless ``--retry-failed``).
"""

from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from covr_core.atomic import atomic_write_bytes, atomic_write_json, cleanup_stale_temps

log = logging.getLogger(__name__)

PARTS_DIR = "_parts"
_PART_RE = re.compile(r"^part-(\d+)-(\d+)\.npz$")


class PlanMismatchError(RuntimeError):
    """The output folder already holds parts of a different job."""


@dataclass
class Part:
    """The contents of one part file."""

    path: Path
    rows: np.ndarray
    arrays: dict[str, np.ndarray]
    records: list[dict]
    failed_rows: np.ndarray
    failed_reasons: list[str]


@dataclass
class Collected:
    """Every part of a job joined: one entry per finished row (first part wins), sorted by row."""

    rows: np.ndarray
    arrays: dict[str, np.ndarray]
    records: list[dict]
    failures: dict[int, str] = field(default_factory=dict)
    duplicates: int = 0


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
        ids = plan["id"].astype(str).tolist()
        if (self.dir / "job.json").exists() and (self.dir / "plan.parquet").exists():
            old_job = self.read_job()
            old_ids = self.read_plan()["id"].astype(str).tolist()
            for key in ("kind", "encoder_name", "encoder_sha256", "dataset_key"):
                if old_job.get(key) != job.get(key):
                    raise PlanMismatchError(
                        f"{self.out} already holds parts of another job ({key}: {old_job.get(key)!r} != "
                        f"{job.get(key)!r}); use a fresh --out or delete {self.dir}")
            if old_ids != ids:
                raise PlanMismatchError(f"{self.out} holds parts for a different item list "
                                        f"({len(old_ids)} vs {len(ids)} items); use a fresh --out")
            return
        buf = io.BytesIO()
        plan.reset_index(drop=True).to_parquet(buf, index=False)
        atomic_write_bytes(self.dir / "plan.parquet", buf.getvalue())
        atomic_write_json(self.dir / "job.json", job)

    def read_job(self) -> dict:
        """The job description (``job.json``)."""
        return json.loads((self.dir / "job.json").read_text(encoding="utf-8"))

    def read_plan(self) -> pd.DataFrame:
        """Every item of the job, in dataset order."""
        return pd.read_parquet(self.dir / "plan.parquet")

    def exists(self) -> bool:
        """True when this folder holds a job plan."""
        return (self.dir / "job.json").exists() and (self.dir / "plan.parquet").exists()

    # -- parts ---------------------------------------------------------------------------------------
    def part_paths(self) -> list[Path]:
        """Part files, sorted by (shard, sequence)."""
        if not self.dir.is_dir():
            return []
        found = []
        for p in self.dir.iterdir():
            m = _PART_RE.match(p.name)
            if m:
                found.append(((int(m.group(1)), int(m.group(2))), p))
        return [p for _, p in sorted(found)]

    def write_part(self, shard_id: int, rows: Iterable[int], arrays: dict[str, np.ndarray],
                   records: list[dict], failed: list[tuple[int, str]]) -> Path:
        """Write one part atomically; returns its path."""
        seqs = [int(_PART_RE.match(p.name).group(2)) for p in self.part_paths()
                if int(_PART_RE.match(p.name).group(1)) == shard_id]
        path = self.dir / f"part-{shard_id:04d}-{(max(seqs) + 1 if seqs else 0):06d}.npz"
        payload = {f"a_{k}": np.ascontiguousarray(v) for k, v in arrays.items()}
        payload["rows"] = np.asarray(list(rows), dtype=np.int64)
        payload["records"] = np.array(json.dumps(records, default=_json_default))
        payload["failed_rows"] = np.asarray([r for r, _ in failed], dtype=np.int64)
        payload["failed_reasons"] = np.array([str(m) for _, m in failed] or [""])[: len(failed)]
        buf = io.BytesIO()
        np.savez(buf, **payload)
        atomic_write_bytes(path, buf.getvalue())
        return path

    def iter_parts(self, arrays: bool = True) -> Iterator[Part]:
        """Yield every part (no pickle: string arrays are loaded with ``allow_pickle=False``).

        ``arrays=False`` skips the embeddings (enough to know which rows are finished).
        """
        for path in self.part_paths():
            with np.load(path, allow_pickle=False) as z:
                embs = {k[2:]: z[k] for k in z.files if k.startswith("a_")} if arrays else {}
                yield Part(path=path, rows=z["rows"], arrays=embs, records=json.loads(str(z["records"])),
                           failed_rows=z["failed_rows"], failed_reasons=[str(s) for s in z["failed_reasons"]])

    def finished_rows(self, include_failed: bool = True) -> set[int]:
        """Plan rows already computed (and failed ones unless ``include_failed=False``)."""
        done: set[int] = set()
        for part in self.iter_parts(arrays=False):
            done.update(int(r) for r in part.rows)
            if include_failed:
                done.update(int(r) for r in part.failed_rows)
        return done


def collect(stores: Iterable[PartStore]) -> Collected:
    """Join the parts of one or more folders: each row once (first occurrence wins), sorted by row.

    A row that failed in one part but succeeded in another (``--retry-failed``) counts as done.
    """
    seen: dict[int, tuple[dict[str, np.ndarray], int, dict]] = {}
    failures: dict[int, str] = {}
    duplicates = 0
    for store in stores:
        for part in store.iter_parts():
            for j, r in enumerate(part.rows.tolist()):
                if r in seen:
                    duplicates += 1
                    continue
                seen[r] = (part.arrays, j, part.records[j])
            for r, reason in zip(part.failed_rows.tolist(), part.failed_reasons):
                failures.setdefault(r, reason)
    rows = np.array(sorted(seen), dtype=np.int64)
    failures = {r: m for r, m in failures.items() if r not in seen}
    arrays: dict[str, np.ndarray] = {}
    if len(rows):
        names = next(iter(seen.values()))[0].keys()
        for name in names:
            arrays[name] = np.stack([seen[r][0][name][seen[r][1]] for r in rows.tolist()])
    return Collected(rows=rows, arrays=arrays, records=[seen[r][2] for r in rows.tolist()],
                     failures=dict(sorted(failures.items())), duplicates=duplicates)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)
