"""Fast plain-torch forwards of BLIP's two towers over a transformers ``BlipForImageTextRetrieval``'s own tensors.

Same maths as transformers' BLIP modules (and BLIP's original ViT / MED), written for speed on CPU:

- :class:`FastVision`: the ViT with ``scaled_dot_product_attention`` (transformers' BLIP vision has only the
  eager attention); an ``nn.Module`` with a single tensor input, so ``torch.compile``, OpenVINO and ONNX
  export take it as it is (``covr_core.vision_backends``).
- :class:`FastText`: the text encoder for any mix of *grounded* rows (``[ENC]`` + cross-attention to
  precomputed image keys/values, f_mm) and *text-only* rows (f_txt) in one pass over the weights, with the
  self-attention's Q/K/V in one fused matrix. Keys/values of the image tokens come from :func:`cross_kv`,
  computed once per reference image.

Heads, layer-norm eps and activation are read from the modules, so these forwards follow the model exactly;
the tests compare them with the hand-written BLIP reference forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CrossKV = list[tuple[torch.Tensor, torch.Tensor]]  #: per text layer: keys, values [N, heads, tokens, head dim]


def _layer_norm(x: torch.Tensor, ln: nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


class FastVision(nn.Module):
    """BLIP ViT forward with SDPA: pixels [N, 3, S, S] -> last_hidden_state [N, 1 + patches, width].

    Wraps (does not copy) ``vision_model``; computes in the dtype of its weights."""

    def __init__(self, vision_model: nn.Module) -> None:
        super().__init__()
        self.vm = vision_model
        self.heads = int(vision_model.config.num_attention_heads)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        emb = self.vm.embeddings
        weight = emb.patch_embedding.weight
        x = F.conv2d(pixel_values.to(weight.dtype), weight, emb.patch_embedding.bias, stride=emb.patch_size)
        x = x.flatten(2).transpose(1, 2)
        cls = emb.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + emb.position_embedding.to(x.dtype)[:, : x.shape[1] + 1]
        batch, tokens, width = x.shape
        head_dim = width // self.heads
        for layer in self.vm.encoder.layers:
            attn = layer.self_attn
            h = _layer_norm(x, layer.layer_norm1)
            qkv = attn.qkv(h).view(batch, tokens, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
            ctx = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
            x = x + attn.projection(ctx.transpose(1, 2).reshape(batch, tokens, width))
            h = _layer_norm(x, layer.layer_norm2)
            x = x + layer.mlp.fc2(layer.mlp.activation_fn(layer.mlp.fc1(h)))
        return _layer_norm(x, self.vm.post_layernorm)


def cross_kv(text_encoder: nn.Module, states: torch.Tensor) -> CrossKV:
    """Per text layer, the cross-attention keys and values of image token ``states`` [N, T, width]."""
    out = []
    for layer in text_encoder.encoder.layer:
        sa = layer.crossattention.self
        shape = (*states.shape[:-1], -1, sa.attention_head_size)
        out.append((sa.key(states).view(shape).transpose(1, 2), sa.value(states).view(shape).transpose(1, 2)))
    return out


class _FusedSelfAttention:
    """The self-attention Q/K/V weights of every text layer concatenated (rebuilt when the model moves)."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self.weights: list[tuple[torch.Tensor, torch.Tensor]] = []

    def get(self, text_encoder: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
        first = text_encoder.encoder.layer[0].attention.self.query.weight
        key = (first.device, first.dtype, first.data_ptr(), first._version)
        if key != self._key:
            fused = []
            with torch.no_grad():
                for layer in text_encoder.encoder.layer:
                    sa = layer.attention.self
                    w = torch.cat([sa.query.weight, sa.key.weight, sa.value.weight])
                    b = torch.cat([sa.query.bias, sa.key.bias, sa.value.bias])
                    fused.append((w, b))
            self.weights, self._key = fused, key
        return self.weights


class FastText:
    """BLIP text encoder forward for grounded rows (f_mm) and text-only rows (f_txt) in one pass.

    ``__call__(ids, mask, n_grounded, kv)``: rows ``[:n_grounded]`` cross-attend to ``kv`` (keys/values
    [1 or n_grounded, heads, T, d] per layer; their first token should already be ``[ENC]``), the other
    rows run in text mode. Returns the final hidden state of position 0 for every row."""

    def __init__(self, text_encoder: nn.Module) -> None:
        self.te = text_encoder
        self._fused = _FusedSelfAttention()

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, n_grounded: int, kv: CrossKV | None) -> torch.Tensor:
        te = self.te
        emb = te.embeddings
        rows, length = ids.shape
        x = emb.word_embeddings(ids) + emb.position_embeddings.weight[:length]
        x = _layer_norm(x, emb.LayerNorm)
        width = x.shape[-1]
        keep = mask[:, None, None, :].bool()
        fused = self._fused.get(te)
        layers = te.encoder.layer
        for i, layer in enumerate(layers):
            sa = layer.attention.self
            heads, head_dim = sa.num_attention_heads, sa.attention_head_size
            qkv = F.linear(x, *fused[i]).view(rows, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
            ctx = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=keep)
            out = layer.attention.output
            x = _layer_norm(out.dense(ctx.transpose(1, 2).reshape(rows, length, width)) + x, out.LayerNorm)
            if n_grounded:
                x = torch.cat([self._cross(layer, x[:n_grounded], kv[i]), x[n_grounded:]])
            h = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(x))
            x = _layer_norm(layer.output.dense(h) + x, layer.output.LayerNorm)
        return x[:, 0]

    @staticmethod
    def _cross(layer: nn.Module, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        xa = layer.crossattention
        sa = xa.self
        rows, length, width = x.shape
        q = sa.query(x).view(rows, length, sa.num_attention_heads, sa.attention_head_size).transpose(1, 2)
        k, v = (t.expand(rows, -1, -1, -1) for t in kv)
        ctx = F.scaled_dot_product_attention(q, k, v)
        return _layer_norm(xa.output.dense(ctx.transpose(1, 2).reshape(rows, length, width)) + x, xa.output.LayerNorm)
