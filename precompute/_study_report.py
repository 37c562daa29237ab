"""The report folder of ``precompute.reproduce``: the study's tables (Markdown, CSV, LaTeX), Figure 1, index.

Table 1 layout (with Avg): one row per (evaluation, combiner) of the CIRR evaluations; the WebVid-CoVR table
uses CoVR's R@K and meanR3/meanR4; Table 4 is the filter job's statistics. Every table is written three times
(``<stem>.md``, ``.csv``, ``.tex``) from the same rows, so the three always agree.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from covr_core.atomic import atomic_write_text
from covr_core.evaluation_folder import Evaluation
from covr_core.filter_run import Stats, table4
from covr_core.types import WEIGHT_NAMES
from precompute._eval_report import latex_table, markdown_rows, notes

TABLE1_METRICS = ("R@1", "R@5", "R@10", "R@50", "Rs@1", "Rs@2", "Rs@3", "Avg")
WEBVID_METRICS = ("R@1", "R@5", "R@10", "R@50", "meanR3", "meanR4")


def metric_rows(evaluations: dict[str, dict], metrics: Sequence[str], model: str) -> list[list[str]]:
    """Rows ``model | evaluation | queries | method | metrics...`` (two decimals), one per combiner."""
    rows = []
    for name, report in evaluations.items():
        n = report["info"]["num_queries"]
        for method, res in report["results"].items():
            rows.append([model, name, f"{n:,}", method, *(f"{res[k]:.2f}" if k in res else "–" for k in metrics)])
    return rows


def table4_rows(stats: Stats) -> list[list[str]]:
    """Rows of the study's Table 4 (dataset | target videos | triplets | query videos), counts as text."""
    return [[label, *(f"{count:,}" for count in counts)] for label, *counts in table4(stats)]


def write_table(out_dir: Path, stem: str, head: list[str], rows: list[list[str]], caption: str) -> list[Path]:
    """``<stem>.md``, ``<stem>.csv`` (numbers without thousands separators) and ``<stem>.tex``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for r in rows:
        w.writerow([c.replace(",", "") if _numeric(c) else c for c in r])
    paths = [out_dir / f"{stem}.md", out_dir / f"{stem}.csv", out_dir / f"{stem}.tex"]
    atomic_write_text(paths[0], f"{caption}\n\n{markdown_rows(head, rows)}\n")
    atomic_write_text(paths[1], buf.getvalue())
    atomic_write_text(paths[2], latex_table(rows, head, caption))
    return paths


def _numeric(cell: str) -> bool:
    try:
        float(str(cell).replace(",", ""))
    except ValueError:
        return False
    return True


def mlp_weights(eval_folder: str | Path) -> np.ndarray | None:
    """The MLP rows' (w_mm, w_img, w_txt) of an evaluation's per-query table (None without MLP rows)."""
    pq = Evaluation.load(eval_folder, columns=["combiner", *WEIGHT_NAMES]).per_query
    rows = pq[pq["combiner"] == "MLP"]
    return rows[list(WEIGHT_NAMES)].to_numpy(dtype=float) if len(rows) else None


def index_markdown(name: str, files: list[str], evaluations: dict[str, dict], mlp: dict | None,
                   figure_note: str, extra: list[str]) -> str:
    """The report's README.md: what each file is, the MLP's status and every note the tables carry."""
    lines = [f"# Study reproduction report `{name}`", "", "Files:", ""]
    lines += [f"- `{f}`" for f in files]
    lines += ["", "## MLP combiner", ""]
    if mlp is None:
        lines.append("- not trained in this run")
    else:
        lines.append(f"- status: {mlp.get('status', 'trained' if mlp.get('trained') else 'not trained')}")
        if mlp.get("split"):
            lines.append(f"- split: `{json.dumps(mlp['split'], sort_keys=True)}`")
        lines.append(f"- best epoch {mlp.get('best_epoch')}, val R@1 {mlp.get('best_val_R@1', float('nan')):.2f} "
                     f"(untrained: {mlp.get('initial_val_R@1', float('nan')):.2f}); leakage: {mlp.get('leakage')}")
    lines += ["", "## Figure 1", "", f"- {figure_note}", "", "## Notes", ""]
    all_notes = [f"{ev}: {n}" for ev, rep in evaluations.items() for n in notes(rep["info"])] + extra
    lines += [f"- {n}" for n in all_notes] or ["- none"]
    return "\n".join(lines) + "\n"
