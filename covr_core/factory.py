"""Encoder selection: ``blip`` (the real CoVR model), ``lite`` (offline) or ``auto``.

``auto`` (the default) picks ``blip`` when its weights can be had and falls back to ``lite``
otherwise, with a reason the app shows in a banner. Deciding never hangs on the network:

1. a local folder (``COVR_BLIP_SOURCE=/path``) or the local Hugging Face cache is checked first;
2. with ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``) nothing else is tried;
3. otherwise one HEAD request to the hub, in a daemon thread, with a short time limit
   (``COVR_HUB_PROBE_TIMEOUT``, default 3 s).

Environment: ``COVR_ENCODER`` (``auto`` | ``blip`` | ``lite``) is used when the caller passes
``None`` or ``"auto"``; ``COVR_BLIP_SOURCE`` overrides the BLIP hub id / folder.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from covr_core.encoder import Encoder

logger = logging.getLogger(__name__)

BLIP_HUB_ID = "Salesforce/blip-itm-large-coco"
ENCODER_ENV = "COVR_ENCODER"
BLIP_SOURCE_ENV = "COVR_BLIP_SOURCE"
PROBE_TIMEOUT_ENV = "COVR_HUB_PROBE_TIMEOUT"
DEFAULT_PROBE_TIMEOUT = 3.0
ENCODER_CHOICES = ("auto", "blip", "lite")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
_TRUE = ("1", "true", "yes", "on")

HOW_TO_GET_BLIP = (
    f"To use the real CoVR model, download {BLIP_HUB_ID} once with internet access "
    f"(`huggingface-cli download {BLIP_HUB_ID}`, or `hf download {BLIP_HUB_ID}`), or point "
    f"{BLIP_SOURCE_ENV} at a local from_pretrained folder, then start with --encoder blip "
    f"(COVR_ENCODER=blip)."
)


@dataclass(frozen=True)
class EncoderChoice:
    """Which encoder to load and why (``reason`` is shown to users when ``fallback`` is True)."""

    name: str  #: "blip" or "lite"
    reason: str
    fallback: bool = False  #: True when ``auto`` wanted blip but fell back to lite
    source: str = ""  #: BLIP hub id or folder ("" for lite)
    checked: bool = True  #: False for an explicit "blip": availability is checked when loading


def list_encoders() -> list[str]:
    """The encoder names ``create_encoder`` accepts besides ``auto``: ``["blip", "lite"]``."""
    return ["blip", "lite"]


def blip_source() -> str:
    """The BLIP backbone to load: ``COVR_BLIP_SOURCE`` or the hub id ``Salesforce/blip-itm-large-coco``."""
    return os.environ.get(BLIP_SOURCE_ENV, "").strip() or BLIP_HUB_ID


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to a true value."""
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in names)


def _local_folder_ok(path: Path) -> tuple[bool, str]:
    if not (path / "config.json").is_file():
        return False, f"{path} has no config.json"
    if not any((path / f).is_file() for f in _WEIGHT_FILES):
        return False, f"{path} has no model weights ({' / '.join(_WEIGHT_FILES[:2])})"
    return True, f"local folder {path}"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder, read from the environment now (``HF_HUB_CACHE``,
    ``HUGGINGFACE_HUB_CACHE``, ``HF_HOME``/hub, ``XDG_CACHE_HOME``/huggingface/hub, ~/.cache/...)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def blip_in_local_cache(repo_id: str = BLIP_HUB_ID) -> bool:
    """True when config and weights of ``repo_id`` are in the local Hugging Face cache (no network)."""
    cache_dir = hf_cache_dir()
    if not cache_dir.is_dir():
        return False
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return False

    def cached(name: str) -> bool:
        try:
            hit = try_to_load_from_cache(repo_id, name, cache_dir=str(cache_dir))
        except Exception:  # noqa: BLE001 - a broken cache is "not cached"
            return False
        return isinstance(hit, str) and os.path.isfile(hit)

    return cached("config.json") and any(cached(f) for f in _WEIGHT_FILES)


def probe_hub(repo_id: str = BLIP_HUB_ID, timeout: float | None = None) -> tuple[bool, str]:
    """One HEAD request for ``repo_id``'s config.json, abandoned after ``timeout`` seconds.

    Runs in a daemon thread so that a stalled DNS lookup or connection cannot block the caller
    longer than the time limit. Returns (reachable, reason)."""
    if timeout is None:
        try:
            timeout = float(os.environ.get(PROBE_TIMEOUT_ENV, DEFAULT_PROBE_TIMEOUT))
        except ValueError:
            timeout = DEFAULT_PROBE_TIMEOUT
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    url = f"{endpoint}/{repo_id}/resolve/main/config.json"
    result: dict[str, tuple[bool, str]] = {}

    def worker() -> None:
        try:
            req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "covr-explorer"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - fixed https URL
                result["r"] = (200 <= resp.status < 400, f"hub answered HTTP {resp.status}")
        except urllib.error.HTTPError as exc:
            result["r"] = (False, f"hub answered HTTP {exc.code} for {repo_id}")
        except Exception as exc:  # noqa: BLE001 - any failure means "cannot download"
            result["r"] = (False, f"the model hub could not be reached ({type(exc).__name__}: {exc})")

    thread = threading.Thread(target=worker, name="covr-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if "r" not in result:
        return False, f"the model hub did not answer within {timeout:g} s"
    return result["r"]


def blip_availability(source: str | None = None, probe: bool = True) -> tuple[bool, str]:
    """Whether the BLIP weights can be had (local folder, local cache, or a quick hub probe)."""
    source = source or blip_source()
    path = Path(source).expanduser()
    if path.is_dir() or source.startswith(("/", "./", "../", "~")):
        if not path.is_dir():
            return False, f"{BLIP_SOURCE_ENV} folder {path} does not exist"
        return _local_folder_ok(path)
    if blip_in_local_cache(source):
        return True, f"{source} found in the local Hugging Face cache"
    if hub_offline():
        return False, f"{source} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
    if not probe:
        return False, f"{source} is not in the local Hugging Face cache"
    ok, why = probe_hub(source)
    if ok:
        return True, f"{source} will be downloaded from the model hub ({why})"
    return False, f"{source} is not in the local Hugging Face cache and {why}"


def requested_encoder(name: str | None = None) -> str:
    """The encoder asked for: ``name`` unless it is None/"auto", then ``COVR_ENCODER`` (default auto)."""
    if name and name != "auto":
        return name
    env = os.environ.get(ENCODER_ENV, "").strip().lower()
    return env or (name or "auto")


def resolve_encoder_choice(name: str | None = "auto") -> EncoderChoice:
    """Decide which encoder to load (never hangs offline; see the module docstring)."""
    wanted = requested_encoder(name)
    if wanted not in ENCODER_CHOICES:
        raise ValueError(f"unknown encoder {wanted!r}; choose one of {', '.join(ENCODER_CHOICES)}")
    if wanted == "lite":
        return EncoderChoice("lite", "lite encoder requested (offline: EfficientNet-Lite0 + MiniLM)")
    source = blip_source()
    if wanted == "blip":
        return EncoderChoice("blip", f"blip encoder requested ({source})", source=source, checked=False)
    ok, why = blip_availability(source)
    if ok:
        return EncoderChoice("blip", why, source=source)
    reason = (f"Using the offline lite encoder because the BLIP weights are not available: {why}. "
              f"{HOW_TO_GET_BLIP}")
    logger.warning(reason)
    return EncoderChoice("lite", reason, fallback=True)


def create_encoder(
    name: str | None = "auto", checkpoint: str | None = None, device: str = "cpu", dtype: str = "float32"
) -> Encoder:
    """Load the chosen encoder: ``blip`` via ``covr_core.blip.load_blip_encoder``, ``lite`` via
    ``covr_core.lite.load_lite_encoder``; ``auto`` resolves first (falls back to lite)."""
    choice = resolve_encoder_choice(name)
    if choice.name == "blip":
        from covr_core.blip import load_blip_encoder

        if not choice.checked:  # explicit "blip": fail fast with advice instead of a long hub time-out
            ok, why = blip_availability(choice.source)
            if not ok:
                raise RuntimeError(f"the blip encoder was requested but {why}. {HOW_TO_GET_BLIP}")

        return load_blip_encoder(choice.source or blip_source(), checkpoint, device, dtype)
    if checkpoint:
        raise ValueError(
            f"a CoVR checkpoint ({checkpoint}) needs the blip encoder, but the lite encoder was chosen "
            f"({choice.reason})"
        )
    from covr_core.lite import load_lite_encoder

    return load_lite_encoder(device=device)
