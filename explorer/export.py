"""Report export: the study's figure layout as a PNG, a JSON record, Markdown + LaTeX snippets, a ZIP."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from PIL import Image, ImageDraw, ImageFont

TARGET_COLOUR = (44, 160, 44)
TILE = 224
PAD = 16
ARROW_W = 200

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


@dataclass
class ResultTile:
    """One result shown in the figure: its image, a caption ("#1 · 0.83"), and whether it is the target."""

    image: Image.Image
    caption: str
    is_target: bool = False


def manifest_hash(manifest: dict[str, Any]) -> str:
    """sha256 of a gallery manifest in canonical JSON (sorted keys): identifies the exact gallery build."""
    blob = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # very old Pillow without a scalable default font
        return ImageFont.load_default()


def _fit(img: Image.Image, size: int = TILE) -> Image.Image:
    img = img.convert("RGB")
    img.thumbnail((size, size))
    canvas = Image.new("RGB", (size, size), (245, 245, 245))
    canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return canvas


def _wrap(text: str, font: Any, width: int, draw: ImageDraw.ImageDraw, max_lines: int = 6) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for word in words:
        trial = f"{cur} {word}".strip()
        if draw.textlength(trial, font=font) <= width or not cur:
            cur = trial
        else:
            lines.append(cur)
            cur = word
    if cur:
        lines.append(cur)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(".") + " …"
    return lines


def render_example_png(
    reference: Image.Image,
    text: str,
    results: Sequence[ResultTile],
    title: str = "",
    reference_caption: str = "reference",
) -> Image.Image:
    """Draw reference -> arrow labelled with the text -> results (the target outlined in green)."""
    font, small = _font(17), _font(14)
    n = len(results)
    width = PAD + TILE + ARROW_W + n * (TILE + PAD) + PAD
    top = PAD + (28 if title else 0)
    height = top + TILE + 34 + PAD
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    if title:
        draw.text((PAD, PAD // 2), title, fill="black", font=font)
    img.paste(_fit(reference), (PAD, top))
    draw.text((PAD, top + TILE + 8), reference_caption[:30], fill=(60, 60, 60), font=small)
    # arrow with the text above it
    ax0, ax1, ay = PAD + TILE + 14, PAD + TILE + ARROW_W - 14, top + TILE // 2 + 30
    draw.line([(ax0, ay), (ax1, ay)], fill="black", width=4)
    draw.polygon([(ax1 + 8, ay), (ax1 - 10, ay - 9), (ax1 - 10, ay + 9)], fill="black")
    lines = _wrap(f"“{text}”", small, ARROW_W - 24, draw)
    ty = ay - 12 - 18 * len(lines)
    for line in lines:
        draw.text((ax0, ty), line, fill="black", font=small)
        ty += 18
    x = PAD + TILE + ARROW_W
    for tile in results:
        img.paste(_fit(tile.image), (x, top))
        if tile.is_target:
            draw.rectangle([x - 4, top - 4, x + TILE + 3, top + TILE + 3], outline=TARGET_COLOUR, width=6)
        draw.text(
            (x, top + TILE + 8),
            tile.caption[:32],
            fill=TARGET_COLOUR if tile.is_target else (60, 60, 60),
            font=small,
        )
        x += TILE + PAD
    return img


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters in user text."""
    return "".join(_LATEX_SPECIALS.get(c, c) for c in text)


def slugify(text: str, max_len: int = 40) -> str:
    """File-system safe lower-case slug."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (slug[:max_len].strip("-")) or "example"


def example_snippets(record: dict[str, Any], png_name: str) -> tuple[str, str]:
    """Markdown and LaTeX snippets describing one example figure."""
    w = record.get("weights") or {}
    wtxt = ", ".join(f"{k}={float(v):.2f}" for k, v in w.items())
    rank = record.get("target_rank")
    rank_txt = (
        f"target at rank {rank}"
        if rank
        else "target unknown"
        if not record.get("target_id")
        else "target not in the shown results"
    )
    sha = (record.get("checkpoint_sha256") or "unknown")[:10]
    md = (
        f"![{record.get('text', '')}]({png_name})\n\n"
        f"*Reference → “{record.get('text', '')}” → top results with {record.get('combiner')} "
        f"({wtxt}); {rank_txt}. Encoder {record.get('encoder')} ({sha}), gallery {record.get('gallery')}.*\n"
    )
    label = slugify(str(record.get("id", "example")))
    tex = (
        "\\begin{figure}[t]\n  \\centering\n"
        f"  \\includegraphics[width=\\linewidth]{{{png_name}}}\n"
        f"  \\caption{{Reference $\\rightarrow$ "
        f"``{latex_escape(str(record.get('text', '')))}'' $\\rightarrow$ "
        f"top results with {latex_escape(str(record.get('combiner')))} ({latex_escape(wtxt)}); "
        f"{latex_escape(rank_txt)}. Encoder {latex_escape(str(record.get('encoder')))} "
        f"({latex_escape(sha)}).}}\n"
        f"  \\label{{fig:{label}}}\n\\end{{figure}}\n"
    )
    return md, tex


def write_export_zip(entries: Sequence[tuple[dict[str, Any], Image.Image]], out_path: str | Path) -> Path:
    """Write a ZIP holding, per example, ``<n>-<slug>/`` with figure.png, record.json, snippet.md/.tex."""
    if not entries:
        raise ValueError("nothing to export: pin at least one example")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(out_path.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, (record, png) in enumerate(entries, start=1):
            folder = f"{i:02d}-{slugify(str(record.get('text') or record.get('id')))}"
            buf = io.BytesIO()
            png.save(buf, format="PNG")
            zf.writestr(f"{folder}/figure.png", buf.getvalue())
            zf.writestr(f"{folder}/record.json", json.dumps(record, indent=2, default=str))
            md, tex = example_snippets(record, "figure.png")
            zf.writestr(f"{folder}/snippet.md", md)
            zf.writestr(f"{folder}/snippet.tex", tex)
    tmp.replace(out_path)
    return out_path
