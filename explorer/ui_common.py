"""What every tab of the page shares: turning exceptions into clean messages in the page (``user_errors``)
and where the page's static files come from. The tabs and ``explorer.ui`` import this module; it imports no
tab (so the UI modules form no import cycle)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from covr_core.gallery import GalleryError
from covr_core.media import MediaError
from explorer.safety import public_message
from explorer.startup import NotReadyError

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Expected failures: their message is shown to the user as is.
USER_ERRORS = (MediaError, GalleryError, ValueError, KeyError, FileNotFoundError, NotReadyError)


def plotly_js_path() -> Path:
    """The plotly.min.js bundled with the installed ``plotly`` package (served locally, no CDN)."""
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Expected exceptions become ``gr.Error`` (their message in the page, without server paths), unexpected
    ones a short notice (the stack trace goes to the server log only)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise gr.Error(public_message(str(msg)), print_exception=False) from None
        except Exception as exc:  # noqa: BLE001 - never show a stack trace to the user
            log.exception("callback %s failed", getattr(fn, "__name__", fn))
            raise gr.Error(
                f"Something went wrong ({type(exc).__name__}); the server logged the details.",
                print_exception=False,
            ) from None

    return wrapper
