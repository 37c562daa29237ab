"""The one encoder factory: ``create_encoder(name, weights=tag)`` (used by app.py and every precompute job).

``name`` is an encoder config of ``covr_core.encoder_registry`` (``blip-large``, alias ``blip``; ``lite``;
configs added with ``COVR_MODEL_CONFIGS``) or ``auto``. ``weights`` is a weight tag of that config
(``webvid-covr``, ``cirr_ft-covr+gt``, ``blip-l-coco``...), a checkpoint file or a ``from_pretrained``
folder; by default a BLIP encoder gets its config's default tag (``webvid-covr``: the real CoVR model).

``auto`` means the real CoVR model (BLIP-L + ``webvid-covr``) when its weights can be had, else the lite
encoder with a reason the app shows in a banner. Deciding never hangs: local files and the Hugging Face
cache first, nothing more with ``HF_HUB_OFFLINE=1``, else one bounded hub probe
(``COVR_HUB_PROBE_TIMEOUT``, default 3 s). An explicitly requested BLIP encoder whose weights cannot be
had fails just as fast, with a message saying how to get them.

Environment (used when the caller passes None / ``auto``): ``COVR_ENCODER``, ``COVR_WEIGHTS``,
``COVR_BLIP_SOURCE`` (a folder or hub id replacing the BLIP base repo).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from covr_core.encoder_registry import ModelCfg, get_model_config, list_models
from covr_core.pretrained import (
    Progress,
    WeightsPlan,
    WeightsUnavailableError,
    fetch_weights,
    how_to_get,
    hub_offline,
    plan_weights,
    weights_availability,
)

if TYPE_CHECKING:  # deciding needs no torch: app.py decides (and fails fast) before importing it
    from covr_core.encoder import Encoder

logger = logging.getLogger(__name__)

ENCODER_ENV = "COVR_ENCODER"
WEIGHTS_ENV = "COVR_WEIGHTS"
BLIP_SOURCE_ENV = "COVR_BLIP_SOURCE"
DEFAULT_BLIP = "blip-large"
BLIP_HUB_ID = "Salesforce/blip-itm-large-coco"
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")

HOW_TO_GET_BLIP = (
    "To use the real CoVR model (BLIP-L + webvid-covr), start with internet access (the weights download "
    "into the Hugging Face cache by themselves), or fetch them once with "
    f"`hf download {BLIP_HUB_ID} config.json` "
    "and `hf download lucas-ventura/CoVR webvid-covr.ckpt`, then start with --encoder blip "
    f"(COVR_ENCODER=blip); a local base folder goes in {BLIP_SOURCE_ENV}."
)


@dataclass(frozen=True)
class EncoderChoice:
    """Which encoder to load, with which weights, and why (``reason`` is shown when ``fallback``)."""

    name: str  #: encoder config name ("blip-large", "lite", ...)
    reason: str
    fallback: bool = False  #: True when ``auto`` wanted BLIP but fell back to lite
    weights: str = ""  #: label of the weights ("webvid-covr (lucas-ventura/CoVR/webvid-covr.ckpt)")
    plan: WeightsPlan | None = None  #: what to fetch (BLIP family)

    @property
    def family(self) -> str:
        """The encoder config's family ("blip", "lite")."""
        return get_model_config(self.name).family


def list_encoders() -> list[str]:
    """Encoder names ``create_encoder`` accepts besides ``auto`` (registry names, then aliases)."""
    names = list_models()
    aliases = [a for n in names for a in get_model_config(n).aliases]
    return [*names, *aliases]


def blip_source() -> str | None:
    """``COVR_BLIP_SOURCE`` (a folder or hub id replacing the BLIP base), or None."""
    return os.environ.get(BLIP_SOURCE_ENV, "").strip() or None


def requested_encoder(name: str | None = None) -> str:
    """The encoder asked for: ``name`` unless it is None/"auto", then ``COVR_ENCODER`` (default auto)."""
    if name and name != "auto":
        return name
    return os.environ.get(ENCODER_ENV, "").strip().lower() or "auto"


def requested_weights(weights: str | None = None) -> str | None:
    """``weights`` or ``COVR_WEIGHTS`` (None: the encoder's default)."""
    return weights or os.environ.get(WEIGHTS_ENV, "").strip() or None


def resolve_device(device: str | None = "auto") -> str:
    """``auto`` (or None) -> ``cuda`` when torch sees a GPU (also ZeroGPU's emulated one), else ``cpu``."""
    if device and device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype_name(dtype: str | None, device: str) -> str:
    """``auto`` -> ``bfloat16`` on CUDA, ``float32`` on CPU; other names pass through."""
    if dtype and dtype != "auto":
        return dtype
    return "bfloat16" if str(device).startswith("cuda") else "float32"


def _plan(model: ModelCfg, weights: str | None, checkpoint: str | None, source: str | None) -> WeightsPlan:
    return plan_weights(model, requested_weights(weights), checkpoint, source or blip_source())


def resolve_encoder_choice(
    name: str | None = "auto",
    weights: str | None = None,
    checkpoint: str | None = None,
    source: str | None = None,
    probe: bool = True,
) -> EncoderChoice:
    """Decide what to load (never hangs; see the module docstring).

    Raises ``ValueError`` for an unknown encoder or weight tag (the message lists the choices), and
    :class:`~covr_core.pretrained.WeightsUnavailableError` when an explicitly requested BLIP encoder's
    weights cannot be had."""
    wanted = requested_encoder(name)
    if wanted == "auto":
        model = get_model_config(DEFAULT_BLIP)
        plan = _plan(model, weights, checkpoint, source)
        ok, why = weights_availability(plan, probe=probe)
        if ok:
            return EncoderChoice(model.name, why, weights=plan.label, plan=plan)
        if checkpoint or requested_weights(weights):
            raise WeightsUnavailableError(f"the requested weights cannot be had: {why}. {how_to_get(plan)}")
        reason = (
            f"Using the offline lite encoder because the CoVR weights are not available: {why}. "
            f"{HOW_TO_GET_BLIP}"
        )
        logger.warning(reason)
        return EncoderChoice("lite", reason, fallback=True, weights="bundled")
    model = get_model_config(wanted)
    if not model.supported:
        raise ValueError(
            f"encoder {model.name!r} is listed for reference only ({model.description}); "
            f"this app runs: {', '.join(list_models())}"
        )
    if model.family != "blip":
        if checkpoint or (requested_weights(weights) not in (None, model.default_weights)):
            raise ValueError(
                f"a CoVR checkpoint or weight tag needs a BLIP encoder, but {model.name!r} was chosen "
                f"(its weights: {', '.join(model.weights)})"
            )
        return EncoderChoice(
            model.name, f"the {model.name} encoder was requested", weights=model.default_weights
        )
    plan = _plan(model, weights, checkpoint, source)
    ok, why = weights_availability(plan, probe=probe)
    if not ok:
        raise WeightsUnavailableError(f"the {model.name} encoder was requested but {why}. {how_to_get(plan)}")
    return EncoderChoice(model.name, why, weights=plan.label, plan=plan)


def load_choice(
    choice: EncoderChoice,
    device: str | None = "auto",
    dtype: str | None = "auto",
    report: Progress | None = None,
    **kwargs,
) -> Encoder:
    """Load the encoder of a resolved :class:`EncoderChoice` on ``device`` (``auto``: CUDA when present)."""
    device = resolve_device(device)
    dtype = resolve_dtype_name(dtype, device)
    model = get_model_config(choice.name)
    if model.family == "lite":
        from covr_core.lite import load_lite_encoder

        if report is not None:
            report("loading the lite encoder (EfficientNet-Lite0 + MiniLM)", None)
        enc = load_lite_encoder(device=device)
        enc.info = dataclasses.replace(enc.info, weights=choice.weights)
        return enc
    from covr_core.blip_load import load_blip_encoder

    assert choice.plan is not None
    files = fetch_weights(choice.plan, report)
    if report is not None:
        report(f"loading {choice.name} with {choice.plan.tag or choice.weights} on {device} ({dtype})", None)
    # a replaced base (COVR_BLIP_SOURCE) is matched to an encoder config by its structure instead
    own_base = choice.plan.base in (model.base_repo, *(w.hub_repo for w in model.weights.values()))
    return load_blip_encoder(
        files.base_dir,
        files.checkpoint,
        device=device,
        dtype=dtype,
        model_cfg=model if own_base else None,
        weights_label=choice.weights,
        checkpoint_sha256=files.sha256,
        **kwargs,
    )


def create_encoder(
    name: str | None = "auto",
    weights: str | None = None,
    *,
    checkpoint: str | None = None,
    source: str | None = None,
    device: str | None = "auto",
    dtype: str | None = "auto",
    report: Progress | None = None,
    **kwargs,
) -> Encoder:
    """Resolve and load an encoder: ``create_encoder("blip", weights="webvid-covr")``.

    ``weights``: a weight tag of the encoder config (``ValueError`` listing the tags otherwise), a
    checkpoint file or a ``from_pretrained`` folder; ``checkpoint``: a checkpoint file (older flag);
    ``source``: a folder / hub id replacing the BLIP base repo; ``device`` ``auto`` = CUDA when present;
    ``dtype`` ``auto`` = bfloat16 on CUDA, float32 on CPU; ``report(message, fraction)``: progress.
    Extra keyword arguments go to ``load_blip_encoder`` (``cache_size``, ``compile``, ``batch_size``)."""
    choice = resolve_encoder_choice(name, weights, checkpoint, source)
    logger.info("encoder %s, weights %s (%s)", choice.name, choice.weights, choice.reason)
    return load_choice(choice, device, dtype, report, **kwargs)


__all__ = [
    "BLIP_HUB_ID",
    "DEFAULT_BLIP",
    "DTYPE_CHOICES",
    "EncoderChoice",
    "HOW_TO_GET_BLIP",
    "create_encoder",
    "hub_offline",
    "list_encoders",
    "load_choice",
    "requested_encoder",
    "resolve_device",
    "resolve_encoder_choice",
]
