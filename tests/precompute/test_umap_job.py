"""``python -m precompute.umap``: gallery and query maps, and placing new points without umap-learn."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from covr_core.gallery import Gallery
from covr_core.query_folder import QuerySet
from covr_core.types import EncoderInfo, QueryEmbeddings
from precompute import umap as job
from covr_core.placement import load_map, place_points

INFO = EncoderInfo(name="lite", version="t", checkpoint="test", checkpoint_sha256="ab" * 32, dim=16)


def _clustered_gallery(folder, n_per=12, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 16))
    emb = np.concatenate([c + 0.05 * rng.normal(size=(n_per, 16)) for c in centres]).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    items = pd.DataFrame({"id": [f"i{k}" for k in range(len(emb))], "kind": "image",
                          "media": [f"i{k}.png" for k in range(len(emb))]})
    Gallery.build(emb, items, INFO, name="toy", media_root=str(folder)).save(folder)
    return emb


def _queries_folder(folder, emb):
    table = pd.DataFrame({"query_id": range(4), "reference": "r", "target": "t", "caption": "c"})
    QuerySet.build(QueryEmbeddings(emb[:4], emb[4:8], emb[8:12]), table, INFO, "toy-queries").save(folder)


@pytest.mark.slow
def test_umap_map_of_gallery_and_queries(tmp_path):
    emb = _clustered_gallery(tmp_path / "g")
    _queries_folder(tmp_path / "q", emb)
    res = job.run(gallery=str(tmp_path / "g"), queries=str(tmp_path / "q"), n_neighbors=8, seed=0)
    assert res["method"] == "umap" and res["queries"] == 4
    coords, meta = load_map(tmp_path / "g")
    assert coords["id"].tolist() == [f"i{k}" for k in range(36)] and meta["k"] == 10
    xy = coords[["x", "y"]].to_numpy()
    # clusters stay together: mean within-cluster distance << mean between-cluster distance
    labels = np.repeat(np.arange(3), 12)
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    same = labels[:, None] == labels[None]
    assert d[same].mean() < 0.5 * d[~same].mean()
    q = pd.read_parquet(tmp_path / "q" / "umap.parquet")
    assert list(q.columns) == ["query_id", "x_mm", "y_mm", "x_img", "y_img", "x_txt", "y_txt"]
    # a query equal to a gallery item lands inside that item's cluster (f_mm = items 0-3, f_txt = items 8-11)
    centroids = np.stack([xy[labels == c].mean(axis=0) for c in range(3)])
    for cols in (["x_mm", "y_mm"], ["x_txt", "y_txt"]):
        placed = q[cols].to_numpy()
        assert (np.linalg.norm(placed[:, None] - centroids[None], axis=-1).argmin(axis=1) == 0).all()
    # same seed -> same map
    job.run(gallery=str(tmp_path / "g"), n_neighbors=8, seed=0)
    np.testing.assert_allclose(load_map(tmp_path / "g")[0][["x", "y"]].to_numpy(), xy, atol=1e-4)


def test_tiny_gallery_falls_back_to_pca(tmp_path):
    _clustered_gallery(tmp_path / "g", n_per=2)
    res = job.run(gallery=str(tmp_path / "g"))
    assert res["method"] == "pca"
    coords, meta = load_map(tmp_path / "g")
    assert len(coords) == 6 and np.isfinite(coords[["x", "y"]].to_numpy()).all() and meta["method"] == "pca"
    assert Gallery.load(tmp_path / "g").items["id"].tolist() == coords["id"].tolist()  # gallery still loads


def test_place_points_weighted_neighbours():
    g = np.eye(4, dtype=np.float32)
    coords = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=np.float32)
    np.testing.assert_allclose(place_points(g[1], g, coords, k=2), [[10, 0]], atol=1e-3)
    mid = np.array([1, 1, 0, 0], dtype=np.float32) / np.sqrt(2)
    np.testing.assert_allclose(place_points(mid, g, coords, k=2), [[5, 0]], atol=1e-3)
    assert place_points(np.stack([g[0], g[3]]), g, coords, k=10).shape == (2, 2)


def test_placement_module_does_not_import_umap():
    code = "import sys, covr_core.placement; assert 'umap' not in sys.modules and 'numba' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_large_gallery_is_fitted_on_a_sample_and_the_rest_placed(tmp_path):
    emb = _clustered_gallery(tmp_path / "g", n_per=20)  # 60 items; the map is fitted on 24 of them
    _queries_folder(tmp_path / "q", emb)
    res = job.run(gallery=str(tmp_path / "g"), queries=str(tmp_path / "q"), fit_sample=24, min_umap_items=1000)
    assert (res["fit_sample"], res["count"], res["queries"]) == (24, 60, 4)
    coords, meta = load_map(tmp_path / "g")
    assert meta["fit_sample"] == 24 and len(coords) == 60
    xy = coords[["x", "y"]].to_numpy()
    sample = np.sort(np.random.default_rng(0).choice(60, size=24, replace=False))
    np.testing.assert_allclose(xy[sample], job.pca_2d(emb[sample]), atol=1e-5)  # fitted rows: the fit itself
    labels = np.repeat(np.arange(3), 20)
    centroids = np.stack([xy[sample][labels[sample] == c].mean(axis=0) for c in range(3)])
    nearest = np.linalg.norm(xy[:, None] - centroids[None], axis=-1).argmin(axis=1)
    assert (nearest == labels).all()  # every placed item lands in its own cluster
    q = pd.read_parquet(tmp_path / "q" / "umap.parquet")
    placed = q[["x_mm", "y_mm"]].to_numpy()  # f_mm = items 0-3 (cluster 0)
    assert (np.linalg.norm(placed[:, None] - centroids[None], axis=-1).argmin(axis=1) == 0).all()
    with pytest.raises(TypeError, match="fitsample"):
        job.run(gallery=str(tmp_path / "g"), fitsample=10)
