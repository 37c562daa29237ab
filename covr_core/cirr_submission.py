"""CIRR test1 submission files (covr.md §4.2), written atomically, and a validator for them.

``recalls_cirr.json``: ``{"version": "rc2", "metric": "recall", "<pairid>": [50 image names]}``;
``recalls_cirr_subset.json``: same with ``"metric": "recall_subset"`` and the top-3 ``img_set`` members.
The reference is removed from both rankings; names have no extension; ties follow the metrics' stable rule.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from covr_core.atomic import atomic_write_text
from covr_core.datasets.cirr import CirrTriplet
from covr_core.ranking import check_scores, cirr_subset_order, column_lookup, mask_references, topk_stable

RECALL_FILE = "recalls_cirr.json"
SUBSET_FILE = "recalls_cirr_subset.json"
TOP_RECALL, TOP_SUBSET = 50, 3


def cirr_submission_texts(scores: np.ndarray, gallery_ids: Sequence[str],
                          triplets: Sequence[CirrTriplet]) -> dict[str, str]:  # fmt: skip
    """Both submission files as JSON text: ``{RECALL_FILE: ..., SUBSET_FILE: ...}``."""
    lookup = column_lookup(gallery_ids)
    s = mask_references(check_scores(scores, len(triplets), len(gallery_ids)), lookup, triplets)
    top = topk_stable(s, TOP_RECALL)
    gids = [str(g) for g in gallery_ids]
    recall: dict = {"version": "rc2", "metric": "recall"}
    for t, row in zip(triplets, top):
        recall[str(t.pairid)] = [gids[c] for c in row if gids[c] != t.reference][:TOP_RECALL]
    subset: dict = {"version": "rc2", "metric": "recall_subset"}
    for t, names in zip(triplets, cirr_subset_order(s, lookup, triplets)):
        subset[str(t.pairid)] = names[:TOP_SUBSET]
    return {name: json.dumps(obj, ensure_ascii=False) + "\n" for name, obj in ((RECALL_FILE, recall),
                                                                               (SUBSET_FILE, subset))}


def write_cirr_submission(scores: np.ndarray, gallery_ids: Sequence[str], triplets: Sequence[CirrTriplet],
                          out_dir: str | Path) -> tuple[Path, Path]:  # fmt: skip
    """Write both submission files into ``out_dir``; returns (recall file, subset file)."""
    texts = cirr_submission_texts(scores, gallery_ids, triplets)
    out = Path(out_dir)
    return atomic_write_text(out / RECALL_FILE, texts[RECALL_FILE]), atomic_write_text(
        out / SUBSET_FILE, texts[SUBSET_FILE]
    )


def read_cirr_submission(path: str | Path) -> dict:
    """Load a submission file (plain JSON)."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def validate_cirr_submission(path: str | Path, triplets: Sequence[CirrTriplet],
                             image_names: Collection[str]) -> list[str]:  # fmt: skip
    """Problems that the CIRR server would reject (empty list when the file is valid).

    Checks: version/metric, exactly one key per pairid, list lengths (50 or 3), names in the split,
    no reference in its own list, no duplicates, subset names within ``img_set`` members, size <= 5 MB.
    """
    path = Path(path)
    sub = read_cirr_submission(path)
    problems = []
    if path.stat().st_size > 5 * 1024 * 1024:
        problems.append(f"{path.name} is larger than 5 MB")
    if sub.get("version") != "rc2":
        problems.append("version is not rc2")
    metric = sub.get("metric")
    if metric not in ("recall", "recall_subset"):
        problems.append(f"unknown metric {metric!r}")
    want = TOP_SUBSET if metric == "recall_subset" else TOP_RECALL
    keys = {k for k in sub if k not in ("version", "metric")}
    expected = {str(t.pairid) for t in triplets}
    if keys != expected:
        problems.append(f"{len(expected - keys)} pairid(s) missing, {len(keys - expected)} unexpected")
    names = set(image_names)
    for t in triplets:
        lst = sub.get(str(t.pairid))
        if not isinstance(lst, list):
            continue
        n_expected = min(want, len(set(t.members) - {t.reference})) if want == TOP_SUBSET else want
        if len(lst) != n_expected:
            problems.append(f"pairid {t.pairid}: {len(lst)} names, expected {n_expected}")
        if t.reference in lst:
            problems.append(f"pairid {t.pairid}: contains its reference")
        if len(set(lst)) != len(lst):
            problems.append(f"pairid {t.pairid}: duplicate names")
        bad = [n for n in lst if n not in names or (want == TOP_SUBSET and n not in t.members)]
        if bad:
            problems.append(f"pairid {t.pairid}: unknown names {bad[:3]}")
        if len(problems) > 20:
            problems.append("... (stopped after 20 problems)")
            break
    return problems
