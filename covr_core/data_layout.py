"""The app's data folder: where the jobs write and the app reads (the names both sides use, in one place).

``<data>/galleries/<name>/`` gallery folders (the bundled demo's: ``demo-<encoder>``), ``<data>/queries/<name>/``
and ``<data>/evaluations/<name>/`` (the bundled mini benchmark's: ``mini-<cirr|webvid>-<encoder>``),
``<data>/webvid_filter/<name>/`` WebVid filter runs (the bundled demo's: ``demo``).
"""

from __future__ import annotations

GALLERIES = "galleries"
QUERIES = "queries"
EVALUATIONS = "evaluations"
FILTER_RUNS = "webvid_filter"
#: the filter run on the bundled mini WebVid-CoVR CSV
DEMO_FILTER_RUN = "demo"
#: the formats of the bundled mini benchmark (``assets/benchmark/<kind>``)
MINI_BENCHMARK_KINDS = ("cirr", "webvid")
#: the bundled mini WebVid-CoVR CSV and its CleanVid-format map, relative to the assets folder
MINI_WEBVID_CSV = "benchmark/webvid/webvid-covr_demo.csv"
MINI_CLEANVID_MAP = "benchmark/webvid/cleanvid_map_demo.csv"


def demo_gallery_name(encoder_name: str) -> str:
    """Name of the bundled demo gallery built by the encoder ``encoder_name``."""
    return f"demo-{encoder_name}"


def is_demo_gallery(name: str) -> bool:
    """True for a bundled demo gallery's name."""
    return name.startswith("demo-")


def mini_benchmark_name(kind: str, encoder_name: str) -> str:
    """Name of the queries and evaluation folders of the bundled mini benchmark ``kind`` for ``encoder_name``."""
    return f"mini-{kind}-{encoder_name}"
