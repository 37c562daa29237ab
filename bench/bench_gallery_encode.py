"""Gallery encoding on CPU with BLIP-L (images/s): the real gallery job under encoder variants, interleaved.

Each variant is ``BACKEND:DTYPE:BATCH:WORKERS`` (a ``covr_core.vision_backends`` backend, the encoder dtype, images
per forward, DataLoader decode workers). ``transformers:float32:32:2`` is today's gallery job on CPU (the
``bench_gallery_job.py`` defaults: float32 eager transformers ViT, batch 32, 2 workers). Every round runs the job
once per variant on the same generated CIRR-size images (random-init BLIP-L, so only the timing means anything);
one JSON line per variant on stdout: median images/s, ``speedup`` = median over rounds of (variant images/s /
baseline images/s in the same round), the job's stage split, the load average.

    python bench/bench_gallery_encode.py --images 8 --rounds 3
    python bench/bench_gallery_encode.py --variants transformers:float32:32:2 openvino:float32:8:0 openvino:float32:8:1
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


import torch

BASELINE = "transformers:float32:32:2"
DEFAULT_VARIANTS = (BASELINE, "openvino:float32:8:1", "openvino:bfloat16:8:1", "sdpa:bfloat16:8:1")


def build_encoders(names: list[str], size: str) -> dict:
    """One encoder per distinct (backend, dtype), sharing the random BLIP-L weights per dtype."""
    from bench_query_latency import random_model

    from covr_core.blip_load import make_blip_encoder
    from covr_core.text import build_blip_tokenizer

    tok, base = build_blip_tokenizer(), random_model(size)
    models, encoders = {"float32": base}, {}
    for name in names:
        backend, dtype = name.split(":")[:2]
        if (backend, dtype) in encoders:
            continue
        if dtype not in models:
            models[dtype] = copy.deepcopy(base).to(getattr(torch, dtype))
        encoders[(backend, dtype)] = make_blip_encoder(models[dtype], tok, name=f"blip-{size}-random", dtype=dtype,
                                                       vision_backend=backend)
    return encoders


def run_job(enc, root: Path, out: Path, batch: int, workers: int) -> tuple[float, dict]:
    """One gallery job over the generated split; (seconds, stage timing)."""
    from precompute import gallery

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    summary = gallery.run(dataset="cirr", root=str(root), split="val", out=str(out), encoder=enc, device="cpu",
                          dtype="float32", batch_size=batch, num_workers=workers, thumbs=True, argv=["bench"])
    if summary.failed:
        raise RuntimeError(f"gallery job failed: {summary.line()}")
    return time.perf_counter() - start, summary.timing


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; JSON lines on stdout."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS),
                   help="BACKEND:DTYPE:BATCH:WORKERS; the first is the baseline (default: %(default)s)")
    p.add_argument("--images", type=int, default=8, help="generated CIRR-size images per job")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    p.add_argument("--size", choices=["large", "tiny"], default="large", help="model size")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from bench_gallery_job import make_images

    work = Path(tempfile.mkdtemp(prefix="bench_gallery_encode_"))
    try:
        root = make_images(work / "cirr", args.images)
        encoders = build_encoders(args.variants, args.size)
        warm = {}
        for name in args.variants:  # exports / first-call costs, outside the timed rounds
            backend, dtype, batch, workers = name.split(":")
            warm[name] = run_job(encoders[(backend, dtype)], root, work / "warm", int(batch), int(workers))[0]
        load_start = os.getloadavg()[0]
        rates: dict = {n: [] for n in args.variants}
        timing: dict = {}
        for _ in range(args.rounds):
            for name in args.variants:
                backend, dtype, batch, workers = name.split(":")
                seconds, timing[name] = run_job(encoders[(backend, dtype)], root, work / "out", int(batch), int(workers))
                rates[name].append(args.images / seconds)
        base = rates[args.variants[0]]
        for name, values in rates.items():
            backend, dtype, batch, workers = name.split(":")
            print(json.dumps({
                "bench": "gallery_encode", "variant": name, "baseline": args.variants[0], "model": f"blip-{args.size}",
                "images": args.images, "images_per_s": round(statistics.median(values), 3),
                "speedup": round(statistics.median([v / b for v, b in zip(values, base)]), 2),
                "all_images_per_s": [round(v, 3) for v in values], "warm_run_s": round(warm[name], 1),
                "timing_last_round": timing[name], "backend": encoders[(backend, dtype)].info.backend,
                "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                "load_avg": [round(load_start, 1), round(os.getloadavg()[0], 1)],
            }), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
