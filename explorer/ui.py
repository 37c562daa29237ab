"""Top-level page: header, the Search / Explore / Curate tabs (error handling shared by every callback lives in
``explorer.ui_common``), and the serving configuration (queue, allowed files, middleware) that app.py and the tests launch with."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import gradio as gr

from explorer.header import header_markdown
from explorer.intro import intro_markdown, lite_banner
from explorer.safety import delete_cache_setting
from explorer.served_files import ServedFilesGuard
from explorer.services import Services
from explorer.startup import NotReadyError
from explorer.ui_common import STATIC_DIR, plotly_js_path
from explorer.ui_curate import build_curate_tab
from explorer.ui_explore import build_explore_tab
from explorer.ui_guard import ExplorerBlocks, assign_encoder_pool, request_client
from explorer.ui_search import build_search_tab
from explorer.ui_startup import build_startup_panel, wire_startup_panel
from explorer.visitors import RateLimiter


def build_demo(services: Services) -> gr.Blocks:
    """Assemble the page from one builder per tab; every event has an ``api_name``; heavy events share the
    encoder pool (``explorer.ui_guard``)."""
    # served in place (not copied to Gradio's cache on every result): plotly.js and the gallery media folders
    # the served-files policy registers (now and whenever a new gallery appears)
    services.served.allow_file(plotly_js_path())
    services.served.add_listener(lambda folders: gr.set_static_paths([str(p) for p in folders]))
    gr.set_static_paths([str(plotly_js_path()), *(str(p) for p in services.served.folders())])
    services.gallery_entries()  # registers the galleries present now

    with ExplorerBlocks(title="CoVR Explorer", delete_cache=delete_cache_setting()) as demo:
        demo.served = services.served
        demo.limits = services.settings.limits
        session = gr.State(None)
        # the browser keeps its visitor token in localStorage; this key (stable across restarts, so tokens
        # survive them) is sent to the page, so it is derived from, never equal to, the server's HMAC secret
        storage_secret = hmac.new(services.visitor_secret, b"browser-state", hashlib.sha256).hexdigest()[:32]
        visitor = gr.BrowserState(None, storage_key="covr-visitor", secret=storage_secret)
        gr.Markdown(intro_markdown(), elem_id="covr-intro")
        banner = gr.Markdown(**banner_update(services), elem_id="covr-banner")
        startup = build_startup_panel(services)
        with gr.Accordion("Encoder, checkpoint and gallery", open=False, elem_id="covr-details"):
            header = gr.Markdown(header_markdown(services), elem_id="covr-header")
        with gr.Tabs() as tabs:
            with gr.Tab("Search", id="search"):
                search = build_search_tab(services, session, header)
            with gr.Tab("Explore", id="explore"):
                explore = build_explore_tab(services, session, search, tabs)
            with gr.Tab("Curate", id="curate"):
                curate = build_curate_tab(services, session, search, visitor)
        explore.wire_deep_link(demo)
        wire_startup_panel(
            demo, startup, services, header,
            [(search.gallery, services.gallery_names), (search.combiner, services.combiners),
             (explore.benchmark, services.benchmark_names), (explore.map_gallery, services.gallery_names)],
            on_done=[explore.redraw_map, (lambda: gr.Markdown(**banner_update(services)), [], [banner])],
        )
        curate.wire_load(demo)
        demo.load(  # galleries appear (downloads) or become unusable while the app runs: re-scan on load
            lambda: (gr.Dropdown(choices=services.gallery_names()), header_markdown(services)),
            None,
            [search.gallery, header],
            api_name="list_galleries",
            show_progress="hidden",
        )
    assign_encoder_pool(demo, services.settings.limits.max_concurrent_jobs)
    return demo


def banner_update(services: Services) -> dict[str, Any]:
    """The lite-encoder notice under the intro (``value`` and ``visible``); empty until the encoder is loaded."""
    try:
        text = lite_banner(services.info)
    except NotReadyError:
        text = ""
    return {"value": text, "visible": bool(text)}


def queue_kwargs(services: Services) -> dict[str, Any]:
    """``demo.queue`` arguments: a bounded queue, and one slot per concurrent job by default."""
    limits = services.settings.limits
    return {"default_concurrency_limit": limits.max_concurrent_jobs, "max_size": limits.max_queue_size}


def launch_kwargs(services: Services) -> dict[str, Any]:
    """``demo.launch`` arguments shared by app.py and the tests: no share link, no raw exception text in the
    page, only the served-files policy's files on the file route, uploads rate-limited per client."""
    from starlette.middleware import Middleware

    limits = services.settings.limits
    uploads = RateLimiter(limits.uploads_per_minute, 60.0)

    def client_of(scope: dict) -> str:
        from starlette.requests import Request

        return request_client(Request(scope))

    guard = Middleware(ServedFilesGuard, policy=services.served, upload_dir=gr.utils.get_upload_folder(),
                       upload_limiter=uploads.wait_s, client_of=client_of)  # fmt: skip
    return {
        # Gradio copies result files from here into its cache (video stills, outlined targets); the file
        # route never serves this folder itself (ServedFilesGuard)
        "allowed_paths": [str(services.cache_dir)],
        "blocked_paths": [str(services.data_dir / "curated")],
        "css_paths": [str(STATIC_DIR / "app.css")],
        "js": (STATIC_DIR / "app.js").read_text(),
        "max_file_size": f"{int(services.settings.limits.max_upload_mb)}mb",
        "share": False,
        "show_error": False,
        "app_kwargs": {"middleware": [guard]},
    }
