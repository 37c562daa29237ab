"""Query latency of the CoVR BLIP encoder with a real-size BLIP-L (random init; timing only).

Cases (median seconds over ``--repeats`` after ``--warmup`` runs), one JSON line each on stdout:
- ``image_embedding``: one image -> transform + ViT-L + vision_proj (a gallery target / f_img)
- ``text_only``: one text -> f_txt
- ``multimodal_cached_states``: f_mm given cached ViT states (transformers pass, cross-attention K/V
  computed from the 577 states)
- ``text_edit_cached``: ``encode_query`` on a cached reference (f_txt + f_mm from cached K/V; the UI's
  "change only the text" path; target <= 0.2 s)
- ``full_query``: ``encode_query`` on a new image (ViT + K/V + text; target <= 1.0 s)

Usage: ``python bench/bench_query_latency.py [--dtypes float32 bfloat16] [--compile] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from covr_core.blip import make_blip_encoder  # noqa: E402
from covr_core.convert import build_blip_model  # noqa: E402
from covr_core.text import build_blip_tokenizer  # noqa: E402

TEXT = "make the dog sit on a red sofa in a bright living room"


def blip_large_config(size: str = "large"):
    """BLIP-L retrieval config as CoVR uses it (covr.md §2.1, §5.3); ``size="tiny"`` for a smoke run."""
    from transformers import BlipConfig

    if size == "tiny":
        vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=16)
        text = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=12)
    else:
        vision = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16)
        text = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
    vision.update(image_size=384, patch_size=16, layer_norm_eps=1e-6, hidden_act="gelu")
    text.update(vocab_size=30524, layer_norm_eps=1e-12, is_decoder=True, hidden_act="gelu", max_position_embeddings=512)
    return BlipConfig(text_config=text, vision_config=vision, image_text_hidden_size=256)


def random_model(size: str, seed: int = 0):
    """Fast random init: uninitialised build, then N(0, 0.02) weights and unit LayerNorms."""
    model = build_blip_model(blip_large_config(size))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 1 and "norm" in name.lower() and name.endswith("weight"):
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.02, generator=gen)
    return model


def timed(fn, repeats: int, warmup: int) -> list[float]:
    """Wall-clock seconds of ``fn()`` for ``repeats`` runs after ``warmup`` unrecorded runs."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


CASES = ("image_embedding", "text_only", "multimodal_cached_states", "text_edit_cached", "full_query")


def run_config(size: str, dtype: str, compile_: bool, repeats: int, warmup: int,
               only: tuple[str, ...] = CASES) -> list[dict]:
    """All cases for one (dtype, compile) setting; returns the JSON records."""
    build_start = time.perf_counter()
    enc = make_blip_encoder(random_model(size), build_blip_tokenizer(), name=f"blip-{size}-random", dtype=dtype,
                            compile=compile_)
    build_s = time.perf_counter() - build_start
    rng = np.random.default_rng(0)
    counter = iter(range(10**9))

    def new_image():
        return Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))

    img = new_image()
    state = enc.reference_state(img)
    texts = [f"{TEXT} {i}" for i in range(4)]

    def mm_cached_states():
        ids, mask = enc.tokenize([texts[next(counter) % 4]])
        with torch.inference_mode():
            enc._multimodal_features(ids, mask, state.states)

    def full_query():
        enc.clear_caches()
        enc.encode_query(fresh[next(counter) % len(fresh)], TEXT)

    fresh = [new_image() for _ in range(3)]
    cases = {
        "image_embedding": lambda: enc.encode_images([img]),
        "text_only": lambda: enc.encode_texts([texts[next(counter) % 4]]),
        "multimodal_cached_states": mm_cached_states,
        "text_edit_cached": lambda: enc.encode_query(img, texts[next(counter) % 4]),
        "full_query": full_query,
    }
    records = []
    for case, fn in cases.items():
        if case not in only:
            continue
        compile_start = time.perf_counter()
        times = timed(fn, repeats, warmup)
        rec = {
            "case": case,
            "model": f"blip-{size}",
            "dtype": dtype,
            "compile": compile_,
            "median_s": round(statistics.median(times), 4),
            "min_s": round(min(times), 4),
            "repeats": repeats,
            "warmup_plus_runs_s": round(time.perf_counter() - compile_start, 2),
            "build_s": round(build_s, 2),
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "machine": platform.machine(),
        }
        print(json.dumps(rec), flush=True)
        records.append(rec)
    return records


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(description="CoVR BLIP query latency (random-init BLIP-L, CPU)")
    p.add_argument("--size", choices=["large", "tiny"], default="large", help="model size (default: %(default)s)")
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"],
                   choices=["float32", "bfloat16", "float16"], help="dtypes to time (default: %(default)s)")
    p.add_argument("--compile", action="store_true", help="also time bfloat16 with torch.compile")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per case (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per case (default: %(default)s)")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES,
                   help="cases to time (default: all)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; JSON lines on stdout."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = [(d, False) for d in args.dtypes]
    if args.compile:
        settings.append(("bfloat16", True))
    for dtype, comp in settings:
        try:
            run_config(args.size, dtype, comp, args.repeats, args.warmup, tuple(args.cases))
        except Exception as exc:  # noqa: BLE001 (report and go on with the next setting)
            print(json.dumps({"case": "error", "dtype": dtype, "compile": comp, "error": repr(exc)[:300]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
