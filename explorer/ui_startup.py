"""The start-up panel: what the server is preparing, refreshed every second until everything is done.

The page is served before the model is loaded; this panel shows each start-up step with its progress,
and when the state changes it refreshes the header and the choices that depend on what was loaded
(galleries, combiners, benchmarks). ``/startup_status`` answers the same as JSON, with the header as the
page shows it (tests, health checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from explorer.services import Services

POLL_S = 1.0


@dataclass
class StartupPanel:
    """The panel's components."""

    markdown: gr.Markdown
    timer: gr.Timer
    seen: gr.State  #: per page: what this page last got (version, galleries, combiners, benchmarks)


def build_startup_panel(services: Services) -> StartupPanel:
    """The panel (visible until start-up is done, or while a step failed) and its timer."""
    st = services.startup
    md = gr.Markdown(st.markdown(), elem_id="startup-status", visible=_visible(services))
    timer = gr.Timer(POLL_S, active=not st.done)
    return StartupPanel(md, timer, gr.State(None))


def _visible(services: Services) -> bool:
    snap = services.startup.snapshot()
    return not snap["done"] or bool(snap["error"]) or any(s["status"] == "failed" for s in snap["steps"])


def wire_startup_panel(demo: gr.Blocks, panel: StartupPanel, services: Services, header: gr.Markdown,
                       gallery: gr.Dropdown, combiner: gr.Dropdown, extra: list[tuple[gr.Dropdown, Any]]) -> None:
    """Refresh the panel, the header and the dropdowns on page load and on every tick while starting.

    ``extra``: more dropdowns with a function giving their choices (e.g. the Explore tab's benchmarks)."""
    dropdowns = [(gallery, services.gallery_names), (combiner, services.combiners), *extra]

    def refresh(seen: dict | None, current_gallery: str | None):
        snap = services.startup.snapshot()
        seen = dict(seen or {})
        if seen.get("version") == snap["version"]:
            return (gr.skip(), gr.skip(), gr.Timer(active=not snap["done"]), seen, *[gr.skip()] * len(dropdowns))
        seen["version"] = snap["version"]
        updates = []
        for i, (component, choices_fn) in enumerate(dropdowns):
            choices = list(choices_fn())
            if seen.get(f"d{i}") == choices:
                updates.append(gr.skip())
                continue
            seen[f"d{i}"] = choices
            updates.append(gr.Dropdown(choices=choices))
        header_md = services.header_markdown(current_gallery or None)
        panel_md = gr.Markdown(services.startup.markdown(), visible=_visible(services))
        return (panel_md, header_md, gr.Timer(active=not snap["done"]), seen, *updates)

    outputs = [panel.markdown, header, panel.timer, panel.seen, *(d for d, _ in dropdowns)]
    inputs = [panel.seen, gallery]
    panel.timer.tick(refresh, inputs, outputs, show_progress="hidden", api_name="startup_refresh",
                     api_visibility="private", queue=False)
    demo.load(refresh, inputs, outputs, show_progress="hidden", api_name="startup_refresh_on_load",
              api_visibility="private", queue=False)
    status = gr.JSON(visible=False)
    demo.load(lambda: {**services.startup.snapshot(), "header": services.header_markdown()}, None, status,
              api_name="startup_status", show_progress="hidden")


def sync_media_paths(demo: gr.Blocks, services: Services) -> None:
    """Let the running server serve the media of galleries that appeared after launch (demo gallery built,
    gallery repo downloaded): the same folders ``launch_kwargs`` allows, added to the live app."""
    current = {str(Path(p)) for p in demo.allowed_paths}
    new = [str(p) for p in services.media_roots() if str(p) not in current]
    if new:
        demo.allowed_paths.extend(new)
        gr.set_static_paths(new)
