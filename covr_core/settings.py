"""Run-time settings and input limits, with documented defaults and environment overrides.

Every setting has a default and can be overridden with an environment variable; ``load_settings``
reads them (``load_settings(env={...})`` in tests) and refuses invalid values with a ``ValueError``
that names the variable, the bad value and what is accepted.

================================  =========  ====================================================
variable (``Limits`` field)       default    meaning
================================  =========  ====================================================
``COVR_MAX_UPLOAD_MB``            50         largest uploaded image or video file, MiB
``COVR_MAX_IMAGE_PIXELS``         40000000   most pixels (width x height) an image may declare;
                                             also Pillow's decompression-bomb guard
``COVR_MAX_IMAGE_SIDE``           12000      longest image side, pixels
``COVR_MAX_VIDEO_SECONDS``        120        longest video, seconds
``COVR_MAX_VIDEO_SIDE``           1920       longest video side, pixels
``COVR_MAX_VIDEO_PIXELS``         2088960    most pixels per video frame (1920x1088: 1080p)
``COVR_MAX_TEXT_CHARS``           1000       longest modification text, characters
``COVR_MAX_CONCURRENT_JOBS``      2          queries the app runs at the same time
``COVR_MAX_IMAGE_ASPECT``         20         longest side / shortest side an image or video may have
``COVR_MAX_QUEUE_SIZE``           64         events waiting in the app's queue (then "busy")
``COVR_MAX_PENDING_PER_SESSION``  3          searches/uploads one browser session may have waiting
``COVR_MAX_PENDING_PER_CLIENT``   8          searches/uploads one client address may have waiting
``COVR_UPLOADS_PER_MINUTE``       120        file uploads per client address per minute
``COVR_MAX_PINS_PER_VISITOR``     100        pinned examples one visitor may keep
``COVR_MAX_EXPORTS_PER_VISITOR``  3          export ZIPs one visitor may have on the server
``COVR_EXPORT_MAX_AGE_S``         3600       export ZIPs are deleted after this many seconds
``COVR_DATA_DIR`` (``data_dir``)  ./data     folder of galleries, caches and curated examples
``COVR_MEDIA_ROOTS``              (none)     extra folders gallery media may live in
(``media_roots``)                            (``os.pathsep``-separated absolute paths)
================================  =========  ====================================================

Each limit variable sets the ``Limits`` field of the same name in lower case without ``COVR_``
(``COVR_MAX_UPLOAD_MB`` -> ``Limits.max_upload_mb``). Integers accept ``_`` separators
(``40_000_000``); every limit must be positive. ``COVR_DATA_DIR`` and ``COVR_MEDIA_ROOTS`` set fields of
``Settings`` itself; docs/SECURITY.md says what each limit protects.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["APP_ENV_VARS", "AppOptions", "COMPUTE_ENV_VARS", "ENV_VARS", "Limits", "Settings",
           "app_options_from_env", "load_settings", "describe_settings", "replace_limits"]


@dataclass(frozen=True)
class Limits:
    """Limits on user input (see the module docstring for the environment variables)."""

    max_upload_mb: float = 50.0  # largest uploaded file, MiB
    max_image_pixels: int = 40_000_000  # width * height an image may declare (decompression-bomb guard)
    max_image_side: int = 12_000  # longest image side, pixels
    max_video_seconds: float = 120.0  # longest video, seconds
    max_video_side: int = 1920  # longest video side, pixels
    max_video_pixels: int = 1920 * 1088  # pixels per video frame (1080p, coded height 1088)
    max_text_chars: int = 1000  # longest modification text, characters
    max_concurrent_jobs: int = 2  # queries run at the same time
    max_image_aspect: float = 20.0  # longest side / shortest side of an image or video frame
    max_queue_size: int = 64  # events waiting in the queue
    max_pending_per_session: int = 3  # heavy (encoder pool) events one browser session may have waiting
    max_pending_per_client: int = 8  # heavy events one client address may have waiting
    uploads_per_minute: int = 120  # file uploads per client address per minute
    max_pins_per_visitor: int = 100  # pinned examples per visitor
    max_exports_per_visitor: int = 3  # export ZIPs per visitor kept on the server
    export_max_age_s: int = 3600  # export ZIPs older than this are deleted

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)


@dataclass(frozen=True)
class Settings:
    """Application settings: the input ``limits``, the ``data_dir`` folder and extra ``media_roots``."""

    limits: Limits = field(default_factory=Limits)
    data_dir: Path = Path("./data")
    media_roots: tuple[Path, ...] = ()  #: folders outside data_dir that gallery media may live in


#: ``Settings`` fields set by environment variables (the others are ``Limits`` fields).
SETTINGS_FIELDS = ("data_dir", "media_roots")


# variable -> (field, type, description); the field lives on Limits except ``data_dir``.
ENV_VARS: dict[str, tuple[str, type, str]] = {
    "COVR_MAX_UPLOAD_MB": ("max_upload_mb", float, "largest uploaded image or video file (MiB)"),
    "COVR_MAX_IMAGE_PIXELS": ("max_image_pixels", int, "most pixels an image may declare (bomb guard)"),
    "COVR_MAX_IMAGE_SIDE": ("max_image_side", int, "longest image side (pixels)"),
    "COVR_MAX_VIDEO_SECONDS": ("max_video_seconds", float, "longest video (seconds)"),
    "COVR_MAX_VIDEO_SIDE": ("max_video_side", int, "longest video side (pixels)"),
    "COVR_MAX_VIDEO_PIXELS": ("max_video_pixels", int, "most pixels per video frame"),
    "COVR_MAX_TEXT_CHARS": ("max_text_chars", int, "longest modification text (characters)"),
    "COVR_MAX_CONCURRENT_JOBS": ("max_concurrent_jobs", int, "queries run at the same time"),
    "COVR_MAX_IMAGE_ASPECT": ("max_image_aspect", float, "longest / shortest side of an image or video"),
    "COVR_MAX_QUEUE_SIZE": ("max_queue_size", int, "events waiting in the queue"),
    "COVR_MAX_PENDING_PER_SESSION": ("max_pending_per_session", int, "searches/uploads waiting per session"),
    "COVR_MAX_PENDING_PER_CLIENT": ("max_pending_per_client", int, "searches/uploads waiting per address"),
    "COVR_UPLOADS_PER_MINUTE": ("uploads_per_minute", int, "file uploads per client address per minute"),
    "COVR_MAX_PINS_PER_VISITOR": ("max_pins_per_visitor", int, "pinned examples per visitor"),
    "COVR_MAX_EXPORTS_PER_VISITOR": ("max_exports_per_visitor", int, "export ZIPs per visitor on the server"),
    "COVR_EXPORT_MAX_AGE_S": ("export_max_age_s", int, "seconds before an export ZIP is deleted"),
    "COVR_DATA_DIR": ("data_dir", Path, "folder of galleries, caches and curated examples"),
    "COVR_MEDIA_ROOTS": ("media_roots", tuple, "extra folders gallery media may live in (os.pathsep list)"),
}


def _parse(name: str, raw: str, kind: type) -> object:
    text = raw.strip()
    if kind is tuple:  # a list of folders
        parts = [Path(p.strip()).expanduser() for p in text.split(os.pathsep) if p.strip()]
        relative = [str(p) for p in parts if not p.is_absolute()]
        if relative:
            raise ValueError(f"{name}={raw!r} is not valid: every folder must be an absolute path ({relative})")
        return tuple(parts)
    if kind is Path:
        if not text:
            raise ValueError(f"{name} is empty; set it to a folder path (default ./data)")
        return Path(text).expanduser()
    try:
        value = int(text) if kind is int else float(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name}={raw!r} is not valid: expected {what} greater than 0") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"{name}={raw!r} is not valid: it must be greater than 0 and finite")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from defaults overridden by ``COVR_*`` variables of ``env``.

    ``env`` defaults to ``os.environ``. Unset or empty numeric variables keep their default.
    Raises ``ValueError`` naming the variable when a value is not a positive number.
    """
    env = os.environ if env is None else env
    limit_values: dict[str, object] = {}
    settings_values: dict[str, object] = {}
    for name, (attr, kind, _desc) in ENV_VARS.items():
        raw = env.get(name)
        if raw is None or (kind is not Path and not raw.strip()):
            continue
        value = _parse(name, raw, kind)
        if attr in SETTINGS_FIELDS:
            settings_values[attr] = value
        else:
            limit_values[attr] = value
    return Settings(limits=Limits(**limit_values), **settings_values)  # type: ignore[arg-type]


def describe_settings(settings: Settings) -> list[tuple[str, str, str]]:
    """``(variable, current value, description)`` rows, e.g. for an "About" panel or a log line."""
    rows = []
    for name, (attr, _kind, desc) in ENV_VARS.items():
        value = getattr(settings, attr) if attr in SETTINGS_FIELDS else getattr(settings.limits, attr)
        if attr == "media_roots":
            value = os.pathsep.join(str(p) for p in value)
        rows.append((name, str(value), desc))
    return rows


def replace_limits(settings: Settings, **changes: object) -> Settings:
    """A copy of ``settings`` with some limits changed (``replace_limits(s, max_video_seconds=5)``)."""
    return dataclasses.replace(settings, limits=dataclasses.replace(settings.limits, **changes))


# ------------------------------------------------------------------------------------- app options
@dataclass(frozen=True)
class AppOptions:
    """What ``python app.py`` runs with: every flag also has an environment variable (a Space runs the
    app with no flags, so its variables/secrets are how it is configured). See :data:`APP_ENV_VARS`."""

    encoder: str = "auto"
    weights: str | None = None
    checkpoint: str | None = None
    mlp: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    gallery: str | None = None
    gallery_repo: str | None = None
    gallery_dirs: str | None = None
    blip_source: str | None = None
    data_dir: Path | None = None
    webvid_root: str | None = None


# variable -> (AppOptions field, flag, default as shown, meaning); one table in README.md
APP_ENV_VARS: dict[str, tuple[str, str, str, str]] = {
    "COVR_ENCODER": (
        "encoder", "--encoder", "auto",
        "encoder config: `auto` (BLIP-L + webvid-covr when its weights can be had, else lite), "
        "`blip` (= `blip-large`), `lite`, or one added with `COVR_MODEL_CONFIGS`",
    ),
    "COVR_WEIGHTS": (
        "weights", "--weights", "the encoder's default (`webvid-covr`)",
        "weight tag (`webvid-covr`, `cirr_ft-covr+gt`, `fashioniq-all-ft_covr`, `blip-l-coco`), "
        "a checkpoint file or a `from_pretrained` folder",
    ),
    "COVR_CHECKPOINT": (
        "checkpoint", "--checkpoint", "none",
        "a CoVR `.ckpt/.pth/.safetensors` file (same as `--weights FILE`)",
    ),
    "COVR_MLP": (
        "mlp", "--mlp", "none",
        "trained MLP combiner (`.safetensors` from `precompute.train_combiner`): enables the MLP combiner",
    ),
    "COVR_DEVICE": (
        "device", "--device", "auto",
        "`auto` = `cuda` when a GPU is present (also ZeroGPU), else `cpu`; or `cpu`, `cuda`, `cuda:1`",
    ),
    "COVR_DTYPE": (
        "dtype", "--dtype", "auto",
        "`auto` = `bfloat16` on CUDA, `float32` on CPU; or `float32`, `bfloat16`, `float16`",
    ),
    "COVR_GALLERY": (
        "gallery", "--gallery", "`demo-<encoder>`", "default gallery: a folder, or a gallery name",
    ),
    "COVR_GALLERY_REPO": (
        "gallery_repo", "--gallery-repo", "none",
        "a Hugging Face dataset repo (`owner/name[@revision]`) whose gallery folders are downloaded and "
        "checked at start",
    ),
    "COVR_GALLERY_DIRS": (
        "gallery_dirs", "--gallery-dirs", "none",
        "folders (`:`-separated; e.g. a mounted, read-only bucket) whose gallery folders are checked and "
        "used in place",
    ),
    "COVR_BLIP_SOURCE": (
        "blip_source", "--blip-source", "the config's base repo",
        "a folder or hub id replacing the BLIP base (config, tokenizer, weights)",
    ),
    "COVR_DATA_DIR": (
        "data_dir", "--data-dir", "`./data`", "galleries, evaluations, caches, pinned examples",
    ),
    "COVR_WEBVID_ROOT": (
        "webvid_root", "--webvid-root", "`<data>/webvid`",
        "WebVid videos as `<root>/<pth>.mp4` for the filter view's example frames",
    ),
}


# variable -> (default as shown, meaning): how the model computes (read by covr_core.vision_backends and
# covr_core.artifact_cache where they are used; listed here so the app's --help and README's table name them)
COMPUTE_ENV_VARS: dict[str, tuple[str, str]] = {
    "COVR_VISION_BACKEND": (
        "auto",
        "what runs BLIP's ViT: `auto` (OpenVINO on CPU for BLIP-L when installed, else `sdpa`), `transformers`, "
        "`sdpa`, `compile`, `compile-max-autotune`, `openvino`, `onnxruntime`",
    ),
    "COVR_COMPILE_CACHE": (
        "`<data>/cache/compiled`",
        "folder of the one-time ViT exports (OpenVINO/ONNX), reused across restarts; `off` disables it",
    ),
    "COVR_COMPILE_CACHE_MB": ("4096", "size bound of that cache, MiB (least recently used evicted)"),
    "COVR_COMPILE_CACHE_ENTRIES": ("3", "most exports kept in that cache"),
}


def app_options_from_env(env: Mapping[str, str] | None = None) -> AppOptions:
    """:class:`AppOptions` from the ``COVR_*`` variables of ``env`` (default ``os.environ``)."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    for name, (attr, _flag, _default, _desc) in APP_ENV_VARS.items():
        raw = (env.get(name) or "").strip()
        if raw:
            values[attr] = Path(raw).expanduser() if attr == "data_dir" else raw
    return AppOptions(**values)  # type: ignore[arg-type]
