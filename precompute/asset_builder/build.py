"""Rebuild the bundled demo gallery's media (``assets/``) from redistributable package data.

Sources: scikit-image's bundled photos (CC0 / public domain), scikit-learn's two sample photos
(CC-BY 2.0), Debian ``opencv-doc``'s example images and the ``tree.avi`` / ``vtest.avi`` clips
(Apache-2.0 AND BSD-3-Clause). Photos are cropped/resized (longest side <= 640) and saved as JPEG;
videos are cut from the clips or made from the photos (pans, zooms, cross-fades) with PyAV as
H.264 mp4 (<= 480 lines). Also writes ``gallery.csv``, ``ATTRIBUTION.csv``/``.md`` and the
hand-written mini benchmark files (``--only benchmark``; texts in ``precompute/asset_builder/mini_benchmark.py``).

Set-up (only for rebuilding; the app needs none of this)::
    apt-get install -y opencv-doc wordnet-base
    .venv/bin/pip install -r requirements-assets.txt

Examples::
    python -m precompute.asset_builder                     # images + videos + tables + benchmark
    python -m precompute.asset_builder --only videos
    python -m precompute.asset_builder --classes           # also covr_core/data/imagenet_classes.*
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from precompute.asset_builder.imagenet_classes import build_imagenet_classes
from precompute.asset_builder.mini_benchmark import write_benchmark
from precompute.asset_builder.specs import IMAGES, OPENCV_LICENCE, SOURCES, VIDEOS, ImageSpec, VideoSpec

log = logging.getLogger("precompute.asset_builder")

ROOT = Path(__file__).resolve().parents[2]
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
MAX_SIDE = 640
FPS = 24
VIDEO_SIZE = (480, 360)  #: output of photo-made videos (4:3, <= 480 lines)


# ----------------------------------------------------------------------------------------- sources
def source_path(source: str, file: str) -> Path:
    """Where ``file`` of ``source`` (opencv | skimage | sklearn) lies on this machine."""
    if source == "opencv":
        path = OPENCV_DATA / file
    elif source == "skimage":
        import skimage

        path = Path(skimage.__file__).parent / "data" / file
    elif source == "sklearn":
        import sklearn

        path = Path(sklearn.__file__).parent / "datasets" / "images" / file
    else:
        raise ValueError(f"unknown source {source!r}")
    if not path.is_file():
        hint = ("apt-get install -y opencv-doc" if source == "opencv"
                else "pip install -r requirements-assets.txt")
        raise FileNotFoundError(f"{path} is missing ({hint})")
    return path


def load_source_image(spec: ImageSpec) -> Image.Image:
    """The spec's photo as RGB (transparency composited on white), cropped, longest side <= 640."""
    img = Image.open(source_path(spec.source, spec.file))
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    img = img.convert("RGB")
    if spec.crop is not None:
        img = img.crop(spec.crop)
    if max(img.size) > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
    return img


# ----------------------------------------------------------------------------------------- images
def build_images(out: Path) -> list[dict]:
    """Write ``images/<id>.jpg`` for every spec; returns gallery rows."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in IMAGES:
        img = load_source_image(spec)
        rel = f"images/{spec.id}.jpg"
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85, optimize=True)
        (out / rel).write_bytes(buf.getvalue())
        rows.append({"id": spec.id, "kind": "image", "media": rel, "caption": spec.caption,
                     "split": "demo", "duration": ""})
        log.info("image %s %s", rel, img.size)
    return rows


# ----------------------------------------------------------------------------------------- videos
def _fit_box(w: int, h: int, box: Sequence[float], aspect: float) -> tuple[float, float, float, float]:
    """A pixel box around ``box`` (fractions) with the given aspect ratio, inside the image."""
    x0, y0, x1, y1 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    cx, cy, bw, bh = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    if bw / bh < aspect:
        bw = bh * aspect
    else:
        bh = bw / aspect
    if bw > w:
        bw, bh = w, w / aspect
    if bh > h:
        bh, bw = h, h * aspect
    cx = min(max(cx, bw / 2), w - bw / 2)
    cy = min(max(cy, bh / 2), h - bh / 2)
    return cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2


def _lerp(a, b, t: float):
    return tuple(x + (y - x) * t for x, y in zip(a, b))


def _ease(t: float) -> float:
    return 0.5 - 0.5 * np.cos(np.pi * t)


def photo_frames(spec: VideoSpec, images: dict[str, Image.Image]) -> list[Image.Image]:
    """Frames of a pan / zoom / fade made from the bundled photos."""
    n = int(round(spec.duration * FPS))
    ow, oh = VIDEO_SIZE
    aspect = ow / oh
    img = images[spec.sources[0]]
    w, h = img.size
    full = _fit_box(w, h, (0, 0, 1, 1), aspect)
    frames = []
    if spec.kind in ("zoom_in", "zoom_out"):
        tight = _fit_box(w, h, spec.box, aspect)
        a, b = (full, tight) if spec.kind == "zoom_in" else (tight, full)
        for i in range(n):
            box = _lerp(a, b, _ease(i / (n - 1)))
            frames.append(img.resize((ow, oh), Image.BICUBIC, box=box))
    elif spec.kind == "pan":
        win = _fit_box(w, h, spec.box, aspect)
        bw = win[2] - win[0]
        for i in range(n):
            x = (w - bw) * _ease(i / (n - 1))
            frames.append(img.resize((ow, oh), Image.BICUBIC, box=(x, win[1], x + bw, win[3])))
    elif spec.kind == "fade":
        a = images[spec.sources[0]]
        b = images[spec.sources[1]]
        fa = a.resize((ow, oh), Image.BICUBIC, box=_fit_box(*a.size, (0, 0, 1, 1), aspect))
        fb = b.resize((ow, oh), Image.BICUBIC, box=_fit_box(*b.size, (0, 0, 1, 1), aspect))
        for i in range(n):
            t = min(max((i / (n - 1) - 0.3) / 0.4, 0.0), 1.0)  # hold, fade over the middle 40 %, hold
            frames.append(Image.blend(fa, fb, float(_ease(t))))
    else:
        raise ValueError(f"unknown video kind {spec.kind!r}")
    return frames


def clip_frames(spec: VideoSpec) -> tuple[list[Image.Image], Fraction]:
    """Frames of ``spec.duration`` seconds from ``spec.start`` of an opencv-doc clip, <= 480x360."""
    import av

    path = source_path("opencv", spec.sources[0])
    frames: list[Image.Image] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate) if stream.average_rate else Fraction(FPS)
        first = int(round(spec.start * rate))
        count = int(round(spec.duration * rate))
        for i, frame in enumerate(container.decode(stream)):
            if i < first:
                continue
            if len(frames) >= count:
                break
            img = frame.to_image().convert("RGB")
            if img.height > VIDEO_SIZE[1]:
                img = img.resize(VIDEO_SIZE, Image.BICUBIC)
            frames.append(img)
    return frames, rate


def write_mp4(frames: Sequence[Image.Image], path: Path, rate: Fraction = Fraction(FPS)) -> None:
    """Encode RGB frames as H.264 (yuv420p, CRF 28) mp4 with PyAV."""
    import av

    w, h = frames[0].size
    w, h = w - w % 2, h - h % 2
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "28", "preset": "slow", "movflags": "+faststart"}
        for img in frames:
            frame = av.VideoFrame.from_image(img.crop((0, 0, w, h)))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def build_videos(out: Path) -> list[dict]:
    """Write ``videos/<id>.mp4`` for every spec; returns gallery rows."""
    (out / "videos").mkdir(parents=True, exist_ok=True)
    photos = {s.id: load_source_image(s) for s in IMAGES}
    rows = []
    for spec in VIDEOS:
        if spec.kind == "clip":
            frames, rate = clip_frames(spec)
        else:
            frames, rate = photo_frames(spec, photos), Fraction(FPS)
        rel = f"videos/{spec.id}.mp4"
        write_mp4(frames, out / rel, rate)
        duration = round(len(frames) / float(rate), 2)
        rows.append({"id": f"videos/{spec.id}", "kind": "video", "media": rel, "caption": spec.caption,
                     "split": "demo", "duration": duration})
        log.info("video %s %d frames %.2fs", rel, len(frames), duration)
    return rows


# ----------------------------------------------------------------------------------------- tables
def attribution_rows() -> list[dict]:
    """One provenance row per media file (``media, source_package, original_file, licence, notes``)."""
    rows = [{"media": f"images/{s.id}.jpg", "source_package": SOURCES[s.source], "original_file": s.file,
             "licence": s.licence, "notes": s.notes or "resized/re-encoded as JPEG"} for s in IMAGES]
    by_id = {s.id: s for s in IMAGES}
    for v in VIDEOS:
        if v.kind == "clip":
            rows.append({"media": f"videos/{v.id}.mp4", "source_package": SOURCES["opencv"],
                         "original_file": v.sources[0], "licence": v.licence or OPENCV_LICENCE,
                         "notes": f"{v.notes}; {v.duration:g} s from {v.start:g} s, H.264"})
            continue
        srcs = [by_id[i] for i in v.sources]
        rows.append({
            "media": f"videos/{v.id}.mp4",
            "source_package": "; ".join(dict.fromkeys(SOURCES[s.source] for s in srcs)),
            "original_file": "; ".join(s.file for s in srcs),
            "licence": "; ".join(dict.fromkeys(s.licence for s in srcs)),
            "notes": f"{v.kind.replace('_', ' ')} made with PyAV from "
            + " and ".join(f"images/{s.id}.jpg" for s in srcs)
            + "".join(f"; {s.notes}" for s in srcs if "rights reserved" in s.notes.lower()),
        })
    return rows


def _write_csv(path: Path, rows: list[dict], columns: Sequence[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def write_tables(out: Path, gallery_rows: list[dict]) -> None:
    """Write ``gallery.csv``, ``ATTRIBUTION.csv`` and ``ATTRIBUTION.md``."""
    _write_csv(out / "gallery.csv", gallery_rows, ["id", "kind", "media", "caption", "split", "duration"])
    rows = attribution_rows()
    _write_csv(out / "ATTRIBUTION.csv", rows,
               ["media", "source_package", "original_file", "licence", "notes"])
    md = ["# Attribution of the bundled demo media", "",
          "Generated by `python -m precompute.asset_builder` (machine-readable copy: `ATTRIBUTION.csv`).",
          "Every file is cropped/resized and re-encoded from the package named; videos are cuts of the",
          "opencv-doc clips or pans/zooms/cross-fades made from the photos listed.", "",
          "Photos from scikit-learn (`china.jpg`, `flower.jpg`) are licensed CC BY 2.0",
          "(https://creativecommons.org/licenses/by/2.0/); scikit-learn's README credits",
          "'Some rights reserved by danielbuechele' (photo pages flickr.com/photos/danielbuechele/6061409035",
          "and flickr.com/photos/vultilion/6056698931). They were cropped/resized here.", "",
          "| media | source package | original file | licence | notes |", "|---|---|---|---|---|"]
    for r in rows:
        md.append("| " + " | ".join(str(r[k]).replace("|", "/") for k in
                                     ("media", "source_package", "original_file", "licence", "notes")) + " |")
    (out / "ATTRIBUTION.md").write_text("\n".join(md) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------- classes
def build_classes() -> None:
    """Rebuild ``covr_core/data/imagenet_classes.json`` and its MiniLM embedding cache."""
    from covr_core.lite import CLASSES_FILE, load_lite_encoder, save_class_embeddings

    build_imagenet_classes(CLASSES_FILE)
    enc = load_lite_encoder(class_embedding_cache=None)
    log.info("wrote %s", save_class_embeddings(enc))


# ----------------------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags (see ``--help``)."""
    p = argparse.ArgumentParser(prog="python -m precompute.asset_builder", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "assets",
                   help="assets folder to write (default: %(default)s)")
    p.add_argument("--only", choices=("images", "videos", "tables", "benchmark"), action="append",
                   help="rebuild only these parts (repeatable); default: all")
    p.add_argument("--classes", action="store_true",
                   help="also rebuild covr_core/data/imagenet_classes.json and its embedding cache "
                   "(needs imagenet-classes and Debian wordnet-base)")
    return p.parse_args(argv)


def run(out: Path, only: Sequence[str] | None = None, classes: bool = False) -> dict:
    """Rebuild the selected parts; returns counts."""
    parts = set(only or ("images", "videos", "tables", "benchmark"))
    out.mkdir(parents=True, exist_ok=True)
    image_rows = build_images(out) if parts & {"images", "tables"} else []
    video_rows = build_videos(out) if "videos" in parts else []
    if "tables" in parts or ("images" in parts and "videos" in parts):
        if not video_rows:
            video_rows = _existing_video_rows(out)
        write_tables(out, image_rows + video_rows)
    if "benchmark" in parts:
        write_benchmark(out)
    if classes:
        build_classes()
    return {"images": len(image_rows), "videos": len(video_rows)}


def _existing_video_rows(out: Path) -> list[dict]:
    import av

    rows = []
    for spec in VIDEOS:
        path = out / "videos" / f"{spec.id}.mp4"
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            dur = round(float(s.frames / s.average_rate), 2)
        rows.append({"id": f"videos/{spec.id}", "kind": "video", "media": f"videos/{spec.id}.mp4",
                     "caption": spec.caption, "split": "demo", "duration": dur})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m precompute.asset_builder``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = parse_args(argv)
    counts = run(args.out, args.only, args.classes)
    log.info("done: %s", counts)
    return 0

