"""Search › Compare: the same encoded query through every available combiner side by side (layout and
wiring only; the query runs through explorer.search / explorer.query, the tables are explorer.compare's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from explorer.compare import compare_outcome
from explorer.search import gallery_value, removed_phrase, search_with_session
from explorer.services import Services, Session
from explorer.ui_common import user_errors

MAX_COMPARE = 5
EMPTY_COMPARE = "Click **Compare combiners** to run the same query through every combiner side by side."


@dataclass
class ComparePanel:
    """The Compare accordion: its output components, their cleared values, and the button's wiring."""

    outputs: list[Any]
    cleared: Any  #: callable() -> values of ``outputs`` for "no comparison"
    wire: Any  #: callable(button, inputs) -> None


def build_compare_panel(services: Services, combiners: list[str]) -> ComparePanel:
    """Layout of the Compare accordion and its handler."""
    with gr.Accordion("Compare: every combiner side by side", open=False, elem_id="compare-box") as box:
        md = gr.Markdown(EMPTY_COMPARE, elem_id="compare-md")
        table = gr.Dataframe(label="weights, rank of the ground truth, top-1", interactive=False)
        overlap = gr.Dataframe(label="top-k overlap", interactive=False)
        with gr.Row():
            galleries = [
                gr.Gallery(label=f"combiner {i + 1}", columns=2, height=420, visible=i < len(combiners))
                for i in range(MAX_COMPARE)
            ]
    outputs = [md, table, overlap, box, *galleries]

    def cleared() -> tuple:
        return (
            EMPTY_COMPARE,
            pd.DataFrame(),
            pd.DataFrame(),
            gr.Accordion(open=False),
            *[gr.Gallery(value=None) for _ in galleries],
        )

    @user_errors
    def do_compare(image: Any, video: Any, txt: str, gname: str, kk: int, s: Session | None):
        s = s if isinstance(s, Session) else Session()
        res = search_with_session(
            services,
            s,
            image,
            video,
            txt,
            services.combiners(),
            gname,
            kk,
            s.show_kind,
            s.hide_near_duplicates,
            remember=False,
        )
        cmp = compare_outcome(res)
        names, gals = list(cmp.outcomes), []
        for i in range(MAX_COMPARE):
            if i < len(names):
                o = cmp.outcomes[names[i]]
                rank = f", target at rank {o.target_rank} among {o.scope}" if o.target_rank else ""
                gals.append(
                    gr.Gallery(
                        value=gallery_value(o, services.cache_dir / "outlined"),
                        label=f"{names[i]}{rank}",
                        visible=True,
                        selected_index=None,
                    )
                )
            else:
                gals.append(gr.Gallery(visible=False))
        removed = removed_phrase(next(iter(cmp.outcomes.values())))
        text = f"Compared {len(cmp.outcomes)} combiners on one encoding in {cmp.elapsed_s * 1000:.0f} ms"
        text += f" ({removed})." if removed else "."
        return (text, cmp.table, cmp.overlap.reset_index(names="combiner"), gr.Accordion(open=True), *gals)

    def wire(button: gr.Button, inputs: list[Any]) -> None:
        button.click(do_compare, inputs, outputs, api_name="compare", concurrency_id="encoder")

    return ComparePanel(outputs=outputs, cleared=cleared, wire=wire)
