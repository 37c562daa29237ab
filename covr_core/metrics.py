"""Benchmark metrics over a score matrix (numpy, vectorised): CIRR and WebVid-CoVR recalls.

Conventions (CoVR, covr.md §4):

- Recalls are percentages (x100). Excluded columns (the reference for CIRR, same-video targets for
  WebVid-CoVR) get ``-inf`` (CoVR writes -100 / -10; the same for ranking since scores are cosines).
- **Tie rule**: rankings are a *stable* descending sort of the scores, so equal scores keep gallery order
  (lower column first). The rank of a target is ``1 + #(strictly higher) + #(equal with a lower column)``.
  CoVR sorts with torch ``argsort``/``topk``, whose tie order is unspecified; with real float embeddings
  ties do not happen, and this rule makes hand-built cases and repeated runs deterministic.
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

logger = logging.getLogger(__name__)

CIRR_KS = (1, 5, 10, 50)
SUBSET_KS = (1, 2, 3)


def _column_lookup(gallery_ids: Sequence[str]) -> dict[str, int]:
    lookup = {str(g): i for i, g in enumerate(gallery_ids)}
    if len(lookup) != len(gallery_ids):
        raise ValueError("gallery_ids are not unique")
    return lookup


def _check_scores(scores: np.ndarray, n_queries: int, n_gallery: int) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float32)
    if s.shape != (n_queries, n_gallery):
        raise ValueError(f"scores must be [{n_queries}, {n_gallery}], got {s.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return s


def target_ranks(
    scores: np.ndarray, target_cols: np.ndarray, excluded: np.ndarray | None = None
) -> np.ndarray:
    """1-based rank of ``target_cols[i]`` in row i (stable tie rule); 0 where the target is missing (-1).

    ``excluded``: optional bool [Q, G] mask of columns removed from the ranking (never the target's).
    """
    s = np.asarray(scores, dtype=np.float32)
    if excluded is not None:
        s = np.where(excluded, -np.inf, s)
    cols = np.asarray(target_cols, dtype=np.int64)
    present = cols >= 0
    t = s[np.arange(len(s)), np.where(present, cols, 0)][:, None]
    col_idx = np.arange(s.shape[1])[None, :]
    higher = (s > t).sum(axis=1)
    tied_before = ((s == t) & (col_idx < np.where(present, cols, 0)[:, None])).sum(axis=1)
    return np.where(present, higher + tied_before + 1, 0).astype(np.int64)


def _recalls(ranks: np.ndarray, ks: Sequence[int], prefix: str = "R@") -> dict[str, float]:
    hit = ranks > 0
    return {f"{prefix}{k}": float(100.0 * np.mean(hit & (ranks <= k))) if len(ranks) else 0.0 for k in ks}


def topk_stable(scores: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """[Q, k] columns of the k best scores per row, stable (ties by lower column), chunked over rows."""
    s = np.asarray(scores)
    n_cols = s.shape[1]
    k = min(k, n_cols)
    out = np.empty((len(s), k), dtype=np.int64)
    if k == 0:
        return out
    for start in range(0, len(s), chunk):
        neg = -s[start : start + chunk]
        if n_cols <= 4 * k:
            out[start : start + len(neg)] = np.argsort(neg, axis=1, kind="stable")[:, :k]
            continue
        part = np.argpartition(neg, k - 1, axis=1)[:, :k]  # the k best, unordered
        kth = np.take_along_axis(neg, part, 1).max(axis=1, keepdims=True)
        exact = (neg <= kth).sum(axis=1) == k  # no tie crosses the k-th place
        idx = np.sort(part, axis=1)  # gallery order first, then a stable sort by score
        idx = np.take_along_axis(idx, np.argsort(np.take_along_axis(neg, idx, 1), axis=1, kind="stable"), 1)
        tied = np.nonzero(~exact)[0]
        if len(tied):  # ties at the boundary: full stable sort for those rows only
            idx[tied] = np.argsort(neg[tied], axis=1, kind="stable")[:, :k]
        out[start : start + len(neg)] = idx
    return out


def _reference_masked(
    scores: np.ndarray, lookup: dict[str, int], triplets: Sequence[CirrTriplet]
) -> np.ndarray:
    s = np.array(scores, dtype=np.float32, copy=True)
    ref = np.array([lookup.get(t.reference, -1) for t in triplets], dtype=np.int64)
    rows = np.nonzero(ref >= 0)[0]
    s[rows, ref[rows]] = -np.inf
    return s


def _labelled(triplets: Sequence[CirrTriplet]) -> None:
    if any(t.target_hard is None for t in triplets):
        raise ValueError("these triplets have no target labels (CIRR test1): use write_cirr_submission")


def cirr_recall_at_k(scores: np.ndarray, gallery_ids: Sequence[str], triplets: Sequence[CirrTriplet],
                     ks: Sequence[int] = CIRR_KS) -> dict:  # fmt: skip
    """CIRR Recall@K (x100) over the full gallery with each query's reference removed.

    Returns ``R@K`` keys plus ``n_queries`` and ``missing_targets`` (targets absent from the gallery, misses).
    """
    _labelled(triplets)
    lookup = _column_lookup(gallery_ids)
    s = _reference_masked(_check_scores(scores, len(triplets), len(gallery_ids)), lookup, triplets)
    cols = np.array([lookup.get(t.target_hard, -1) for t in triplets], dtype=np.int64)
    ranks = target_ranks(s, cols)
    missing = int((cols < 0).sum())
    if missing:
        logger.warning("%d CIRR target(s) are not in the gallery (counted as misses)", missing)
    return {**_recalls(ranks, ks), "n_queries": len(triplets), "missing_targets": missing}


def _subset_order(s: np.ndarray, lookup: dict[str, int], triplets: Sequence[CirrTriplet]):
    """Per query: member names ordered by the full ranking (reference and absent members removed)."""
    width = max((len(t.members) for t in triplets), default=0)
    cols = np.full((len(triplets), width), -1, dtype=np.int64)
    for i, t in enumerate(triplets):
        for j, m in enumerate(t.members):
            if m != t.reference:
                cols[i, j] = lookup.get(m, -1)
    valid = cols >= 0
    member_scores = np.where(valid, s[np.arange(len(s))[:, None], np.where(valid, cols, 0)], -np.inf)
    # stable tie rule on the gallery column: sort by column first, then stable by descending score
    by_col = np.argsort(np.where(valid, cols, np.iinfo(np.int64).max), axis=1, kind="stable")
    ms = np.take_along_axis(member_scores, by_col, 1)
    order = np.take_along_axis(by_col, np.argsort(-ms, axis=1, kind="stable"), 1)
    ordered_valid = np.take_along_axis(valid, order, 1)
    names = []
    for i, t in enumerate(triplets):
        names.append([t.members[j] for j, ok in zip(order[i], ordered_valid[i]) if ok])
    return names


def cirr_subset_recall(scores: np.ndarray, gallery_ids: Sequence[str], triplets: Sequence[CirrTriplet],
                       ks: Sequence[int] = SUBSET_KS, graded: bool = False) -> dict:  # fmt: skip
    """CIRR Recall_subset@K (x100) within each query's ``img_set`` members, reference removed.

    ``graded=False`` (keys ``Rs@K``): hit when ``target_hard`` is among the top-K members.
    ``graded=True`` (keys ``Rs_soft@K``, CoVR's val code): credit max(0, best ``target_soft`` value
    among the top-K members); labels of the reference are never counted.
    """
    _labelled(triplets)
    lookup = _column_lookup(gallery_ids)
    s = _reference_masked(_check_scores(scores, len(triplets), len(gallery_ids)), lookup, triplets)
    ordered = _subset_order(s, lookup, triplets)
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
    s = _check_scores(scores, n, n)
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
    lookup = _column_lookup(gallery_ids)
    s = np.array(_check_scores(scores, len(query_ids), len(gallery_ids)), copy=True)
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


from covr_core.cirr_submission import (  # noqa: E402  (re-exported: part of the metrics API)
    read_cirr_submission,
    validate_cirr_submission,
    write_cirr_submission,
)

__all__ = [
    "cirr_recall_at_k",
    "cirr_subset_recall",
    "evaluate_cirr",
    "per_query_table",
    "read_cirr_submission",
    "target_ranks",
    "topk_stable",
    "validate_cirr_submission",
    "webvid_recalls",
    "write_cirr_submission",
]
