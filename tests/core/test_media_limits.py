"""Amplification limits (issue 12, defect 4): elongated images and encoder resize intermediates.

A 121-byte 12000x1 PNG passed the pixel and side limits, then the lite transform scaled its short side to 224
(a 2.7-gigapixel intermediate: memory 2 -> 4.2 GB, 6 s per search). Also: FFmpeg opens still images as
one-frame "videos" (the /sample_frames path).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from covr_core.blip import BlipImageTransform
from covr_core.lite import LiteImageTransform
from covr_core.media import ImageLimits, MediaError, load_image, probe_video
from covr_core.media_video import VideoLimits
from covr_core.settings import load_settings
from helpers.media_files import write_test_clip


def test_12000x1_png_is_tiny_and_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "line.png"
    Image.new("L", (12000, 1)).save(path, optimize=True)
    assert path.stat().st_size < 200  # the attack costs the attacker nothing
    with pytest.raises(MediaError, match="too elongated.*12000x1.*at most 20 times"):
        load_image(path)
    with pytest.raises(MediaError, match="too elongated"):
        load_image(Image.new("RGB", (1, 300)))


def test_aspect_limit_comes_from_settings() -> None:
    limits = ImageLimits.from_settings(load_settings({"COVR_MAX_IMAGE_ASPECT": "50"}))
    assert limits.max_aspect == 50
    assert load_image(Image.new("RGB", (1000, 25)), limits).size == (1000, 25)  # 40:1 allowed at 50
    with pytest.raises(MediaError, match="elongated"):
        load_image(Image.new("RGB", (1000, 10)), limits)  # 100:1
    assert load_image(Image.new("RGB", (400, 20))).size == (400, 20)  # 20:1: the default allows it


def test_resize_intermediate_is_checked_against_the_pixel_limit() -> None:
    from covr_core.media import check_resize_budget

    lite, blip = LiteImageTransform(), BlipImageTransform()
    assert lite.resized_size(12000, 1) == (12000 * 224, 224)  # what the lite transform would allocate
    assert blip.resized_size(12000, 1) == (384, 384)  # BLIP's square resize never grows
    lax = ImageLimits(max_aspect=10_000)  # an operator who allows any aspect still has the pixel limit
    with pytest.raises(MediaError, match="would grow to 2688000x224"):
        check_resize_budget(12000, 1, lite, lax)
    check_resize_budget(12000, 1, blip, lax)
    check_resize_budget(4000, 200, lite, ImageLimits())  # a 20:1 panorama: 4480x224, fine


def test_lite_transform_output_is_unchanged_by_the_refactor() -> None:
    img = Image.new("RGB", (300, 200), (10, 200, 30))
    assert tuple(LiteImageTransform()(img).shape) == (3, 224, 224)


def test_elongated_and_still_image_videos_are_refused(tmp_path: Path) -> None:
    wide = tmp_path / "wide.mp4"
    write_test_clip(wide, n_frames=5, size=(640, 16))
    with pytest.raises(MediaError, match="too elongated"):
        probe_video(wide, VideoLimits())
    for name in ("still.png", "still.gif", "still.jpg"):
        path = tmp_path / name
        Image.new("RGB", (64, 48), (200, 0, 0)).save(path)
        renamed = path.with_suffix(".mp4")
        renamed.write_bytes(path.read_bytes())
        for p in (path, renamed):
            with pytest.raises(MediaError, match="still image, not a video"):
                probe_video(p)
    ok = tmp_path / "ok.mp4"
    write_test_clip(ok, n_frames=5)
    assert probe_video(ok).frame_count == 5
