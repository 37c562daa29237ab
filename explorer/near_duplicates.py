"""Copies and near-duplicates of a query's reference in a gallery (hidden from the results).

Two kinds of items are removed with the reference:

* **identical copies**: the reference image itself stored in the gallery (embedding cosine with the
  reference's f_img >= ``IDENTICAL_COSINE``); always removed, as CoVR removes the reference;
* **near-duplicates**: items that show the same picture, e.g. a zoom or a fade made from the reference
  photo. An item is a near-duplicate when BOTH its embedding cosine with f_img is >= ``NEAR_COSINE``
  AND its pixels match: the zero-mean 16x16 grey thumbnail of the reference and of the item (for a video:
  the best of ``VIDEO_FRAMES`` sampled frames) correlate >= ``NEAR_PIXELS``. Only the ``MAX_CHECKED``
  items closest to f_img are checked. The embedding alone cannot tell a derived clip from another photo of
  the same thing (the lite encoder puts ``cat`` and ``cat_eyes`` at cosine 0.99, ``cat`` and its zoom
  video at 0.9994); the pixel test can (0.51 vs 0.98 on the bundled gallery).

Hiding near-duplicates is a user option (on by default) for the user's own queries; benchmark queries
follow their evaluation protocol instead (explorer.query).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageOps

from covr_core.cache import LRUCache
from covr_core.media import MediaError, load_image, probe_video, read_frames, sample_frame_indices

log = logging.getLogger(__name__)

IDENTICAL_COSINE = 0.9999
NEAR_COSINE = 0.93
NEAR_PIXELS = 0.90
MAX_CHECKED = 24
VIDEO_FRAMES = 8
DESCRIPTOR_SIDE = 16


@dataclass
class RemovedWithReference:
    """Gallery ids removed together with the reference: its own id / copies, and near-duplicates."""

    reference: list[str] = field(default_factory=list)
    near_duplicates: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[str]:
        """Every removed id (reference first)."""
        return list(dict.fromkeys([*self.reference, *self.near_duplicates]))


def pixel_descriptor(image: Image.Image, side: int = DESCRIPTOR_SIDE) -> np.ndarray:
    """Zero-mean, unit-norm grey ``side`` x ``side`` thumbnail (centre crop to a square first)."""
    grey = ImageOps.fit(image.convert("L"), (side, side), Image.Resampling.BILINEAR)
    a = np.asarray(grey, dtype=np.float32).ravel()
    a = a - a.mean()
    return a / max(float(np.linalg.norm(a)), 1e-6)


class NearDuplicateFinder:
    """Finds the items removed with a reference; caches item pixel descriptors (bounded LRU)."""

    def __init__(self, max_items: int = 4096):
        self._cache = LRUCache(max_items)

    def _item_descriptors(self, gallery: Any, item_id: str) -> np.ndarray:
        key = (str(getattr(gallery, "folder", "")), gallery.name, item_id)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        row = gallery.items.iloc[gallery.row_of(item_id)]
        try:
            if str(row.get("kind", "image")) == "video":
                path = gallery.media_path(item_id)
                idx = sample_frame_indices(probe_video(path).frame_count, VIDEO_FRAMES)
                images = read_frames(path, idx)
            else:
                thumb = gallery.thumbnail_path(item_id)
                images = [
                    load_image(thumb if thumb is not None and thumb.exists() else gallery.media_path(item_id))
                ]
            desc = np.stack([pixel_descriptor(im) for im in images])
        except (MediaError, OSError, ValueError) as exc:
            log.warning("no pixel descriptor for %s: %s", item_id, exc)
            desc = np.zeros((0, DESCRIPTOR_SIDE * DESCRIPTOR_SIDE), np.float32)
        self._cache.put(key, desc)
        return desc

    def pixel_similarity(self, gallery: Any, item_id: str, reference: np.ndarray) -> float:
        """Best correlation of the reference descriptor with the item's (frames of a video); -1 if none."""
        desc = self._item_descriptors(gallery, item_id)
        return float((desc @ reference).max()) if len(desc) else -1.0

    def find(
        self,
        gallery: Any,
        reference_image: Image.Image,
        f_img: np.ndarray,
        reference_id: str | None = None,
        hide_near_duplicates: bool = True,
        candidates: Sequence[str] | None = None,
    ) -> RemovedWithReference:
        """Ids to remove with the reference: ``reference_id`` (when in the gallery), identical copies and,
        with ``hide_near_duplicates``, near-duplicates; only ids in ``candidates`` (all when None)."""
        out = RemovedWithReference()
        allowed = None if candidates is None else set(map(str, candidates))
        if reference_id is not None and (allowed is None or reference_id in allowed):
            try:
                gallery.row_of(reference_id)
                out.reference.append(str(reference_id))
            except KeyError:
                pass
        q = np.asarray(f_img, dtype=np.float32).reshape(1, -1)
        hits = gallery.search(q, k=min(MAX_CHECKED, len(gallery)))
        ref_desc = None
        for item_id, cos in zip(hits.ids[0], hits.scores[0]):
            if item_id in out.reference or (allowed is not None and item_id not in allowed):
                continue
            if cos >= IDENTICAL_COSINE:
                out.reference.append(item_id)
            elif hide_near_duplicates and cos >= NEAR_COSINE:
                if ref_desc is None:
                    ref_desc = pixel_descriptor(reference_image)
                if self.pixel_similarity(gallery, item_id, ref_desc) >= NEAR_PIXELS:
                    out.near_duplicates.append(item_id)
        return out
