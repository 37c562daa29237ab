"""Fixtures of tests/explorer: a real (tiny) gallery folder with Pillow images, a map, a benchmark run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from covr_core.types import EncoderInfo

DIM = 16
INFO = EncoderInfo(name="test-enc", version="1", checkpoint="none", checkpoint_sha256="ab" * 32, dim=DIM)


def unit(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation."""
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture()
def tiny_gallery(tmp_path: Path):
    """A saved gallery of 10 coloured images (ids img0..img9) with a umap.parquet beside it."""
    from covr_core.gallery import Gallery

    media = tmp_path / "media"
    media.mkdir()
    rows = []
    for i in range(10):
        Image.new("RGB", (40, 30), (25 * i, 255 - 25 * i, 100)).save(media / f"img{i}.png")
        rows.append(
            {
                "id": f"img{i}",
                "kind": "image",
                "media": f"img{i}.png",
                "caption": f"colour {i}",
                "split": "a" if i < 5 else "b",
                "duration": np.nan,
                "thumbnail": "",
            }
        )
    emb = unit(np.random.default_rng(0).normal(size=(10, DIM)))
    gal = Gallery.build(emb, pd.DataFrame(rows), INFO, "tiny", media_root=str(media))
    folder = tmp_path / "galleries" / "tiny"
    gal.save(folder)
    pd.DataFrame(
        {
            "id": [f"img{i}" for i in range(10)],
            "x": np.arange(10, dtype=float),
            "y": np.arange(10, dtype=float) ** 0.5,
        }
    ).to_parquet(folder / "umap.parquet")
    return Gallery.load(folder), emb


@pytest.fixture()
def eval_folder(tmp_path: Path) -> Path:
    """An evaluation folder in precompute.evaluate's layout: 6 queries x 2 combiners, with its queries folder."""
    from covr_core.evaluation_folder import Evaluation
    from covr_core.query_folder import QuerySet
    from covr_core.types import QueryEmbeddings

    out = tmp_path / "evaluations" / "mini"
    qdir = tmp_path / "queries" / "mini"
    qids = [str(i) for i in range(6)]
    table = pd.DataFrame(
        {
            "query_id": qids,
            "reference": [f"img{i}" for i in range(6)],
            "target": [f"img{i + 1}" for i in range(6)],
            "caption": ["make it red", "add a dog", "make it blue", "remove the dog", "zoom in", "red car"],
        }
    )
    rng = np.random.default_rng(1)
    emb = QueryEmbeddings(*(unit(rng.normal(size=(6, DIM))) for _ in range(3)))
    QuerySet.build(emb, table, INFO, "mini").save(qdir)
    frames = []
    ranks = {"AVG": [1, 3, 20, 2, 50, 1], "MLP": [2, 15, 20, 1, 40, 1]}
    for c, r in ranks.items():
        w = (
            np.tile([0.5, 0.2, 0.3], (6, 1))
            if c == "AVG"
            else np.array(
                [
                    [0.6, 0.1, 0.3],
                    [0.4, 0.4, 0.2],
                    [0.3, 0.2, 0.5],
                    [0.5, 0.15, 0.35],
                    [0.7, 0.1, 0.2],
                    [0.45, 0.25, 0.3],
                ]
            )
        )
        frames.append(
            pd.DataFrame(
                {
                    "query_id": qids,
                    "combiner": c,
                    "reference": [f"img{i}" for i in range(6)],
                    "target": [f"img{i + 1}" for i in range(6)],
                    "rank": r,
                    "top_ids": [[f"img{(i + j) % 10}" for j in range(1, 4)] for i in range(6)],
                    "top_scores": [np.array([0.9, 0.8, 0.7], np.float32)] * 6,
                    "w_mm": w[:, 0],
                    "w_img": w[:, 1],
                    "w_txt": w[:, 2],
                }
            )
        )
    info = {"queries": str(qdir), "gallery": str(tmp_path / "g")}
    Evaluation.build(pd.concat(frames, ignore_index=True), info).save(out)
    return out


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    """A real BLIP encoder with tiny random weights (tests/helpers/tiny_blip.py)."""
    from helpers.tiny_blip import make_tiny_blip_folder

    from covr_core.blip_load import load_blip_encoder

    return load_blip_encoder(str(make_tiny_blip_folder(tmp_path_factory.mktemp("tinyblip") / "m")))


@pytest.fixture(scope="session")
def tiny_services(tmp_path_factory, tiny_encoder):
    """Services over a data folder holding one gallery ("pics") of 8 images and 1 video, encoded for real."""
    from helpers.media_files import write_test_clip

    from covr_core.gallery import Gallery
    from covr_core.settings import Settings
    from explorer.services import Services

    data = tmp_path_factory.mktemp("data")
    media = data / "media"
    media.mkdir()
    rows, images = [], []
    for i in range(8):
        img = Image.new("RGB", (64, 48), (30 * i, 200 - 20 * i, (70 * i) % 255))
        img.paste((255, 255, 255), (4 * i, 4, 4 * i + 10, 14))
        img.save(media / f"p{i}.png")
        images.append(img)
        rows.append(
            {
                "id": f"p{i}",
                "kind": "image",
                "media": f"p{i}.png",
                "caption": f"picture {i}",
                "split": "demo",
                "duration": np.nan,
                "thumbnail": "",
            }
        )
    write_test_clip(media / "clip.mp4", n_frames=20)
    from covr_core.media import middle_frame

    images.append(middle_frame(media / "clip.mp4"))
    rows.append(
        {
            "id": "clip",
            "kind": "video",
            "media": "clip.mp4",
            "caption": "a clip",
            "split": "demo",
            "duration": 1.0,
            "thumbnail": "",
        }
    )
    emb = tiny_encoder.encode_images(images)
    gal = Gallery.build(emb, pd.DataFrame(rows), tiny_encoder.info, "pics", media_root=str(media))
    gal.save(data / "galleries" / "pics")
    pd.DataFrame(
        {"id": [r["id"] for r in rows], "x": np.linspace(0, 1, 9), "y": np.linspace(1, 0, 9)}
    ).to_parquet(data / "galleries" / "pics" / "umap.parquet")
    return Services(tiny_encoder, Settings(data_dir=data), "pics")
