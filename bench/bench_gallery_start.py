"""Gallery start time: ``Gallery.load`` of a large memory-mapped gallery in a fresh process.

Builds (once, or reuses ``--folder``) a gallery of ``--count`` clustered 256-d items (float16 embeddings,
flat index by default), then runs ``--runs`` fresh Python processes that each time
``import covr_core.gallery`` (``import_s``), ``Gallery.load(folder, expected)`` (``load_s``, memory-mapped)
the first search (``first_search_s``: builds the id lookups, see ``Gallery.warm``) and a second one
(``second_search_s``), and prints one JSON line per run plus a summary line.
The page cache is warm after the first run (the realistic case for an app restart); ``run 0`` right after
the build is warm too. Target: a 1M-item gallery loads in under 3 s.

``Gallery.load`` verifies every file's sha256 (issue 12) through a persistent hash cache (as the app keeps
one in ``<data>/cache/file_hashes.json``): ``run 0`` starts with an empty cache and hashes every file
(``hashed_files``), later runs find the unchanged files in the cache. ``--no-cache`` hashes in every run.
Each run also times a second ``Gallery.load(..., verify=False)`` in the same process (``load_unverified_s``):
the difference is what verification costs, measured under the same machine load.

Usage: ``python bench/bench_gallery_start.py [--count 1000000] [--index flat|hnsw] [--folder DIR] [--runs 3]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from covr_core.gallery import Gallery
from covr_core.gallery_integrity import HashCache
from covr_core.types import EncoderInfo
t1 = time.perf_counter()
cache = HashCache(sys.argv[3] or None)
g = Gallery.load(sys.argv[1], EncoderInfo("bench", "1", "none", "", int(sys.argv[2])), hash_cache=cache)
t_verified = time.perf_counter()
Gallery.load(sys.argv[1], EncoderInfo("bench", "1", "none", "", int(sys.argv[2])), verify=False)
t2 = time.perf_counter()
q = np.ones((1, g.dim), dtype=np.float32) / np.sqrt(g.dim)
g.search(q, 10, reference_ids=[str(g.items["id"].iloc[0])])
t3 = time.perf_counter()
g.search(q, 10, reference_ids=[str(g.items["id"].iloc[1])])
t4 = time.perf_counter()
import psutil
print(json.dumps({"import_s": t1 - t0, "load_s": t_verified - t1, "load_unverified_s": t2 - t_verified, "first_search_s": t3 - t2, "second_search_s": t4 - t3,
                  "rss_mb": psutil.Process().memory_info().rss / 2**20, "count": len(g),
                  "hashed_files": cache.misses, "cached_files": cache.hits}))
"""


def build(folder: Path, count: int, dim: int, index_type: str) -> float:
    """Build and save a clustered gallery; returns seconds."""
    import pandas as pd

    from bench.bench_search import clustered
    from covr_core.gallery import Gallery
    from covr_core.types import EncoderInfo

    t = time.perf_counter()
    emb = clustered(count, dim, seed=1)
    items = pd.DataFrame({
        "id": [f"{i // 1000:04d}/{i}" for i in range(count)], "kind": "video",
        "media": [f"{i // 1000:04d}/{i}.mp4" for i in range(count)], "caption": "a clip of something",
    })  # fmt: skip
    g = Gallery.build(emb, items, EncoderInfo("bench", "1", "none", "", dim), f"start-{count}", "media",
                      index_type=index_type, dtype="float16")  # fmt: skip
    del emb
    g.save(folder)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    """Parse flags, build if needed, time fresh-process loads."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--index", default="flat", choices=["flat", "hnsw", "ivf"])
    ap.add_argument("--folder", type=Path, default=None, help="reuse/keep the gallery here")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-cache", action="store_true", help="verify without a hash cache (hash every file)")
    args = ap.parse_args(argv)
    tmp = None
    folder = args.folder
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="covr-bench-")
        folder = Path(tmp.name) / "gallery"
    build_s = None
    if not (folder / "manifest.json").exists():
        build_s = build(folder, args.count, args.dim, args.index)
    size_mb = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 2**20
    loads = []
    cache_file = "" if args.no_cache else str(Path(tempfile.mkdtemp(prefix="covr-hashes-")) / "hashes.json")
    for run in range(args.runs):
        out = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(args.dim), cache_file], cwd=ROOT,
                             capture_output=True, text=True, check=True)  # fmt: skip
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        rec = {"bench": "gallery_start", "run": run, **{k: round(v, 3) if isinstance(v, float) else v
                                                          for k, v in rec.items()}}  # fmt: skip
        loads.append(rec["load_s"])
        print(json.dumps(rec), flush=True)
    print(json.dumps({"bench": "gallery_start_summary", "count": args.count, "index": args.index,
                      "build_s": round(build_s, 1) if build_s else None, "folder_mb": round(size_mb, 1),
                      "load_s_first": loads[0], "load_s_cached_max": max(loads[1:]) if len(loads) > 1 else None,
                      "hash_cache": bool(cache_file)}), flush=True)  # fmt: skip
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
