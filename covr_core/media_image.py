"""Safe image loading: size limits before decoding, real format sniffing, EXIF orientation, RGB output.

``load_image`` accepts a path, raw bytes or a ``PIL.Image`` and returns an 8-bit RGB image, or raises
:class:`MediaError` whose message is shown to users as is (what is wrong and what is accepted).
The order of checks matters: the file size is checked before reading, the declared width and height
are checked from the header before any pixel is decoded (a PNG declaring 50000x50000 is refused in
milliseconds without allocating memory), and only then are the pixels decoded.

Size is not only total pixels: an image whose sides differ by more than ``max_aspect`` (a 121-byte
12000x1 PNG) is refused, because encoders resize the *short* side to their input size and such an image
would grow to hundreds of megapixels on the way (:func:`check_resize_budget` checks an encoder's
transform against the pixel limit before it runs).
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from covr_core.settings import load_settings

if TYPE_CHECKING:
    from covr_core.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "MediaError",
    "ImageLimits",
    "ImageSource",
    "load_image",
    "to_rgb",
    "make_thumbnail",
    "save_jpeg_atomic",
    "install_pillow_bomb_guard",
    "check_image_size",
    "check_resize_budget",
]

ImageSource = Union[str, os.PathLike, bytes, bytearray, Image.Image]

# Formats accepted by default (Pillow's names). TIFF and the exotic decoders are left out on purpose:
# they add attack surface and users do not need them for a retrieval demo.
# Multi-picture JPEGs (MPO, from cameras) are opened by the JPEG decoder.
DEFAULT_IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP")


_NOT_FOUND = "The {kind} file was not found (it may have been removed); please upload it again."


class MediaError(ValueError):
    """An image or video that cannot be used; ``str(error)`` is a user-facing message."""


@dataclass(frozen=True)
class ImageLimits:
    """Limits applied by :func:`load_image` (defaults equal ``covr_core.settings.Limits``)."""

    max_bytes: int = 50 * 1024 * 1024  # file size (COVR_MAX_UPLOAD_MB)
    max_pixels: int = 40_000_000  # declared width * height (COVR_MAX_IMAGE_PIXELS)
    max_side: int = 12_000  # declared longest side (COVR_MAX_IMAGE_SIDE)
    formats: tuple[str, ...] = DEFAULT_IMAGE_FORMATS  # Pillow format names that may be decoded
    max_aspect: float = 20.0  # longest side / shortest side (COVR_MAX_IMAGE_ASPECT)

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLimits:
        """Limits taken from :class:`covr_core.settings.Settings`."""
        lim = settings.limits
        return cls(
            max_bytes=lim.max_upload_bytes,
            max_pixels=lim.max_image_pixels,
            max_side=lim.max_image_side,
            max_aspect=lim.max_image_aspect,
        )

    def accepted(self) -> str:
        """Human-readable list of accepted formats, e.g. ``JPEG, PNG, WEBP, GIF, BMP``."""
        return ", ".join(self.formats)


_guard_pixels = 0


def install_pillow_bomb_guard(max_pixels: int) -> None:
    """Set Pillow's global decompression-bomb threshold (``Image.MAX_IMAGE_PIXELS``) to ``max_pixels``.

    Pillow raises ``DecompressionBombError`` when ``Image.open`` meets more than twice that many
    pixels. The threshold only ever grows to the largest limit installed, so it never refuses an image
    that some caller's limits allow; ``load_image`` checks its own limits from the header anyway.
    """
    global _guard_pixels
    if max_pixels > _guard_pixels:
        _guard_pixels = int(max_pixels)
        Image.MAX_IMAGE_PIXELS = _guard_pixels


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _megapixels(n: int) -> str:
    return f"{n / 1e6:.1f} megapixels"


def _check_byte_size(size: int, limits: ImageLimits) -> None:
    if size == 0:
        raise MediaError(
            f"The image file is empty (0 bytes). Please upload an image ({limits.accepted()})."
        )
    if size > limits.max_bytes:
        raise MediaError(f"The image file is too big ({_mb(size)}); the limit is {_mb(limits.max_bytes)}.")


def check_image_size(width: int, height: int, limits: ImageLimits) -> None:
    """Raise :class:`MediaError` when a declared ``width`` x ``height`` exceeds ``limits``."""
    if width <= 0 or height <= 0:
        raise MediaError(f"The image declares an invalid size ({width}x{height}).")
    if max(width, height) > limits.max_side:
        raise MediaError(
            f"The image is too large ({width}x{height} pixels); the longest side may be at most "
            f"{limits.max_side} pixels. Please resize it and try again."
        )
    if width * height > limits.max_pixels:
        raise MediaError(
            f"The image is too large ({width}x{height} = {_megapixels(width * height)}); the limit is "
            f"{_megapixels(limits.max_pixels)}. Please resize it and try again."
        )
    aspect = max(width, height) / min(width, height)
    if aspect > limits.max_aspect:
        raise MediaError(
            f"The image is too elongated ({width}x{height}, {aspect:.0f}:1); the longest side may be at most "
            f"{limits.max_aspect:g} times the shortest. Please crop it and try again."
        )


def check_resize_budget(width: int, height: int, transform: object, limits: ImageLimits) -> None:
    """Raise :class:`MediaError` when an encoder's ``transform`` would resize a ``width`` x ``height`` image
    through an intermediate larger than ``limits.max_pixels``.

    ``transform.resized_size(width, height)`` gives the size the transform resizes to before it crops
    (CoVR's BLIP transform: a square of its input size; the lite transform: the short side to 224).
    A transform without that method is assumed to scale the short side to ``transform.size``.
    """
    if hasattr(transform, "resized_size"):
        new_w, new_h = transform.resized_size(width, height)
    else:
        size = int(getattr(transform, "size", 384))
        scale = size / max(1, min(width, height))
        new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    if new_w * new_h > limits.max_pixels:
        raise MediaError(
            f"The image ({width}x{height}) would grow to {new_w}x{new_h} = {_megapixels(new_w * new_h)} when "
            f"resized for the encoder; the limit is {_megapixels(limits.max_pixels)}. Please crop it."
        )


def load_image(src: ImageSource, limits: ImageLimits | None = None) -> Image.Image:
    """Load ``src`` (path, bytes or PIL image) as an 8-bit RGB image with EXIF orientation applied.

    Checks, in order: file size, real format (sniffed by Pillow from the content, never from the file
    name), declared size against ``limits`` (before decoding), then decodes inside a ``try`` so that
    truncated or corrupt files become :class:`MediaError`. Animated GIF/WebP give their first frame;
    CMYK, 16-bit, palette and alpha images are converted (alpha composited on white).
    """
    limits = limits or ImageLimits.from_settings(load_settings())
    install_pillow_bomb_guard(limits.max_pixels)
    if isinstance(src, Image.Image):
        check_image_size(src.width, src.height, limits)
        try:
            return to_rgb(_transpose(src.copy() if src.mode == "RGB" else src))
        except MediaError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a user-facing error
            raise MediaError(f"The image could not be converted to RGB ({type(exc).__name__}).") from exc
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        _check_byte_size(len(data), limits)
        return _decode(io.BytesIO(data), limits)
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise MediaError(_NOT_FOUND.format(kind="image")) from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise MediaError(f"The image file could not be read ({reason}).") from None
        if not path.is_file():
            raise MediaError("The image path is not a regular file.")
        _check_byte_size(size, limits)
        with path.open("rb") as fh:
            return _decode(fh, limits)
    raise TypeError(f"load_image expects a path, bytes or PIL.Image, not {type(src).__name__}")


def _decode(fh: io.BufferedIOBase, limits: ImageLimits) -> Image.Image:
    accepted = limits.accepted()
    Image.init()
    formats = [f for f in limits.formats if f in Image.OPEN]
    try:
        img = Image.open(fh, formats=formats)
    except Image.DecompressionBombError as exc:
        raise MediaError(
            f"The image declares far too many pixels (a possible decompression bomb); the limit is "
            f"{_megapixels(limits.max_pixels)}."
        ) from exc
    except UnidentifiedImageError:
        raise MediaError(
            f"This file is not a supported image (its content is not {accepted}, whatever its name says). "
            f"Accepted formats: {accepted}."
        ) from None
    except Exception as exc:  # noqa: BLE001 - malformed headers raise many types
        raise MediaError(
            f"The image header is corrupt and cannot be read. Accepted formats: {accepted}."
        ) from exc
    with img:
        check_image_size(img.width, img.height, limits)
        try:
            if getattr(img, "is_animated", False):
                img.seek(0)  # first frame of an animated GIF / WebP
            img.load()
        except MediaError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise MediaError(
                f"The image declares far too many pixels; the limit is {_megapixels(limits.max_pixels)}."
            ) from exc
        except MemoryError as exc:
            raise MediaError("The image is too large to decode.") from exc
        except Exception as exc:  # noqa: BLE001 - OSError (truncated), SyntaxError, zlib.error, ...
            log.info("image decode failed: %s: %s", type(exc).__name__, exc)
            raise MediaError(
                f"The {img.format or ''} image is damaged or incomplete (truncated file?) and cannot be "
                "decoded. Please upload the complete file."
            ) from exc
        try:
            out = to_rgb(_transpose(img))
        except MediaError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise MediaError(
                f"The image could not be converted to RGB (mode {img.mode}, {type(exc).__name__})."
            ) from exc
    if out is img:  # never hand out an image tied to a closed file
        out = out.copy()
    return out


def _transpose(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag; a malformed EXIF block is ignored (logged), not fatal."""
    try:
        return ImageOps.exif_transpose(img) or img
    except Exception as exc:  # noqa: BLE001 - broken EXIF must not block an otherwise valid image
        log.warning("ignoring unreadable EXIF orientation: %s", exc)
        return img


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    arr = np.asarray(img)
    if img.mode == "F":
        arr = arr.astype(np.float64)
        finite = arr[np.isfinite(arr)]
        top = float(finite.max()) if finite.size else 1.0
        scale = 255.0 if top <= 1.0 else (255.0 / 65535.0 if top > 255.0 else 1.0)
        out = np.nan_to_num(arr * scale, nan=0.0, posinf=255.0, neginf=0.0)
    else:
        arr = arr.astype(np.int64)
        # I;16* is 16-bit by definition; mode "I" holds 16-bit PNG/TIFF data when values exceed 255.
        sixteen = img.mode.startswith("I;16") or (arr.size and int(arr.max()) > 255)
        out = arr / 257.0 if sixteen else arr
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "L")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (alpha composited on white, 16-bit scaled down)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        has_alpha = "transparency" in img.info or (img.palette is not None and img.palette.mode == "RGBA")
        return _composite_on_white(img.convert("RGBA")) if has_alpha else img.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        return _composite_on_white(img.convert("RGBA"))
    if mode in ("1", "L", "CMYK", "YCbCr", "HSV"):
        if mode == "L" and "transparency" in img.info:
            return _composite_on_white(img.convert("RGBA"))
        return img.convert("RGB")
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_l(img).convert("RGB")
    if mode == "LAB":
        from PIL import ImageCms

        lab = ImageCms.createProfile("LAB")
        srgb = ImageCms.createProfile("sRGB")
        return ImageCms.profileToProfile(img, lab, srgb, outputMode="RGB")
    raise MediaError(f"Images with colour mode {mode} are not supported; please convert it to RGB.")


def make_thumbnail(image: Image.Image, longest: int = 256) -> Image.Image:
    """An RGB copy of ``image`` whose longest side is at most ``longest`` (never upscaled)."""
    if longest <= 0:
        raise ValueError("longest must be positive")
    thumb = to_rgb(image).copy()
    thumb.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    return thumb


def save_jpeg_atomic(image: Image.Image, path: str | os.PathLike, quality: int = 85) -> Path:
    """Write ``image`` as JPEG to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            to_rgb(image).save(fh, "JPEG", quality=quality)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return path
