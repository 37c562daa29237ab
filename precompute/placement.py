"""Place new points on a saved 2-D map without refitting (and without importing umap-learn).

The app imports only this module: umap-learn's import and numba JIT take 15-90 s. A new embedding (a user's
query) lands at the similarity-weighted mean of the 2-D coordinates of its ``k`` nearest gallery items by
cosine similarity; the ``umap`` job writes what this needs (``umap.parquet``: ``id, x, y``, row-aligned
with the gallery, and ``umap.json`` with ``k``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

MAP_FILE = "umap.parquet"
MAP_META = "umap.json"


def place_points(query_embs: np.ndarray, gallery_embs: np.ndarray, coords: np.ndarray, k: int = 10,
                 temperature: float = 0.05) -> np.ndarray:
    """[N, 2] positions of ``query_embs`` ([N, d] or [d], L2-normalised) on the gallery's map.

    Each point is the softmax(cos / ``temperature``)-weighted mean of the coordinates of its ``k`` most
    similar gallery items, so a query equal to a gallery item lands (almost) on it.
    """
    q = np.atleast_2d(np.asarray(query_embs, dtype=np.float32))
    g = np.asarray(gallery_embs, dtype=np.float32)
    xy = np.asarray(coords, dtype=np.float64)
    if g.shape[0] != xy.shape[0]:
        raise ValueError(f"gallery has {g.shape[0]} rows but the map {xy.shape[0]}")
    k = int(max(1, min(k, g.shape[0])))
    sims = q @ g.T
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    s = np.take_along_axis(sims, top, axis=1).astype(np.float64)
    w = np.exp((s - s.max(axis=1, keepdims=True)) / temperature)
    w /= w.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkc->nc", w, xy[top]).astype(np.float32)


def load_map(gallery_folder: str | Path) -> tuple[pd.DataFrame, dict]:
    """The gallery's saved map (``id, x, y``) and its metadata (``k``, method, seed)."""
    folder = Path(gallery_folder)
    meta_path = folder / MAP_META
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {"k": 10}
    return pd.read_parquet(folder / MAP_FILE), meta
