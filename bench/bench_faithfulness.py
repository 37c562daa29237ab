"""Faithfulness of every speed path at BLIP-L size: cosine of f_img, f_mm, f_txt to the hand-written BLIP forward.

For each weight scale (``--stds``, default 0.02 and 0.3) a random BLIP-L is built; the reference is the plain
float32 BLIP forward of ``tests/helpers/blip_reference.py`` (BLIP's heads and eps written out). Each variant
``BACKEND:DTYPE`` encodes the same queries (batched ``encode_queries`` and single ``encode_query``); one JSON
line per (std, variant) gives the worst cosine per embedding.

    python bench/bench_faithfulness.py
    python bench/bench_faithfulness.py --variants openvino:float32 openvino:bfloat16 --stds 0.02
"""

from __future__ import annotations

import argparse
import copy
import json
import time


import numpy as np
import torch
from PIL import Image

TEXTS = ["make the dog sit on a red sofa", "same scene at night, with snow (and two cats)!"]
DEFAULT_VARIANTS = ("transformers:float32", "sdpa:float32", "openvino:float32", "onnxruntime:float32",
                    "sdpa:bfloat16", "openvino:bfloat16", "transformers:bfloat16")


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; JSON lines on stdout."""
    from bench_query_latency import random_model
    from tests.helpers.blip_reference import hand_query

    from covr_core.blip_load import make_blip_encoder
    from covr_core.text import build_blip_tokenizer

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), help="BACKEND:DTYPE pairs")
    p.add_argument("--stds", nargs="+", type=float, default=[0.02, 0.3], help="weight scales")
    p.add_argument("--size", choices=["large", "tiny"], default="large", help="model size")
    args = p.parse_args(argv)
    tok = build_blip_tokenizer()
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)) for _ in TEXTS]
    for std in args.stds:
        base = random_model(args.size, seed=1, std=std)
        reference_enc = make_blip_encoder(base, tok, name="ref", vision_backend="transformers")
        size = reference_enc.image_transform.size
        with torch.no_grad():
            refs = [hand_query(reference_enc, img, text, image_size=size) for img, text in zip(images, TEXTS)]
        models = {"float32": base}
        for name in args.variants:
            backend, dtype = name.split(":")
            if dtype not in models:
                models[dtype] = copy.deepcopy(base).to(getattr(torch, dtype))
            enc = make_blip_encoder(models[dtype], tok, name="v", dtype=dtype, vision_backend=backend)
            start = time.perf_counter()
            batched = enc.encode_queries(images, TEXTS)
            worst = {"f_mm": 1.0, "f_img": 1.0, "f_txt": 1.0}
            for i, (img, text) in enumerate(zip(images, TEXTS)):
                single = enc.encode_query(img, text)
                for key, ref in zip(worst, refs[i]):
                    ref = ref / np.linalg.norm(ref)
                    for got in (getattr(batched, key)[i], getattr(single, key)):
                        worst[key] = min(worst[key], float(got @ ref))
            print(json.dumps({"bench": "faithfulness", "model": f"blip-{args.size}", "std": std, "variant": name,
                              "backend": enc.info.backend, **{f"min_cos_{k}": round(v, 6) for k, v in worst.items()},
                              "seconds": round(time.perf_counter() - start, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
