"""2-D maps of a gallery and of its queries (UMAP, cosine metric, fixed seed).

    python -m precompute.umap --gallery data/galleries/cirr-val --queries data/queries/cirr-val

Writes ``<gallery>/umap.parquet`` (``id, x, y``, row-aligned with the gallery) and ``<gallery>/umap.json``
(method, parameters, ``k``); with ``--queries``, ``<queries>/umap.parquet`` (``query_id`` and ``x_mm, y_mm,
x_img, y_img, x_txt, y_txt`` for f_mm, f_img, f_txt). No fitted model is pickled: new points are placed later
by ``precompute.placement.place_points`` (k nearest gallery items by cosine), which the app imports without
umap-learn. Galleries under ``--min-umap-items`` items fall back to PCA.
"""

from __future__ import annotations

import argparse
import io
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from covr_core.atomic import atomic_write_bytes, atomic_write_json

from . import _common as C
from .placement import MAP_FILE, MAP_META, place_points

log = logging.getLogger(__name__)


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


def run(*, gallery: str, queries: str | None = None, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
        k: int = 10, query_placement: str = "knn", min_umap_items: int = 15, **_: Any) -> dict:
    """Fit the gallery's map and place its queries; returns a summary dict."""
    from covr_core.gallery import Gallery

    g = Gallery.load(gallery)
    emb = np.asarray(g.embeddings, dtype=np.float32)
    coords, reducer, method = fit_map(emb, n_neighbors, min_dist, seed, min_umap_items)
    folder = Path(gallery)
    _write_parquet(pd.DataFrame({"id": g.items["id"].astype(str).values, "x": coords[:, 0], "y": coords[:, 1]}),
                   folder / MAP_FILE)
    atomic_write_json(folder / MAP_META, {
        "method": method, "metric": "cosine", "n_neighbors": n_neighbors, "min_dist": min_dist, "seed": seed,
        "k": k, "count": len(emb), "gallery": g.name, "encoder": g.manifest.get("encoder"),
        "embeddings_sha256": g.manifest.get("embeddings_sha256"), "placement": "knn-weighted-mean",
        "provenance": C.provenance()})
    Gallery.record_files(folder, changed=(MAP_FILE, MAP_META))  # verified with the gallery on load
    result = {"gallery": str(folder), "count": len(emb), "method": method}
    if queries:
        from .merge import load_queries

        table, arrays, manifest = load_queries(queries)
        same_dim = int(manifest.get("dim", emb.shape[1])) == emb.shape[1]
        if not same_dim or manifest.get("encoder") != g.manifest.get("encoder"):
            raise ValueError(f"queries {queries} ({manifest.get('encoder')}) and gallery {gallery} "
                             f"({g.manifest.get('encoder')}) come from different encoders")
        out = pd.DataFrame({"query_id": table["query_id"].values})
        for name, short in (("f_mm", "mm"), ("f_img", "img"), ("f_txt", "txt")):
            if reducer is not None and query_placement == "transform":
                xy = np.asarray(reducer.transform(arrays[name]), dtype=np.float32)
            else:
                xy = place_points(arrays[name], emb, coords, k=k)
            out[f"x_{short}"], out[f"y_{short}"] = xy[:, 0], xy[:, 1]
        _write_parquet(out, Path(queries) / MAP_FILE)
        atomic_write_json(Path(queries) / MAP_META, {"gallery": str(folder), "placement": query_placement, "k": k,
                                                     "method": method, "provenance": C.provenance()})
        result["queries"] = len(out)
    log.info("done=%d skipped=0 failed=0 map=%s (%s)", len(emb) + result.get("queries", 0), folder / MAP_FILE,
             method)
    return result


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
    C.add_log_arg(p)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m precompute.umap``."""
    return C.run_main(parse_args, lambda a: run(**vars(a)), argv)


if __name__ == "__main__":
    raise SystemExit(main())
