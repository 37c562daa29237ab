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


def weighted_coords(sims: np.ndarray, neighbours: np.ndarray, coords: np.ndarray,
                    temperature: float = 0.05) -> np.ndarray:
    """[N, 2]: the softmax(``sims`` / ``temperature``)-weighted mean of ``coords[neighbours]`` per row
    (``sims``, ``neighbours``: [N, k] similarities and rows of the k nearest map points)."""
    s = np.asarray(sims, dtype=np.float64)
    w = np.exp((s - s.max(axis=1, keepdims=True)) / temperature)
    w /= w.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkc->nc", w, np.asarray(coords, dtype=np.float64)[neighbours]).astype(np.float32)


def place_points(query_embs: np.ndarray, gallery_embs: np.ndarray, coords: np.ndarray, k: int = 10,
                 temperature: float = 0.05) -> np.ndarray:
    """[N, 2] positions of ``query_embs`` ([N, d] or [d], L2-normalised) on the gallery's map.

    Each point is the softmax(cos / ``temperature``)-weighted mean of the coordinates of its ``k`` most
    similar gallery items, so a query equal to a gallery item lands (almost) on it.
    """
    q = np.atleast_2d(np.asarray(query_embs, dtype=np.float32))
    g = np.asarray(gallery_embs, dtype=np.float32)
    if g.shape[0] != np.shape(coords)[0]:
        raise ValueError(f"gallery has {g.shape[0]} rows but the map {np.shape(coords)[0]}")
    k = int(max(1, min(k, g.shape[0])))
    sims = q @ g.T
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return weighted_coords(np.take_along_axis(sims, top, axis=1), top, coords, temperature)


def load_map(gallery_folder: str | Path) -> tuple[pd.DataFrame, dict]:
    """The gallery's saved map (``id, x, y``) and its metadata (``k``, method, seed)."""
    folder = Path(gallery_folder)
    meta_path = folder / MAP_META
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {"k": 10}
    return pd.read_parquet(folder / MAP_FILE), meta


def anchor_index(anchors: np.ndarray, exact_below: int = 20_000, nprobe: int = 32):
    """A FAISS inner-product index over the map's anchor points: exact below ``exact_below`` anchors, else
    IVF (``4 sqrt(n)`` lists, ``nprobe`` probed), which places millions of points in minutes on a CPU."""
    import faiss

    a = np.ascontiguousarray(anchors, dtype=np.float32)
    n, d = a.shape
    if n < exact_below:
        index = faiss.IndexFlatIP(d)
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, int(4 * np.sqrt(n)), faiss.METRIC_INNER_PRODUCT)
        index.train(a)
        index.nprobe = nprobe
    index.add(a)
    return index


def place_many(points: np.ndarray, index, anchor_coords: np.ndarray, k: int = 10, temperature: float = 0.05,
               chunk: int = 16_384) -> np.ndarray:
    """``place_points`` for millions of points (memory-mapped is fine): the k nearest anchors come from
    ``index`` (``anchor_index``), ``chunk`` points at a time, so memory stays at one chunk."""
    out = np.empty((len(points), 2), dtype=np.float32)
    k = int(max(1, min(k, index.ntotal)))
    for start in range(0, len(points), chunk):
        q = np.ascontiguousarray(points[start:start + chunk], dtype=np.float32)
        sims, nb = index.search(q, k)
        lost = (nb < 0).all(axis=1)  # IVF: no anchor in the probed lists -> search every list for those
        if lost.any():
            probe, index.nprobe = index.nprobe, index.nlist
            sims[lost], nb[lost] = index.search(q[lost], k)
            index.nprobe = probe
        missing = nb < 0  # fewer than k anchors found: those slots weigh nothing
        sims[missing], nb[missing] = -np.inf, 0
        out[start:start + len(q)] = weighted_coords(sims, nb, anchor_coords, temperature)
    return out
