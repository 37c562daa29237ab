"""Safe image loading: every bad or unusual image of issue 8 loads as RGB or fails with a clear MediaError."""

from __future__ import annotations

import io
import os
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from covr_core.media import (
    ImageLimits,
    MediaError,
    load_image,
    make_thumbnail,
    save_jpeg_atomic,
    to_rgb,
)
from covr_core.settings import load_settings
from helpers.media_files import (
    gradient_image,
    write_16bit_png,
    write_animated_gif,
    write_animated_webp,
    write_cmyk_jpeg,
    write_empty_file,
    write_exif_rotated_jpeg,
    write_la_png,
    write_not_an_image,
    write_palette_png,
    write_png_bomb,
    write_rgba_png,
    write_tiff,
    write_truncated_jpeg,
    write_truncated_png,
)


def _refused(src, limits=None) -> str:
    with pytest.raises(MediaError) as err:
        load_image(src, limits)
    msg = str(err.value)
    assert msg and "Traceback" not in msg and "File \"" not in msg and len(msg) < 400
    return msg


def _rgb(img: Image.Image, xy) -> np.ndarray:
    assert img.mode == "RGB"
    return np.asarray(img.getpixel(xy), dtype=int)


# ----------------------------------------------------------------------------------------- good images
def test_rgb_png_roundtrip_is_exact(tmp_path):
    src = gradient_image((64, 48))
    src.save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.mode == "RGB" and np.array_equal(np.asarray(out), np.asarray(src))
    assert np.array_equal(np.asarray(load_image(str(tmp_path / "g.png"))), np.asarray(src))


def test_bytes_and_pil_inputs(tmp_path):
    buf = io.BytesIO()
    gradient_image((20, 10)).save(buf, "PNG")
    assert load_image(buf.getvalue()).size == (20, 10)
    assert load_image(bytearray(buf.getvalue())).mode == "RGB"
    pil = gradient_image((20, 10), mode="L")
    out = load_image(pil)
    assert out.mode == "RGB" and out.size == (20, 10) and pil.mode == "L"  # caller's image untouched


def test_format_is_sniffed_from_content_not_extension(tmp_path):
    path = tmp_path / "really_a_jpeg.png"
    gradient_image((32, 32)).save(path, "JPEG")
    assert load_image(path).size == (32, 32)


def test_animated_gif_gives_first_frame(tmp_path):
    out = load_image(write_animated_gif(tmp_path / "a.gif"))
    assert out.size == (40, 30)
    assert np.abs(_rgb(out, (5, 5)) - [255, 0, 0]).max() <= 2


def test_animated_webp_gives_first_frame(tmp_path):
    out = load_image(write_animated_webp(tmp_path / "a.webp"))
    assert np.abs(_rgb(out, (5, 5)) - [255, 0, 0]).max() <= 2


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    out = load_image(write_cmyk_jpeg(tmp_path / "c.jpg"))
    r, g, b = _rgb(out, (10, 10))
    assert r > 200 and g < 60 and b < 60


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    path = write_16bit_png(tmp_path / "d.png", value=32768)
    assert Image.open(path).mode.startswith("I")
    out = load_image(path)
    assert np.abs(_rgb(out, (3, 3)) - 128).max() <= 1  # 32768/257 ~ 127.5, not clipped to 255


def test_16bit_mode_i_is_scaled():
    arr = np.full((4, 4), 65535, dtype=np.int32)
    out = load_image(Image.fromarray(arr, "I"))
    assert tuple(_rgb(out, (0, 0))) == (255, 255, 255)


def test_palette_png(tmp_path):
    out = load_image(write_palette_png(tmp_path / "p.png"))
    assert tuple(_rgb(out, (1, 1))) == (0, 0, 255)


def test_palette_with_transparency_composites_on_white(tmp_path):
    out = load_image(write_palette_png(tmp_path / "pt.png", transparent=True))
    assert tuple(_rgb(out, (1, 1))) == (255, 255, 255)


def test_rgba_alpha_composited_on_white(tmp_path):
    out = load_image(write_rgba_png(tmp_path / "a.png"))
    assert tuple(_rgb(out, (2, 2))) == (255, 255, 255)  # transparent black -> white
    assert tuple(_rgb(out, (38, 2))) == (255, 0, 0)  # opaque red stays red


def test_la_png_composited_on_white(tmp_path):
    out = load_image(write_la_png(tmp_path / "la.png"))
    assert tuple(_rgb(out, (2, 2))) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    path = write_exif_rotated_jpeg(tmp_path / "e.jpg", size=(60, 30), orientation=6)
    assert Image.open(path).size == (60, 30)
    out = load_image(path)
    assert out.size == (30, 60)  # rotated to portrait
    top, bottom = _rgb(out, (15, 8)), _rgb(out, (15, 52))
    assert top[0] > 200 and top[2] < 60, "stored-left red must end up on top after a 90 degree CW turn"
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize("mode", ["1", "L", "YCbCr", "HSV", "RGBA", "LA", "P", "I;16", "F", "CMYK"])
def test_to_rgb_handles_every_mode(mode):
    src = Image.new(mode, (8, 6)) if mode in ("I;16", "F") else gradient_image((8, 6)).convert(mode)
    out = to_rgb(src)
    assert out.mode == "RGB" and out.size == (8, 6)


# ----------------------------------------------------------------------------------------- bad images
def test_truncated_png_is_refused(tmp_path):
    msg = _refused(write_truncated_png(tmp_path / "t.png"))
    assert "damaged or incomplete" in msg


def test_truncated_jpeg_is_refused(tmp_path):
    msg = _refused(write_truncated_jpeg(tmp_path / "t.jpg"))
    assert "damaged or incomplete" in msg


def test_zero_byte_file_is_refused(tmp_path):
    assert "empty" in _refused(write_empty_file(tmp_path / "empty.png"))
    assert "empty" in _refused(b"")


def test_non_image_with_image_extension_is_refused(tmp_path):
    msg = _refused(write_not_an_image(tmp_path / "photo.jpg"))
    assert "not a supported image" in msg and "JPEG" in msg and "PNG" in msg


def test_unsupported_format_lists_accepted_ones(tmp_path):
    msg = _refused(write_tiff(tmp_path / "x.tif"))
    assert "Accepted formats: JPEG, PNG, WEBP, GIF, BMP" in msg
    assert load_image(tmp_path / "x.tif", ImageLimits(formats=("TIFF",))).size == (20, 20)


def test_png_bomb_is_refused_without_allocating(tmp_path):
    path = write_png_bomb(tmp_path / "bomb.png", 50000, 50000)
    assert path.stat().st_size < 2000
    tracemalloc.start()
    try:
        msg = _refused(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "too many pixels" in msg or "too large" in msg
    assert "40.0 megapixels" in msg
    assert peak < 20 * 2**20  # decoding would need 7.5 GB


def test_declared_size_checked_before_decoding(tmp_path):
    # 7000x7000 = 49 Mpx: above our 40 Mpx limit, below Pillow's 2x bomb threshold -> our own check
    # (Pillow only warns at open time; the pixels are never decoded).
    with pytest.warns(Image.DecompressionBombWarning):
        msg = _refused(write_png_bomb(tmp_path / "big.png", 7000, 7000))
    assert "7000x7000" in msg and "49.0 megapixels" in msg and "40.0 megapixels" in msg
    side = _refused(write_png_bomb(tmp_path / "wide.png", 13000, 10))
    assert "longest side" in side and "12000" in side


def test_limits_apply_to_all_inputs(tmp_path):
    img = gradient_image((100, 50))
    img.save(tmp_path / "g.png")
    small = ImageLimits(max_pixels=1000, max_side=10_000)
    assert "too large" in _refused(tmp_path / "g.png", small)
    assert "too large" in _refused(img, small)
    assert "too large" in _refused(tmp_path / "g.png", ImageLimits(max_side=60))
    assert "too big" in _refused(tmp_path / "g.png", ImageLimits(max_bytes=100))
    assert "too big" in _refused((tmp_path / "g.png").read_bytes(), ImageLimits(max_bytes=100))


def test_missing_file_and_folder(tmp_path):
    assert "not found" in _refused(tmp_path / "nope.jpg")
    assert "not a regular file" in _refused(tmp_path)
    with pytest.raises(TypeError):
        load_image(12345)  # type: ignore[arg-type]


def test_pillow_bomb_guard_is_installed():
    load_image(gradient_image((4, 4)))
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS >= ImageLimits().max_pixels


def test_image_limits_from_settings():
    settings = load_settings({"COVR_MAX_IMAGE_PIXELS": "1_000_000", "COVR_MAX_IMAGE_SIDE": "2000",
                              "COVR_MAX_UPLOAD_MB": "1.5"})
    limits = ImageLimits.from_settings(settings)
    assert (limits.max_pixels, limits.max_side, limits.max_bytes) == (1_000_000, 2000, int(1.5 * 2**20))
    assert ImageLimits.from_settings(load_settings({})) == ImageLimits()


# ----------------------------------------------------------------------------------------- thumbnails
def test_make_thumbnail_keeps_aspect_and_never_upscales():
    thumb = make_thumbnail(gradient_image((1000, 500)), longest=256)
    assert thumb.size == (256, 128) and thumb.mode == "RGB"
    assert make_thumbnail(gradient_image((100, 50)), longest=256).size == (100, 50)
    assert make_thumbnail(Image.new("RGBA", (10, 10)), longest=5).mode == "RGB"


def test_save_jpeg_atomic(tmp_path):
    path = tmp_path / "sub" / "t.jpg"
    save_jpeg_atomic(gradient_image((40, 20)), path)
    save_jpeg_atomic(Image.new("RGBA", (30, 10), (255, 0, 0, 255)), path, quality=90)  # overwrite
    out = load_image(path)
    assert out.size == (30, 10) and _rgb(out, (5, 5))[0] > 240
    assert sorted(os.listdir(path.parent)) == ["t.jpg"]  # no temp file left behind
