"""Hostile and damaged gallery folders for the public-Space tests (issue 12, defects 1-3).

``seed_before_start(data)`` writes them into a data folder that already holds the built demo gallery (copied
from the test session's template), before the server starts; ``add_later(data, name)`` adds one while it runs
(galleries downloaded into the data folder appear without a restart).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

#: name -> what is wrong with it (all must leave the app running and serving nothing new)
MALFORMED = {
    "repro-root": b'{"media_root": "/"}',  # the exact repro
    "empty-list": b"[]",
    "bad-utf8": b"\xff\xfe\x00{not utf-8",
}
ROOTED = "rooted"  # a complete, intact gallery whose manifest says media_root "/"
THUMBS_LINK = "thumbs-link"  # a complete gallery whose thumbs/ is a symlink to /
WRONG_TYPES = "wrong-types"  # a complete gallery whose manifest has "count": "many"
DAMAGED = "damaged"  # a complete gallery whose embeddings were overwritten with same-size garbage


def demo_folder(data: Path) -> Path:
    """The demo gallery folder of ``data``."""
    return next((data / "galleries").glob("demo-*"))


def _copy_demo(data: Path, name: str) -> Path:
    folder = data / "galleries" / name
    shutil.copytree(demo_folder(data), folder, symlinks=True)
    return folder


def _edit_manifest(folder: Path, **changes) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def rooted(data: Path, name: str = ROOTED) -> Path:
    """An intact copy of the demo gallery whose manifest puts its media at '/'."""
    folder = _copy_demo(data, name)
    _edit_manifest(folder, media_root="/")
    return folder


def seed_before_start(data: Path) -> None:
    """Write every hostile gallery into ``data/galleries``."""
    for name, content in MALFORMED.items():
        (data / "galleries" / name).mkdir(parents=True)
        (data / "galleries" / name / "manifest.json").write_bytes(content)
    rooted(data)
    thumbs = _copy_demo(data, THUMBS_LINK)
    if (thumbs / "thumbs").exists():
        shutil.rmtree(thumbs / "thumbs")
    (thumbs / "thumbs").symlink_to("/")
    _edit_manifest(_copy_demo(data, WRONG_TYPES), count="many")
    damaged = _copy_demo(data, DAMAGED)
    emb = np.load(damaged / "embeddings.npy")
    garbage = np.random.default_rng(0).normal(size=emb.shape)
    garbage /= np.linalg.norm(garbage, axis=1, keepdims=True)
    np.save(damaged / "embeddings.npy", garbage.astype(emb.dtype))  # same size, other values


def add_later(data: Path, name: str) -> Path:
    """A gallery appearing while the server runs (as a download would): intact, but media_root '/'."""
    return rooted(data, name)
