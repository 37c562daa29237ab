"""Report export of pinned examples: the figure (PDF + SVG + 300-dpi PNG, explorer.export_figure), the JSON
record, Markdown and LaTeX snippets whose caption states the target's rank with its scope, in a ZIP."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from matplotlib.figure import Figure
from PIL import Image

from covr_core.figure_style import FORMATS, PNG_DPI, figure_style_of
from covr_core.media import load_image, middle_frame
from explorer.export_figure import FigureOptions, Panel, render_example, smart_quotes, unquoted

if TYPE_CHECKING:
    from explorer.services import Services

log = logging.getLogger(__name__)

PREVIEW_DPI = 200
_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def manifest_hash(manifest: dict[str, Any]) -> str:
    """sha256 of a gallery manifest in canonical JSON (sorted keys): identifies the exact gallery build."""
    blob = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters in user text."""
    return "".join(_LATEX_SPECIALS.get(c, c) for c in text)


def latex_quoted(text: str) -> str:
    """User text in LaTeX typographic quotes: ````text''``, inner double quotes as `` `...' ``."""
    body = unquoted(text)
    out = []
    for i, ch in enumerate(body):
        prev = body[i - 1] if i else " "
        if ch in '"“”':
            out.append("`" if (prev.isspace() or prev in "([{") and ch != "”" else "'")
        else:
            out.append(latex_escape(ch))
    return "``" + "".join(out) + "''"


def slugify(text: str, max_len: int = 40) -> str:
    """File-system safe lower-case slug."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (slug[:max_len].strip("-")) or "example"


# ------------------------------------------------------------------------------------------- figure
def item_image(services: Services, gallery_name: str, item_id: str) -> Image.Image:
    """An item as a still image (videos give their middle frame)."""
    from explorer.search import is_video_path

    path = services.item_path(gallery_name, item_id)
    return middle_frame(path) if is_video_path(path) else load_image(path)


def reference_is_video(services: Services, record: dict[str, Any]) -> bool:
    """Whether the record's reference was a video (uploaded, or a gallery / benchmark video)."""
    q = record.get("query") or {}
    if q.get("reference_kind"):
        return q["reference_kind"] == "video"
    return str(q.get("reference") or "").startswith("video:")


def record_figure(
    services: Services, record: dict[str, Any], reference: Image.Image | None, options: FigureOptions
) -> Figure:
    """The figure of a pinned record: its reference, text and top ``options.n_results`` results."""
    blank = Image.new("RGB", (64, 64), (225, 225, 225))
    panels = []
    for r in record.get("results", [])[: options.n_results]:
        try:
            img = item_image(services, record["gallery"], r["id"])
        except (KeyError, ValueError, OSError) as exc:
            log.warning("result %s not renderable: %s", r.get("id"), exc)
            img = blank
        panels.append(
            Panel(
                img,
                is_video=r.get("kind") == "video",
                rank=int(r["rank"]),
                item_id=str(r["id"]),
                score=float(r["score"]),
                is_target=bool(r.get("is_target")),
            )
        )
    ref = Panel(reference if reference is not None else blank, is_video=reference_is_video(services, record))
    return render_example(ref, str(record.get("text", "")), panels, options)


def figure_png(fig: Figure, dpi: int = PREVIEW_DPI) -> Image.Image:
    """The figure as a PIL image (the page's preview; the export writes 300 dpi)."""
    buf = io.BytesIO()
    with figure_style_of(fig):
        fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def figure_files(fig: Figure) -> dict[str, bytes]:
    """``figure.pdf`` / ``figure.svg`` / ``figure.png`` (300 dpi) as bytes (fonts embedded)."""
    out = {}
    with figure_style_of(fig):
        for fmt in FORMATS:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=PNG_DPI if fmt == "png" else None)
            out[f"figure.{fmt}"] = buf.getvalue()
    return out


# ------------------------------------------------------------------------------------------- text
def rank_sentence(record: dict[str, Any], shown: int) -> str:
    """ "The target (green frame) is at rank 3 among 63 items." (the record's one rank, with its scope)."""
    if not record.get("target_id"):
        return ""
    rank = record.get("target_rank")
    scope = record.get("rank_scope") or {}
    among = f"{scope['candidates']} {scope.get('noun', 'items')}" if scope.get("candidates") else ""
    if not rank:
        return (
            f"The target is not among the {among} searched."
            if among
            else "The target is not in this gallery."
        )
    where = f" among {among}" if among else ""
    if rank <= shown:
        return f"The target (green frame) is at rank {rank}{where}."
    return f"The target is at rank {rank}{where} (not shown)."


def example_snippets(record: dict[str, Any], options: FigureOptions, stem: str = "figure") -> tuple[str, str]:
    """Markdown and LaTeX snippets that include the exported figure and a caption with the target's rank."""
    shown = min(int(options.n_results), len(record.get("results", [])))
    text, combiner = str(record.get("text", "")), str(record.get("combiner", ""))
    sha = (record.get("checkpoint_sha256") or "unknown")[:10]
    encoder, gallery = str(record.get("encoder", "")), str(record.get("gallery", ""))
    rank = rank_sentence(record, shown)
    source = f"Encoder {encoder} ({sha}), gallery {gallery}."
    md_caption = " ".join(
        x
        for x in (
            f"Reference → {smart_quotes(text)} → top-{shown} results ({combiner} combiner).",
            rank,
            source,
        )
        if x
    )
    md = f"![{text}]({stem}.png)\n\n*{md_caption}*\n"
    tex_caption = " ".join(
        x
        for x in (
            f"Reference $\\rightarrow$ {latex_quoted(text)} $\\rightarrow$ top-{shown} results "
            f"({latex_escape(combiner)} combiner).",
            latex_escape(rank),
            latex_escape(source),
        )
        if x
    )
    double = options.preset == "double"
    env, width = ("figure*", r"\textwidth") if double else ("figure", r"\columnwidth")
    tex = (
        f"\\begin{{{env}}}[t]\n  \\centering\n"
        f"  \\includegraphics[width={width}]{{{stem}.pdf}}\n"
        f"  \\caption{{{tex_caption}}}\n"
        f"  \\label{{fig:{slugify(str(record.get('id', 'example')))}}}\n\\end{{{env}}}\n"
    )
    return md, tex


# ------------------------------------------------------------------------------------------- zip
def write_export_zip(
    entries: Sequence[tuple[dict[str, Any], Figure]],
    out_path: str | Path,
    options: FigureOptions = FigureOptions(),
) -> Path:
    """A ZIP holding, per example, ``<n>-<slug>/``: figure.pdf, figure.svg, figure.png (300 dpi),
    record.json (with the figure options) and snippet.md / snippet.tex."""
    if not entries:
        raise ValueError("nothing to export: pin at least one example")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(out_path.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, (record, fig) in enumerate(entries, start=1):
            folder = f"{i:02d}-{slugify(str(record.get('text') or record.get('id')))}"
            for name, blob in figure_files(fig).items():
                zf.writestr(f"{folder}/{name}", blob)
            zf.writestr(
                f"{folder}/record.json",
                json.dumps({**record, "figure": options.as_dict()}, indent=2, default=str),
            )
            md, tex = example_snippets(record, options)
            zf.writestr(f"{folder}/snippet.md", md)
            zf.writestr(f"{folder}/snippet.tex", tex)
    tmp.replace(out_path)
    return out_path

