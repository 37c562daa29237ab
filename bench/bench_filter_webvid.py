"""Time and peak memory of ``precompute.filter_webvid`` on generated tables of the real sizes.

    python bench/bench_filter_webvid.py                       # small: 160k triplets x 1.5M map rows
    python bench/bench_filter_webvid.py --size full           # the study's case: 1.6M triplets x 15M map rows
    python bench/bench_filter_webvid.py --triplets 500000 --map-rows 5000000 --map-format parquet

The generated CSV has the WebVid-CoVR columns (``txt1, txt2, sim_txt, pth1, pth2, edit, scores`` with 15
scores per row, ~130k distinct videos per 1.6M triplets) and the map the CleanVid layout (``id``, ``author``
JSON with ``accountsId``, ``categories`` JSON list). The filter runs as a subprocess; its peak RSS comes from
``getrusage(RUSAGE_CHILDREN)``. One JSON line on stdout.
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
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from covr_core.filter_run import FilterRun

REPO = Path(__file__).resolve().parents[1]
SIZES = {"small": (160_000, 1_500_000), "full": (1_644_276, 15_000_000), "tiny": (16_000, 150_000)}
CATEGORIES = ["Nature", "Animals", "People", "Business", "Technology", "City", "Food", "Sports", "Travel",
              "Holidays", "Education", "Health", "Industrial", "Abstract", "Backgrounds", "Transportation",
              "Arts", "Science", "Religion", "Buildings", "Objects", "Beauty", "Fashion", "Music"]


def _pool(rng: np.random.Generator, n: int, words: int) -> np.ndarray:
    vocab = np.array("a the man woman dog runs over beach city night red blue small big car tree sky water "
                     "walks sits looking camera slow motion aerial view of people at".split())
    return np.array([" ".join(rng.choice(vocab, words)) for _ in range(n)], dtype=object)


def generate(folder: Path, triplets: int, map_rows: int, map_format: str, seed: int = 0) -> tuple[Path, Path]:
    """Write ``train.csv`` and ``map.<fmt>`` (vectorised with Arrow: seconds per million rows)."""
    rng = np.random.default_rng(seed)
    map_ids = rng.choice(np.arange(1_000_000, 1_000_000 + 4 * map_rows), size=map_rows, replace=False)
    n_videos = max(10, int(triplets / 12.6))
    vid_rows = rng.choice(map_rows, size=min(n_videos, map_rows), replace=False)
    vids = map_ids[vid_rows].copy()
    vids[: n_videos // 100] += 10 * map_rows  # ~1% of the CSV's videos are absent from the map
    folders = rng.integers(0, 1000, n_videos)
    pths = np.array([f"{f:03d}/{v}" for f, v in zip(folders, vids)], dtype=object)
    i2 = rng.integers(0, n_videos, triplets)
    i1 = (i2 + rng.integers(1, 40, triplets)) % n_videos  # pairs are mostly near each other, like captions
    caps, edits = _pool(rng, 5000, 12), _pool(rng, 2000, 6)
    scores = np.array([json.dumps([round(float(x), 4) for x in rng.uniform(0.2, 0.35, 15)]) for _ in range(2000)],
                      dtype=object)
    table = pa.table({"txt1": caps[rng.integers(0, 5000, triplets)], "txt2": caps[rng.integers(0, 5000, triplets)],
                      "sim_txt": np.round(rng.uniform(0.5, 1.0, triplets), 4), "pth1": pths[i1], "pth2": pths[i2],
                      "edit": edits[rng.integers(0, 2000, triplets)], "scores": scores[rng.integers(0, 2000, triplets)]})
    csv = folder / "webvid2m-covr_train.csv"
    pacsv.write_csv(table, csv)
    del table
    n_auth = max(1, map_rows // 25)
    codes = rng.integers(0, n_auth, map_rows)
    codes[vid_rows] = n_auth + np.arange(len(vid_rows)) // 30  # neighbouring CSV videos share authors
    authors = pa.array(codes.astype(str))
    author = pc.binary_join_element_wise('{"accountsId": "', authors, '", "displayName": "user ', authors, '"}', "")
    author = pc.if_else(pa.array(rng.uniform(size=map_rows) < 0.03), pa.scalar(None, pa.string()), author)
    combos = np.array([json.dumps(sorted(set(rng.choice(CATEGORIES, rng.integers(0, 4)).tolist())))
                       for _ in range(3000)], dtype=object)
    mtable = pa.table({"id": pa.array(map_ids.astype(str)), "author": author,
                       "categories": pa.array(combos[rng.integers(0, 3000, map_rows)].tolist(), pa.string())})
    if map_format == "parquet":
        import pyarrow.parquet as pq

        mpath = folder / "map.parquet"
        pq.write_table(mtable, mpath, row_group_size=1_000_000)
    else:
        mpath = folder / "map.csv"
        pacsv.write_csv(mtable, mpath)
    return csv, mpath


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="small", help="preset (triplets x map rows)")
    p.add_argument("--triplets", type=int, help="override the preset's triplet count")
    p.add_argument("--map-rows", type=int, help="override the preset's map row count")
    p.add_argument("--map-format", choices=("csv", "parquet"), default="csv", help="map file format")
    p.add_argument("--workdir", help="keep the generated tables here (default: a temp folder, removed)")
    args = p.parse_args(argv)
    triplets, map_rows = SIZES[args.size]
    triplets, map_rows = args.triplets or triplets, args.map_rows or map_rows
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_filter_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    csv, mpath = generate(work, triplets, map_rows, args.map_format)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "precompute.filter_webvid", "--csv", str(csv), "--map", str(mpath),
                           "--out", str(work / "out"), "--log-level", "WARNING"], cwd=REPO, capture_output=True,
                          text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        print(proc.stderr[-3000:], file=sys.stderr)
        return proc.returncode
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    stats = FilterRun.load(work / "out").record
    per = next(iter(stats["stats"].values()))
    print(json.dumps({"bench": "filter_webvid", "triplets": triplets, "map_rows": map_rows,
                      "map_format": args.map_format, "csv_mb": round(csv.stat().st_size / 2**20, 1),
                      "map_mb": round(mpath.stat().st_size / 2**20, 1), "generate_s": round(gen_s, 1),
                      "filter_s": round(wall, 1), "map_pass_s": stats["seconds_map"], "peak_rss_mb": round(peak_mb),
                      "kept": {k: v["triplets"] for k, v in per.items()}}))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
