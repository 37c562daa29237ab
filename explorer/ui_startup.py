"""The start-up panel: what the server is preparing, refreshed every second until everything is done.

The page is served before the model is loaded; this panel shows each start-up step with its progress,
and when the state changes it refreshes the header and the choices that depend on what was loaded
(galleries, combiners, benchmarks). ``/startup_status`` answers the same as JSON, with the header as the
page shows it (tests, health checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer.header import header_markdown
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


def wire_startup_panel(
    demo: gr.Blocks,
    panel: StartupPanel,
    services: Services,
    header: gr.Markdown,
    dropdowns: list[tuple[gr.Dropdown, Any]],
    on_done: list[tuple[Any, list, list]] = (),
) -> None:
    """Refresh the panel, the header and the dropdowns on page load and on every tick while starting.

    ``dropdowns``: (dropdown, function giving its choices); a value that is no longer a choice becomes
    the first choice (so views that follow the dropdown fill in). ``on_done``: (fn, inputs, outputs)
    events run once the start-up is done (e.g. drawing the map of the demo gallery built meanwhile).
    The first dropdown is the Search tab's gallery: the header describes it."""
    done_marker = gr.Number(value=None, visible=False)

    def refresh(seen: dict | None, *values: Any):
        snap = services.startup.snapshot()
        seen = dict(seen or {})
        timer = gr.Timer(active=not snap["done"])
        if seen.get("version") == snap["version"]:
            return (gr.skip(), gr.skip(), timer, seen, gr.skip(), *[gr.skip()] * len(dropdowns))
        seen["version"] = snap["version"]
        updates = []
        for i, ((_component, choices_fn), value) in enumerate(zip(dropdowns, values)):
            choices = list(choices_fn())
            if seen.get(f"d{i}") == choices:
                updates.append(gr.skip())
                continue
            seen[f"d{i}"] = choices
            keep = value in choices or not choices
            updates.append(gr.Dropdown(choices=choices) if keep else gr.Dropdown(choices=choices, value=choices[0]))
        header_md = header_markdown(services, values[0] if values and values[0] else None)
        panel_md = gr.Markdown(services.startup.markdown(), visible=_visible(services))
        marker = 1 if snap["done"] and not snap["error"] else gr.skip()
        return (panel_md, header_md, timer, seen, marker, *updates)

    outputs = [panel.markdown, header, panel.timer, panel.seen, done_marker, *(d for d, _ in dropdowns)]
    inputs = [panel.seen, *(d for d, _ in dropdowns)]
    panel.timer.tick(refresh, inputs, outputs, show_progress="hidden", api_name="startup_refresh",
                     api_visibility="private", queue=False)
    demo.load(refresh, inputs, outputs, show_progress="hidden", api_name="startup_refresh_on_load",
              api_visibility="private", queue=False)
    for i, (fn, fn_inputs, fn_outputs) in enumerate(on_done):
        done_marker.change(fn, fn_inputs, fn_outputs, api_name=f"startup_done_{i}", api_visibility="private",
                           show_progress="hidden")
    status = gr.JSON(visible=False)
    demo.load(lambda: {**services.startup.snapshot(), "header": header_markdown(services)}, None, status,
              api_name="startup_status", show_progress="hidden")


def sync_media_paths(services: Services) -> None:
    """Let the running server serve the media of galleries that appeared after launch (demo gallery built,
    gallery repo downloaded): a re-scan registers their allowed folders with the served-files policy, whose
    listener (``build_demo``) hands them to Gradio's static paths."""
    services.gallery_entries()
