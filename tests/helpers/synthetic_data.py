"""Small CIRR, WebVid-CoVR and demo datasets in the real on-disk layouts (real Pillow PNGs, real PyAV mp4s).

- :func:`make_cirr` writes the CIRR repo layout: ``captions/cap.rc2.<split>.json``,
  ``image_splits/split.rc2.<split>.json`` and images under ``img_raw/dev`` (val), ``img_raw/test1`` or
  ``img_raw/train/<n>``. Some split images are deliberately broken: one truncated PNG, one text file named
  ``.png`` and one listed in the split file but absent from disk.
- :func:`make_webvid` writes ``<root>/videos/<folder>/<id>.mp4`` plus a WebVid-CoVR CSV (``txt1, txt2,
  sim_txt, pth1, pth2, edit, scores``); one target video is a corrupt mp4 and one is missing.
- :func:`make_demo_assets` writes an ``assets/``-like folder (``gallery.csv``, ``images/``, ``videos/``).

Every builder is deterministic (seeded) and returns a record of what it wrote, including which items are
expected to fail.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .media_files import write_corrupt_mp4, write_not_an_image, write_test_clip, write_truncated_png

CIRR_PREFIX = {"val": ("dev", "dev"), "test1": ("test1", "test1"), "train": ("train", "train")}
WORDS = ("red", "blue", "dog", "cat", "beach", "car", "tree", "two", "small", "bright", "night", "snow")


@dataclass
class CirrData:
    """What :func:`make_cirr` wrote."""

    root: Path
    split: str
    names: list[str]  #: every image of the split file, in file order
    triplets: list[dict]
    bad: dict[str, str] = field(default_factory=dict)  #: name -> "truncated" | "not-an-image" | "missing"

    @property
    def good_names(self) -> list[str]:
        """Split images expected to embed."""
        return [n for n in self.names if n not in self.bad]


@dataclass
class WebvidData:
    """What :func:`make_webvid` wrote."""

    root: Path
    video_root: Path
    csv: Path
    rows: list[dict]
    videos: list[str]  #: every pth (folder/id) referenced, first-appearance order of targets first
    bad: dict[str, str] = field(default_factory=dict)  #: pth -> "corrupt" | "missing"

    @property
    def targets(self) -> list[str]:
        """Distinct pth2 values in first-appearance order."""
        return list(dict.fromkeys(r["pth2"] for r in self.rows))


def pattern_image(seed: int, size: tuple[int, int] = (40, 32)) -> Image.Image:
    """A deterministic, visibly different RGB image per seed (colour blocks + gradient)."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(base, "RGB").resize((w, h), Image.Resampling.NEAREST)
    arr = np.asarray(img, dtype=np.float32)
    arr = 0.7 * arr + 0.3 * np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB")


def _caption(rng: np.random.Generator, n: int = 5) -> str:
    return " ".join(rng.choice(WORDS, size=n).tolist())


def make_cirr(root: str | Path, split: str = "val", n_images: int = 12, n_triplets: int = 10, seed: int = 0,
              broken: bool = True, image_size: tuple[int, int] = (40, 32)) -> CirrData:
    """Write a CIRR split (see module docstring); ``broken=False`` leaves every image valid."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    prefix, folder = CIRR_PREFIX[split]
    names, split_map = [], {}
    for i in range(n_images):
        name = f"{prefix}-{100 + i // 2}-{i % 2}-img{i % 4}"
        rel = f"./{folder}/{i % 3}/{name}.png" if split == "train" else f"./{folder}/{name}.png"
        names.append(name)
        split_map[name] = rel
        path = root / "img_raw" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pattern_image(seed * 1000 + i, image_size).save(path)
    bad: dict[str, str] = {}
    if broken and n_images >= 6:
        write_truncated_png(root / "img_raw" / split_map[names[2]])
        bad[names[2]] = "truncated"
        write_not_an_image(root / "img_raw" / split_map[names[4]])
        bad[names[4]] = "not-an-image"
        (root / "img_raw" / split_map[names[5]]).unlink()
        bad[names[5]] = "missing"
    triplets = []
    for q in range(n_triplets):
        members = [str(x) for x in rng.choice(names, size=min(6, n_images), replace=False)]
        ref, tgt = members[0], members[1]
        t: dict = {"pairid": 1000 + q, "reference": ref, "caption": _caption(rng),
                   "img_set": {"id": q, "members": members, "reference_rank": 0}}
        if split != "test1":
            t["target_hard"] = tgt
            t["target_soft"] = {tgt: 1.0, members[2]: 0.5, members[3]: -1.0}
            t["img_set"]["target_rank"] = 1
        triplets.append(t)
    (root / "captions").mkdir(parents=True, exist_ok=True)
    (root / "image_splits").mkdir(parents=True, exist_ok=True)
    (root / "captions" / f"cap.rc2.{split}.json").write_text(json.dumps(triplets, indent=1))
    (root / "image_splits" / f"split.rc2.{split}.json").write_text(json.dumps(split_map, indent=1))
    return CirrData(root=root, split=split, names=names, triplets=triplets, bad=bad)


def make_webvid(root: str | Path, n_videos: int = 8, n_rows: int = 12, seed: int = 0, broken: bool = True,
                n_frames: int = 18, csv_name: str = "webvid8m-covr_test.csv") -> WebvidData:
    """Write WebVid-CoVR videos + CSV (see module docstring)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    video_root = root / "videos"
    vids = [f"{1000 + i % 3}/{5_000_000 + 17 * i}" for i in range(n_videos)]
    for i, pth in enumerate(vids):
        path = video_root / f"{pth}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_test_clip(path, n_frames + (i % 4), fps=10, size=(48, 32), gop=6)
    bad: dict[str, str] = {}
    if broken and n_videos >= 6:
        write_corrupt_mp4(video_root / f"{vids[3]}.mp4", mode="garbage")
        bad[vids[3]] = "corrupt"
        (video_root / f"{vids[5]}.mp4").unlink()
        bad[vids[5]] = "missing"
    rows = []
    for r in range(n_rows):
        b = r % n_videos  # every video is a target once n_rows >= n_videos
        a = (3 * r + 1) % n_videos
        a = (a + 1) % n_videos if a == b else a
        k = min(15, n_frames + b % 4)
        scores = [round(float(x), 4) for x in rng.uniform(0.2, 0.4, size=k)] if r % 3 else []
        rows.append({"txt1": _caption(rng), "txt2": _caption(rng), "sim_txt": round(float(rng.uniform()), 4),
                     "pth1": vids[a], "pth2": vids[b], "edit": _caption(rng, 4), "scores": json.dumps(scores)})
    csv_path = root / csv_name
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return WebvidData(root=root, video_root=video_root, csv=csv_path, rows=rows, videos=vids, bad=bad)


def make_demo_assets(root: str | Path, n_images: int = 4, n_videos: int = 2, seed: int = 0) -> Path:
    """An ``assets/``-like folder with ``gallery.csv`` (id, kind, media, caption, split, duration)."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_images):
        pattern_image(seed + 50 + i, (48, 36)).save(root / "images" / f"photo{i}.jpg")
        rows.append({"id": f"img-{i}", "kind": "image", "media": f"images/photo{i}.jpg",
                     "caption": f"photo number {i}", "split": "demo", "duration": ""})
    for i in range(n_videos):
        write_test_clip(root / "videos" / f"clip{i}.mp4", 12 + i, fps=10, size=(48, 32), gop=6)
        rows.append({"id": f"vid-{i}", "kind": "video", "media": f"videos/clip{i}.mp4",
                     "caption": f"clip number {i}", "split": "demo", "duration": f"{(12 + i) / 10:.1f}"})
    with open(root / "gallery.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root
