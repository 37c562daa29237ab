"""The built-in dataset specs: CIRR, WebVid-CoVR, a plain media folder and the bundled demo gallery."""

from __future__ import annotations

from pathlib import Path

from covr_core.datasets import cirr, folder, webvid
from covr_core.datasets.registry import DatasetSelection, DatasetSpec, register_dataset


def _webvid_key(s: DatasetSelection) -> str:
    return f"webvid:{Path(s.csv or '').name}:{s.subset_first}:{s.subset_random}:{s.seed}:{s.subset_ids}"


CIRR = register_dataset(DatasetSpec(
    name="cirr", description="CIRR (NLVR2 photos): the split's images; queries are its triplets",
    media="image", list_gallery=cirr.gallery_items, list_queries=cirr.query_items,
    key=lambda s: f"cirr:{s.split}", required=("root",), exclusion="reference", benchmark="cirr"))
WEBVID = register_dataset(DatasetSpec(
    name="webvid", description="WebVid-CoVR: the CSV's distinct target videos (pth2); queries are its rows",
    media="video", list_gallery=webvid.gallery_items, list_queries=webvid.query_items, key=_webvid_key,
    required=("csv", "video_root"), exclusion="same-video", benchmark="webvid"))
FOLDER = register_dataset(DatasetSpec(
    name="folder", description="a plain folder of images and videos (recursive, sorted paths)",
    media="image+video", list_gallery=folder.folder_items,
    key=lambda s: f"folder:{Path(s.root or '').resolve()}", required=("root",)))
DEMO = register_dataset(DatasetSpec(
    name="demo", description="the bundled demo gallery (assets/gallery.csv)", media="image+video",
    list_gallery=folder.csv_items, key=lambda s: "demo", required=("assets",)))
