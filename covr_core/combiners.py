"""Query combiners of the study (seed-study §2): NA, AVG, MLP, plus TEXT and IMAGE baselines.

A combiner of your own is one file: a function decorated with ``@register_combiner("NAME")``, in a module
named by ``COVR_EXTENSIONS`` (imported at the end of this module, ``covr_core/extensions.py``).

Every combiner maps ``QueryEmbeddings`` (f_mm, f_img, f_txt; [dim] or [N, dim]) to a
``CombinedQuery``: the L2-normalised query and its weights (w_mm, w_img, w_txt), non-negative and
summing to 1, so the UI can show them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from covr_core.encoder import l2_normalise
from covr_core.extensions import load_extensions
from covr_core.types import CombinedQuery, QueryEmbeddings

logger = logging.getLogger(__name__)

CombinerFn = Callable[[QueryEmbeddings, "MLPCombiner | None"], tuple[np.ndarray, np.ndarray]]
_REGISTRY: dict[str, CombinerFn] = {}
NEEDS_MLP = {"MLP"}


def register_combiner(name: str) -> Callable[[CombinerFn], CombinerFn]:
    """Decorator: register ``fn(emb, mlp) -> (query, weights)`` under ``name``."""

    def deco(fn: CombinerFn) -> CombinerFn:
        _REGISTRY[name] = fn
        return fn

    return deco


def list_combiners(mlp: "MLPCombiner | None" = None) -> list[str]:
    """Registered combiner names; ``MLP`` only when ``mlp`` carries trained weights."""
    trained = mlp is not None and bool(getattr(mlp, "trained", False))
    return [n for n in _REGISTRY if n not in NEEDS_MLP or trained]


def _fixed_weights(emb: QueryEmbeddings, w: tuple[float, float, float]) -> np.ndarray:
    weights = np.asarray(w, dtype=np.float32)
    if np.ndim(emb.f_mm) == 2:
        weights = np.broadcast_to(weights, (emb.f_mm.shape[0], 3)).copy()
    return weights


def _weighted(emb: QueryEmbeddings, weights: np.ndarray) -> np.ndarray:
    stacked = np.asarray(emb.stacked(), dtype=np.float32)  # [..., 3, dim]
    return l2_normalise((weights[..., :, None] * stacked).sum(axis=-2))


@register_combiner("NA")
def _na(emb: QueryEmbeddings, mlp=None):
    """Plain CoVR: the query is f_mm."""
    w = _fixed_weights(emb, (1.0, 0.0, 0.0))
    return l2_normalise(emb.f_mm), w


@register_combiner("AVG")
def _avg(emb: QueryEmbeddings, mlp=None):
    """normalise((f_mm + f_img + f_txt) / 3)."""
    w = _fixed_weights(emb, (1 / 3, 1 / 3, 1 / 3))
    return _weighted(emb, w), w


@register_combiner("MLP")
def _mlp(emb: QueryEmbeddings, mlp=None):
    """Softmax weights predicted from [f_mm, f_img, f_txt]; weighted sum, L2."""
    if mlp is None or not getattr(mlp, "trained", False):
        raise ValueError("MLP combiner needs trained weights (load a fork checkpoint or mlp_combiner.safetensors)")
    w = mlp.predict_weights(emb)
    return _weighted(emb, w), w


@register_combiner("TEXT")
def _text(emb: QueryEmbeddings, mlp=None):
    """Text-only baseline: f_txt."""
    return l2_normalise(emb.f_txt), _fixed_weights(emb, (0.0, 0.0, 1.0))


@register_combiner("IMAGE")
def _image(emb: QueryEmbeddings, mlp=None):
    """Image-only baseline: f_img."""
    return l2_normalise(emb.f_img), _fixed_weights(emb, (0.0, 1.0, 0.0))


def combine(name: str, emb: QueryEmbeddings, mlp: "MLPCombiner | None" = None) -> CombinedQuery:
    """Apply combiner ``name`` to one ([dim]) or many ([N, dim]) queries."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown combiner {name!r}; known: {sorted(_REGISTRY)}")
    query, weights = _REGISTRY[name](emb, mlp)
    return CombinedQuery(combiner=name, query=query.astype(np.float32), weights=weights.astype(np.float32))


class MLPCombiner(nn.Module):
    """The study's weight predictor: Linear(3*dim, hidden) -> ReLU -> Linear(hidden, 3) -> softmax.

    ``trained`` is False for a freshly constructed module and becomes True only when weights are
    loaded (``load_state_dict`` through :func:`mlp_from_state_dict` / :func:`load_mlp_combiner`)."""

    def __init__(self, dim: int = 256, hidden: int = 128) -> None:
        super().__init__()
        self.dim, self.hidden = int(dim), int(hidden)
        self.weight_predictor = nn.Sequential(nn.Linear(3 * self.dim, self.hidden), nn.ReLU(), nn.Linear(self.hidden, 3))
        self.trained = False
        self.record: dict = {}

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        """[..., 3, dim] -> softmax weights [..., 3]."""
        flat = stacked.reshape(*stacked.shape[:-2], 3 * self.dim)
        return torch.softmax(self.weight_predictor(flat), dim=-1)

    @torch.inference_mode()
    def predict_weights(self, emb: QueryEmbeddings) -> np.ndarray:
        """(w_mm, w_img, w_txt) for [dim] or [N, dim] embeddings (float32 numpy)."""
        stacked = torch.from_numpy(np.asarray(emb.stacked(), dtype=np.float32))
        param = next(self.parameters())
        return self(stacked.to(param.device, param.dtype)).float().cpu().numpy()


def mlp_from_state_dict(sd: dict[str, torch.Tensor], record: dict | None = None) -> MLPCombiner:
    """Build a trained MLPCombiner from ``{0,2}.{weight,bias}`` (fork keys without the prefix) or
    ``weight_predictor.{0,2}.*`` keys; dims are read from the tensors."""
    sd = {k[len("weight_predictor.") :] if k.startswith("weight_predictor.") else k: v for k, v in sd.items()}
    expected = {"0.weight", "0.bias", "2.weight", "2.bias"}
    if set(sd) != expected:
        raise ValueError(f"MLP combiner keys {sorted(sd)} != {sorted(expected)}")
    hidden, in_dim = sd["0.weight"].shape
    if in_dim % 3 or tuple(sd["2.weight"].shape) != (3, hidden):
        raise ValueError(f"MLP combiner shapes do not fit: 0.weight {list(sd['0.weight'].shape)}, 2.weight {list(sd['2.weight'].shape)}")
    mlp = MLPCombiner(dim=in_dim // 3, hidden=hidden)
    mlp.weight_predictor.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    mlp.trained = True
    mlp.record = dict(record or {})
    return mlp.eval()


def save_mlp_combiner(mlp: MLPCombiner, path: str | Path, record: dict) -> None:
    """Write ``path`` (safetensors, keys ``weight_predictor.*``) and ``path`` with ``.json`` (record)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"weight_predictor.{k}": v.detach().cpu().contiguous() for k, v in mlp.weight_predictor.state_dict().items()}
    save_file(tensors, str(path))
    meta = {"dim": mlp.dim, "hidden": mlp.hidden, "trained": bool(mlp.trained), **record}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, default=str))


def load_mlp_combiner(path: str | Path) -> MLPCombiner:
    """Load an MLP combiner saved by :func:`save_mlp_combiner` (record from the ``.json`` beside it)."""
    from safetensors.torch import load_file

    path = Path(path)
    record_path = path.with_suffix(".json")
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if record.get("trained") is False:
        why = record.get("status") or "its record says trained: false"
        raise ValueError(f"{path.name} holds an untrained MLP combiner ({why})")
    mlp = mlp_from_state_dict(load_file(str(path)), record=record)
    return mlp


load_extensions()  # combiners of your own, one file each (COVR_EXTENSIONS; see covr_core/extensions.py)
