"""The bundled demo's data, written by the jobs: gallery -> map -> mini-benchmark queries -> evaluations ->
WebVid filter run.

    python -m precompute.demo --data data                          # what `make run` builds on first start
    python -m precompute.demo --data /data --encoder blip --weights webvid-covr   # ahead of a Space's start

The app only reads folders: ``app.py`` hands a :class:`DemoJobs` to ``explorer.bootstrap.run_startup``, which
runs these steps (with their progress in the page) once the encoder is loaded. Running this module ahead of
time into the app's data folder makes the first start a pure read. Every step keeps what is already complete
there: a demo gallery built by the same encoder and weights, its map, an evaluation, a filter run. A cached
demo gallery of another encoder version or weights is rebuilt, and its mini-benchmark folders with it.

Folders under ``--data``: ``galleries/demo-<encoder>/`` (with ``umap.parquet``),
``queries/mini-<cirr|webvid>-<encoder>/``, ``evaluations/mini-<cirr|webvid>-<encoder>/`` and
``webvid_filter/demo/``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from covr_core.data_layout import (
    DEMO_FILTER_RUN,
    EVALUATIONS,
    FILTER_RUNS,
    GALLERIES,
    MINI_BENCHMARK_KINDS,
    MINI_CLEANVID_MAP,
    MINI_WEBVID_CSV,
    QUERIES,
    demo_gallery_name,
    mini_benchmark_name,
)
from covr_core.encoder import Encoder
from covr_core.evaluation_folder import Evaluation
from covr_core.filter_run import FilterRun
from covr_core.gallery import Gallery, GalleryError

from . import evaluate, filter_webvid, queries, umap
from .engine import common as C
from .engine.options import ASSETS_DIR
from .gallery import build_demo_gallery

log = logging.getLogger(__name__)

#: ``report(message, fraction)``: progress of a step (the page's progress bar).
Report = Callable[[str, float], None]


@dataclass(frozen=True)
class DemoJobs:
    """The demo jobs for one data folder; each method is one idempotent step of the chain."""

    data_dir: Path
    assets: Path = ASSETS_DIR

    def gallery_folder(self, encoder: Encoder) -> Path:
        """``<data>/galleries/demo-<encoder name>``."""
        return Path(self.data_dir) / GALLERIES / demo_gallery_name(encoder.info.name)

    def gallery(self, encoder: Encoder, report: Report | None = None) -> Path:
        """Build the demo gallery with ``encoder`` once (rebuilt, with its mini benchmarks, when the cached one
        was made by another encoder version or weights); returns its folder."""
        folder = self.gallery_folder(encoder)
        if (folder / "manifest.json").exists():
            try:
                Gallery.load(folder, expected=encoder.info)
                return folder
            except GalleryError as exc:
                log.warning("rebuilding the cached demo gallery: %s", exc)
                self._remove_stale(folder, encoder)
        t0 = time.perf_counter()
        log.info("building the demo gallery in %s", folder)

        def progress(done: int, total: int) -> None:
            if report is not None and total:
                report(f"encoding the bundled demo media: {done}/{total} items", done / total)
            if total and (done == total or done % 16 == 0):
                log.info("demo gallery: %d/%d items encoded", done, total)

        build_demo_gallery(encoder, folder, assets=self.assets, on_progress=progress)
        log.info("demo gallery built in %.1f s", time.perf_counter() - t0)
        return folder

    def _remove_stale(self, folder: Path, encoder: Encoder) -> None:
        """Remove an out-of-date demo gallery and the mini-benchmark folders computed from it."""
        shutil.rmtree(folder)
        for sub in (QUERIES, EVALUATIONS):
            for stale in (Path(self.data_dir) / sub).glob(mini_benchmark_name("*", encoder.info.name) + "*"):
                shutil.rmtree(stale, ignore_errors=True)

    def map(self, encoder: Encoder) -> str:
        """The demo gallery's 2-D map (``umap.parquet``) once; returns what was done."""
        folder = self.gallery_folder(encoder)
        if (folder / "umap.parquet").exists():
            return "cached"
        t0 = time.perf_counter()
        umap.run(gallery=str(folder))
        return f"computed in {time.perf_counter() - t0:.0f} s"

    def benchmarks(self, encoder: Encoder, report: Report | None = None) -> list[str]:
        """Embed and evaluate the bundled mini benchmark (CIRR and WebVid-CoVR format) on the demo gallery once;
        returns the names of the evaluations there. A benchmark that fails is logged and left out."""
        info = encoder.info
        bench = Path(self.assets) / "benchmark"
        plans: dict[str, dict[str, Any]] = {
            "cirr": dict(dataset="cirr", root=str(bench / "cirr"), split="demo"),
            "webvid": dict(dataset="webvid", csv=str(Path(self.assets) / MINI_WEBVID_CSV),
                           video_root=str(self.assets)),
        }
        done = []
        for i, kind in enumerate(MINI_BENCHMARK_KINDS):
            name = mini_benchmark_name(kind, info.name)
            out = Path(self.data_dir) / EVALUATIONS / name
            if Evaluation.exists(out):
                done.append(name)
                continue
            if report is not None:
                report(f"encoding the {kind.upper()}-format queries", i / len(MINI_BENCHMARK_KINDS))
            qdir = Path(self.data_dir) / QUERIES / name
            try:
                summary = queries.run(out=qdir, encoder=encoder, device=info.device, dtype="float32",
                                      batch_size=16, argv=["(demo)"], **plans[kind])
                if not summary.complete:
                    raise RuntimeError(summary.line())
                evaluate.run(queries=qdir, gallery=self.gallery_folder(encoder), benchmark=kind, out=out, top_k=12)
                done.append(name)
            except Exception as exc:  # noqa: BLE001 - optional: the app lists fewer benchmarks
                log.warning("mini benchmark %s not evaluated: %s", name, exc)
        return done

    def filter_run(self) -> Path | None:
        """The WebVid filter on the bundled mini WebVid-CoVR CSV and CleanVid-format map once, into
        ``<data>/webvid_filter/demo``; None without those assets."""
        out = Path(self.data_dir) / FILTER_RUNS / DEMO_FILTER_RUN
        if FilterRun.exists(out):
            return out
        csv, video_map = Path(self.assets) / MINI_WEBVID_CSV, Path(self.assets) / MINI_CLEANVID_MAP
        if not (csv.exists() and video_map.exists()):
            return None
        filter_webvid.run(csv=[str(csv)], map=str(video_map), out=str(out))
        return out

    def run_all(self, encoder: Encoder, report: Report | None = None) -> dict[str, Any]:
        """Every step in order (the command line's job); returns what each produced."""
        gallery = self.gallery(encoder, report)
        return {
            "gallery": str(gallery),
            "map": self.map(encoder),
            "benchmarks": self.benchmarks(encoder, report),
            "filter": str(self.filter_run() or "no demo assets"),
        }


# ------------------------------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags of ``python -m precompute.demo``."""
    p = C.make_parser("python -m precompute.demo", __doc__)
    p.add_argument("--data", default="data", help="the app's data folder (COVR_DATA_DIR of app.py)")
    p.add_argument("--assets", default=str(ASSETS_DIR), help="the bundled assets (gallery.csv, benchmark/)")
    C.add_encoder_args(p)
    C.add_log_arg(p)
    return p.parse_args(argv)


def _job(args: argparse.Namespace) -> dict[str, Any]:
    device = C.resolve_device(args.device)
    encoder = C.create_job_encoder(args.encoder, args.checkpoint, args.blip_source, device, args.dtype, args.weights)
    return DemoJobs(Path(args.data), Path(args.assets)).run_all(encoder)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m precompute.demo``: build the demo folders of the app's data folder."""
    return C.run_main(parse_args, _job, argv)


if __name__ == "__main__":
    raise SystemExit(main())
