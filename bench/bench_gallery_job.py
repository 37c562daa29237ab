"""Throughput of the gallery job (images/s, videos/s) end to end, and where the time goes.

CPU (default): lite and tiny BLIP on generated CIRR-size images and WebVid-like clips.

    python bench/bench_gallery_job.py                       # CPU: lite + tiny BLIP, 48 images, 6 videos
    python bench/bench_gallery_job.py --device cuda --model blip-large-random --images 8000 --num-workers 14

GPU mode builds a BLIP-L-sized retrieval model with random weights (no download), runs the real job
(decode + resize in DataLoader workers, pinned memory, bf16 autocast) and reports the stage split: ``decode_wait``
(main process waiting for workers), ``transfer`` (host -> device), ``model`` (forward incl. sync), ``write``.
One JSON line per case on stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path


import numpy as np
from PIL import Image


def make_images(folder: Path, n: int, size=(500, 375), seed: int = 0) -> Path:
    """A CIRR-layout val split of ``n`` photo-sized PNGs (NLVR2 images are ~500 px wide)."""
    rng = np.random.default_rng(seed)
    split, caps = {}, []
    (folder / "img_raw" / "dev").mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    for i in range(n):
        name = f"dev-{i}-0-img0"
        arr = np.roll(base, i, axis=1)
        Image.fromarray(arr).resize(size, Image.Resampling.BILINEAR).save(folder / "img_raw" / "dev" / f"{name}.png")
        split[name] = f"./dev/{name}.png"
    caps.append({"pairid": 0, "reference": "dev-0-0-img0", "target_hard": "dev-0-0-img0", "caption": "x",
                 "target_soft": {}, "img_set": {"id": 0, "members": ["dev-0-0-img0"]}})
    (folder / "captions").mkdir(exist_ok=True)
    (folder / "image_splits").mkdir(exist_ok=True)
    (folder / "captions" / "cap.rc2.val.json").write_text(json.dumps(caps))
    (folder / "image_splits" / "split.rc2.val.json").write_text(json.dumps(split))
    return folder


def make_videos(folder: Path, n: int, frames: int = 120) -> tuple[Path, Path]:
    """``n`` WebVid-like clips (320x180, 12 s at 10 fps) + a CSV naming them as targets."""
    from tests.helpers.media_files import write_test_clip

    rows = []
    for i in range(n):
        pth = f"000/{1000 + i}"
        (folder / "videos" / "000").mkdir(parents=True, exist_ok=True)
        write_test_clip(folder / "videos" / f"{pth}.mp4", frames, fps=10, size=(320, 180), gop=30)
        rows.append(f'a,b,0.5,000/{1000 + (i + 1) % n},{pth},edit,"[]"')
    csv = folder / "bench.csv"
    csv.write_text("txt1,txt2,sim_txt,pth1,pth2,edit,scores\n" + "\n".join(rows) + "\n")
    return csv, folder / "videos"


def blip_large_random(folder: Path) -> Path:
    """Save a BLIP-L-sized retrieval model with random weights (ViT-L/16 @ 384, BERT-base text, 256-d)."""
    import torch
    from transformers import BlipConfig, BlipForImageTextRetrieval

    from covr_core.text import build_blip_tokenizer

    cfg = BlipConfig(
        text_config=dict(vocab_size=30524, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072, is_decoder=True, bos_token_id=30522, pad_token_id=0,
                         sep_token_id=102, layer_norm_eps=1e-12),
        vision_config=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                           image_size=384, patch_size=16, layer_norm_eps=1e-5),
        image_text_hidden_size=256)
    torch.manual_seed(0)
    BlipForImageTextRetrieval(cfg).eval().save_pretrained(folder)
    build_blip_tokenizer().save_pretrained(folder)
    return folder


def run_case(label: str, encoder, kind: str, data: dict, args, workdir: Path) -> dict:
    from precompute import gallery

    out = workdir / f"out-{label}-{kind}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    s = gallery.run(**data, out=str(out), encoder=encoder, device=args.device, dtype=args.dtype,
                    batch_size=args.batch_size, num_workers=args.num_workers, flush_every=args.flush_every,
                    argv=["bench"])
    wall = time.perf_counter() - t0
    n = s.done + s.failed
    rec = {"bench": "gallery_job", "encoder": label, "kind": kind, "device": args.device, "items": n,
           "seconds": round(wall, 2), f"{'images' if kind == 'image' else 'videos'}_per_s": round(n / wall, 2),
           "timing": s.timing, "batch_size": args.batch_size, "num_workers": args.num_workers}
    if args.device.startswith("cuda"):
        import torch

        rec["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(rec), flush=True)
    return rec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--model", default="lite,blip-tiny",
                   help="comma list of lite, blip-tiny, blip-large-random (GPU)")
    p.add_argument("--images", type=int, default=48, help="generated CIRR-size images")
    p.add_argument("--videos", type=int, default=6, help="generated clips (0 = skip the video case)")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward")
    p.add_argument("--num-workers", type=int, default=2, help="DataLoader decode workers")
    p.add_argument("--flush-every", type=int, default=2048, help="items per part file")
    p.add_argument("--dtype", default="bfloat16", help="autocast dtype on CUDA")
    p.add_argument("--workdir", default=None, help="where to generate data (default: a temp folder)")
    args = p.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_gallery_"))
    t = time.perf_counter()
    img_root = make_images(workdir / "cirr", args.images)
    vids = make_videos(workdir / "webvid", args.videos) if args.videos else None
    print(json.dumps({"bench": "gallery_job", "generated_s": round(time.perf_counter() - t, 1)}), file=sys.stderr)
    for label in args.model.split(","):
        if label == "lite":
            from covr_core.lite import load_lite_encoder

            enc = load_lite_encoder(device=args.device)
        else:
            from covr_core.blip_load import load_blip_encoder

            folder = workdir / label
            if not folder.exists():
                if label == "blip-tiny":
                    from tests.helpers.tiny_blip import make_tiny_blip_folder

                    make_tiny_blip_folder(folder)
                else:
                    blip_large_random(folder)
            enc = load_blip_encoder(str(folder), device=args.device,
                                    dtype=args.dtype if args.device.startswith("cuda") else "float32")
        run_case(label, enc, "image", {"dataset": "cirr", "root": str(img_root), "split": "val"}, args, workdir)
        if vids:
            run_case(label, enc, "video", {"dataset": "webvid", "csv": str(vids[0]), "video_root": str(vids[1])},
                     args, workdir)
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
