"""Training-curve figure of ``precompute.train_combiner``: train loss and validation R@1 per epoch.

Plain matplotlib (object API, no pyplot: safe in threads and without a display). :func:`curve_figure`
builds the figure and :func:`save_curve` writes it as PNG, so a shared print style can wrap the first
(an ``rc_context`` around it) without touching the plot itself.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

LOSS_COLOUR = "tab:blue"
RECALL_COLOUR = "tab:orange"
BEST_COLOUR = "grey"
FIGSIZE_IN = (9.0, 3.5)
PNG_DPI = 100


def curve_figure(epochs: Sequence[int], losses: Sequence[float], recalls: Sequence[float],
                 best_epoch: int | None = None, title: str = "MLP combiner training") -> Figure:
    """Two panels, train loss | validation R@1 (%) per epoch, the best epoch marked on the second.

    ``losses[i]`` and ``recalls[i]`` belong to ``epochs[i]``; a NaN loss (epoch 0 = before training)
    is left out of the line.
    """
    if not len(epochs) == len(losses) == len(recalls):
        raise ValueError(f"epochs, losses and recalls differ in length: {len(epochs)}, {len(losses)}, "
                         f"{len(recalls)}")
    fig = Figure(figsize=FIGSIZE_IN, dpi=PNG_DPI)
    FigureCanvasAgg(fig)
    loss_ax, recall_ax = fig.subplots(1, 2, sharex=True)  # same epoch axis, though epoch 0 has no loss
    points = [(e, v) for e, v in zip(epochs, losses) if not math.isnan(v)]
    loss_ax.plot([e for e, _ in points], [v for _, v in points], marker="o", color=LOSS_COLOUR)
    loss_ax.set(xlabel="epoch", ylabel="train loss", title="loss")
    recall_ax.plot(list(epochs), list(recalls), marker="o", color=RECALL_COLOUR)
    recall_ax.set(xlabel="epoch", ylabel="val R@1 (%)", title="validation R@1")
    if best_epoch is not None:
        recall_ax.axvline(best_epoch, color=BEST_COLOUR, linestyle="--", label=f"best epoch {best_epoch}")
        recall_ax.legend(loc="lower right")
    for ax in (loss_ax, recall_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_curve(path: str | Path, epochs: Sequence[int], losses: Sequence[float], recalls: Sequence[float],
               best_epoch: int | None = None, title: str = "MLP combiner training") -> Path:
    """Write :func:`curve_figure` as a PNG to ``path`` (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    curve_figure(epochs, losses, recalls, best_epoch, title).savefig(path, format="png", dpi=PNG_DPI)
    return path
