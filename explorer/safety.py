"""Small safety helpers for the app: path confinement, safe file names, upload temp-file clean-up.

* :func:`confine` resolves a path (symlinks and ``..`` included) and refuses it unless it stays inside
  a root folder: use it for every file name built from user input (exports, caches, curated examples).
* :func:`safe_filename` turns any user-supplied name into one path component.
* :func:`delete_cache_setting` is the ``gr.Blocks(delete_cache=...)`` value: Gradio then deletes
  uploaded and generated temporary files older than ``COVR_TEMP_MAX_AGE_S`` seconds (default 3600)
  and deletes all of them when the server shuts down.
* :func:`public_message` removes server paths from a message before it is shown in the page (a path is
  replaced by its last component: ``/srv/data/galleries/x/index.faiss is corrupt`` -> ``index.faiss is
  corrupt``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["PathEscapeError", "confine", "safe_filename", "delete_cache_setting", "public_message",
           "TEMP_MAX_AGE_ENV"]

TEMP_MAX_AGE_ENV = "COVR_TEMP_MAX_AGE_S"
DEFAULT_TEMP_MAX_AGE_S = 3600
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: An absolute POSIX path (two or more segments, or one after a quote/space): not preceded by a word
#: character, so ``w_mm/w_img`` or ``mp4/webm`` are left alone.
_ABS_PATH = re.compile(r"(?<![\w.~%:/-])(?:/[^\s/'\"`<>|;,()\[\]{}]+)+/?")


class PathEscapeError(ValueError):
    """A path that would leave its folder; the message is safe to show (it names no server path)."""


def confine(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """``root / path`` resolved, or :class:`PathEscapeError` when it is not inside ``root``.

    ``path`` may be relative (joined to ``root``) or absolute; ``..`` segments and symlinks are
    resolved before the check, so ``"../x"``, ``"/etc/passwd"`` and a link pointing out are refused.
    NUL bytes are refused too.
    """
    text = os.fspath(path)
    if "\x00" in str(text):
        raise PathEscapeError("The file name contains a NUL byte.")
    base = Path(root).resolve()
    target = (base / text).resolve()
    if target != base and base not in target.parents:
        raise PathEscapeError("The file name points outside its folder; use a plain file name.")
    return target


def safe_filename(name: str, default: str = "file", max_len: int = 80) -> str:
    """One safe path component from ``name``: no separators, no ``..``, only ``[A-Za-z0-9._-]``."""
    base = str(name).replace("\\", "/").split("/")[-1]
    base = _UNSAFE.sub("-", base).strip(".-")
    return base[:max_len].strip(".-") or default


def delete_cache_setting(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(frequency, age)`` seconds for ``gr.Blocks(delete_cache=...)`` from ``COVR_TEMP_MAX_AGE_S``.

    Files older than ``age`` (default 3600 s) are deleted every ``frequency = min(age, 600)`` seconds.
    Raises ``ValueError`` naming the variable for a value that is not a positive whole number.
    """
    env = os.environ if env is None else env
    raw = (env.get(TEMP_MAX_AGE_ENV) or "").strip()
    if not raw:
        age = DEFAULT_TEMP_MAX_AGE_S
    else:
        try:
            age = int(raw)
        except ValueError:
            raise ValueError(f"{TEMP_MAX_AGE_ENV}={raw!r} is not valid: expected a whole number of seconds > 0") \
                from None
        if age <= 0:
            raise ValueError(f"{TEMP_MAX_AGE_ENV}={raw!r} is not valid: it must be greater than 0")
    return min(age, 600), age


def public_message(text: str) -> str:
    """``text`` without server paths: each absolute path becomes its last component."""

    def last(match: re.Match) -> str:
        parts = [p for p in match.group(0).split("/") if p]
        return parts[-1] if parts else ""

    return _ABS_PATH.sub(last, str(text))
