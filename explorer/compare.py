"""Compare: one query through every available combiner, with the target's rank and the top-k overlap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from explorer.query import QueryResult, SearchOutcome


@dataclass
class CompareOutcome:
    """Per-combiner outcomes plus summary tables."""

    outcomes: dict[str, SearchOutcome]
    table: pd.DataFrame  #: combiner, w_mm, w_img, w_txt, target_rank, among, top1
    overlap: pd.DataFrame  #: square, |top-k(A) ∩ top-k(B)| / k
    elapsed_s: float


def topk_overlap(ids: dict[str, Sequence[str]]) -> pd.DataFrame:
    """Pairwise overlap of top-k id lists: |A ∩ B| / max(|A|, |B|) (1.0 on the diagonal)."""
    names = list(ids)
    rows = []
    for a in names:
        row = []
        for b in names:
            sa, sb = set(ids[a]), set(ids[b])
            row.append(round(len(sa & sb) / max(1, len(sa), len(sb)), 3))
        rows.append(row)
    return pd.DataFrame(rows, index=names, columns=names)


def compare_table(outcomes: dict[str, SearchOutcome]) -> pd.DataFrame:
    """One row per combiner: its weights, the target's rank (if known) with its scope, and its top-1 id."""
    rows = []
    for name, o in outcomes.items():
        rows.append(
            {
                "combiner": name,
                "w_mm": round(float(o.weights[0]), 3),
                "w_img": round(float(o.weights[1]), 3),
                "w_txt": round(float(o.weights[2]), 3),
                "target_rank": o.target_rank if o.target_rank is not None else "",
                "among": o.scope,
                "top1": o.hits[0].id if o.hits else "",
            }
        )
    return pd.DataFrame(rows, columns=["combiner", "w_mm", "w_img", "w_txt", "target_rank", "among", "top1"])


def compare_outcome(result: QueryResult) -> CompareOutcome:
    """The Compare view of one query run through several combiners (``explorer.query.run_query``)."""
    outcomes = result.outcomes
    return CompareOutcome(
        outcomes=outcomes,
        table=compare_table(outcomes),
        overlap=topk_overlap({c: o.ids for c, o in outcomes.items()}),
        elapsed_s=result.elapsed_s,
    )
