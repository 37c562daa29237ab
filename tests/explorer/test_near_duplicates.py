"""Near-duplicates of a reference: embedding AND pixels must match (a zoom video made from the photo is one,
another photo of the same kind of thing is not); identical copies always go with the reference."""

from __future__ import annotations

import av
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from covr_core.gallery import Gallery
from covr_core.types import EncoderInfo
from explorer.near_duplicates import NearDuplicateFinder, pixel_descriptor

DIM = 8
INFO = EncoderInfo(name="t", version="1", checkpoint="none", checkpoint_sha256="", dim=DIM)


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def _photo(seed: int, size=(96, 64)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(8, 12, 3), dtype=np.uint8)  # blocky: survives resizing and zooming
    return Image.fromarray(base).resize(size, Image.Resampling.NEAREST)


def _zoom_video(path, image: Image.Image, frames: int = 12) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(frames):  # a slow zoom into the middle, starting from the whole picture
            f = 1 - 0.3 * i / frames
            w, h = image.width * f, image.height * f
            box = (
                (image.width - w) / 2,
                (image.height - h) / 2,
                (image.width + w) / 2,
                (image.height + h) / 2,
            )
            frame = image.crop(tuple(round(b) for b in box)).resize((96, 64))
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture()
def gallery(tmp_path):
    ref = _photo(0)
    media = tmp_path / "media"
    media.mkdir()
    ref.save(media / "copy.png")
    _zoom_video(media / "zoom.mp4", ref)
    _photo(1).save(media / "same_kind.png")
    _photo(2).save(media / "far.png")
    e = _unit(np.arange(1, DIM + 1))
    other = _unit(np.r_[1.0, np.zeros(DIM - 1)])
    emb = np.stack(
        [e, _unit(e + 0.12 * other), _unit(e + 0.05 * other), _unit(other)]
    )  # cos 1, ~0.97, ~0.99, low
    items = pd.DataFrame(
        {
            "id": ["copy", "zoom", "same_kind", "far"],
            "kind": ["image", "video", "image", "image"],
            "media": ["copy.png", "zoom.mp4", "same_kind.png", "far.png"],
            "caption": [""] * 4,
            "split": ["t"] * 4,
            "duration": [np.nan, 1.0, np.nan, np.nan],
            "thumbnail": [""] * 4,
        }
    )
    gal = Gallery.build(emb, items, INFO, "g", media_root=str(media))
    gal.save(tmp_path / "g")
    return Gallery.load(tmp_path / "g"), ref, e


def test_zoom_video_is_a_near_duplicate_another_photo_is_not(gallery):
    gal, ref, f_img = gallery
    out = NearDuplicateFinder().find(gal, ref, f_img)
    assert out.reference == ["copy"]  # identical copy: removed with the reference
    assert out.near_duplicates == ["zoom"]  # same picture, zoomed: hidden
    assert "same_kind" not in out.all and "far" not in out.all  # embedding close, pixels different


def test_without_hiding_only_the_reference_goes(gallery):
    gal, ref, f_img = gallery
    out = NearDuplicateFinder().find(gal, ref, f_img, reference_id="far", hide_near_duplicates=False)
    assert out.reference == ["far", "copy"] and out.near_duplicates == []


def test_pixel_descriptor_is_normalised_and_shift_tolerant():
    a = pixel_descriptor(_photo(3))
    assert a.shape == (256,) and abs(float(np.linalg.norm(a)) - 1) < 1e-5 and abs(float(a.mean())) < 1e-5
    assert float(a @ pixel_descriptor(_photo(3).resize((200, 130)))) > 0.95
    assert float(a @ pixel_descriptor(_photo(4))) < 0.5
