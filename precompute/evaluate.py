"""Evaluation reports from precomputed embeddings: every combiner in one run, no encoder needed.

``python -m precompute.evaluate --queries DIR --gallery DIR [--mlp PATH] --benchmark cirr|webvid --out DIR``

One matrix product per combiner (queries x gallery), reference / same-video columns masked as CoVR does,
the numbers from :mod:`covr_core.metrics`, and a per-query table (rank of the target, top-k ids and
scores, combiner weights) that the explorer reads instead of recomputing anything.

WebVid-CoVR with repeated targets (train/val CSVs, filtered subsets): one gallery entry per distinct target
video, each query keeps its own row and is scored against its own target's column, as CoVR does. The output
folder (:class:`covr_core.evaluation_folder.Evaluation`) is written atomically (a failed run leaves nothing
behind). Output layout:

- ``metrics.md`` / ``metrics.csv`` / ``metrics.tex`` / ``metrics.json``: one row per combiner (CIRR val with
  the study's ``Avg`` = (R@5 + Rs@1) / 2, WebVid-CoVR with meanR3 / meanR4), a note when two combiners give the
  same queries for this encoder, and a loud warning when the MLP was trained on evaluated queries;
- ``submissions/<combiner>/recalls_cirr.json`` + ``recalls_cirr_subset.json``: CIRR test1 (no targets);
- ``per_query.parquet``: ``query_id, combiner, reference, target, rank, top_ids, top_scores, w_mm, w_img, w_txt``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from covr_core import metrics
from covr_core import query_folder as qf
from covr_core.cirr_submission import cirr_submission_texts
from covr_core.datasets.cirr import CirrTriplet
from covr_core.evaluation_folder import PER_QUERY_FILE, Evaluation
from covr_core.gallery import Gallery
from covr_core.metrics import per_query_table
from covr_core.query_folder import QuerySet
from covr_core.types import WEIGHT_NAMES
from precompute._eval_report import CIRR_COLUMNS, WEBVID_COLUMNS, header_lines, render_reports
from precompute._query_split import load_split_keys, overlap, query_keys, read_query_ids
from precompute._webvid_eval import webvid_exclusion, webvid_gallery, webvid_metrics
from precompute.engine.common import make_parser, provenance, setup_logging

log = logging.getLogger(__name__)

#: Score of excluded columns (CIRR reference, WebVid same video): -inf like covr_core.metrics (CoVR: -100 / -10).
EXCLUDED_SCORE = -np.inf
BENCHMARKS = ("cirr", "webvid")


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
    targets = [str(t) if t else None for t in table["target"]] if "target" in table else [None] * len(table)
    frame = per_query_table(scores, gallery_ids, table["query_id"].tolist(), targets, k=top_k)
    frame.insert(1, "combiner", combiner)
    frame.insert(2, "reference", table["reference"].astype(str).to_numpy())
    w = np.broadcast_to(np.asarray(weights, dtype=np.float32), (len(table), 3))
    for j, name in enumerate(WEIGHT_NAMES):
        frame[name] = w[:, j]
    return frame


def _evaluate_one(benchmark: str, name: str, scores: np.ndarray, qs: QuerySet, gallery_ids: list[str],
                  triplets, target_cols: np.ndarray | None, submissions: dict[str, dict[str, str]]) -> dict:
    """Metrics of one combiner; CIRR test1 (no targets): its submission files go into ``submissions``."""
    if benchmark == "webvid":
        return webvid_metrics(scores, target_cols)
    if has_targets(qs.table):
        return metrics.evaluate_cirr(scores, gallery_ids, triplets)
    submissions[name] = cirr_submission_texts(scores, gallery_ids, triplets)
    return {"submission": [Evaluation.submission_path(name, f) for f in submissions[name]]}


def combiner_scores(query: np.ndarray, gallery_emb: np.ndarray, exclusion: np.ndarray) -> np.ndarray:
    """[Q, G] exact inner products of one combined query (one matrix product) with excluded columns at
    ``EXCLUDED_SCORE``; ``exclusion`` is the reference column per query (CIRR) or a [Q, G] mask (WebVid)."""
    scores = np.asarray(query, dtype=np.float32) @ gallery_emb.T
    if exclusion.ndim == 2:
        scores[exclusion] = EXCLUDED_SCORE
    else:
        mask_columns(scores, exclusion)
    return scores


def identical_combiners(queries: dict[str, np.ndarray], atol: float = 1e-5) -> list[list[str]]:
    """Groups of combiners whose composed queries are equal for every query (e.g. NA and AVG with the lite
    encoder, whose f_mm is normalise(f_img + f_txt))."""
    groups: list[list[str]] = []
    for name, q in queries.items():
        for g in groups:
            if queries[g[0]].shape == q.shape and np.allclose(queries[g[0]], q, atol=atol):
                g.append(name)
                break
        else:
            groups.append([name])
    return [g for g in groups if len(g) > 1]


def _mlp_overlap(mlp_path: str | Path | None, qs: QuerySet) -> dict | None:
    """How many evaluated queries the MLP was trained or validated on (None when no overlap / unknown)."""
    if not mlp_path:
        return None

    used = load_split_keys(mlp_path)
    found = overlap(query_keys(qs.table), used) if used else {}
    if not found:
        return None
    log.warning("LEAKAGE: %s of the %d evaluated queries were used to train/validate the MLP %s; its numbers "
                "here are not a held-out result (train it on another split: precompute.train_combiner --split-by)",
                " and ".join(f"{n} ({part})" for part, n in found.items()), len(qs), mlp_path)
    return {**found, "evaluated": len(qs)}


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
    query_ids: str | Path | Sequence[str] | None = None,
) -> dict:
    """Evaluate every available combiner; write the report files into ``out`` and return the report dict.

    ``query_ids`` (a file, one id per line, or a list) keeps only those queries (e.g. the held-out part of a
    split). The folder is written atomically: on any error nothing is left at ``out`` (an earlier report
    there stays as it was).
    """
    from covr_core.combiners import combine, load_mlp_combiner

    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {BENCHMARKS}, got {benchmark!r}")
    t0 = time.perf_counter()
    out = Path(out)
    qs = QuerySet.load(queries)
    if query_ids is not None:
        qs = subset_queries(qs, query_ids)
    gal = Gallery.load(gallery)
    check_compatible(qs, gal.manifest, queries, gallery)
    mlp_model = load_mlp_combiner(mlp) if mlp else None
    if mlp_model is not None and mlp_model.dim != qs.emb.f_mm.shape[1]:
        raise ValueError(f"MLP combiner {mlp} takes {mlp_model.dim}-d embeddings, the queries are "
                         f"{qs.emb.f_mm.shape[1]}-d: train it on embeddings of the same encoder")
    names = available_combiners(mlp_model, combiners)
    leakage = _mlp_overlap(mlp, qs) if "MLP" in names else None

    item_ids = gal.items["id"].astype(str).to_numpy()
    gallery_emb = np.array(gal.embeddings, dtype=np.float32)  # one in-memory float32 copy for all combiners
    references = qs.table["reference"].astype(str).tolist()
    triplets, target_cols = None, None
    if benchmark == "webvid":
        targets = qs.table["target"].astype(str).tolist()
        rows, target_cols = webvid_gallery(columns_of(targets, item_ids), targets)
        gallery_ids = item_ids[rows].tolist()
        gallery_emb = np.ascontiguousarray(gallery_emb[rows])
        exclusion = webvid_exclusion(references, gallery_ids, target_cols)
    else:
        gallery_ids = item_ids.tolist()
        triplets = cirr_triplets_from_table(qs.table)
        exclusion = columns_of(references, gallery_ids)
    log.info("evaluating %s on %d queries x %d items (%s)", ", ".join(names), len(qs), len(gallery_ids), benchmark)

    results: dict[str, dict] = {}
    composed: dict[str, np.ndarray] = {}
    submissions: dict[str, dict[str, str]] = {}
    frames = []
    for name in names:
        cq = combine(name, qs.emb, mlp=mlp_model)
        composed[name] = cq.query
        scores = combiner_scores(cq.query, gallery_emb, exclusion)
        res = _evaluate_one(benchmark, name, scores, qs, gallery_ids, triplets, target_cols, submissions)
        results[name] = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in res.items()}
        frames.append(per_query_frame(name, qs.table, cq.weights, scores, gallery_ids, top_k))
    per_query = pd.concat(frames, ignore_index=True)

    info = {
        "benchmark": benchmark,
        "split": "test (submission files)" if benchmark == "cirr" and not has_targets(qs.table) else "labelled",
        "queries": str(Path(queries)),
        "gallery": str(Path(gallery)),
        "gallery_manifest": {k: gal.manifest.get(k) for k in ("name", "encoder", "checkpoint", "checkpoint_sha256", "count", "dim")},
        "queries_manifest": {k: qs.manifest.get(k) for k in ("name", "encoder", "checkpoint", "checkpoint_sha256", "count")},
        "query_subset": str(query_ids) if isinstance(query_ids, (str, Path)) else (
            f"{len(qs)} listed ids" if query_ids is not None else None),
        "mlp": str(mlp) if mlp else None,
        "mlp_record": _mlp_summary(mlp_model),
        "mlp_overlap": leakage,
        "combiners": names,
        "identical_combiners": identical_combiners(composed),
        "num_queries": len(qs),
        "num_gallery": int(len(gallery_ids)),
        "gallery_protocol": WEBVID_GALLERY_NOTE if benchmark == "webvid" else CIRR_GALLERY_NOTE,
        "pretraining": pretraining,
        "provenance": provenance_record or provenance([]),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    report = {"info": info, "results": results}
    reports = (render_reports(report, CIRR_COLUMNS if benchmark == "cirr" else WEBVID_COLUMNS, header_lines(info))
               if info["split"] == "labelled" else {})
    Evaluation.build(per_query, info, results, reports=reports, submissions=submissions).save(out)
    log.info("wrote %s in %.2f s", out, info["seconds"])
    return report


WEBVID_GALLERY_NOTE = ("one gallery entry per distinct target video (pth2); every query keeps its own row; "
                       "columns showing the query's reference video are removed (CoVR)")
CIRR_GALLERY_NOTE = "every image of the gallery folder; the query's reference image is removed (CoVR)"


def _mlp_summary(mlp_model) -> dict | None:
    """The parts of the MLP's training record a reader of the table needs."""
    if mlp_model is None:
        return None
    r = mlp_model.record or {}
    return {k: r.get(k) for k in ("trained", "status", "best_epoch", "best_val_R@1", "initial_val_R@1", "split",
                                  "overlap") if k in r}


def subset_queries(qs: QuerySet, query_ids: str | Path | Sequence[str]) -> QuerySet:
    """Only the queries whose ``query_id`` is listed (file order ignored: the queries' order is kept)."""
    ids = read_query_ids(query_ids) if isinstance(query_ids, (str, Path)) else [str(i) for i in query_ids]
    keep = qs.table["query_id"].astype(str).isin(set(ids)).to_numpy()
    if not keep.any():
        raise ValueError(f"none of the {len(ids)} listed query ids is in {qs.folder}")
    if keep.sum() < len(set(ids)):
        log.warning("%d listed query ids are not in %s", len(set(ids)) - int(keep.sum()), qs.folder)
    return qs.take(np.nonzero(keep)[0])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags (``--help`` lists them with defaults)."""
    p = make_parser("python -m precompute.evaluate",
                    "Recall tables, CIRR submission files and a per-query table for every combiner.")
    p.add_argument("--queries", required=True, help=f"queries folder ({qf.ARRAYS_FILE} + {qf.TABLE_FILE})")
    p.add_argument("--gallery", required=True, help="gallery folder of the targets")
    p.add_argument("--benchmark", required=True, choices=BENCHMARKS, help="protocol: CIRR or WebVid-CoVR")
    p.add_argument("--out", required=True, help="output folder for the report files")
    p.add_argument("--mlp", default=None, help="trained MLP combiner (.safetensors); MLP is evaluated only with it")
    p.add_argument("--combiners", nargs="+", default=None, help="evaluate only these combiners (default: all available)")
    p.add_argument("--top-k", type=int, default=10, help=f"ids and scores kept per query in {PER_QUERY_FILE}")
    p.add_argument("--pretraining", default="–", help="label of the 'pretraining' column of the Markdown table")
    p.add_argument("--query-ids", default=None,
                   help="file of query ids (one per line) to evaluate, e.g. the held-out part written by "
                        "precompute.train_combiner --split-by; default: every query")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging level")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    """CLI entry point."""
    args = parse_args(argv)
    setup_logging(args.log_level)
    return run(
        args.queries, args.gallery, args.benchmark, args.out, mlp=args.mlp, combiners=args.combiners,
        top_k=args.top_k, pretraining=args.pretraining, provenance_record=provenance(argv), query_ids=args.query_ids,
    )


if __name__ == "__main__":
    main()
