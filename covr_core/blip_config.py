"""BLIP's hyperparameters, enforced on whatever config a base folder or hub repo ships (covr.md §5.3, §8).

transformers' BLIP defaults differ from BLIP/CoVR (vision layer-norm eps 1e-5 vs 1e-6, 8 text heads vs
12), and the hub's BLIP configs were written from those defaults: loaded as is, every embedding drifts
from CoVR's forward. :func:`enforce_blip_hparams` rewrites the values that do not change any weight
shape (eps, head counts, activation, ``is_decoder``) to BLIP's and logs each change; a value that
decides a weight shape (widths, depths, image and patch size, vocabulary) cannot be fixed, so a config
that disagrees there is refused with a message naming the values.
"""

from __future__ import annotations

import logging
from typing import Any

from covr_core.encoder_registry import ModelCfg, list_models, get_model_config

logger = logging.getLogger(__name__)

#: Size-independent BLIP values (original ViT and MED config): apply to every BLIP model.
FAMILY_RULES: dict[str, dict[str, Any]] = {
    "vision": {"layer_norm_eps": 1e-6, "hidden_act": "gelu"},
    "text": {"num_attention_heads": 12, "layer_norm_eps": 1e-12, "hidden_act": "gelu", "is_decoder": True},
}
#: Values that decide weight shapes: a mismatch is refused, never "fixed".
STRUCTURAL: dict[str, tuple[str, ...]] = {
    "vision": ("hidden_size", "intermediate_size", "num_hidden_layers", "image_size", "patch_size"),
    "text": (
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "encoder_hidden_size",
        "max_position_embeddings",
    ),
}


class BlipConfigError(ValueError):
    """A base config whose weight-shaping values disagree with the encoder config (not fixable)."""


def _towers(config) -> dict[str, Any]:
    return {"vision": config.vision_config, "text": config.text_config}


def structure_matches(config, model: ModelCfg) -> bool:
    """True when every weight-shaping value ``model`` states equals ``config``'s."""
    if not model.vision and not model.text:
        return False
    for tower, sub in _towers(config).items():
        wanted = model.vision if tower == "vision" else model.text
        for key in STRUCTURAL[tower]:
            if key in wanted and getattr(sub, key, None) != wanted[key]:
                return False
    return int(config.image_text_hidden_size) == model.embed_dim


def match_model_config(config) -> ModelCfg | None:
    """The registered BLIP encoder config whose structure ``config`` has (None when none does)."""
    for name in list_models():
        model = get_model_config(name)
        if model.family == "blip" and structure_matches(config, model):
            return model
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-15 * max(1.0, abs(float(b)))
        except (TypeError, ValueError):
            return False
    return a == b


def enforce_blip_hparams(config, model: ModelCfg | None = None, where: str = "the base config") -> list[str]:
    """Set BLIP's hyperparameters on ``config`` (a ``BlipConfig``, changed in place); returns the changes.

    ``model``: the encoder config whose ``vision`` / ``text`` values are enforced (all of them); without
    one, only :data:`FAMILY_RULES`. Raises :class:`BlipConfigError` for a weight-shaping disagreement or
    a head count that does not divide the width."""
    changes: list[str] = []
    problems: list[str] = []
    for tower, sub in _towers(config).items():
        wanted = dict(FAMILY_RULES[tower])
        if model is not None:
            wanted.update(model.vision if tower == "vision" else model.text)
        for key, value in wanted.items():
            have = getattr(sub, key, None)
            if _same(have, value):
                continue
            if key in STRUCTURAL[tower]:
                problems.append(
                    f"{tower} {key} is {have!r}, {model.name if model else 'BLIP'} needs {value!r}"
                )
                continue
            setattr(sub, key, value)
            changes.append(f"{tower} {key} {have!r} -> {value!r}")
        heads = int(getattr(sub, "num_attention_heads", 1))
        if int(sub.hidden_size) % heads:
            problems.append(f"{tower} hidden_size {sub.hidden_size} is not divisible by {heads} heads")
    if model is not None and int(config.image_text_hidden_size) != model.embed_dim:
        problems.append(
            f"image_text_hidden_size is {config.image_text_hidden_size}, {model.name} needs {model.embed_dim}"
        )
    if problems:
        raise BlipConfigError(
            f"{where} does not describe {model.name if model else 'a BLIP model'}: "
            + "; ".join(problems)
            + ". These values decide weight shapes and cannot be corrected; use the base repo the encoder "
            "config "
            "names, or register an encoder config for this architecture."
        )
    for change in changes:
        logger.warning("%s: %s (BLIP's value; transformers' default differs)", where, change)
    return changes
