"""The WebVid-CoVR protocol of ``precompute.evaluate`` (covr.md §4.3), for CSVs with repeated targets too.

CoVR's test CSV has one row per target, so its gallery is "column i = the target of row i". Train/val CSVs
and filtered subsets repeat targets; CoVR's way is one gallery entry per distinct target video, every query
keeping its own row and its own target column. With distinct targets both are the same matrix, so the numbers
equal ``covr_core.metrics.webvid_recalls``. Columns showing the query's reference video (CoVR's integer video
id) are removed, never the query's own target.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import pandas as pd

from covr_core.datasets.webvid import webvid_video_key
from covr_core.metrics import CIRR_KS
from covr_core.ranking import target_ranks

log = logging.getLogger(__name__)


def video_codes(reference_ids: Sequence[str], target_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Video identities (``webvid_video_key``: CoVR's integer id; the path itself when it has no digit) of
    references and targets as shared int codes."""
    ints = [webvid_video_key(x) for x in [*reference_ids, *target_ids]]
    codes, _ = pd.factorize(pd.Series(ints))
    return codes[: len(reference_ids)], codes[len(reference_ids):]


def webvid_metrics(scores: np.ndarray, target_cols: np.ndarray) -> dict:
    """WebVid-CoVR recalls from masked scores: ``target_cols[i]`` is query i's target column (CoVR's R@K,
    ``meanR3``, ``meanR4``); equals ``covr_core.metrics.webvid_recalls`` when every target is distinct."""
    ranks = target_ranks(scores, target_cols)
    out = {f"R@{k}": float(100.0 * np.mean((ranks > 0) & (ranks <= k))) for k in CIRR_KS}
    out["n_queries"] = int(len(ranks))
    out["meanR3"] = float(np.mean([out["R@1"], out["R@5"], out["R@10"]]))
    out["meanR4"] = float(np.mean([out["R@1"], out["R@5"], out["R@10"], out["R@50"]]))
    return out


def webvid_gallery(columns: np.ndarray, targets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """CoVR's WebVid-CoVR gallery: one entry per distinct target video (first-appearance order), queries keep
    their own rows. ``columns[i]`` is the gallery-folder row of query i's target (-1: absent). Returns (gallery
    rows into the gallery folder, target column of each query in the deduplicated gallery)."""
    columns = np.asarray(columns, dtype=np.int64)
    if (columns < 0).any():
        missing = [str(t) for t, c in zip(targets, columns) if c < 0][:5]
        raise ValueError(f"{int((columns < 0).sum())} WebVid targets are not in the gallery, e.g. {missing}")
    target_cols, rows = pd.factorize(columns)
    if len(rows) < len(columns):
        log.info("%d queries share %d target videos: one gallery entry per target video (CoVR's protocol); "
                 "each query keeps its own row", len(columns), len(rows))
    return np.asarray(rows, dtype=np.int64), target_cols.astype(np.int64)


def webvid_exclusion(references: Sequence[str], gallery_ids: Sequence[str], target_cols: np.ndarray) -> np.ndarray:
    """[Q, G] bool: column j shows query i's reference video (never query i's own target column)."""
    ref_codes, gal_codes = video_codes(references, gallery_ids)
    mask = ref_codes[:, None] == gal_codes[None, :]
    mask[np.arange(len(target_cols)), target_cols] = False
    return mask



