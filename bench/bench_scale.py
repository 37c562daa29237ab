"""Scale rehearsal of the gallery job: N generated small images through the tiny BLIP, one process vs a local
Ray cluster. One JSON line per case on stdout.

    python bench/bench_scale.py --items 100000                  # single, ray (1 worker x 2 CPU), ray (2 x 1 CPU)
    python bench/bench_scale.py --items 5000 --cases single,ray1

Each case is the real command line (``python -m precompute.gallery --dataset folder ...``) in a fresh
process: ``wall_s`` includes start-up (imports, model load, Ray start), ``items_per_s`` = items / wall,
``overhead_vs_single`` = wall / single wall - 1 for the same CPUs, ``cpu_s`` the CPU seconds (user + system)
of the whole process tree (sampled every 0.5 s; on a shared machine a steadier measure of the work than wall
time), ``cpu_overhead_vs_single`` the same ratio in CPU seconds, ``part_files`` the files under _parts/
after the merge (``--keep-parts``), ``peak_rss_mb`` the peak of the summed RSS of the launch's process tree
(Ray: driver, raylet, GCS, workers; shared library pages are counted once per process, so it overstates).
On a GPU cluster the same command with ``--ray ADDRESS`` runs one worker per GPU (docs/SCALE.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from PIL import Image  # noqa: E402

CASES = {  # name -> extra flags (every case: 2 CPUs of compute)
    "single": [],
    "ray1": ["--ray", "local", "--ray-workers", "1", "--ray-cpus-per-worker", "2"],
    "ray2": ["--ray", "local", "--ray-workers", "2", "--ray-cpus-per-worker", "1"],
}


def make_images(folder: Path, n: int, size: int = 64, seed: int = 0) -> Path:
    """``n`` distinct small JPEGs in sub-folders of 1000 (a plain media folder)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    for i in range(n):
        sub = folder / f"{i // 1000:04d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        arr = np.roll(base, (i % size, (i // size) % size), axis=(0, 1))
        Image.fromarray(arr).save(sub / f"{i:07d}.jpg", quality=90)
    return folder


def _sample_tree(proc: psutil.Process, cpu: dict[int, float]) -> int:
    """Summed RSS of the process tree now; records each process's CPU seconds (user + system) in ``cpu``."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
            t = p.cpu_times()
            cpu[p.pid] = t.user + t.system
        except psutil.Error:
            continue
    return total


def run_case(name: str, media: Path, blip: Path, out: Path, args) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "precompute.gallery", "--dataset", "folder", "--root", str(media), "--out", str(out),
           "--encoder", "blip", "--blip-source", str(blip), "--device", "cpu", "--num-workers", "0",
           "--batch-size", str(args.batch_size), "--keep-parts", "--progress-every", "60", *CASES[name]]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "TQDM_DISABLE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps, peak, cpu, stop = psutil.Process(proc.pid), [0], {}, threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _sample_tree(ps, cpu))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    log, _ = proc.communicate()
    stop.set()
    sampler.join()
    wall = time.perf_counter() - t0
    summary = re.findall(r"done=(\d+) skipped=\d+ failed=(\d+) total=(\d+) units=(\d+) part_files=(\d+)", log)
    if proc.returncode != 0 or not summary:
        raise RuntimeError(f"{name} failed (rc {proc.returncode}):\n{log[-3000:]}")
    done, failed, total, units, parts = map(int, summary[-1])
    return {"bench": "scale", "case": name, "items": total, "done": done, "failed": failed,
            "wall_s": round(wall, 1), "items_per_s": round(total / wall, 1), "cpu_s": round(sum(cpu.values()), 1),
            "units": units, "part_files": parts,
            "peak_rss_mb": round(peak[0] / 2**20), "flags": " ".join(CASES[name])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=100_000, help="generated images")
    p.add_argument("--image-size", type=int, default=64, help="side of the generated JPEGs")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward")
    p.add_argument("--cases", default="single,ray1,ray2", help=f"comma list of {', '.join(CASES)}")
    p.add_argument("--workdir", default=None, help="where to generate (default: a temp folder, deleted)")
    args = p.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_scale_"))
    media = workdir / "media"
    t = time.perf_counter()
    if not media.is_dir():
        make_images(media, args.items, args.image_size)
    from helpers.tiny_blip import make_tiny_blip_folder

    blip = workdir / "blip-tiny"
    if not blip.is_dir():
        make_tiny_blip_folder(blip)
    print(json.dumps({"bench": "scale", "generated_s": round(time.perf_counter() - t, 1)}), file=sys.stderr)
    results = {}
    for name in args.cases.split(","):
        results[name] = rec = run_case(name, media, blip, workdir / f"out-{name}", args)
        if "single" in results and name != "single":
            rec["overhead_vs_single"] = round(rec["wall_s"] / results["single"]["wall_s"] - 1, 3)
            rec["cpu_overhead_vs_single"] = round(rec["cpu_s"] / results["single"]["cpu_s"] - 1, 3)
        print(json.dumps(rec), flush=True)
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
