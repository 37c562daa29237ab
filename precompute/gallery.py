"""Embed every image of a CIRR split, every target video of a WebVid-CoVR subset, or the bundled demo.

    python -m precompute.gallery --dataset cirr --root datasets/CIRR --split val --out data/galleries/cirr-val
    python -m precompute.gallery --dataset webvid --csv webvid8m-covr_test.csv --video-root WebVid/8M/train \\
        --out data/galleries/webvid-test
    python -m precompute.gallery --dataset demo --out data/galleries/demo-lite --encoder lite

Writes a gallery folder (``Gallery.save``: index, embeddings, items, manifest) with ``thumbs/`` (JPEG, longest
side 256) and, for videos, ``frames/`` (the sampled-frame strip). Resumable and shardable (see ``_parts.py``);
with ``--num-shards > 1`` each shard only writes parts and ``python -m precompute.merge --out OUT`` finishes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from covr_core import media

from . import _common as C
from ._data import FRAMES_PER_VIDEO, MediaItems, make_loader
from ._parts import PartStore
from ._runner import run_loop

log = logging.getLogger(__name__)

DATASETS = ("cirr", "webvid", "demo")
CIRR_SPLITS = ("val", "test1", "train")
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"


# ---------------------------------------------------------------------------------------------- plans
def cirr_plan(root: str | Path, split: str) -> tuple[pd.DataFrame, Path]:
    """Exactly the split's images, in split-file order; media paths relative to ``root``."""
    from covr_core.datasets.cirr import CirrDataset

    ds = CirrDataset(root, split)
    root = Path(root).resolve()
    rows = [{"id": name, "kind": "image", "path": str(Path(p).resolve()), "caption": "", "split": split,
             "duration": np.nan, "scores": ""} for name, p in ds.image_paths.items()]
    return _with_media(pd.DataFrame(rows), root), root


def webvid_plan(csv: str | Path, video_root: str | Path, subset_first: int | None = None,
                subset_random: int | None = None, seed: int = 0, subset_ids: str | None = None,
                split: str | None = None) -> tuple[pd.DataFrame, Path]:
    """Every distinct target video (``pth2``) of the (sub)set, in first-appearance order."""
    from covr_core.datasets import webvid

    df = webvid.read_webvid_covr(csv, columns=["pth2", "txt2", "scores"])
    df = webvid.select_subset(df, first=subset_first, random=subset_random, seed=seed, ids_file=subset_ids)
    df = df.drop_duplicates("pth2", keep="first")
    root = Path(video_root).resolve()
    split = split or Path(csv).stem
    plan = pd.DataFrame({
        "id": df["pth2"].astype(str).to_numpy(), "kind": "video",
        "path": [str(webvid.webvid_video_path(root, p)) for p in df["pth2"]],
        "caption": df["txt2"].fillna("").astype(str).to_numpy() if "txt2" in df else "",
        "split": split, "duration": np.nan,
        "scores": [json.dumps([float(x) for x in s]) if isinstance(s, (list, tuple, np.ndarray)) and len(s) else ""
                   for s in df["scores"]] if "scores" in df else ""})
    return _with_media(plan, root), root


def demo_plan(assets: str | Path = ASSETS_DIR) -> tuple[pd.DataFrame, Path]:
    """The bundled demo gallery (``assets/gallery.csv``)."""
    assets = Path(assets).resolve()
    df = pd.read_csv(assets / "gallery.csv", dtype={"id": str, "media": str, "caption": str}, keep_default_na=False)
    plan = pd.DataFrame({
        "id": df["id"], "kind": df["kind"], "path": [str(assets / m) for m in df["media"]],
        "caption": df["caption"], "split": df.get("split", "demo"),
        "duration": pd.to_numeric(df.get("duration", np.nan), errors="coerce"), "scores": ""})
    return _with_media(plan, assets), assets


def _with_media(plan: pd.DataFrame, root: Path) -> pd.DataFrame:
    plan["media"] = [os.path.relpath(p, root) for p in plan["path"]]
    if plan["id"].duplicated().any():
        raise ValueError(f"duplicate item ids: {plan.loc[plan['id'].duplicated(), 'id'].head().tolist()}")
    return plan.reset_index(drop=True)


# ------------------------------------------------------------------------------------------------- run
def run(*, dataset: str, out: str | Path, root: str | None = None, split: str = "val", csv: str | None = None,
        video_root: str | None = None, subset_first: int | None = None, subset_random: int | None = None,
        seed: int = 0, subset_ids: str | None = None, assets: str | Path = ASSETS_DIR, name: str | None = None,
        encoder: Any = "auto", checkpoint: str | None = None, blip_source: str | None = None,
        weights: str | None = None,
        device: str = "auto", dtype: str = "bfloat16", batch_size: int = 64, num_workers: int = 0,
        num_shards: int = 1, shard_id: int = 0, flush_every: int = 256, retry_failed: bool = False,
        no_finalize: bool = False, index_type: str = "flat", thumbs: bool = True,
        frames_per_video: int = FRAMES_PER_VIDEO, argv: Sequence[str] | None = None,
        on_progress: Callable[[int, int], None] | None = None, **_: Any) -> C.JobSummary:
    """Embed the dataset's gallery items into ``out`` (see module docstring); returns the job summary.

    ``encoder`` is a name (``auto``, ``blip``, ``lite``) or an already loaded ``Encoder``.
    """
    C.check_shard_args(num_shards, shard_id)
    if dataset == "cirr":
        plan, media_root = cirr_plan(_need(root, "--root"), split)
        key = f"cirr:{split}"
    elif dataset == "webvid":
        plan, media_root = webvid_plan(_need(csv, "--csv"), _need(video_root, "--video-root"), subset_first,
                                       subset_random, seed, subset_ids)
        key = f"webvid:{Path(csv).name}:{subset_first}:{subset_random}:{seed}:{subset_ids}"
        split = str(plan["split"].iloc[0]) if len(plan) else "webvid"
    elif dataset == "demo":
        plan, media_root = demo_plan(assets)
        key, split = "demo", "demo"
    else:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
    device = C.resolve_device(device)
    enc = encoder if not isinstance(encoder, str) else C.create_job_encoder(
        encoder, checkpoint, blip_source, device, dtype, weights=weights)
    info = enc.info
    name = name or f"{dataset}-{split}-{info.name}" if dataset != "demo" else (name or f"demo-{info.name}")
    out = Path(out)
    if dataset == "demo":  # the demo gallery lives next to the repo's assets: keep it relocatable
        media_root = Path(os.path.relpath(media_root, out.resolve()))
    store = PartStore(out)
    prov = C.provenance(argv, {"job": "gallery", "dataset": dataset, "dataset_key": key,
                               "checkpoint_file_sha256": C.sha256_file(checkpoint) if checkpoint else ""})
    store.init_plan({"kind": "gallery", "name": name, "dataset_key": key, "encoder": C.encoder_record(info),
                     "encoder_name": info.name, "encoder_sha256": info.checkpoint_sha256,
                     "media_root": str(media_root), "count": len(plan), "index_type": index_type,
                     "provenance": prov}, plan)
    summary = C.JobSummary(out=str(out))
    mine = C.shard_indices(len(plan), num_shards, shard_id)
    finished = store.finished_rows(include_failed=not retry_failed)
    todo = [i for i in mine if i not in finished]
    summary.total, summary.skipped = len(mine), len(mine) - len(todo)
    log.info("gallery %s: %d items in shard %d/%d, %d already finished, %d to do", name, len(mine), shard_id,
             num_shards, summary.skipped, len(todo))
    timer = C.StageTimer()
    if todo:
        sub = plan.iloc[todo]
        items = MediaItems(todo, sub["id"].tolist(), sub["path"].tolist(), sub["kind"].tolist(),
                           enc.image_transform, out, thumbs=thumbs, frames_per_video=frames_per_video)
        per_batch = batch_size if (sub["kind"] == "image").all() else max(1, batch_size // frames_per_video)
        loader = make_loader(items, per_batch, num_workers, device)
        scores = plan["scores"].tolist()
        process = _make_process(enc, device, dtype, scores, timer, on_progress, len(todo))
        run_loop(loader, process, store, shard_id, flush_every, summary, f"gallery {name}",
                 "video" if per_batch != batch_size else "img", timer)
    summary.timing = timer.rounded()
    if num_shards == 1 and not no_finalize:
        from .merge import finalize

        merged = finalize(out, [out], index_type=index_type)
        summary.complete, summary.failures = merged.complete, merged.failures
    log.info("%s", summary.line())
    return summary


def _make_process(enc: Any, device: str, dtype: str, scores: list[str], timer: C.StageTimer,
                  on_progress: Callable[[int, int], None] | None, total: int):
    seen = [0]

    def process(batch: dict) -> tuple[list[int], dict[str, np.ndarray], list[dict]]:
        with timer("transfer"):
            px = batch["pixels"].to(device, non_blocking=True)
            if device.startswith("cuda"):
                torch.cuda.synchronize()  # honest transfer vs model split (the copy is a few ms per batch)
        with timer("model"), torch.inference_mode(), C.autocast_context(device, dtype):
            emb = np.asarray(enc.encode_pixels(px), dtype=np.float32)
        counts = batch["counts"]
        if any(c != 1 for c in counts) or any(r.get("n_frames") for r in batch["records"]):
            pooled, start = [], 0
            for row, n in zip(batch["rows"], counts):
                s = json.loads(scores[row]) if scores[row] else None
                pooled.append(media.pool_frame_embeddings(emb[start:start + n], s if s and len(s) == n else None))
                start += n
            emb = np.stack(pooled).astype(np.float32)
        seen[0] += len(batch["rows"]) + len(batch["failed"])
        if on_progress:
            on_progress(seen[0], total)
        return batch["rows"], {"emb": emb}, batch["records"]

    return process


def build_demo_gallery(encoder: Any, out_dir: str | Path, assets: str | Path = ASSETS_DIR,
                       on_progress: Callable[[int, int], None] | None = None):
    """Build (or finish) the bundled demo gallery with ``encoder`` in ``out_dir``; returns the loaded Gallery.

    Used by the app on first start; ``on_progress(done, total)`` feeds its progress bar.
    """
    from covr_core.gallery import Gallery

    summary = run(dataset="demo", out=out_dir, assets=assets, encoder=encoder, device=encoder.info.device,
                  num_workers=0, batch_size=16, argv=["--dataset", "demo", "--out", str(out_dir)],
                  on_progress=on_progress)
    if not summary.complete:
        raise RuntimeError(f"demo gallery incomplete: {summary.line()}")
    return Gallery.load(out_dir, expected=encoder.info)


def _need(value: Any, flag: str) -> Any:
    if value in (None, ""):
        raise ValueError(f"{flag} is required for this dataset")
    return value


# ------------------------------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags of ``python -m precompute.gallery``."""
    p = C.make_parser("python -m precompute.gallery", __doc__)
    g = C.add_dataset_args(p, DATASETS, "WebVid-CoVR CSV whose target videos (pth2) form the gallery")
    g.add_argument("--assets", default=str(ASSETS_DIR), help="demo: the assets folder holding gallery.csv")
    g.add_argument("--name", help="gallery name (default: <dataset>-<split>-<encoder>)")
    C.add_encoder_args(p)
    C.add_run_args(p, batch_size=64)
    o = p.add_argument_group("output")
    o.add_argument("--index-type", choices=("flat", "hnsw", "ivf"), default="flat", help="FAISS index type")
    o.add_argument("--frames-per-video", type=int, default=FRAMES_PER_VIDEO, help="frames sampled per video")
    o.add_argument("--no-thumbs", dest="thumbs", action="store_false", help="skip thumbnails and frame strips")
    args = p.parse_args(argv)
    args.argv = list(argv) if argv is not None else None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m precompute.gallery``."""
    return C.run_main(parse_args, lambda a: run(**vars(a)), argv)


if __name__ == "__main__":
    raise SystemExit(main())
