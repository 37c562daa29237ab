"""2-D maps of a gallery and of its queries (UMAP, cosine metric, fixed seed).

    python -m precompute.umap --gallery data/galleries/cirr-val --queries data/queries/cirr-val

Writes ``<gallery>/umap.parquet`` (``id, x, y``, row-aligned with the gallery) and ``<gallery>/umap.json``
(method, parameters, ``k``); with ``--queries``, ``<queries>/umap.parquet`` (``query_id`` and ``x_mm, y_mm,
x_img, y_img, x_txt, y_txt`` for f_mm, f_img, f_txt). No fitted model is pickled: new points are placed later
by ``covr_core.placement.place_points`` (k nearest gallery items by cosine), which the app imports without
umap-learn. Galleries under ``--min-umap-items`` items fall back to PCA.

At scale (WebVid-CoVR: 2.5M videos) UMAP is fitted on a seeded random sample of ``--fit-sample`` items
(default 50,000: about 2 minutes single-threaded, since a fixed seed makes umap-learn serial) and every other
item, and every query, is placed with the same k-nearest-neighbour placement against that sample (an IVF
index over the sample, streamed in chunks; ``--ray`` spreads the chunks over a Ray cluster). Measured times
and memory: docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from covr_core.atomic import atomic_write_bytes, atomic_write_json
from covr_core.placement import MAP_FILE, MAP_META, anchor_index, place_many, place_points

from .engine import common as C
from .engine.options import JobOptions

log = logging.getLogger(__name__)

#: items UMAP is fitted on; the others are placed (docs/PERFORMANCE.md: time and memory at 200k and 1M)
FIT_SAMPLE = 50_000
PLACE_CHUNK = 65_536  #: rows placed per step in this process
RAY_PLACE_ROWS = 250_000  #: rows per Ray placement task (tests lower it)


@dataclass(kw_only=True)
class MapOptions(JobOptions):
    """Options of ``python -m precompute.umap``."""

    gallery: str
    queries: str | None = None
    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 0
    k: int = 10
    query_placement: str = "knn"
    min_umap_items: int = 15
    fit_sample: int = FIT_SAMPLE
    ray: str | None = None
    log_level: str = "INFO"

    def validate(self) -> None:
        if self.fit_sample < 2 or self.k < 1:
            raise ValueError("--fit-sample must be >= 2 and --k >= 1")
        if self.query_placement not in ("knn", "transform"):
            raise ValueError("--query-placement must be knn or transform")


@dataclass
class MapResult:
    """A fitted map: coordinates of every row, the method, and how it was made."""

    coords: np.ndarray  #: [N, 2]
    method: str  #: umap or pca
    reducer: Any  #: the fitted UMAP (whole-gallery fits only; never saved)
    sample: np.ndarray  #: rows the map was fitted on
    index: Any  #: anchor index over the sample (sampled maps), else None


def pca_2d(x: np.ndarray) -> np.ndarray:
    """First two principal components (zeros where there is no variance)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros((len(x), 2))
    if len(x) < 2:
        return out.astype(np.float32)
    xc = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    m = min(2, len(s))
    out[:, :m] = u[:, :m] * s[:m]
    return out.astype(np.float32)


def fit_map(emb: np.ndarray, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
            min_umap_items: int = 15) -> tuple[np.ndarray, Any, str]:
    """(coords [N, 2], fitted reducer or None, method) for L2-normalised embeddings."""
    n = len(emb)
    if n < min_umap_items:
        log.info("%d items (< %d): using PCA instead of UMAP", n, min_umap_items)
        return pca_2d(emb), None, "pca"
    import umap  # umap-learn; slow import (numba)

    reducer = umap.UMAP(n_components=2, metric="cosine", n_neighbors=int(min(n_neighbors, n - 1)),
                        min_dist=min_dist, random_state=seed, init="spectral" if n > 50 else "random")
    try:
        coords = reducer.fit_transform(np.asarray(emb, dtype=np.float32))
    except Exception as exc:  # noqa: BLE001 - degenerate inputs (duplicates, tiny n): keep a usable map
        log.warning("UMAP failed (%s: %s); using PCA", type(exc).__name__, exc)
        return pca_2d(emb), None, "pca"
    return np.asarray(coords, dtype=np.float32), reducer, "umap"


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


def map_embeddings(emb: np.ndarray, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
                   min_umap_items: int = 15, fit_sample: int = FIT_SAMPLE, k: int = 10,
                   place: Callable[[np.ndarray, Any, np.ndarray], np.ndarray] | None = None) -> MapResult:
    """The 2-D map of ``emb`` ([N, d], may be memory-mapped): fitted on all rows, or on a seeded sample of
    ``fit_sample`` rows with the others placed by ``place(rows, anchor_index, anchor_coords)`` (default: in
    this process, ``placement.place_many``)."""
    n = len(emb)
    if n <= fit_sample:
        coords, reducer, method = fit_map(np.asarray(emb, dtype=np.float32), n_neighbors, min_dist, seed,
                                          min_umap_items)
        return MapResult(coords, method, reducer, np.arange(n), None)
    sample = np.sort(np.random.default_rng(seed).choice(n, size=fit_sample, replace=False))
    anchors = np.asarray(emb[sample], dtype=np.float32)
    sample_xy, _, method = fit_map(anchors, n_neighbors, min_dist, seed, min_umap_items)
    index = anchor_index(anchors)
    rest = np.setdiff1d(np.arange(n), sample, assume_unique=True)
    log.info("map: fitted %s on %d of %d items; placing the other %d", method, fit_sample, n, len(rest))
    coords = np.empty((n, 2), dtype=np.float32)
    coords[sample] = sample_xy
    coords[rest] = (place or _place_here(emb, k))(rest, index, sample_xy)
    return MapResult(coords, method, None, sample, index)


def _place_here(emb: np.ndarray, k: int) -> Callable[[np.ndarray, Any, np.ndarray], np.ndarray]:
    def place(rows: np.ndarray, index: Any, anchor_xy: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), 2), dtype=np.float32)
        for start in range(0, len(rows), PLACE_CHUNK):  # contiguous reads of the memory-mapped rows
            sl = rows[start:start + PLACE_CHUNK]
            out[start:start + len(sl)] = place_many(emb[sl], index, anchor_xy, k=k)
        return out

    return place


def _place_rows_task(emb_path: str, rows: np.ndarray, index_bytes: np.ndarray, anchor_xy: np.ndarray,
                     k: int) -> np.ndarray:
    """A Ray task: place ``rows`` of the gallery's ``embeddings.npy`` (read from shared storage)."""
    import faiss

    emb = np.load(emb_path, mmap_mode="r", allow_pickle=False)
    return place_many(emb[rows], faiss.deserialize_index(index_bytes), anchor_xy, k=k)


def _place_on_ray(cluster: Any, emb_path: Path, k: int) -> Callable[[np.ndarray, Any, np.ndarray], np.ndarray]:
    def place(rows: np.ndarray, index: Any, anchor_xy: np.ndarray) -> np.ndarray:
        import faiss

        shared = cluster.ray.put(faiss.serialize_index(index)), cluster.ray.put(anchor_xy)
        calls = [(str(emb_path), rows[s:s + RAY_PLACE_ROWS], *shared, k) for s in range(0, len(rows), RAY_PLACE_ROWS)]
        return np.concatenate(cluster.map_tasks(_place_rows_task, calls, desc="map placement", unit="chunk"))

    return place


def run(**options: Any) -> dict:
    """Fit the gallery's map and place its queries (fields of ``MapOptions``); returns a summary dict."""
    opts = MapOptions(**options)
    from covr_core.gallery import Gallery

    g = Gallery.load(opts.gallery)
    emb = g.embeddings  # memory-mapped: a sample and chunks are read, never a second full copy
    folder = Path(opts.gallery)
    with contextlib.ExitStack() as stack:
        place = None
        if opts.ray is not None and len(emb) > opts.fit_sample:
            from .engine.ray_cluster import RayCluster

            cluster = stack.enter_context(RayCluster.connect(opts.ray))
            place = _place_on_ray(cluster, folder / "embeddings.npy", opts.k)
        result_map = map_embeddings(emb, opts.n_neighbors, opts.min_dist, opts.seed, opts.min_umap_items,
                                    opts.fit_sample, opts.k, place)
    coords, method = result_map.coords, result_map.method
    _write_parquet(pd.DataFrame({"id": g.items["id"].astype(str).values, "x": coords[:, 0], "y": coords[:, 1]}),
                   folder / MAP_FILE)
    sampled = result_map.index is not None
    atomic_write_json(folder / MAP_META, {
        "method": method, "metric": "cosine", "n_neighbors": opts.n_neighbors, "min_dist": opts.min_dist,
        "seed": opts.seed, "k": opts.k, "count": len(emb), "fit_sample": len(result_map.sample) if sampled else None,
        "gallery": g.name, "encoder": g.manifest.get("encoder"), "embeddings_sha256": g.manifest.get("embeddings_sha256"),
        "placement": "knn-weighted-mean", "provenance": C.provenance()})
    Gallery.record_files(folder, changed=(MAP_FILE, MAP_META))  # verified with the gallery on load
    result = {"gallery": str(folder), "count": len(emb), "method": method,
              "fit_sample": len(result_map.sample) if sampled else len(emb)}
    if opts.queries:
        result["queries"] = _place_queries(opts, g, result_map)
    log.info("done=%d skipped=0 failed=0 map=%s (%s)", len(emb) + result.get("queries", 0), folder / MAP_FILE,
             method)
    return result


def _place_queries(opts: MapOptions, g: Any, result_map: MapResult) -> int:
    from covr_core.query_folder import QuerySet

    queries = QuerySet.load(opts.queries)
    table, arrays, manifest = queries.table, queries.arrays(), queries.manifest
    emb = g.embeddings
    same_dim = int(manifest.get("dim", emb.shape[1])) == emb.shape[1]
    if not same_dim or manifest.get("encoder") != g.manifest.get("encoder"):
        raise ValueError(f"queries {opts.queries} ({manifest.get('encoder')}) and gallery {opts.gallery} "
                         f"({g.manifest.get('encoder')}) come from different encoders")
    out = pd.DataFrame({"query_id": table["query_id"].values})
    coords = result_map.coords
    for name, short in (("f_mm", "mm"), ("f_img", "img"), ("f_txt", "txt")):
        if result_map.reducer is not None and opts.query_placement == "transform":
            xy = np.asarray(result_map.reducer.transform(arrays[name]), dtype=np.float32)
        elif result_map.index is not None:  # sampled map: queries are placed like the unsampled items
            xy = place_many(arrays[name], result_map.index, coords[result_map.sample], k=opts.k)
        else:
            xy = place_points(arrays[name], np.asarray(emb, dtype=np.float32), coords, k=opts.k)
        out[f"x_{short}"], out[f"y_{short}"] = xy[:, 0], xy[:, 1]
    _write_parquet(out, Path(opts.queries) / MAP_FILE)
    atomic_write_json(Path(opts.queries) / MAP_META, {
        "gallery": str(opts.gallery), "placement": opts.query_placement, "k": opts.k, "method": result_map.method,
        "provenance": C.provenance()})
    return len(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags of ``python -m precompute.umap``."""
    p = C.make_parser("python -m precompute.umap", __doc__)
    p.add_argument("--gallery", required=True, help="gallery folder to map (umap.parquet is written into it)")
    p.add_argument("--queries", help="queries folder (from precompute.queries) to place on the gallery's map")
    p.add_argument("--n-neighbors", type=int, default=15, help="UMAP n_neighbors (clamped to N-1)")
    p.add_argument("--min-dist", type=float, default=0.1, help="UMAP min_dist")
    p.add_argument("--seed", type=int, default=0, help="UMAP random_state (fixed for reproducible maps)")
    p.add_argument("--k", type=int, default=10, help="neighbours used to place new points (place_points)")
    p.add_argument("--query-placement", choices=("knn", "transform"), default="knn",
                   help="knn = the same placement the app uses for new queries; transform = UMAP's transform")
    p.add_argument("--min-umap-items", type=int, default=15, help="below this many items use PCA instead")
    p.add_argument("--fit-sample", type=int, default=FIT_SAMPLE,
                   help="fit UMAP on a seeded random sample of this many items and place the others by "
                        "k-nearest-neighbour placement (galleries up to this size are fitted whole)")
    p.add_argument("--ray", default=None, metavar="auto|local|ADDRESS",
                   help="place the items outside the fit sample as Ray tasks (the gallery folder must be on "
                        "storage every machine reads)")
    C.add_log_arg(p)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m precompute.umap``."""
    return C.run_main(parse_args, lambda a: run(**vars(a)), argv)


if __name__ == "__main__":
    raise SystemExit(main())
