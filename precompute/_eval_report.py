"""Report files of ``precompute.evaluate``: Markdown table in the study's layout, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from covr_core.atomic import atomic_write_text

#: (metrics key, column label) of the CIRR table; Rs = hard subset recall, Rs~ = CoVR's graded variant.
CIRR_COLUMNS: tuple[tuple[str, str], ...] = (
    ("R@1", "R@1"), ("R@5", "R@5"), ("R@10", "R@10"), ("R@50", "R@50"),
    ("Rs@1", "Rs@1"), ("Rs@2", "Rs@2"), ("Rs@3", "Rs@3"),
    ("Rs_soft@1", "Rs~@1"), ("Rs_soft@2", "Rs~@2"), ("Rs_soft@3", "Rs~@3"),
)
WEBVID_COLUMNS: tuple[tuple[str, str], ...] = (
    ("R@1", "R@1"), ("R@5", "R@5"), ("R@10", "R@10"), ("R@50", "R@50"), ("meanR3", "meanR3"), ("meanR4", "meanR4"),
)

CIRR_LEGEND = (
    "R@K: target_hard in the top K of the whole gallery (reference removed). "
    "Rs@K (hard): target_hard in the top K of its 6-image subset. "
    "Rs~@K (graded, CoVR's val code): best target_soft credit (1.0/0.5/0.2, negatives 0) among the top K subset images."
)
WEBVID_LEGEND = (
    "R@K: the row's target video in the top K (gallery = the targets of all rows, same-video columns removed); "
    "meanR3 = mean(R@1, R@5, R@10), meanR4 = mean(R@1, R@5, R@10, R@50)."
)


def write_json(path: Path, obj: dict) -> None:
    """Pretty JSON, written atomically."""
    atomic_write_text(Path(path), json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def header_lines(info: dict) -> list[str]:
    """Markdown header naming the benchmark, gallery, checkpoint, queries and MLP weights."""
    g = info.get("gallery_manifest") or {}
    q = info.get("queries_manifest") or {}
    sha = (g.get("checkpoint_sha256") or "")[:10] or "unknown"
    lines = [
        f"# {'CIRR' if info['benchmark'] == 'cirr' else 'WebVid-CoVR'} evaluation",
        "",
        f"- gallery: `{g.get('name') or info['gallery']}` ({info['num_gallery']} items, folder `{info['gallery']}`)",
        f"- encoder / checkpoint: `{g.get('encoder')}` / `{g.get('checkpoint')}` (sha256 {sha})",
        f"- queries: `{info['queries']}` ({info['num_queries']} queries; checkpoint `{q.get('checkpoint')}`)",
        f"- MLP combiner weights: `{info['mlp']}`" if info.get("mlp") else "- MLP combiner: not evaluated (no --mlp)",
    ]
    if q.get("checkpoint_sha256") and g.get("checkpoint_sha256") and q["checkpoint_sha256"] != g["checkpoint_sha256"]:
        lines.append("- **warning: queries and gallery were embedded with different checkpoints**")
    return lines


def markdown_table(results: dict[str, dict], columns, pretraining: str = "–") -> str:
    """The study's layout: ``| pretraining | method | R@1 | ... |`` with two decimals."""
    head = ["pretraining", "method", *(label for _, label in columns)]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in results.items():
        cells = [pretraining, name] + [f"{res[k]:.2f}" if k in res else "–" for k, _ in columns]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def csv_text(results: dict[str, dict], columns, pretraining: str = "–") -> str:
    """CSV with one row per combiner; columns use the metrics keys."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["pretraining", "method", *(k for k, _ in columns)])
    for name, res in results.items():
        w.writerow([pretraining, name, *(f"{res[k]:.4f}" if k in res else "" for k, _ in columns)])
    return buf.getvalue()


def write_report(out: Path, report: dict, columns, header: list[str]) -> None:
    """``metrics.md``, ``metrics.csv`` and ``metrics.json`` in ``out``."""
    info, results = report["info"], report["results"]
    legend = CIRR_LEGEND if info["benchmark"] == "cirr" else WEBVID_LEGEND
    md = "\n".join([*header, "", markdown_table(results, columns, info["pretraining"]), "", legend, ""])
    atomic_write_text(Path(out) / "metrics.md", md)
    atomic_write_text(Path(out) / "metrics.csv", csv_text(results, columns, info["pretraining"]))
    write_json(Path(out) / "metrics.json", report)
