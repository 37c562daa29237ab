"""Print-grade figures of the study report (matplotlib, PDF + PNG).

The style is the project's one print style, ``covr_core.figure_style`` (also used by the app's exported
example figures and, for the colours, its plotly charts). :func:`figure1` draws the study's Figure 1:
normalised histograms of w_mm, w_img and w_txt over a split, one colour each, with the mean of each weight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from covr_core.figure_style import COLUMN_WIDTHS_IN, WEIGHT_COLOURS, rc_params
from covr_core.types import WEIGHT_NAMES

#: matplotlib rcParams of every report figure: the shared print style (DejaVu Sans, >= 7 pt, fonts embedded),
#: without the top and right spines.
PAPER_STYLE: dict[str, object] = {**rc_params(8.0), "figure.dpi": 150, "figure.constrained_layout.use": True,
                                  "axes.spines.top": False,
                                  "axes.spines.right": False}
#: Width of one column of a two-column paper, inches (the shared single-column preset).
COLUMN_WIDTH_IN = COLUMN_WIDTHS_IN["single"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure1(weights: np.ndarray, out_stem: str | Path, title: str = "", bins: int = 40) -> list[Path]:
    """Write ``<out_stem>.pdf`` and ``.png``: normalised histograms of the three weights ([N, 3] rows).

    Returns the two paths. Frequencies are per weight (each histogram sums to 1), as in the study.
    """
    w = np.asarray(weights, dtype=float).reshape(-1, 3)
    w = w[np.isfinite(w).all(axis=1)]
    if not len(w):
        raise ValueError("Figure 1 needs at least one row of weights")
    plt = _pyplot()
    edges = np.linspace(0.0, 1.0, bins + 1)
    paths = []
    with plt.rc_context(PAPER_STYLE):
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.3))
        for j, name in enumerate(WEIGHT_NAMES):
            counts, _ = np.histogram(np.clip(w[:, j], 0.0, 1.0), bins=edges)
            freq = counts / max(1, counts.sum())
            ax.stairs(freq, edges, fill=True, alpha=0.45, color=WEIGHT_COLOURS[name])
            ax.stairs(freq, edges, color=WEIGHT_COLOURS[name],
                      label=f"$w_{{\\mathrm{{{name[2:]}}}}}$ (mean {w[:, j].mean():.2f})")
        ax.set(xlim=(0, 1), xlabel="weight", ylabel="normalised frequency")
        ax.legend(frameon=False, loc="upper right")
        if title:
            ax.set_title(title)
        for suffix in (".pdf", ".png"):
            path = Path(f"{out_stem}{suffix}")
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, metadata={"Creator": "CoVR Explorer"} if suffix == ".pdf" else None)
            paths.append(path)
        plt.close(fig)
    return paths


def weight_means(weights: np.ndarray) -> Mapping[str, float]:
    """Mean of each weight (the numbers the study quotes next to Figure 1)."""
    w = np.asarray(weights, dtype=float).reshape(-1, 3)
    return {name: float(w[:, j].mean()) for j, name in enumerate(WEIGHT_NAMES)}
