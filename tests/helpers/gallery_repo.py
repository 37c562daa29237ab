"""A Hugging Face *dataset* repo of galleries in a pre-populated hub cache (for ``COVR_GALLERY_REPO``).

``make_gallery_repo(hf_home, repo_id, encoder)`` encodes a few bundled photos with ``encoder`` into a
gallery folder whose media travel with it (``media_root = "media"``), adds a damaged copy (its
embeddings no longer match the manifest's sha256) and an evaluation folder, and writes them as
``galleries/<name>/`` and ``evaluations/<name>/`` of the repo's ``main`` snapshot.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from .hub_cache import populate_repo

from covr_core.evaluation_folder import Evaluation

REPO_ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ["apple", "orange", "kiwi", "lime", "lemon_half", "fruits"]


def build_photo_gallery(folder: Path, encoder, name: str) -> Path:
    """A gallery of up to six bundled photos, media copied inside the folder (``media/``)."""
    from PIL import Image

    from covr_core.gallery import Gallery

    src = REPO_ROOT / "assets" / "images"
    files = [p for stem in PHOTOS for p in sorted(src.glob(f"{stem}.*"))][:6]
    assert len(files) >= 3, "bundled photos missing"
    work = folder.parent / f".{folder.name}-media"
    (work / "media").mkdir(parents=True, exist_ok=True)
    rows = []
    for p in files:
        shutil.copyfile(p, work / "media" / p.name)
        rows.append(
            {
                "id": p.stem,
                "kind": "image",
                "media": p.name,
                "caption": p.stem,
                "split": "repo",
                "duration": np.nan,
                "thumbnail": "",
            }
        )
    emb = encoder.encode_images([Image.open(p).convert("RGB") for p in files])
    gal = Gallery.build(emb, pd.DataFrame(rows), encoder.info, name, media_root="media")
    gal.save(folder)
    shutil.copytree(work / "media", folder / "media")
    shutil.rmtree(work)
    return folder


def make_gallery_repo(
    hf_home: str | Path, repo_id: str, encoder, work: str | Path, name: str = "fruit-photos"
) -> Path:
    """Populate the dataset repo: a valid gallery, a damaged one and an evaluation; returns the snapshot."""
    work = Path(work)
    good = build_photo_gallery(work / "galleries" / name, encoder, name)
    bad = work / "galleries" / "damaged"
    shutil.copytree(good, bad)
    emb = np.load(bad / "embeddings.npy")
    emb[0] = -emb[0]
    np.save(bad / "embeddings.npy", emb)  # same shape, different bytes: only the sha256 check sees it
    per_query = pd.DataFrame(
        {
            "query_id": ["1"],
            "combiner": ["AVG"],
            "reference": ["apple"],
            "target": ["orange"],
            "rank": [1],
            "top_ids": [["orange"]],
            "top_scores": [np.array([0.9], np.float32)],
            "w_mm": [1 / 3],
            "w_img": [1 / 3],
            "w_txt": [1 / 3],
        }
    )
    Evaluation.build(per_query, info={}).save(work / "evaluations" / "repo-eval")
    files = {str(p.relative_to(work)): p for p in work.rglob("*") if p.is_file()}
    return populate_repo(hf_home, repo_id, files, repo_type="dataset")
