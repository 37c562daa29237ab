"""Top-level page: header, the Search / Explore / Curate tabs, error handling shared by every callback."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from covr_core.gallery import GalleryError
from covr_core.media import MediaError
from explorer.services import Services

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Expected failures: their message is shown to the user as is.
USER_ERRORS = (MediaError, GalleryError, ValueError, KeyError, FileNotFoundError)


def plotly_js_path() -> Path:
    """The plotly.min.js bundled with the installed ``plotly`` package (served locally, no CDN)."""
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Expected exceptions become ``gr.Error`` (a message in the page), unexpected ones a short notice."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise gr.Error(str(msg), print_exception=False) from None
        except Exception as exc:  # noqa: BLE001 - never show a stack trace to the user
            log.exception("callback %s failed", getattr(fn, "__name__", fn))
            raise gr.Error(
                f"Something went wrong ({type(exc).__name__}); the server logged the details.",
                print_exception=False,
            ) from None

    return wrapper


def build_demo(services: Services) -> gr.Blocks:
    """Assemble the page from one builder per tab; every event has an ``api_name``."""
    from explorer.ui_curate import build_curate_tab
    from explorer.ui_explore import build_explore_tab
    from explorer.ui_search import build_search_tab

    # served in place (not copied to Gradio's cache on every result): plotly.js and the gallery media
    gr.set_static_paths([str(plotly_js_path()), *(str(p) for p in services.media_roots())])
    from explorer.safety import delete_cache_setting

    from explorer.intro import intro_markdown, lite_banner

    with gr.Blocks(title="CoVR Explorer", delete_cache=delete_cache_setting()) as demo:
        session = gr.State(None)
        gr.Markdown(intro_markdown(), elem_id="covr-intro")
        banner = lite_banner(services.info)
        gr.Markdown(banner, elem_id="covr-banner", visible=bool(banner))
        with gr.Accordion("Encoder, checkpoint and gallery", open=False, elem_id="covr-details"):
            header = gr.Markdown(services.header_markdown(), elem_id="covr-header")
        with gr.Tabs() as tabs:
            with gr.Tab("Search", id="search"):
                search = build_search_tab(services, session, header)
            with gr.Tab("Explore", id="explore"):
                explore = build_explore_tab(services, session, search, tabs)
            with gr.Tab("Curate", id="curate"):
                curate = build_curate_tab(services, session, search)
        explore.wire_deep_link(demo)
        demo.load(
            curate.refresh_fn,
            None,
            curate.refresh_outputs,
            api_name="refresh_pinned",
            api_visibility="private",
        )
        demo.load(
            lambda: gr.Dropdown(choices=services.gallery_names()),
            None,
            search.gallery,
            api_name="list_galleries",
            show_progress="hidden",
        )
    return demo


def launch_kwargs(services: Services) -> dict[str, Any]:
    """``demo.launch`` arguments shared by app.py and the tests (no share link, only gallery media served)."""
    return {
        "allowed_paths": [str(p) for p in services.media_roots()],
        "css_paths": [str(STATIC_DIR / "app.css")],
        "js": (STATIC_DIR / "app.js").read_text(),
        "max_file_size": f"{int(services.settings.limits.max_upload_mb)}mb",
        "share": False,
        "show_error": True,
    }
