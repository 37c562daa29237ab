"""The three query embeddings (f_mm, f_img, f_txt) of every triplet of a split, saved row-aligned.

    python -m precompute.queries --dataset cirr --root datasets/CIRR --split val --out data/queries/cirr-val
    python -m precompute.queries --dataset webvid --csv webvid8m-covr_test.csv --video-root WebVid/8M/train \\
        --out data/queries/webvid-test

Writes a queries folder (:class:`covr_core.query_folder.QuerySet`: ``f_mm, f_img, f_txt`` [N, dim] float32
row-aligned with a table of ``query_id, reference, target, caption`` + CIRR ``members``/``target_soft`` as JSON,
and a manifest); evaluation and MLP training read it and never run the backbone again. WebVid-CoVR references are the middle frame of ``pth1``.
Resumable, shardable and Ray-capable (``--ray auto``) like the gallery job: both run ``_job.run_embedding_job``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from covr_core.datasets import DatasetSpec, ItemList, query_datasets
from covr_core.query_folder import ARRAYS, QuerySet

from .engine import common as C
from .engine.data import QueryItems
from .engine.job import run_embedding_job
from .engine.options import QueriesOptions
from .engine.units import EmbeddingKind

log = logging.getLogger(__name__)


class QueriesKind(EmbeddingKind):
    """The queries job: f_mm, f_img and f_txt of every triplet (reference image + modification text)."""

    name = "queries"
    columns = ("path", "kind", "caption")

    def list_items(self, spec: DatasetSpec, opts: QueriesOptions) -> ItemList:
        return spec.queries(opts.selection())

    def default_name(self, opts: QueriesOptions, split: str, encoder_name: str) -> str:
        return f"{opts.dataset}-{split}-queries-{encoder_name}"

    def unit_label(self, plan: pd.DataFrame, opts: QueriesOptions) -> str:
        return "query"

    def dataset(self, plan: pd.DataFrame, rows: list[int], opts: QueriesOptions, encoder: Any) -> QueryItems:
        sub = plan.iloc[rows]
        return QueryItems(rows, sub["path"].tolist(), sub["kind"].tolist(), sub["caption"].tolist())

    def process(self, encoder: Any, plan: pd.DataFrame, opts: QueriesOptions, device: str,
                timer: C.StageTimer):
        def process(batch: dict) -> tuple[list[int], dict[str, np.ndarray], list[dict]]:
            with timer("model"), torch.inference_mode(), C.autocast_context(device, opts.dtype):
                q = encoder.encode_queries(batch["images"], batch["texts"])
            arrays = {k: np.asarray(getattr(q, k), dtype=np.float32) for k in ARRAYS}
            return batch["rows"], arrays, [{} for _ in batch["rows"]]

        return process

    def read_output(self, out: Path, plan: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray], list[dict]]:
        queries = QuerySet.load(out)
        rows = pd.Index(plan["id"].astype(str)).get_indexer(queries.table["query_id"].astype(str))
        return rows.astype(np.int64), queries.arrays(), [{} for _ in range(len(rows))]


QUERIES = QueriesKind()


def run(**options: Any) -> C.JobSummary:
    """Compute the query embeddings of every triplet into ``out``; returns the job summary.

    Takes the fields of :class:`precompute.engine.options.QueriesOptions` as keywords (an unknown keyword raises
    TypeError); ``encoder`` is a name (``auto``, ``blip``, ``lite``) or an already loaded ``Encoder``.
    """
    return run_embedding_job(QUERIES, QueriesOptions(**options))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags of ``python -m precompute.queries``."""
    p = C.make_parser("python -m precompute.queries", __doc__)
    g = C.add_dataset_args(p, query_datasets(), "WebVid-CoVR CSV (one query per row)")
    g.add_argument("--name", help="name recorded in the manifest (default: <dataset>-<split>-queries-<encoder>)")
    C.add_encoder_args(p)
    C.add_run_args(p, batch_size=64)
    args = p.parse_args(argv)
    args.argv = list(argv) if argv is not None else None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m precompute.queries``."""
    return C.run_main(parse_args, lambda a: run_embedding_job(QUERIES, QueriesOptions.from_namespace(a)), argv)


if __name__ == "__main__":
    raise SystemExit(main())
