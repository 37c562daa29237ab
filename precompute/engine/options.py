"""Typed options of the embedding jobs: a mistyped keyword or a wrongly typed value fails at once.

``GalleryOptions`` and ``QueriesOptions`` are keyword-only dataclasses built from the command line
(``from_namespace``: every flag is a field, nothing is dropped) or from Python (``gallery.run(**kw)`` builds
``GalleryOptions(**kw)``, so ``batchsize=8`` raises ``TypeError`` instead of disappearing). Each field's
value is checked against its annotation and the run settings against each other (``--shard-id`` in range,
``--ray`` not combined with ``--num-shards``...).
"""

from __future__ import annotations

import argparse
import collections.abc
import math
import numbers
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Sequence

from covr_core.datasets import DatasetSelection

#: ``auto`` = bfloat16 on CUDA, float32 on CPU; an explicit name is used on every device
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
#: items per compacted part file (a "unit" of work: one Ray task, one segment file)
CHUNK_ITEMS = 16384


def _matches(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    hint = origin or hint
    if hint is collections.abc.Callable:
        return callable(value)
    if hint in (int, float):
        kind = numbers.Integral if hint is int else numbers.Real
        return isinstance(value, kind) and not isinstance(value, bool)
    return isinstance(value, hint)


@dataclass(kw_only=True)
class JobOptions:
    """Base of the job option dataclasses: checks every value against its annotation."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            if not _matches(value, hints[f.name]):
                raise TypeError(f"{type(self).__name__}.{f.name} must be {hints[f.name]}, "
                                f"got {type(value).__name__} {value!r}")
        self.validate()

    def validate(self) -> None:
        """Cross-field checks (raise ValueError)."""

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace, **extra: Any):
        """Options from parsed flags; every flag must be a field (a flag without one is a bug here)."""
        names = {f.name for f in fields(cls)}
        values = {**vars(ns), **extra}
        if unknown := sorted(set(values) - names):
            raise TypeError(f"{cls.__name__} has no field for {unknown}")
        return cls(**values)


@dataclass(kw_only=True)
class DatasetOptions(JobOptions):
    """The dataset flags (``covr_core.datasets`` registry name plus the selection)."""

    dataset: str
    root: str | None = None
    split: str = "val"
    csv: str | None = None
    video_root: str | None = None
    subset_first: int | None = None
    subset_random: int | None = None
    subset_ids: str | None = None
    seed: int = 0
    assets: str | Path | None = str(ASSETS_DIR)  #: demo: the folder holding gallery.csv
    name: str | None = None  #: output name (default: <dataset>-<split>-<encoder>)

    def selection(self) -> DatasetSelection:
        """The registry's selection of these flags."""
        return DatasetSelection(root=self.root, split=self.split, csv=self.csv, video_root=self.video_root,
                                subset_first=self.subset_first, subset_random=self.subset_random,
                                subset_ids=self.subset_ids, seed=self.seed,
                                assets=str(self.assets) if self.assets is not None else None)


@dataclass(kw_only=True)
class EmbedOptions(DatasetOptions):
    """Everything an embedding job (gallery, queries) takes besides its own output options."""

    out: str | Path
    encoder: Any = "auto"  #: a name (auto, blip, lite) or an already loaded Encoder
    weights: str | None = None  #: weight tag of the encoder (webvid-covr...) or a file (covr_core.factory)
    checkpoint: str | None = None
    blip_source: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 64
    num_workers: int = 0
    num_shards: int = 1
    shard_id: int = 0
    flush_every: int = 256
    chunk_items: int = CHUNK_ITEMS
    retry_failed: bool = False
    no_finalize: bool = False
    keep_parts: bool = False
    max_failures: str | None = None  #: allowed failed items: a count ("10") or a share ("1%"); None: any
    ray: str | None = None  #: None: this process; "auto", "local" or a cluster address
    ray_workers: int | None = None
    ray_cpus_per_worker: int | None = None
    ray_retries: int = 3
    progress_every: float = 30.0
    log_level: str = "INFO"
    argv: Sequence[str] | None = None
    on_progress: Callable[[int, int], None] | None = None

    def validate(self) -> None:
        if self.num_shards < 1 or not 0 <= self.shard_id < self.num_shards:
            raise ValueError(f"need 0 <= --shard-id < --num-shards, got shard {self.shard_id} of {self.num_shards}")
        for flag in ("batch_size", "flush_every", "chunk_items"):
            if getattr(self, flag) < 1:
                raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(self, flag)}")
        if self.num_workers < 0 or self.ray_retries < 0:
            raise ValueError("--num-workers and --ray-retries must be >= 0")
        if self.dtype not in DTYPE_CHOICES:
            raise ValueError(f"--dtype must be one of {DTYPE_CHOICES}, got {self.dtype!r}")
        if self.ray is not None and self.num_shards > 1:
            raise ValueError("--ray launches every shard itself: drop --num-shards/--shard-id")
        if self.ray is not None and not isinstance(self.encoder, str):
            raise ValueError("--ray needs an encoder name (each Ray worker loads its own copy)")
        self.allowed_failures(1)  # parse errors surface now

    def allowed_failures(self, total: int) -> int | None:
        """The number of failed items tolerated out of ``total`` (None: any number)."""
        return parse_failure_budget(self.max_failures, total)

    @property
    def parts_only(self) -> bool:
        """True when this run only writes parts (a shard of a manual split, or ``--no-finalize``)."""
        return self.no_finalize or self.num_shards > 1


def parse_failure_budget(text: str | None, total: int) -> int | None:
    """``"10"`` -> 10, ``"2.5%"`` -> floor(2.5 % of total), None -> None (no limit)."""
    if text is None or str(text).strip() in ("", "all"):
        return None
    s = str(text).strip()
    try:
        if s.endswith("%"):
            share = float(s[:-1])
            if not 0 <= share <= 100:
                raise ValueError
            return math.floor(share / 100 * total)
        count = int(s)
        if count < 0:
            raise ValueError
        return count
    except ValueError:
        raise ValueError(f"--max-failures takes a count (10) or a share (1%), got {text!r}") from None


@dataclass(kw_only=True)
class GalleryOptions(EmbedOptions):
    """Options of ``python -m precompute.gallery``."""

    index_type: str = "flat"
    thumbs: bool = True
    frames_per_video: int = 15

    def validate(self) -> None:
        super().validate()
        if self.index_type not in ("flat", "hnsw", "ivf"):
            raise ValueError(f"--index-type must be flat, hnsw or ivf, got {self.index_type!r}")
        if self.frames_per_video < 1:
            raise ValueError("--frames-per-video must be >= 1")


@dataclass(kw_only=True)
class QueriesOptions(EmbedOptions):
    """Options of ``python -m precompute.queries``."""
