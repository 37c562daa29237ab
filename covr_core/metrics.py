"""Benchmark metrics over a score matrix (numpy, vectorised): CIRR and WebVid-CoVR recalls.

Conventions (CoVR, covr.md §4):

- Recalls are percentages (x100). Excluded columns (the reference for CIRR, same-video targets for
  WebVid-CoVR) get ``-inf``.
- Ranks follow the stable tie rule of :mod:`covr_core.ranking` (equal scores keep gallery order).
- A target missing from the gallery counts as a miss and is reported (``missing_targets``).
- Recall_subset ranks the ``img_set`` members in the order of the full ranking (same tie rule),
  with the reference and members missing from the gallery removed.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from covr_core.datasets.cirr import CirrTriplet
from covr_core.ranking import (
    check_scores,
    cirr_subset_order,
    column_lookup,
    mask_references,
    target_ranks,
    topk_stable,
)

logger = logging.getLogger(__name__)

CIRR_KS = (1, 5, 10, 50)
SUBSET_KS = (1, 2, 3)


def _recalls(ranks: np.ndarray, ks: Sequence[int], prefix: str = "R@") -> dict[str, float]:
    hit = ranks > 0
    return {f"{prefix}{k}": float(100.0 * np.mean(hit & (ranks <= k))) if len(ranks) else 0.0 for k in ks}


def _labelled(triplets: Sequence[CirrTriplet]) -> None:
    if any(t.target_hard is None for t in triplets):
        raise ValueError("these triplets have no target labels (CIRR test1): use write_cirr_submission")


def cirr_recall_at_k(scores: np.ndarray, gallery_ids: Sequence[str], triplets: Sequence[CirrTriplet],
                     ks: Sequence[int] = CIRR_KS) -> dict:  # fmt: skip
    """CIRR Recall@K (x100) over the full gallery with each query's reference removed.

    Returns ``R@K`` keys plus ``n_queries`` and ``missing_targets`` (targets absent from the gallery, misses).
    """
    _labelled(triplets)
    lookup = column_lookup(gallery_ids)
    s = mask_references(check_scores(scores, len(triplets), len(gallery_ids)), lookup, triplets)
    cols = np.array([lookup.get(t.target_hard, -1) for t in triplets], dtype=np.int64)
    ranks = target_ranks(s, cols)
    missing = int((cols < 0).sum())
    if missing:
        logger.warning("%d CIRR target(s) are not in the gallery (counted as misses)", missing)
    return {**_recalls(ranks, ks), "n_queries": len(triplets), "missing_targets": missing}


def cirr_subset_recall(scores: np.ndarray, gallery_ids: Sequence[str], triplets: Sequence[CirrTriplet],
                       ks: Sequence[int] = SUBSET_KS, graded: bool = False) -> dict:  # fmt: skip
    """CIRR Recall_subset@K (x100) within each query's ``img_set`` members, reference removed.

    ``graded=False`` (keys ``Rs@K``): hit when ``target_hard`` is among the top-K members.
    ``graded=True`` (keys ``Rs_soft@K``, CoVR's val code): credit max(0, best ``target_soft`` value
    among the top-K members); labels of the reference are never counted.
    """
    _labelled(triplets)
    lookup = column_lookup(gallery_ids)
    s = mask_references(check_scores(scores, len(triplets), len(gallery_ids)), lookup, triplets)
    ordered = cirr_subset_order(s, lookup, triplets)
    prefix = "Rs_soft@" if graded else "Rs@"
    out: dict = {}
    for k in ks:
        if graded:
            credit = [
                max([0.0] + [t.target_soft.get(n, 0.0) for n in o[:k]]) for t, o in zip(triplets, ordered)
            ]
        else:
            credit = [float(t.target_hard in o[:k]) for t, o in zip(triplets, ordered)]
        out[f"{prefix}{k}"] = float(100.0 * np.mean(credit)) if credit else 0.0
    out["missing_targets"] = int(sum(t.target_hard not in lookup for t in triplets))
    return out


def evaluate_cirr(scores: np.ndarray, gallery_ids: Sequence[str], triplets: Sequence[CirrTriplet]) -> dict:
    """All CIRR val metrics: ``R@1,5,10,50``, ``Rs@1,2,3`` (hard), ``Rs_soft@1,2,3`` (CoVR graded),
    ``Avg`` = (R@5 + Rs@1) / 2 (CIRR's leaderboard average), ``n_queries``, ``missing_targets``."""
    out = cirr_recall_at_k(scores, gallery_ids, triplets)
    hard = cirr_subset_recall(scores, gallery_ids, triplets, graded=False)
    soft = cirr_subset_recall(scores, gallery_ids, triplets, graded=True)
    out.update({k: v for k, v in hard.items() if k.startswith("Rs@")})
    out.update({k: v for k, v in soft.items() if k.startswith("Rs_soft@")})
    out["Avg"] = (out["R@5"] + out["Rs@1"]) / 2
    return out


def webvid_recalls(scores: np.ndarray, query_video_ids: Sequence, target_video_ids: Sequence,
                   ks: Sequence[int] = CIRR_KS) -> dict:  # fmt: skip
    """WebVid-CoVR recalls (x100): the true target of query i is column i of a [Q, Q] matrix.

    Same-video exclusion: column j gets -inf for query i when ``target_video_ids[j] ==
    query_video_ids[i]`` (the reference's video) and j != i. Returns ``R@K``, ``meanR3`` =
    mean(R@1, R@5, R@10), ``meanR4`` = mean(R@1, R@5, R@10, R@50) (with the default ``ks``), ``n_queries``.
    """
    n = len(query_video_ids)
    if len(target_video_ids) != n:
        raise ValueError("WebVid-CoVR needs one target per query (a square score matrix)")
    s = check_scores(scores, n, n)
    codes, _ = pd.factorize(pd.Series([str(v) for v in query_video_ids] + [str(v) for v in target_video_ids]))
    q_codes, t_codes = codes[:n], codes[n:]
    ranks = np.empty(n, dtype=np.int64)
    chunk = 2048
    for start in range(0, n, chunk):
        rows = np.arange(start, min(start + chunk, n))
        excluded = t_codes[None, :] == q_codes[rows, None]
        excluded[np.arange(len(rows)), rows] = False
        ranks[rows] = target_ranks(s[rows], rows, excluded)
    out = {**_recalls(ranks, ks), "n_queries": n}
    if all(f"R@{k}" in out for k in CIRR_KS):  # CoVR's averages (only with the default ks)
        out["meanR3"] = float(np.mean([out["R@1"], out["R@5"], out["R@10"]]))
        out["meanR4"] = float(np.mean([out["R@1"], out["R@5"], out["R@10"], out["R@50"]]))
    return out


def per_query_table(scores: np.ndarray, gallery_ids: Sequence[str], query_ids: Sequence,
                    target_ids: Sequence[str | None], k: int = 10,
                    exclude_ids: Sequence[Collection[str]] | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per query: ``query_id, target, rank`` (1-based, <NA> when the target is not in the
    gallery), ``target_score``, ``top_ids`` and ``top_scores`` (lists of k). ``exclude_ids[i]``: ids
    removed from query i's ranking (e.g. the reference)."""
    lookup = column_lookup(gallery_ids)
    s = np.array(check_scores(scores, len(query_ids), len(gallery_ids)), copy=True)
    for i, ex in enumerate(exclude_ids or ()):
        cols = [lookup[e] for e in ex if e in lookup]
        s[i, cols] = -np.inf
    tcols = np.array([lookup.get(str(t), -1) if t is not None else -1 for t in target_ids], dtype=np.int64)
    ranks = target_ranks(s, tcols)
    top = topk_stable(s, k)
    gids = np.asarray([str(g) for g in gallery_ids], dtype=object)
    tscore = np.where(tcols >= 0, s[np.arange(len(s)), np.maximum(tcols, 0)], np.nan)
    return pd.DataFrame(
        {
            "query_id": list(query_ids),
            "target": list(target_ids),
            "rank": pd.Series(np.where(ranks > 0, ranks, np.nan)).astype("Int64"),
            "target_score": tscore,
            "top_ids": [list(gids[row]) for row in top],
            "top_scores": [np.take(s[i], row).tolist() for i, row in enumerate(top)],
        }
    )


__all__ = [
    "CIRR_KS",
    "SUBSET_KS",
    "cirr_recall_at_k",
    "cirr_subset_recall",
    "evaluate_cirr",
    "per_query_table",
    "webvid_recalls",
]
