"""Approximate gallery indexes (HNSW, IVF): recall@10 against exact search on clustered data.

Uniform random 256-d vectors defeat every approximate index (all distances look alike), so these tests
use a mixture of Gaussian clusters, like real image/video embeddings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from covr_core import gallery_index as gi
from covr_core.gallery import Gallery
from covr_core.types import EncoderInfo

DIM = 256
ENC = EncoderInfo(name="blip-large", version="1", checkpoint="x", checkpoint_sha256="", dim=DIM)


def clustered(
    n: int, dim: int = DIM, n_clusters: int = 1000, spread: float = 0.6, seed: int = 0
) -> np.ndarray:
    """Unit vectors from a mixture of Gaussian clusters around random unit centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, n_clusters, n)]
    x = x + rng.standard_normal((n, dim)).astype(np.float32) * (spread / np.sqrt(dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def table(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"i{i}" for i in range(n)], "kind": "image", "media": "m.png"})


@pytest.mark.slow
def test_hnsw_recall_at_10_on_100k_clustered(tmp_path: Path) -> None:
    data = clustered(100_000 + 300, seed=1)
    base, queries = data[:100_000], data[100_000:]  # held-out queries from the same mixture
    g = Gallery.build(base, table(100_000), ENC, "big", "/m", index_type="hnsw", dtype="float16")
    assert g.manifest["index_params"] == {"M": 32, "efConstruction": 40, "efSearch": 256}
    assert g.manifest["index_recall_at_10"] >= 0.95  # measured at build time, stored
    exact = gi.exact_topk(np.asarray(g.embeddings, dtype=np.float32), queries, 10)
    approx = g.search(queries, 10).rows
    assert gi.recall_at_k(approx, exact) >= 0.95
    g.save(tmp_path / "big")
    loaded = Gallery.load(tmp_path / "big", ENC)  # memory-mapped HNSW index
    assert loaded.manifest["index_type"] == "hnsw"
    np.testing.assert_array_equal(loaded.search(queries[:20], 10).rows, approx[:20])


def test_ivf_and_hnsw_small_with_exclusion_and_ef(tmp_path: Path) -> None:
    data = clustered(2_000, dim=64, n_clusters=50)
    enc = EncoderInfo("lite", "1", "x", "", 64)
    for kind in ("hnsw", "ivf"):
        g = Gallery.build(data, table(2_000), enc, kind, "/m", index_type=kind)
        assert g.manifest["index_recall_at_10"] >= 0.9
        hits = g.search(data[:3], 10, reference_ids=["i0", "i1", "i2"])
        assert all(len(ids) == 10 and f"i{q}" not in ids for q, ids in enumerate(hits.ids))
    g = Gallery.build(data, table(2_000), enc, "h", "/m", index_type="hnsw", index_params={"M": 16})
    low = g.search(data[:50], 10, ef_search=10)
    assert low.rows.shape == (50, 10) and (low.rows >= 0).all()
    with pytest.raises(ValueError, match="unknown index_type"):
        Gallery.build(data, table(2_000), enc, "h", "/m", index_type="lsh")


def test_build_raises_ef_search_until_target_recall_and_load_keeps_it(tmp_path):
    """A too-small efSearch is raised at build time until recall@10 meets the target, and survives a reload."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((50, 64)).astype(np.float32)
    x = centres[rng.integers(0, 50, 20_000)] + 0.6 / 8 * rng.standard_normal((20_000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    items = pd.DataFrame({"id": [f"i{i}" for i in range(len(x))], "kind": "image", "media": "m.png"})
    enc = EncoderInfo("bench", "1", "none", "", 64)
    low = Gallery.build(x, items, enc, "low", "/", index_type="hnsw",
                        index_params={"efSearch": 10, "efConstruction": 40, "M": 16}, target_recall=0.0)
    tuned = Gallery.build(x, items, enc, "tuned", "/", index_type="hnsw",
                          index_params={"efSearch": 10, "efConstruction": 40, "M": 16}, target_recall=0.97)
    assert low.manifest["index_params"]["efSearch"] == 10
    assert low.manifest["index_recall_at_10"] < 0.97  # the premise: ef 10 loses recall on this graph
    assert tuned.manifest["index_params"]["efSearch"] > 10
    assert tuned.manifest["index_recall_at_10"] >= 0.97
    tuned.save(tmp_path / "g")
    again = Gallery.load(tmp_path / "g", expected=enc)
    assert again.index.hnsw.efSearch == tuned.manifest["index_params"]["efSearch"]
