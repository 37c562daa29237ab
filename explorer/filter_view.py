"""WebVid filter view: the filter job's Table-4 statistics and example pairs (middle frames) per rule.

Filter runs are ``precompute.filter_webvid`` output folders (``stats.json`` + ``<stem>_<rule>.csv``) at
``<data>/webvid_filter/<name>/`` (also ``--out <data>/webvid_filter`` itself, listed as ``webvid_filter``).
The bundled demo's run (the filter on ``assets/benchmark/webvid/``'s mini WebVid-CoVR CSV and CleanVid-format
map, written at start-up by ``precompute.demo`` into ``<data>/webvid_filter/demo/``) is labelled as such and
listed last. This module only reads.

Example frames need the videos: ``<webvid root>/<pth>.mp4`` with the root from ``--webvid-root`` /
``COVR_WEBVID_ROOT`` (default ``<data>/webvid``); the bundled demo's videos come from ``assets/``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

from covr_core.data_layout import DEMO_FILTER_RUN, FILTER_RUNS, MINI_WEBVID_CSV
from covr_core.datasets.webvid import webvid_video_path
from covr_core.filter_run import TABLE4_HEAD, FilterRun, Stats, table4
from covr_core.media import MediaError, middle_frame

log = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
DEMO_CSV = ASSETS_DIR / MINI_WEBVID_CSV
EXAMPLE_RULES = ("same author", "same category", "neither")
#: Environment variable of the WebVid video root (``app.py --webvid-root`` sets it).
WEBVID_ROOT_ENV = "COVR_WEBVID_ROOT"
DEMO_RUN = DEMO_FILTER_RUN
#: Rows of an input CSV read to find "neither" examples (bounded: the train CSV has 1.6M rows).
NEITHER_SCAN_ROWS = 20_000


@dataclass
class FilterReport:
    """Statistics of one filter run plus, per rule, example rows (``pth1, pth2, txt1, txt2, edit``)."""

    folder: Path
    table: pd.DataFrame
    examples: dict[str, pd.DataFrame] = field(default_factory=dict)
    video_roots: list[Path] = field(default_factory=list)
    name: str = ""
    is_demo: bool = False  #: the bundled mini benchmark's run (shown with that label)
    warnings: list[str] = field(default_factory=list)


def webvid_root(data_dir: str | Path) -> Path:
    """The folder holding WebVid videos as ``<root>/<pth>.mp4``: ``$COVR_WEBVID_ROOT`` or ``<data>/webvid``."""
    env = os.environ.get(WEBVID_ROOT_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else Path(data_dir).resolve() / "webvid"


def find_filter_runs(data_dir: str | Path) -> dict[str, Path]:
    """Filter runs under ``<data>/webvid_filter/`` (name -> folder, ``FilterRun.find``: ``<name>/`` and a run
    written straight into ``webvid_filter/``; hidden (temporary) folders are skipped); the demo run last."""
    runs = FilterRun.find(Path(data_dir) / FILTER_RUNS)
    return dict(sorted(runs.items(), key=lambda kv: kv[0] == DEMO_RUN))


def stats_table(stats: Stats) -> pd.DataFrame:
    """A filter run's ``stats`` as the study's Table 4 (dataset, target videos, triplets, query videos)."""
    return pd.DataFrame(table4(stats), columns=list(TABLE4_HEAD))


def load_filter_report(data_dir: str | Path, run: str | None = None, n_examples: int = 2) -> FilterReport | None:
    """One filter run (``run`` by name; default: the first non-demo run, else the bundled demo's), or None.

    Raises ``covr_core.filter_run.FilterRunError`` (a ``ValueError``) for a damaged run."""
    runs = find_filter_runs(data_dir)
    if not runs:
        return None
    if run is not None and run not in runs:
        raise KeyError(f"unknown filter run {run!r} (have {sorted(runs)})")
    name = run or next(iter(runs))
    folder = runs[name]
    filter_run = FilterRun.load(folder)
    is_demo = name == DEMO_RUN and DEMO_CSV.stem in filter_run.stats
    return FilterReport(
        folder=folder,
        table=stats_table(filter_run.stats),
        examples=_examples(filter_run, n_examples),
        video_roots=[ASSETS_DIR] if is_demo else [webvid_root(data_dir), ASSETS_DIR],
        name=name,
        is_demo=is_demo,
        warnings=filter_run.warnings,
    )


def _examples(filter_run: FilterRun, n: int) -> dict[str, pd.DataFrame]:
    """Up to ``n`` rows per rule of the run's first CSV; "neither" rows come from its input CSV when readable."""
    stems = list(filter_run.stats)
    if not stems:
        return {}
    stem = stems[0]
    author = _read(filter_run.rule_csv(stem, "same-author"))
    category = _read(filter_run.rule_csv(stem, "same-category"))
    either = _read(filter_run.rule_csv(stem, "same-author-or-category"))
    out = {"same author": author.head(n)}
    if not category.empty:
        key = category["pth1"] + "|" + category["pth2"]
        out["same category"] = category[~key.isin(author["pth1"] + "|" + author["pth2"])].head(n)
    inputs = filter_run.inputs or ([DEMO_CSV] if DEMO_CSV.stem == stem else [])
    original = next((p for p in inputs if p.stem == stem and p.is_file()), None)
    if original is not None:
        rows = pd.read_csv(original, dtype=str, keep_default_na=False, nrows=NEITHER_SCAN_ROWS)
        key = rows["pth1"] + "|" + rows["pth2"]
        out["neither"] = rows[~key.isin(either["pth1"] + "|" + either["pth2"])].head(n)
    return out


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _video(roots: list[Path], pth: str) -> Path | None:
    """The video of ``pth`` under the first root that has it; a ``pth`` leading out of its root (``..``, an
    absolute path, a symlink out) is never read: the report is data-folder content, not configuration."""
    for root in roots:
        p = webvid_video_path(root, pth)
        try:
            real, home = p.resolve(), Path(root).resolve()
        except (OSError, ValueError):
            continue
        if home in real.parents and real.is_file():
            return real
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


def filter_tab(data_dir: str | Path, cache_dir: str | Path, run: str | None = None) -> tuple[str, pd.DataFrame, list]:
    """(Markdown, Table 4, example pairs) of the Explore tab's WebVid filter view for one run."""
    rep = load_filter_report(data_dir, run)
    if rep is None:
        return ("No WebVid filter statistics yet: run `python -m precompute.filter_webvid ... --out "
                "<data>/webvid_filter/<name>`.", pd.DataFrame(), [])
    source = ("**the bundled mini demo** (16 triplets in `assets/benchmark/webvid`, not WebVid-CoVR): run "
              "`python -m precompute.filter_webvid ... --out <data>/webvid_filter/<name>` for the real Table 4"
              if rep.is_demo else f"filter run `{rep.name}`")
    examples = filter_examples(rep, cache_dir)
    md = (f"The study's filter (§4, Table 4) on {source}: triplets whose two videos share an author, share a "
          'category, or either ("F"). Below: example pairs per rule (the study\'s Figures 11–13).')
    if not examples and not rep.is_demo:
        log.info("filter run %s: no example videos under %s", rep.name, rep.video_roots[0])  # the page names no path
        md += ("\n\nNo example frames: the videos were not found in the WebVid folder (start the app "
               f"with `--webvid-root DIR` or set `{WEBVID_ROOT_ENV}` to the folder holding `<pth>.mp4`).")
    md += "".join(f"\n\n⚠️ {w}" for w in rep.warnings)
    return md, rep.table, examples
