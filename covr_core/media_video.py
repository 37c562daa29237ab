"""Video probing and frame reading with PyAV (frame-accurate, one forward decode, RGB).

* :func:`probe_video` returns frame count, duration, fps and size, counting the video packets (a
  demux, no decoding) when the container does not store a frame count (webm/mkv), and refuses
  still images (FFmpeg would open a PNG, JPEG or GIF as a one-frame "video"), audio-only, zero-frame,
  corrupt, too long, too large or too elongated videos with :class:`MediaError`.
* :func:`sample_frame_indices` is CoVR's rule (``tools/embs/save_blip_embs_vids.py``): K = min(N, k)
  bins from ``linspace(0, N, K+1)`` cast to int, the frame at ``(start + end - 1) // 2`` of each bin.
* :func:`read_frames` decodes forward once and converts only the wanted frames to RGB (PyAV's
  ``to_image`` is RGB; CoVR's OpenCV path handed BGR frames to PIL), turned upright by the display
  rotation phones store. Frame *i* is the *i*-th frame in
  presentation (pts) order, whatever the timestamps (variable frame rate safe). It seeks only when a
  keyframe lies far between the current position and the next wanted frame, and after a seek it
  identifies frames by their pts, so the result is identical to a full decode.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from covr_core.media_image import _NOT_FOUND, MediaError

from covr_core.settings import load_settings

if TYPE_CHECKING:
    from covr_core.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "VideoLimits",
    "VideoInfo",
    "probe_video",
    "sample_frame_indices",
    "read_frames",
    "middle_frame",
    "load_video_frames",
    "pool_frame_embeddings",
    "video_frame_strip",
]

SEEK_MIN_GAP = 24  # seek only when the keyframe is more than this many frames ahead of the decoder


@dataclass(frozen=True)
class VideoLimits:
    """Limits applied by :func:`probe_video` (defaults equal ``covr_core.settings.Limits``)."""

    max_bytes: int = 50 * 1024 * 1024  # file size (COVR_MAX_UPLOAD_MB)
    max_seconds: float = 120.0  # duration (COVR_MAX_VIDEO_SECONDS)
    max_side: int = 1920  # longest side (COVR_MAX_VIDEO_SIDE)
    max_pixels: int = 1920 * 1088  # width * height (COVR_MAX_VIDEO_PIXELS)
    max_aspect: float = 20.0  # longest side / shortest side (COVR_MAX_IMAGE_ASPECT)

    @classmethod
    def from_settings(cls, settings: Settings) -> VideoLimits:
        """Limits taken from :class:`covr_core.settings.Settings`."""
        lim = settings.limits
        return cls(
            max_bytes=lim.max_upload_bytes,
            max_seconds=lim.max_video_seconds,
            max_side=lim.max_video_side,
            max_pixels=lim.max_video_pixels,
            max_aspect=lim.max_image_aspect,
        )


#: FFmpeg demuxers of still images: FFmpeg opens a PNG, JPEG or GIF as a "video", the app does not.
STILL_IMAGE_DEMUXERS = ("image2", "gif", "apng", "webp", "tiff", "svg")


def _is_still_image(container) -> bool:
    name = str(getattr(container.format, "name", "") or "")
    return name.endswith("_pipe") or any(part in STILL_IMAGE_DEMUXERS for part in name.split(","))


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` found.

    ``width`` x ``height`` is the coded size (a phone's portrait video may be stored landscape with a
    display rotation, which :func:`read_frames` applies). ``counted`` is True when the container did
    not store a frame count and the packets were counted.
    """

    frame_count: int
    duration: float
    fps: float
    width: int
    height: int
    counted: bool = field(default=False, compare=False)


def _open(path: str | os.PathLike):
    import av

    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except FileNotFoundError:
        raise MediaError(_NOT_FOUND.format(kind="video")) from None
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        log.info("cannot open video %s: %s", path, exc)
        raise MediaError(
            "This file could not be read as a video (corrupt, incomplete or not a video). "
            "Accepted: MP4, WebM, MKV, MOV or AVI files with a video track."
        ) from exc


def _video_stream(container):
    if not container.streams.video:
        what = "only audio" if container.streams.audio else "no video track"
        raise MediaError(f"This file contains {what} and no video frames. Please upload a video.")
    return container.streams.video[0]


def _too_long(seconds: float, limits: VideoLimits, at_least: bool = False) -> MediaError:
    more = "more than " if at_least else ""
    return MediaError(
        f"The video is too long ({more}{seconds:.1f} s); the limit is {limits.max_seconds:g} s. "
        "Please trim it and try again."
    )


def probe_video(path: str | os.PathLike, limits: VideoLimits | None = None) -> VideoInfo:
    """Frame count, duration, fps and size of the first video stream of ``path``.

    The frame count comes from the container when it stores one, otherwise from counting the video
    packets (demux only; counting stops as soon as the timestamps pass ``limits.max_seconds``, so an
    endless stream cannot hang it). Raises :class:`MediaError` for a missing, empty, corrupt,
    audio-only, zero-frame, too long or too large file.
    """
    import av

    limits = limits or VideoLimits.from_settings(load_settings())
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise MediaError(_NOT_FOUND.format(kind="video")) from None
    if size == 0:
        raise MediaError("The video file is empty (0 bytes). Please upload an MP4 or WebM video.")
    if size > limits.max_bytes:
        raise MediaError(
            f"The video file is too big ({size / 2**20:.1f} MB); "
            f"the limit is {limits.max_bytes / 2**20:.1f} MB."
        )
    with _open(p) as container:
        if _is_still_image(container):
            raise MediaError(
                "This file is a still image, not a video. Upload it as the reference image instead, or "
                "upload an MP4, WebM, MKV, MOV or AVI video."
            )
        stream = _video_stream(container)
        ctx = stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if width > 0 and height > 0:
            if max(width, height) > limits.max_side or width * height > limits.max_pixels:
                raise MediaError(
                    f"The video resolution {width}x{height} is too large; the limit is a longest side of "
                    f"{limits.max_side} pixels and {limits.max_pixels:,} pixels per frame (1080p). "
                    "Please downscale it and try again."
                )
            if max(width, height) / min(width, height) > limits.max_aspect:
                raise MediaError(
                    f"The video frame is too elongated ({width}x{height}); the longest side may be at most "
                    f"{limits.max_aspect:g} times the shortest."
                )
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        tb = float(stream.time_base) if stream.time_base else 0.0
        duration = 0.0
        if stream.duration and tb:
            duration = float(stream.duration * tb)
        elif container.duration:
            duration = container.duration / av.time_base
        if duration > limits.max_seconds + 0.5:
            raise _too_long(duration, limits)
        frame_count = int(stream.frames or 0)
        counted = frame_count <= 0
        if counted:
            frame_count, counted_duration = _count_packets(container, stream, limits, fps)
            duration = duration or counted_duration
        if frame_count <= 0:
            raise MediaError("The video contains no frames (0 frames decoded). Please upload another video.")
        if width <= 0 or height <= 0:
            raise MediaError("The video does not declare a frame size; it may be corrupt.")
        if not duration and fps:
            duration = frame_count / fps
        if not fps and duration:
            fps = frame_count / duration
        if duration > limits.max_seconds + 0.5:
            raise _too_long(duration, limits)
    return VideoInfo(frame_count, float(duration), float(fps), width, height, counted)


def _count_packets(container, stream, limits: VideoLimits, fps: float) -> tuple[int, float]:
    """Count the video packets without decoding; stop (MediaError) once past the duration limit."""
    import av

    tb = float(stream.time_base or 0)
    max_frames = int(limits.max_seconds * max(fps, 1.0) * 4) + 100  # guard for streams without pts
    count, first, last, last_dur = 0, None, None, 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            count += 1
            if packet.pts is not None and tb:
                first = packet.pts if first is None else min(first, packet.pts)
                if last is None or packet.pts >= last:
                    last, last_dur = packet.pts, packet.duration or 0
                if (packet.pts - first) * tb > limits.max_seconds + 0.5:
                    raise _too_long((packet.pts - first) * tb, limits, at_least=True)
            elif count > max_frames:
                raise _too_long(count / max(fps, 1.0), limits, at_least=True)
    except av.error.FFmpegError as exc:
        log.info("demux stopped early: %s", exc)
        if count == 0:
            raise MediaError("The video data is corrupt and no frame could be read.") from exc
    duration = float((last - first + last_dur) * tb) if last is not None and first is not None else 0.0
    return count, duration


def sample_frame_indices(frame_count: int, k: int = 15) -> list[int]:
    """CoVR's frame sampling: the middle frame of each of K = min(N, k) equal bins of [0, N)."""
    if frame_count <= 0 or k <= 0:
        return []
    n_bins = min(frame_count, k)
    edges = np.linspace(0, frame_count, n_bins + 1).astype(int)
    return [int((start + end - 1) // 2) for start, end in zip(edges[:-1], edges[1:])]


@dataclass
class _PacketIndex:
    pts_sorted: list[int]  # presentation timestamps of all frames, sorted: position = frame index
    key_indices: list[int]  # frame indices of keyframes (sorted)
    usable: bool  # every packet had a distinct pts


def _index_packets(path: str | os.PathLike) -> _PacketIndex:
    """Demux (no decoding) the video packets: sorted pts (position = frame index) and keyframes."""
    import av

    with _open(path) as container:
        stream = _video_stream(container)
        pts_list, key_pts = [], []
        usable = True
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.pts is None:
                    usable = False
                    continue
                pts_list.append(packet.pts)
                if packet.is_keyframe:
                    key_pts.append(packet.pts)
        except av.error.FFmpegError as exc:  # damaged tail: index what could be read
            log.info("packet index of %s stops early: %s", path, exc)
    pts_sorted = sorted(pts_list)
    if len(set(pts_sorted)) != len(pts_sorted):
        usable = False
    key_indices = sorted(bisect.bisect_left(pts_sorted, p) for p in key_pts) if usable else []
    return _PacketIndex(pts_sorted, key_indices, usable)


_ROTATIONS = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


def _frame_to_image(frame) -> Image.Image:
    """RGB PIL image of a decoded frame, turned upright by the container's display rotation.

    ``frame.rotation`` is the counter-clockwise angle of the display matrix (phones store portrait
    videos as landscape plus a rotation); PIL's ``ROTATE_90`` is counter-clockwise too.
    """
    image = frame.to_image()  # RGB (never BGR)
    try:
        angle = int(round(frame.rotation or 0)) % 360
    except (AttributeError, TypeError, ValueError):
        angle = 0
    if angle in _ROTATIONS:
        image = image.transpose(_ROTATIONS[angle])
    return image


MAX_BAD_PACKETS = 200  # give up on a stream after this many undecodable packets


def _decode_skipping_errors(container, stream, stats: dict):
    """Yield decoded frames; a packet the decoder rejects (corrupt data) is skipped, not fatal."""
    import av

    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError as exc:
            stats["bad_packets"] += 1
            log.debug("skipping undecodable packet pts=%s: %s", packet.pts, exc)
            if stats["bad_packets"] > MAX_BAD_PACKETS:
                raise
            continue
        yield from frames


def read_frames(
    path: str | os.PathLike, indices: Sequence[int], *, allow_seek: bool = True
) -> list[Image.Image]:
    """Decode the frames at ``indices`` (presentation order, 0-based) as RGB images, in the given order.

    One forward decode; only the wanted frames are converted to RGB. Seeks to a keyframe only when
    one lies more than ``SEEK_MIN_GAP`` frames ahead of the decoder and not after the next wanted
    frame (frames are then identified by pts, so seeking never changes the result). Indices past the
    real end of the video (a container that over-reports its frame count) get the last frame.
    """
    frames, _stats = _read_frames(path, indices, allow_seek=allow_seek)
    return frames


def _read_frames(
    path: str | os.PathLike, indices: Sequence[int], allow_seek: bool = True
) -> tuple[list[Image.Image], dict]:
    """:func:`read_frames` plus statistics ``{"seeks": n, "decoded": n}`` (for tests and benchmarks)."""
    import av

    wanted_list = [int(i) for i in indices]
    if any(i < 0 for i in wanted_list):
        raise ValueError(f"frame indices must be >= 0, got {min(wanted_list)}")
    stats = {"seeks": 0, "decoded": 0, "bad_packets": 0}
    if not wanted_list:
        return [], stats
    wanted = sorted(set(wanted_list))
    # A demux-only pass (a few ms): frames are identified by pts (robust to skipped corrupt packets
    # and to seeks) and keyframe positions tell where a seek pays off.
    index = _index_packets(path)
    use_pts = bool(index.usable and index.pts_sorted)
    keys = index.key_indices if use_pts and allow_seek else []
    pts_pos = {p: i for i, p in enumerate(index.pts_sorted)} if use_pts else {}
    got: dict[int, Image.Image] = {}
    last_frame = None
    pos = -1  # index of the last decoded frame
    with _open(path) as container:
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        frames_iter = _decode_skipping_errors(container, stream, stats)
        next_i, sought = 0, -1  # next position in `wanted`; keyframe index of the last seek
        try:
            while next_i < len(wanted):
                target = wanted[next_i]
                if keys and keys[0] <= target:
                    k = keys[bisect.bisect_right(keys, target) - 1]
                    if k > pos + SEEK_MIN_GAP and k != sought:
                        container.seek(index.pts_sorted[k], stream=stream, backward=True, any_frame=False)
                        frames_iter = _decode_skipping_errors(container, stream, stats)
                        sought = k
                        stats["seeks"] += 1
                frame = next(frames_iter, None)
                if frame is None:
                    break
                stats["decoded"] += 1
                last_frame = frame
                if use_pts and frame.pts is not None:
                    idx = pts_pos.get(frame.pts)
                    if idx is None:  # unexpected pts: the nearest known frame
                        idx = min(bisect.bisect_left(index.pts_sorted, frame.pts), len(index.pts_sorted) - 1)
                else:
                    idx = pos + 1
                pos = idx
                if idx < target:
                    continue  # decoded for reference only: never converted to RGB
                # `target` (and any wanted frame the decoder skipped over) gets the first frame at/after it
                image = _frame_to_image(frame)
                while next_i < len(wanted) and wanted[next_i] <= idx:
                    if wanted[next_i] != idx:
                        log.warning("%s: frame %d was not output by the decoder; using frame %d", path,
                                    wanted[next_i], idx)
                    got[wanted[next_i]] = image
                    next_i += 1
        except av.error.FFmpegError as exc:
            log.warning("decoding %s stopped early: %s", path, exc)
    missing = [i for i in wanted if i not in got]
    if missing:
        if last_frame is None:
            raise MediaError("The video data is corrupt or empty: no frame could be decoded.")
        log.warning("%s: frames %s are past the decoded end (%d frames); using the last frame",
                    path, missing, pos + 1)
        fallback = _frame_to_image(last_frame)
        for i in missing:
            got[i] = fallback
    return [got[i] for i in wanted_list], stats


def middle_frame(path: str | os.PathLike, limits: VideoLimits | None = None) -> Image.Image:
    """The frame at index ``frame_count // 2`` (the query frame of a video reference), RGB."""
    info = probe_video(path, limits)
    return read_frames(path, [info.frame_count // 2])[0]


def load_video_frames(
    path: str | os.PathLike, k: int = 15, limits: VideoLimits | None = None
) -> tuple[VideoInfo, list[int], list[Image.Image]]:
    """Probe ``path``, sample CoVR's ``k`` frame indices and decode them: ``(info, indices, frames)``."""
    info = probe_video(path, limits)
    indices = sample_frame_indices(info.frame_count, k)
    return info, indices, read_frames(path, indices)


def pool_frame_embeddings(
    frame_embs: np.ndarray, scores: Sequence[float] | None = None, temperature: float = 0.1
) -> np.ndarray:
    """Pool ``[n, d]`` frame embeddings into one L2-normalised ``[d]`` float32 video embedding.

    Weights are ``softmax(scores / temperature)`` when ``scores`` has one finite value per frame,
    uniform otherwise (CoVR's ``emb_pool="query"``; uniform = plain mean).
    """
    embs = np.asarray(frame_embs, dtype=np.float64)
    if embs.ndim != 2 or embs.shape[0] == 0:
        raise ValueError(f"frame_embs must have shape [n>0, d], got {embs.shape}")
    n = embs.shape[0]
    weights = np.full(n, 1.0 / n)
    if scores is not None:
        s = np.asarray(list(scores), dtype=np.float64)
        if s.shape == (n,) and np.all(np.isfinite(s)):
            z = s / temperature
            z -= z.max()
            w = np.exp(z)
            weights = w / w.sum()
        elif len(s):
            log.debug("ignoring %d scores for %d frames (uniform weights)", len(s), n)
    pooled = weights @ embs
    norm = float(np.linalg.norm(pooled))
    if norm > 0 and math.isfinite(norm):
        pooled = pooled / norm
    return pooled.astype(np.float32)


def video_frame_strip(frames: Sequence[Image.Image], height: int = 96, gap: int = 2) -> Image.Image:
    """The frames side by side at ``height`` pixels (aspect kept), on a white background, for the UI."""
    if not frames:
        return Image.new("RGB", (height, height), (255, 255, 255))
    resized = []
    for frame in frames:
        w = max(1, round(frame.width * height / max(frame.height, 1)))
        resized.append(frame.convert("RGB").resize((w, height), Image.Resampling.BILINEAR))
    total = sum(im.width for im in resized) + gap * (len(resized) - 1)
    strip = Image.new("RGB", (total, height), (255, 255, 255))
    x = 0
    for im in resized:
        strip.paste(im, (x, 0))
        x += im.width + gap
    return strip
