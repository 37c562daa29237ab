"""Benchmark: decoding CoVR's 15 sampled frames from a 10 s 480p clip.

Cases (one JSON line each, on stdout):

* ``forward``: ``covr_core.media.read_frames`` - one forward decode, RGB conversion of the chosen
  frames only, a seek only when a keyframe lies far ahead (frame-accurate);
* ``forward-noseek``: the same with seeking disabled (pure single pass);
* ``naive-seek``: what CoVR's OpenCV script does - one seek per sampled frame, then decode up to it.

Each case runs on clips with a long GOP (keyframe every 250 frames, x264's default) and a short GOP
(every 30 frames). Reported: ``ms_per_video`` (median of ``--repeats``), ``frames_per_s`` (sampled
frames delivered per second), ``decoded`` frames and ``correct`` (every returned frame is the wanted
one: the generated frames encode their index).

    python bench/bench_video_decode.py [--seconds 10] [--fps 30] [--size 854x480] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


import av

from covr_core.media import probe_video, sample_frame_indices
from covr_core.media_video import _read_frames
from tests.helpers.media_files import decode_frame_index, write_test_clip


def naive_seek_read(path: Path, indices: list[int], fps: float) -> tuple[list, int]:
    """Seek to every wanted frame (by its nominal timestamp) and decode up to it, as OpenCV does."""
    images, decoded = [], 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base
        for index in indices:
            target = int(round(index / fps / tb))
            container.seek(target, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                decoded += 1
                if frame.pts is not None and frame.pts >= target:
                    images.append(frame.to_image())
                    break
    return images, decoded


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="clip length, s (default: %(default)s)")
    p.add_argument("--fps", type=int, default=30, help="frame rate (default: %(default)s)")
    p.add_argument("--size", default="854x480", help="WIDTHxHEIGHT, even numbers (default: %(default)s)")
    p.add_argument("--gops", default="250,30", help="keyframe intervals to test (default: %(default)s)")
    p.add_argument("--k", type=int, default=15, help="frames sampled per video (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per case (default: %(default)s)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Generate the clips, time each case, print one JSON line per case."""
    args = parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    n_frames = int(round(args.seconds * args.fps))
    with tempfile.TemporaryDirectory() as tmp:
        for gop in (int(g) for g in args.gops.split(",")):
            path = Path(tmp) / f"clip_gop{gop}.mp4"
            write_test_clip(path, n_frames, fps=args.fps, size=(width, height), gop=gop)
            info = probe_video(path)
            indices = sample_frame_indices(info.frame_count, args.k)
            cases = {
                "forward": lambda: _read_frames(path, indices, allow_seek=True),
                "forward-noseek": lambda: _read_frames(path, indices, allow_seek=False),
                "naive-seek": lambda: naive_seek_read(path, indices, info.fps),
            }
            for name, fn in cases.items():
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    frames, extra = fn()
                    times.append(time.perf_counter() - start)
                decoded = extra["decoded"] if isinstance(extra, dict) else extra
                ms = statistics.median(times) * 1000
                row = {
                    "bench": "video_decode",
                    "case": name,
                    "gop": gop,
                    "size": f"{width}x{height}",
                    "frames_in_video": info.frame_count,
                    "sampled": len(indices),
                    "decoded": decoded,
                    "ms_per_video": round(ms, 1),
                    "frames_per_s": round(len(indices) / (ms / 1000), 1),
                    "correct": [decode_frame_index(f) for f in frames] == indices,
                    "repeats": args.repeats,
                }
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
