"""The dataset registry: each dataset the jobs can embed is a :class:`DatasetSpec`, not an if/elif branch.

A spec says how to list a dataset's gallery items and (for benchmarks) its queries from a
:class:`DatasetSelection` (the ``--root/--split/--csv/--video-root/--subset-*`` flags), which flags it needs,
what identifies one item list (the job key that guards resume), what a query's ranking excludes, and which
metrics protocol of ``precompute.evaluate`` scores it. Media are read by item ``kind`` (``image``: the file;
``video``: 15 sampled frames for the gallery, the middle frame as a query reference).

    >>> get_dataset("cirr").list_gallery(DatasetSelection(root="datasets/CIRR", split="val"))  # doctest: +SKIP

The built-in specs (``cirr``, ``webvid``, ``folder``: a plain folder of images and videos, ``demo``: the
bundled assets' ``gallery.csv``) are registered by ``covr_core.datasets.builtin`` when the package is
imported; ``register_dataset`` adds more.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import pandas as pd

#: columns of a gallery item list (one row per item, dataset order)
GALLERY_COLUMNS = ("id", "kind", "path", "media", "caption", "split", "duration", "scores")
#: columns of a query list (one row per triplet); ``path``/``kind`` are the reference's media
QUERY_COLUMNS = ("id", "query_id", "reference", "target", "caption", "members", "target_soft", "path", "kind")
EXCLUSIONS = ("none", "reference", "same-video")


@dataclass(frozen=True)
class DatasetSelection:
    """Which part of a dataset a job embeds (the jobs' dataset flags)."""

    root: str | None = None  #: CIRR root / media folder
    split: str = "val"  #: CIRR split (val, test1, train, demo)
    csv: str | None = None  #: WebVid-CoVR CSV
    video_root: str | None = None  #: WebVid folder: videos are <video_root>/<pth>.mp4
    subset_first: int | None = None
    subset_random: int | None = None
    subset_ids: str | None = None
    seed: int = 0
    assets: str | None = None  #: demo: the assets folder holding gallery.csv


@dataclass(frozen=True)
class ItemList:
    """A listed dataset: the items (see ``GALLERY_COLUMNS`` / ``QUERY_COLUMNS``), their media root, the split."""

    items: pd.DataFrame
    media_root: Path
    split: str


Lister = Callable[[DatasetSelection], ItemList]


@dataclass(frozen=True)
class DatasetSpec:
    """How the jobs list, read and score one dataset."""

    name: str
    description: str
    media: str  #: ``image``, ``video`` or ``image+video``
    list_gallery: Lister
    key: Callable[[DatasetSelection], str]  #: identity of the listed items (a rerun must list the same)
    list_queries: Lister | None = None  #: None: no composed queries (a gallery-only dataset)
    required: tuple[str, ...] = ()  #: DatasetSelection fields that must be set
    exclusion: str = "none"  #: what a query's ranking leaves out (see EXCLUSIONS)
    benchmark: str | None = None  #: ``precompute.evaluate --benchmark`` protocol; None: no metrics

    def __post_init__(self) -> None:
        if self.exclusion not in EXCLUSIONS:
            raise ValueError(f"exclusion must be one of {EXCLUSIONS}, got {self.exclusion!r}")
        known = {f.name for f in fields(DatasetSelection)}
        if unknown := set(self.required) - known:
            raise ValueError(f"unknown selection field(s) {sorted(unknown)}")

    def check(self, sel: DatasetSelection) -> None:
        """Raise ValueError naming the missing flag(s) of this dataset."""
        missing = [f"--{f.replace('_', '-')}" for f in self.required if getattr(sel, f) in (None, "")]
        if missing:
            raise ValueError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required "
                             f"for --dataset {self.name}")

    def gallery(self, sel: DatasetSelection) -> ItemList:
        """The gallery items of the selection (checked, ids unique)."""
        self.check(sel)
        listed = self.list_gallery(sel)
        _check_unique(listed.items)
        return listed

    def queries(self, sel: DatasetSelection) -> ItemList:
        """The query triplets of the selection; ValueError for a gallery-only dataset."""
        if self.list_queries is None:
            raise ValueError(f"--dataset {self.name} has no composed queries; choose one of "
                             f"{', '.join(query_datasets())}")
        self.check(sel)
        listed = self.list_queries(sel)
        _check_unique(listed.items)
        return listed


def _check_unique(items: pd.DataFrame) -> None:
    dup = items["id"][items["id"].duplicated()]
    if len(dup):
        raise ValueError(f"duplicate item ids: {dup.head().tolist()}")


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add (or replace) a dataset spec; returns it."""
    _REGISTRY[spec.name] = spec
    return spec


def get_dataset(name: str) -> DatasetSpec:
    """The spec of ``name``; ValueError listing the registered names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(list_datasets())}") from None


def list_datasets() -> list[str]:
    """Every registered dataset (gallery listing)."""
    return list(_REGISTRY)


def query_datasets() -> list[str]:
    """Datasets with composed queries (the ``queries`` job's choices)."""
    return [n for n, s in _REGISTRY.items() if s.list_queries is not None]
