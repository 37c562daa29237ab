"""Explore tab: benchmark browser, weight analysis, gallery map, WebVid filter (layout and wiring only)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from explorer.browse import (
    OUTCOMES,
    filter_queries,
    make_deep_link,
    open_query,
    page_of,
    parse_deep_link,
    request_base_url,
    wide_table,
)
from explorer.filter_view import filter_tab
from explorer.maps import load_map_points, map_json, overlays_for, place_by_neighbours
from explorer.plots import ternary_figure, weights_histogram_figure
from explorer.search import item_reference
from explorer.services import Services, Session
from explorer.ui import STATIC_DIR, plotly_js_path, user_errors
from explorer.ui_search import SearchTab, _session
from explorer.weights import has_weights, highest_weight_queries, weight_histograms, weight_summary

TABLE_COLUMNS = ["query_id", "caption", "success", "disagree"]
#: Rows of the benchmark browser per page (the whole list is reachable page by page, and the page says so).
ROWS_PER_PAGE = 500
MAP_TEMPLATE = (
    '<div class="covr-map-root"><div class="covr-map-plot"></div><div class="covr-map-tip"></div></div>'
)


@dataclass
class ExploreTab:
    """Hooks the page needs after all tabs exist."""

    wire_deep_link: Any
    benchmark: Any = None  #: the benchmark dropdown (refreshed when start-up adds evaluations)
    map_gallery: Any = None  #: the Map tab's gallery dropdown (refreshed when start-up adds galleries)
    redraw_map: Any = None  #: (fn, inputs, outputs) drawing the map again (run when start-up is done)


def _default_combiner(combiners: list[str]) -> str | None:
    return next((c for c in ("MLP", "AVG") if c in combiners), combiners[0] if combiners else None)


def build_explore_tab(services: Services, session: gr.State, search: SearchTab, tabs: gr.Tabs) -> ExploreTab:
    """Layout and events of the Explore tab."""
    benches = services.benchmark_names()
    first = benches[0] if benches else None
    first_combs = services.benchmark_combiners(first) if first else []
    # every combiner of every evaluation is a valid value (API callers, evaluations added later); the page
    # narrows the list to the chosen evaluation's combiners
    with gr.Row():
        bench = gr.Dropdown(benches, value=first, label="Benchmark (evaluation run)", scale=2,
                            allow_custom_value=True, elem_id="explore-bench")
        combiner = gr.Dropdown(services.all_benchmark_combiners(), value=_default_combiner(first_combs),
                               label="Combiner", scale=1, allow_custom_value=True)
        k = gr.Number(value=10, precision=0, minimum=1, label="success at k", scale=1)
        refresh = gr.Button("↻ Refresh lists", scale=0, min_width=120, elem_id="explore-refresh")
    gr.Markdown(
        "Evaluations, filter runs and galleries are read from the data folder: after `python -m precompute."
        "evaluate ... --out <data>/evaluations/<name>` (or `python -m precompute.reproduce`), press *Refresh lists*."
        + ("" if benches else " No evaluation runs yet under `<data>/evaluations/`.")
    )
    with gr.Tabs():
        with gr.Tab("Benchmark browser"):
            with gr.Row():
                text = gr.Textbox(
                    label="Filter by text", placeholder="words of the caption or an id", scale=3
                )
                outcome = gr.Radio(list(OUTCOMES), value="all", label="Outcome at k", scale=2)
                disagree = gr.Checkbox(label="combiners disagree", scale=1)
                page = gr.Number(value=1, precision=0, minimum=1, label="page", scale=1)
            page_info = gr.Markdown(elem_id="explore-page-info")
            table = gr.Dataframe(interactive=False, label="Queries (click a row to open it)", max_height=320)
        with gr.Tab("Weights"):
            gr.Markdown(
                "The study's Figure 1 (normalised histograms of the combiner's weights over the split) "
                "and a ternary plot coloured by success at k. Fixed combiners (AVG, TEXT, IMAGE, NA) give "
                "one spike per weight; MLP gives a distribution."
            )
            with gr.Row():
                hist = gr.Plot(label="Figure 1")
                tern = gr.Plot(label="ternary")
            wsum = gr.Dataframe(interactive=False, label="weights summary")
            with gr.Row():
                top_btns = {
                    w: gr.Button(f"Open the query with the highest {w}") for w in ("w_mm", "w_img", "w_txt")
                }
        with gr.Tab("Map"):
            with gr.Row():
                map_gallery = gr.Dropdown(
                    services.gallery_names(), value=services.default_gallery, label="Gallery"
                )
                colour_by = gr.Radio(["kind", "split", "kind+split"], value="kind", label="Colour by")
                map_btn = gr.Button("Show my last search on the map")
            map_html = gr.HTML(
                value="{}",
                html_template=MAP_TEMPLATE,
                css_template=_map_css(),
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
        with gr.Tab("WebVid filter"):
            filt_run = gr.Dropdown(services.filter_run_names(), label="filter run (<data>/webvid_filter/<name>)",
                                   allow_custom_value=True)
            filt_md = gr.Markdown()
            filt_table = gr.Dataframe(interactive=False, label="filter statistics")
            filt_examples = gr.Gallery(
                label="example pairs (middle frames of pth1 | pth2): same author · same category · neither",
                columns=3,
                height=420,
                object_fit="contain",
            )
    gr.Markdown("### Opened query")
    with gr.Row():
        d_ref = gr.Image(label="reference", type="filepath", height=220, interactive=False)
        with gr.Column():
            d_md = gr.Markdown("Open a query from the browser or the weights buttons.")
            d_link = gr.Textbox(label="Deep link (reopens this query)", buttons=["copy"], interactive=False)
            d_open = gr.Button("Open in Search (re-run live)")
        d_target = gr.Image(label="target", type="filepath", height=220, interactive=False)
    d_results = gr.Gallery(label="stored results of the evaluation run", columns=8, height=280)
    opened = gr.State(None)

    # ------------------------------------------------------------------ handlers (thin)
    @user_errors
    def list_queries(b: str, c: str, kk: float, t: str, o: str, dis: bool, pg: float = 1):
        if not b:
            return pd.DataFrame(columns=TABLE_COLUMNS), ""
        wt = wide_table(services.get_benchmark(b), c, int(kk or 10))
        cols = [
            "query_id",
            "caption",
            *[x for x in wt.columns if x.startswith("rank_")],
            "success",
            "disagree",
        ]
        part, info = page_of(filter_queries(wt, t, o, dis), int(pg or 1), ROWS_PER_PAGE)
        return part[cols], info

    @user_errors
    def on_bench(b: str):
        cs = services.benchmark_combiners(b) if b else []
        return gr.Dropdown(cs, value=_default_combiner(cs))

    def refresh_lists():
        benches_now = services.benchmark_names()
        return (
            gr.Dropdown(choices=benches_now),
            gr.Dropdown(choices=services.filter_run_names()),
            gr.Dropdown(choices=services.gallery_names()),
            gr.Dropdown(choices=services.gallery_names()),
        )

    @user_errors
    def show_query(b: str, qid: str, c: str, request: gr.Request | None = None):
        v = open_query(services, b, qid, c)
        base = request_base_url(dict(request.headers)) if request is not None else ""
        link = make_deep_link(base, b, str(qid), v.detail["combiner"])
        return (
            v.reference_path,
            v.markdown(),
            link,
            v.target_path,
            v.results,
            {"bench": b, "query": str(qid), "combiner": v.detail["combiner"]},
        )

    def on_row(b: str, c: str, tbl: pd.DataFrame, evt: gr.SelectData, request: gr.Request):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return show_query(b, str(tbl.iloc[int(row)]["query_id"]), c, request)

    @user_errors
    def weights_view(b: str, c: str, kk: float):
        if not b:
            return None, None, pd.DataFrame()
        wt = wide_table(services.get_benchmark(b), c, int(kk or 10))
        if not has_weights(wt):
            return None, None, pd.DataFrame()
        return (
            weights_histogram_figure(weight_histograms(wt), f"{b} · {c}: weights over {len(wt)} queries"),
            ternary_figure(wt),
            weight_summary(wt),
        )

    def highest(which: str):
        @user_errors
        def fn(b: str, c: str, kk: float, request: gr.Request):
            if not b:
                raise ValueError("No benchmark selected.")
            wt = wide_table(services.get_benchmark(b), c, int(kk or 10))
            return show_query(b, str(highest_weight_queries(wt, which).iloc[0]["query_id"]), c, request)

        return fn

    @user_errors
    def draw_map(gname: str, colour: str, s: Session | None, with_query: bool) -> str:
        gname = gname or services.default_gallery
        gal = services.get_gallery(gname)
        pts = load_map_points(gal, lambda i: services.thumb_url(gname, i), colour)
        overlays = None
        s = _session(s)
        if with_query and pts is not None and s.last and s.last.get("gallery") == gname and s.last_query:
            import numpy as np

            xy = place_by_neighbours(pts, gal, np.asarray(s.last_query, dtype=np.float32))
            overlays = overlays_for(
                pts,
                xy,
                [r["id"] for r in s.last["results"]],
                s.last.get("target_id"),
                query_caption=s.last["text"],
            )
        return json.dumps(map_json(pts, overlays, title=f"{gname}: {len(gal)} items"))

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
        s = _session(s)
        image, video = item_reference(services, gname or services.default_gallery, item_id)
        s.reference_label, s.reference_id = f"gallery:{item_id}", item_id
        s.benchmark = s.query_id = s.target_id = s.benchmark_key = None
        return image, video, s, gr.Tabs(selected="search")

    @user_errors
    def open_in_search(o: dict | None, kk: float, s: Session | None):
        if not o:
            raise ValueError("Open a query first.")
        return _run_benchmark_query(services, search, o["bench"], o["query"], o.get("combiner"), s)

    @user_errors
    def filter_view(run: str | None = None):
        return filter_tab(services.data_dir, services.cache_dir, run or None)

    # ------------------------------------------------------------------ events
    detail_out = [d_ref, d_md, d_link, d_target, d_results, opened]
    bench.change(on_bench, [bench], [combiner], api_name="list_combiners", api_visibility="private")
    gr.on(
        [bench.change, combiner.change, k.change, text.submit, outcome.change, disagree.change, page.change],
        list_queries,
        [bench, combiner, k, text, outcome, disagree, page],
        [table, page_info],
        api_name="list_queries",
    )
    refresh.click(refresh_lists, None, [bench, filt_run, map_gallery, search.gallery], api_name="refresh_lists")
    filt_run.change(filter_view, [filt_run], [filt_md, filt_table, filt_examples], api_name="filter_view")
    table.select(
        on_row, [bench, combiner, table], detail_out, api_name="select_query", api_visibility="private"
    )
    gr.on(
        [bench.change, combiner.change, k.change],
        weights_view,
        [bench, combiner, k],
        [hist, tern, wsum],
        api_name="weights",
    )
    for w, btn in top_btns.items():
        btn.click(highest(w), [bench, combiner, k], detail_out, api_name=f"highest_{w}")
    with_q_false, with_q_true = gr.State(False), gr.State(True)
    gr.on(
        [map_gallery.change, colour_by.change],
        draw_map,
        [map_gallery, colour_by, session, with_q_false],
        [map_html],
        api_name="map",
    )
    map_btn.click(draw_map, [map_gallery, colour_by, session, with_q_true], [map_html], api_name="map_query")
    map_html.point_click(on_point, [map_gallery], [clicked, clicked_md, clicked_id], api_name="open_point")
    clicked_use.click(
        use_clicked,
        [map_gallery, clicked_id, session],
        [search.ref_image, search.ref_video, session, tabs],
        api_name="use_point",
    )
    open_outputs = [
        search.ref_image,
        search.text,
        search.combiner,
        search.gallery,
        *search.search_outputs,
        tabs,
    ]
    d_open.click(
        open_in_search, [opened, k, session], open_outputs, api_name="open_query", concurrency_id="encoder"
    )

    def wire_deep_link(demo: gr.Blocks) -> None:
        @user_errors
        def on_load(s: Session | None, request: gr.Request):
            link = parse_deep_link(dict(request.query_params)) if request is not None else None
            b, c = first, _default_combiner(first_combs)
            out_list = list_queries(b, c, 10, "", "all", False, 1) if b else (pd.DataFrame(), "")
            wv = weights_view(b, c, 10) if b else (None, None, pd.DataFrame())
            mp = draw_map(services.default_gallery, "kind", s, False) if services.startup.ready else gr.skip()
            fv = filter_view()
            lists = (  # the Search gallery list has its own load event (ui.py)
                *refresh_lists()[:3],
                gr.Dropdown(choices=first_combs),  # the first evaluation's combiners; changes with the choice
            )
            if link is None:
                return (
                    *lists,
                    *out_list,
                    *wv,
                    mp,
                    *fv,
                    *[gr.skip()] * len(open_outputs),
                    *[gr.skip()] * len(detail_out),
                )
            ran = _run_benchmark_query(
                services, search, link["bench"], link["query"], link.get("combiner"), s
            )
            det = show_query(link["bench"], link["query"], link.get("combiner"), request)
            return (*lists, *out_list, *wv, mp, *fv, *ran, *det)

        demo.load(
            on_load,
            [session],
            [
                bench,
                filt_run,
                map_gallery,
                combiner,
                table,
                page_info,
                hist,
                tern,
                wsum,
                map_html,
                filt_md,
                filt_table,
                filt_examples,
                *open_outputs,
                *detail_out,
            ],
            api_name="open_deep_link",
            show_progress="hidden",
        )

    return ExploreTab(wire_deep_link=wire_deep_link, benchmark=bench, map_gallery=map_gallery,
                      redraw_map=(lambda g, c, s: draw_map(g, c, s, False), [map_gallery, colour_by, session],
                                  [map_html]))


def _run_benchmark_query(
    services: Services, search: SearchTab, bench: str, query_id: str, combiner: str | None, s: Session | None
) -> tuple:
    """Put a benchmark query into the Search tab (with its ground truth) and run it."""
    s = _session(s)
    v = open_query(services, bench, query_id, combiner)
    if v.reference_path is None:
        raise FileNotFoundError(
            f"the reference {v.detail['reference']!r} of query {query_id} is not in gallery {v.gallery!r}"
        )
    comb = v.detail["combiner"] if v.detail["combiner"] in services.combiners() else services.combiners()[0]
    from covr_core.media import load_image

    s.benchmark, s.query_id, s.target_id = bench, str(query_id), v.detail["target"]
    s.reference_label, s.reference_id = f"benchmark:{bench}:{query_id}", v.detail["reference"]
    s.benchmark_key = services.prepare_reference(load_image(v.reference_path))
    outs = search.run_search(v.reference_path, None, v.detail["caption"], comb, v.gallery, 12, s)
    return (v.reference_path, v.detail["caption"], comb, v.gallery, *outs, gr.Tabs(selected="search"))


def _map_css() -> str:
    return (STATIC_DIR / "map.css").read_text()
