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

__all__ = ["ENV_VARS", "Limits", "Settings", "load_settings", "describe_settings", "replace_limits"]


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
