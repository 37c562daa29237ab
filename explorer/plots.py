"""Plotly figures of the explorer (weights bar, Figure 1 histograms, ternary scatter, map JSON)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from covr_core.types import WEIGHT_NAMES
from covr_core.figure_style import WEIGHT_COLOURS
from explorer.weights import WeightHistograms, jitter_on_simplex, same_weights_count

#: Map colours per category (kind/split) and overlays.
MAP_PALETTE = ["#8da0cb", "#fc8d62", "#66c2a5", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494", "#b3b3b3"]
OVERLAY_STYLE = {
    "query": {"color": "#d62728", "symbol": "star", "size": 18},
    "top-k": {"color": "#1f1f1f", "symbol": "circle-open", "size": 13},
    "target": {"color": "#2ca02c", "symbol": "diamond-open", "size": 17},
}


def _layout(fig: go.Figure, title: str, height: int = 260) -> go.Figure:
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=40, r=10, t=40, b=35),
        template="plotly_white",
        legend=dict(orientation="h", y=-0.2),
    )
    return fig


def weights_bar_figure(weights: np.ndarray | list[float] | None, combiner: str = "") -> go.Figure:
    """Small bar chart of the active combiner's (w_mm, w_img, w_txt)."""
    w = np.zeros(3) if weights is None else np.asarray(weights, dtype=float).reshape(3)
    fig = go.Figure(
        go.Bar(
            x=list(WEIGHT_NAMES),
            y=w,
            marker_color=[WEIGHT_COLOURS[n] for n in WEIGHT_NAMES],
            text=[f"{v:.2f}" for v in w],
            textposition="outside",
        )
    )
    fig.update_yaxes(range=[0, 1.3])
    return _layout(fig, f"weights ({combiner})" if combiner else "weights", height=220)


def weights_histogram_figure(hist: WeightHistograms, title: str = "") -> go.Figure:
    """The study's Figure 1: overlaid normalised histograms of w_mm, w_img, w_txt."""
    centres = (hist.edges[:-1] + hist.edges[1:]) / 2
    width = float(hist.edges[1] - hist.edges[0])
    fig = go.Figure()
    for name in WEIGHT_NAMES:
        fig.add_bar(
            x=centres,
            y=hist.freq[name],
            width=width,
            name=f"{name} (mean {hist.mean[name]:.2f})",
            marker_color=WEIGHT_COLOURS[name],
            opacity=0.6,
        )
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title="weight", range=[float(hist.edges[0]), float(hist.edges[-1])])
    fig.update_yaxes(title="normalised frequency")
    return _layout(fig, title or f"combiner weights over {hist.count} queries", height=340)


def ternary_figure(
    df: pd.DataFrame, success_col: str = "success", label_col: str = "query_id", spread: float = 0.015
) -> go.Figure:
    """Ternary scatter (plotly ``Scatterternary``) of (w_mm, w_img, w_txt), coloured by success at k.

    Points are jittered on the simplex (``weights.jitter_on_simplex``) so that queries with equal weights
    are all visible; the legend counts successes and failures; hovering a point gives its query, its true
    weights and how many queries share them.
    """
    w = df[list(WEIGHT_NAMES)].to_numpy(dtype=float) if len(df) else np.zeros((0, 3))
    shown = jitter_on_simplex(w, spread) if len(w) else w
    shared = same_weights_count(w) if len(w) else np.zeros(0, int)
    labels = (
        df[label_col].astype(str).to_numpy() if label_col in df.columns else np.arange(len(df)).astype(str)
    )
    if success_col in df.columns:
        ok = df[success_col].astype(bool).to_numpy()
        groups = [("success", ok, "#2ca02c"), ("failure", ~ok, "#d62728")]
    else:
        groups = [("queries", np.ones(len(df), bool), WEIGHT_COLOURS["w_mm"])]
    fig = go.Figure()
    for name, mask, colour in groups:
        hover = [
            f"query {lab}<br>w_mm={a:.3f} w_img={b:.3f} w_txt={c:.3f}"
            + (f"<br>{n} queries share these weights" if n > 1 else "")
            for lab, (a, b, c), n in zip(labels[mask], w[mask], shared[mask])
        ]
        fig.add_trace(
            go.Scatterternary(
                a=shown[mask, 0],
                b=shown[mask, 1],
                c=shown[mask, 2],
                mode="markers",
                name=f"{name} ({int(mask.sum())})",
                text=hover,
                hoverinfo="text",
                marker=dict(color=colour, size=7, opacity=0.55, line=dict(width=0.5, color="white")),
            )
        )
    axis = dict(min=0, linewidth=1, ticks="outside", tickformat=".1f")
    fig.update_layout(
        ternary=dict(
            sum=1,
            aaxis=dict(title="w_mm", **axis),
            baxis=dict(title="w_img", **axis),
            caxis=dict(title="w_txt", **axis),
        )
    )
    fixed = len(w) > 1 and bool((shared == len(w)).all())
    title = f"weights of {len(w)} queries" + (
        " (one fixed point, jittered to show every query)" if fixed else ""
    )
    return _layout(fig, title, height=380)


def map_figure_json(
    points: pd.DataFrame, overlays: list[dict[str, Any]] | None = None, title: str = ""
) -> dict[str, Any]:
    """Plotly figure (plain JSON dict) of a gallery map for the browser component.

    ``points`` has columns ``id, x, y, group, caption, thumb_url``; ``overlays`` is a list of
    ``{"name": "query"|"top-k"|"target", "x": [...], "y": [...], "ids": [...], "captions": [...],
    "thumb_urls": [...]}``. Every trace carries ``customdata = [[id, caption, thumb_url], ...]`` which the
    page's script shows on hover and sends back on click.
    """
    data: list[dict[str, Any]] = []
    for i, (group, sub) in enumerate(points.groupby("group", sort=True)):
        data.append(
            {
                "type": "scattergl" if len(points) > 5000 else "scatter",
                "mode": "markers",
                "name": str(group),
                "x": sub["x"].astype(float).round(4).tolist(),
                "y": sub["y"].astype(float).round(4).tolist(),
                "customdata": [
                    [a, b, c]
                    for a, b, c in zip(
                        sub["id"].astype(str), sub["caption"].astype(str), sub["thumb_url"].astype(str)
                    )
                ],
                "hoverinfo": "none",
                "marker": {"size": 8, "color": MAP_PALETTE[i % len(MAP_PALETTE)], "opacity": 0.8},
            }
        )
    for ov in overlays or []:
        style = OVERLAY_STYLE.get(ov["name"], OVERLAY_STYLE["top-k"])
        n = len(ov["x"])
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": ov["name"],
                "x": [float(v) for v in ov["x"]],
                "y": [float(v) for v in ov["y"]],
                "customdata": [
                    [a, b, c]
                    for a, b, c in zip(
                        ov.get("ids", [""] * n), ov.get("captions", [""] * n), ov.get("thumb_urls", [""] * n)
                    )
                ],
                "hoverinfo": "none",
                "marker": {
                    "size": style["size"],
                    "color": style["color"],
                    "symbol": style["symbol"],
                    "line": {"width": 2, "color": style["color"]},
                },
            }
        )
    layout = {
        "title": {"text": title},
        "height": 520,
        "margin": {"l": 20, "r": 20, "t": 40, "b": 20},
        "hovermode": "closest",
        "dragmode": "pan",
        "template": None,
        "xaxis": {"visible": False},
        "yaxis": {"visible": False},
        "legend": {"orientation": "h", "y": -0.02},
        "plot_bgcolor": "#ffffff",
    }
    return {"data": data, "layout": layout}
