"""WebVid filter view: the filter job's Table-4 statistics and example pairs (middle frames) per rule.

Reads ``precompute.filter_webvid`` output folders (``stats.json`` + ``<stem>_<rule>.csv``) under
``<data>/webvid_filter/``; on first use it runs the filter on the bundled mini WebVid-CoVR CSV and
CleanVid-format map (``assets/benchmark/webvid/``) into ``<data>/webvid_filter/demo/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
DEMO_CSV = ASSETS_DIR / "benchmark" / "webvid" / "webvid-covr_demo.csv"
DEMO_MAP = ASSETS_DIR / "benchmark" / "webvid" / "cleanvid_map_demo.csv"
EXAMPLE_RULES = ("same author", "same category", "neither")


@dataclass
class FilterReport:
    """Statistics of one filter run plus, per rule, example rows (``pth1, pth2, txt1, txt2, edit``)."""

    folder: Path
    table: pd.DataFrame
    markdown: str = ""
    examples: dict[str, pd.DataFrame] = field(default_factory=dict)
    video_roots: list[Path] = field(default_factory=list)


def ensure_demo_filter(data_dir: str | Path) -> Path | None:
    """Run the filter job on the bundled mini benchmark once; returns its folder (None without the assets)."""
    out = Path(data_dir) / "webvid_filter" / "demo"
    if (out / "stats.json").exists():
        return out
    if not (DEMO_CSV.exists() and DEMO_MAP.exists()):
        return None
    from precompute.filter_webvid import run

    run(csv=[str(DEMO_CSV)], map=str(DEMO_MAP), out=str(out))
    return out


def stats_table(stats: dict[str, Any]) -> pd.DataFrame:
    """``stats.json``'s ``stats`` as the study's Table 4 (dataset, target videos, triplets, query videos)."""
    labels = {
        "all": "WebVid-CoVR ({})",
        "same-author": "same author",
        "same-category": "same category",
        "same-author-or-category": 'same author or category ("F")',
    }
    rows = []
    for name, per in stats.items():
        for rule, label in labels.items():
            if rule in per:
                s = per[rule]
                rows.append(
                    {
                        "dataset": label.format(name),
                        "target videos": s["target_videos"],
                        "triplets": s["triplets"],
                        "query videos": s["query_videos"],
                    }
                )
    return pd.DataFrame(rows, columns=["dataset", "target videos", "triplets", "query videos"])


def load_filter_report(data_dir: str | Path, n_examples: int = 2) -> FilterReport | None:
    """The newest filter run under ``<data>/webvid_filter/`` (the bundled demo's when none), or None."""
    root = Path(data_dir) / "webvid_filter"
    runs = sorted(root.glob("*/stats.json"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    if not runs:
        try:
            folder = ensure_demo_filter(data_dir)
        except Exception as exc:  # noqa: BLE001 - optional view
            log.warning("WebVid filter on the bundled demo failed: %s", exc)
            folder = None
        if folder is None:
            return None
        runs = [folder / "stats.json"]
    folder = runs[-1].parent
    record = json.loads(runs[-1].read_text())
    md = (folder / "stats.md").read_text() if (folder / "stats.md").exists() else ""
    examples: dict[str, pd.DataFrame] = {}
    stems = list(record.get("stats", {}))
    if stems:
        stem = stems[0]
        author = _read(folder / f"{stem}_same-author.csv")
        category = _read(folder / f"{stem}_same-category.csv")
        either = _read(folder / f"{stem}_same-author-or-category.csv")
        examples["same author"] = author.head(n_examples)
        if not category.empty:
            examples["same category"] = category[
                ~category["pth1"]
                .add("|")
                .add(category["pth2"])
                .isin(author["pth1"].add("|").add(author["pth2"]))
            ].head(n_examples)
        original = DEMO_CSV if DEMO_CSV.stem == stem else None
        if original is not None and original.exists():
            allrows = _read(original)
            key = allrows["pth1"] + "|" + allrows["pth2"]
            examples["neither"] = allrows[~key.isin(either["pth1"] + "|" + either["pth2"])].head(n_examples)
    return FilterReport(
        folder=folder,
        table=stats_table(record.get("stats", {})),
        markdown=md,
        examples=examples,
        video_roots=[ASSETS_DIR, Path(data_dir) / "webvid"],
    )


def _read(path: Path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame(columns=["pth1", "pth2", "txt1", "txt2", "edit"])
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _video(roots: list[Path], pth: str) -> Path | None:
    from covr_core.datasets.webvid import webvid_video_path

    for root in roots:
        p = webvid_video_path(root, pth)
        if p.exists():
            return p
    return None


def pair_image(frame1: Image.Image, frame2: Image.Image, label: str = "", height: int = 160) -> Image.Image:
    """Two middle frames side by side (with an optional label underneath)."""

    def fit(im: Image.Image) -> Image.Image:
        im = im.convert("RGB")
        return im.resize((max(1, round(im.width * height / im.height)), height))

    a, b = fit(frame1), fit(frame2)
    out = Image.new("RGB", (a.width + b.width + 12, height + (26 if label else 0)), "white")
    out.paste(a, (0, 0))
    out.paste(b, (a.width + 12, 0))
    if label:
        ImageDraw.Draw(out).text((4, height + 6), label[:90], fill="black")
    return out


def filter_examples(report: FilterReport, cache_dir: str | Path) -> list[tuple[str, str]]:
    """Gallery value: one image per example pair (middle frames of ``pth1``, ``pth2``), captioned by rule."""
    from covr_core.media import MediaError, middle_frame

    cache_dir = Path(cache_dir) / "filter"
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for rule in EXAMPLE_RULES:
        for _, row in report.examples.get(rule, pd.DataFrame()).iterrows():
            v1, v2 = _video(report.video_roots, row["pth1"]), _video(report.video_roots, row["pth2"])
            if v1 is None or v2 is None:
                continue
            key = hashlib.sha1(f"v2|{rule}|{row['pth1']}|{row['pth2']}".encode()).hexdigest()[:16]
            path = cache_dir / f"{key}.png"
            if not path.exists():
                try:
                    pair_image(middle_frame(v1), middle_frame(v2)).save(path)
                except MediaError as exc:
                    log.warning("filter example %s not decodable: %s", row["pth1"], exc)
                    continue
            out.append((str(path), f"{rule}: “{row.get('txt1', '')}” | “{row.get('txt2', '')}”"))
    return out
