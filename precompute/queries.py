"""The three query embeddings (f_mm, f_img, f_txt) of every triplet of a split, saved row-aligned.

    python -m precompute.queries --dataset cirr --root datasets/CIRR --split val --out data/queries/cirr-val
    python -m precompute.queries --dataset webvid --csv webvid8m-covr_test.csv --video-root WebVid/8M/train \\
        --out data/queries/webvid-test

Writes ``queries.npz`` (``f_mm, f_img, f_txt`` [N, dim] float32), ``queries.parquet`` (``query_id, reference,
target, caption`` + CIRR ``members``/``target_soft`` as JSON) and ``manifest.json``; evaluation and MLP training
read these and never run the backbone again. WebVid-CoVR references are the middle frame of ``pth1``.
Resumable and shardable like the gallery job.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from . import _common as C
from ._data import QueryItems, make_loader
from ._parts import PartStore
from ._runner import run_loop

log = logging.getLogger(__name__)

QUERY_COLUMNS = ("query_id", "reference", "target", "caption", "members", "target_soft")


def cirr_query_plan(root: str | Path, split: str) -> tuple[pd.DataFrame, Path]:
    """One row per CIRR triplet (annotation order); ``path`` is the reference image."""
    from covr_core.datasets.cirr import CirrDataset

    ds = CirrDataset(root, split)
    rows = []
    for t in ds.triplets:
        ref_path = ds.image_paths.get(t.reference)
        rows.append({"id": str(t.pairid), "query_id": int(t.pairid), "reference": t.reference,
                     "target": t.target_hard or "", "caption": t.caption,
                     "members": json.dumps(list(t.members or [])), "target_soft": json.dumps(t.target_soft or {}),
                     "path": str(Path(ref_path).resolve()) if ref_path else "", "kind": "image"})
    return pd.DataFrame(rows, columns=["id", *QUERY_COLUMNS, "path", "kind"]), Path(root).resolve()


def webvid_query_plan(csv: str | Path, video_root: str | Path, subset_first: int | None = None,
                      subset_random: int | None = None, seed: int = 0,
                      subset_ids: str | None = None) -> tuple[pd.DataFrame, Path]:
    """One row per WebVid-CoVR triplet; ``query_id`` is the CSV row number, the reference is ``pth1``."""
    from covr_core.datasets import webvid

    df = webvid.read_webvid_covr(csv, columns=["pth1", "pth2", "edit"])
    df["_row"] = np.arange(len(df), dtype=np.int64)
    df = webvid.select_subset(df, first=subset_first, random=subset_random, seed=seed, ids_file=subset_ids)
    root = Path(video_root).resolve()
    qid = df["_row"].to_numpy(dtype=np.int64)
    plan = pd.DataFrame({"id": [str(i) for i in qid], "query_id": qid, "reference": df["pth1"].astype(str).values,
                         "target": df["pth2"].astype(str).values, "caption": df["edit"].fillna("").astype(str).values,
                         "path": [str(webvid.webvid_video_path(root, p)) for p in df["pth1"]], "kind": "video"})
    return plan.reset_index(drop=True), root


def run(*, dataset: str, out: str | Path, root: str | None = None, split: str = "val", csv: str | None = None,
        video_root: str | None = None, subset_first: int | None = None, subset_random: int | None = None,
        seed: int = 0, subset_ids: str | None = None, name: str | None = None, encoder: Any = "auto",
        checkpoint: str | None = None, blip_source: str | None = None,
        weights: str | None = None, device: str = "auto",
        dtype: str = "bfloat16", batch_size: int = 64, num_workers: int = 0, num_shards: int = 1,
        shard_id: int = 0, flush_every: int = 256, retry_failed: bool = False, no_finalize: bool = False,
        argv: Sequence[str] | None = None, **_: Any) -> C.JobSummary:
    """Compute the query embeddings of every triplet into ``out``; returns the job summary.

    ``encoder`` is a name (``auto``, ``blip``, ``lite``) or an already loaded ``Encoder``.
    """
    C.check_shard_args(num_shards, shard_id)
    if dataset == "cirr":
        if not root:
            raise ValueError("--root is required for --dataset cirr")
        plan, media_root = cirr_query_plan(root, split)
        key = f"cirr:{split}"
    elif dataset == "webvid":
        if not csv or not video_root:
            raise ValueError("--csv and --video-root are required for --dataset webvid")
        plan, media_root = webvid_query_plan(csv, video_root, subset_first, subset_random, seed, subset_ids)
        key = f"webvid:{Path(csv).name}:{subset_first}:{subset_random}:{seed}:{subset_ids}"
        split = Path(csv).stem
    else:
        raise ValueError(f"unknown dataset {dataset!r}; choose cirr or webvid")
    device = C.resolve_device(device)
    enc = encoder if not isinstance(encoder, str) else C.create_job_encoder(
        encoder, checkpoint, blip_source, device, dtype, weights=weights)
    info = enc.info
    name = name or f"{dataset}-{split}-queries-{info.name}"
    out = Path(out)
    store = PartStore(out)
    prov = C.provenance(argv, {"job": "queries", "dataset": dataset, "dataset_key": key,
                               "checkpoint_file_sha256": C.sha256_file(checkpoint) if checkpoint else ""})
    store.init_plan({"kind": "queries", "name": name, "dataset_key": key, "encoder": C.encoder_record(info),
                     "encoder_name": info.name, "encoder_sha256": info.checkpoint_sha256,
                     "media_root": str(media_root), "count": len(plan), "provenance": prov}, plan)
    summary = C.JobSummary(out=str(out))
    mine = C.shard_indices(len(plan), num_shards, shard_id)
    finished = store.finished_rows(include_failed=not retry_failed)
    todo = [i for i in mine if i not in finished]
    summary.total, summary.skipped = len(mine), len(mine) - len(todo)
    log.info("queries %s: %d triplets in shard %d/%d, %d already finished, %d to do", name, len(mine), shard_id,
             num_shards, summary.skipped, len(todo))
    timer = C.StageTimer()
    if todo:
        sub = plan.iloc[todo]
        items = QueryItems(todo, sub["path"].tolist(), sub["kind"].tolist(), sub["caption"].tolist())
        loader = make_loader(items, batch_size, num_workers, device)

        def process(batch: dict) -> tuple[list[int], dict[str, np.ndarray], list[dict]]:
            with timer("model"), torch.inference_mode(), C.autocast_context(device, dtype):
                q = enc.encode_queries(batch["images"], batch["texts"])
            arrays = {k: np.asarray(getattr(q, k), dtype=np.float32) for k in ("f_mm", "f_img", "f_txt")}
            return batch["rows"], arrays, [{} for _ in batch["rows"]]

        run_loop(loader, process, store, shard_id, flush_every, summary, f"queries {name}", "query", timer)
    summary.timing = timer.rounded()
    if num_shards == 1 and not no_finalize:
        from .merge import finalize

        merged = finalize(out, [out])
        summary.complete, summary.failures = merged.complete, merged.failures
    log.info("%s", summary.line())
    return summary


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags of ``python -m precompute.queries``."""
    p = C.make_parser("python -m precompute.queries", __doc__)
    g = C.add_dataset_args(p, ("cirr", "webvid"), "WebVid-CoVR CSV (one query per row)")
    g.add_argument("--name", help="name recorded in the manifest (default: <dataset>-<split>-queries-<encoder>)")
    C.add_encoder_args(p)
    C.add_run_args(p, batch_size=64)
    args = p.parse_args(argv)
    args.argv = list(argv) if argv is not None else None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m precompute.queries``."""
    return C.run_main(parse_args, lambda a: run(**vars(a)), argv)


if __name__ == "__main__":
    raise SystemExit(main())
