"""Reading a JSON object from a file that is not trusted (a manifest, a report written by a job or fetched)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json_object(path: Path, error: type[Exception], missing: str, hint: str = "") -> dict[str, Any]:
    """The JSON object in ``path``; ``error(missing)`` when the file is not there, ``error`` naming the file when
    it cannot be read, is not JSON or is not an object (``hint``, e.g. how to rebuild it, is appended)."""
    tail = f"; {hint}" if hint else ""
    if not path.is_file():
        raise error(missing)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path} is corrupt ({exc}){tail}") from exc
    if not isinstance(value, dict):
        raise error(f"{path} is corrupt: expected a JSON object, got {type(value).__name__}{tail}")
    return value
