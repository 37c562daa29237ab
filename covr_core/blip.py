"""CoVR's BLIP encoder on transformers' ``BlipForImageTextRetrieval`` (covr.md §2.1, §5.3, §8).

Recipe: ``pre_caption`` -> bert-base-uncased (+[DEC], [ENC]) tokens, padded to the longest, max 64;
image -> RGB -> square bicubic resize (no crop) to the config's image size -> CLIP mean/std.
- target / f_img: ViT ``last_hidden_state[:, 0]`` -> ``vision_proj`` -> L2 (not ``pooler_output``)
- f_txt: text mode (no image states) [CLS] -> ``text_proj`` -> L2
- f_mm: [CLS] replaced by [ENC]; cross-attention to all image token states (all-ones mask);
  position 0 -> ``text_proj`` -> L2

Single queries cache per reference image its ViT token states (and, in a smaller LRU, the
cross-attention keys/values of every text layer), so a text edit runs only the text side, and f_txt
and f_mm of that edit share one pass over the text weights (a batch of two rows).

Compute: the ViT runs on a backend of ``covr_core.vision_backends`` (chosen automatically, or forced with
``vision_backend=`` / ``COVR_VISION_BACKEND``; shown in ``info.backend``); the text side runs
``covr_core.blip_towers.FastText`` (SDPA, fused self-attention Q/K/V, f_mm and f_txt rows in one pass).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from covr_core.artifact_cache import default_cache
from covr_core.blip_towers import FastText, cross_kv
from covr_core.cache import LRUCache, content_hash
from covr_core.encoder import Encoder
from covr_core.text import enc_token_id, pre_caption
from covr_core.types import EncoderInfo, QueryEmbeddings
from covr_core.vision_backends import LazyVision

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = "Salesforce/blip-itm-large-coco"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_TEXT_TOKENS = 64
ENCODER_VERSION = "covr-blip-1"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float32" | "bfloat16" | "float16"`` (or a torch dtype) -> torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[str(dtype).replace("torch.", "")]
    except KeyError as exc:
        raise ValueError(f"unsupported dtype {dtype!r}; choose one of {sorted(DTYPES)}") from exc


@dataclass(frozen=True)
class BlipImageTransform:
    """PIL image -> [3, size, size] float32 tensor: RGB, bicubic resize without crop, mean/std.

    A plain dataclass, so it pickles into DataLoader workers."""

    size: int = 384
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """The size an image is resized to (a ``size`` x ``size`` square, whatever its aspect)."""
        return self.size, self.size

    def __call__(self, image: Image.Image) -> torch.Tensor:
        img = image if image.mode == "RGB" else image.convert("RGB")
        img = img.resize((self.size, self.size), resample=Image.Resampling.BICUBIC)
        arr = np.asarray(img, dtype=np.float32) / 255.0
        arr = (arr - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


@dataclass
class ReferenceState:
    """What the encoder caches for one reference image."""

    key: str
    states: torch.Tensor  #: [1, tokens, vision width] ViT last_hidden_state (model dtype, device)
    f_img: np.ndarray  #: [dim] float32

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> "ReferenceState":
        """The same state with ``states`` on ``device`` (e.g. ``"cpu"`` to cross a process boundary)."""
        return ReferenceState(self.key, self.states.to(device=device, dtype=dtype or self.states.dtype), self.f_img)


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().to(device="cpu", dtype=torch.float32).numpy()


class BlipCoVREncoder(Encoder):
    """CoVR BLIP encoder (see module docstring). Build it with :func:`covr_core.blip_load.load_blip_encoder`."""

    def __init__(
        self,
        model,
        tokenizer,
        info: EncoderInfo,
        image_transform: BlipImageTransform,
        *,
        cache_size: int = 32,
        kv_cache_size: int = 4,
        batch_size: int = 16,
        compile: bool = False,
        vision_backend: str | None = None,
        mlp=None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.info = info
        self.image_transform = image_transform
        self.cache_size = cache_size
        self.batch_size = batch_size
        self.vision_calls = 0
        self.mlp = mlp  #: trained MLPCombiner from the checkpoint/folder, or None
        self.load_report = None  #: convert.LoadReport when a CoVR checkpoint was applied
        self.config_changes: list[str] = []  #: BLIP hyperparameters corrected on the base config
        self.enc_id = enc_token_id(tokenizer)
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.kv_cache = LRUCache(kv_cache_size)
        self._vision = LazyVision(model.vision_model, vision_backend or ("compile" if compile else None),
                                  default_cache)
        self._text = FastText(model.text_encoder)
        self.info = dataclasses.replace(info, backend=self._vision.name)

    # ------------------------------------------------------------------ building blocks
    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``pre_caption`` + tokenizer (pad to longest, max 64) -> (input_ids, attention_mask) on device."""
        batch = self.tokenizer(
            [pre_caption(t) for t in texts],
            padding="longest",
            truncation=True,
            max_length=MAX_TEXT_TOKENS,
            return_tensors="pt",
        )
        return batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)

    def vision_states(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """ViT forward: [N, 3, H, W] -> last_hidden_state [N, tokens, width]; counts ``vision_calls``."""
        self.vision_calls += 1
        pixel_values = pixel_values.to(device=self.device, dtype=self.dtype)
        states = self._vision(pixel_values)
        if self.info.backend != self._vision.name:  # the chosen backend fell back when it was built
            self.info = dataclasses.replace(self.info, backend=self._vision.name)
        return states

    def prepare_compute(self) -> str:
        """Build the ViT backend now rather than on the first image (an OpenVINO export takes minutes once,
        then comes from the on-disk cache); returns "<backend>: <detail>"."""
        runner = self._vision.runner()
        if self.info.backend != self._vision.name:
            self.info = dataclasses.replace(self.info, backend=self._vision.name)
        return f"{runner.name}: {runner.detail}" if runner.detail else runner.name

    def _project_image(self, states: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.vision_proj(states[:, 0, :]).float(), dim=-1)

    def _project_text(self, cls_states: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.text_proj(cls_states).float(), dim=-1)

    def _text_features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._project_text(self._text(ids, mask, 0, None))

    def _with_enc(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.clone()
        ids[:, 0] = self.enc_id
        return ids

    # ------------------------------------------------------------------ cross-attention K/V cache
    def cross_kv(self, state: ReferenceState) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per text layer, the cross-attention keys/values of the reference tokens ([1, heads, T, d])."""
        kv = self.kv_cache.get(state.key)
        if kv is None:
            with torch.inference_mode():
                kv = cross_kv(self.model.text_encoder, state.states.to(self.device, self.dtype))
            self.kv_cache.put(state.key, kv)
        return kv

    def _text_and_multimodal(self, ids: torch.Tensor, mask: torch.Tensor, kv) -> tuple[torch.Tensor, torch.Tensor]:
        """f_mm and f_txt of N texts in one pass over the text weights: rows [:N] are the [ENC] sequences
        cross-attending to ``kv`` (one image or N), rows [N:] the text-mode [CLS] sequences."""
        n = ids.shape[0]
        feats = self._project_text(self._text(torch.cat([self._with_enc(ids), ids]), torch.cat([mask, mask]), n, kv))
        return feats[:n], feats[n:]

    # ------------------------------------------------------------------ Encoder interface
    @torch.inference_mode()
    def encode_pixels(self, pixel_values: torch.Tensor) -> np.ndarray:
        """[N, 3, H, W] -> [N, dim] targets / f_img (ViT CLS -> vision_proj -> L2), float32."""
        return _to_numpy(self._project_image(self.vision_states(pixel_values)))

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """[N, dim] f_txt (text mode [CLS] -> text_proj -> L2), in batches of ``batch_size``."""
        texts = list(texts)
        out = [np.zeros((0, self.dim), np.float32)]
        for start in range(0, len(texts), self.batch_size):
            ids, mask = self.tokenize(texts[start : start + self.batch_size])
            out.append(_to_numpy(self._text_features(ids, mask)))
        return np.concatenate(out, axis=0)

    @torch.inference_mode()
    def encode_queries(self, images: Sequence[Any], texts: Sequence[str]) -> QueryEmbeddings:
        """Batched queries (one vision forward per batch): f_mm, f_img, f_txt each [N, dim]."""
        images, texts = list(images), list(texts)
        if len(images) != len(texts):
            raise ValueError(f"encode_queries: {len(images)} images but {len(texts)} texts")
        parts: dict[str, list[np.ndarray]] = {"f_mm": [], "f_img": [], "f_txt": []}
        for start in range(0, len(images), self.batch_size):
            chunk_imgs = images[start : start + self.batch_size]
            pixels = torch.stack([self.image_transform(img) for img in chunk_imgs])
            states = self.vision_states(pixels)
            ids, mask = self.tokenize(texts[start : start + self.batch_size])
            f_mm, f_txt = self._text_and_multimodal(ids, mask, cross_kv(self.model.text_encoder, states))
            parts["f_img"].append(_to_numpy(self._project_image(states)))
            parts["f_txt"].append(_to_numpy(f_txt))
            parts["f_mm"].append(_to_numpy(f_mm))
        empty = np.zeros((0, self.dim), np.float32)
        return QueryEmbeddings(**{k: np.concatenate(v, axis=0) if v else empty for k, v in parts.items()})

    @torch.inference_mode()
    def reference_state_from_pixels(self, pixel_values: torch.Tensor, key: str) -> ReferenceState:
        """ViT once on preprocessed pixels [1, 3, H, W]: the cached state of one reference image."""
        states = self.vision_states(pixel_values)
        return ReferenceState(key, states, _to_numpy(self._project_image(states))[0])

    def _reference_state(self, image: Any, key: str) -> ReferenceState:
        return self.reference_state_from_pixels(self.image_transform(image).unsqueeze(0), key)

    def compute_reference_state(self, image: Any) -> ReferenceState:
        """Run the ViT once on a reference image: token states + f_img (cached by ``prepare_reference``)."""
        return self._reference_state(image, content_hash(image))

    def prepare_reference(self, image: Any) -> str:
        """Encode ``image`` as a reference once and cache its state; returns the content-hash key."""
        key = content_hash(image)
        if key not in self.reference_cache:
            self.reference_cache.put(key, self._reference_state(image, key))
        return key

    @torch.inference_mode()
    def query_from_reference(self, state: ReferenceState, text: str) -> QueryEmbeddings:
        """f_mm, f_img, f_txt ([dim] each) from cached reference states; never runs the ViT."""
        ids, mask = self.tokenize([text])
        f_mm, f_txt = self._text_and_multimodal(ids, mask, self.cross_kv(state))
        return QueryEmbeddings(f_mm=_to_numpy(f_mm)[0], f_img=state.f_img.copy(), f_txt=_to_numpy(f_txt)[0])

    def clear_caches(self) -> None:
        """Forget every cached reference state and cross-attention K/V."""
        self.reference_cache.clear()
        self.kv_cache.clear()
