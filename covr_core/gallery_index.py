"""FAISS index helpers for galleries: build (flat / HNSW / IVF), read memory-mapped, measure recall.

All indexes use inner product (embeddings are L2-normalised, so this is cosine similarity).

- ``flat``: ``IndexFlatIP``, exact. Default.
- ``hnsw``: ``IndexHNSWFlat(dim, M=32)``, ``efConstruction=40``, ``efSearch`` 256 (settable per search).
- ``ivf``: ``IndexIVFFlat`` with ``nlist ~ 4*sqrt(N)`` k-means cells, ``nprobe`` 32 by default.

Approximate indexes record their recall@10 against exact search on a sample of queries when built
(``measure_recall``), so the manifest says how much they lose.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import faiss
import numpy as np

logger = logging.getLogger(__name__)

INDEX_TYPES = ("flat", "hnsw", "ivf")
DEFAULT_PARAMS: dict[str, dict[str, int]] = {
    "flat": {},
    "hnsw": {"M": 32, "efConstruction": 40, "efSearch": 256},
    "ivf": {"nlist": 0, "nprobe": 32},  # nlist 0 = choose from the gallery size
}


def index_params(index_type: str, overrides: dict | None = None) -> dict[str, int]:
    """Default parameters of ``index_type`` updated with ``overrides``."""
    if index_type not in INDEX_TYPES:
        raise ValueError(f"unknown index_type {index_type!r}; choose one of {', '.join(INDEX_TYPES)}")
    params = dict(DEFAULT_PARAMS[index_type])
    for key, value in (overrides or {}).items():
        if key not in params:
            raise ValueError(f"unknown parameter {key!r} for index_type {index_type!r}: {sorted(params)}")
        params[key] = int(value)
    return params


def build_index(vectors: np.ndarray, index_type: str = "flat", params: dict | None = None) -> faiss.Index:
    """Build a FAISS inner-product index over float32 ``vectors`` [N, dim]."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = x.shape
    params = index_params(index_type, params)
    if index_type == "flat":
        index = faiss.IndexFlatIP(dim)
    elif index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params["efConstruction"]
        index.hnsw.efSearch = params["efSearch"]
    else:
        nlist = params["nlist"] or max(1, min(int(4 * math.sqrt(max(n, 1))), max(n // 39, 1)))
        params["nlist"] = nlist
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        train = x if n <= 256 * nlist else x[np.random.default_rng(0).choice(n, 256 * nlist, replace=False)]
        index.train(train)
        index.nprobe = min(params["nprobe"], nlist)
    if n:
        index.add(x)
    return index


def add_to_index(index: faiss.Index, vectors: np.ndarray) -> None:
    """Append float32 ``vectors`` to ``index``."""
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))


def apply_search_params(index: faiss.Index, params: dict) -> None:
    """Set the stored search-time parameters (HNSW ``efSearch``, IVF ``nprobe``) on a loaded index."""
    if isinstance(index, faiss.IndexHNSW) and params.get("efSearch"):
        index.hnsw.efSearch = int(params["efSearch"])
    elif isinstance(index, faiss.IndexIVF) and params.get("nprobe"):
        index.nprobe = int(params["nprobe"])


def search_params(index: faiss.Index, k: int, ef_search: int | None = None, nprobe: int | None = None):
    """FAISS SearchParameters for one search call (None for flat indexes)."""
    if isinstance(index, faiss.IndexHNSW):
        ef = max(int(ef_search or index.hnsw.efSearch), k)
        return faiss.SearchParametersHNSW(efSearch=ef)
    if isinstance(index, faiss.IndexIVF):
        return faiss.SearchParametersIVF(nprobe=int(nprobe or index.nprobe))
    return None


#: Below this many multiply-adds (queries x items x dim) an exact search runs on one OpenMP thread:
#: waking a second thread costs more than it saves, and on a busy machine (the app's encoder, other
#: processes) a spinning OpenMP barrier made one 10k-item query take 33 ms instead of 0.2 ms (measured).
SINGLE_THREAD_WORK = 8_000_000
#: Approximate indexes parallelise over queries only, so small batches run on one thread.
SINGLE_THREAD_QUERIES = 4


def auto_threads(index: faiss.Index, n_queries: int) -> int | None:
    """1 for small searches (see SINGLE_THREAD_WORK), None to keep FAISS's default thread count."""
    if isinstance(index, (faiss.IndexHNSW, faiss.IndexIVF)):
        return 1 if n_queries <= SINGLE_THREAD_QUERIES else None
    return 1 if n_queries * index.ntotal * index.d <= SINGLE_THREAD_WORK else None


def index_search(index: faiss.Index, queries: np.ndarray, k: int, threads: int | None = None,
                 **kw) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Top-``k`` (scores, rows) for float32 queries; rows are -1 where the index has fewer results.

    ``threads``: OpenMP threads for this call (None: ``auto_threads``; 0: FAISS default). The setting
    is the calling thread's OpenMP ICV and is restored afterwards.
    """
    q = np.ascontiguousarray(queries, dtype=np.float32)
    params = search_params(index, k, **kw)
    n_threads = auto_threads(index, len(q)) if threads is None else (threads or None)
    previous = faiss.omp_get_max_threads()
    if n_threads:
        faiss.omp_set_num_threads(n_threads)
    try:
        return index.search(q, k) if params is None else index.search(q, k, params=params)
    finally:
        if n_threads:
            faiss.omp_set_num_threads(previous)


def write_index(index: faiss.Index, path: str | Path) -> None:
    """Write ``index`` to ``path`` (plain write; callers make it atomic via a temp folder)."""
    faiss.write_index(index, str(path))


def read_index(path: str | Path, mmap: bool = True) -> faiss.Index:
    """Read an index; with ``mmap`` the vector storage stays memory-mapped (``IO_FLAG_MMAP_IFC``).

    A memory-mapped index is read-only: use ``writable_copy`` before ``add``.
    """
    flags = (faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY) if mmap else 0
    return faiss.read_index(str(path), flags)


def writable_copy(index: faiss.Index) -> faiss.Index:
    """An in-memory copy of ``index`` that can be added to."""
    return faiss.deserialize_index(faiss.serialize_index(index))


def exact_topk(vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int = 65536) -> np.ndarray:
    """Exact top-``k`` rows by inner product (chunked over the gallery; for recall measurement)."""
    q = np.asarray(queries, dtype=np.float32)
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        block = np.asarray(vectors[start : start + chunk], dtype=np.float32)
        s = q @ block.T
        kk = min(k, s.shape[1])
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        best_s = np.concatenate([best_s, np.take_along_axis(s, part, 1)], axis=1)
        best_i = np.concatenate([best_i, part + start], axis=1)
        if best_s.shape[1] > k:
            keep = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
            best_s = np.take_along_axis(best_s, keep, 1)
            best_i = np.take_along_axis(best_i, keep, 1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, 1)


def recall_at_k(approx_rows: np.ndarray, exact_rows: np.ndarray) -> float:
    """Mean share of the exact top-k rows that the approximate top-k contains."""
    k = exact_rows.shape[1]
    hits = [len(set(a[:k].tolist()) & set(e.tolist())) for a, e in zip(approx_rows, exact_rows)]
    return float(np.sum(hits) / (k * len(exact_rows))) if len(exact_rows) else 1.0


def sample_queries(vectors: np.ndarray, n: int = 1000, seed: int = 0, noise: float = 0.5) -> np.ndarray:
    """Held-out-like queries: random gallery rows plus a random unit direction scaled by ``noise``."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), size=min(n, len(vectors)), replace=False)
    rows.sort()
    base = np.asarray(vectors[rows], dtype=np.float32)
    direction = rng.standard_normal(base.shape).astype(np.float32)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    q = base + noise * direction
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def measure_recall(
    index: faiss.Index, vectors: np.ndarray, queries: np.ndarray | None = None, k: int = 10, **kw
) -> float:
    """Recall@``k`` of ``index`` against exact inner-product search over ``vectors``."""
    return tune_recall(index, vectors, queries, k, target=0.0)[0]


#: Largest efSearch tried by :func:`tune_recall` (latency grows about linearly with it).
MAX_EF_SEARCH = 4096


def tune_recall(
    index: faiss.Index, vectors: np.ndarray, queries: np.ndarray | None = None, k: int = 10,
    target: float = 0.95,
) -> tuple[float, dict[str, int]]:
    """Recall@``k`` vs exact search, raising HNSW ``efSearch`` / IVF ``nprobe`` (doubling) until it reaches
    ``target`` or the parameter's ceiling. The index keeps the chosen value; returns (recall, {param: value}).

    The same graph needs a larger search beam as the gallery grows (measured on 1M clustered 256-d vectors:
    recall@10 0.93 at efSearch 256), so a fixed default would silently lose recall on large galleries.
    """
    if len(vectors) == 0:
        return 1.0, {}
    q = sample_queries(vectors) if queries is None else np.asarray(queries, dtype=np.float32)
    k = min(k, len(vectors))
    exact = exact_topk(vectors, q, k)
    while True:
        _, approx = index_search(index, q, k)
        recall = recall_at_k(approx, exact)
        if isinstance(index, faiss.IndexHNSW):
            chosen = {"efSearch": int(index.hnsw.efSearch)}
            if recall >= target or index.hnsw.efSearch >= MAX_EF_SEARCH:
                return recall, chosen
            index.hnsw.efSearch = min(2 * index.hnsw.efSearch, MAX_EF_SEARCH)
        elif isinstance(index, faiss.IndexIVF):
            chosen = {"nprobe": int(index.nprobe)}
            if recall >= target or index.nprobe >= index.nlist:
                return recall, chosen
            index.nprobe = min(2 * index.nprobe, index.nlist)
        else:
            return recall, {}
