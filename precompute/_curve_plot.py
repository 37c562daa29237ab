"""Training-curve figure of ``precompute.train_combiner``: train loss and validation R@1 per epoch.

Drawn in the project's one print style, ``covr_core.figure_style`` (the style of the app's exported figures
and of the study report's Figure 1): a double-column figure at print size, DejaVu Sans, the shared series
colours, written as PNG (300 dpi), PDF and SVG by ``figure_style.save_figure``. Plain matplotlib object API
(no pyplot: safe in threads and without a display).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from covr_core.figure_style import (
    DEFAULT_FONT_PT,
    FORMATS,
    GUIDE_COLOUR,
    SERIES_COLOURS,
    new_figure,
    paper_style,
    save_figure,
)

LOSS_COLOUR, RECALL_COLOUR = SERIES_COLOURS[:2]
PRESET = "double"  #: figure_style column preset: two panels side by side
HEIGHT_IN = 2.4
MARKER_PT = 3.0


def curve_figure(epochs: Sequence[int], losses: Sequence[float], recalls: Sequence[float],
                 best_epoch: int | None = None, title: str = "MLP combiner training") -> Figure:
    """Two panels, train loss | validation R@1 (%) per epoch, the best epoch marked on the second.

    ``losses[i]`` and ``recalls[i]`` belong to ``epochs[i]``; a NaN loss (epoch 0 = before training)
    is left out of the line.
    """
    if not len(epochs) == len(losses) == len(recalls):
        raise ValueError(f"epochs, losses and recalls differ in length: {len(epochs)}, {len(losses)}, "
                         f"{len(recalls)}")
    fig = new_figure(PRESET, HEIGHT_IN, DEFAULT_FONT_PT)
    with paper_style(DEFAULT_FONT_PT):  # axes, ticks, legend and title take the style's sizes
        loss_ax, recall_ax = fig.subplots(1, 2, sharex=True)  # same epoch axis, though epoch 0 has no loss
        points = [(e, v) for e, v in zip(epochs, losses) if not math.isnan(v)]
        loss_ax.plot([e for e, _ in points], [v for _, v in points], marker="o", markersize=MARKER_PT,
                     color=LOSS_COLOUR)
        loss_ax.set(xlabel="epoch", ylabel="train loss", title="loss")
        recall_ax.plot(list(epochs), list(recalls), marker="o", markersize=MARKER_PT, color=RECALL_COLOUR)
        recall_ax.set(xlabel="epoch", ylabel="val R@1 (%)", title="validation R@1")
        if best_epoch is not None:
            recall_ax.axvline(best_epoch, color=GUIDE_COLOUR, linestyle="--",
                              label=f"best epoch {best_epoch}")
            recall_ax.legend(loc="lower right", frameon=False)
        for ax in (loss_ax, recall_ax):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        fig.suptitle(title)
        fig.tight_layout()
    return fig


def save_curve(path: str | Path, epochs: Sequence[int], losses: Sequence[float], recalls: Sequence[float],
               best_epoch: int | None = None, title: str = "MLP combiner training") -> dict[str, Path]:
    """Write :func:`curve_figure` to ``path`` (the ``.png``) and, with the same stem beside it, the PDF and
    the SVG (``figure_style.FORMATS``); folders are created. Returns the paths by format."""
    path = Path(path)
    if path.suffix != ".png":
        raise ValueError(f"the curve's path names its PNG file (….png), got {path.name}")
    return save_figure(curve_figure(epochs, losses, recalls, best_epoch, title), path, FORMATS)
