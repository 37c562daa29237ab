"""CoVR datasets: annotation readers (CIRR images, WebVid-CoVR videos) and the registry of dataset specs
the precompute jobs embed (``get_dataset``, ``list_datasets``; see ``covr_core.datasets.registry``). A
dataset of your own is one file calling ``register_dataset``, named by ``COVR_EXTENSIONS``
(``covr_core/extensions.py``): it is imported at the end of this module, so every job's ``--dataset``
offers it."""

from __future__ import annotations

from covr_core.datasets import builtin as _builtin  # noqa: F401 - registers cirr, webvid, folder, demo
from covr_core.datasets.cirr import (
    CirrDataset,
    CirrTriplet,
    find_cirr_annotation,
    load_cirr_split,
    load_cirr_triplets,
)
from covr_core.datasets.registry import (
    DatasetSelection,
    DatasetSpec,
    ItemList,
    get_dataset,
    list_datasets,
    query_datasets,
    register_dataset,
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
from covr_core.extensions import load_extensions

__all__ = [
    "CirrDataset",
    "CirrTriplet",
    "DatasetSelection",
    "DatasetSpec",
    "ItemList",
    "find_cirr_annotation",
    "get_dataset",
    "iter_webvid_covr",
    "list_datasets",
    "load_cirr_split",
    "load_cirr_triplets",
    "parse_scores",
    "query_datasets",
    "read_webvid_covr",
    "register_dataset",
    "select_subset",
    "webvid_video_id",
    "webvid_video_int_id",
    "webvid_video_key",
    "webvid_video_path",
]

load_extensions()  # datasets of your own, one file each (COVR_EXTENSIONS)
