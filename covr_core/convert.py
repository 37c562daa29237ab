"""Convert CoVR/BLIP checkpoints (original key names) to transformers' ``BlipForImageTextRetrieval``.

Rules (covr.md §5.3, §8): only vision keys are renamed; ``text_encoder.*``, ``vision_proj``,
``text_proj`` and ``itm_head`` keep their names; ``text_encoder.embeddings.position_ids`` (a
non-persistent buffer in transformers 5), ``temp``, momentum copies (``*_m``) and queues are dropped;
the study fork's ``weight_predictor.{0,2}.{weight,bias}`` become the MLP combiner.

CLI: ``python -m covr_core.convert IN OUT [--base SOURCE]`` writes a ``from_pretrained`` folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from covr_core.blip_config import enforce_blip_hparams, match_model_config
from covr_core.combiners import mlp_from_state_dict, save_mlp_combiner
from covr_core.safe_load import file_sha256, load_checkpoint_state_dict
from covr_core.text import load_blip_tokenizer

logger = logging.getLogger(__name__)

_VISION_FIXED = {
    "visual_encoder.cls_token": "vision_model.embeddings.class_embedding",
    "visual_encoder.pos_embed": "vision_model.embeddings.position_embedding",
    "visual_encoder.patch_embed.proj.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual_encoder.patch_embed.proj.bias": "vision_model.embeddings.patch_embedding.bias",
    "visual_encoder.norm.weight": "vision_model.post_layernorm.weight",
    "visual_encoder.norm.bias": "vision_model.post_layernorm.bias",
}
_BLOCK_RE = re.compile(r"^visual_encoder\.blocks\.(\d+)\.(.+)$")
_BLOCK_SUBS = (
    ("norm1.", "layer_norm1."),
    ("norm2.", "layer_norm2."),
    ("attn.qkv.", "self_attn.qkv."),
    ("attn.proj.", "self_attn.projection."),
    ("mlp.fc1.", "mlp.fc1."),
    ("mlp.fc2.", "mlp.fc2."),
)
_DROP_EXACT = {"text_encoder.embeddings.position_ids", "temp", "ptr_queue", "image_queue", "text_queue", "idx_queue"}
_DROP_PREFIXES = ("visual_encoder_m.", "text_encoder_m.", "vision_proj_m.", "text_proj_m.")
MLP_PREFIX = "weight_predictor."


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model (message names the keys)."""


class CheckpointShapeError(CheckpointError):
    """A tensor's shape differs from the model's."""


@dataclass
class ConvertedCheckpoint:
    """Result of :func:`convert_covr_state_dict`."""

    hf_state_dict: dict[str, torch.Tensor]
    mlp_state_dict: dict[str, torch.Tensor] | None
    dropped_keys: list[str] = field(default_factory=list)


@dataclass
class LoadReport:
    """What happened when a converted state dict was loaded into a model."""

    loaded: int
    missing: list[str]
    unexpected: list[str]
    dropped: list[str]

    def summary(self) -> str:
        """One-paragraph human-readable summary."""
        return (
            f"loaded {self.loaded} tensors; missing {len(self.missing)} {self.missing[:8]}; "
            f"unexpected {len(self.unexpected)} {self.unexpected[:8]}; dropped {len(self.dropped)} {self.dropped[:8]}"
        )


def covr_to_hf_key(key: str) -> str:
    """Rename one original BLIP/CoVR key to the transformers layout (non-vision keys unchanged)."""
    if key in _VISION_FIXED:
        return _VISION_FIXED[key]
    match = _BLOCK_RE.match(key)
    if match:
        idx, rest = match.groups()
        for old, new in _BLOCK_SUBS:
            if rest.startswith(old):
                return f"vision_model.encoder.layers.{idx}.{new}{rest[len(old):]}"
        raise CheckpointError(f"unknown vision block key {key!r}")
    return key


def convert_covr_state_dict(sd: dict[str, torch.Tensor]) -> ConvertedCheckpoint:
    """Original CoVR/BLIP state dict -> transformers state dict + optional MLP combiner state dict.

    Keys already in transformers layout (``vision_model.*``) pass through unchanged."""
    hf: dict[str, torch.Tensor] = {}
    mlp: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in sd.items():
        if key.startswith("module."):
            key = key[len("module.") :]
        if key in _DROP_EXACT or key.startswith(_DROP_PREFIXES):
            dropped.append(key)
        elif key.startswith(MLP_PREFIX):
            mlp[key[len(MLP_PREFIX) :]] = value
        else:
            new = covr_to_hf_key(key)
            if new in hf:
                raise CheckpointError(f"two checkpoint keys map to {new!r}")
            hf[new] = value
    return ConvertedCheckpoint(hf_state_dict=hf, mlp_state_dict=mlp or None, dropped_keys=dropped)


def build_blip_model(config):
    """``BlipForImageTextRetrieval(config)`` without the slow random init (weights uninitialised
    except ``itm_head`` = 0 and the ``position_ids`` buffer); callers load or randomise weights."""
    from transformers import BlipForImageTextRetrieval

    with torch.device("meta"):
        model = BlipForImageTextRetrieval(config)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        pos = model.text_encoder.embeddings.position_ids
        pos.copy_(torch.arange(pos.shape[-1], dtype=pos.dtype).expand_as(pos))
        model.itm_head.weight.zero_()
        model.itm_head.bias.zero_()
    return model.eval()


def check_shapes(model: torch.nn.Module, hf_sd: dict[str, torch.Tensor]) -> None:
    """Raise :class:`CheckpointShapeError` naming every key whose shape differs from the model's."""
    own = model.state_dict()
    bad = [
        f"{k}: checkpoint {list(v.shape)} vs model {list(own[k].shape)}"
        for k, v in hf_sd.items()
        if k in own and tuple(own[k].shape) != tuple(v.shape)
    ]
    if bad:
        raise CheckpointShapeError(
            f"checkpoint does not fit the model config ({len(bad)} shape mismatches): " + "; ".join(bad[:10])
        )


def load_converted_into(
    model: torch.nn.Module,
    hf_sd: dict[str, torch.Tensor],
    dropped: list[str] | None = None,
    allow_missing: tuple[str, ...] = ("itm_head.",),
) -> LoadReport:
    """Load strictly: shapes must match, nothing unexpected, only ``allow_missing`` prefixes missing."""
    check_shapes(model, hf_sd)
    own = model.state_dict()
    missing = [k for k in own if k not in hf_sd]
    unexpected = [k for k in hf_sd if k not in own]
    bad_missing = [k for k in missing if not k.startswith(allow_missing)]
    if bad_missing or unexpected:
        raise CheckpointError(
            f"checkpoint keys do not match the model: missing {len(bad_missing)} {bad_missing[:10]}, "
            f"unexpected {len(unexpected)} {unexpected[:10]}"
        )
    model.load_state_dict(hf_sd, strict=False)
    report = LoadReport(loaded=len(hf_sd), missing=missing, unexpected=unexpected, dropped=list(dropped or []))
    logger.info("checkpoint: %s", report.summary())
    return report


def convert_checkpoint(checkpoint: str | Path, out_dir: str | Path, base: str) -> LoadReport:
    """Convert a CoVR checkpoint file into a ``from_pretrained`` folder (weights from ``checkpoint``,
    config and tokenizer from ``base``); fork keys go to ``mlp_combiner.safetensors`` + ``.json``."""
    from transformers import BlipConfig

    out = Path(out_dir)
    config = BlipConfig.from_pretrained(base)
    enforce_blip_hparams(config, match_model_config(config), where=f"config of {base}")  # written out corrected
    converted = convert_covr_state_dict(load_checkpoint_state_dict(checkpoint))
    model = build_blip_model(config)
    report = load_converted_into(model, converted.hf_state_dict, dropped=converted.dropped_keys)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    load_blip_tokenizer(base).save_pretrained(out)
    pp = Path(base) / "preprocessor_config.json"
    if pp.is_file():
        (out / "preprocessor_config.json").write_text(pp.read_text())
    sha = file_sha256(checkpoint)
    record = {
        "checkpoint": Path(checkpoint).name,
        "checkpoint_sha256": sha,
        "base": base,
        "missing": report.missing,
        "dropped": report.dropped,
        "has_mlp_combiner": converted.mlp_state_dict is not None,
    }
    if converted.mlp_state_dict is not None:
        mlp = mlp_from_state_dict(converted.mlp_state_dict, record={"source": Path(checkpoint).name})
        save_mlp_combiner(mlp, out / "mlp_combiner.safetensors", record={"source": Path(checkpoint).name, "checkpoint_sha256": sha})
    (out / "covr_conversion.json").write_text(json.dumps(record, indent=2))
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags of ``python -m covr_core.convert``."""
    parser = argparse.ArgumentParser(
        prog="python -m covr_core.convert",
        description="Convert a CoVR/BLIP checkpoint (.ckpt/.pth, original BLIP key names) into a "
        "transformers BlipForImageTextRetrieval folder (model.safetensors + config + tokenizer).",
    )
    parser.add_argument("checkpoint", metavar="IN", help="CoVR checkpoint file (.ckpt, .pth, .pt or .safetensors)")
    parser.add_argument("out_dir", metavar="OUT", help="output folder (created; loadable with from_pretrained)")
    parser.add_argument(
        "--base",
        default="Salesforce/blip-itm-large-coco",
        help="hub id or local folder that supplies config.json and the tokenizer (default: %(default)s)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; prints a summary of missing/unexpected/dropped keys. Returns the exit code."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        report = convert_checkpoint(args.checkpoint, args.out_dir, args.base)
    except (CheckpointError, FileNotFoundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out_dir}")
    print(report.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
