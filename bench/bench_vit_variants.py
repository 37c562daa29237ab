"""Every way tried to run BLIP-L's ViT (one 384 px image), interleaved in one run, vs transformers float32.

Variant = ``BACKEND:PRECISION[:cl]``: a ``covr_core.vision_backends`` backend; ``fp32`` (float32 weights),
``bf16`` (bfloat16 weights) or ``autocast`` (float32 weights under ``torch.autocast(bfloat16)``); ``:cl`` feeds
channels-last pixels and patch weights. One JSON line per variant: median and min seconds, ``ratio`` = median
over rounds of (variant / ``transformers:fp32`` in the same round), the first-call seconds (export or compile),
and the cosine of the CLS state to the float32 reference.

    python bench/bench_vit_variants.py --rounds 7
    python bench/bench_vit_variants.py --variants transformers:fp32 compile:bf16 compile-max-autotune:bf16
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from covr_core.artifact_cache import default_cache  # noqa: E402
from covr_core.vision_backends import build_vision_runner  # noqa: E402

DEFAULT_VARIANTS = ("transformers:fp32", "transformers:bf16", "sdpa:fp32", "sdpa:fp32:cl", "sdpa:bf16",
                    "sdpa:autocast", "openvino:fp32", "openvino:bf16", "onnxruntime:fp32", "compile:bf16")


def make_variant(name: str, models: dict):
    """(callable pixels -> states, description) for one variant name."""
    backend, precision, *flags = name.split(":")
    model = models["bf16" if precision == "bf16" else "fp32"]
    runner = build_vision_runner(model.vision_model, backend, default_cache())
    pixel_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    if "cl" in flags:
        model.vision_model.embeddings.patch_embedding.to(memory_format=torch.channels_last)

    def call(px):
        px = px.to(pixel_dtype)
        if "cl" in flags:
            px = px.contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "autocast" else contextlib.nullcontext()
        with ctx:
            return runner.run(px)

    return call, runner.detail


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; JSON lines on stdout."""
    from bench_query_latency import random_model

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), help="BACKEND:PRECISION[:cl]")
    p.add_argument("--rounds", type=int, default=7, help="interleaved timed rounds")
    p.add_argument("--batch", type=int, default=1, help="images per forward")
    p.add_argument("--size", choices=["large", "tiny"], default="large", help="model size")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    base = random_model(args.size).eval()
    models = {"fp32": base, "bf16": copy.deepcopy(base).to(torch.bfloat16)}
    size = int(base.config.vision_config.image_size)
    px = torch.randn(args.batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    names = ["transformers:fp32"] + [n for n in args.variants if n != "transformers:fp32"]
    calls, first, detail, cosine = {}, {}, {}, {}
    with torch.inference_mode():
        reference = base.vision_model(pixel_values=px).last_hidden_state[:, 0].float()
        for name in names:
            start = time.perf_counter()
            try:
                fn, detail[name] = make_variant(name, models)
                out = fn(px)
            except Exception as exc:  # noqa: BLE001 - report the variant as failed, go on
                print(json.dumps({"bench": "vit_variants", "variant": name, "error": repr(exc)[:300]}), flush=True)
                continue
            first[name] = time.perf_counter() - start
            cosine[name] = float(F.cosine_similarity(out[:, 0].float(), reference).min())
            calls[name] = fn
        load_start = os.getloadavg()[0]
        times = {n: [] for n in calls}
        for _ in range(args.rounds):
            for name, fn in calls.items():
                start = time.perf_counter()
                fn(px)
                times[name].append(time.perf_counter() - start)
    base_times = times["transformers:fp32"]
    for name, values in times.items():
        print(json.dumps({
            "bench": "vit_variants", "variant": name, "model": f"blip-{args.size}", "batch": args.batch,
            "median_s": round(statistics.median(values), 3), "min_s": round(min(values), 3),
            "ratio": round(statistics.median([v / b for v, b in zip(values, base_times)]), 3),
            "first_call_s": round(first[name], 1), "cls_cosine_vs_fp32": round(cosine[name], 6),
            "detail": detail[name], "rounds": args.rounds, "threads": torch.get_num_threads(),
            "load_avg": [round(load_start, 1), round(os.getloadavg()[0], 1)],
        }), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
