"""A synthetic CIRR-style benchmark whose ground truth needs per-query weighting of f_mm / f_img / f_txt.

Every query belongs to one of three groups ``k`` (0 = mm, 1 = img, 2 = txt, in WEIGHT_NAMES order). Its three
embeddings are random unit vectors in a *content* subspace (dimensions 1..dim-1); the embedding of the
planted component ``k`` carries a **marker** ``+marker`` on dimension 0, the two others ``-marker`` (all three
keep the same content norm), so the group is readable from the MLP's input. Gallery items live in the content subspace only (marker 0), so the marker never helps
a fixed combiner. Per query the gallery holds three candidates, each near one of the query's three embeddings:
the one near component ``k`` is the target, the other two are hard distractors; plus the reference image
(= f_img's content) and random distractors. NA (f_mm) only solves group 0, AVG ties the three candidates, so
both sit near 33 % R@1, while a combiner that reads the marker gets close to 100 %.

Written as real folders: ``<root>/<split>/queries`` (covr_core.query_folder.QuerySet) and
``<root>/<split>/gallery`` (covr_core.gallery.Gallery), so the jobs run on them unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from covr_core.query_folder import QuerySet
from covr_core.types import EncoderInfo, QueryEmbeddings

GROUP_NAMES = ("mm", "img", "txt")  #: planted component of group k (same order as f_mm, f_img, f_txt)
PLANTED_ENCODER = EncoderInfo(name="planted", version="1", checkpoint="planted-synthetic", checkpoint_sha256="0" * 64,
                              dim=32, fused=True, note="synthetic planted benchmark (tests)")


@dataclass
class PlantedSplit:
    """One split: query embeddings + table (CIRR columns plus ``group``) and its gallery."""

    emb: QueryEmbeddings
    table: pd.DataFrame
    gallery_ids: list[str]
    gallery_emb: np.ndarray
    groups: np.ndarray


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_planted_split(n: int, dim: int = 32, seed: int = 0, prefix: str = "p", noise: float = 0.5,
                       marker: float = 0.6, extra_distractors: int = 200) -> PlantedSplit:
    """Generate ``n`` queries (groups in rotation 0, 1, 2, ...) and their gallery; deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    groups = np.arange(n) % 3
    content = _unit(rng.standard_normal((n, 3, dim - 1)))  # u_mm, u_img, u_txt per query
    emb = np.zeros((n, 3, dim), dtype=np.float32)
    emb[:, :, 1:] = content * np.sqrt(1.0 - marker**2)
    emb[:, :, 0] = -marker
    emb[np.arange(n), groups, 0] = marker  # the group signal: only the planted component has a positive marker

    def near(u: np.ndarray) -> np.ndarray:
        out = np.zeros((len(u), dim), dtype=np.float32)
        out[:, 1:] = _unit(u + noise * _unit(rng.standard_normal(u.shape)))
        return out

    candidates = np.stack([near(content[:, c]) for c in range(3)], axis=1)  # [n, 3, dim]
    refs = np.zeros((n, dim), dtype=np.float32)
    refs[:, 1:] = content[:, 1]
    extra = np.zeros((extra_distractors, dim), dtype=np.float32)
    extra[:, 1:] = _unit(rng.standard_normal((extra_distractors, dim - 1)))

    cand_ids = [[f"{prefix}{i}-c{c}" for c in range(3)] for i in range(n)]
    gallery_ids = [cid for ids in cand_ids for cid in ids] + [f"{prefix}{i}-ref" for i in range(n)] + \
        [f"{prefix}-x{j}" for j in range(extra_distractors)]
    gallery_emb = np.concatenate([candidates.reshape(-1, dim), refs, extra]).astype(np.float32)

    records = []
    for i in range(n):
        k = int(groups[i])
        target = cand_ids[i][k]
        others = [cand_ids[i][c] for c in range(3) if c != k]
        randoms = [cand_ids[(i + 1 + j) % n][int(rng.integers(3))] for j in range(2)]
        soft = {target: 1.0}
        if i % 4 == 1:
            soft[others[0]] = 0.5  # graded credit, so CoVR's graded Rs differs from the hard one
        if i % 5 == 2:
            soft[f"{prefix}{i}-ref"] = -1.0
        records.append({
            "query_id": str(i), "reference": f"{prefix}{i}-ref", "target": target,
            "caption": f"planted {GROUP_NAMES[k]} query {i}", "img_set_id": i,
            "members": json.dumps([f"{prefix}{i}-ref", target, *others, *randoms]),
            "target_soft": json.dumps(soft), "group": k,
        })
    q = QueryEmbeddings(f_mm=emb[:, 0].copy(), f_img=emb[:, 1].copy(), f_txt=emb[:, 2].copy())
    return PlantedSplit(emb=q, table=pd.DataFrame(records), gallery_ids=gallery_ids, gallery_emb=gallery_emb,
                        groups=groups)


def write_queries_folder(folder: str | Path, emb: QueryEmbeddings, table: pd.DataFrame, encoder: EncoderInfo,
                         name: str) -> Path:
    """Build and save a real :class:`covr_core.query_folder.QuerySet` (the jobs' queries folder)."""
    QuerySet.build(emb, table, encoder, name, provenance={"dataset": "planted"}).save(folder)
    return Path(folder)


def write_gallery_folder(folder: str | Path, ids: list[str], embeddings: np.ndarray, encoder: EncoderInfo,
                         name: str) -> Path:
    """Build and save a real :class:`covr_core.gallery.Gallery` of image items without media."""
    from covr_core.gallery import Gallery

    items = pd.DataFrame({"id": ids, "kind": "image", "media": [f"{i}.png" for i in ids], "caption": "",
                          "split": name, "duration": np.nan, "thumbnail": ""})
    Gallery.build(embeddings, items, encoder=encoder, name=name, media_root=str(folder)).save(folder)
    return Path(folder)


def write_planted_benchmark(root: str | Path, sizes: dict[str, int] | None = None, dim: int = 32, seed: int = 0,
                            **kwargs) -> dict[str, tuple[Path, Path]]:
    """Write splits (default train 1500 / val 300 / test 600) under ``root``; returns split -> (queries, gallery)."""
    sizes = sizes or {"train": 1500, "val": 300, "test": 600}
    encoder = EncoderInfo(**{**PLANTED_ENCODER.__dict__, "dim": dim})
    out = {}
    for j, (split, n) in enumerate(sizes.items()):
        s = make_planted_split(n, dim=dim, seed=seed * 101 + j, prefix=f"{split}-", **kwargs)
        qdir = write_queries_folder(Path(root) / split / "queries", s.emb, s.table, encoder, f"planted-{split}")
        gdir = write_gallery_folder(Path(root) / split / "gallery", s.gallery_ids, s.gallery_emb, encoder,
                                    f"planted-{split}")
        out[split] = (qdir, gdir)
    return out
