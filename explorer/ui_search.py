"""Search tab: layout and wiring only (handlers: explorer/search.py and explorer/query.py)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from covr_core.data_layout import is_demo_gallery
from explorer.header import header_markdown
from explorer.intro import example_rows
from explorer.near_duplicates import NEAR_COSINE, NEAR_PIXELS
from explorer.plots import weights_bar_figure
from explorer.query import SearchOutcome, make_reference
from explorer.search import (
    KIND_CHOICES,
    default_combiner,
    forget_reference,
    gallery_value,
    item_reference,
    load_reference,
    outcome_markdown,
    remember_reference,
    sampled_frames,
    search_with_session,
    video_still_path,
)
from explorer.services import Services, Session
from explorer.ui_common import user_errors
from explorer.ui_compare import build_compare_panel
from explorer.ui_examples import build_examples

EMPTY_STATUS = (
    "Add a reference (upload one, or click an example row below), type what should change, then **Search**."
)
NEAR_DUPLICATE_INFO = (
    f"Items showing the same picture as the reference (embedding cosine ≥ {NEAR_COSINE} and 16×16 pixel "
    f"correlation ≥ {NEAR_PIXELS}, e.g. a zoom video made from it) are left out; the status line counts them."
)


@dataclass
class SearchTab:
    """Components other tabs read or write, and how to show an outcome in this tab."""

    ref_image: gr.Image
    ref_video: gr.Video
    text: gr.Textbox
    combiner: gr.Dropdown
    gallery: gr.Dropdown
    k: gr.Slider
    results: gr.Gallery
    weights: gr.Plot
    status: gr.Markdown
    record: gr.JSON
    pin_btn: gr.Button  #: wired by the Curate tab (pins belong to the visitor)
    search_outputs: list[Any]
    show: Any  #: callable(outcome, session, note="") -> values of ``search_outputs``
    stale_outputs: list[Any]  #: what a new query clears (open preview, sampled frames, comparison)
    clear_stale: Any  #: callable() -> values of ``stale_outputs``


def _session(s: Session | None) -> Session:
    return s if isinstance(s, Session) else Session()


def build_search_tab(services: Services, session: gr.State, header: gr.Markdown) -> SearchTab:
    """Layout and events of the Search tab."""
    combiners = services.combiners()
    # created first (not rendered) so the example rows, shown under the reference, can target them
    text = gr.Textbox(
        label="Modification text",
        placeholder="e.g. make it an orange",
        lines=2,
        elem_id="mod-text",
        render=False,
    )
    combiner = gr.Dropdown(
        combiners,
        value=default_combiner(combiners),
        label="Combiner",
        scale=1,
        min_width=100,
        elem_id="combiner",
        render=False,
    )
    status = gr.Markdown(EMPTY_STATUS, elem_id="search-status", render=False)
    results = gr.Gallery(
        label="Results",
        columns=4,
        height="auto",
        elem_id="results",
        allow_preview=True,
        object_fit="contain",
        render=False,
    )
    weights = gr.Plot(label="Combiner weights (w_mm, w_img, w_txt)", render=False)
    record = gr.JSON(label="record", render=False)
    rows = example_rows(default_combiner(combiners)) if is_demo_gallery(services.default_gallery) else []
    with gr.Row(elem_id="search-row"):
        with gr.Column(scale=2, min_width=280):
            ref_image = gr.Image(
                type="filepath",
                image_mode=None,
                label="Reference image (upload, paste or webcam)",
                sources=["upload", "clipboard", "webcam"],
                height=260,
                elem_id="ref-image",
            )
            ref_video = gr.Video(
                label="…or a reference video (its middle frame is the query)",
                sources=["upload"],
                height=200,
                elem_id="ref-video",
            )
            ref_status = gr.Markdown(elem_id="ref-status")
            frames_btn = gr.Button("Show the sampled frames", size="sm", elem_id="frames-btn")
            frames = gr.Gallery(
                label="Sampled frames (CoVR samples 15)",
                columns=5,
                height=160,
                visible=False,
                elem_id="frames",
            )
            if rows:
                examples = build_examples(
                    services, rows, ref_image, text, combiner, results, weights, status, record, session
                )
        with gr.Column(scale=3, min_width=280):
            text.render()
            with gr.Row():
                combiner.render()
                gallery = gr.Dropdown(
                    services.gallery_names(),
                    value=services.default_gallery,
                    label="Gallery",
                    scale=2,
                    min_width=140,
                    allow_custom_value=False,
                )
                k = gr.Slider(1, 50, value=12, step=1, label="k", scale=1, min_width=100)
            with gr.Row():
                kind = gr.Radio(list(KIND_CHOICES), value="all items", label="Show", scale=2, min_width=200)
                hide = gr.Checkbox(
                    value=True,
                    label="Hide near-duplicates of the reference",
                    scale=2,
                    info=NEAR_DUPLICATE_INFO,
                    elem_id="hide-dups",
                    min_width=200,
                )
            with gr.Row():
                search_btn = gr.Button("Search", variant="primary", elem_id="search-btn")
                compare_btn = gr.Button("Compare combiners", elem_id="compare-btn")
            status.render()
            results.render()
            with gr.Row():
                use_btn = gr.Button("Use the selected result as reference", size="sm")
                pin_btn = gr.Button("Pin this example for the report", size="sm", elem_id="pin-btn")
            weights.render()
            with gr.Accordion("Raw result (JSON)", open=False):
                record.render()
    compare = build_compare_panel(services, combiners)

    # ------------------------------------------------------------------ outputs
    stale_outputs = [results, frames, *compare.outputs]

    def clear_stale() -> tuple:
        """What a new query makes stale: an open preview of a result (the grid shows again), the previous
        sampled frames and comparison."""
        return (gr.Gallery(selected_index=None), gr.Gallery(value=None, visible=False), *compare.cleared())

    def show(outcome: SearchOutcome, s: Session, note: str = "") -> tuple:
        """A new outcome in the page: the grid (a new value closes an open preview), weights, status, record,
        session (plain values: the /search API returns the gallery itself)."""
        return (
            gallery_value(outcome, services.cache_dir / "outlined"),
            weights_bar_figure(outcome.weights, outcome.combiner),
            outcome_markdown(outcome, note),
            s.last,
            s,
        )

    search_outputs = [results, weights, status, record, session]

    # ------------------------------------------------------------------ handlers (thin)
    @user_errors
    def encode_reference(image: Any, s: Session | None) -> tuple[Session, str]:
        s = _session(s)
        if not image:
            forget_reference(s, s.reference_label)
            return s, ""
        ref = make_reference(services, load_reference(image))
        remember_reference(s, ref.key)
        return s, f"Reference encoded (`{ref.key[:10]}`): Search now only encodes the text."

    def start_video(s: Session | None) -> tuple[Any, str, Session, Any]:
        s = _session(s)
        forget_reference(s)
        return None, "Reading the video…", s, gr.Gallery(value=None, visible=False)

    @user_errors
    def on_video(video: Any, s: Session | None) -> tuple[Any, str, Session]:
        s = _session(s)
        if not video:
            return gr.skip(), "", s
        still = video_still_path(video, services.cache_dir)
        ref = make_reference(services, load_reference(still))
        remember_reference(s, ref.key, label=f"video:{Path(str(video)).name}")
        return still, f"Reference encoded (`{ref.key[:10]}`) from the video's middle frame.", s

    @user_errors
    def show_frames(video: Any) -> Any:
        if not video:
            raise ValueError("Upload a reference video first: the frames are those CoVR samples from it.")
        return gr.Gallery(value=sampled_frames(video), visible=True)

    @user_errors
    def do_search(image: Any, video: Any, txt: str, comb: str, gname: str, kk: int, s: Session | None):
        s = _session(s)
        res = search_with_session(
            services, s, image, video, txt, comb, gname, kk, s.show_kind, s.hide_near_duplicates
        )
        return show(res.outcomes[comb], s)

    def set_kind(knd: str, s: Session | None) -> Session:
        s = _session(s)
        s.show_kind = KIND_CHOICES.get(knd, "all")
        return s

    def set_hide(hd: bool, s: Session | None) -> Session:
        s = _session(s)
        s.hide_near_duplicates = bool(hd)
        return s

    def on_select(s: Session | None, evt: gr.SelectData) -> Session:
        s = _session(s)
        s.selected = int(evt.index) if evt.index is not None else None
        return s

    @user_errors
    def use_selected(s: Session | None) -> tuple[Any, Any, str, Session]:
        s = _session(s)
        if not s.last or s.selected is None or s.selected >= len(s.last["results"]):
            raise ValueError("Click a result first, then use it as the reference.")
        item = s.last["results"][s.selected]
        image, video = item_reference(services, s.last["gallery"], item["id"])
        ref = make_reference(services, load_reference(image))
        forget_reference(s)
        remember_reference(s, ref.key, item["id"], f"gallery:{item['id']}")
        return image, video, f"Reference: `{item['id']}` from the results (encoded).", s

    # ------------------------------------------------------------------ events
    ref_image.change(
        encode_reference,
        [ref_image, session],
        [session, ref_status],
        api_name="encode_reference",
        trigger_mode="always_last",
    )
    ref_image.upload(
        lambda s: (None, _reset_upload(_session(s)), gr.Gallery(value=None, visible=False)),
        [session],
        [ref_video, session, frames],
        api_name="reset_reference",
        api_visibility="private",
    )
    # a new video first drops the old reference, so a video that fails to load leaves none behind
    ref_video.upload(
        start_video,
        [session],
        [ref_image, ref_status, session, frames],
        api_name="start_video",
        api_visibility="private",
        queue=False,
    ).then(on_video, [ref_video, session], [ref_image, ref_status, session], api_name="video_still")
    frames_btn.click(show_frames, [ref_video], [frames], api_name="sample_frames")
    # the two display options live in the session, so /search keeps its six inputs
    kind.change(
        set_kind, [kind, session], [session], api_name="set_show", api_visibility="private", queue=False
    )
    hide.change(
        set_hide, [hide, session], [session], api_name="set_hide", api_visibility="private", queue=False
    )
    search_inputs = [ref_image, ref_video, text, combiner, gallery, k, session]
    gr.on(
        [search_btn.click, text.submit],
        do_search,
        search_inputs,
        search_outputs,
        api_name="search",
        concurrency_id="encoder",
    ).success(clear_stale, None, stale_outputs, api_visibility="private", queue=False)
    compare.wire(compare_btn, [ref_image, ref_video, text, gallery, k, session])
    results.select(on_select, [session], [session], api_name="select_result", api_visibility="private")
    use_btn.click(
        use_selected, [session], [ref_image, ref_video, ref_status, session], api_name="use_as_reference"
    )
    gallery.change(partial(header_markdown, services), [gallery], [header], api_name="header", api_visibility="private")
    if rows:
        examples.success(clear_stale, None, stale_outputs, api_visibility="private", queue=False)
    return SearchTab(
        ref_image,
        ref_video,
        text,
        combiner,
        gallery,
        k,
        results,
        weights,
        status,
        record,
        pin_btn,
        search_outputs,
        show,
        stale_outputs,
        clear_stale,
    )


def _reset_upload(s: Session) -> Session:
    """A fresh upload ends any benchmark context (no ground truth any more)."""
    forget_reference(s)
    return s
