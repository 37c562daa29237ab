"""Curate tab: pinned examples, preview, ZIP export (layout and wiring; logic in explorer/curation.py).

Pins and exports belong to the visitor (``explorer.visitors``): on a Space each browser (or signed-in user)
sees only its own; locally everyone shares one store. Removing asks for confirmation; exports are deleted
after download or after ``COVR_EXPORT_MAX_AGE_S``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from covr_core.figure_style import COLUMN_WIDTHS_IN, MIN_FONT_PT
from explorer.curation import CurationStore, Exports, export_pinned, pinned_table
from explorer.export import figure_png, record_figure
from explorer.export_figure import MAX_RESULTS, FigureOptions
from explorer.search import load_reference
from explorer.services import Services, Session
from explorer.ui_common import user_errors
from explorer.ui_search import SearchTab
from explorer.visitors import Visitor, identify, new_token, oauth_enabled, valid_token

COLUMNS = ["id", "text", "combiner", "target rank", "top-1", "gallery"]


@dataclass
class CurateTab:
    """What the page wires after all tabs exist."""

    wire_load: Any  #: callable(demo): issue the visitor token and list the visitor's pins on page load


def build_curate_tab(services: Services, session: gr.State, search: SearchTab, visitor: gr.BrowserState) -> CurateTab:
    """Layout and events of the Curate tab (and the Search tab's Pin button)."""
    limits = services.settings.limits
    exports = Exports(Path(gr.utils.get_upload_folder()) / "covr-exports", limits.max_exports_per_visitor,
                      limits.export_max_age_s)  # fmt: skip
    where = (
        "Your pinned examples (private to this browser, or to your account when signed in)"
        if services.private_curation
        else "Pinned examples (saved under `<data>/curated/`, kept across restarts)"
    )
    gr.Markdown(
        f"{where}. Click a row to preview its report figure; export one or all as a ZIP: the figure as PDF and "
        f"SVG (fonts embedded) and a 300-dpi PNG, the JSON record, and Markdown / LaTeX snippets whose caption "
        f"gives the target's rank. Exports are deleted from the server after download or after "
        f"{limits.export_max_age_s // 60} minutes."
    )
    if oauth_enabled():
        gr.LoginButton()
    table = gr.Dataframe(headers=COLUMNS, interactive=False, label="pinned", elem_id="pinned-table")
    with gr.Row():
        selected = gr.Textbox(label="selected example id", scale=2, elem_id="pinned-selected")
        refresh_btn = gr.Button("Refresh", scale=1)
        remove_btn = gr.Button("Remove selected", scale=1, elem_id="remove-pinned")
    with gr.Row(visible=False, elem_id="confirm-remove") as confirm_row:
        confirm_md = gr.Markdown()
        confirm_btn = gr.Button("Yes, delete it", variant="stop", elem_id="confirm-remove-yes")
        cancel_btn = gr.Button("Cancel", elem_id="confirm-remove-no")
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
        export_one = gr.Button("Export selected (ZIP)", variant="primary", elem_id="export-selected")
        export_all = gr.Button("Export all (ZIP)", elem_id="export-all")
    curate_status = gr.Markdown(elem_id="curate-status")
    preview = gr.Image(label="report figure (preview)", type="pil", interactive=False, elem_id="fig-preview")
    zip_file = gr.File(label="export", interactive=False, elem_id="export-file")

    def store_of(token: Any, profile: gr.OAuthProfile | None) -> tuple[Visitor, CurationStore]:
        who = identify(token, profile.username if profile else None, services.visitor_secret,
                       services.private_curation)  # fmt: skip
        return who, services.curation.for_visitor(who)

    @user_errors
    def ensure_visitor(token: Any) -> str:
        return token if valid_token(token) else new_token()

    @user_errors
    def refresh(token: Any, profile: gr.OAuthProfile | None) -> list[list[Any]]:
        if services.private_curation and not valid_token(token) and profile is None:
            return []
        return pinned_table(store_of(token, profile)[1])

    def on_row(tbl: Any, evt: gr.SelectData) -> str:
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return str(tbl.iloc[int(row)]["id"])

    def options(preset: str, n: float, font: float, ids: bool, scores: bool, title_text: str) -> FigureOptions:
        return FigureOptions(preset=preset or "single", n_results=int(n or 4), font_pt=float(font or 8),
                             show_ids=bool(ids), show_scores=bool(scores), title=(title_text or "").strip())

    @user_errors
    def show(example_id: str, token: Any, preset: str, n: float, font: float, ids: bool, scores: bool,
             title_text: str, profile: gr.OAuthProfile | None):  # fmt: skip
        if not example_id:
            return None
        store = store_of(token, profile)[1]
        rec = store.get(example_id.strip())
        fig = record_figure(services, rec, store.reference_image(rec["id"]),
                            options(preset, n, font, ids, scores, title_text))  # fmt: skip
        return figure_png(fig)

    @user_errors
    def pin(image: Any, video: Any, s: Session | None, token: Any, profile: gr.OAuthProfile | None) -> str:
        s = s if isinstance(s, Session) else Session()
        if not s.last:
            raise ValueError("Run a search first, then pin it.")
        store = store_of(token, profile)[1]
        rec = store.add(s.last, load_reference(image, video))
        return f"Pinned `{rec['id']}` ({len(store)} pinned; see the Curate tab)."

    def export(ids: list[str] | None, figure: FigureOptions, token: Any,
               profile: gr.OAuthProfile | None) -> tuple[str, str]:  # fmt: skip
        who, store = store_of(token, profile)
        label = ids[0] if ids and len(ids) == 1 else f"{len(ids) if ids else len(store)}-examples"
        path = export_pinned(services, store, ids, exports.new_path(who, label), figure)
        exports.keep_newest(who)
        return str(path), f"Exported `{path.name}`; download it now (it is deleted from the server afterwards)."

    @user_errors
    def export_selected(example_id: str, token: Any, preset: str, n: float, font: float, ids: bool,
                        scores: bool, title_text: str, profile: gr.OAuthProfile | None):  # fmt: skip
        chosen = [i.strip() for i in (example_id or "").split(",") if i.strip()]
        return export(chosen, options(preset, n, font, ids, scores, title_text), token, profile)

    @user_errors
    def export_everything(token: Any, preset: str, n: float, font: float, ids: bool, scores: bool,
                          title_text: str, profile: gr.OAuthProfile | None):  # fmt: skip
        return export(None, options(preset, n, font, ids, scores, title_text), token, profile)

    @user_errors
    def ask_remove(example_id: str, token: Any, profile: gr.OAuthProfile | None):
        if not (example_id or "").strip():
            raise ValueError("Select an example first (click a row of the table).")
        store_of(token, profile)[1].get(example_id.strip())  # exists and is yours
        return gr.Row(visible=True), f"Delete pinned example `{example_id.strip()}`? This cannot be undone."

    @user_errors
    def remove(example_id: str, token: Any, profile: gr.OAuthProfile | None):
        store_of(token, profile)[1].remove((example_id or "").strip())
        return refresh(token, profile), "", None, gr.Row(visible=False), "Removed."

    def downloaded(evt: gr.DownloadData) -> None:
        if evt.file and evt.file.path:
            exports.downloaded(evt.file.path)

    ident = [visitor]
    refresh_btn.click(refresh, ident, [table], api_name="list_pinned")
    table.select(on_row, [table], [selected], api_name="select_pinned", api_visibility="private")
    # the figure options come after the visitor token: API callers may leave them at their defaults
    option_inputs = [preset, n_results, font_pt, show_ids, show_scores, title]
    gr.on([selected.change, *(c.change for c in option_inputs[:-1]), title.submit], show,
          [selected, *ident, *option_inputs], [preview], api_name="preview_pinned",
          trigger_mode="always_last")  # fmt: skip
    export_one.click(export_selected, [selected, *ident, *option_inputs], [zip_file, curate_status],
                     api_name="export")  # fmt: skip
    export_all.click(export_everything, [*ident, *option_inputs], [zip_file, curate_status], api_name="export_all")
    remove_btn.click(ask_remove, [selected, *ident], [confirm_row, confirm_md], api_name="ask_remove",
                     api_visibility="private")  # fmt: skip
    cancel_btn.click(lambda: gr.Row(visible=False), None, [confirm_row], api_visibility="private")
    confirm_btn.click(remove, [selected, *ident], [table, selected, preview, confirm_row, curate_status],
                      api_name="remove_pinned")  # fmt: skip
    zip_file.download(downloaded, None, None, api_visibility="private", show_progress="hidden")
    search.pin_btn.click(pin, [search.ref_image, search.ref_video, session, *ident], [search.status], api_name="pin")
    search.status.change(refresh, ident, [table], api_name="refresh_after_search", api_visibility="private")

    def wire_load(demo: gr.Blocks) -> None:
        demo.load(ensure_visitor, ident, ident, api_name="visitor", api_visibility="private").then(
            refresh, ident, [table], api_name="refresh_pinned", api_visibility="private"
        )

    return CurateTab(wire_load=wire_load)
