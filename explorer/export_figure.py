"""The report figure of one query, drawn with matplotlib at print size (covr_core.figure_style).

Layout (the study's Figures 6-10): the modification text in typographic quotes over an arrow from the
reference to the top results; the target framed in green; video results (and a video reference) drawn
with film-strip edges; under each result its rank, and on request its full id (wrapped, never cut) and
score. Options (:class:`FigureOptions`): column preset, number of results, font size (>= 7 pt), ids,
scores, title.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle
from PIL import Image, ImageOps

from covr_core.figure_style import (
    COLUMN_WIDTHS_IN,
    PNG_DPI,
    TARGET_COLOUR,
    check_font_pt,
    column_width,
    new_figure,
    text_kwargs,
)

MAX_RESULTS = 10
MAX_TITLE_CHARS = 200
MARGIN_IN = 0.03
GAP_IN = 0.05
ARROW_MIN_IN = 0.35
#: Average glyph width of DejaVu Sans relative to the font size (for wrapping before drawing).
GLYPH_EM = 0.58
LINE_SPACING = 1.25


@dataclass(frozen=True)
class FigureOptions:
    """What the exported figure shows."""

    preset: str = "single"  #: "single" (3.3 in) or "double" (6.9 in) column
    n_results: int = 4
    font_pt: float = 8.0
    show_ids: bool = False
    show_scores: bool = False
    title: str = ""

    def __post_init__(self) -> None:
        column_width(self.preset)
        check_font_pt(self.font_pt)
        if self.font_pt > 14:
            raise ValueError("font size must be at most 14 pt")
        if not 1 <= int(self.n_results) <= MAX_RESULTS:
            raise ValueError(f"number of results must be between 1 and {MAX_RESULTS}")
        if len(self.title) > MAX_TITLE_CHARS:
            raise ValueError(f"the title is too long (at most {MAX_TITLE_CHARS} characters)")

    def as_dict(self) -> dict:
        """JSON-able form (recorded next to the exported files)."""
        return {
            "preset": self.preset,
            "width_in": COLUMN_WIDTHS_IN[self.preset],
            "n_results": int(self.n_results),
            "font_pt": float(self.font_pt),
            "show_ids": bool(self.show_ids),
            "show_scores": bool(self.show_scores),
            "title": self.title,
        }


@dataclass
class Panel:
    """One picture of the figure: the reference or a result."""

    image: Image.Image
    is_video: bool = False
    rank: int | None = None  #: None for the reference
    item_id: str = ""
    score: float | None = None
    is_target: bool = False


def unquoted(text: str) -> str:
    """The text on one line, without one pair of quotes around all of it (they are added back)."""
    body = " ".join(str(text).split())
    if len(body) >= 2 and body[0] in '"“' and body[-1] in '"”':
        body = body[1:-1].strip()
    return body


def smart_quotes(text: str) -> str:
    """The text in typographic double quotes. Straight quotes inside become typographic single quotes
    (quotes nested in quotes), apostrophes become ’: ``say "hi"`` -> ``“say ‘hi’”``."""
    body = unquoted(text)
    out = []
    for i, ch in enumerate(body):
        prev = body[i - 1] if i else " "
        opening = prev.isspace() or prev in "([{—–-/"
        if ch in "\"'“”‘’":
            out.append("‘" if opening and ch not in "”’" else "’")
        else:
            out.append(ch)
    return "“" + "".join(out) + "”"


def _mpl_safe(text: str) -> str:
    """User text drawn literally (a ``$`` would start matplotlib's mathtext)."""
    return text.replace("$", r"\$")


def _chars_per_line(width_in: float, font_pt: float) -> int:
    return max(4, int(width_in * 72 / (font_pt * GLYPH_EM)))


def wrap_id(item_id: str, width_in: float, font_pt: float) -> list[str]:
    """A full id on as many lines as needed, broken after ``/``, ``_`` or ``-`` when possible."""
    limit = _chars_per_line(width_in, font_pt)
    tokens, cur = [], ""
    for ch in item_id:
        cur += ch
        if ch in "/_-":
            tokens.append(cur)
            cur = ""
    if cur:
        tokens.append(cur)
    lines, line = [], ""
    for tok in tokens:
        while len(tok) > limit:  # a token longer than a line: hard break
            if line:
                lines.append(line)
                line = ""
            lines.append(tok[:limit])
            tok = tok[limit:]
        if len(line) + len(tok) > limit and line:
            lines.append(line)
            line = tok
        else:
            line += tok
    if line:
        lines.append(line)
    return lines or [""]


def _draw_picture(ax, p: Panel, pixels: int) -> tuple[float, float, float, float]:
    """The picture fitted into the unit square (video: between film-strip bands); returns its frame
    (x0, y0, x1, y1) in axes units, bands included."""
    img = p.image.convert("RGB")
    band = 0.13 if p.is_video else 0.0
    aspect = img.width / max(img.height, 1)
    w, h = (1.0, 1.0 / aspect) if aspect >= 1 else (aspect, 1.0)
    scale = min(1.0, (1.0 - 2 * band) / h)  # a video leaves room for its bands
    w, h = w * scale, h * scale
    x0, y0 = (1 - w) / 2, (1 - h) / 2
    # resampled once to its printed size at PNG_DPI (never cropped); drawn as is, so the PDF and SVG embed
    # exactly these pixels instead of resampling them again
    size = max(8, round(pixels * max(w, h)))
    fitted = ImageOps.contain(img, (size, size), Image.Resampling.LANCZOS)
    ax.imshow(np.asarray(fitted), extent=(x0, x0 + w, y0, y0 + h), interpolation="none")
    if p.is_video:
        _film_strip(ax, x0, y0 - band, w, band)
        _film_strip(ax, x0, y0 + h, w, band)
    return x0, y0 - band, x0 + w, y0 + h + band


def _film_strip(ax, x0: float, y0: float, w: float, band: float) -> None:
    """A black band with white sprocket holes (above and below a video's picture)."""
    ax.add_patch(Rectangle((x0, y0), w, band, facecolor="black", edgecolor="none", zorder=3))
    holes = max(3, int(round(w * 8)))
    for i in range(holes):
        hx = x0 + (i + 0.5) * w / holes - 0.025
        ax.add_patch(
            Rectangle((hx, y0 + band * 0.3), 0.05, band * 0.4, facecolor="white", edgecolor="none", zorder=4)
        )


def _caption_lines(p: Panel, options: FigureOptions, panel_in: float) -> list[str]:
    if p.rank is None:
        first = "Reference" + (" video" if p.is_video else "")
    else:
        first = f"{p.rank}"
        if p.is_target:  # "3 (target)", or "3 ✓" when the words do not fit under a small panel
            wide = f"{p.rank} (target)"
            fits = len(wide) * options.font_pt * GLYPH_EM / 72 <= panel_in + GAP_IN
            first = wide if fits else f"{p.rank} ✓"
    lines = [first]
    if options.show_ids and p.item_id:
        lines += wrap_id(p.item_id, panel_in, options.font_pt)
    if options.show_scores and p.score is not None:
        lines.append(f"{p.score:.3f}")
    return lines


def render_example(reference: Panel, text: str, results: Sequence[Panel], options: FigureOptions) -> Figure:
    """The figure: reference -> arrow under the quoted text -> the top ``options.n_results`` results."""
    results = list(results)[: int(options.n_results)]
    n = len(results)
    font = options.font_pt
    line_in = font * LINE_SPACING / 72
    width = column_width(options.preset)
    arrow_in = max(ARROW_MIN_IN, width * 0.08)
    inner = width - 2 * MARGIN_IN - arrow_in - GAP_IN * (n + 1)
    panel_in = inner / (n + 1)
    quote = smart_quotes(text)
    quote_lines = textwrap.wrap(quote, _chars_per_line(width - 2 * MARGIN_IN, font)) or [quote]
    title_lines = (
        textwrap.wrap(options.title, _chars_per_line(width - 2 * MARGIN_IN, font + 1))
        if options.title
        else []
    )
    captions = [_caption_lines(p, options, panel_in) for p in [reference, *results]]
    caption_rows = max(len(c) for c in captions)
    title_h = len(title_lines) * (font + 1) * LINE_SPACING / 72 + (0.04 if title_lines else 0)
    quote_h = len(quote_lines) * line_in + 0.04
    caption_h = caption_rows * line_in + 0.03
    height = MARGIN_IN + title_h + quote_h + panel_in + caption_h + MARGIN_IN
    fig = new_figure(options.preset, height, font)

    def box(x_in: float, y_top_in: float, w_in: float, h_in: float) -> list[float]:
        return [x_in / width, 1 - (y_top_in + h_in) / height, w_in / width, h_in / height]

    y = MARGIN_IN
    for line in title_lines:
        fig.text(
            MARGIN_IN / width,
            1 - (y + (font + 1) * LINE_SPACING / 72 * 0.8) / height,
            _mpl_safe(line),
            **text_kwargs(fig, fontsize=font + 1, weight="bold"),
        )
        y += (font + 1) * LINE_SPACING / 72
    y += 0.04 if title_lines else 0
    for line in quote_lines:
        fig.text(0.5, 1 - (y + line_in * 0.8) / height, _mpl_safe(line), ha="center", **text_kwargs(fig))
        y += line_in
    y += 0.04
    panels_top = y
    x = MARGIN_IN
    for i, p in enumerate([reference, *results]):
        ax = fig.add_axes(box(x, panels_top, panel_in, panel_in))
        x0, y0, x1, y1 = _draw_picture(ax, p, round(panel_in * PNG_DPI))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_axis_off()
        if p.is_target:
            ax.add_patch(
                Rectangle(
                    (x0, y0),
                    x1 - x0,
                    y1 - y0,
                    fill=False,
                    edgecolor=TARGET_COLOUR,
                    linewidth=2.2,
                    clip_on=False,
                    zorder=5,
                )
            )
        cy = panels_top + panel_in + 0.03
        for j, line in enumerate(captions[i]):
            colour = TARGET_COLOUR if (p.is_target and j == 0) else None
            kw = text_kwargs(fig, **({"color": colour, "weight": "bold"} if colour else {}))
            fig.text(
                (x + panel_in / 2) / width,
                1 - (cy + line_in * 0.8) / height,
                _mpl_safe(line),
                ha="center",
                **kw,
            )
            cy += line_in
        x += panel_in + GAP_IN
        if i == 0:  # the arrow between the reference and the results
            mid = 1 - (panels_top + panel_in / 2) / height
            fig.add_artist(
                FancyArrowPatch(
                    ((x - GAP_IN / 2) / width, mid),
                    ((x + arrow_in - GAP_IN / 2) / width, mid),
                    transform=fig.transFigure,
                    arrowstyle="-|>",
                    mutation_scale=font * 1.4,
                    linewidth=1.0,
                    color="#222222",
                )
            )
            x += arrow_in
    return fig
