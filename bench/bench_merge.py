"""Peak memory and time of merging a 1M-item gallery job from its part files (one JSON line per case).

    python bench/bench_merge.py                    # 1,000,000 items x 256-d, parts of 16,384 items
    python bench/bench_merge.py --items 200000

The parts are generated as the job leaves them (one compacted file per unit). Each case runs in a fresh
process and reports its peak RSS (``ru_maxrss``):

- ``stream``: the merge's own work: pass 1 reads only the row lists, pass 2 copies each file's arrays into a
  memory-mapped output (``_parts.scan`` + ``_parts.gather``);
- ``in_memory``: the naive join for comparison (every part's arrays loaded, then concatenated);
- ``finalize``: the whole ``merge.finalize``: stream + items table + ``Gallery.build`` (a float32 copy, the
  FAISS flat index) + save.
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
import pandas as pd


def make_job(out: Path, n: int, dim: int, chunk: int) -> int:
    """A finished-but-unmerged gallery job of ``n`` items under ``out/_parts``; returns the file count."""
    from precompute.engine.parts import PartStore, plan_sha256

    ids = [f"{i:07d}" for i in range(n)]
    plan = pd.DataFrame({"id": ids, "kind": "image", "path": [f"/data/{i}.jpg" for i in ids],
                         "media": [f"{i}.jpg" for i in ids], "caption": "", "split": "bench", "duration": np.nan,
                         "scores": ""})
    enc = {"name": "bench", "version": "1", "checkpoint": "none", "checkpoint_sha256": "0" * 64, "dim": dim,
           "device": "cpu"}
    identity = {"kind": "gallery", "dataset_key": "bench", "encoder_name": "bench", "encoder_sha256": "0" * 64,
                "plan_sha256": plan_sha256(plan)}
    store = PartStore(out)
    store.init_plan({**identity, "name": "bench", "encoder": enc, "media_root": "/data", "count": n,
                     "index_type": "flat", "provenance": {"identity": identity}}, plan)
    rng = np.random.default_rng(0)
    for k, start in enumerate(range(0, n, chunk)):
        rows = np.arange(start, min(n, start + chunk))
        emb = rng.normal(size=(len(rows), dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        writer = store.writer(f"c{chunk}n{k:06d}")
        writer.write_part(rows.tolist(), {"emb": emb}, [{"thumbnail": f"thumbs/{ids[r]}.jpg"} for r in rows], [])
        writer.compact()
    return len(store.files())


def case(name: str, out: Path) -> dict:
    """Run one case in this process (called in a child process)."""
    from precompute.engine.parts import PartStore, gather, read_part, scan

    store = PartStore(out)
    n = len(store.read_plan(["id"]))
    dim = store.read_job()["encoder"]["dim"]
    t0 = time.perf_counter()
    if name == "stream":
        index = scan([store], n)
        emb = np.lib.format.open_memmap(out / "stream.npy", mode="w+", dtype=np.float32, shape=(n, dim))
        gather(index, {"emb": emb})
        emb.flush()
    elif name == "in_memory":
        parts = [read_part(p) for p in store.files()]
        order = np.argsort(np.concatenate([p.rows for p in parts]))
        emb = np.concatenate([p.arrays["emb"] for p in parts])[order]
    else:
        from precompute.merge import finalize

        assert finalize(out).complete
    wall = time.perf_counter() - t0
    return {"bench": "merge", "case": name, "items": n, "dim": dim, "part_files": len(store.files()),
            "output_mb": round(n * dim * 4 / 2**20), "wall_s": round(wall, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--chunk", type=int, default=16_384, help="items per part file (--chunk-items)")
    p.add_argument("--cases", default="stream,in_memory,finalize")
    p.add_argument("--case", help=argparse.SUPPRESS)  # child process: run one case on --workdir
    p.add_argument("--workdir", default=None)
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(case(args.case, Path(args.workdir))), flush=True)
        return 0
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_merge_"))
    t = time.perf_counter()
    files = make_job(workdir, args.items, args.dim, args.chunk)
    print(json.dumps({"bench": "merge", "generated_s": round(time.perf_counter() - t, 1), "files": files}),
          file=sys.stderr)
    for name in args.cases.split(","):
        subprocess.run([sys.executable, __file__, "--case", name, "--workdir", str(workdir)], check=True)
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
