"""The CIRR val layout from the real annotations in tests/data/cirr (MIT) with generated images.

``build_real_cirr(root, n_sets=None)`` writes ``captions/cap.rc2.val.json``, ``image_splits/split.rc2.val.json``
and ``img_raw/dev/*.png``. Images are generated from the bundled demo photos (``assets/images``, redistributable)
so that an ImageNet-based encoder sees something: every image is a random crop with a colour shift of one photo,
and each target not drawn yet is a new variant of the photo of the reference of the first triplet that names
it. The reference image is therefore informative about the target (and other images of the same photo are
hard negatives), which gives the MLP combiner something to learn. ``n_sets`` keeps only the triplets of the first ``n_sets`` image sets (annotation order)
and the images they name: the documented subset used where the full 4,181 queries would be too slow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REAL_CIRR = Path(__file__).resolve().parents[1] / "data" / "cirr"
PHOTOS = Path(__file__).resolve().parents[2] / "assets" / "images"
IMAGE_SIZE = (96, 72)


@dataclass
class RealCirr:
    """What :func:`build_real_cirr` wrote."""

    root: Path
    triplets: list[dict]
    images: list[str]


def _photos() -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted(PHOTOS.glob("*.jpg"))]


def _variant(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random crop (70-100 % of each side) of the photo, resized, with a small colour shift."""
    w, h = photo.size
    cw, ch = int(w * rng.uniform(0.7, 1.0)), int(h * rng.uniform(0.7, 1.0))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    arr = np.asarray(photo.crop((x, y, x + cw, y + ch)).resize(IMAGE_SIZE, Image.Resampling.BILINEAR), np.float32)
    arr = arr * rng.uniform(0.85, 1.15, 3) + rng.normal(0, 4, arr.shape)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB")


def build_real_cirr(root: str | Path, n_sets: int | None = None, seed: int = 0, test1_sets: int = 0) -> RealCirr:
    """Write the CIRR val layout (real annotations, generated images) under ``root``.

    ``test1_sets > 0`` also writes a test1 split in its real format (no labels; names ``test1-...``) made from
    the last ``test1_sets`` image sets of val, so the submission files can be produced and checked.
    """
    root = Path(root)
    triplets = json.loads((REAL_CIRR / "cap.rc2.val.json").read_text())
    split = json.loads((REAL_CIRR / "split.rc2.val.json").read_text())
    if n_sets is not None:
        sets = list(dict.fromkeys(t["img_set"]["id"] for t in triplets))[:n_sets]
        keep = set(sets)
        triplets = [t for t in triplets if t["img_set"]["id"] in keep]
        named = {n for t in triplets for n in (t["reference"], t["target_hard"], *t["img_set"]["members"])}
        split = {k: v for k, v in split.items() if k in named}
    (root / "captions").mkdir(parents=True, exist_ok=True)
    (root / "image_splits").mkdir(parents=True, exist_ok=True)
    (root / "captions" / "cap.rc2.val.json").write_text(json.dumps(triplets))
    (root / "image_splits" / "split.rc2.val.json").write_text(json.dumps(split))
    rng = np.random.default_rng(seed)
    photos = _photos()
    photo_of: dict[str, int] = {}
    for t in triplets:
        ref, tgt = t["reference"], t["target_hard"]
        photo_of.setdefault(ref, int(rng.integers(len(photos))))
        photo_of.setdefault(tgt, photo_of[ref])
    for name, rel in split.items():
        path = root / "img_raw" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        _variant(photos[photo_of.get(name, int(rng.integers(len(photos))))], rng).save(path)
    if test1_sets:
        _write_test1(root, triplets, split, test1_sets)
    return RealCirr(root=root, triplets=triplets, images=list(split))


def _write_test1(root: Path, triplets: list[dict], split: dict[str, str], n_sets: int) -> None:
    sets = list(dict.fromkeys(t["img_set"]["id"] for t in triplets))[-n_sets:]
    rename = lambda n: n.replace("dev-", "test1-", 1)  # noqa: E731
    chosen = [t for t in triplets if t["img_set"]["id"] in set(sets)]
    test = [{"pairid": t["pairid"], "reference": rename(t["reference"]), "caption": t["caption"],
             "img_set": {"id": t["img_set"]["id"], "members": [rename(m) for m in t["img_set"]["members"]],
                         "reference_rank": t["img_set"]["reference_rank"]}} for t in chosen]
    names = {n for t in chosen for n in (t["reference"], *t["img_set"]["members"])}
    test_split = {rename(n): split[n].replace("./dev/", "./test1/").replace("dev-", "test1-", 1) for n in names}
    (root / "captions" / "cap.rc2.test1.json").write_text(json.dumps(test))
    (root / "image_splits" / "split.rc2.test1.json").write_text(json.dumps(test_split))
    for n in names:
        src = root / "img_raw" / split[n]
        dst = root / "img_raw" / test_split[rename(n)]
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
