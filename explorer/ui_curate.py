"""Curate tab: pinned examples, preview, ZIP export (layout and wiring; logic in explorer/curation.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer.curation import export_pinned, pinned_table, render_record
from explorer.services import Services
from explorer.ui import user_errors
from explorer.ui_search import SearchTab

COLUMNS = ["id", "text", "combiner", "target rank", "top-1", "gallery"]


@dataclass
class CurateTab:
    """What the page refreshes on load."""

    refresh_fn: Any
    refresh_outputs: list[Any]


def build_curate_tab(services: Services, session: gr.State, search: SearchTab) -> CurateTab:
    """Layout and events of the Curate tab."""
    gr.Markdown(
        "Pinned examples (saved under `<data>/curated/`, kept across restarts). Click a row to preview "
        "its report figure; export one or all as a ZIP (PNG + JSON record + Markdown/LaTeX snippet)."
    )
    table = gr.Dataframe(
        headers=COLUMNS,
        value=pinned_table(services.curation),
        interactive=False,
        label="pinned",
        elem_id="pinned-table",
    )
    with gr.Row():
        selected = gr.Textbox(label="selected example id", scale=2)
        refresh_btn = gr.Button("Refresh", scale=1)
        remove_btn = gr.Button("Remove selected", scale=1)
    with gr.Row():
        export_one = gr.Button("Export selected (ZIP)", variant="primary")
        export_all = gr.Button("Export all (ZIP)")
    preview = gr.Image(label="report figure", type="pil", interactive=False)
    zip_file = gr.File(label="export", interactive=False)

    def refresh() -> list[list[Any]]:
        return pinned_table(services.curation)

    def on_row(tbl: Any, evt: gr.SelectData) -> str:
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return str(tbl.iloc[int(row)]["id"])

    @user_errors
    def show(example_id: str):
        if not example_id:
            return None
        rec = services.curation.get(example_id.strip())
        return render_record(services, rec, services.curation.reference_image(rec["id"]))

    @user_errors
    def export(example_ids: str) -> str:
        ids = [i.strip() for i in (example_ids or "").split(",") if i.strip() and i.strip() != "all"]
        return str(export_pinned(services, ids, services.cache_dir / "exports"))

    @user_errors
    def remove(example_id: str):
        if not example_id:
            raise ValueError("Select an example first.")
        services.curation.remove(example_id.strip())
        return refresh(), "", None

    refresh_btn.click(refresh, None, [table], api_name="list_pinned")
    table.select(on_row, [table], [selected], api_name="select_pinned", api_visibility="private")
    selected.change(show, [selected], [preview], api_name="preview_pinned")
    export_one.click(export, [selected], [zip_file], api_name="export")
    export_all.click(lambda: export(""), None, [zip_file], api_name="export_all")
    remove_btn.click(remove, [selected], [table, selected, preview], api_name="remove_pinned")
    search.status.change(refresh, None, [table], api_name="refresh_after_search", api_visibility="private")
    return CurateTab(refresh_fn=refresh, refresh_outputs=[table])
