"""Gallery search latency, index build time, memory and approximate recall on clustered 256-d data.

One JSON line per (size, index) case on stdout:
``build_s`` (Gallery.build incl. the build-time recall measurement for approximate indexes),
``rss_mb`` (process RSS after the build), ``one_query_ms_p50/p95`` (``Gallery.search`` of 1 query, k=10,
reference excluded, over ``--single`` queries; FAISS runs small searches on one thread, see
``covr_core.gallery_index.auto_threads``; ``one_query_all_threads_ms_p50`` forces all threads),
``batch_s`` and ``batch_per_query_ms`` (one call with ``--batch`` queries), ``recall_at_10``
(approximate vs exact top-10 on held-out queries from the same mixture; 1.0 for flat).
Targets: 1 query < 15 ms at 100k exact; < 5 ms at 1M HNSW with recall@10 >= 0.95.

Data: a mixture of Gaussian clusters on the unit sphere (uniform random 256-d vectors defeat every
approximate index and are not what embeddings look like).

Usage: ``python bench/bench_search.py [--sizes 10000,100000,1000000] [--indexes flat,hnsw] [--threads 2]``
(1M HNSW takes minutes to build on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time


import faiss
import numpy as np
import pandas as pd
import psutil

from covr_core import gallery_index as gi
from covr_core.gallery import Gallery
from covr_core.types import EncoderInfo


def clustered(
    n: int, dim: int = 256, n_clusters: int = 1000, spread: float = 0.6, seed: int = 0
) -> np.ndarray:
    """Unit vectors from a mixture of Gaussian clusters around random unit centres (chunked)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = centres[rng.integers(0, n_clusters, m)]
        x += rng.standard_normal((m, dim)).astype(np.float32) * (spread / np.sqrt(dim))
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def run_case(n: int, index_type: str, dim: int, single: int, batch: int, ef: int) -> dict:
    data = clustered(n + batch, dim, seed=n)
    base, queries = data[:n], data[n:]
    items = pd.DataFrame({"id": [f"i{i}" for i in range(n)], "kind": "image", "media": "m.png"})
    enc = EncoderInfo("bench", "1", "none", "", dim)
    params = {"efSearch": ef} if index_type == "hnsw" else None
    t0 = time.perf_counter()
    g = Gallery.build(base, items, enc, f"bench-{n}", "/", index_type=index_type, index_params=params)
    build_s = time.perf_counter() - t0
    rss_mb = psutil.Process().memory_info().rss / 2**20
    g.search(queries[:1], 10, reference_ids=["i0"])  # warm-up
    lat, lat_all = [], []
    for i in range(single):
        t = time.perf_counter()
        g.search(queries[i % len(queries)], 10, reference_ids=[f"i{i}"])  # auto: 1 thread when small
        lat.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        g.search(queries[i % len(queries)], 10, reference_ids=[f"i{i}"], threads=0)  # all FAISS threads
        lat_all.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    hits = g.search(queries, 10)
    batch_s = time.perf_counter() - t
    recall = 1.0
    if index_type != "flat":
        exact = gi.exact_topk(base, queries, 10)
        recall = gi.recall_at_k(hits.rows, exact)
    return {
        "bench": "search",
        "n": n,
        "dim": dim,
        "index": index_type,
        "params": g.manifest.get("index_params"),
        "build_s": round(build_s, 3),
        "rss_mb": round(rss_mb, 1),
        "one_query_ms_p50": round(float(np.percentile(lat, 50)), 3),
        "one_query_ms_p95": round(float(np.percentile(lat, 95)), 3),
        "one_query_threads": gi.auto_threads(g.index, 1) or faiss.omp_get_max_threads(),
        "one_query_all_threads_ms_p50": round(float(np.percentile(lat_all, 50)), 3),
        "batch": batch,
        "batch_s": round(batch_s, 3),
        "batch_per_query_ms": round(batch_s / batch * 1000, 3),
        "recall_at_10": round(recall, 4),
        "build_recall_at_10": g.manifest.get("index_recall_at_10"),
        "faiss_threads": faiss.omp_get_max_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "faiss": faiss.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    """Parse flags and print one JSON line per case."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated gallery sizes")
    ap.add_argument("--indexes", default="flat,hnsw", help="comma-separated: flat,hnsw,ivf")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--single", type=int, default=100, help="number of single-query searches timed")
    ap.add_argument("--batch", type=int, default=1000, help="queries in the batch case")
    ap.add_argument("--ef-search", type=int, default=256, help="HNSW efSearch")
    ap.add_argument("--threads", type=int, default=0, help="FAISS OpenMP threads (0 = default)")
    args = ap.parse_args(argv)
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    for n in [int(s) for s in args.sizes.split(",") if s]:
        for index_type in [s for s in args.indexes.split(",") if s]:
            rec = run_case(n, index_type, args.dim, args.single, args.batch, args.ef_search)
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
