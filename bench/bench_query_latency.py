"""Query latency of the CoVR BLIP encoder with a real-size BLIP-L (random init; timing only), as ratios to bare
transformers float32 measured in the same run.

Every variant (a vision backend and a dtype: ``openvino:float32``, ``sdpa:bfloat16``, ...) and the baseline
``bare`` (transformers' modules called as they are, float32: ViT, then the text encoder in text mode and
with cross-attention to the 577 image states) run interleaved, round after round, so a noisy shared host
slows them alike. Cases:

- ``full_query``: a new image + text -> f_img, f_txt, f_mm (``encode_query`` on an image never seen)
- ``text_edit``: a new text on the cached reference image (``encode_query``; ViT states and cross-attention
  keys/values cached; bare transformers keeps only the ViT states)
- ``image_embedding``: one image -> f_img (``encode_images``; a gallery target)

One JSON line per (variant, case) on stdout: median and min seconds, ``ratio`` = median over rounds of
(variant time / bare time in the same round), ``cpu_ratio`` = the same with the process's CPU time (steadier on
a crowded host, meaningful with ``--threads 1``), the build and first-call seconds (exports, compiles), the load
average, torch threads. ``--threads 1`` etc. times thread settings.

    python bench/bench_query_latency.py                                     # default variants
    python bench/bench_query_latency.py --variants sdpa:float32 openvino:bfloat16 compile:bfloat16 --rounds 9
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import statistics
import time


import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from covr_core.blip_load import make_blip_encoder
from covr_core.convert import build_blip_model
from covr_core.text import build_blip_tokenizer

TEXT = "make the dog sit on a red sofa in a bright living room"
CASES = ("full_query", "text_edit", "image_embedding")
DEFAULT_VARIANTS = ("transformers:float32", "sdpa:float32", "openvino:float32", "sdpa:bfloat16",
                    "openvino:bfloat16")


def blip_large_config(size: str = "large"):
    """BLIP-L retrieval config with BLIP's values (covr.md §2.1, §5.3); ``size="tiny"`` for a smoke run."""
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


def random_model(size: str, seed: int = 0, std: float = 0.02):
    """Fast random init: uninitialised build, then N(0, std) weights and LayerNorm weights 1 + N(0, std)."""
    model = build_blip_model(blip_large_config(size))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(0.0, std, generator=gen)
            if param.ndim == 1 and "norm" in name.lower() and name.endswith("weight"):
                param.add_(1.0)
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


class BareQuery:
    """Bare transformers float32: the modules as they are, no caches (the goals' baseline)."""

    def __init__(self, model, tokenizer, transform) -> None:
        self.model, self.tokenizer, self.transform = model, tokenizer, transform
        self.states: dict[int, torch.Tensor] = {}

    def _text(self, text: str, states: torch.Tensor):
        m = self.model
        batch = self.tokenizer([text], padding="longest", return_tensors="pt")
        ids, mask = batch["input_ids"], batch["attention_mask"]
        f_txt = m.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
        mm = ids.clone()
        mm[:, 0] = 30523
        f_mm = m.text_encoder(input_ids=mm, attention_mask=mask, encoder_hidden_states=states,
                              encoder_attention_mask=torch.ones(states.shape[:-1], dtype=torch.long)).last_hidden_state
        return F.normalize(m.text_proj(f_mm[:, 0]), dim=-1), F.normalize(m.text_proj(f_txt), dim=-1)

    def full_query(self, image, text: str):
        states = self.model.vision_model(pixel_values=self.transform(image)[None]).last_hidden_state
        f_img = F.normalize(self.model.vision_proj(states[:, 0]), dim=-1)
        self.states[id(image)] = states
        return (*self._text(text, states), f_img)

    def text_edit(self, image, text: str):
        return self._text(text, self.states[id(image)])

    def image_embedding(self, image):
        states = self.model.vision_model(pixel_values=self.transform(image)[None]).last_hidden_state
        return F.normalize(self.model.vision_proj(states[:, 0]), dim=-1)


class EncoderQuery:
    """The project's encoder under one (backend, dtype) variant."""

    def __init__(self, enc) -> None:
        self.enc = enc

    def full_query(self, image, text: str):
        from covr_core.cache import content_hash

        out = self.enc.encode_query(image, text)  # a new image: misses both caches
        key = content_hash(image)  # forget it, so the text-edit reference stays cached
        self.enc.reference_cache.pop(key)
        self.enc.kv_cache.pop(key)
        return out

    def text_edit(self, image, text: str):
        return self.enc.encode_query(image, text)

    def image_embedding(self, image):
        return self.enc.encode_images([image])


def build_variants(size: str, names: list[str]) -> tuple[dict, dict]:
    """``{"bare": BareQuery, "openvino:float32": EncoderQuery, ...}`` and their build seconds."""
    tok = build_blip_tokenizer()
    base = random_model(size)
    by_dtype = {"float32": base}
    out: dict = {}
    build: dict = {}
    for name in names:
        backend, dtype = name.split(":")
        if dtype not in by_dtype:
            by_dtype[dtype] = copy.deepcopy(base).to(getattr(torch, dtype))
        start = time.perf_counter()
        enc = make_blip_encoder(by_dtype[dtype], tok, name=f"blip-{size}-random", dtype=dtype, vision_backend=backend)
        out[name] = EncoderQuery(enc)
        build[name] = time.perf_counter() - start
    first = next(iter(out.values())).enc
    out = {"bare": BareQuery(base, tok, first.image_transform), **out}
    build["bare"] = 0.0
    return out, build


def run(size: str, names: list[str], cases: tuple[str, ...], rounds: int) -> list[dict]:
    """Warm every variant, then time ``rounds`` interleaved rounds; returns the JSON records."""
    variants, build = build_variants(size, names)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)) for _ in range(rounds + 1)]
    texts = [f"{TEXT} {i}" for i in range(rounds + 2)]
    first_call: dict = {}
    load_start = os.getloadavg()[0]
    with torch.inference_mode():
        for name, v in variants.items():  # warm-up: exports, compiles, caches of the reference image
            start = time.perf_counter()
            v.full_query(images[0], texts[0])
            first_call[name] = time.perf_counter() - start
            v.text_edit(images[0], texts[1])
        times = {(n, c): [] for n in variants for c in cases}
        cpu = {(n, c): [] for n in variants for c in cases}
        for r in range(rounds):
            for case in cases:
                for name, v in variants.items():
                    img = images[0] if case == "text_edit" else images[r + 1]  # cached vs new image
                    start, cpu_start = time.perf_counter(), time.process_time()
                    if case == "image_embedding":
                        v.image_embedding(img)
                    else:
                        getattr(v, case)(img, texts[r + 2])
                    times[(name, case)].append(time.perf_counter() - start)
                    cpu[(name, case)].append(time.process_time() - cpu_start)
    load_end = os.getloadavg()[0]
    records = []
    for (name, case), values in times.items():
        bare = times[("bare", case)]
        enc = getattr(variants[name], "enc", None)
        rec = {
            "bench": "query_latency", "case": case, "variant": name, "model": f"blip-{size}",
            "backend": enc.info.backend if enc else "transformers (bare)",
            "median_s": round(statistics.median(values), 4), "min_s": round(min(values), 4),
            "ratio": round(statistics.median([a / b for a, b in zip(values, bare)]), 3),
            "ratio_of_medians": round(statistics.median(values) / statistics.median(bare), 3),
            "cpu_median_s": round(statistics.median(cpu[(name, case)]), 4),
            "cpu_ratio": round(statistics.median([a / b for a, b in zip(cpu[(name, case)], cpu[("bare", case)])]), 3),
            "rounds": rounds, "build_s": round(build[name], 1), "first_call_s": round(first_call[name], 1),
            "detail": enc._vision.detail if enc else "", "threads": torch.get_num_threads(),
            "load_avg": [round(load_start, 1), round(load_end, 1)], "cpus": os.cpu_count(),
            "torch": torch.__version__, "machine": platform.machine(),
        }
        print(json.dumps(rec), flush=True)
        records.append(rec)
    return records


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(description="CoVR BLIP query latency vs bare transformers (random-init BLIP-L, CPU)")
    p.add_argument("--size", choices=["large", "tiny"], default="large", help="model size (default: %(default)s)")
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS),
                   help="BACKEND:DTYPE pairs (backends of covr_core.vision_backends; default: %(default)s)")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES, help="cases (default: all)")
    p.add_argument("--rounds", type=int, default=7, help="interleaved timed rounds (default: %(default)s)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; JSON lines on stdout."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args.size, args.variants, tuple(args.cases), args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
