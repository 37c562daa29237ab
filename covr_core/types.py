"""Plain data types shared by every layer (encoders, combiners, galleries, app)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Order of the three query embeddings and of combiner weights everywhere in the project.
EMBEDDING_NAMES: tuple[str, str, str] = ("f_mm", "f_img", "f_txt")
WEIGHT_NAMES: tuple[str, str, str] = ("w_mm", "w_img", "w_txt")


@dataclass(frozen=True)
class EncoderInfo:
    """What an encoder is; recorded in gallery manifests and shown in the app header."""

    name: str  #: registry name, e.g. "blip-large", "blip-tiny", "lite"
    version: str  #: implementation version of the embedding recipe (bump when outputs change)
    checkpoint: str  #: human-readable weights name: hub id, file name, or package names
    checkpoint_sha256: str  #: sha256 of the weights (hex); "" when unknown
    dim: int  #: embedding dimension (256 for BLIP, 384 for lite)
    device: str = "cpu"
    dtype: str = "float32"
    fused: bool = True  #: True when f_mm is a real image-grounded (fused) embedding
    note: str = ""  #: one sentence for the UI, e.g. why f_mm is not fused
    weights: str = ""  #: the weight tag and where it came from, e.g. "webvid-covr (lucas-ventura/CoVR/webvid-covr.ckpt)"
    backend: str = ""  #: what runs the image tower, e.g. "openvino", "sdpa" (covr_core.vision_backends)

    @property
    def short_sha(self) -> str:
        """First 10 hex digits of the checkpoint hash (or "unknown")."""
        return self.checkpoint_sha256[:10] if self.checkpoint_sha256 else "unknown"


@dataclass
class QueryEmbeddings:
    """The three L2-normalised query embeddings of the study (float32, [dim] or [N, dim])."""

    f_mm: np.ndarray
    f_img: np.ndarray
    f_txt: np.ndarray

    def stacked(self) -> np.ndarray:
        """[..., 3, dim] array in EMBEDDING_NAMES order."""
        return np.stack([self.f_mm, self.f_img, self.f_txt], axis=-2)


@dataclass
class CombinedQuery:
    """A combiner's output: the query vector and its weights (w_mm, w_img, w_txt)."""

    combiner: str
    query: np.ndarray  #: [dim] or [N, dim], float32, L2-normalised
    weights: np.ndarray  #: [3] or [N, 3], non-negative, sums to 1


@dataclass
class SearchHits:
    """Top-k results of a gallery search for N queries."""

    ids: list[list[str]]  #: [N][k] item ids, best first
    scores: np.ndarray  #: [N, k] float32 inner products
    rows: np.ndarray  #: [N, k] int64 gallery row indices (-1 where fewer than k results)


@dataclass
class Summary:
    """What a job did: counts plus a list of (item, reason) failures."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
