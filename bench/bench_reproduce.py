"""Wall time of ``python -m precompute.reproduce`` at real CIRR scale, per stage (lite encoder by default).

Builds the CIRR val layout from the real annotations in ``tests/data/cirr`` (4,181 triplets, 2,297 images;
generated images, see ``tests/helpers/real_cirr.py``), runs the reproduce command of docs/REPRODUCE.md in a
fresh process, and prints one JSON line per stage (``stage``, ``seconds``) plus a ``total`` line with the
machine. ``--sets N`` uses the documented subset (the first N image sets) instead of the full split.

Usage: ``python bench/bench_reproduce.py [--sets N] [--encoder lite] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.real_cirr import build_real_cirr  # noqa: E402


def main() -> None:
    """Build the layout, run the command, print the stage times as JSON lines."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", type=int, default=None, help="only the first N image sets of CIRR val")
    p.add_argument("--encoder", default="lite", help="encoder of the run (lite needs no download)")
    p.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temp folder)")
    a = p.parse_args()
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench-reproduce-"))
    try:
        t0 = time.perf_counter()
        cirr = build_real_cirr(work / "CIRR", n_sets=a.sets)
        build_s = time.perf_counter() - t0
        cmd = [sys.executable, "-m", "precompute.reproduce", "--cirr-root", str(work / "CIRR"), "--data-dir",
               str(work / "data"), "--name", "bench", "--encoder", a.encoder, "--device", "cpu", "--no-thumbs",
               "--log-level", "WARNING"]
        t1 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "TQDM_DISABLE": "1"})
        total = time.perf_counter() - t1
        prov = json.loads((work / "data" / "reports" / "bench" / "provenance.json").read_text())
        base = {"encoder": a.encoder, "triplets": len(cirr.triplets), "images": len(cirr.images)}
        for stage, seconds in prov["stages"].items():
            print(json.dumps({**base, "stage": stage, "seconds": seconds}))
        print(json.dumps({**base, "stage": "total", "seconds": round(total, 1), "build_layout_s": round(build_s, 1),
                          "machine": f"{platform.machine()} {os.cpu_count()} CPUs", "python": platform.python_version()}))
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
