"""Annotation readers for the CoVR benchmarks: CIRR (images) and WebVid-CoVR (videos)."""

from __future__ import annotations

from covr_core.datasets.cirr import (
    CirrDataset,
    CirrTriplet,
    find_cirr_annotation,
    load_cirr_split,
    load_cirr_triplets,
)
from covr_core.datasets.webvid import (
    iter_webvid_covr,
    parse_scores,
    read_webvid_covr,
    select_subset,
    webvid_video_id,
    webvid_video_int_id,
    webvid_video_key,
    webvid_video_path,
)

__all__ = [
    "CirrDataset",
    "CirrTriplet",
    "find_cirr_annotation",
    "load_cirr_split",
    "load_cirr_triplets",
    "iter_webvid_covr",
    "parse_scores",
    "read_webvid_covr",
    "select_subset",
    "webvid_video_id",
    "webvid_video_int_id",
    "webvid_video_key",
    "webvid_video_path",
]
