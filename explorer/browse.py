"""Benchmark browser: evaluation runs (``per_query.parquet`` of ``precompute.evaluate``), filters, deep links.

An evaluation folder holds ``per_query.parquet`` (``query_id, combiner, reference, target, rank, top_ids,
top_scores, w_mm, w_img, w_txt``) and ``metrics.json`` (``info.queries``: the queries folder whose
``queries.parquet`` gives each query's ``caption``; ``info.gallery``: the gallery folder). The app looks for
them under ``<data>/evaluations/<name>/``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlencode

import numpy as np
import pandas as pd

from covr_core.types import WEIGHT_NAMES

if TYPE_CHECKING:
    from explorer.services import Services

log = logging.getLogger(__name__)

OUTCOMES = ("all", "success", "failure")


@dataclass
class Benchmark:
    """One evaluation run: the long per-query table plus captions and its info block."""

    name: str
    folder: Path
    per_query: pd.DataFrame
    captions: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    stamp: tuple = ()  #: ``benchmark_stamp`` of the folder when it was read

    @property
    def combiners(self) -> list[str]:
        """Combiners evaluated, in file order."""
        return list(dict.fromkeys(self.per_query["combiner"].astype(str)))

    @property
    def gallery_folder(self) -> Path | None:
        """The gallery folder the run used (None when unknown)."""
        g = self.info.get("gallery")
        return _resolve(g, self.folder) if g else None


def _resolve(path: str, base: Path) -> Path | None:
    p = Path(path)
    for cand in (p, base / p, base.parent / p, base.parent.parent / p):
        if cand.exists():
            return cand.resolve()
    return None


def find_benchmarks(data_dir: str | Path) -> dict[str, Path]:
    """Evaluation folders under ``<data>/evaluations/`` (name -> folder), sorted by name; hidden folders
    (an evaluation being written) are skipped."""
    root = Path(data_dir) / "evaluations"
    if not root.is_dir():
        return {}
    return {p.parent.name: p.parent for p in sorted(root.glob("*/per_query.parquet"))
            if not p.parent.name.startswith(".")}


def benchmark_stamp(folder: Path) -> tuple:
    """Changes when an evaluation folder is rewritten (modification times and sizes of its two files)."""
    out = []
    for name in ("per_query.parquet", "metrics.json"):
        try:
            st = (folder / name).stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def benchmark_combiner_names(folder: Path) -> list[str]:
    """Combiners of an evaluation folder from its ``metrics.json`` (the parquet only when that is missing)."""
    try:
        names = json.loads((folder / "metrics.json").read_text()).get("info", {}).get("combiners")
    except (OSError, json.JSONDecodeError):
        names = None
    if names:
        return [str(n) for n in names]
    pq = pd.read_parquet(folder / "per_query.parquet", columns=["combiner"])
    return list(dict.fromkeys(pq["combiner"].astype(str)))


def request_base_url(headers: Mapping[str, str], default: str = "") -> str:
    """The page's own base URL for deep links: the browser's ``Origin``, else the (forwarded) host and
    scheme of the request, so an API call to any host/port gets links to that host/port."""
    h = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    origin = h.get("origin", "").strip()
    if origin and origin != "null":
        return origin.rstrip("/")
    host = (h.get("x-forwarded-host") or h.get("host") or "").split(",")[0].strip()
    if not host:
        return default
    scheme = (h.get("x-forwarded-proto") or "http").split(",")[0].strip()
    return f"{scheme}://{host}"


def page_of(table: pd.DataFrame, page: int, per_page: int) -> tuple[pd.DataFrame, str]:
    """One page of a filtered table and the line that says which rows of how many are shown."""
    total = len(table)
    pages = max(1, -(-total // per_page))
    page = min(max(1, int(page or 1)), pages)
    start = (page - 1) * per_page
    part = table.iloc[start:start + per_page]
    if total == 0:
        return part, "No query matches."
    return part, (f"Rows {start + 1:,}–{start + len(part):,} of {total:,} matching queries "
                  f"(page {page} of {pages}; {per_page:,} per page)")


def load_benchmark(folder: str | Path, name: str | None = None) -> Benchmark:
    """Read an evaluation folder (captions come from the queries folder named in ``metrics.json``)."""
    folder = Path(folder)
    pq = pd.read_parquet(folder / "per_query.parquet")
    pq["query_id"] = pq["query_id"].astype(str)
    info: dict[str, Any] = {}
    if (folder / "metrics.json").exists():
        info = json.loads((folder / "metrics.json").read_text()).get("info", {})
    captions: dict[str, str] = {}
    qdir = _resolve(info["queries"], folder) if info.get("queries") else None
    if qdir is not None and (qdir / "queries.parquet").exists():
        q = pd.read_parquet(qdir / "queries.parquet", columns=None)
        if {"query_id", "caption"} <= set(q.columns):
            captions = dict(zip(q["query_id"].astype(str), q["caption"].astype(str)))
    return Benchmark(name=name or folder.name, folder=folder, per_query=pq, captions=captions, info=info)


def wide_table(bench: Benchmark, combiner: str, k: int = 10) -> pd.DataFrame:
    """One row per query: caption, reference, target, ``rank_<C>`` for every combiner, the chosen combiner's
    weights, ``success`` (its rank <= k) and ``disagree`` (combiners differ on success at k)."""
    pq = bench.per_query
    if combiner not in bench.combiners:
        raise ValueError(f"combiner {combiner!r} not evaluated here (have {bench.combiners})")
    base = pq[pq["combiner"] == combiner][["query_id", "reference", "target", "rank", *WEIGHT_NAMES]].copy()
    ranks = pq.pivot_table(index="query_id", columns="combiner", values="rank", aggfunc="first")
    ranks.columns = [f"rank_{c}" for c in ranks.columns]
    out = base.merge(ranks, left_on="query_id", right_index=True, how="left")
    out.insert(1, "caption", out["query_id"].map(bench.captions).fillna(""))
    valid = out["rank"].astype(float) > 0
    out["success"] = valid & (out["rank"].astype(float) <= k)
    rank_cols = [c for c in out.columns if c.startswith("rank_")]
    succ = (out[rank_cols].astype(float) <= k) & (out[rank_cols].astype(float) > 0)
    out["disagree"] = succ.any(axis=1) & ~succ.all(axis=1)
    return out.drop(columns=["rank"]).reset_index(drop=True)


def filter_queries(
    table: pd.DataFrame,
    text: str = "",
    outcome: str = "all",
    disagreement: bool = False,
    limit: int | None = None,
) -> pd.DataFrame:
    """Filter the wide table by text (caption, ids; case-insensitive), success/failure at k, disagreement."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}")
    mask = np.ones(len(table), dtype=bool)
    text = (text or "").strip().lower()
    if text:
        hay = (
            table["caption"].astype(str)
            + " "
            + table["query_id"].astype(str)
            + " "
            + table["reference"].astype(str)
            + " "
            + table["target"].astype(str)
        ).str.lower()
        mask &= hay.str.contains(text, regex=False).to_numpy()
    if outcome == "success":
        mask &= table["success"].to_numpy(dtype=bool)
    elif outcome == "failure":
        mask &= ~table["success"].to_numpy(dtype=bool)
    if disagreement:
        mask &= table["disagree"].to_numpy(dtype=bool)
    out = table[mask]
    return out.head(limit) if limit else out


def query_detail(bench: Benchmark, query_id: str, combiner: str) -> dict[str, Any]:
    """One query for one combiner: reference, caption, target, rank, top ids/scores, weights."""
    pq = bench.per_query
    rows = pq[(pq["query_id"] == str(query_id)) & (pq["combiner"] == combiner)]
    if rows.empty:
        raise KeyError(f"query {query_id!r} not found in {bench.name} for {combiner}")
    r = rows.iloc[0]
    return {
        "benchmark": bench.name,
        "query_id": str(query_id),
        "combiner": combiner,
        "caption": bench.captions.get(str(query_id), ""),
        "reference": str(r["reference"]),
        "target": str(r["target"]) if str(r["target"]) else None,
        "rank": int(r["rank"]),
        "top_ids": [str(i) for i in r["top_ids"]],
        "top_scores": [float(s) for s in r["top_scores"]],
        "weights": [float(r[w]) for w in WEIGHT_NAMES],
    }


def make_deep_link(base_url: str, benchmark: str, query_id: str, combiner: str | None = None) -> str:
    """URL that reopens a benchmark query (``?bench=...&query=...&combiner=...``)."""
    params = {"bench": benchmark, "query": query_id}
    if combiner:
        params["combiner"] = combiner
    return f"{base_url.rstrip('/')}/?{urlencode(params)}"


def parse_deep_link(params: Mapping[str, str]) -> dict[str, str] | None:
    """Read ``bench``, ``query`` (and optional ``combiner``) from URL query parameters; None when absent."""
    bench, query = params.get("bench"), params.get("query")
    if not bench or not query:
        return None
    out = {"bench": str(bench)[:200], "query": str(query)[:200]}
    if params.get("combiner"):
        out["combiner"] = str(params["combiner"])[:20]
    return out


@dataclass
class QueryView:
    """A benchmark query ready to show: reference -> text -> target, and the stored results."""

    detail: dict[str, Any]
    gallery: str
    reference_path: str | None  #: an image (a video reference gives its middle frame): the query image
    target_path: str | None  #: the target's media (image or video)
    results: list[tuple[str, str]]  #: (media path, "#rank · id · score")
    reference_media: str | None = None  #: the reference's media (image or video)

    def markdown(self) -> str:
        """Caption, ids, rank and weights of the query."""
        d = self.detail
        w = d["weights"]
        rank = d["rank"]
        among = d.get("among")
        rank_txt = (f"rank of the target: **{rank}**" + (f" among {among}" if among else "")
                    if rank and rank > 0 else "no labelled target")
        return (
            f"**{d['benchmark']} · query {d['query_id']}** ({d['combiner']}: "
            f"w_mm {w[0]:.2f}, w_img {w[1]:.2f}, "
            f"w_txt {w[2]:.2f})\n\nreference `{d['reference']}` → *“{d['caption']}”* → target "
            f"`{d['target']}` · {rank_txt}"
        )


def open_query(services: Services, bench_name: str, query_id: str, combiner: str | None = None) -> QueryView:
    """Resolve a benchmark query's media through the services' galleries (missing files become None)."""
    from explorer.query import Hit, benchmark_removed, candidate_count, scope_text
    from explorer.search import benchmark_protocol, default_combiner, is_video_path, outlined_copy
    from explorer.search import video_still_path

    bench = services.get_benchmark(bench_name)
    combiner = combiner if combiner in bench.combiners else default_combiner(bench.combiners)
    d = query_detail(bench, str(query_id), combiner)
    gname = services.gallery_for_benchmark(bench)
    gal, proto = services.get_gallery(gname), benchmark_protocol(bench)
    removed = benchmark_removed(gal, proto, d["reference"], d["target"])
    d["among"] = scope_text(candidate_count(gal, proto, removed.reference), proto.noun)

    def path_of(item_id: str | None) -> str | None:
        if not item_id:
            return None
        try:
            p = services.item_path(gname, item_id)
        except (KeyError, ValueError):
            return None
        return str(p) if Path(p).exists() else None

    ref_media = ref = path_of(d["reference"])
    if ref and is_video_path(ref):
        ref = video_still_path(ref, services.cache_dir)
    results = []
    for r, (iid, s) in enumerate(zip(d["top_ids"], d["top_scores"]), start=1):
        p = path_of(iid)
        if p is None:
            continue
        is_t = d["target"] is not None and iid == d["target"]
        if is_t and not is_video_path(p):
            p = outlined_copy(p, services.cache_dir / "outlined")
        results.append((p, Hit(r, iid, s, "", p, is_target=is_t).label))
    return QueryView(
        detail=d, gallery=gname, reference_path=ref, target_path=path_of(d["target"]), results=results,
        reference_media=ref_media,
    )
