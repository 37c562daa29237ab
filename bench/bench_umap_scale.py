"""Time and memory of the map at scale: UMAP fitted on a sample, every other point placed (one JSON line per N).

    python bench/bench_umap_scale.py                       # 200,000 and 1,000,000 generated 256-d points
    python bench/bench_umap_scale.py --points 200000 --fit-sample 50000

Points are L2-normalised draws around 2,000 cluster centres (like embeddings: many near-duplicates,
clear neighbourhoods), memory-mapped from a .npy file as the umap job reads a gallery. Each N runs in a
fresh process, after a 2,000-point fit that pays umap-learn's numba JIT (reported as ``jit_s``); ``fit_s`` is
the sample's fit, ``place_s`` the placement of the rest (IVF over the sample, chunked), ``peak_rss_mb`` the
process's peak RSS (memory-mapped pages read count while resident). ``place_err`` is the mean distance
between IVF and exact placement of 5,000 placed points, in units of the map's standard deviation.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


import numpy as np


def make_points(path: Path, n: int, dim: int = 256, centres: int = 2000, seed: int = 0) -> Path:
    """``n`` clustered unit vectors in a .npy file (written in blocks: memory stays small)."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim)).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = c[rng.integers(0, centres, m)] + 0.7 * rng.normal(size=(m, dim)).astype(np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    out.flush()
    return path


def case(path: Path, fit_sample: int) -> dict:
    """Map the points of ``path`` (called in a child process)."""
    from precompute import umap as job
    from covr_core.placement import place_many, place_points

    emb = np.load(path, mmap_mode="r")
    t0 = time.perf_counter()
    job.fit_map(np.asarray(emb[:2000]), seed=0)  # numba JIT, once per process
    jit = time.perf_counter() - t0
    timed: dict[str, float] = {}

    def place(rows, index, anchor_xy):
        t = time.perf_counter()
        out = job._place_here(emb, 10)(rows, index, anchor_xy)
        timed["place_s"] = time.perf_counter() - t
        return out

    t0 = time.perf_counter()
    res = job.map_embeddings(emb, fit_sample=fit_sample, place=place)
    total = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rest = np.setdiff1d(np.arange(len(emb)), res.sample)
    check = np.sort(np.random.default_rng(1).choice(rest, size=min(5000, len(rest)), replace=False))
    anchors_xy = res.coords[res.sample]
    exact = place_points(np.asarray(emb[check]), np.asarray(emb[res.sample]), anchors_xy, k=10)
    approx = place_many(np.asarray(emb[check]), res.index, anchors_xy, k=10)
    err = float(np.linalg.norm(exact - approx, axis=1).mean() / res.coords.std(axis=0).mean())
    return {"bench": "umap_scale", "points": len(emb), "fit_sample": len(res.sample), "method": res.method,
            "jit_s": round(jit, 1), "fit_s": round(total - timed.get("place_s", 0.0), 1),
            "place_s": round(timed.get("place_s", 0.0), 1), "total_s": round(total, 1),
            "peak_rss_mb": round(rss), "place_err": round(err, 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", default="200000,1000000", help="comma list of N")
    p.add_argument("--fit-sample", type=int, default=None, help="default: precompute.umap.FIT_SAMPLE")
    p.add_argument("--case", help=argparse.SUPPRESS)  # child process: one .npy file
    args = p.parse_args(argv)
    if args.fit_sample is None:
        from precompute.umap import FIT_SAMPLE

        args.fit_sample = FIT_SAMPLE
    if args.case:
        print(json.dumps(case(Path(args.case), args.fit_sample)), flush=True)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="bench_umap_"))
    try:
        for n in (int(x) for x in args.points.split(",")):
            path = make_points(workdir / f"points-{n}.npy", n)
            subprocess.run([sys.executable, __file__, "--case", str(path), "--fit-sample", str(args.fit_sample)],
                           check=True)
            path.unlink()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
