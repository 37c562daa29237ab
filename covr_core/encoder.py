"""The interface every encoder implements (docs/ARCHITECTURE.md, "Encoder interface").

Shared default implementations: ``encode_images`` (transform + ``encode_pixels`` in batches),
``prepare_reference`` (content-hash keyed LRU of per-image reference states) and ``encode_query``
(cached reference state + ``query_from_reference``).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from covr_core.cache import LRUCache, content_hash
from covr_core.types import EncoderInfo, QueryEmbeddings

logger = logging.getLogger(__name__)


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation of a float array ([dim] or [N, dim]); returns float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, eps)).astype(np.float32)


class Encoder(abc.ABC):
    """Turns images and texts into L2-normalised float32 embeddings (targets, f_img, f_txt, f_mm).

    Subclasses set ``info`` and ``image_transform`` and implement ``encode_pixels``,
    ``encode_texts`` and ``encode_queries``; for cached single queries they implement
    ``compute_reference_state`` and ``query_from_reference`` (or override ``encode_query``).
    """

    info: EncoderInfo
    image_transform: Callable[[Any], torch.Tensor]
    vision_calls: int = 0  #: incremented on every vision-tower forward
    batch_size: int = 16  #: images per vision forward in ``encode_images``
    cache_size: int = 32  #: reference states kept by ``prepare_reference``

    # ------------------------------------------------------------------ abstract part
    @abc.abstractmethod
    def encode_pixels(self, pixel_values: torch.Tensor) -> np.ndarray:
        """[N, 3, H, W] preprocessed pixels -> [N, dim] image embeddings (targets / f_img)."""

    @abc.abstractmethod
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> [N, dim] text-only embeddings (f_txt); caption cleanup applied."""

    @abc.abstractmethod
    def encode_queries(self, images: Sequence[Any], texts: Sequence[str]) -> QueryEmbeddings:
        """Batched queries: N reference images and N modification texts -> f_mm, f_img, f_txt [N, dim]."""

    # ------------------------------------------------------------------ shared defaults
    @property
    def dim(self) -> int:
        """Embedding dimension (``info.dim``)."""
        return self.info.dim

    @property
    def reference_cache(self) -> LRUCache:
        """The LRU of reference states (created on first use with ``cache_size`` entries)."""
        cache = self.__dict__.get("_reference_cache")
        if cache is None:
            cache = LRUCache(self.cache_size)
            self.__dict__["_reference_cache"] = cache
        return cache

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        """PIL images -> [N, dim]: ``image_transform`` then ``encode_pixels`` in batches of ``batch_size``."""
        images = list(images)
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            pixels = torch.stack([self.image_transform(img) for img in chunk])
            out.append(self.encode_pixels(pixels))
        return np.concatenate(out, axis=0).astype(np.float32, copy=False)

    def compute_reference_state(self, image: Any) -> Any:
        """What ``prepare_reference`` caches for one image (default: its f_img only)."""
        return {"f_img": self.encode_images([image])[0]}

    def prepare_compute(self) -> str:
        """Build now whatever the model would otherwise build on its first image (e.g. a one-time export of
        the image tower); returns what runs it ("" when there is nothing to build)."""
        return ""

    def reference_state_from_pixels(self, pixel_values: torch.Tensor, key: str) -> Any:
        """The state ``compute_reference_state`` gives, from preprocessed pixels [1, 3, H, W] of one image
        (``image_transform`` already applied; used where images cannot travel, e.g. to a GPU worker)."""
        return {"f_img": self.encode_pixels(pixel_values)[0]}

    def query_from_reference(self, state: Any, text: str) -> QueryEmbeddings:
        """One query from a cached reference state and a text ([dim] each). Subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement query_from_reference")

    def prepare_reference(self, image: Any) -> str:
        """Encode ``image`` as a reference once and cache its state; returns the content-hash key."""
        key = content_hash(image)
        if key not in self.reference_cache:
            self.reference_cache.put(key, self.compute_reference_state(image))
        return key

    def reference_state(self, image: Any, key: str | None = None) -> Any:
        """The cached state of ``image`` (computed and cached when missing).

        ``key``: the key ``prepare_reference`` returned for this very image; with it a cached state is
        found without hashing the pixels again (an evicted key misses and the image is encoded again).
        """
        state = self.reference_cache.get(key) if key else None
        if state is not None:
            return state
        key = self.prepare_reference(image)
        state = self.reference_cache.get(key)
        if state is None:  # evicted in between by another thread
            state = self.compute_reference_state(image)
            self.reference_cache.put(key, state)
        return state

    def encode_query(self, image: Any, text: str, key: str | None = None) -> QueryEmbeddings:
        """One query ([dim] each); a cached reference image does not run the vision tower again.

        ``key`` (optional): ``prepare_reference``'s key for ``image``, so the image is not hashed twice.
        """
        return self.query_from_reference(self.reference_state(image, key), text)
