"""A hand-written BLIP forward (original ViT / MED maths) over a transformers BLIP model's own tensors.

BLIP's values are written out here, independent of the model's config: vision 16 heads and layer-norm
eps 1e-6, text 12 heads and eps 1e-12, exact (erf) GELU, [ENC] at position 0 for f_mm. Tests compare
every encoder path against it (covr.md §2.1, §8).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from covr_core.blip import CLIP_MEAN, CLIP_STD
from covr_core.text import ENC_TOKEN_ID, pre_caption
from .tiny_blip import TINY_IMAGE_SIZE


def _lin(x, mod):
    return F.linear(x, mod.weight, mod.bias)


def _ln(x, mod, eps):
    return F.layer_norm(x, (x.shape[-1],), mod.weight, mod.bias, eps=eps)


def _attend(q, k, v, heads, additive=None):
    b, lq, width = q.shape
    d = width // heads
    q, k, v = (t.reshape(b, -1, heads, d).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    if additive is not None:
        scores = scores + additive
    return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, lq, width)


def hand_pixels(image: Image.Image, size: int) -> torch.Tensor:
    arr = np.asarray(image.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.float64) / 255.0
    arr = (arr - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    return torch.tensor(arr.transpose(2, 0, 1), dtype=torch.float32)[None]


def hand_vision(model, pixels):
    vm = model.vision_model
    e = vm.embeddings
    x = F.conv2d(pixels, e.patch_embedding.weight, e.patch_embedding.bias, stride=16).flatten(2).transpose(1, 2)
    x = torch.cat([e.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + e.position_embedding
    for layer in vm.encoder.layers:
        h = _ln(x, layer.layer_norm1, 1e-6)
        q, k, v = _lin(h, layer.self_attn.qkv).chunk(3, dim=-1)
        x = x + _lin(_attend(q, k, v, heads=16), layer.self_attn.projection)
        h = _ln(x, layer.layer_norm2, 1e-6)
        x = x + _lin(F.gelu(_lin(h, layer.mlp.fc1)), layer.mlp.fc2)
    return _ln(x, vm.post_layernorm, 1e-6)


def hand_text(model, ids, mask, states=None):
    te = model.text_encoder
    emb = te.embeddings
    x = emb.word_embeddings.weight[ids] + emb.position_embeddings.weight[: ids.shape[1]][None]
    x = _ln(x, emb.LayerNorm, 1e-12)
    additive = (1.0 - mask[:, None, None, :].float()) * -1e30
    for layer in te.encoder.layer:
        sa = layer.attention.self
        ctx = _attend(_lin(x, sa.query), _lin(x, sa.key), _lin(x, sa.value), heads=12, additive=additive)
        x = _ln(x + _lin(ctx, layer.attention.output.dense), layer.attention.output.LayerNorm, 1e-12)
        if states is not None:
            ca = layer.crossattention.self
            ctx = _attend(_lin(x, ca.query), _lin(states, ca.key), _lin(states, ca.value), heads=12)
            x = _ln(x + _lin(ctx, layer.crossattention.output.dense), layer.crossattention.output.LayerNorm, 1e-12)
        h = F.gelu(_lin(x, layer.intermediate.dense))
        x = _ln(x + _lin(h, layer.output.dense), layer.output.LayerNorm, 1e-12)
    return x


def hand_query(enc, image, text, enc_token=True, image_size: int = TINY_IMAGE_SIZE):
    """(f_mm, f_img, f_txt) of one query by the hand-written forward over ``enc.model``'s tensors."""
    model = enc.model
    with torch.no_grad():
        states = hand_vision(model, hand_pixels(image, image_size))
        batch = enc.tokenizer([pre_caption(text)], return_tensors="pt")
        ids, mask = batch["input_ids"], batch["attention_mask"]
        f_img = F.normalize(_lin(states[:, 0], model.vision_proj), dim=-1)
        f_txt = F.normalize(_lin(hand_text(model, ids, mask)[:, 0], model.text_proj), dim=-1)
        mm_ids = ids.clone()
        if enc_token:
            mm_ids[:, 0] = ENC_TOKEN_ID
        f_mm = F.normalize(_lin(hand_text(model, mm_ids, mask, states)[:, 0], model.text_proj), dim=-1)
    return f_mm[0].numpy(), f_img[0].numpy(), f_txt[0].numpy()
