"""``spaces.GPU`` on Hugging Face ZeroGPU Spaces, a no-op decorator everywhere else."""

from __future__ import annotations

import importlib.util
import logging
from typing import Any, Callable, TypeVar

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def spaces_available() -> bool:
    """True when the ``spaces`` package (Hugging Face Spaces runtime) is importable."""
    return importlib.util.find_spec("spaces") is not None


def gpu(fn: F | None = None, *, duration: int = 60) -> Any:
    """Wrap an encoder call in ``spaces.GPU(duration=...)`` when ``spaces`` exists, else return it as is.

    Usable bare (``@gpu``) or with arguments (``@gpu(duration=30)``).
    """

    def wrap(f: F) -> F:
        if not spaces_available():
            return f
        import spaces  # type: ignore[import-not-found]

        log.info("spaces.GPU applied to %s", getattr(f, "__name__", f))
        return spaces.GPU(duration=duration)(f)

    if fn is not None:
        return wrap(fn)
    return wrap
