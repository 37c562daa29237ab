"""Speed of ``precompute.evaluate`` from precomputed embeddings (target: CIRR val, 5 combiners, < 10 s).

Random unit embeddings of the real sizes (CIRR val: 4,181 queries x 2,297 images, dim 256) with the real val
triplets from ``tests/data/cirr/`` (members, target_soft, references), a random MLP combiner marked trained so
all five combiners run. Each case times a whole ``precompute.evaluate.run`` (load, one product per combiner,
metrics, per-query table, report files), median of ``--repeats``. One JSON line per case on stdout:

- ``cirr_val_5_combiners``: NA, AVG, MLP, TEXT, IMAGE (the issue's target: ``seconds`` < ``limit_s``)
- ``cirr_val_4_combiners``: without MLP weights
- ``cirr_test1_submissions``: the same queries without labels -> two submission files per combiner
- ``webvid_2500``: 2,500 WebVid-CoVR rows (gallery = their targets, same-video exclusion)

Usage: ``python bench/bench_evaluate.py [--repeats 3] [--dim 256]``
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import tempfile
import time
from pathlib import Path


import numpy as np
import pandas as pd
import torch

from covr_core.combiners import MLPCombiner, save_mlp_combiner
from covr_core.datasets.cirr import load_cirr_split, load_cirr_triplets
from covr_core.gallery import Gallery
from covr_core.query_folder import QuerySet
from covr_core.types import EncoderInfo, QueryEmbeddings
from precompute import evaluate

ROOT = Path(__file__).resolve().parents[1]
CIRR = ROOT / "tests" / "data" / "cirr"
LIMIT_S = 10.0


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _encoder(dim: int) -> EncoderInfo:
    return EncoderInfo(name="random", version="0", checkpoint="random", checkpoint_sha256="", dim=dim)


def _write_queries(folder: Path, table: pd.DataFrame, rng: np.random.Generator, dim: int) -> Path:
    n = len(table)
    emb = QueryEmbeddings(_unit(rng, n, dim), _unit(rng, n, dim), _unit(rng, n, dim))
    QuerySet.build(emb, table, _encoder(dim), folder.name).save(folder)
    return folder


def _write_gallery(folder: Path, ids: list[str], rng: np.random.Generator, dim: int) -> Path:
    items = pd.DataFrame({"id": ids, "kind": "image", "media": ids, "caption": "", "split": "bench",
                          "duration": np.nan, "thumbnail": ""})
    Gallery.build(_unit(rng, len(ids), dim), items, encoder=_encoder(dim), name=folder.name,
                  media_root=".").save(folder)
    return folder


def build_inputs(tmp: Path, dim: int) -> dict:
    """Queries/gallery folders for every case plus a random trained-marked MLP file."""
    rng = np.random.default_rng(0)
    triplets = load_cirr_triplets(CIRR / "cap.rc2.val.json")
    names = list(load_cirr_split(CIRR / "split.rc2.val.json"))
    table = pd.DataFrame({
        "query_id": [t.pairid for t in triplets], "reference": [t.reference for t in triplets],
        "target": [t.target_hard or "" for t in triplets], "caption": [t.caption for t in triplets],
        "members": [json.dumps(list(t.members)) for t in triplets],
        "target_soft": [json.dumps(t.target_soft) for t in triplets],
    })
    torch.manual_seed(0)
    mlp = MLPCombiner(dim=dim)
    mlp.trained = True
    save_mlp_combiner(mlp, tmp / "mlp.safetensors", {"trained": True, "note": "random weights (benchmark)"})
    n_web = 2500
    web = pd.DataFrame({"query_id": np.arange(n_web), "reference": [f"{i % 97}/{10_000 + i}" for i in range(n_web)],
                        "target": [f"{i % 89}/{50_000 + i}" for i in range(n_web)], "caption": "edit"})
    return {
        "cirr_val": _write_queries(tmp / "cirr_val", table, rng, dim),
        "cirr_test1": _write_queries(tmp / "cirr_test1", table.assign(target="", target_soft="{}"), rng, dim),
        "cirr_gallery": _write_gallery(tmp / "cirr_gallery", names, rng, dim),
        "webvid": _write_queries(tmp / "webvid", web, rng, dim),
        "webvid_gallery": _write_gallery(tmp / "webvid_gallery", web["target"].tolist(), rng, dim),
        "mlp": tmp / "mlp.safetensors",
        "n_queries": len(table), "n_gallery": len(names),
    }


def _time(fn, repeats: int) -> tuple[float, dict]:
    times, out = [], {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> None:
    """Run every case and print one JSON line each."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3, help="timed runs per case (median reported)")
    p.add_argument("--dim", type=int, default=256, help="embedding dimension (BLIP: 256)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench_evaluate_") as d:
        tmp = Path(d)
        inp = build_inputs(tmp, args.dim)
        cases = {
            "cirr_val_5_combiners": lambda: evaluate.run(inp["cirr_val"], inp["cirr_gallery"], "cirr", tmp / "o1",
                                                         mlp=inp["mlp"]),
            "cirr_val_4_combiners": lambda: evaluate.run(inp["cirr_val"], inp["cirr_gallery"], "cirr", tmp / "o2"),
            "cirr_test1_submissions": lambda: evaluate.run(inp["cirr_test1"], inp["cirr_gallery"], "cirr", tmp / "o3",
                                                           mlp=inp["mlp"]),
            "webvid_2500": lambda: evaluate.run(inp["webvid"], inp["webvid_gallery"], "webvid", tmp / "o4",
                                                mlp=inp["mlp"]),
        }
        for case, fn in cases.items():
            seconds, report = _time(fn, args.repeats)
            info = report["info"]
            print(json.dumps({
                "bench": "evaluate", "case": case, "seconds": round(seconds, 3),
                "limit_s": LIMIT_S if case.startswith("cirr_val") else None,
                "queries": info["num_queries"], "gallery": info["num_gallery"], "dim": args.dim,
                "combiners": info["combiners"], "repeats": args.repeats,
                "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
            }), flush=True)


if __name__ == "__main__":
    main()
