"""Stable ranking of score matrices: the one tie rule shared by the metrics and the CIRR submission files.

**Tie rule**: rankings are a *stable* descending sort of the scores, so equal scores keep gallery order
(lower column first). The rank of a target is ``1 + #(strictly higher) + #(equal with a lower column)``.
CoVR sorts with torch ``argsort``/``topk``, whose tie order is unspecified; with real float embeddings
ties do not happen, and this rule makes hand-built cases and repeated runs deterministic. Excluded
columns get ``-inf`` (CoVR writes -100 / -10; the same for ranking since scores are cosines).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from covr_core.datasets.cirr import CirrTriplet


def column_lookup(gallery_ids: Sequence[str]) -> dict[str, int]:
    """Gallery id -> column; raises ``ValueError`` when the ids are not unique."""
    lookup = {str(g): i for i, g in enumerate(gallery_ids)}
    if len(lookup) != len(gallery_ids):
        raise ValueError("gallery_ids are not unique")
    return lookup


def check_scores(scores: np.ndarray, n_queries: int, n_gallery: int) -> np.ndarray:
    """``scores`` as float32 ``[n_queries, n_gallery]``; raises ``ValueError`` on another shape or NaN."""
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


def mask_references(
    scores: np.ndarray, lookup: dict[str, int], triplets: Sequence[CirrTriplet]
) -> np.ndarray:
    """A copy of ``scores`` with each CIRR query's reference column set to ``-inf`` (CIRR's protocol)."""
    s = np.array(scores, dtype=np.float32, copy=True)
    ref = np.array([lookup.get(t.reference, -1) for t in triplets], dtype=np.int64)
    rows = np.nonzero(ref >= 0)[0]
    s[rows, ref[rows]] = -np.inf
    return s


def cirr_subset_order(
    scores: np.ndarray, lookup: dict[str, int], triplets: Sequence[CirrTriplet]
) -> list[list[str]]:
    """Per CIRR query: its ``img_set`` member names in the order of the full ranking (stable tie rule),
    the reference and members absent from the gallery removed."""
    width = max((len(t.members) for t in triplets), default=0)
    cols = np.full((len(triplets), width), -1, dtype=np.int64)
    for i, t in enumerate(triplets):
        for j, m in enumerate(t.members):
            if m != t.reference:
                cols[i, j] = lookup.get(m, -1)
    valid = cols >= 0
    member_scores = np.where(valid, scores[np.arange(len(scores))[:, None], np.where(valid, cols, 0)], -np.inf)
    # stable tie rule on the gallery column: sort by column first, then stable by descending score
    by_col = np.argsort(np.where(valid, cols, np.iinfo(np.int64).max), axis=1, kind="stable")
    ms = np.take_along_axis(member_scores, by_col, 1)
    order = np.take_along_axis(by_col, np.argsort(-ms, axis=1, kind="stable"), 1)
    ordered_valid = np.take_along_axis(valid, order, 1)
    return [[t.members[j] for j, ok in zip(order[i], ordered_valid[i]) if ok] for i, t in enumerate(triplets)]
