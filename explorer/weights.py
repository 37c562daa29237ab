"""Weight analysis of the study (§3.3-3.4): histograms of w_mm/w_img/w_txt, ternary coordinates, extremes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from covr_core.types import WEIGHT_NAMES


@dataclass
class WeightHistograms:
    """Normalised histograms (frequencies sum to 1 per weight) over shared bin edges."""

    edges: np.ndarray  #: [bins + 1]
    freq: dict[str, np.ndarray]  #: weight name -> [bins]
    mean: dict[str, float]
    count: int


def has_weights(df: pd.DataFrame) -> bool:
    """True when ``df`` has the three weight columns with at least one finite row."""
    if df is None or df.empty or not all(c in df.columns for c in WEIGHT_NAMES):
        return False
    return bool(np.isfinite(df[list(WEIGHT_NAMES)].to_numpy(dtype=float)).all(axis=1).any())


def weight_histograms(
    df: pd.DataFrame, bins: int = 40, range_: tuple[float, float] = (0.0, 1.0)
) -> WeightHistograms:
    """The study's Figure 1: one normalised histogram per weight over the rows of ``df``."""
    if not has_weights(df):
        raise ValueError("no weights in this table (columns w_mm, w_img, w_txt)")
    w = df[list(WEIGHT_NAMES)].to_numpy(dtype=float)
    w = w[np.isfinite(w).all(axis=1)]
    edges = np.linspace(range_[0], range_[1], bins + 1)
    freq, mean = {}, {}
    for j, name in enumerate(WEIGHT_NAMES):
        counts, _ = np.histogram(np.clip(w[:, j], range_[0], range_[1]), bins=edges)
        freq[name] = counts / max(1, counts.sum())
        mean[name] = float(w[:, j].mean())
    return WeightHistograms(edges=edges, freq=freq, mean=mean, count=int(len(w)))


def ternary_coordinates(weights: np.ndarray) -> np.ndarray:
    """Map rows (w_mm, w_img, w_txt) on the simplex to 2-D points of an equilateral triangle.

    Corners: w_mm=1 -> (0.5, sqrt(3)/2) (top), w_img=1 -> (0, 0), w_txt=1 -> (1, 0).
    """
    w = np.asarray(weights, dtype=float).reshape(-1, 3)
    s = w.sum(axis=1, keepdims=True)
    s[s == 0] = 1.0
    w = w / s
    x = w[:, 2] + 0.5 * w[:, 0]
    y = (np.sqrt(3) / 2) * w[:, 0]
    return np.stack([x, y], axis=1)


def highest_weight_queries(df: pd.DataFrame, weight: str, n: int = 1) -> pd.DataFrame:
    """The ``n`` rows with the largest ``weight`` (study's Figures 8-10), highest first."""
    if weight not in WEIGHT_NAMES:
        raise ValueError(f"weight must be one of {WEIGHT_NAMES}, got {weight!r}")
    if not has_weights(df):
        raise ValueError("no weights in this table (columns w_mm, w_img, w_txt)")
    return df.sort_values(weight, ascending=False, kind="stable").head(n)


def weight_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std, min, max of each weight (one row per weight) for the page's table."""
    if not has_weights(df):
        return pd.DataFrame(columns=["weight", "mean", "std", "min", "max"])
    rows = []
    for name in WEIGHT_NAMES:
        v = df[name].astype(float)
        rows.append(
            {
                "weight": name,
                "mean": round(v.mean(), 4),
                "std": round(v.std(ddof=0), 4),
                "min": round(v.min(), 4),
                "max": round(v.max(), 4),
            }
        )
    return pd.DataFrame(rows)
