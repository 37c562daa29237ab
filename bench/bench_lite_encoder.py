"""Benchmark of the offline lite encoder on this CPU: cold load, images/s, query latency.

Prints one JSON line per case: ``{"bench": "lite_encoder", "case": ..., "value": ..., "unit": ..., ...}``.
Uses the bundled demo photos (assets/images). Run: ``.venv/bin/python bench/bench_lite_encoder.py``
(``--repeats N`` for more latency samples, ``--batch-size`` for the throughput case).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _emit(case: str, value: float, unit: str, **extra) -> None:
    print(json.dumps({"bench": "lite_encoder", "case": case, "value": round(value, 4), "unit": unit,
                      "threads": __import__("torch").get_num_threads(), "cpus": os.cpu_count(), **extra}),
          flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the cases and print JSON lines."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=10, help="latency samples per query case")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward in the throughput case")
    args = p.parse_args(argv)

    from PIL import Image

    t0 = time.perf_counter()
    from covr_core.lite import load_lite_encoder

    enc = load_lite_encoder()
    _emit("cold_load", time.perf_counter() - t0, "s", note="imports + both models + class embedding cache")

    paths = sorted((ROOT / "assets" / "images").glob("*.jpg"))
    images = [Image.open(p).convert("RGB") for p in paths]
    enc.batch_size = args.batch_size
    enc.encode_images(images[: args.batch_size])  # warm-up
    t0 = time.perf_counter()
    enc.encode_images(images)
    dt = time.perf_counter() - t0
    _emit("encode_images", len(images) / dt, "images/s", n=len(images), batch_size=args.batch_size)

    texts = [f"make it look like picture number {i}" for i in range(args.repeats)]
    lat = []
    for text in texts:
        t0 = time.perf_counter()
        enc.encode_texts([text])
        lat.append(time.perf_counter() - t0)
    _emit("encode_text", statistics.median(lat) * 1000, "ms", n=len(lat))

    lat = []
    for i in range(args.repeats):
        img = images[i % len(images)].copy()
        img.putpixel((0, 0), (i, i, i))  # a new reference each time: no cache hit
        t0 = time.perf_counter()
        enc.encode_query(img, "make it an orange")
        lat.append(time.perf_counter() - t0)
    _emit("query_uncached_reference", statistics.median(lat) * 1000, "ms", n=len(lat))

    ref = images[0]
    enc.prepare_reference(ref)
    lat = []
    for text in texts:
        t0 = time.perf_counter()
        enc.encode_query(ref, text)
        lat.append(time.perf_counter() - t0)
    _emit("query_cached_reference", statistics.median(lat) * 1000, "ms", n=len(lat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
