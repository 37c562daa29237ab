"""Video probing, CoVR frame sampling, frame-accurate decoding, bad videos and pooling (real PyAV files)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from covr_core.media import (
    MediaError,
    VideoLimits,
    load_video_frames,
    middle_frame,
    pool_frame_embeddings,
    probe_video,
    read_frames,
    sample_frame_indices,
    video_frame_strip,
)
from covr_core.media_video import SEEK_MIN_GAP, _read_frames
from covr_core.settings import load_settings
from helpers.media_files import (
    decode_frame_index,
    is_red_bottom,
    write_audio_only_mp4,
    write_corrupt_mp4,
    write_empty_file,
    write_test_clip,
    write_zero_frame_mp4,
)


def covr_reference_indices(vlen: int, n_frms: int = 15) -> list[int]:
    """CoVR's sampling, written as in tools/embs/save_blip_embs_vids.py (covr.md §3.2)."""
    acc_samples = min(n_frms, vlen)
    intervals = np.linspace(start=0, stop=vlen, num=acc_samples + 1).astype(int)
    ranges = [(intervals[i], intervals[i + 1]) for i in range(len(intervals) - 1)]
    return [(x[0] + x[1] - 1) // 2 for x in ranges]


# ----------------------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("n", [1, 2, 3, 7, 14, 15, 16, 29, 30, 31, 100, 299, 1000, 12345])
def test_sample_frame_indices_equal_covr_formula(n):
    got = sample_frame_indices(n)
    assert got == [int(i) for i in covr_reference_indices(n)]
    assert len(got) == min(n, 15)
    assert got == sorted(set(got)) and 0 <= got[0] and got[-1] < n


def test_sample_frame_indices_known_values():
    assert sample_frame_indices(30) == list(range(0, 30, 2))
    assert sample_frame_indices(15) == list(range(15))
    assert sample_frame_indices(4) == [0, 1, 2, 3]
    assert sample_frame_indices(100, k=4) == [12, 37, 62, 87]
    assert sample_frame_indices(0) == [] and sample_frame_indices(10, k=0) == []


# ----------------------------------------------------------------------------------------- good clips
CLIPS = {
    # name: (file name, builder kwargs, container stores a frame count)
    "mp4-h264-bframes": ("h264.mp4", {"codec": "libx264", "bframes": 2}, True),
    "mp4-mpeg4": ("mpeg4.mp4", {"codec": "mpeg4"}, True),
    "mp4-vfr": ("vfr.mp4", {"vfr": True}, True),
    "mp4-with-audio": ("audio.mp4", {"audio": True}, True),
    "webm-vp8": ("clip.webm", {"codec": "libvpx"}, False),
    "webm-vp9": ("vp9.webm", {"codec": "libvpx-vp9"}, False),
    "mkv-h264": ("clip.mkv", {}, False),
    "mkv-streamed-vfr": ("live.mkv", {"streamed": True, "vfr": True}, False),
}
N_FRAMES = 47


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    out = {}
    for key, (name, kwargs, _stored) in CLIPS.items():
        path = folder / name
        times = write_test_clip(path, N_FRAMES, fps=25, **kwargs)
        out[key] = (path, times)
    return out


@pytest.mark.parametrize("key", list(CLIPS))
def test_probe_counts_frames_even_without_stored_count(clips, key):
    path, times = clips[key]
    stored = CLIPS[key][2]
    with av.open(str(path)) as container:
        assert (container.streams.video[0].frames > 0) == stored  # the case really is what it claims
    info = probe_video(path)
    assert info.frame_count == N_FRAMES
    assert info.counted is (not stored)
    assert (info.width, info.height) == (80, 48)
    assert info.fps > 0
    assert info.duration == pytest.approx(times[-1], abs=0.35)


@pytest.mark.parametrize("key", list(CLIPS))
def test_read_frames_returns_the_sampled_frames_in_rgb(clips, key):
    path, _ = clips[key]
    info, indices, frames = load_video_frames(path, k=15)
    assert indices == sample_frame_indices(N_FRAMES, 15)
    assert [decode_frame_index(f) for f in frames] == indices
    for frame in frames:
        assert frame.mode == "RGB" and frame.size == (80, 48)
        assert is_red_bottom(frame), "channel order slipped (red band decoded as blue)"


@pytest.mark.parametrize("key", list(CLIPS))
def test_middle_frame_is_frame_count_half(clips, key):
    path, _ = clips[key]
    assert decode_frame_index(middle_frame(path)) == N_FRAMES // 2


def test_vfr_index_is_frame_count_not_pts_times_fps(clips):
    path, times = clips["mp4-vfr"]
    with av.open(str(path)) as container:
        nominal = float(container.streams.video[0].guessed_rate)  # what a pts*fps rule would use
    naive = [round(t * nominal) for t in times]
    assert naive[5] != 5 and naive != list(range(N_FRAMES)), "the clip must really have a variable frame rate"
    wanted = [0, 1, 2, 3, 10, 30, 46]
    assert [decode_frame_index(f) for f in read_frames(path, wanted)] == wanted


def test_read_frames_keeps_requested_order_and_duplicates(clips):
    path, _ = clips["mp4-h264-bframes"]
    wanted = [40, 3, 3, 0, 46, 20]
    assert [decode_frame_index(f) for f in read_frames(path, wanted)] == wanted
    assert read_frames(path, []) == []
    with pytest.raises(ValueError):
        read_frames(path, [-1])


def test_index_past_the_end_gets_the_last_frame(clips):
    path, _ = clips["webm-vp8"]
    frames = read_frames(path, [5, N_FRAMES + 10])
    assert [decode_frame_index(f) for f in frames] == [5, N_FRAMES - 1]


@pytest.fixture(scope="module")
def long_gop_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seek")
    out = {}
    specs = {"k12.mp4": {"gop": 12}, "k10.webm": {"gop": 10}, "vfr.mkv": {"gop": 10, "vfr": True}}
    for name, kwargs in specs.items():
        write_test_clip(folder / name, 240, **kwargs)
        out[name] = folder / name
    return out


@pytest.mark.parametrize("name", ["k12.mp4", "k10.webm", "vfr.mkv"])
def test_seeking_is_frame_accurate(long_gop_clips, name):
    path = long_gop_clips[name]
    wanted = [2, 3, 90, 91, 150, 200, 239]
    frames, stats = _read_frames(path, wanted)
    assert [decode_frame_index(f) for f in frames] == wanted
    assert stats["seeks"] >= 2, "far-apart frames with keyframes in between must seek"
    assert stats["decoded"] < 240
    forward, forward_stats = _read_frames(path, wanted, allow_seek=False)
    assert forward_stats["seeks"] == 0 and forward_stats["decoded"] == 240
    for a, b in zip(frames, forward):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_dense_sampling_decodes_forward_once(long_gop_clips):
    path = long_gop_clips["k12.mp4"]
    indices = sample_frame_indices(240, 15)  # bins of 16 frames < SEEK_MIN_GAP: no seek is worth it
    assert max(b - a for a, b in zip(indices, indices[1:])) < SEEK_MIN_GAP
    frames, stats = _read_frames(path, indices)
    assert stats["seeks"] == 0 and stats["decoded"] == indices[-1] + 1
    assert [decode_frame_index(f) for f in frames] == indices


# ----------------------------------------------------------------------------------------- bad videos
def _message(path, limits=None) -> str:
    with pytest.raises(MediaError) as err:
        probe_video(path, limits)
    msg = str(err.value)
    assert msg and "Traceback" not in msg and len(msg) < 400
    return msg


def test_zero_frame_mp4_is_refused(tmp_path):
    path = write_zero_frame_mp4(tmp_path / "zero.mp4")
    with av.open(str(path)) as container:
        assert len(container.streams.video) == 1  # a video track exists, it is just empty
    assert "no frames" in _message(path)


def test_audio_only_mp4_is_refused(tmp_path):
    path = write_audio_only_mp4(tmp_path / "audio.mp4")
    msg = _message(path)
    assert "only audio" in msg and "video" in msg


@pytest.mark.parametrize("mode", ["garbage", "truncated", "text"])
def test_corrupt_mp4_is_refused(tmp_path, mode):
    path = write_corrupt_mp4(tmp_path / f"{mode}.mp4", mode)
    msg = _message(path)
    assert "could not be read as a video" in msg and "MP4" in msg
    with pytest.raises(MediaError):
        middle_frame(path)


def test_empty_and_missing_files_are_refused(tmp_path):
    assert "empty" in _message(write_empty_file(tmp_path / "empty.mp4"))
    assert "not found" in _message(tmp_path / "nope.mp4")


def test_too_long_video_is_refused_from_header(tmp_path):
    path = tmp_path / "long.mp4"
    write_test_clip(path, 40, fps=10)  # 4 s
    msg = _message(path, VideoLimits(max_seconds=2))
    assert "too long" in msg and "4.0 s" in msg and "2 s" in msg
    assert probe_video(path, VideoLimits(max_seconds=5)).frame_count == 40


def test_endless_stream_stops_counting_past_the_limit(tmp_path):
    path = tmp_path / "live.mkv"
    write_test_clip(path, 60, fps=10, streamed=True)  # no duration, no frame count stored
    with av.open(str(path)) as container:
        assert container.duration is None and container.streams.video[0].frames == 0
    msg = _message(path, VideoLimits(max_seconds=2))
    assert "too long" in msg and "more than" in msg


def test_too_large_video_is_refused(tmp_path):
    wide = tmp_path / "wide.mp4"
    write_test_clip(wide, 2, size=(2000, 64))  # longer side than the default 1920
    msg = _message(wide)
    assert "2000x64" in msg and "1920" in msg
    small = tmp_path / "small.mp4"
    write_test_clip(small, 2, size=(80, 48))
    assert "too large" in _message(small, VideoLimits(max_side=1920, max_pixels=80 * 40))
    assert "too big" in _message(small, VideoLimits(max_bytes=100))


def test_video_limits_from_settings():
    settings = load_settings(
        {"COVR_MAX_VIDEO_SECONDS": "7.5", "COVR_MAX_VIDEO_SIDE": "640", "COVR_MAX_UPLOAD_MB": "2"}
    )
    limits = VideoLimits.from_settings(settings)
    assert limits == VideoLimits(max_bytes=2 * 2**20, max_seconds=7.5, max_side=640, max_pixels=1920 * 1088)
    assert VideoLimits.from_settings(load_settings({})) == VideoLimits()


# ----------------------------------------------------------------------------------------- pooling
def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_pool_mean_equals_definition():
    embs = _unit(np.random.default_rng(0).normal(size=(7, 16))).astype(np.float32)
    pooled = pool_frame_embeddings(embs)
    expected = embs.mean(0) / np.linalg.norm(embs.mean(0))
    assert pooled.dtype == np.float32 and pooled.shape == (16,)
    np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-6)
    assert np.linalg.norm(pooled) == pytest.approx(1.0, abs=1e-5)


def test_pool_softmax_weights_equal_definition():
    rng = np.random.default_rng(1)
    embs = _unit(rng.normal(size=(5, 8)))
    scores = [0.31, 0.28, 0.35, 0.22, 0.30]
    weights = np.exp(np.array(scores) / 0.1) / np.exp(np.array(scores) / 0.1).sum()
    expected = weights @ embs
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(pool_frame_embeddings(embs, scores), expected, rtol=1e-5, atol=1e-6)
    sharper = pool_frame_embeddings(embs, scores, temperature=0.001)  # ~ the best-scoring frame
    np.testing.assert_allclose(sharper, embs[2] / np.linalg.norm(embs[2]), atol=1e-4)
    huge = pool_frame_embeddings(embs, [1e6, 0, 0, 0, 0])  # no overflow
    np.testing.assert_allclose(huge, embs[0], atol=1e-5)


@pytest.mark.parametrize("scores", [[], [0.1, 0.2], [0.1, float("nan"), 0.2, 0.3, 0.4]])
def test_pool_falls_back_to_uniform_for_unusable_scores(scores):
    embs = _unit(np.random.default_rng(2).normal(size=(5, 8)))
    np.testing.assert_allclose(pool_frame_embeddings(embs, scores), pool_frame_embeddings(embs), atol=1e-6)


def test_pool_rejects_empty_input():
    with pytest.raises(ValueError):
        pool_frame_embeddings(np.zeros((0, 4)))


def test_video_frame_strip_layout():
    frames = [Image.new("RGB", (80, 48), (255, 0, 0)), Image.new("RGB", (40, 48), (0, 0, 255))]
    strip = video_frame_strip(frames, height=24)
    assert strip.size == (40 + 2 + 20, 24) and strip.mode == "RGB"
    assert strip.getpixel((5, 5)) == (255, 0, 0) and strip.getpixel((50, 5)) == (0, 0, 255)
    assert video_frame_strip([], height=24).size == (24, 24)


def test_builder_time_base_is_milliseconds_for_vfr(tmp_path):
    times = write_test_clip(tmp_path / "v.mp4", 6, fps=25, vfr=True)
    steps = np.diff(times)
    assert len(set(np.round(steps, 3))) == 3  # three different frame durations
    assert Fraction(str(times[1])) == Fraction(40, 1000)


def test_corrupt_packets_mid_stream_are_skipped(tmp_path):
    path = tmp_path / "damaged.mp4"
    write_test_clip(path, 100, gop=10)
    data = bytearray(path.read_bytes())
    start = data.find(b"mdat") + len(data) // 2
    data[start : start + 300] = np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    info = probe_video(path)  # the header is intact
    indices = sample_frame_indices(info.frame_count)
    frames, stats = _read_frames(path, indices)
    assert stats["bad_packets"] > 0
    assert len(frames) == 15 and all(f.mode == "RGB" and f.size == (80, 48) for f in frames)
    assert [decode_frame_index(f) for f in frames[:3]] == indices[:3]  # before the damage: exact
    assert decode_frame_index(frames[-1]) == indices[-1]  # after the next keyframe: exact again


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_display_rotation_is_applied(tmp_path, rotation):
    path = tmp_path / f"rot{rotation}.mp4"
    write_test_clip(path, 10, size=(80, 48), rotation=rotation)
    frame = read_frames(path, [4])[0]
    assert frame.size == ((48, 80) if rotation % 180 else (80, 48))
    undo = frame.rotate(-rotation, expand=True)  # PIL: positive = counter-clockwise
    assert undo.size == (80, 48) and decode_frame_index(undo) == 4 and is_red_bottom(undo)
