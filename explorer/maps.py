"""Gallery map: 2-D points (``umap.parquet`` of ``precompute.umap``); query, top-k and target overlaid."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from covr_core.placement import place_points
from explorer.plots import map_figure_json

log = logging.getLogger(__name__)

ThumbUrl = Callable[[str], str]


def load_map_points(gallery: Any, thumb_url: ThumbUrl, colour_by: str = "kind") -> pd.DataFrame | None:
    """Map points of a gallery: ``id, x, y, group, caption, thumb_url`` (None without ``umap.parquet``).

    ``thumb_url(item_id)`` turns an item id into a URL the browser can load (thumbnail or image).
    """
    folder = getattr(gallery, "folder", None)
    if folder is None or not (Path(folder) / "umap.parquet").exists():
        return None
    pts = pd.read_parquet(Path(folder) / "umap.parquet")
    if not {"id", "x", "y"} <= set(pts.columns):
        log.warning("%s/umap.parquet lacks id/x/y columns: %s", folder, list(pts.columns))
        return None
    pts = pts[["id", "x", "y"]].copy()
    pts["id"] = pts["id"].astype(str)
    items = gallery.items.copy()
    items["id"] = items["id"].astype(str)
    cols = [c for c in ("id", "kind", "split", "caption") if c in items.columns]
    pts = pts.merge(items[cols], on="id", how="left")
    if colour_by == "kind+split" and {"kind", "split"} <= set(pts.columns):
        pts["group"] = pts["kind"].astype(str) + " · " + pts["split"].astype(str)
    else:
        pts["group"] = pts[colour_by].astype(str) if colour_by in pts.columns else "items"
    pts["caption"] = pts["caption"].fillna("").astype(str) if "caption" in pts.columns else ""
    pts["thumb_url"] = [thumb_url(i) for i in pts["id"]]
    return pts.reset_index(drop=True)


def place_by_neighbours(
    points: pd.DataFrame, gallery: Any, query: np.ndarray, n: int = 10
) -> tuple[float, float]:
    """Place a query on the map without refitting: ``covr_core.placement.place_points`` (similarity-weighted
    mean of the positions of its ``n`` nearest gallery items)."""
    ids = gallery.items["id"].astype(str)
    coords = points.set_index("id").reindex(ids)[["x", "y"]].to_numpy(dtype=float)
    ok = np.isfinite(coords).all(axis=1)
    emb = np.asarray(gallery.embeddings, dtype=np.float32)[ok]
    xy = place_points(np.asarray(query, dtype=np.float32), emb, coords[ok], k=n)[0]
    return float(xy[0]), float(xy[1])


def overlays_for(
    points: pd.DataFrame,
    query_xy: tuple[float, float] | None,
    topk_ids: Sequence[str],
    target_id: str | None = None,
    query_caption: str = "query",
    query_thumb: str = "",
) -> list[dict[str, Any]]:
    """Overlay traces: the query (star), its top-k (open circles) and the target (open diamond)."""
    pos = points.set_index("id")
    out: list[dict[str, Any]] = []

    def trace(name: str, ids: Sequence[str]) -> dict[str, Any]:
        ids = [str(i) for i in ids if str(i) in pos.index]
        sub = pos.loc[ids] if ids else pos.iloc[:0]
        return {
            "name": name,
            "x": sub["x"].tolist(),
            "y": sub["y"].tolist(),
            "ids": ids,
            "captions": sub["caption"].tolist(),
            "thumb_urls": sub["thumb_url"].tolist(),
        }

    if topk_ids:
        out.append(trace("top-k", topk_ids))
    if target_id is not None:
        out.append(trace("target", [target_id]))
    if query_xy is not None:
        out.append(
            {
                "name": "query",
                "x": [query_xy[0]],
                "y": [query_xy[1]],
                "ids": ["query"],
                "captions": [query_caption],
                "thumb_urls": [query_thumb],
            }
        )
    return out


def map_json(
    points: pd.DataFrame | None, overlays: list[dict[str, Any]] | None = None, title: str = ""
) -> dict[str, Any]:
    """The figure JSON for the map component (an empty figure with a note when there is no map)."""
    if points is None or points.empty:
        return {
            "data": [],
            "layout": {
                "title": {"text": "no map for this gallery: run python -m precompute.umap"},
                "height": 200,
            },
        }
    return map_figure_json(points, overlays, title=title)
