"""The GPU boundary: module-level ``@spaces.GPU`` functions with plain-data arguments, and ``GpuEncoder``.

On a ZeroGPU Space a ``@spaces.GPU`` function runs in a worker process forked from the app: its
arguments and result are pickled across (a ``Services`` holding locks would not pickle), and what the
worker stores is lost. So every GPU function here is module-level and takes and returns plain data:
the encoder's registry key (a string), preprocessed pixels as a CPU tensor, texts, a reference state
with CPU tensors; it returns numpy arrays, :class:`~covr_core.types.QueryEmbeddings` or a CPU state.
The encoder itself is registered here at start (:func:`register_encoder`), after it was placed on its
device, so a forked worker inherits it as ZeroGPU wants ("models on cuda at module level at start").

:class:`GpuEncoder` is the encoder the app uses: the same interface as any ``Encoder``, but its model
work goes through these functions, and its reference cache lives in the main process. Encoding a
reference on upload therefore still means that Search later runs only the text pass.
Without ZeroGPU (``SPACES_ZERO_GPU`` unset, or no ``spaces`` package) ``spaces.GPU`` returns the
function unchanged and the calls run in-process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

# The ZeroGPU docs ask for `spaces` before torch (it must see CUDA uninitialised); app.py imports this
# module before anything imports torch.
_spaces = importlib.import_module("spaces") if importlib.util.find_spec("spaces") else None

import numpy as np  # noqa: E402

from covr_core.cache import content_hash  # noqa: E402
from covr_core.encoder import Encoder  # noqa: E402
from covr_core.types import QueryEmbeddings  # noqa: E402

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

#: GPU seconds asked of ZeroGPU per call (shorter durations get better queue priority).
DURATIONS = {"pixels": 60, "texts": 20, "queries": 60, "reference": 20, "query": 15}


def spaces_available() -> bool:
    """True when the ``spaces`` package (Hugging Face Spaces runtime) is installed."""
    return _spaces is not None


def zero_gpu() -> bool:
    """True on a ZeroGPU Space (``SPACES_ZERO_GPU=true``, the switch of the ``spaces`` package)."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true")


def gpu(duration: int) -> Callable[[F], F]:
    """``spaces.GPU(duration=...)`` when ``spaces`` is installed (a no-op outside ZeroGPU), else identity."""
    if _spaces is None:
        return lambda fn: fn
    return _spaces.GPU(duration=duration)


_ENCODERS: dict[str, Encoder] = {}
_register_lock = threading.Lock()


def register_encoder(encoder: Encoder) -> str:
    """Make ``encoder`` reachable from the GPU functions (and a forked ZeroGPU worker); returns its key."""
    with _register_lock:
        key = f"{encoder.info.name}-{len(_ENCODERS)}-{id(encoder):x}"
        _ENCODERS[key] = encoder
    return key


def _encoder(key: str) -> Encoder:
    try:
        return _ENCODERS[key]
    except KeyError:
        raise RuntimeError(f"no encoder registered as {key!r} in this process") from None


def state_to(state: Any, device: Any) -> Any:
    """A reference state with its tensors on ``device`` (states without tensors pass through)."""
    return state.to(device) if hasattr(state, "to") else state


# ------------------------------------------------------------------------------ the GPU functions
@gpu(DURATIONS["pixels"])
def gpu_encode_pixels(key: str, pixel_values: Any) -> np.ndarray:
    """[N, 3, H, W] preprocessed pixels (CPU tensor) -> [N, dim] image embeddings."""
    return _encoder(key).encode_pixels(pixel_values)


@gpu(DURATIONS["texts"])
def gpu_encode_texts(key: str, texts: list[str]) -> np.ndarray:
    """Texts -> [N, dim] text-only embeddings (f_txt)."""
    return _encoder(key).encode_texts(texts)


@gpu(DURATIONS["queries"])
def gpu_encode_queries(key: str, images: list[np.ndarray], texts: list[str]) -> QueryEmbeddings:
    """Batched queries from RGB uint8 arrays [H, W, 3] and texts -> f_mm, f_img, f_txt [N, dim]."""
    from PIL import Image

    return _encoder(key).encode_queries([Image.fromarray(a) for a in images], texts)


@gpu(DURATIONS["reference"])
def gpu_reference_state(key: str, pixel_values: Any, cache_key: str) -> Any:
    """One reference image's state (ViT token states + f_img) from [1, 3, H, W] pixels, back on the CPU."""
    return state_to(_encoder(key).reference_state_from_pixels(pixel_values, cache_key), "cpu")


@gpu(DURATIONS["query"])
def gpu_query_from_reference(key: str, state: Any, text: str) -> QueryEmbeddings:
    """f_mm, f_img, f_txt ([dim] each) from a (CPU) reference state and a text: the text pass only."""
    enc = _encoder(key)
    return enc.query_from_reference(state_to(state, getattr(enc, "device", "cpu")), text)


#: Every function that crosses the GPU boundary (tests pickle what goes through each of them).
GPU_FUNCTIONS = (
    "gpu_encode_pixels",
    "gpu_encode_texts",
    "gpu_encode_queries",
    "gpu_reference_state",
    "gpu_query_from_reference",
)


# ----------------------------------------------------------------------------------- the encoder
class GpuEncoder(Encoder):
    """An ``Encoder`` whose model work runs in the GPU functions above; caches stay in this process.

    ``inner`` is the real encoder (already on its device). Calls are serialised in-process (two
    forwards at once only compete for the same cores); under ZeroGPU each call gets its own GPU slot.
    """

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.key = register_encoder(inner)
        self.image_transform = inner.image_transform
        self.batch_size = inner.batch_size
        self.cache_size = inner.cache_size
        self.mlp = getattr(inner, "mlp", None)
        self.vision_calls = 0  #: boundary calls that ran the vision tower
        self._lock = contextlib.nullcontext() if zero_gpu() else threading.Lock()

    @property
    def info(self) -> Any:
        """The inner encoder's description (kept current: e.g. the ViT backend it settled on)."""
        return self.inner.info

    def prepare_compute(self) -> str:
        """Build the inner encoder's compute path here (not under ZeroGPU: the GPU worker builds its own)."""
        if zero_gpu():
            return ""
        with self._lock:
            return self.inner.prepare_compute()

    def _pixels(self, images: Sequence[Any]) -> Any:
        import torch

        return torch.stack([self.image_transform(img) for img in images])

    def encode_pixels(self, pixel_values: Any) -> np.ndarray:
        """[N, 3, H, W] -> [N, dim] (through :func:`gpu_encode_pixels`)."""
        with self._lock:
            self.vision_calls += 1
            return gpu_encode_pixels(self.key, pixel_values.detach().cpu())

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> [N, dim] f_txt (through :func:`gpu_encode_texts`)."""
        with self._lock:
            return gpu_encode_texts(self.key, [str(t) for t in texts])

    def encode_queries(self, images: Sequence[Any], texts: Sequence[str]) -> QueryEmbeddings:
        """Batched queries; images travel as RGB uint8 arrays (through :func:`gpu_encode_queries`)."""
        arrays = [np.asarray(img.convert("RGB"), dtype=np.uint8) for img in images]
        with self._lock:
            self.vision_calls += 1
            return gpu_encode_queries(self.key, arrays, [str(t) for t in texts])

    def reference_state_from_pixels(self, pixel_values: Any, key: str) -> Any:
        """A reference state (CPU tensors) from [1, 3, H, W] pixels (through :func:`gpu_reference_state`)."""
        with self._lock:
            self.vision_calls += 1
            return gpu_reference_state(self.key, pixel_values.detach().cpu(), key)

    def compute_reference_state(self, image: Any) -> Any:
        """Preprocess here (CPU), run the vision tower across the boundary."""
        return self.reference_state_from_pixels(self._pixels([image]), content_hash(image))

    def prepare_reference(self, image: Any) -> str:
        """Encode ``image`` once and keep its state in this process's cache; returns its content key."""
        key = content_hash(image)
        if key not in self.reference_cache:
            self.reference_cache.put(key, self.reference_state_from_pixels(self._pixels([image]), key))
        return key

    def query_from_reference(self, state: Any, text: str) -> QueryEmbeddings:
        """The text pass on a cached state (through :func:`gpu_query_from_reference`)."""
        with self._lock:
            return gpu_query_from_reference(self.key, state, str(text))
