"""Explore › Map: the gallery's UMAP with the last search overlaid (layout and wiring only)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

from explorer.maps import load_map_points, map_json, overlays_for, place_by_neighbours
from explorer.query import make_reference
from explorer.search import forget_reference, item_reference, load_reference, remember_reference
from explorer.services import Services, Session
from explorer.ui_common import STATIC_DIR, plotly_js_path, user_errors

MAP_TEMPLATE = (
    '<div class="covr-map-root"><div class="covr-map-plot"></div><div class="covr-map-tip"></div></div>'
)
NO_SEARCH = "No search yet: run one in the **Search** tab, then click **Show my last search on the map**."


@dataclass
class MapTab:
    """What the page fills on load (``draw(gallery, colour, session, with_query) -> (json, message)``) and the
    gallery list the Refresh button updates."""

    html: gr.HTML
    message: gr.Markdown
    gallery: gr.Dropdown
    colour: gr.Radio
    draw: Any


def build_map_tab(services: Services, session: gr.State, search: Any, tabs: gr.Tabs) -> MapTab:
    """Layout and events of the Map sub-tab (inside Explore)."""
    with gr.Row():
        map_gallery = gr.Dropdown(services.gallery_names(), value=services.default_gallery, label="Gallery")
        colour_by = gr.Radio(["kind", "split", "kind+split"], value="kind", label="Colour by")
        map_btn = gr.Button("Show my last search on the map", elem_id="map-query-btn")
    message = gr.Markdown(elem_id="map-message")
    html = gr.HTML(
        value="{}",
        html_template=MAP_TEMPLATE,
        css_template=(STATIC_DIR / "map.css").read_text(),
        js_on_load=(STATIC_DIR / "map.js").read_text(),
        elem_id="covr-map",
        head=f'<script src="/gradio_api/file={plotly_js_path()}"></script>',
    )
    with gr.Row():
        clicked = gr.Gallery(label="Clicked item", columns=1, height=260, scale=1)
        with gr.Column(scale=2):
            clicked_md = gr.Markdown("Hover a point to see its thumbnail; click it to open it here.")
            clicked_id = gr.Textbox(visible=False)
            clicked_use = gr.Button("Use it as the reference in Search")
    overlay_on = gr.State(False)

    def draw(gname: str, colour: str, s: Session | None, with_query: bool) -> tuple[str, str]:
        """The map JSON and a message (what is shown, or what to do)."""
        gname = gname or services.default_gallery
        gal = services.get_gallery(gname)
        pts = load_map_points(gal, lambda i: services.thumb_url(gname, i), colour)
        if pts is None:
            return "{}", (
                f"No map for `{gname}` yet: run `python -m precompute.umap --gallery <its folder>`."
            )
        s = s if isinstance(s, Session) else Session()
        overlays, msg = None, ""
        if with_query:
            if not s.last or not s.last_query:
                msg = NO_SEARCH
            elif s.last.get("gallery") != gname:
                msg = f"Your last search ran on `{s.last.get('gallery')}`, not on `{gname}`: choose it."
            else:
                xy = place_by_neighbours(pts, gal, np.asarray(s.last_query, dtype=np.float32))
                overlays = overlays_for(
                    pts,
                    xy,
                    [r["id"] for r in s.last["results"]],
                    s.last.get("target_id"),
                    query_caption=s.last["text"],
                )
                n = len(s.last["results"])
                msg = f"Your last search (★), its {n} results (○) and the target (◇) if any."
        return json.dumps(map_json(pts, overlays, title=f"{gname}: {len(gal)} items")), msg

    @user_errors
    def redraw(gname: str, colour: str, s: Session | None, with_query: bool):
        return draw(gname, colour, s, with_query)

    @user_errors
    def show_query(gname: str, colour: str, s: Session | None):
        html_json, msg = draw(gname, colour, s, True)
        return html_json, msg, "Your last search (★)" in msg

    @user_errors
    def on_point(gname: str, evt: gr.EventData):
        item_id = str(evt._data.get("id", "")) if isinstance(evt._data, dict) else ""
        gname = gname or services.default_gallery
        gal = services.get_gallery(gname)
        row = gal.items.iloc[gal.row_of(item_id)]
        path = str(services.item_path(gname, item_id))
        return [(path, item_id)], f"**{item_id}** ({row['kind']}) — {row.get('caption', '') or ''}", item_id

    @user_errors
    def use_clicked(gname: str, item_id: str, s: Session | None):
        if not item_id:
            raise ValueError("Click a point on the map first.")
        s = s if isinstance(s, Session) else Session()
        image, video = item_reference(services, gname or services.default_gallery, item_id)
        ref = make_reference(services, load_reference(image))
        forget_reference(s)
        remember_reference(s, ref.key, item_id, f"gallery:{item_id}")
        return image, video, s, gr.Tabs(selected="search")

    # the overlay stays on when the colouring or the gallery changes
    gr.on(
        [map_gallery.change, colour_by.change],
        redraw,
        [map_gallery, colour_by, session, overlay_on],
        [html, message],
        api_name="map",
    )
    map_btn.click(
        show_query, [map_gallery, colour_by, session], [html, message, overlay_on], api_name="map_query"
    )
    html.point_click(on_point, [map_gallery], [clicked, clicked_md, clicked_id], api_name="open_point")
    clicked_use.click(
        use_clicked,
        [map_gallery, clicked_id, session],
        [search.ref_image, search.ref_video, session, tabs],
        api_name="use_point",
    )
    return MapTab(html=html, message=message, gallery=map_gallery, colour=colour_by, draw=draw)
