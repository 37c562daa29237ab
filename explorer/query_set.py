"""Composed query sets (``assets/benchmark/demo_queries.json``): format owner and evaluation through the
app's own query path (``explorer.query.run_query``, default settings: near-duplicates hidden).

File format (JSON): ``name``, ``version``, ``description``, ``provenance``, ``licence``, ``gallery`` and
``queries``: a list of ``{"id", "reference", "text", "target"}`` where reference and target are ids of
the gallery (``assets/gallery.csv`` for the bundled demo set).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import pandas as pd

from explorer.query import Protocol, make_reference, run_query
from explorer.search import item_reference, load_reference

if TYPE_CHECKING:
    from explorer.services import Services

DEMO_QUERIES = Path(__file__).resolve().parent.parent / "assets" / "benchmark" / "demo_queries.json"


@dataclass(frozen=True)
class ComposedQuery:
    """One query of the set: reference id + modification text -> target id."""

    id: str
    reference: str
    text: str
    target: str


@dataclass(frozen=True)
class ComposedQuerySet:
    """A composed query set file (see the module docstring)."""

    name: str
    queries: tuple[ComposedQuery, ...]
    provenance: str
    licence: str
    description: str = ""

    @classmethod
    def load(cls, path: str | Path = DEMO_QUERIES) -> "ComposedQuerySet":
        """Read and check a query set file (``ValueError`` naming the problem)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        for key in ("name", "queries", "provenance", "licence"):
            if key not in data:
                raise ValueError(f"{path}: missing {key!r}")
        queries = []
        for i, q in enumerate(data["queries"]):
            missing = {"id", "reference", "text", "target"} - set(q)
            if missing:
                raise ValueError(f"{path}: query {i} lacks {sorted(missing)}")
            queries.append(ComposedQuery(str(q["id"]), str(q["reference"]), str(q["text"]), str(q["target"])))
        ids = [q.id for q in queries]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{path}: duplicate query ids")
        return cls(
            str(data["name"]),
            tuple(queries),
            str(data["provenance"]),
            str(data["licence"]),
            str(data.get("description", "")),
        )

    def check_ids(self, gallery_ids: Sequence[str]) -> None:
        """``ValueError`` when a reference or target is not a gallery id, or equals its reference."""
        known = set(map(str, gallery_ids))
        for q in self.queries:
            for item in (q.reference, q.target):
                if item not in known:
                    raise ValueError(f"query {q.id}: {item!r} is not in the gallery")
            if q.reference == q.target:
                raise ValueError(f"query {q.id}: the target is the reference")


def evaluate_query_set(
    services: Services,
    qset: ComposedQuerySet,
    gallery_name: str | None = None,
    combiners: Sequence[str] | None = None,
    k: int = 10,
) -> pd.DataFrame:
    """Run every query through ``run_query`` (the app's defaults: a free query, near-duplicates hidden) and
    return one row per (query, combiner): ``query_id, combiner, rank, candidates, hidden``."""
    gallery_name = gallery_name or services.default_gallery
    combiners = list(combiners or services.combiners())
    rows = []
    for q in qset.queries:
        image, video = item_reference(services, gallery_name, q.reference)
        ref = make_reference(services, load_reference(image), q.reference, f"gallery:{q.reference}")
        res = run_query(services, ref, q.text, combiners, gallery_name, k, q.target, Protocol("free"))
        for name, out in res.outcomes.items():
            rows.append(
                {
                    "query_id": q.id,
                    "combiner": name,
                    "rank": out.target_rank,
                    "candidates": out.candidates,
                    "hidden": len(res.removed.near_duplicates),
                }
            )
    return pd.DataFrame(rows)


def summarise(ranks: pd.DataFrame, ks: Sequence[int] = (1, 3)) -> pd.DataFrame:
    """Per combiner: the share (%) of queries whose target is in the top k, for each k."""
    out = []
    for name, sub in ranks.groupby("combiner", sort=False):
        r = sub["rank"].astype(float)
        row = {"combiner": name, "queries": len(sub)}
        row.update({f"top{k}": round(100.0 * float(((r > 0) & (r <= k)).mean()), 1) for k in ks})
        out.append(row)
    return pd.DataFrame(out)
