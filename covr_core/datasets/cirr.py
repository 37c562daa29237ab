"""CIRR annotation reader: ``cap.rc2.{split}.json`` triplets and ``split.rc2.{split}.json`` image paths.

Accepted layouts under a root (first match wins):
the CIRR repo (``captions/cap.rc2.val.json`` + ``image_splits/split.rc2.val.json``), CoVR's
(``annotation/cirr/cap.rc2.val.json``), a ``cirr/`` subfolder of either, or both files flat in the root.
Image paths in the split file (``./dev/dev-244-0-img0.png``) resolve under an image root: ``img_raw/``,
``images/`` or the root itself (the first that exists and holds the split's first folder).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from covr_core.datasets.registry import GALLERY_COLUMNS, QUERY_COLUMNS, DatasetSelection, ItemList

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test1")


@dataclass(frozen=True)
class CirrTriplet:
    """One CIRR query: reference image + caption -> target (hard label) and graded set labels."""

    pairid: int
    reference: str
    target_hard: str | None  #: None in test1 (labels hidden)
    target_soft: dict[str, float] = field(default_factory=dict)  #: {} in test1
    caption: str = ""
    img_set_id: int = -1
    members: tuple[str, ...] = ()


def _triplet(d: dict) -> CirrTriplet:
    img_set = d.get("img_set") or {}
    soft = d.get("target_soft") or {}
    return CirrTriplet(
        pairid=int(d["pairid"]),
        reference=str(d["reference"]),
        target_hard=(str(d["target_hard"]) if d.get("target_hard") is not None else None),
        target_soft={str(k): float(v) for k, v in soft.items()},
        caption=str(d.get("caption", "")),
        img_set_id=int(img_set.get("id", -1)),
        members=tuple(str(m) for m in img_set.get("members", ())),
    )


def load_cirr_triplets(path: str | Path) -> list[CirrTriplet]:
    """Read a ``cap.rc2.{split}.json`` file into triplets (file order kept)."""
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of CIRR triplets")
    try:
        return [_triplet(d) for d in data]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a CIRR caption file ({type(exc).__name__}: {exc})") from exc


def load_cirr_split(path: str | Path) -> dict[str, str]:
    """Read a ``split.rc2.{split}.json`` file: image name -> relative path."""
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object name -> relative path")
    return {str(k): str(v) for k, v in data.items()}


def find_cirr_annotation(root: str | Path, split: str) -> tuple[Path, Path]:
    """Locate (``cap.rc2.{split}.json``, ``split.rc2.{split}.json``) under ``root`` in any known layout."""
    root = Path(root)
    cap_name, split_name = f"cap.rc2.{split}.json", f"split.rc2.{split}.json"
    bases = [root, root / "cirr", root / "annotation" / "cirr", root / "CIRR"]
    cap_dirs = [d for b in bases for d in (b / "captions", b)]
    split_dirs = [d for b in bases for d in (b / "image_splits", b)]
    cap = next((d / cap_name for d in cap_dirs if (d / cap_name).is_file()), None)
    spl = next((d / split_name for d in split_dirs if (d / split_name).is_file()), None)
    if cap is None or spl is None:
        name, dirs = (cap_name, cap_dirs) if cap is None else (split_name, split_dirs)
        tried = [str(d / name) for d in dirs]
        raise FileNotFoundError(
            f"CIRR {split} annotation not found under {root}; looked for: {', '.join(tried)}"
        )
    return cap, spl


class CirrDataset:
    """A CIRR split: triplets, image paths under an image root, and a report of missing images.

    Missing images never raise: ``missing`` lists them and ``missing_report()`` summarises them.
    """

    def __init__(self, root: str | Path, split: str = "val", image_root: str | Path | None = None,
                 check_images: bool = True) -> None:  # fmt: skip
        self.root = Path(root)
        self.split = split
        self.cap_path, self.split_path = find_cirr_annotation(self.root, split)
        self.triplets = load_cirr_triplets(self.cap_path)
        self.split_map = load_cirr_split(self.split_path)
        self.image_root = Path(image_root) if image_root is not None else self._guess_image_root()
        self.image_paths: dict[str, Path] = {
            name: (self.image_root / rel).resolve() for name, rel in self.split_map.items()
        }
        self.missing: list[str] = (
            [n for n, p in self.image_paths.items() if not p.is_file()] if check_images else []
        )
        unknown = sorted(
            {n for t in self.triplets for n in (t.reference, t.target_hard, *t.members) if n}
            - set(self.split_map)
        )
        self.unlisted = unknown  #: names used by triplets but absent from the split file
        if self.missing or self.unlisted:
            logger.warning(self.missing_report())

    def _guess_image_root(self) -> Path:
        first = next(iter(self.split_map.values()), "")
        parts = Path(first).parts  # "./dev/x.png" -> ("dev", "x.png")
        top = parts[0] if len(parts) > 1 else ""
        for cand in (self.root / "img_raw", self.root / "images", self.root, self.split_path.parent.parent):
            if cand.is_dir() and (not top or (cand / top).is_dir()):
                return cand
        return self.root

    @property
    def gallery_names(self) -> list[str]:
        """The split's image names (the retrieval gallery), sorted."""
        return sorted(self.split_map)

    def __len__(self) -> int:
        return len(self.triplets)

    def missing_report(self, examples: int = 5) -> str:
        """One-paragraph summary: how many images are missing (with first examples), or 'all present'."""
        total = len(self.image_paths)
        parts = []
        if self.missing:
            ex = ", ".join(str(self.image_paths[n]) for n in self.missing[:examples])
            parts.append(f"{len(self.missing)} of {total} CIRR {self.split} images missing under "
                         f"{self.image_root} (e.g. {ex})")  # fmt: skip
        if self.unlisted:
            parts.append(f"{len(self.unlisted)} image name(s) used by triplets are not in "
                         f"{self.split_path.name} "
                         f"(e.g. {', '.join(self.unlisted[:examples])})")  # fmt: skip
        if not parts:
            return f"all {total} CIRR {self.split} images present under {self.image_root}"
        return "; ".join(parts)


# ------------------------------------------------------------------------------ job item lists (registry)
def gallery_items(sel: DatasetSelection) -> ItemList:
    """The split's images in split-file order (``covr_core.datasets.registry`` lister)."""
    ds = CirrDataset(sel.root, sel.split)
    root = Path(sel.root).resolve()
    paths = [str(Path(p).resolve()) for p in ds.image_paths.values()]
    items = pd.DataFrame({"id": list(ds.image_paths), "kind": "image", "path": paths,
                          "media": [os.path.relpath(p, root) for p in paths], "caption": "", "split": sel.split,
                          "duration": np.nan, "scores": ""}, columns=list(GALLERY_COLUMNS))
    return ItemList(items, root, sel.split)


def query_items(sel: DatasetSelection) -> ItemList:
    """One row per triplet (annotation order); ``path`` is the reference image."""
    ds = CirrDataset(sel.root, sel.split)
    rows = []
    for t in ds.triplets:
        ref_path = ds.image_paths.get(t.reference)
        rows.append({"id": str(t.pairid), "query_id": int(t.pairid), "reference": t.reference,
                     "target": t.target_hard or "", "caption": t.caption,
                     "members": json.dumps(list(t.members or [])), "target_soft": json.dumps(t.target_soft or {}),
                     "path": str(Path(ref_path).resolve()) if ref_path else "", "kind": "image"})
    return ItemList(pd.DataFrame(rows, columns=list(QUERY_COLUMNS)), Path(sel.root).resolve(), sel.split)
