"""Embed every image of a CIRR split, every target video of a WebVid-CoVR subset, or the bundled demo.

    python -m precompute.gallery --dataset cirr --root datasets/CIRR --split val --out data/galleries/cirr-val
    python -m precompute.gallery --dataset webvid --csv webvid8m-covr_test.csv --video-root WebVid/8M/train \\
        --out data/galleries/webvid-test
    python -m precompute.gallery --dataset demo --out data/galleries/demo-lite --encoder lite
    python -m precompute.gallery --dataset folder --root my_photos/ --out data/galleries/my-photos
    python -m precompute.gallery --dataset webvid ... --ray auto      # every GPU of a Ray cluster, see docs/SCALE.md

Writes a gallery folder (``Gallery.save``: index, embeddings, items, manifest) with ``thumbs/`` (JPEG, longest
side 256) and, for videos, ``frames/`` (the sampled-frame strip). Resumable: a rerun redoes only what is not
in OUT/_parts yet (deleted after the merge). ``--ray`` fans the work out to a Ray cluster with retries; with
``--num-shards > 1`` each shard only writes parts and ``python -m precompute.merge --out OUT`` finishes.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from covr_core import media
from covr_core.data_layout import demo_gallery_name
from covr_core.datasets import DatasetSpec, ItemList, list_datasets
from covr_core.gallery import Gallery

from .engine import common as C
from .engine.data import FRAMES_PER_VIDEO, MediaItems
from .engine.job import run_embedding_job
from .engine.options import ASSETS_DIR, GalleryOptions
from .engine.units import EmbeddingKind

log = logging.getLogger(__name__)


class GalleryKind(EmbeddingKind):
    """The gallery job: one pooled embedding per image or video, plus thumbnails and frame strips."""

    name = "gallery"
    columns = ("id", "kind", "path", "scores")

    def list_items(self, spec: DatasetSpec, opts: GalleryOptions) -> ItemList:
        return spec.gallery(opts.selection())

    def default_name(self, opts: GalleryOptions, split: str, encoder_name: str) -> str:
        return demo_gallery_name(encoder_name) if opts.dataset == "demo" else f"{opts.dataset}-{split}-{encoder_name}"

    def job_fields(self, opts: GalleryOptions, spec: DatasetSpec) -> dict:
        return {"index_type": opts.index_type}

    def items_per_batch(self, plan: pd.DataFrame, opts: GalleryOptions) -> int:
        if (plan["kind"] == "image").all():
            return opts.batch_size
        return max(1, opts.batch_size // opts.frames_per_video)

    def unit_label(self, plan: pd.DataFrame, opts: GalleryOptions) -> str:
        kinds = set(plan["kind"])
        return "img" if kinds == {"image"} else "video" if kinds == {"video"} else "item"

    def dataset(self, plan: pd.DataFrame, rows: list[int], opts: GalleryOptions, encoder: Any) -> MediaItems:
        sub = plan.iloc[rows]
        return MediaItems(rows, sub["id"].tolist(), sub["path"].tolist(), sub["kind"].tolist(),
                          encoder.image_transform, opts.out, thumbs=opts.thumbs,
                          frames_per_video=opts.frames_per_video)

    def process(self, encoder: Any, plan: pd.DataFrame, opts: GalleryOptions, device: str,
                timer: C.StageTimer):
        scores = plan["scores"].tolist()

        def process(batch: dict) -> tuple[list[int], dict[str, np.ndarray], list[dict]]:
            with timer("transfer"):
                px = batch["pixels"].to(device, non_blocking=True)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()  # honest transfer vs model split (the copy is a few ms per batch)
            with timer("model"), torch.inference_mode(), C.autocast_context(device, opts.dtype):
                emb = np.asarray(encoder.encode_pixels(px), dtype=np.float32)
            counts = batch["counts"]
            if any(c != 1 for c in counts) or any(r.get("n_frames") for r in batch["records"]):
                pooled, start = [], 0
                for row, n in zip(batch["rows"], counts):
                    s = json.loads(scores[row]) if scores[row] else None
                    pooled.append(media.pool_frame_embeddings(emb[start:start + n], s if s and len(s) == n else None))
                    start += n
                emb = np.stack(pooled).astype(np.float32)
            return batch["rows"], {"emb": emb}, batch["records"]

        return process

    def read_output(self, out: Path, plan: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray], list[dict]]:
        g = Gallery.load(out)
        rows = pd.Index(plan["id"].astype(str)).get_indexer(g.items["id"].astype(str))
        keep = [c for c in ("thumbnail", "frames", "duration") if c in g.items]
        records = g.items[keep].astype(object).where(g.items[keep].notna(), None).to_dict("records")
        return rows.astype(np.int64), {"emb": np.asarray(g.embeddings, dtype=np.float32)}, records


GALLERY = GalleryKind()


def run(**options: Any) -> C.JobSummary:
    """Embed a dataset's gallery items into ``out`` (see module docstring); returns the job summary.

    Takes the fields of :class:`precompute.engine.options.GalleryOptions` as keywords (an unknown keyword raises
    TypeError); ``encoder`` is a name (``auto``, ``blip``, ``lite``) or an already loaded ``Encoder``.
    """
    return run_embedding_job(GALLERY, GalleryOptions(**options))


def build_demo_gallery(encoder: Any, out_dir: str | Path, assets: str | Path = ASSETS_DIR,
                       on_progress: Callable[[int, int], None] | None = None):
    """Build (or finish) the bundled demo gallery with ``encoder`` in ``out_dir``; returns the loaded Gallery.

    Used by the app on first start; ``on_progress(done, total)`` feeds its progress bar.
    """
    summary = run(dataset="demo", out=out_dir, assets=assets, encoder=encoder, device=encoder.info.device,
                  num_workers=0, batch_size=16, argv=["--dataset", "demo", "--out", str(out_dir)],
                  on_progress=on_progress)
    if not summary.complete:
        raise RuntimeError(f"demo gallery incomplete: {summary.line()}")
    return Gallery.load(out_dir, expected=encoder.info)


# ------------------------------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags of ``python -m precompute.gallery``."""
    p = C.make_parser("python -m precompute.gallery", __doc__)
    g = C.add_dataset_args(p, list_datasets(), "WebVid-CoVR CSV whose target videos (pth2) form the gallery")
    g.add_argument("--assets", default=str(ASSETS_DIR), help="demo: the assets folder holding gallery.csv")
    g.add_argument("--name", help="gallery name (default: <dataset>-<split>-<encoder>)")
    C.add_encoder_args(p)
    C.add_run_args(p, batch_size=64)
    o = p.add_argument_group("output")
    o.add_argument("--index-type", choices=("flat", "hnsw", "ivf"), default="flat", help="FAISS index type")
    o.add_argument("--frames-per-video", type=int, default=FRAMES_PER_VIDEO, help="frames sampled per video")
    o.add_argument("--no-thumbs", dest="thumbs", action="store_false",
                   help="skip thumbnails and frame strips (by default both are written)")
    args = p.parse_args(argv)
    args.argv = list(argv) if argv is not None else None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m precompute.gallery``."""
    return C.run_main(parse_args, lambda a: run_embedding_job(GALLERY, GalleryOptions.from_namespace(a)), argv)


if __name__ == "__main__":
    raise SystemExit(main())
