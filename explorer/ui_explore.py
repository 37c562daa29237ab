"""Explore tab: benchmark browser (with the opened query), weight analysis, gallery map, WebVid filter
(layout and wiring only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from explorer.benchmark_query import protocol_description, run_benchmark_query
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
from explorer.plots import ternary_figure, weights_histogram_figure
from explorer.search import default_combiner, is_video_path
from explorer.services import Services, Session
from explorer.ui_common import user_errors
from explorer.ui_map import build_map_tab
from explorer.ui_search import SearchTab, _session
from explorer.weights import (
    has_weights,
    highest_weight_queries,
    identical_combiners,
    identical_note,
    weight_histograms,
    weight_summary,
)

TABLE_COLUMNS = ["query_id", "caption", "success", "disagree"]
#: Rows of the benchmark browser per page (the whole list is reachable page by page, and the page says so).
ROWS_PER_PAGE = 500
NO_MATCH = (
    "No query matches these filters: clear the text, choose outcome **all**, or untick "
    "**combiners disagree**."
)
NO_QUERY = "Click a row of the table (or a button of the Weights view) to open a query here."


@dataclass
class ExploreTab:
    """Hooks the page needs after all tabs exist."""

    wire_deep_link: Any
    benchmark: Any = None  #: the benchmark dropdown (refreshed when start-up adds evaluations)
    map_gallery: Any = None  #: the Map tab's gallery dropdown (refreshed when start-up adds galleries)
    redraw_map: Any = None  #: (fn, inputs, outputs) drawing the map again (run when start-up is done)


def _default_combiner(combiners: list[str]) -> str | None:
    return default_combiner(combiners) if combiners else None


def _one(path: str | None, caption: str) -> list[tuple[str, str]]:
    """A one-item gallery value (an image or a playable video), empty when the file is missing."""
    return [(path, caption)] if path else []


def _opened_item(label: str, elem_id: str) -> gr.Gallery:
    """One item of the opened query (the reference or the target): an image or a playable video."""
    return gr.Gallery(
        label=label, columns=1, height=220, allow_preview=False, scale=1, min_width=160, elem_id=elem_id
    )


def build_explore_tab(services: Services, session: gr.State, search: SearchTab, tabs: gr.Tabs) -> ExploreTab:
    """Layout and events of the Explore tab."""
    benches = services.benchmark_names()
    first = benches[0] if benches else None
    first_combs = services.benchmark_combiners(first) if first else []
    # every combiner of every evaluation is a valid value (API callers, evaluations added later); the page
    # narrows the list to the chosen evaluation's combiners
    with gr.Row():
        bench = gr.Dropdown(benches, value=first, label="Benchmark (evaluation run)", scale=2, min_width=180,
                            allow_custom_value=True, elem_id="explore-bench")
        combiner = gr.Dropdown(services.all_benchmark_combiners(), value=_default_combiner(first_combs),
                               label="Combiner", scale=1, min_width=100, allow_custom_value=True)
        k = gr.Number(value=10, precision=0, minimum=1, label="success at k", scale=1, min_width=100)
        refresh = gr.Button("↻ Refresh lists", scale=0, min_width=120, elem_id="explore-refresh")
    gr.Markdown(
        "Evaluations, filter runs and galleries are read from the data folder: after `python -m precompute."
        "evaluate ... --out <data>/evaluations/<name>` (or `python -m precompute.reproduce`), press *Refresh lists*."
        + ("" if benches else " No evaluation runs yet under `<data>/evaluations/`.")
    )
    with gr.Tabs() as inner:
        with gr.Tab("Benchmark browser", id="browser"):
            with gr.Row():
                text = gr.Textbox(
                    label="Filter by text",
                    placeholder="words of the caption or an id",
                    scale=3,
                    min_width=160,
                )
                outcome = gr.Radio(list(OUTCOMES), value="all", label="Outcome at k", scale=2, min_width=160)
                disagree = gr.Checkbox(label="combiners disagree", scale=1, min_width=120)
                page = gr.Number(value=1, precision=0, minimum=1, label="page", scale=1, min_width=80)
            page_info = gr.Markdown(elem_id="explore-page-info")
            scope_md = gr.Markdown(elem_id="bench-scope")
            table_msg = gr.Markdown(elem_id="bench-message")
            table = gr.Dataframe(
                interactive=False,
                label="Queries (click a row to open it)",
                max_height=320,
                elem_id="bench-table",
            )
            gr.Markdown("### Opened query")
            with gr.Row(elem_id="opened-query"):
                d_ref = _opened_item("reference", "opened-reference")
                with gr.Column(scale=1, min_width=200):
                    d_md = gr.Markdown(NO_QUERY, elem_id="opened-md")
                    d_link = gr.Textbox(
                        label="Deep link (reopens this query)", buttons=["copy"], interactive=False
                    )
                    d_open = gr.Button("Open in Search (re-run live)", elem_id="open-in-search")
                d_target = _opened_item("target", "opened-target")
            d_results = gr.Gallery(
                label="stored results of the evaluation run", columns=6, height=280, elem_id="opened-results"
            )
        with gr.Tab("Weights", id="weights"):
            gr.Markdown(
                "The study's Figure 1 (normalised histograms of the combiner's weights over the split) "
                "and a ternary plot coloured by success at k (points jittered so that equal weights stay "
                "visible). Fixed combiners (NA, AVG, TEXT, IMAGE) put every query on one point; "
                "MLP spreads them."
            )
            wnote = gr.Markdown(elem_id="weights-note")
            with gr.Row():
                hist = gr.Plot(label="Figure 1")
                tern = gr.Plot(label="ternary", elem_id="ternary")
            wsum = gr.Dataframe(interactive=False, label="weights summary")
            with gr.Row():
                top_btns = {
                    w: gr.Button(f"Open the query with the highest {w}") for w in ("w_mm", "w_img", "w_txt")
                }
        with gr.Tab("Map", id="map"):
            map_tab = build_map_tab(services, session, search, tabs)
        with gr.Tab("WebVid filter", id="filter"):
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
    opened = gr.State(None)

    # ------------------------------------------------------------------ handlers (thin)
    @user_errors
    def list_queries(b: str, c: str, kk: float, t: str, o: str, dis: bool, pg: float = 1) -> tuple:
        if not b:
            return pd.DataFrame(columns=TABLE_COLUMNS), "", "", ""
        wt = wide_table(services.get_benchmark(b), c, int(kk or 10))
        cols = ["query_id", "caption", *[x for x in wt.columns if x.startswith("rank_")], "success", "disagree"]
        part, info = page_of(filter_queries(wt, t, o, dis), int(pg or 1), ROWS_PER_PAGE)
        return part[cols], info, (NO_MATCH if part.empty else ""), protocol_description(services, b)

    @user_errors
    def on_bench(b: str):
        cs = services.benchmark_combiners(b) if b else []
        return gr.Dropdown(cs, value=_default_combiner(cs))

    def refresh_lists():
        return (
            gr.Dropdown(choices=services.benchmark_names()),
            gr.Dropdown(choices=services.filter_run_names()),
            gr.Dropdown(choices=services.gallery_names()),
            gr.Dropdown(choices=services.gallery_names()),
        )

    def query_view(b: str, qid: str, c: str | None, request: gr.Request | None = None) -> tuple:
        v = open_query(services, b, qid, c)
        base = request_base_url(dict(request.headers)) if request is not None else ""
        link = make_deep_link(base, b, str(qid), v.detail["combiner"])
        ref_caption = f"reference · {v.detail['reference']}"
        target_caption = f"target · {v.detail['target']}" if v.detail["target"] else ""
        return (
            _one(v.reference_media, ref_caption),
            v.markdown(),
            link,
            _one(v.target_path, target_caption),
            v.results,
            {"bench": b, "query": str(qid), "combiner": v.detail["combiner"]},
        )

    @user_errors
    def on_row(b: str, c: str, tbl: pd.DataFrame, evt: gr.SelectData, request: gr.Request):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return query_view(b, str(tbl.iloc[int(row)]["query_id"]), c, request)

    @user_errors
    def weights_view(b: str, c: str, kk: float):
        if not b:
            return None, None, pd.DataFrame(), ""
        bench_obj = services.get_benchmark(b)
        wt = wide_table(bench_obj, c, int(kk or 10))
        note = identical_note(identical_combiners(bench_obj.per_query), services.info)
        if not has_weights(wt):
            return None, None, pd.DataFrame(), note or "This run stored no weights."
        return (
            weights_histogram_figure(weight_histograms(wt), f"{b} · {c}: weights over {len(wt)} queries"),
            ternary_figure(wt),
            weight_summary(wt),
            note,
        )

    def highest(which: str):
        @user_errors
        def fn(b: str, c: str, kk: float, request: gr.Request):
            if not b:
                raise ValueError("No benchmark selected.")
            wt = wide_table(services.get_benchmark(b), c, int(kk or 10))
            qid = str(highest_weight_queries(wt, which).iloc[0]["query_id"])
            return (*query_view(b, qid, c, request), gr.Tabs(selected="browser"))

        return fn

    def benchmark_in_search(b: str, qid: str, c: str | None, kk: Any, s: Session | None) -> tuple:
        s = _session(s)
        run = run_benchmark_query(services, s, b, qid, c, int(kk or 12))
        video = run.view.reference_media if is_video_path(run.view.reference_media) else None
        return (
            run.view.reference_path,
            video,
            run.view.detail["caption"],
            run.combiner,
            run.view.gallery,
            *search.show(run.outcome, s, run.note),
            gr.Tabs(selected="search"),
        )

    @user_errors
    def open_in_search(o: dict | None, kk: Any, s: Session | None):
        if not o:
            raise ValueError("Open a query first (click a row of the table).")
        return benchmark_in_search(o["bench"], o["query"], o.get("combiner"), kk, s)

    @user_errors
    def filter_view(run: str | None = None):
        return filter_tab(services.data_dir, services.cache_dir, run or None)

    # ------------------------------------------------------------------ events
    detail_out = [d_ref, d_md, d_link, d_target, d_results, opened]
    list_out = [table, page_info, table_msg, scope_md]
    weights_out = [hist, tern, wsum, wnote]
    bench.change(on_bench, [bench], [combiner], api_name="list_combiners", api_visibility="private")
    gr.on(
        [bench.change, combiner.change, k.change, text.submit, outcome.change, disagree.change, page.change],
        list_queries,
        [bench, combiner, k, text, outcome, disagree, page],
        list_out,
        api_name="list_queries",
    )
    refresh.click(refresh_lists, None, [bench, filt_run, map_tab.gallery, search.gallery], api_name="refresh_lists")
    filt_run.change(filter_view, [filt_run], [filt_md, filt_table, filt_examples], api_name="filter_view")
    table.select(
        on_row, [bench, combiner, table], detail_out, api_name="select_query", api_visibility="private"
    )
    gr.on(
        [bench.change, combiner.change, k.change],
        weights_view,
        [bench, combiner, k],
        weights_out,
        api_name="weights",
    )
    for w, btn in top_btns.items():
        btn.click(highest(w), [bench, combiner, k], [*detail_out, inner], api_name=f"highest_{w}")
    open_outputs = [
        search.ref_image,
        search.ref_video,
        search.text,
        search.combiner,
        search.gallery,
        *search.search_outputs,
        tabs,
    ]
    d_open.click(
        open_in_search,
        [opened, search.k, session],
        open_outputs,
        api_name="open_query",
        concurrency_id="encoder",
    ).success(search.clear_stale, None, search.stale_outputs, api_visibility="private", queue=False)

    def wire_deep_link(demo: gr.Blocks) -> None:
        def on_load(s: Session | None, request: gr.Request):
            """Fill the Explore views; with ``?bench=&query=`` also open that query in Search. A bad link
            is reported once (a warning toast and the status line) and the page still loads."""
            link = parse_deep_link(dict(request.query_params)) if request is not None else None
            b, c = first, _default_combiner(first_combs)
            skip_open, skip_detail = [gr.skip()] * len(open_outputs), [gr.skip()] * len(detail_out)
            listing = list_queries(b, c, 10, "", "all", False, 1) if b else (pd.DataFrame(), "", "", "")
            lists = (  # the Search gallery list has its own load event (ui.py)
                *refresh_lists()[:3],
                gr.Dropdown(choices=first_combs),  # the first evaluation's combiners; changes with the choice
            )
            wv = weights_view(b, c, 10) if b else (None, None, pd.DataFrame(), "")
            ready = services.startup.ready  # the default gallery may still be being built
            mp = map_tab.draw(services.default_gallery, "kind", s, False) if ready else (gr.skip(), gr.skip())
            fv = filter_view()
            common = (*lists, *listing, *wv, *mp, *fv)
            if link is None:
                return (*common, *skip_open, *skip_detail)
            try:
                ran = benchmark_in_search(link["bench"], link["query"], link.get("combiner"), 12, s)
                det = query_view(link["bench"], link["query"], link.get("combiner"), request)
            except (KeyError, ValueError, FileNotFoundError) as exc:
                msg = f"This link could not be opened: {exc.args[0] if isinstance(exc, KeyError) else exc}"
                gr.Warning(msg)
                status_at = open_outputs.index(search.status)
                return (
                    *common,
                    *[msg if i == status_at else v for i, v in enumerate(skip_open)],
                    *skip_detail,
                )
            return (*common, *ran, *det)

        demo.load(
            user_errors(on_load),
            [session],
            [
                bench,
                filt_run,
                map_tab.gallery,
                combiner,
                *list_out,
                *weights_out,
                map_tab.html,
                map_tab.message,
                filt_md,
                filt_table,
                filt_examples,
                *open_outputs,
                *detail_out,
            ],
            api_name="open_deep_link",
            show_progress="hidden",
        )

    return ExploreTab(wire_deep_link=wire_deep_link, benchmark=bench, map_gallery=map_tab.gallery,
                      redraw_map=(lambda g, c, s: map_tab.draw(g, c, s, False),
                                  [map_tab.gallery, map_tab.colour, session], [map_tab.html, map_tab.message]))
