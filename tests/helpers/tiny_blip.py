"""Tiny BLIP retrieval models for tests: saved with ``save_pretrained`` so they load through the real path.

Every tensor is randomised (LayerNorm weights around 1, everything else around 0, including the CLS and
position embeddings that transformers would otherwise initialise to ~1e-10), so position, bias and
LayerNorm mistakes show. Head counts keep BLIP's ratios (12 text heads, 16 vision heads), text vocab
stays 30524 so the real BLIP tokenizer (bert-base-uncased + [DEC] + [ENC]) works. Nothing is downloaded.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch

TINY_IMAGE_SIZE = 48  #: 3x3 patches of 16 px + CLS = 10 image tokens
TINY_EMBED_DIM = 64  #: image_text_hidden_size of the tiny model (real BLIP: 256)
MLP_HIDDEN = 128


def tiny_blip_config(embed_dim: int = TINY_EMBED_DIM, image_size: int = TINY_IMAGE_SIZE):
    """A scaled-down BLIP-L retrieval config (2 layers per tower, BLIP's eps and head counts)."""
    from transformers import BlipConfig

    text = dict(
        vocab_size=30524,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=12,
        max_position_embeddings=64,
        layer_norm_eps=1e-12,
        hidden_act="gelu",
        is_decoder=True,  # builds the cross-attention layers
        bos_token_id=30522,
        pad_token_id=0,
        sep_token_id=102,
    )
    vision = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=16,
        image_size=image_size,
        patch_size=16,
        layer_norm_eps=1e-6,
        hidden_act="gelu",
        initializer_range=0.02,
    )
    return BlipConfig(text_config=text, vision_config=vision, image_text_hidden_size=embed_dim)


def randomise_(model: torch.nn.Module, seed: int = 0, std: float = 0.02) -> torch.nn.Module:
    """Overwrite every parameter: LayerNorm weights ~ 1 + N(0, std), all other tensors ~ N(0, std)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            noise = torch.randn(param.shape, generator=gen, dtype=torch.float32) * std
            is_norm_weight = name.endswith("weight") and ("norm" in name.lower()) and param.ndim == 1
            param.copy_(noise + 1.0 if is_norm_weight else noise)
    return model


def make_tiny_blip_model(seed: int = 0, std: float = 0.02, embed_dim: int = TINY_EMBED_DIM):
    """A randomised tiny ``BlipForImageTextRetrieval`` in eval mode (not saved)."""
    from transformers import BlipForImageTextRetrieval

    torch.manual_seed(seed)
    model = BlipForImageTextRetrieval(tiny_blip_config(embed_dim=embed_dim))
    return randomise_(model, seed=seed, std=std).eval()


def make_tiny_blip_folder(path, seed: int = 0, std: float = 0.02, embed_dim: int = TINY_EMBED_DIM) -> Path:
    """Save a randomised tiny BLIP retrieval model plus BLIP tokenizer files into ``path``; return it.

    ``load_blip_encoder(str(folder))`` loads it exactly as it would a hub checkpoint.
    """
    from covr_core.text import build_blip_tokenizer

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    model = make_tiny_blip_model(seed=seed, std=std, embed_dim=embed_dim)
    model.save_pretrained(folder)
    build_blip_tokenizer().save_pretrained(folder)
    return folder


def hf_to_covr_key(key: str) -> str | None:
    """Rename one transformers key to CoVR/BLIP's original name (None: the key has no original)."""
    if key.startswith("itm_head."):
        return None
    if not key.startswith("vision_model."):
        return key
    rest = key[len("vision_model.") :]
    fixed = {
        "embeddings.class_embedding": "visual_encoder.cls_token",
        "embeddings.position_embedding": "visual_encoder.pos_embed",
        "embeddings.patch_embedding.weight": "visual_encoder.patch_embed.proj.weight",
        "embeddings.patch_embedding.bias": "visual_encoder.patch_embed.proj.bias",
        "post_layernorm.weight": "visual_encoder.norm.weight",
        "post_layernorm.bias": "visual_encoder.norm.bias",
    }
    if rest in fixed:
        return fixed[rest]
    parts = rest.split(".")  # encoder.layers.<i>.<module...>.<param>
    assert parts[0] == "encoder" and parts[1] == "layers", key
    sub = ".".join(parts[3:])
    sub = (
        sub.replace("layer_norm1", "norm1")
        .replace("layer_norm2", "norm2")
        .replace("self_attn.qkv", "attn.qkv")
        .replace("self_attn.projection", "attn.proj")
    )
    return f"visual_encoder.blocks.{parts[2]}.{sub}"


def make_covr_state_dict(
    source=None,
    *,
    seed: int = 0,
    std: float = 0.02,
    weight_predictor: bool = False,
    mlp_seed: int = 1,
) -> "OrderedDict[str, torch.Tensor]":
    """The same weights in CoVR/BLIP's original key naming (covr.md §5.2).

    ``source``: a ``BlipForImageTextRetrieval``, a folder from :func:`make_tiny_blip_folder`, or None
    (build a fresh tiny model from ``seed``/``std``). Adds ``text_encoder.embeddings.position_ids``
    (as the original files hold it), drops ``itm_head.*`` (CoVR files have none), and with
    ``weight_predictor=True`` adds the study fork's ``weight_predictor.{0,2}.{weight,bias}``.
    """
    from transformers import BlipForImageTextRetrieval

    if source is None:
        model = make_tiny_blip_model(seed=seed, std=std)
    elif isinstance(source, (str, Path)):
        model = BlipForImageTextRetrieval.from_pretrained(str(source))
    else:
        model = source
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in model.state_dict().items():
        new = hf_to_covr_key(key)
        if new is not None:
            out[new] = value.detach().clone()
    max_pos = model.config.text_config.max_position_embeddings
    out["text_encoder.embeddings.position_ids"] = torch.arange(max_pos, dtype=torch.int64).unsqueeze(0)
    if weight_predictor:
        dim = model.config.image_text_hidden_size
        gen = torch.Generator().manual_seed(mlp_seed)
        out["weight_predictor.0.weight"] = torch.randn(MLP_HIDDEN, 3 * dim, generator=gen) * 0.1
        out["weight_predictor.0.bias"] = torch.randn(MLP_HIDDEN, generator=gen) * 0.1
        out["weight_predictor.2.weight"] = torch.randn(3, MLP_HIDDEN, generator=gen) * 0.1
        out["weight_predictor.2.bias"] = torch.randn(3, generator=gen) * 0.1
    return out


def save_covr_checkpoint(path, state_dict, **extra) -> Path:
    """Write a CoVR-style checkpoint file ``{"epoch": 0, "model": state_dict, **extra}`` with torch.save."""
    path = Path(path)
    payload = {"epoch": 0, "model": state_dict}
    payload.update(extra)
    torch.save(payload, path)
    return path
