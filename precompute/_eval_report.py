"""Report tables of ``precompute.evaluate``: the study's table layout as Markdown, CSV and LaTeX."""

from __future__ import annotations

import csv
import io

from covr_core.evaluation_folder import REPORT_FILES

#: (metrics key, column label) of the CIRR table; Rs = hard subset recall, Rs~ = CoVR's graded variant.
CIRR_COLUMNS: tuple[tuple[str, str], ...] = (
    ("R@1", "R@1"), ("R@5", "R@5"), ("R@10", "R@10"), ("R@50", "R@50"),
    ("Rs@1", "Rs@1"), ("Rs@2", "Rs@2"), ("Rs@3", "Rs@3"),
    ("Avg", "Avg"), ("Rs_soft@1", "Rs~@1"), ("Rs_soft@2", "Rs~@2"), ("Rs_soft@3", "Rs~@3"),
)
WEBVID_COLUMNS: tuple[tuple[str, str], ...] = (
    ("R@1", "R@1"), ("R@5", "R@5"), ("R@10", "R@10"), ("R@50", "R@50"), ("meanR3", "meanR3"), ("meanR4", "meanR4"),
)

CIRR_LEGEND = (
    "R@K: target_hard in the top K of the whole gallery (reference removed). "
    "Rs@K (hard): target_hard in the top K of its 6-image subset. "
    "Avg = (R@5 + Rs@1) / 2 (CIRR's leaderboard average, the study's Avg column). "
    "Rs~@K (graded, CoVR's val code): best target_soft credit (1.0/0.5/0.2, negatives 0) among the top K subset images."
)
WEBVID_LEGEND = (
    "R@K: the row's target video in the top K (gallery = the targets of all rows, same-video columns removed); "
    "meanR3 = mean(R@1, R@5, R@10), meanR4 = mean(R@1, R@5, R@10, R@50)."
)


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
    if info.get("query_subset"):
        lines.append(f"- queries evaluated: only the ids in `{info['query_subset']}`")
    if q.get("checkpoint_sha256") and g.get("checkpoint_sha256") and q["checkpoint_sha256"] != g["checkpoint_sha256"]:
        lines.append("- **warning: queries and gallery were embedded with different checkpoints**")
    lines.extend(f"- note: {n}" for n in notes(info))
    return lines


def notes(info: dict) -> list[str]:
    """Notes a reader of the table must see: identical combiners, MLP leakage, an untrained MLP."""
    out = []
    for group in info.get("identical_combiners") or []:
        out.append(f"{' and '.join(group)} give identical queries with this encoder "
                   f"(`{(info.get('gallery_manifest') or {}).get('encoder')}`), so their rows are equal")
    leak = info.get("mlp_overlap")
    if leak:
        used = ", ".join(f"{n} in its {part} split" for part, n in leak.items() if part != "evaluated")
        out.append(f"**LEAKAGE: the MLP was trained on evaluated queries ({used}, of {leak['evaluated']}); "
                   "its row is not a held-out result**")
    return out


def markdown_table(results: dict[str, dict], columns, pretraining: str = "–") -> str:
    """The study's layout: ``| pretraining | method | R@1 | ... |`` with two decimals."""
    head = ["pretraining", "method", *(label for _, label in columns)]
    return markdown_rows(head, table_rows(results, columns, pretraining))


def markdown_rows(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table from a header and string cells."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def csv_text(results: dict[str, dict], columns, pretraining: str = "–") -> str:
    """CSV with one row per combiner; columns use the metrics keys."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["pretraining", "method", *(k for k, _ in columns)])
    for name, res in results.items():
        w.writerow([pretraining, name, *(f"{res[k]:.4f}" if k in res else "" for k, _ in columns)])
    return buf.getvalue()


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in a cell."""
    table = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
             "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(table.get(c, c) for c in str(text))


def latex_table(rows: list[list[str]], head: list[str], caption: str = "") -> str:
    """A booktabs ``tabular`` (first columns left-aligned text, numbers right-aligned)."""
    n_text = next((i for i, cell in enumerate(rows[0] if rows else []) if _is_number(cell)), len(head))
    spec = "l" * n_text + "r" * (len(head) - n_text)
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(latex_escape(h) for h in head) + r" \\",
              r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _is_number(cell: str) -> bool:
    try:
        float(str(cell).replace(",", ""))
    except ValueError:
        return False
    return True


def table_rows(results: dict[str, dict], columns, pretraining: str = "–") -> list[list[str]]:
    """Rows of the study's layout (pretraining, method, metrics with two decimals)."""
    return [[pretraining, name, *(f"{res[k]:.2f}" if k in res else "–" for k, _ in columns)]
            for name, res in results.items()]


def render_reports(report: dict, columns, header: list[str]) -> dict[str, str]:
    """The texts of the report files (``covr_core.evaluation_folder.REPORT_FILES``: Markdown, CSV, LaTeX)."""
    info, results = report["info"], report["results"]
    legend = CIRR_LEGEND if info["benchmark"] == "cirr" else WEBVID_LEGEND
    head = ["pretraining", "method", *(label for _, label in columns)]
    caption = f"{'CIRR' if info['benchmark'] == 'cirr' else 'WebVid-CoVR'}: {info['num_queries']} queries"
    md = "\n".join([*header, "", markdown_table(results, columns, info["pretraining"]), "", legend, ""])
    tex = latex_table(table_rows(results, columns, info["pretraining"]), head, caption)
    return dict(zip(REPORT_FILES, (md, csv_text(results, columns, info["pretraining"]), tex)))
