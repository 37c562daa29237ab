"""Builders of good and bad media files for tests (real Pillow / PyAV output, no mocks).

Video frames written by :func:`write_test_clip` encode their frame index, so a test can check *which*
frame a decoder returned: the top two thirds of the frame hold ``INDEX_BITS`` vertical stripes, one bit
each (most significant bit on the left, white = 1, black = 0), and the bottom third is pure red, so a
channel-order slip (BGR instead of RGB) is visible. :func:`decode_frame_index` reads the index back and
:func:`is_red_bottom` checks the colour order.

Bad files: truncated PNG/JPEG, empty file, non-image bytes, a PNG whose header declares 50000x50000
pixels (crafted by hand, nothing allocated), zero-frame / audio-only / corrupt mp4 files. Unusual but
valid images: animated GIF, CMYK JPEG, 16-bit PNG, palette PNG, RGBA PNG, EXIF-rotated JPEG.
"""

from __future__ import annotations

import io
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

INDEX_BITS = 10  # up to 1023 frames


# --------------------------------------------------------------------------- frames that encode an index
def make_index_frame(index: int, size: tuple[int, int] = (80, 48)) -> np.ndarray:
    """RGB uint8 array [H, W, 3] whose stripes encode ``index`` (see module docstring)."""
    width, height = size
    if not 0 <= index < 2**INDEX_BITS:
        raise ValueError(f"index {index} does not fit in {INDEX_BITS} bits")
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    top = (2 * height) // 3
    for bit in range(INDEX_BITS):
        x0 = bit * width // INDEX_BITS
        x1 = (bit + 1) * width // INDEX_BITS
        if (index >> (INDEX_BITS - 1 - bit)) & 1:
            arr[:top, x0:x1] = 255
    arr[top:, :, 0] = 255  # pure red band
    return arr


def decode_frame_index(image: Image.Image) -> int:
    """Read back the index written by :func:`make_index_frame` (robust to mild compression)."""
    arr = np.asarray(image.convert("L"), dtype=np.float32)
    height, width = arr.shape
    top = (2 * height) // 3
    value = 0
    for bit in range(INDEX_BITS):
        x0 = bit * width // INDEX_BITS
        x1 = (bit + 1) * width // INDEX_BITS
        pad_x = max((x1 - x0) // 4, 0)
        cell = arr[top // 4 : 3 * top // 4, x0 + pad_x : x1 - pad_x]
        value = (value << 1) | int(cell.mean() > 127)
    return value


def is_red_bottom(image: Image.Image) -> bool:
    """True when the bottom band is red in RGB order (False for a BGR slip: it would look blue)."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32)
    height = arr.shape[0]
    band = arr[height - max(height // 6, 1) :, :, :].reshape(-1, 3).mean(axis=0)
    return bool(band[0] > 150 and band[2] < 100)


# --------------------------------------------------------------------------- video builders
def write_test_clip(
    path: str | Path,
    n_frames: int,
    fps: int = 25,
    size: tuple[int, int] = (80, 48),
    vfr: bool = False,
    codec: str = "libx264",
    gop: int = 12,
    bframes: int = 2,
    audio: bool = False,
    streamed: bool = False,
    rotation: int = 0,
) -> list[float]:
    """Write a clip whose frame ``i`` encodes ``i``; returns each frame's presentation time in seconds.

    The container follows the suffix (``.mp4``, ``.mkv``, ``.webm``...). ``vfr=True`` gives frames
    irregular durations (alternating 1x, 3x and 2x the nominal frame time), so ``pts * fps`` is *not*
    the frame index. ``codec`` may be ``libx264`` (B-frames, closed GOPs of ``gop`` frames),
    ``mpeg4``, ``libvpx`` or ``libvpx-vp9``; webm needs a vpx codec. ``streamed=True`` writes
    Matroska through a non-seekable sink, like a live recording: the file stores neither a duration
    nor a frame count nor a seek index (the "endless stream" case). ``rotation`` stores a display
    rotation (counter-clockwise degrees, as phones do for portrait videos).
    """
    import av

    path = Path(path)
    if path.suffix == ".webm" and "vpx" not in codec:
        codec = "libvpx"
    width, height = size
    tick = Fraction(1, 1000) if vfr else Fraction(1, fps)
    times: list[float] = []
    sink = _NonSeekableSink() if streamed else None
    target = sink if streamed else str(path)
    with av.open(target, mode="w", format="matroska" if streamed else None) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = tick
        stream.codec_context.gop_size = gop
        options = {}
        if codec == "libx264":
            options = {"crf": "10", "bf": str(bframes), "sc_threshold": "0", "preset": "veryfast"}
            options["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
        elif codec == "mpeg4":
            options = {"qscale": "2"}
        elif "vpx" in codec:
            # alt-ref (invisible) frames on, as in real WebM files: packets != frames is then possible
            options = {"crf": "10", "b": "1M", "cpu-used": "8", "auto-alt-ref": "1", "lag-in-frames": "16"}
        stream.options = options
        if rotation:
            stream.set_display_rotation(rotation)
        audio_stream = container.add_stream("aac", rate=16000) if audio else None
        pts = 0
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(make_index_frame(i, size), format="rgb24")
            frame.pts = pts
            frame.time_base = tick
            times.append(float(pts * tick))
            pts += (1000 // fps) * (1, 3, 2)[i % 3] if vfr else 1
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            _write_silence(container, audio_stream, seconds=n_frames / fps)
    if sink is not None:
        path.write_bytes(bytes(sink.data))
    return times


class _NonSeekableSink(io.RawIOBase):
    """A write-only, non-seekable file object: muxers cannot go back to write durations or indexes."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, b) -> int:  # type: ignore[override]
        self.data += b
        return len(b)


def _write_silence(container, stream, seconds: float) -> None:
    import av

    samples = int(seconds * stream.rate)
    chunk = 1024
    for start in range(0, max(samples, 1), chunk):
        arr = (0.1 * np.sin(np.arange(start, start + chunk) / 10.0)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(arr, format="fltp", layout="mono")
        frame.sample_rate = stream.rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_zero_frame_mp4(path: str | Path, size: tuple[int, int] = (80, 48)) -> Path:
    """An mp4 with an H.264 video track (declared in the header) and not a single frame in it.

    A plain mp4 muxer drops empty tracks, so the file is written fragmented with an empty ``moov``
    up front (the track is declared there) and no fragment ever follows.
    """
    import av

    path = Path(path)
    options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        container.start_encoding()
    return path


def write_audio_only_mp4(path: str | Path, seconds: float = 1.0) -> Path:
    """An mp4 holding one AAC audio stream and no video stream."""
    import av

    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        _write_silence(container, stream, seconds)
    return path


def write_corrupt_mp4(path: str | Path, mode: str = "garbage") -> Path:
    """A broken mp4. ``garbage``: an ``ftyp`` box followed by random bytes; ``truncated``: the first
    40% of a real clip (the ``moov`` index at the end is lost); ``text``: a text file named .mp4."""
    path = Path(path)
    if mode == "garbage":
        rng = np.random.default_rng(0)
        head = struct.pack(">I4s4sI", 20, b"ftyp", b"isom", 512) + b"isom"
        path.write_bytes(head + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif mode == "truncated":
        full = path.with_name(path.stem + "_full.mp4")
        write_test_clip(full, 20)
        data = full.read_bytes()
        full.unlink()
        path.write_bytes(data[: int(len(data) * 0.4)])
    elif mode == "text":
        path.write_text("this is not a video\n" * 20)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return path


# --------------------------------------------------------------------------- image builders
def gradient_image(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    """A deterministic colour gradient (red grows left to right, green top to bottom)."""
    width, height = size
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None].repeat(width, 1)
    arr = np.stack([x, y, np.full_like(x, 64)], axis=-1).astype(np.uint8)
    return Image.fromarray(arr, "RGB").convert(mode) if mode != "RGB" else Image.fromarray(arr, "RGB")


def write_truncated_png(path: str | Path, keep: float = 0.5) -> Path:
    """A valid PNG cut after ``keep`` of its bytes (header intact, pixel data incomplete)."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(buf, "PNG")
    data = buf.getvalue()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return Path(path)


def write_truncated_jpeg(path: str | Path, keep: float = 0.5) -> Path:
    """A valid JPEG cut after ``keep`` of its bytes."""
    buf = io.BytesIO()
    arr = np.random.default_rng(1).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    Image.fromarray(arr).save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return Path(path)


def write_empty_file(path: str | Path) -> Path:
    """A 0-byte file."""
    Path(path).write_bytes(b"")
    return Path(path)


def write_not_an_image(path: str | Path) -> Path:
    """Text content under an image name (e.g. ``photo.jpg``)."""
    Path(path).write_text("<html><body>definitely not a JPEG</body></html>\n")
    return Path(path)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def write_png_bomb(path: str | Path, width: int = 50000, height: int = 50000) -> Path:
    """A tiny PNG whose IHDR declares ``width`` x ``height`` RGB pixels (no pixel buffer allocated).

    The IDAT holds the zlib stream of a few all-zero rows only, so the file is a few hundred bytes;
    decoding it would try to allocate ``width * height * 3`` bytes.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * min(width, 4096))
    idat = b"".join(compressor.compress(row) for _ in range(4)) + compressor.flush()
    chunks = _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    data = b"\x89PNG\r\n\x1a\n" + chunks
    Path(path).write_bytes(data)
    return Path(path)


def write_animated_gif(path: str | Path, n_frames: int = 4, size: tuple[int, int] = (40, 30)) -> Path:
    """An animated GIF; frame 0 is solid red, later frames solid green/blue."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", size, colours[min(i, 2)]) for i in range(n_frames)]
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return Path(path)


def write_animated_webp(path: str | Path, n_frames: int = 3, size: tuple[int, int] = (40, 30)) -> Path:
    """An animated WebP; frame 0 solid red."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", size, colours[min(i, 2)]) for i in range(n_frames)]
    frames[0].save(path, "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    return Path(path)


def write_cmyk_jpeg(path: str | Path, size: tuple[int, int] = (40, 30)) -> Path:
    """A CMYK JPEG of a (nearly) pure red image (C=0, M=255, Y=255, K=0)."""
    Image.new("CMYK", size, (0, 255, 255, 0)).save(path, "JPEG", quality=95)
    return Path(path)


def write_16bit_png(path: str | Path, size: tuple[int, int] = (40, 30), value: int = 65535 // 2) -> Path:
    """A 16-bit greyscale PNG (mode ``I;16``), every pixel ``value``."""
    arr = np.full((size[1], size[0]), value, dtype=np.uint16)
    Image.fromarray(arr).save(path, "PNG")
    return Path(path)


def write_palette_png(path: str | Path, size: tuple[int, int] = (40, 30), transparent: bool = False) -> Path:
    """A palette (mode ``P``) PNG of a solid blue image; optionally with a transparent palette entry."""
    img = Image.new("RGB", size, (0, 0, 255)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    if transparent:
        img.info["transparency"] = img.getpixel((0, 0))
        img.save(path, "PNG", transparency=img.getpixel((0, 0)))
    else:
        img.save(path, "PNG")
    return Path(path)


def write_rgba_png(path: str | Path, size: tuple[int, int] = (40, 30)) -> Path:
    """An RGBA PNG: fully transparent black on the left half, opaque red on the right half."""
    width, height = size
    arr = np.zeros((height, width, 4), dtype=np.uint8)
    arr[:, width // 2 :, 0] = 255
    arr[:, width // 2 :, 3] = 255
    Image.fromarray(arr, "RGBA").save(path, "PNG")
    return Path(path)


def write_la_png(path: str | Path, size: tuple[int, int] = (40, 30)) -> Path:
    """A grey + alpha (mode ``LA``) PNG, fully transparent."""
    Image.new("LA", size, (0, 0)).save(path, "PNG")
    return Path(path)


def write_exif_rotated_jpeg(path: str | Path, size: tuple[int, int] = (60, 30), orientation: int = 6) -> Path:
    """A JPEG stored ``size`` (landscape) with EXIF orientation ``orientation`` (6 = rotate 90 CW).

    The stored pixels are red on the left half and blue on the right half, so after applying
    orientation 6 the displayed image is portrait (30x60) with red on top and blue at the bottom.
    """
    width, height = size
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    arr[:, : width // 2, 0] = 255
    arr[:, width // 2 :, 2] = 255
    img = Image.fromarray(arr, "RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return Path(path)


def write_tiff(path: str | Path, size: tuple[int, int] = (20, 20)) -> Path:
    """A valid TIFF image (a format the app does not accept by default)."""
    gradient_image(size).save(path, "TIFF")
    return Path(path)
