"""Plotly figures of the explorer (weights bar, Figure 1 histograms, ternary scatter, map JSON)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from covr_core.types import WEIGHT_NAMES
from explorer.weights import WeightHistograms, ternary_coordinates

#: One colour per weight, used everywhere (bar chart, histograms, report PNG).
WEIGHT_COLOURS: dict[str, str] = {"w_mm": "#4C72B0", "w_img": "#DD8452", "w_txt": "#55A868"}
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


def ternary_figure(df: pd.DataFrame, success_col: str = "success", label_col: str = "query_id") -> go.Figure:
    """Ternary scatter of (w_mm, w_img, w_txt), coloured by success (True/False) when known."""
    xy = ternary_coordinates(df[list(WEIGHT_NAMES)].to_numpy(dtype=float)) if len(df) else np.zeros((0, 2))
    fig = go.Figure()
    h = np.sqrt(3) / 2
    fig.add_scatter(
        x=[0, 1, 0.5, 0],
        y=[0, 0, h, 0],
        mode="lines",
        line=dict(color="#888"),
        hoverinfo="skip",
        showlegend=False,
    )
    for x, y, t in [(0.5, h + 0.05, "w_mm"), (-0.05, -0.05, "w_img"), (1.05, -0.05, "w_txt")]:
        fig.add_annotation(x=x, y=y, text=t, showarrow=False)
    groups: list[tuple[str, np.ndarray, str]]
    if success_col in df.columns:
        ok = df[success_col].astype(bool).to_numpy()
        groups = [("success", ok, "#2ca02c"), ("failure", ~ok, "#d62728")]
    else:
        groups = [("queries", np.ones(len(df), bool), "#4C72B0")]
    labels = (
        df[label_col].astype(str).to_numpy() if label_col in df.columns else np.arange(len(df)).astype(str)
    )
    for name, mask, colour in groups:
        w = df[list(WEIGHT_NAMES)].to_numpy(dtype=float)[mask]
        hover = [
            f"{lab}<br>w_mm={a:.2f} w_img={b:.2f} w_txt={c:.2f}" for lab, (a, b, c) in zip(labels[mask], w)
        ]
        fig.add_scatter(
            x=xy[mask, 0],
            y=xy[mask, 1],
            mode="markers",
            name=name,
            text=hover,
            hoverinfo="text",
            marker=dict(color=colour, size=6, opacity=0.7),
        )
    fig.update_xaxes(visible=False, range=[-0.1, 1.1])
    fig.update_yaxes(visible=False, range=[-0.1, 1.0], scaleanchor="x")
    return _layout(fig, "ternary plot of the weights", height=360)


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
