"""Search tab: layout and wiring only (handlers live in explorer/search.py and explorer/compare.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from explorer.compare import run_compare
from explorer.plots import weights_bar_figure
from explorer.search import (
    duplicate_ids,
    gallery_value,
    item_reference,
    load_reference,
    outcome_markdown,
    sampled_frames,
    search_with_session,
    validate_text,
    video_still_path,
)
from explorer.services import ASSETS_DIR, Services, Session
from explorer.ui import user_errors

MAX_COMPARE = 5


@dataclass
class SearchTab:
    """Components other tabs read or write."""

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
    run_search: Any  #: callable(image, video, text, combiner, gallery, k, session) -> search_outputs values


def _session(s: Session | None) -> Session:
    return s if isinstance(s, Session) else Session()


def default_combiner(combiners: list[str]) -> str:
    """MLP when trained weights are loaded, else AVG, else the first available."""
    return next((c for c in ("MLP", "AVG") if c in combiners), combiners[0])


def example_images(limit: int = 8) -> list[str]:
    """A few bundled images to click as references."""
    folder = ASSETS_DIR / "images"
    return [str(p) for p in sorted(folder.glob("*"))[:limit] if p.suffix.lower() in {".jpg", ".jpeg", ".png"}]


def build_search_tab(services: Services, session: gr.State, header: gr.Markdown) -> SearchTab:
    """Layout and events of the Search tab."""
    combiners = services.combiners()
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            ref_image = gr.Image(
                type="filepath",
                image_mode=None,
                label="Reference image (upload, paste or webcam)",
                sources=["upload", "clipboard", "webcam"],
                height=260,
                elem_id="ref-image",
            )
            with gr.Row():
                ref_video = gr.Video(
                    label="…or a reference video (its middle frame is the query)",
                    sources=["upload"],
                    height=200,
                    elem_id="ref-video",
                )
            ref_status = gr.Markdown(elem_id="ref-status")
            frames_btn = gr.Button("Show the sampled frames", size="sm")
            frames = gr.Gallery(
                label="Sampled frames (CoVR samples 15)", columns=5, height=160, visible=False
            )
            examples = example_images()
            if examples:
                gr.Examples(examples=examples, inputs=ref_image, label="Examples (click one)")
        with gr.Column(scale=3, min_width=400):
            text = gr.Textbox(
                label="Modification text", placeholder="e.g. make it an orange", lines=2, elem_id="mod-text"
            )
            with gr.Row():
                combiner = gr.Dropdown(
                    combiners, value=default_combiner(combiners), label="Combiner", scale=1
                )
                gallery = gr.Dropdown(
                    services.gallery_names(),
                    value=services.default_gallery,
                    label="Gallery",
                    scale=2,
                    allow_custom_value=False,
                )
                k = gr.Slider(1, 50, value=12, step=1, label="k", scale=1)
            with gr.Row():
                search_btn = gr.Button("Search", variant="primary", elem_id="search-btn")
                compare_btn = gr.Button("Compare combiners")
            status = gr.Markdown(elem_id="search-status")
            results = gr.Gallery(
                label="Results",
                columns=4,
                height="auto",
                elem_id="results",
                allow_preview=True,
                object_fit="contain",
            )
            with gr.Row():
                use_btn = gr.Button("Use the selected result as reference", size="sm")
                pin_btn = gr.Button("Pin this example for the report", size="sm")
            weights = gr.Plot(label="Combiner weights (w_mm, w_img, w_txt)")
            with gr.Accordion("Raw result (JSON)", open=False):
                record = gr.JSON(label="record")
    with gr.Accordion("Compare: every combiner side by side", open=False) as compare_box:
        compare_md = gr.Markdown()
        compare_table = gr.Dataframe(label="weights, rank of the ground truth, top-1", interactive=False)
        overlap_table = gr.Dataframe(label="top-k overlap", interactive=False)
        with gr.Row():
            compare_galleries = [
                gr.Gallery(label=f"combiner {i + 1}", columns=2, height=420, visible=i < len(combiners))
                for i in range(MAX_COMPARE)
            ]

    # ------------------------------------------------------------------ handlers (thin)
    @user_errors
    def encode_reference(image: Any, video: Any, s: Session | None) -> tuple[Session, str]:
        s = _session(s)
        if not image and not video:
            return s, ""
        ref = load_reference(image, video)
        s.reference_key = services.prepare_reference(ref)
        return s, f"Reference encoded (`{s.reference_key[:10]}`): Search now only encodes the text."

    @user_errors
    def on_video(video: Any, s: Session | None) -> tuple[Any, Session]:
        s = _session(s)
        if not video:
            return gr.skip(), s
        s.reference_label, s.reference_id = f"video:{Path(str(video)).name}", None
        return video_still_path(video, services.cache_dir), s

    @user_errors
    def show_frames(video: Any) -> Any:
        if not video:
            raise ValueError("Upload a reference video first.")
        return gr.Gallery(value=sampled_frames(video), visible=True)

    @user_errors
    def do_search(image: Any, video: Any, txt: str, comb: str, gname: str, kk: int, s: Session | None):
        s = _session(s)
        out = search_with_session(services, s, image, video, txt, comb, gname, kk)
        return (
            gallery_value(out, services.cache_dir / "outlined"),
            weights_bar_figure(out.weights, comb),
            outcome_markdown(out),
            s.last,
            s,
        )

    @user_errors
    def do_compare(image: Any, video: Any, txt: str, gname: str, kk: int, s: Session | None):
        s = _session(s)
        gname = gname or services.default_gallery
        ref = load_reference(image, video)
        gal = services.get_gallery(gname)
        exclude = set(duplicate_ids(gal, services.encode_query(ref, validate_text(txt))))
        if s.reference_id:
            exclude.add(s.reference_id)
        res = run_compare(
            _Enc(services),
            gal,
            gname,
            ref,
            txt,
            services.combiners(),
            int(kk),
            mlp=services.mlp,
            target_id=s.target_id,
            exclude_ids=sorted(exclude),
        )
        gals = []
        for i in range(MAX_COMPARE):
            names = list(res.outcomes)
            if i < len(names):
                o = res.outcomes[names[i]]
                rank = f", target rank {o.target_rank}" if o.target_rank else ""
                gals.append(
                    gr.Gallery(
                        value=gallery_value(o, services.cache_dir / "outlined"),
                        label=f"{names[i]}{rank}",
                        visible=True,
                    )
                )
            else:
                gals.append(gr.Gallery(visible=False))
        md = f"Compared {len(res.outcomes)} combiners in {res.elapsed_s * 1000:.0f} ms."
        return (md, res.table, res.overlap.reset_index(names="combiner"), gr.Accordion(open=True), *gals)

    def on_select(s: Session | None, evt: gr.SelectData) -> Session:
        s = _session(s)
        s.selected = int(evt.index) if evt.index is not None else None
        return s

    @user_errors
    def use_selected(s: Session | None) -> tuple[Any, Any, Session]:
        s = _session(s)
        if not s.last or s.selected is None or s.selected >= len(s.last["results"]):
            raise ValueError("Click a result first, then use it as the reference.")
        item = s.last["results"][s.selected]
        image, video = item_reference(services, s.last["gallery"], item["id"])
        s.reference_label, s.reference_id = f"gallery:{item['id']}", item["id"]
        s.benchmark = s.query_id = s.target_id = s.benchmark_key = None
        return image, video, s

    # ------------------------------------------------------------------ events
    ref_image.change(
        encode_reference,
        [ref_image, ref_video, session],
        [session, ref_status],
        api_name="encode_reference",
        trigger_mode="always_last",
    )
    ref_image.upload(
        lambda s: (None, _reset_upload(_session(s))),
        [session],
        [ref_video, session],
        api_name="reset_reference",
        api_visibility="private",
    )
    ref_video.upload(on_video, [ref_video, session], [ref_image, session], api_name="video_still")
    frames_btn.click(show_frames, [ref_video], [frames], api_name="sample_frames")
    search_outputs = [results, weights, status, record, session]
    gr.on(
        [search_btn.click, text.submit],
        do_search,
        [ref_image, ref_video, text, combiner, gallery, k, session],
        search_outputs,
        api_name="search",
        concurrency_id="encoder",
    )
    compare_btn.click(
        do_compare,
        [ref_image, ref_video, text, gallery, k, session],
        [compare_md, compare_table, overlap_table, compare_box, *compare_galleries],
        api_name="compare",
        concurrency_id="encoder",
    )
    results.select(on_select, [session], [session], api_name="select_result", api_visibility="private")
    use_btn.click(use_selected, [session], [ref_image, ref_video, session], api_name="use_as_reference")
    gallery.change(services.header_markdown, [gallery], [header], api_name="header", api_visibility="private")
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
        do_search,
    )


def _reset_upload(s: Session) -> Session:
    """A fresh upload ends any benchmark context (no ground truth any more)."""
    s.reference_label, s.reference_id = "upload", None
    s.benchmark = s.query_id = s.target_id = s.benchmark_key = None
    return s


class _Enc:
    """Adapter: gives ``run_compare`` the services' locked, spaces-aware ``encode_query``."""

    def __init__(self, services: Services):
        self._s = services

    def encode_query(self, image: Any, text: str) -> Any:
        return self._s.encode_query(image, text)
