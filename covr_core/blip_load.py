"""Loading CoVR BLIP encoders: hub id / local folder, CoVR checkpoints on top, in-memory models."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import torch

from covr_core.blip import (
    CLIP_MEAN,
    CLIP_STD,
    DEFAULT_SOURCE,
    ENCODER_VERSION,
    BlipCoVREncoder,
    BlipImageTransform,
    resolve_dtype,
)
from covr_core.blip_config import enforce_blip_hparams, match_model_config
from covr_core.combiners import load_mlp_combiner, mlp_from_state_dict
from covr_core.convert import build_blip_model, convert_covr_state_dict, load_converted_into
from covr_core.encoder_registry import ModelCfg
from covr_core.safe_load import file_sha256, load_checkpoint_state_dict
from covr_core.text import load_blip_tokenizer
from covr_core.types import EncoderInfo

logger = logging.getLogger(__name__)


def _default_name(config) -> str:
    vc = config.vision_config
    if vc.hidden_size == 1024 and vc.num_hidden_layers == 24:
        return "blip-large"
    if vc.hidden_size == 768 and vc.num_hidden_layers == 12:
        return "blip-base"
    return "blip-tiny"


def _preprocessing(source: str, config, model: ModelCfg | None = None) -> BlipImageTransform:
    """Image size and mean/std of the encoder config when there is one; else the vision config's size and
    mean/std from a local preprocessor_config.json (CLIP's when absent)."""
    if model is not None:
        return BlipImageTransform(size=model.image_size, mean=model.mean, std=model.std)
    mean, std = CLIP_MEAN, CLIP_STD
    pp = Path(source) / "preprocessor_config.json"
    if pp.is_file():
        data = json.loads(pp.read_text())
        mean = tuple(data.get("image_mean", mean))
        std = tuple(data.get("image_std", std))
    size = config.vision_config.image_size
    size = int(size[0] if isinstance(size, (list, tuple)) else size)
    return BlipImageTransform(size=size, mean=mean, std=std)


def _source_sha256(source: str) -> str:
    """sha256 of the weights file behind ``source`` (local folder or HF cache); "" when unknown."""
    folder = Path(source)
    if folder.is_dir():
        record = folder / "covr_conversion.json"
        if record.is_file():
            sha = json.loads(record.read_text()).get("checkpoint_sha256", "")
            if sha:
                return sha
        weights = folder / "model.safetensors"
        return file_sha256(weights) if weights.is_file() else ""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source, "model.safetensors")
        if isinstance(cached, str) and os.path.isfile(cached):
            return file_sha256(cached)
    except Exception as exc:  # noqa: BLE001 (hash is informative only)
        logger.debug("could not hash %s: %s", source, exc)
    return ""


def load_blip_encoder(
    source: str = DEFAULT_SOURCE,
    checkpoint: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    cache_size: int = 32,
    *,
    compile: bool = False,
    name: str | None = None,
    batch_size: int = 16,
    model_cfg: ModelCfg | None = None,
    weights_label: str = "",
    checkpoint_sha256: str | None = None,
    vision_backend: str | None = None,
) -> BlipCoVREncoder:
    """Load a CoVR BLIP encoder.

    ``source``: hub id or local ``from_pretrained`` folder (config, tokenizer and, without
    ``checkpoint``, the weights). ``checkpoint``: optional CoVR ``.ckpt/.pth/.safetensors`` converted in
    memory and loaded strictly on top (only ``itm_head.*`` may be missing; wrong shapes are refused).
    Fork keys ``weight_predictor.*`` (or an ``mlp_combiner.safetensors`` in the folder) become ``.mlp``.

    BLIP's hyperparameters are enforced on the base config (``covr_core.blip_config``): those of
    ``model_cfg``, else of the registered encoder config with the same structure, else the size-independent
    BLIP values; each change is logged (``enc.config_changes``). ``weights_label`` (e.g. the tag) is shown
    in the page header; ``checkpoint_sha256``: an already computed hash (skips hashing the file again).
    """
    from transformers import BlipConfig, BlipForImageTextRetrieval

    resolve_dtype(dtype)  # fail early on a bad dtype name
    config = BlipConfig.from_pretrained(source)
    model_cfg = model_cfg or match_model_config(config)
    changes = enforce_blip_hparams(config, model_cfg, where=f"config of {source}")
    tokenizer = load_blip_tokenizer(source)
    mlp, report = None, None
    if checkpoint is not None:
        converted = convert_covr_state_dict(load_checkpoint_state_dict(checkpoint))
        model = build_blip_model(config)
        report = load_converted_into(model, converted.hf_state_dict, dropped=converted.dropped_keys)
        if converted.mlp_state_dict is not None:
            mlp = mlp_from_state_dict(converted.mlp_state_dict, record={"source": str(checkpoint)})
        ckpt_name = Path(checkpoint).name
        sha = checkpoint_sha256 if checkpoint_sha256 is not None else file_sha256(checkpoint)
    else:
        model, info = BlipForImageTextRetrieval.from_pretrained(
            source, config=config, dtype=torch.float32, output_loading_info=True
        )
        bad = sorted(k for k in info.get("missing_keys", []) if not k.startswith("itm_head."))
        mismatched = [str(m) for m in info.get("mismatched_keys", [])]
        if bad or mismatched:
            raise ValueError(
                f"weights at {source} do not fit the config: missing {len(bad)} {bad[:10]}, "
                f"mismatched {len(mismatched)} {mismatched[:5]}"
            )
        ckpt_name = source
        sha = checkpoint_sha256 if checkpoint_sha256 is not None else _source_sha256(source)
        mlp_file = Path(source) / "mlp_combiner.safetensors"
        if mlp_file.is_file():
            mlp = load_mlp_combiner(mlp_file)
    enc = make_blip_encoder(
        model,
        tokenizer,
        name=name or (model_cfg.name if model_cfg else _default_name(config)),
        checkpoint=ckpt_name,
        checkpoint_sha256=sha,
        device=device,
        dtype=dtype,
        transform=_preprocessing(source, config, model_cfg),
        cache_size=cache_size,
        batch_size=batch_size,
        compile=compile,
        vision_backend=vision_backend,
        mlp=mlp,
    )
    enc.load_report = report
    enc.config_changes = changes
    if weights_label:
        enc.info = dataclasses.replace(enc.info, weights=weights_label)
    return enc


def make_blip_encoder(
    model,
    tokenizer,
    *,
    name: str,
    checkpoint: str = "",
    checkpoint_sha256: str = "",
    device: str = "cpu",
    dtype: str = "float32",
    transform: BlipImageTransform | None = None,
    cache_size: int = 32,
    batch_size: int = 16,
    compile: bool = False,
    vision_backend: str | None = None,
    mlp=None,
) -> BlipCoVREncoder:
    """Wrap an in-memory ``BlipForImageTextRetrieval`` (moved to ``device``/``dtype``) as an encoder;
    ``transform`` defaults to the config's image size with CLIP mean/std; ``vision_backend`` forces a
    ``covr_core.vision_backends`` backend (default: ``$COVR_VISION_BACKEND`` or auto)."""
    torch_dtype = resolve_dtype(dtype)
    config = model.config
    model = model.to(device=device, dtype=torch_dtype).eval()
    info = EncoderInfo(
        name=name,
        version=ENCODER_VERSION,
        checkpoint=checkpoint,
        checkpoint_sha256=checkpoint_sha256,
        dim=int(config.image_text_hidden_size),
        device=str(device),
        dtype=str(torch_dtype).replace("torch.", ""),
        fused=True,
        note="",
    )
    if transform is None:
        size = config.vision_config.image_size
        transform = BlipImageTransform(size=int(size[0] if isinstance(size, (list, tuple)) else size))
    return BlipCoVREncoder(
        model,
        tokenizer,
        info,
        transform,
        cache_size=cache_size,
        batch_size=batch_size,
        compile=compile,
        vision_backend=vision_backend,
        mlp=mlp,
    )
