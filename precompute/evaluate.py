"""Evaluation reports from precomputed embeddings: every combiner in one run, no encoder needed.

``python -m precompute.evaluate --queries DIR --gallery DIR [--mlp PATH] --benchmark cirr|webvid --out DIR``

One matrix product per combiner (queries x gallery), reference / same-video columns masked as CoVR does,
the numbers from :mod:`covr_core.metrics`, and a per-query table (rank of the target, top-k ids and
scores, combiner weights) that the explorer reads instead of recomputing anything. Output layout:

- ``metrics.md`` / ``metrics.csv`` / ``metrics.json``: one row per combiner (CIRR val, WebVid-CoVR);
- ``submissions/<combiner>/recalls_cirr.json`` + ``recalls_cirr_subset.json``: CIRR test1 (no targets);
- ``per_query.parquet``: ``query_id, combiner, reference, target, rank, top_ids, top_scores, w_mm, w_img, w_txt``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from covr_core.atomic import atomic_write_bytes
from covr_core.types import WEIGHT_NAMES, QueryEmbeddings

from precompute._common import make_parser, provenance, setup_logging
from precompute._eval_report import (
    CIRR_COLUMNS,
    WEBVID_COLUMNS,
    header_lines,
    write_json,
    write_report,
)

log = logging.getLogger(__name__)

#: Score of excluded columns (CIRR reference, WebVid same video): -inf like covr_core.metrics (CoVR: -100 / -10).
EXCLUDED_SCORE = -np.inf
BENCHMARKS = ("cirr", "webvid")


@dataclass
class QuerySet:
    """A queries folder: ``queries.npz`` (f_mm, f_img, f_txt) row-aligned with ``queries.parquet``."""

    emb: QueryEmbeddings
    table: pd.DataFrame
    manifest: dict
    folder: Path

    def __len__(self) -> int:
        return len(self.table)


def load_queries(folder: str | Path) -> QuerySet:
    """Read a queries folder written by ``precompute.queries`` (see docs/ARCHITECTURE.md)."""
    from precompute.merge import load_queries as _load

    table, arrays, manifest = _load(folder)
    emb = QueryEmbeddings(*(np.ascontiguousarray(arrays[k], dtype=np.float32) for k in ("f_mm", "f_img", "f_txt")))
    return QuerySet(emb=emb, table=table.reset_index(drop=True), manifest=manifest, folder=Path(folder))


def check_compatible(qs: QuerySet, gallery_manifest: dict, queries_path, gallery_path) -> None:
    """Raise when queries and gallery have different dims; warn when their checkpoints differ."""
    q_dim, g_dim = int(qs.emb.f_mm.shape[1]), int(gallery_manifest.get("dim", qs.emb.f_mm.shape[1]))
    if q_dim != g_dim:
        raise ValueError(f"queries {queries_path} are {q_dim}-d but gallery {gallery_path} is {g_dim}-d: "
                         "embed both with the same encoder")
    q_sha, g_sha = qs.manifest.get("checkpoint_sha256"), gallery_manifest.get("checkpoint_sha256")
    if q_sha and g_sha and q_sha != g_sha:
        log.warning("queries %s and gallery %s were embedded with different checkpoints (%s vs %s)",
                    queries_path, gallery_path, q_sha[:10], g_sha[:10])


def _json_or(value, default):
    """Decode a JSON column value; ``default`` for missing / empty values."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return default
    if isinstance(value, str):
        return json.loads(value) if value else default
    return value


def has_targets(table: pd.DataFrame) -> bool:
    """True when the queries carry targets (CIRR val, WebVid); False for CIRR test1."""
    if "target" not in table.columns:
        return False
    t = table["target"]
    return bool(t.notna().all() and (t.astype(str) != "").all())


def cirr_triplets_from_table(table: pd.DataFrame) -> list:
    """Rebuild ``CirrTriplet`` objects from a CIRR ``queries.parquet`` (members / target_soft are JSON)."""
    from covr_core.datasets.cirr import CirrTriplet

    with_targets = has_targets(table)
    out = []
    for d in table.to_dict("records"):
        set_id = d.get("img_set_id")
        out.append(
            CirrTriplet(
                pairid=int(d["query_id"]),
                reference=str(d["reference"]),
                target_hard=str(d["target"]) if with_targets else None,
                target_soft={str(k): float(v) for k, v in _json_or(d.get("target_soft"), {}).items()},
                caption=str(d.get("caption") or ""),
                img_set_id=int(set_id) if set_id is not None and set_id == set_id else -1,
                members=tuple(str(m) for m in _json_or(d.get("members"), [])),
            )
        )
    return out


def columns_of(ids: Sequence[str], gallery_ids: Sequence[str]) -> np.ndarray:
    """Gallery column of each id, -1 where the id is not in the gallery."""
    pos = {g: i for i, g in enumerate(gallery_ids)}
    return np.fromiter((pos.get(str(i), -1) for i in ids), dtype=np.int64, count=len(ids))


def mask_columns(scores: np.ndarray, cols: np.ndarray, value: float = EXCLUDED_SCORE) -> None:
    """In place: ``scores[i, cols[i]] = value`` where ``cols[i] >= 0``."""
    rows = np.nonzero(cols >= 0)[0]
    scores[rows, cols[rows]] = value


def video_codes(reference_ids: Sequence[str], target_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Video identities (``webvid_video_key``: CoVR's integer id) of references and targets as shared codes."""
    from covr_core.datasets.webvid import webvid_video_key

    ints = [webvid_video_key(x) for x in [*reference_ids, *target_ids]]
    codes, _ = pd.factorize(pd.Series(ints))
    return codes[: len(reference_ids)], codes[len(reference_ids):]


def same_video_mask(ref_codes: np.ndarray, target_codes: np.ndarray) -> np.ndarray:
    """[Q, Q] bool: column j shows query i's reference video (and j != i: the true target always stays)."""
    mask = ref_codes[:, None] == target_codes[None, :]
    np.fill_diagonal(mask, False)
    return mask


def available_combiners(mlp=None, only: Sequence[str] | None = None) -> list[str]:
    """Combiners to evaluate: the registry's list (MLP only with trained weights), optionally filtered."""
    from covr_core.combiners import list_combiners

    names = list(list_combiners(mlp))
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ValueError(f"combiner(s) not available: {unknown}; available: {names}")
        names = [n for n in names if n in only]
    return names


def per_query_frame(combiner: str, table: pd.DataFrame, weights: np.ndarray, scores: np.ndarray,
                    gallery_ids: Sequence[str], top_k: int = 10) -> pd.DataFrame:
    """Per-query rows of one combiner from already masked scores (``covr_core.metrics.per_query_table``)
    plus ``combiner``, ``reference`` and the weights ``w_mm, w_img, w_txt``."""
    from covr_core.metrics import per_query_table

    targets = [str(t) if t else None for t in table["target"]] if "target" in table else [None] * len(table)
    frame = per_query_table(scores, gallery_ids, table["query_id"].tolist(), targets, k=top_k)
    frame.insert(1, "combiner", combiner)
    frame.insert(2, "reference", table["reference"].astype(str).to_numpy())
    w = np.broadcast_to(np.asarray(weights, dtype=np.float32), (len(table), 3))
    for j, name in enumerate(WEIGHT_NAMES):
        frame[name] = w[:, j]
    return frame


def _evaluate_one(benchmark: str, name: str, scores: np.ndarray, qs: QuerySet, gallery_ids: list[str],
                  triplets, codes: tuple[np.ndarray, np.ndarray] | None, out: Path) -> dict:
    from covr_core import metrics

    if benchmark == "webvid":
        return metrics.webvid_recalls(scores, codes[0].tolist(), codes[1].tolist())
    if has_targets(qs.table):
        return metrics.evaluate_cirr(scores, gallery_ids, triplets)
    sub_dir = out / "submissions" / name
    sub_dir.mkdir(parents=True, exist_ok=True)
    paths = metrics.write_cirr_submission(scores, gallery_ids, triplets, sub_dir)
    return {"submission": [Path(p).relative_to(out).as_posix() for p in paths]}


def combiner_scores(query: np.ndarray, gallery_emb: np.ndarray, exclusion: np.ndarray) -> np.ndarray:
    """[Q, G] exact inner products of one combined query (one matrix product) with excluded columns at
    ``EXCLUDED_SCORE``; ``exclusion`` is the reference column per query (CIRR) or a [Q, G] mask (WebVid)."""
    scores = np.asarray(query, dtype=np.float32) @ gallery_emb.T
    if exclusion.ndim == 2:
        scores[exclusion] = EXCLUDED_SCORE
    else:
        mask_columns(scores, exclusion)
    return scores


def run(
    queries: str | Path,
    gallery: str | Path,
    benchmark: str,
    out: str | Path,
    mlp: str | Path | None = None,
    combiners: Sequence[str] | None = None,
    top_k: int = 10,
    pretraining: str = "–",
    provenance_record: dict | None = None,
) -> dict:
    """Evaluate every available combiner; write the report files into ``out`` and return the report dict."""
    from covr_core.combiners import combine, load_mlp_combiner
    from covr_core.gallery import Gallery

    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {BENCHMARKS}, got {benchmark!r}")
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    qs = load_queries(queries)
    gal = Gallery.load(gallery)
    check_compatible(qs, gal.manifest, queries, gallery)
    mlp_model = load_mlp_combiner(mlp) if mlp else None
    if mlp_model is not None and mlp_model.dim != qs.emb.f_mm.shape[1]:
        raise ValueError(f"MLP combiner {mlp} takes {mlp_model.dim}-d embeddings, the queries are "
                         f"{qs.emb.f_mm.shape[1]}-d: train it on embeddings of the same encoder")
    names = available_combiners(mlp_model, combiners)
    log.info("evaluating %s on %d queries x %d items (%s)", ", ".join(names), len(qs), len(gal), benchmark)

    item_ids = gal.items["id"].astype(str).to_numpy()
    gallery_emb = np.array(gal.embeddings, dtype=np.float32)  # one in-memory float32 copy for all combiners
    references = qs.table["reference"].astype(str).tolist()
    triplets, codes = None, None
    if benchmark == "webvid":
        # CoVR: the gallery is the targets of the rows, column i = the target of row i.
        columns = columns_of(qs.table["target"].astype(str).tolist(), item_ids)
        if (columns < 0).any():
            missing = qs.table["target"][columns < 0].head(5).tolist()
            raise ValueError(f"{int((columns < 0).sum())} WebVid targets are not in the gallery, e.g. {missing}")
        if len(np.unique(columns)) < len(columns):
            log.warning("some WebVid targets repeat: CoVR's test set has one row per target")
        gallery_ids = item_ids[columns].tolist()
        gallery_emb = np.ascontiguousarray(gallery_emb[columns])
        codes = video_codes(references, gallery_ids)
        exclusion = same_video_mask(*codes)
    else:
        gallery_ids = item_ids.tolist()
        triplets = cirr_triplets_from_table(qs.table)
        exclusion = columns_of(references, gallery_ids)

    results: dict[str, dict] = {}
    frames = []
    for name in names:
        cq = combine(name, qs.emb, mlp=mlp_model)
        scores = combiner_scores(cq.query, gallery_emb, exclusion)
        res = _evaluate_one(benchmark, name, scores, qs, gallery_ids, triplets, codes, out)
        results[name] = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in res.items()}
        frames.append(per_query_frame(name, qs.table, cq.weights, scores, gallery_ids, top_k))
    per_query = pd.concat(frames, ignore_index=True)
    buf = io.BytesIO()
    per_query.to_parquet(buf, index=False)
    atomic_write_bytes(out / "per_query.parquet", buf.getvalue())

    info = {
        "benchmark": benchmark,
        "split": "test (submission files)" if benchmark == "cirr" and not has_targets(qs.table) else "labelled",
        "queries": str(Path(queries)),
        "gallery": str(Path(gallery)),
        "gallery_manifest": {k: gal.manifest.get(k) for k in ("name", "encoder", "checkpoint", "checkpoint_sha256", "count", "dim")},
        "queries_manifest": {k: qs.manifest.get(k) for k in ("name", "encoder", "checkpoint", "checkpoint_sha256", "count")},
        "mlp": str(mlp) if mlp else None,
        "combiners": names,
        "num_queries": len(qs),
        "num_gallery": int(len(gallery_ids)),
        "pretraining": pretraining,
        "provenance": provenance_record or provenance([]),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    report = {"info": info, "results": results}
    if info["split"] == "labelled":
        write_report(out, report, CIRR_COLUMNS if benchmark == "cirr" else WEBVID_COLUMNS, header_lines(info))
    else:
        write_json(out / "metrics.json", report)
    log.info("wrote %s in %.2f s", out, info["seconds"])
    return report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags (``--help`` lists them with defaults)."""
    p = make_parser("python -m precompute.evaluate",
                    "Recall tables, CIRR submission files and a per-query table for every combiner.")
    p.add_argument("--queries", required=True, help="queries folder (queries.npz + queries.parquet)")
    p.add_argument("--gallery", required=True, help="gallery folder of the targets")
    p.add_argument("--benchmark", required=True, choices=BENCHMARKS, help="protocol: CIRR or WebVid-CoVR")
    p.add_argument("--out", required=True, help="output folder for the report files")
    p.add_argument("--mlp", default=None, help="trained MLP combiner (.safetensors); MLP is evaluated only with it")
    p.add_argument("--combiners", nargs="+", default=None, help="evaluate only these combiners (default: all available)")
    p.add_argument("--top-k", type=int, default=10, help="ids and scores kept per query in per_query.parquet")
    p.add_argument("--pretraining", default="–", help="label of the 'pretraining' column of the Markdown table")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging level")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    """CLI entry point."""
    args = parse_args(argv)
    setup_logging(args.log_level)
    return run(
        args.queries, args.gallery, args.benchmark, args.out, mlp=args.mlp, combiners=args.combiners,
        top_k=args.top_k, pretraining=args.pretraining, provenance_record=provenance(argv),
    )


if __name__ == "__main__":
    main()
