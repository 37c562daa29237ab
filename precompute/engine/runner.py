"""The resumable loop of one unit of work: load batches, run the model, flush parts, compact, count."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .common import StageTimer, maybe_kill
from .parts import UnitWriter

log = logging.getLogger(__name__)

#: process(batch) -> (rows, {array name: [n, dim]}, records) for the good items of a loader batch
ProcessFn = Callable[[dict], "tuple[list[int], dict[str, np.ndarray], list[dict]]"]


@dataclass
class UnitResult:
    """What one unit did (returned by a local run or a Ray worker)."""

    unit: str
    done: int = 0
    failed: int = 0
    skipped: int = 0
    timing: dict[str, float] = field(default_factory=dict)


def run_unit(loader: torch.utils.data.DataLoader, process: ProcessFn, writer: UnitWriter, flush_every: int,
             timer: StageTimer, on_batch: Callable[[int], None] | None = None,
             on_flush: Callable[[int], None] | None = None) -> UnitResult:
    """Iterate ``loader``; write a part every ``flush_every`` finished items; compact the unit at the end.

    A SIGKILL loses at most the buffered items (fewer than ``flush_every`` plus one batch). ``on_batch(n)``
    is told about every batch, ``on_flush(n)`` about items durably written.
    """
    result = UnitResult(writer.unit)
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
            path = writer.write_part(buf_rows, arrays, buf_records, buf_failed)
        log.debug("wrote %s (%d items, %d failed)", path.name, len(buf_rows), len(buf_failed))
        if on_flush:
            on_flush(len(buf_rows) + len(buf_failed))
        buf_rows.clear(), buf_arrays.clear(), buf_records.clear(), buf_failed.clear()
        maybe_kill("flush")

    t_wait = time.perf_counter()
    for batch in loader:
        timer.seconds["decode_wait"] = timer.seconds.get("decode_wait", 0.0) + time.perf_counter() - t_wait
        for row, reason in batch["failed"]:
            log.warning("skipped row %d: %s", row, reason)
        buf_failed.extend(batch["failed"])
        result.failed += len(batch["failed"])
        if batch["rows"]:
            rows, arrays, records = process(batch)
            buf_rows.extend(rows)
            buf_records.extend(records)
            for k, v in arrays.items():
                buf_arrays.setdefault(k, []).append(np.asarray(v, dtype=np.float32))
            result.done += len(rows)
        n = len(batch["rows"]) + len(batch["failed"])
        processed += n
        if on_batch:
            on_batch(n)
        if len(buf_rows) + len(buf_failed) >= flush_every:
            flush()
        maybe_kill("item", processed)
        t_wait = time.perf_counter()
    flush()
    with timer("write"):
        writer.compact()
    result.timing = timer.rounded()
    return result
