"""Train the MLP combiner (the study's weight predictor) on frozen, precomputed embeddings.

``python -m precompute.train_combiner --train-queries DIR --gallery DIR --val-queries DIR [--val-gallery DIR] --out PATH``
``python -m precompute.train_combiner --train-queries DIR --gallery DIR --split-by image-set|video --out PATH``

The backbone is frozen: only ``weight_predictor`` (Linear(3*dim, 128) -> ReLU -> Linear(128, 3), softmax
over (w_mm, w_img, w_txt)) learns, from the queries files' f_mm / f_img / f_txt and the target gallery
embeddings. The study trained the MLP jointly with the CoVR fine-tuning of the BLIP text encoder; this job
does not. Loss: HN-NCE (alpha 1, beta 0.5, both directions summed; CoVR's default) or InfoNCE, temperature
0.07, AdamW. Each epoch draws one random triplet per distinct target (CoVR's ``iterate: pth2``), so no batch
holds a target twice. After every epoch R@1 on the validation split picks the best weights; training stops
after ``--patience`` epochs without a gain. Writes ``OUT`` (safetensors) and the JSON record beside it via
``covr_core.combiners.save_mlp_combiner`` and ``<stem>.curve.png``; ``load_mlp_combiner(OUT)`` loads it (trained).

Splits and guards:

- Without ``--val-queries``, ``--split-by image-set`` (CIRR: whole 6-image sets) or ``--split-by video`` (WebVid:
  whole target videos) cuts ``--train-queries`` into train / val (``--val-fraction``) and optionally a held-out
  part (``--holdout-fraction``) whose query ids go to ``<stem>.heldout.txt`` for ``precompute.evaluate
  --query-ids``. The split is seeded (``--split-seed``) and described in the record.
- The (reference, target, caption) keys of the train and val queries go to ``<stem>.split.npz``; training and
  validating on overlapping queries warns loudly and sets ``leakage: true`` in the record, and
  ``precompute.evaluate --mlp`` warns and marks its table when it evaluates queries the MLP saw.
- A run whose best epoch is epoch 0 (validation R@1 never beat the untrained MLP) says so, is recorded
  ``trained: false`` with a ``status``, and is refused by ``load_mlp_combiner`` (so neither the app nor the
  evaluation offers it as MLP).
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from covr_core.combiners import MLPCombiner, save_mlp_combiner
from covr_core.gallery import Gallery
from covr_core.query_folder import QuerySet
from covr_core.types import WEIGHT_NAMES
from precompute._curve_plot import save_curve
from precompute._losses import LOSSES, make_loss
from precompute._query_split import (
    SPLIT_BY,
    overlap,
    query_keys,
    save_split_keys,
    split_by_group,
    split_keys_path,
    write_query_ids,
)
from precompute.engine.common import make_parser, progress, provenance, setup_logging
from precompute.evaluate import check_compatible, columns_of, mask_columns

log = logging.getLogger(__name__)

JOINT_TRAINING_NOTE = (
    "Trained on frozen embeddings (backbone not updated). The study trained the MLP jointly with the CoVR "
    "fine-tuning of the BLIP text encoder; weights trained here are comparable only in kind, not in number."
)


def composed_queries(mlp: torch.nn.Module, f_mm: torch.Tensor, f_img: torch.Tensor,
                     f_txt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(query [B, d], weights [B, 3]) of the MLP combiner, differentiable: ``MLPCombiner.forward`` gives the
    softmax weights, the query is normalise(w_mm*f_mm + w_img*f_img + w_txt*f_txt) as in ``combine("MLP")``."""
    w = mlp(torch.stack([f_mm, f_img, f_txt], dim=-2))
    q = w[:, 0:1] * f_mm + w[:, 1:2] * f_img + w[:, 2:3] * f_txt
    return F.normalize(q, dim=-1), w


def distinct_target_batches(target_rows: np.ndarray, batch_size: int, generator: torch.Generator) -> list[np.ndarray]:
    """One epoch: one random query per distinct target, targets shuffled, cut into batches (last one >= 2)."""
    order = np.argsort(target_rows, kind="stable")
    uniq, starts, counts = np.unique(target_rows[order], return_index=True, return_counts=True)
    pick = (torch.rand(len(uniq), generator=generator).numpy() * counts).astype(np.int64)
    chosen = order[starts + np.minimum(pick, counts - 1)]
    chosen = chosen[torch.randperm(len(chosen), generator=generator).numpy()]
    batches = [chosen[i:i + batch_size] for i in range(0, len(chosen), batch_size)]
    return [b for b in batches if len(b) >= 2]


class _Split:
    """Tensors of one split: the three query embeddings, target rows into its gallery, reference columns."""

    def __init__(self, qs: QuerySet, gallery_ids: np.ndarray, gallery_emb: np.ndarray, name: str) -> None:
        cols = columns_of(qs.table["target"].astype(str).tolist(), gallery_ids)
        keep = np.nonzero(cols >= 0)[0]
        if len(keep) < len(cols):
            log.warning("%s: %d of %d queries have a target outside the gallery; left out",
                        name, len(cols) - len(keep), len(cols))
        if len(keep) == 0:
            raise ValueError(f"{name}: no query has its target in the gallery")
        self.f = [torch.from_numpy(np.ascontiguousarray(a[keep])) for a in (qs.emb.f_mm, qs.emb.f_img, qs.emb.f_txt)]
        self.target_rows = cols[keep]
        self.ref_cols = columns_of(qs.table["reference"].astype(str).to_numpy()[keep].tolist(), gallery_ids)
        self.gallery = torch.from_numpy(np.array(gallery_emb, dtype=np.float32))  # a copy: galleries are mmapped
        self.n = len(keep)


@torch.no_grad()
def validate(mlp: torch.nn.Module, split: _Split, chunk: int = 4096) -> tuple[float, np.ndarray]:
    """R@1 (%) over the split's gallery (reference column removed) and the predicted weights [N, 3]."""
    hits, weights = 0, []
    for i in range(0, split.n, chunk):
        q, w = composed_queries(mlp, *(f[i:i + chunk] for f in split.f))
        scores = (q @ split.gallery.T).numpy()
        mask_columns(scores, split.ref_cols[i:i + chunk])
        hits += int((scores.argmax(axis=1) == split.target_rows[i:i + chunk]).sum())
        weights.append(w.numpy())
    return 100.0 * hits / split.n, np.concatenate(weights)


def weight_stats(weights: np.ndarray) -> dict[str, dict[str, float]]:
    """Mean and std of w_mm, w_img, w_txt."""
    return {n: {"mean": float(weights[:, j].mean()), "std": float(weights[:, j].std())} for j, n in enumerate(WEIGHT_NAMES)}


def _load_split(queries: str | Path | QuerySet, gallery: str | Path, name: str) -> tuple[_Split, QuerySet, dict]:
    qs = queries if isinstance(queries, QuerySet) else QuerySet.load(queries)
    gal = Gallery.load(gallery)
    check_compatible(qs, gal.manifest, qs.folder, gallery)
    ids = gal.items["id"].astype(str).to_numpy()
    return _Split(qs, ids, np.asarray(gal.embeddings, dtype=np.float32), name), qs, gal.manifest


def _split_sets(train_queries: str | Path, val_queries: str | Path | None, split_by: str | None,
                val_fraction: float, holdout_fraction: float, split_seed: int,
                out: Path) -> tuple[QuerySet, QuerySet, dict]:
    """(train queries, val queries, split record): two folders as given, or one folder split by group."""
    if val_queries is not None:
        if split_by:
            raise ValueError("give either --val-queries or --split-by, not both")
        return QuerySet.load(train_queries), QuerySet.load(val_queries), {"train": str(train_queries),
                                                                          "val": str(val_queries)}
    if not split_by:
        raise ValueError("no validation split: give --val-queries DIR, or --split-by image-set (CIRR) / "
                         "video (WebVid) to split --train-queries by group")
    qs = QuerySet.load(train_queries)
    fractions = {"train": 1.0 - val_fraction - holdout_fraction, "val": val_fraction, "heldout": holdout_fraction}
    split = split_by_group(qs.table, split_by, fractions, seed=split_seed)
    record = {"from": str(train_queries), **split.record()}
    if holdout_fraction > 0:
        ids = qs.table["query_id"].to_numpy()[split.parts["heldout"]]
        path = write_query_ids(out.with_name(out.stem + ".heldout.txt"), ids)
        record["heldout_ids"] = path.name
        log.info("held out %d queries (%d %s groups) for evaluation: %s", len(ids), split.groups["heldout"],
                 split_by, path)
    return qs.take(split.parts["train"]), qs.take(split.parts["val"]), record


def _overlap_guard(train_qs: QuerySet, val_qs: QuerySet) -> dict:
    """Count train/val queries with the same (reference, target, caption); warn loudly when any."""
    n = overlap(query_keys(val_qs.table), {"train": query_keys(train_qs.table)}).get("train", 0)
    if n:
        log.warning("LEAKAGE: %d of the %d validation queries are also training queries: early stopping and the "
                    "record's val R@1 measure memorisation, not generalisation (use --split-by)", n, len(val_qs))
    return {"val_in_train": n, "num_val": len(val_qs)}


def run(
    train_queries: str | Path, gallery: str | Path, val_queries: str | Path, out: str | Path,
    val_gallery: str | Path | None = None, loss: str = "hn-nce", alpha: float = 1.0, beta: float = 0.5,
    temperature: float = 0.07, lr: float = 1e-3, weight_decay: float = 0.05, batch_size: int = 128,
    epochs: int = 30, patience: int = 5, hidden: int = 128, seed: int = 1234,
    provenance_record: dict | None = None, split_by: str | None = None, val_fraction: float = 0.2,
    holdout_fraction: float = 0.0, split_seed: int = 0,
) -> dict:
    """Train, keep the best epoch by validation R@1, save weights + record; returns the record.

    ``val_queries=None`` with ``split_by`` splits ``train_queries`` by group (see the module docstring).
    """
    out = Path(out)
    val_gallery = val_gallery or gallery
    train_set, val_set, split_record = _split_sets(train_queries, val_queries, split_by, val_fraction,
                                                   holdout_fraction, split_seed, out)
    overlap_record = _overlap_guard(train_set, val_set)
    train, train_qs, g_manifest = _load_split(train_set, gallery, "train")
    val, val_qs, _ = _load_split(val_set, val_gallery, "val")
    dim = int(train.f[0].shape[1])
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    mlp = MLPCombiner(dim=dim, hidden=hidden)
    mlp.train()
    params = list(mlp.weight_predictor.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    loss_fn = make_loss(loss, temperature=temperature, alpha=alpha, beta=beta if loss == "hn-nce" else 0.0)

    r1, _ = validate(mlp, val)
    history = [{"epoch": 0, "loss": math.nan, "val_R@1": r1}]
    best = {"epoch": 0, "r1": r1, "state": copy.deepcopy(mlp.state_dict())}
    log.info("train %d queries (%d targets), val %d queries; epoch 0 val R@1 %.2f",
             train.n, len(np.unique(train.target_rows)), val.n, r1)
    n_batches = len(distinct_target_batches(train.target_rows, batch_size, torch.Generator().manual_seed(0)))
    if n_batches == 0:
        raise ValueError("training needs at least 2 distinct targets (and --batch-size >= 2) for in-batch negatives")
    bar = progress(total=epochs * n_batches, desc="train MLP", unit="batch")
    stale = 0
    try:
        for epoch in range(1, epochs + 1):
            total, count = 0.0, 0
            for rows in distinct_target_batches(train.target_rows, batch_size, generator):
                idx = torch.from_numpy(rows)
                q, _ = composed_queries(mlp, *(f[idx] for f in train.f))
                t = train.gallery[torch.from_numpy(train.target_rows[rows])]
                value = loss_fn(q, t)
                opt.zero_grad(set_to_none=True)
                value.backward()
                opt.step()
                total, count = total + value.item() * len(rows), count + len(rows)
                bar.update(1)
            r1, _ = validate(mlp, val)
            history.append({"epoch": epoch, "loss": total / max(count, 1), "val_R@1": r1})
            bar.set_postfix(loss=f"{total / max(count, 1):.4f}", val_r1=f"{r1:.2f}")
            log.debug("epoch %d loss %.4f val R@1 %.2f", epoch, total / max(count, 1), r1)
            if r1 > best["r1"]:
                best, stale = {"epoch": epoch, "r1": r1, "state": copy.deepcopy(mlp.state_dict())}, 0
            else:
                stale += 1
                if stale >= patience:
                    log.info("early stop after epoch %d (no gain for %d epochs)", epoch, patience)
                    break
    finally:
        bar.close()

    trained = best["epoch"] > 0
    status = ("trained" if trained else
              f"not trained: validation R@1 never beat the untrained MLP ({history[0]['val_R@1']:.2f} at epoch 0); "
              "the file holds the initial weights, is marked trained: false and is not offered as MLP")
    if not trained:
        log.warning("%s", status)
    mlp.load_state_dict(best["state"])
    mlp.eval()
    mlp.trained = True  # for the weight statistics below; the saved record says whether it really learned
    _, val_weights = validate(mlp, val)
    curve = out.with_name(out.stem + ".curve.png")
    save_curve(curve, [h["epoch"] for h in history], [h["loss"] for h in history],
               [h["val_R@1"] for h in history], best_epoch=best["epoch"])
    mlp.trained = trained
    record = {
        "trained": trained,
        "status": status,
        "note": JOINT_TRAINING_NOTE,
        "split": split_record,
        "overlap": overlap_record,
        "leakage": overlap_record["val_in_train"] > 0,
        "split_keys": split_keys_path(out).name,
        "data": {"train_queries": str(train_queries), "gallery": str(gallery), "val_queries": str(val_queries),
                 "val_gallery": str(val_gallery), "num_train": train.n, "num_train_targets": int(len(np.unique(train.target_rows))),
                 "num_val": val.n},
        "encoder": {k: g_manifest.get(k) for k in ("encoder", "checkpoint", "checkpoint_sha256", "dim")},
        "queries_checkpoint": train_qs.manifest.get("checkpoint"),
        "epochs": history[-1]["epoch"], "best_epoch": best["epoch"], "best_val_R@1": best["r1"],
        "initial_val_R@1": history[0]["val_R@1"],
        "hyper_parameters": {"loss": loss, "alpha": alpha, "beta": beta if loss == "hn-nce" else 0.0,
                             "temperature": temperature, "optimizer": "AdamW", "lr": lr, "weight_decay": weight_decay,
                             "batch_size": batch_size, "max_epochs": epochs, "patience": patience, "hidden": hidden,
                             "sampling": "one triplet per distinct target per epoch"},
        "seed": seed,
        "weight_stats": weight_stats(val_weights),
        "history": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in h.items()} for h in history],
        "curve": curve.name,
        "provenance": provenance_record or provenance([]),
    }
    save_mlp_combiner(mlp, out, record)
    save_split_keys(split_keys_path(out), {"train": query_keys(train_qs.table), "val": query_keys(val_qs.table)})
    log.info("best epoch %d, val R@1 %.2f (epoch 0: %.2f); wrote %s", best["epoch"], best["r1"], history[0]["val_R@1"], out)
    return record


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags (``--help`` lists them with defaults)."""
    p = make_parser("python -m precompute.train_combiner",
                    "Train the MLP combiner on frozen query/gallery embeddings (HN-NCE or InfoNCE, early stopping).")
    p.add_argument("--train-queries", required=True, help="queries folder of the training split")
    p.add_argument("--gallery", required=True, help="gallery folder holding the training targets")
    p.add_argument("--val-queries", default=None,
                   help="queries folder of the validation split (or leave it out and use --split-by)")
    p.add_argument("--val-gallery", default=None, help="gallery of the validation targets; None = the --gallery folder")
    p.add_argument("--out", required=True, help="output weights file (.safetensors); the JSON record goes beside it")
    p.add_argument("--loss", choices=LOSSES, default="hn-nce", help="contrastive loss")
    p.add_argument("--alpha", type=float, default=1.0, help="HN-NCE positive weight")
    p.add_argument("--beta", type=float, default=0.5, help="HN-NCE hardness (0 = InfoNCE)")
    p.add_argument("--temperature", type=float, default=0.07, help="softmax temperature of the similarities")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay")
    p.add_argument("--batch-size", type=int, default=128, help="queries per batch (distinct targets)")
    p.add_argument("--epochs", type=int, default=30, help="maximum number of epochs")
    p.add_argument("--patience", type=int, default=5, help="stop after this many epochs without a val R@1 gain")
    p.add_argument("--hidden", type=int, default=128, help="hidden units of the weight predictor")
    p.add_argument("--seed", type=int, default=1234, help="seed of the initialisation and the batch sampling")
    s = p.add_argument_group("split (when there is no --val-queries)")
    s.add_argument("--split-by", choices=SPLIT_BY, default=None,
                   help="split --train-queries keeping whole CIRR image sets (image-set) or WebVid target videos "
                        "(video) on one side")
    s.add_argument("--val-fraction", type=float, default=0.2, help="share of groups used for validation")
    s.add_argument("--holdout-fraction", type=float, default=0.0,
                   help="share of groups held out from training and validation; their query ids go to "
                        "<out stem>.heldout.txt for precompute.evaluate --query-ids")
    s.add_argument("--split-seed", type=int, default=0, help="seed of the group shuffle")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="logging level")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    """CLI entry point."""
    a = parse_args(argv)
    setup_logging(a.log_level)
    return run(a.train_queries, a.gallery, a.val_queries, a.out, val_gallery=a.val_gallery, loss=a.loss, alpha=a.alpha,
               beta=a.beta, temperature=a.temperature, lr=a.lr, weight_decay=a.weight_decay, batch_size=a.batch_size,
               epochs=a.epochs, patience=a.patience, hidden=a.hidden, seed=a.seed, provenance_record=provenance(argv),
               split_by=a.split_by, val_fraction=a.val_fraction, holdout_fraction=a.holdout_fraction,
               split_seed=a.split_seed)


if __name__ == "__main__":
    main()
