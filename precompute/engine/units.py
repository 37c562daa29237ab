"""Units of work of the embedding jobs and the runner that computes them (here or in a Ray worker).

An :class:`EmbeddingKind` (``precompute.gallery.GALLERY``, ``precompute.queries.QUERIES``) says what differs
between the jobs: which items to list, how a worker reads them (a torch Dataset) and what the model computes
per batch. A :class:`Unit` is a chunk of at most ``--chunk-items`` plan rows, aligned to whole batches so an
item meets the same batch whether the job runs in one process or on a cluster (bit-identical embeddings);
it is one Ray task and, once finished, one compacted part file.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from covr_core.datasets import DatasetSpec, ItemList

from . import common as C
from .data import make_loader
from .options import EmbedOptions
from .parts import PartStore
from .runner import ProcessFn, UnitResult, run_unit


class EmbeddingKind:
    """What one embedding job computes; subclasses fill in the hooks."""

    name = ""  #: ``gallery`` or ``queries`` (job.json ``kind``)
    columns: tuple[str, ...] = ()  #: plan columns a worker reads (a 2.5M-row plan stays small in each worker)

    def list_items(self, spec: DatasetSpec, opts: EmbedOptions) -> ItemList:
        """The dataset's items for this job."""
        raise NotImplementedError

    def default_name(self, opts: EmbedOptions, split: str, encoder_name: str) -> str:
        """Output name when ``--name`` is not given."""
        raise NotImplementedError

    def job_fields(self, opts: EmbedOptions, spec: DatasetSpec) -> dict:
        """Extra job.json fields (e.g. the gallery's index type)."""
        return {}

    def items_per_batch(self, plan: pd.DataFrame, opts: EmbedOptions) -> int:
        """Plan items per loader batch (units are whole multiples of it)."""
        return opts.batch_size

    def unit_label(self, plan: pd.DataFrame, opts: EmbedOptions) -> str:
        """What progress counts (``img``, ``video``, ``query``)."""
        raise NotImplementedError

    def dataset(self, plan: pd.DataFrame, rows: list[int], opts: EmbedOptions, encoder: Any) -> torch.utils.data.Dataset:
        """A torch Dataset that reads ``rows`` of the plan (decoding in DataLoader workers)."""
        raise NotImplementedError

    def process(self, encoder: Any, plan: pd.DataFrame, opts: EmbedOptions, device: str,
                timer: C.StageTimer) -> ProcessFn:
        """The per-batch model step: batch -> (rows, arrays, records)."""
        raise NotImplementedError

    def read_output(self, out: Path, plan: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray], list[dict]]:
        """A finished output as (plan rows, arrays, records): seeds new parts for ``--retry-failed``."""
        raise NotImplementedError


# ------------------------------------------------------------------------------------------- workers
@dataclass(frozen=True, eq=False)
class Unit:
    """A chunk of plan rows still to do, with a stable label (its part files are ``*-<label>-*``)."""

    label: str
    rows: np.ndarray  #: int64 plan rows, ascending


class UnitRunner:
    """Runs units with one loaded encoder: in the launching process, or inside a Ray worker."""

    def __init__(self, kind: EmbeddingKind, opts: EmbedOptions, encoder: Any, device: str,
                 plan: pd.DataFrame | None = None) -> None:
        self.kind, self.opts, self.encoder, self.device = kind, opts, encoder, device
        self.store = PartStore(opts.out)
        self._plan = plan

    @property
    def plan(self) -> pd.DataFrame:
        """The job's plan (a Ray worker reads the columns it needs from the part store on first use)."""
        if self._plan is None:
            self._plan = self.store.read_plan(self.kind.columns or None)
        return self._plan

    @classmethod
    def load(cls, kind: EmbeddingKind, opts: EmbedOptions, device: str) -> UnitRunner:
        """Load the encoder named by ``opts`` on ``device`` and read the plan from the part store."""
        enc = C.create_job_encoder(opts.encoder, opts.checkpoint, opts.blip_source, device, opts.dtype,
                                    weights=opts.weights)
        return cls(kind, opts, enc, device)

    def run(self, unit: Unit, on_batch: Callable[[int], None] | None = None,
            on_flush: Callable[[int], None] | None = None) -> UnitResult:
        """Compute the unit's rows that no earlier attempt of it flushed; compact its parts."""
        flushed = self.store.finished_rows(include_failed=not self.opts.retry_failed, unit=unit.label)
        rows = [int(r) for r in unit.rows if int(r) not in flushed]
        timer = C.StageTimer()
        writer = self.store.writer(unit.label)
        if not rows:
            writer.compact()
            return UnitResult(unit.label, skipped=len(unit.rows))
        loader = make_loader(self.kind.dataset(self.plan, rows, self.opts, self.encoder),
                             self.kind.items_per_batch(self.plan, self.opts), self.opts.num_workers, self.device)
        process = self.kind.process(self.encoder, self.plan, self.opts, self.device, timer)
        result = run_unit(loader, process, writer, self.opts.flush_every, timer, on_batch, on_flush)
        result.skipped = len(unit.rows) - len(rows)
        return result


def make_units(plan_len: int, todo: np.ndarray, opts: EmbedOptions, per_batch: int, chunk: int) -> list[Unit]:
    """Units of at most ``chunk`` rows (a multiple of ``per_batch``) holding the rows of ``todo`` (a bool
    mask over the plan, or row numbers), only those with rows to do.

    Whole job: contiguous chunks of the plan. Manual shard I of N: chunks of the rows ``i % N == I``.
    """
    chunk = max(per_batch, math.ceil(chunk / per_batch) * per_batch)
    if opts.num_shards > 1:
        mine = np.arange(opts.shard_id, plan_len, opts.num_shards)
        prefix = f"s{opts.shard_id}of{opts.num_shards}c{chunk}n"
    else:
        mine = np.arange(plan_len)
        prefix = f"c{chunk}n"
    todo_mask = np.asarray(todo) if np.asarray(todo).dtype == bool else np.isin(np.arange(plan_len), todo)
    units = []
    for k, start in enumerate(range(0, len(mine), chunk)):
        rows = mine[start:start + chunk]
        rows = rows[todo_mask[rows]]
        if len(rows):
            units.append(Unit(f"{prefix}{k:06d}", rows.astype(np.int64)))
    return units


def mine_count(plan_len: int, opts: EmbedOptions) -> int:
    """Plan rows this launch is responsible for (all, or one manual shard's)."""
    return len(range(opts.shard_id, plan_len, opts.num_shards))


def options_for_worker(opts: EmbedOptions) -> EmbedOptions:
    """A copy of ``opts`` a Ray worker can receive (no callbacks)."""
    return dataclasses.replace(opts, on_progress=None)
