"""Weight analysis of the study (§3.3-3.4): histograms of w_mm/w_img/w_txt, the ternary view's jitter and
overlap counts, extremes, and combiners that rank identically."""

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


def jitter_on_simplex(weights: np.ndarray, spread: float = 0.015, seed: int = 0) -> np.ndarray:
    """Rows (w_mm, w_img, w_txt) moved by a small fixed-seed random offset that keeps them on the simplex,
    so queries with equal weights (every query of a fixed combiner) show as a cloud instead of one dot.
    For drawing only: the hover text gives the true weights."""
    w = np.asarray(weights, dtype=float).reshape(-1, 3)
    noise = np.random.default_rng(seed).normal(0.0, spread, size=w.shape)
    noise -= noise.mean(axis=1, keepdims=True)  # stays on the plane w_mm + w_img + w_txt = 1
    out = np.clip(w + noise, 0.0, None)
    total = out.sum(axis=1, keepdims=True)
    total[total == 0] = 1.0
    return out / total


def same_weights_count(weights: np.ndarray, decimals: int = 3) -> np.ndarray:
    """For each row, how many rows have the same weights (rounded to ``decimals``)."""
    key = pd.Series([tuple(r) for r in np.round(np.asarray(weights, dtype=float).reshape(-1, 3), decimals)])
    return key.map(key.value_counts()).to_numpy()


def identical_combiners(per_query: pd.DataFrame) -> list[tuple[str, str]]:
    """Pairs of combiners that rank every query of an evaluation identically (same target rank and same
    stored top ids)."""
    names = list(dict.fromkeys(per_query["combiner"].astype(str)))
    ranked = {
        c: per_query[per_query["combiner"].astype(str) == c].set_index("query_id").sort_index() for c in names
    }
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ra, rb = ranked[a], ranked[b]
            if len(ra) != len(rb) or not ra.index.equals(rb.index):
                continue
            same_rank = (ra["rank"].astype("Int64").fillna(-1) == rb["rank"].astype("Int64").fillna(-1)).all()
            same_top = all(list(x) == list(y) for x, y in zip(ra["top_ids"], rb["top_ids"]))
            if same_rank and same_top:
                pairs.append((a, b))
    return pairs


def identical_note(pairs: list[tuple[str, str]], encoder_info: object) -> str:
    """A sentence per pair of identical combiners, with the reason when the encoder explains it."""
    if not pairs:
        return ""
    fused = bool(getattr(encoder_info, "fused", True))
    name = getattr(encoder_info, "name", "this")
    lines = []
    for a, b in pairs:
        why = (
            f"the {name} encoder has no fused image+text branch: its f_mm is computed from f_img and f_txt "
            f"({getattr(encoder_info, 'note', '')}), so {a}'s and {b}'s queries can point the same way"
            if not fused
            else "their query vectors point the same way on this data (e.g. f_mm ≈ (f_img + f_txt) direction)"
        )
        lines.append(f"**{a} and {b} rank every query of this run identically**: {why}.")
    return "\n\n".join(lines)


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
