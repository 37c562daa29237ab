"""Curate tab: pinned examples, preview, ZIP export (layout and wiring; logic in explorer/curation.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer.curation import pinned_table
from explorer.export import export_records, figure_png, record_figure
from explorer.export_figure import MAX_RESULTS, FigureOptions
from covr_core.figure_style import COLUMN_WIDTHS_IN, MIN_FONT_PT
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
        "its report figure; export one or all as a ZIP: the figure as PDF and SVG (fonts embedded) and a "
        "300-dpi PNG, the JSON record, and Markdown / LaTeX snippets whose caption gives the target's rank."
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
        preset = gr.Radio([(f"{k} column ({w} in)", k) for k, w in COLUMN_WIDTHS_IN.items()],
                          value="single", label="Figure width", min_width=200, elem_id="fig-preset")
        n_results = gr.Slider(1, MAX_RESULTS, value=4, step=1, label="results shown", min_width=160)
        font_pt = gr.Slider(MIN_FONT_PT, 12, value=8, step=0.5, label="font size (pt, at print size)",
                            min_width=160)
    with gr.Row():
        show_ids = gr.Checkbox(False, label="show ids")
        show_scores = gr.Checkbox(False, label="show scores")
        title = gr.Textbox("", label="title (optional)", max_length=200, scale=2)
    with gr.Row():
        export_one = gr.Button("Export selected (ZIP)", variant="primary")
        export_all = gr.Button("Export all (ZIP)")
    preview = gr.Image(label="report figure (preview)", type="pil", interactive=False, elem_id="fig-preview")
    zip_file = gr.File(label="export", interactive=False, elem_id="export-file")

    def refresh() -> list[list[Any]]:
        return pinned_table(services.curation)

    def on_row(tbl: Any, evt: gr.SelectData) -> str:
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return str(tbl.iloc[int(row)]["id"])

    def options(*values: Any) -> FigureOptions:
        p, n, f, ids, scores, t = values
        return FigureOptions(preset=p or "single", n_results=int(n or 4), font_pt=float(f or 8),
                             show_ids=bool(ids), show_scores=bool(scores), title=(t or "").strip())

    @user_errors
    def show(example_id: str, *opts: Any):
        if not example_id:
            return None
        rec = services.curation.get(example_id.strip())
        ref = services.curation.reference_image(rec["id"])
        return figure_png(record_figure(services, rec, ref, options(*opts)))

    @user_errors
    def export(example_ids: str, *opts: Any) -> str:
        ids = [i.strip() for i in (example_ids or "").split(",") if i.strip() and i.strip() != "all"]
        store = services.curation
        records = [store.get(i) for i in ids] if ids else store.list()
        pairs = [(rec, store.reference_image(rec["id"])) for rec in records]
        return str(export_records(services, pairs, services.cache_dir / "exports", options(*opts)))

    @user_errors
    def remove(example_id: str):
        if not example_id:
            raise ValueError("Select an example first.")
        services.curation.remove(example_id.strip())
        return refresh(), "", None

    refresh_btn.click(refresh, None, [table], api_name="list_pinned")
    table.select(on_row, [table], [selected], api_name="select_pinned", api_visibility="private")
    option_inputs = [preset, n_results, font_pt, show_ids, show_scores, title]
    gr.on([selected.change, *(c.change for c in option_inputs[:-1]), title.submit], show,
          [selected, *option_inputs], [preview], api_name="preview_pinned", trigger_mode="always_last",
          concurrency_id="figure")
    export_one.click(export, [selected, *option_inputs], [zip_file], api_name="export")
    export_all.click(lambda *o: export("", *o), option_inputs, [zip_file], api_name="export_all")
    remove_btn.click(remove, [selected], [table, selected, preview], api_name="remove_pinned")
    search.status.change(refresh, None, [table], api_name="refresh_after_search", api_visibility="private")
    return CurateTab(refresh_fn=refresh, refresh_outputs=[table])
