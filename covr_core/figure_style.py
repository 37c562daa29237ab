"""One print-grade matplotlib style for every figure the project exports (the app's report examples,
``precompute``'s study figures such as Figure 1). Import it; do not copy it. (It lives in ``covr_core`` so that
both ``explorer`` and ``precompute`` can import it; it needs only matplotlib.)

* sizes at print size: a figure is made at its column width (``COLUMN_WIDTHS_IN``: single 3.3 in,
  double 6.9 in) and saved without cropping, so a 7 pt label stays 7 pt on paper;
* type: DejaVu Sans (shipped with matplotlib), never below ``MIN_FONT_PT`` = 7 pt;
* files: PDF (TrueType fonts embedded: ``pdf.fonttype`` 42), SVG (glyphs as paths: renders the same
  everywhere) and PNG at 300 dpi (``save_figure``);
* colours: ``SERIES_COLOURS`` for data series in order (e.g. the MLP training curves), ``WEIGHT_COLOURS``
  (the first three of them) for w_mm / w_img / w_txt (also used by the app's plots), ``GUIDE_COLOUR`` for
  reference lines, ``TARGET_COLOUR`` for the ground truth.

Usage::

    from covr_core.figure_style import new_figure, paper_style, save_figure, too_small_text
    with paper_style(8):
        fig = new_figure("single", height_in=1.6, font_pt=8)
        ax = fig.add_subplot()
        ...
    save_figure(fig, out_dir / "figure1")  # figure1.pdf, figure1.svg, figure1.png
    assert not too_small_text(fig)
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any, Iterator

from matplotlib.figure import Figure
from matplotlib.text import Text

from covr_core.types import WEIGHT_NAMES

COLUMN_WIDTHS_IN = {"single": 3.3, "double": 6.9}
MIN_FONT_PT = 7.0
DEFAULT_FONT_PT = 8.0
PNG_DPI = 300
FORMATS = ("pdf", "svg", "png")
FONT_FAMILY = "DejaVu Sans"
TARGET_COLOUR = "#2ca02c"
TEXT_COLOUR = "#222222"
GUIDE_COLOUR = "#8C8C8C"
#: Colours of a figure's data series, in order (seaborn's "deep" palette).
SERIES_COLOURS: tuple[str, ...] = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3")
WEIGHT_COLOURS: dict[str, str] = dict(zip(WEIGHT_NAMES, SERIES_COLOURS))


def check_font_pt(font_pt: float) -> float:
    """``font_pt`` as a float, or ``ValueError`` when it is below the legible minimum."""
    font_pt = float(font_pt)
    if font_pt < MIN_FONT_PT:
        raise ValueError(f"font size {font_pt:g} pt is below {MIN_FONT_PT:g} pt, too small to read in print")
    return font_pt


def rc_params(font_pt: float = DEFAULT_FONT_PT) -> dict[str, Any]:
    """The style as matplotlib rcParams (for ``matplotlib.rc_context``)."""
    font_pt = check_font_pt(font_pt)
    return {
        "font.family": "sans-serif",
        "font.sans-serif": [FONT_FAMILY],
        "font.size": font_pt,
        "axes.titlesize": font_pt,
        "axes.labelsize": font_pt,
        "xtick.labelsize": font_pt,
        "ytick.labelsize": font_pt,
        "legend.fontsize": font_pt,
        "figure.titlesize": font_pt + 1,
        "text.color": TEXT_COLOUR,
        "axes.labelcolor": TEXT_COLOUR,
        "axes.linewidth": 0.6,
        "lines.linewidth": 1.0,
        "xtick.major.width": 0.6,
        "ytick.major.width": 0.6,
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "svg.fonttype": "path",
        "savefig.dpi": PNG_DPI,
        "figure.dpi": 100,
    }


#: matplotlib's rcParams are global to the process and ``rc_context`` restores them on exit: two style blocks
#: overlapping in two threads (exports served at once) would undo each other's style. One block at a time.
_RC_LOCK = threading.RLock()


@contextlib.contextmanager
def paper_style(font_pt: float = DEFAULT_FONT_PT) -> Iterator[None]:
    """Build (or save) a figure inside this block so its axes, ticks and legends take the style's sizes.

    Thread-safe: concurrent blocks run one after the other (the style lives in matplotlib's global rcParams)."""
    import matplotlib

    with _RC_LOCK, matplotlib.rc_context(rc_params(font_pt)):
        yield


def figure_style_of(fig: Figure) -> contextlib.AbstractContextManager[None]:
    """:func:`paper_style` at the font size ``fig`` was made with (for saving or rendering it)."""
    return paper_style(getattr(fig, "_covr_font_pt", DEFAULT_FONT_PT))


def column_width(preset: str) -> float:
    """Width in inches of a preset ("single" or "double")."""
    if preset not in COLUMN_WIDTHS_IN:
        raise ValueError(f"preset must be one of {sorted(COLUMN_WIDTHS_IN)}, got {preset!r}")
    return COLUMN_WIDTHS_IN[preset]


def new_figure(preset: str, height_in: float, font_pt: float = DEFAULT_FONT_PT) -> Figure:
    """A figure at the preset's column width with the style applied (no pyplot: safe in server threads).

    Text created later picks the default size up from the figure's ``_covr_font_pt``; pass
    ``fontsize=font_pt`` (or use :func:`text_kwargs`) when adding text.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    with paper_style(font_pt):
        fig = Figure(figsize=(column_width(preset), float(height_in)), dpi=100)
    FigureCanvasAgg(fig)  # renderable (text extents) without pyplot
    fig._covr_font_pt = check_font_pt(font_pt)  # type: ignore[attr-defined]
    return fig


def text_kwargs(fig: Figure, **extra: Any) -> dict[str, Any]:
    """Keyword arguments that give text the figure's style (font family, size, colour)."""
    base = {
        "fontsize": getattr(fig, "_covr_font_pt", DEFAULT_FONT_PT),
        "family": FONT_FAMILY,
        "color": TEXT_COLOUR,
    }
    base.update(extra)
    return base


def visible_texts(fig: Figure) -> list[Text]:
    """Every visible, non-empty text artist of the figure (titles, labels, ticks, annotations)."""
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def too_small_text(fig: Figure, min_pt: float = MIN_FONT_PT) -> list[tuple[str, float]]:
    """(text, size in pt) of every visible text below ``min_pt`` at the figure's print size."""
    return [(t.get_text(), float(t.get_fontsize())) for t in visible_texts(fig) if t.get_fontsize() < min_pt]


def save_figure(fig: Figure, stem: str | Path, formats: tuple[str, ...] = FORMATS) -> dict[str, Path]:
    """Write ``stem.pdf`` / ``.svg`` / ``.png`` (PNG at ``PNG_DPI``) at the figure's exact size."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    with figure_style_of(fig):
        for fmt in formats:
            path = stem.with_suffix(f".{fmt}")
            fig.savefig(
                path,
                format=fmt,
                dpi=PNG_DPI if fmt == "png" else None,
                metadata={"Creator": "CoVR Explorer"} if fmt in ("pdf", "svg") else None,
            )
            out[fmt] = path
    return out
