"""The resumable loop shared by the embedding jobs: load batches, run the model, flush parts, count."""

from __future__ import annotations

import logging
import time
from typing import Callable

import numpy as np
import torch

from ._common import JobSummary, StageTimer, maybe_kill, progress
from ._parts import PartStore

log = logging.getLogger(__name__)

#: process(batch) -> (rows, {array name: [n, dim]}, records) for the good items of a loader batch
ProcessFn = Callable[[dict], "tuple[list[int], dict[str, np.ndarray], list[dict]]"]


def run_loop(loader: torch.utils.data.DataLoader, process: ProcessFn, store: PartStore, shard_id: int,
             flush_every: int, summary: JobSummary, desc: str, unit: str, timer: StageTimer) -> JobSummary:
    """Iterate ``loader``; buffer results; write a part every ``flush_every`` finished items and at the end.

    A SIGKILL loses at most the buffered items (fewer than ``flush_every`` plus one batch).
    """
    buf_rows: list[int] = []
    buf_arrays: dict[str, list[np.ndarray]] = {}
    buf_records: list[dict] = []
    buf_failed: list[tuple[int, str]] = []
    processed = 0

    def flush() -> None:
        if not buf_rows and not buf_failed:
            return
        with timer("write"):
            arrays = {k: np.concatenate(v) for k, v in buf_arrays.items()}
            path = store.write_part(shard_id, buf_rows, arrays, buf_records, buf_failed)
        log.debug("wrote %s (%d items, %d failed)", path.name, len(buf_rows), len(buf_failed))
        buf_rows.clear(), buf_arrays.clear(), buf_records.clear(), buf_failed.clear()
        maybe_kill("flush")

    bar = progress(len(loader.dataset), desc, unit)
    t_wait = time.perf_counter()
    try:
        for batch in loader:
            timer.seconds["decode_wait"] = timer.seconds.get("decode_wait", 0.0) + time.perf_counter() - t_wait
            for row, reason in batch["failed"]:
                log.warning("skipped row %d: %s", row, reason)
            buf_failed.extend(batch["failed"])
            summary.failed += len(batch["failed"])
            if batch["rows"]:
                rows, arrays, records = process(batch)
                buf_rows.extend(rows)
                buf_records.extend(records)
                for k, v in arrays.items():
                    buf_arrays.setdefault(k, []).append(np.asarray(v, dtype=np.float32))
                summary.done += len(rows)
            n = len(batch["rows"]) + len(batch["failed"])
            processed += n
            bar.update(n)
            if len(buf_rows) + len(buf_failed) >= flush_every:
                flush()
            maybe_kill("item", processed)
            t_wait = time.perf_counter()
        flush()
    finally:
        bar.close()
    return summary
