"""The demo jobs' chain (precompute.demo): what the app's start-up runs and ``python -m precompute.demo``
runs ahead of time: gallery -> map -> mini-benchmark queries -> evaluations -> WebVid filter run; each step
keeps what is complete, and a stale demo gallery is rebuilt with its mini-benchmark folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from covr_core.filter_run import FilterRun
from covr_core.gallery import Gallery
from precompute.demo import DemoJobs, parse_args

pytestmark = pytest.mark.slow  # embeds the bundled demo and fits a UMAP


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def test_chain_builds_every_demo_folder_once_and_rebuilds_a_stale_gallery(tiny_blip, tmp_path):
    data = tmp_path / "data"
    jobs = DemoJobs(data)
    name = tiny_blip.info.name
    progress: list[float] = []
    out = jobs.run_all(tiny_blip, report=lambda _message, fraction: progress.append(fraction))

    gallery = data / "galleries" / f"demo-{name}"
    assert out["gallery"] == str(gallery) and 1.0 in progress  # the gallery step reported its end
    assert len(Gallery.load(gallery, expected=tiny_blip.info)) == 64  # every row of assets/gallery.csv
    assert (gallery / "umap.parquet").is_file() and out["map"].startswith("computed")
    assert out["benchmarks"] == [f"mini-cirr-{name}", f"mini-webvid-{name}"]
    for bench in out["benchmarks"]:
        assert (data / "queries" / bench / "manifest.json").is_file()
        assert json.loads((data / "evaluations" / bench / "metrics.json").read_text())
    assert FilterRun.load(data / "webvid_filter" / "demo").stats["webvid-covr_demo"]["all"]["triplets"] == 16

    before = _mtimes(data)
    again = jobs.run_all(tiny_blip)
    assert again["map"] == "cached" and again["benchmarks"] == out["benchmarks"]
    assert _mtimes(data) == before  # nothing rewritten

    manifest = gallery / "manifest.json"  # a gallery of another encoder version: rebuilt, benchmarks dropped
    record = json.loads(manifest.read_text())
    record["encoder_version"] = "0.0-other"
    manifest.write_text(json.dumps(record))
    assert jobs.gallery(tiny_blip) == gallery
    assert Gallery.load(gallery, expected=tiny_blip.info).manifest["encoder_version"] != "0.0-other"
    assert not (data / "evaluations" / f"mini-cirr-{name}").exists()
    assert not (data / "queries" / f"mini-webvid-{name}").exists()
    assert jobs.benchmarks(tiny_blip) == out["benchmarks"]  # recomputed on the new gallery


def test_command_line_defaults():
    args = parse_args([])
    assert args.data == "data" and args.encoder == "auto" and Path(args.assets).name == "assets"
