"""Gallery listings that need no annotation: a plain folder of media, and a ``gallery.csv`` list (the demo).

- ``folder_items``: every image and video under ``root`` (recursive; hidden files and folders skipped), in
  sorted path order; the id is the path relative to ``root`` (``beach/dog.jpg``), the kind comes from the
  extension.
- ``csv_items``: ``<assets>/gallery.csv`` with ``id, kind, media`` and optional ``caption, split, duration``
  (``media`` relative to the folder), the format of the bundled demo gallery.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from covr_core.datasets.registry import GALLERY_COLUMNS, DatasetSelection, ItemList

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")


def media_kind(path: str | Path) -> str | None:
    """``image`` or ``video`` by extension (case-insensitive); None for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def scan_media(root: str | Path) -> list[Path]:
    """Media files under ``root`` (recursive, sorted by relative path, hidden entries skipped)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no media folder at {root}")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(folder) / f for f in files if not f.startswith(".") and media_kind(f))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def folder_items(sel: DatasetSelection) -> ItemList:
    """Every image and video under ``sel.root``; the split is the folder's name."""
    root = Path(sel.root).resolve()
    paths = scan_media(root)
    rel = [p.relative_to(root).as_posix() for p in paths]
    items = pd.DataFrame({"id": rel, "kind": [media_kind(p) for p in paths], "path": [str(p) for p in paths],
                          "media": rel, "caption": "", "split": root.name, "duration": np.nan, "scores": ""},
                         columns=list(GALLERY_COLUMNS))
    return ItemList(items, root, root.name)


def csv_items(sel: DatasetSelection) -> ItemList:
    """The items listed in ``<sel.assets>/gallery.csv`` (``id, kind, media[, caption, split, duration]``)."""
    assets = Path(sel.assets).resolve()
    df = pd.read_csv(assets / "gallery.csv", dtype={"id": str, "media": str, "caption": str},
                     keep_default_na=False)
    items = pd.DataFrame({
        "id": df["id"], "kind": df["kind"], "path": [str(assets / m) for m in df["media"]],
        "media": [os.path.relpath(assets / m, assets) for m in df["media"]],
        "caption": df["caption"] if "caption" in df else "", "split": df["split"] if "split" in df else "demo",
        "duration": pd.to_numeric(df["duration"], errors="coerce") if "duration" in df else np.nan,
        "scores": ""}, columns=list(GALLERY_COLUMNS))
    return ItemList(items, assets, "demo")
