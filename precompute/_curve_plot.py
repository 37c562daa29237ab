"""Training-curve PNG of ``precompute.train_combiner``: loss per epoch and validation R@1 per epoch.

Uses matplotlib when it is installed; otherwise draws the same two panels with Pillow (a runtime
dependency already), so the plot never needs an extra package.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)


def save_curve(path: str | Path, epochs: Sequence[int], losses: Sequence[float], recalls: Sequence[float],
               best_epoch: int | None = None, title: str = "MLP combiner training") -> Path:
    """Write a two-panel PNG (train loss | val R@1) to ``path``; returns the path.

    ``losses[i]`` and ``recalls[i]`` belong to ``epochs[i]``; a loss may be NaN (epoch 0 = before training).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _save_with_pillow(path, list(epochs), list(losses), list(recalls), best_epoch, title)
        return path
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=100)
    a.plot(epochs, losses, marker="o", color="tab:blue")
    a.set(xlabel="epoch", ylabel="train loss", title="loss")
    b.plot(epochs, recalls, marker="o", color="tab:orange")
    b.set(xlabel="epoch", ylabel="val R@1 (%)", title="validation R@1")
    if best_epoch is not None:
        b.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch {best_epoch}")
        b.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _nice_range(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if v == v]  # drop NaN
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def _panel(draw, box: tuple[int, int, int, int], xs: list[int], ys: list[float], color: tuple[int, int, int],
           title: str, best: int | None) -> None:
    from PIL import ImageFont

    font = ImageFont.load_default()
    x0, y0, x1, y1 = box
    left, bottom = x0 + 48, y1 - 28
    right, top = x1 - 10, y0 + 22
    draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    draw.text((x0 + (x1 - x0) // 2 - 3 * len(title), y0 + 4), title, fill=(0, 0, 0), font=font)
    draw.text((right - 30, bottom + 15), "epoch", fill=(0, 0, 0), font=font)
    lo, hi = _nice_range(ys)
    xmin, xmax = (min(xs), max(xs)) if xs else (0, 1)
    xspan = max(xmax - xmin, 1)

    def px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - xmin) / xspan * (right - left), bottom - (y - lo) / (hi - lo) * (bottom - top))

    for frac in (0.0, 0.5, 1.0):
        v = lo + frac * (hi - lo)
        _, yy = px(xmin, v)
        draw.line([left - 4, yy, left, yy], fill=(0, 0, 0))
        draw.text((x0 + 2, yy - 6), f"{v:.3g}", fill=(0, 0, 0), font=font)
    for x in sorted(set(xs)):
        xx, _ = px(x, lo)
        draw.line([xx, bottom, xx, bottom + 4], fill=(0, 0, 0))
        if len(xs) <= 20 or x % 5 == 0:
            draw.text((xx - 3, bottom + 4), str(x), fill=(0, 0, 0), font=font)
    if best is not None and xs:
        xx, _ = px(best, lo)
        draw.line([xx, top, xx, bottom], fill=(150, 150, 150))
        draw.text((xx + 3, top + 3), f"best epoch {best}", fill=(110, 110, 110), font=font)
    pts = [px(x, y) for x, y in zip(xs, ys) if y == y]
    if len(pts) > 1:
        draw.line(pts, fill=color, width=2)
    for x, y in pts:
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)


def _save_with_pillow(path: Path, epochs: list[int], losses: list[float], recalls: list[float],
                      best: int | None, title: str) -> None:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (900, 360), "white")
    draw = ImageDraw.Draw(img)
    draw.text((10, 4), title, fill=(0, 0, 0))
    _panel(draw, (0, 20, 450, 360), epochs, losses, (31, 119, 180), "train loss", best)
    _panel(draw, (450, 20, 900, 360), epochs, recalls, (255, 127, 14), "validation R@1 (%)", best)
    img.save(path, format="PNG")
    log.debug("matplotlib not installed: drew %s with Pillow", path)
