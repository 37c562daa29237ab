"""Image and video decoding for CoVR Explorer (safe limits, RGB, CoVR's frame sampling and pooling).

The implementation lives in :mod:`covr_core.media_image` and :mod:`covr_core.media_video`; this
module is the public entry point named in docs/ARCHITECTURE.md and re-exports both.
"""

from __future__ import annotations

from covr_core.media_image import (
    DEFAULT_IMAGE_FORMATS,
    ImageLimits,
    ImageSource,
    MediaError,
    check_image_size,
    check_resize_budget,
    install_pillow_bomb_guard,
    load_image,
    make_thumbnail,
    save_jpeg_atomic,
    to_rgb,
)
from covr_core.media_video import (
    VideoInfo,
    VideoLimits,
    load_video_frames,
    middle_frame,
    pool_frame_embeddings,
    probe_video,
    read_frames,
    sample_frame_indices,
    video_frame_strip,
)

__all__ = [
    "DEFAULT_IMAGE_FORMATS",
    "ImageLimits",
    "ImageSource",
    "MediaError",
    "VideoInfo",
    "VideoLimits",
    "check_image_size",
    "check_resize_budget",
    "install_pillow_bomb_guard",
    "load_image",
    "load_video_frames",
    "make_thumbnail",
    "middle_frame",
    "pool_frame_embeddings",
    "probe_video",
    "read_frames",
    "sample_frame_indices",
    "save_jpeg_atomic",
    "to_rgb",
    "video_frame_strip",
]
