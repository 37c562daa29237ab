"""Search › example rows: curated (reference image, text, combiner) rows that run on click, their outputs
cached lazily after first use (layout and wiring only; the rows are in explorer/intro.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import gradio as gr

from explorer.plots import weights_bar_figure
from explorer.search import gallery_value, outcome_markdown, search_with_session
from explorer.services import Services, Session
from explorer.ui_common import user_errors


def examples_cache_folder(services: Services, rows: list[list[str]]) -> Path:
    """The cache folder of these rows: one per encoder checkpoint, gallery build and set of rows, so no change
    ever shows stale results (``NotReadyError`` until start-up has loaded the encoder and the gallery)."""
    services.startup.require_ready()
    key = hashlib.sha256(
        json.dumps(
            [
                services.info.name,
                services.info.version,
                services.info.checkpoint_sha256,
                services.gallery_hash(services.default_gallery),
                rows,
            ]
        ).encode()
    ).hexdigest()
    return services.cache_dir / "examples" / key[:16]


def follow_cache_folder(examples: gr.Examples, folder_of: Any) -> None:
    """Point ``examples``' lazy cache at ``folder_of()`` each time a row is loaded (the page is built before
    start-up has loaded the encoder, so the folder is only known then); wraps the instance's method."""
    load = examples.load_from_cache

    def load_from_cache(example_id: int, request: Any = None) -> list[Any]:
        folder = Path(folder_of()) / str(examples.dataset._id)
        examples.cached_folder = folder
        examples.cached_file = folder / "log.csv"
        examples.cached_indices_file = folder / "indices.csv"
        return load(example_id, request)

    examples.load_from_cache = user_errors(load_from_cache)  # "not ready yet" as a message, not a trace


def build_examples(
    services: Services,
    rows: list[list[str]],
    ref_image: gr.Image,
    text: gr.Textbox,
    combiner: gr.Dropdown,
    results: gr.Gallery,
    weights: gr.Plot,
    status: gr.Markdown,
    record: gr.JSON,
    session: gr.State,
) -> Any:
    """Curated example rows that run on click; each row's outputs are cached after its first use (lazy),
    in a folder per encoder checkpoint and gallery build, so no stale result is ever shown."""

    def run_example(image: str, txt: str, comb: str):
        s = Session()
        res = search_with_session(services, s, image, None, txt, comb, services.default_gallery, 12)
        out = res.outcomes[comb]
        # plain values: a cached example cannot return component updates
        return (
            gallery_value(out, services.cache_dir / "outlined"),
            weights_bar_figure(out.weights, comb),
            outcome_markdown(out),
            s.last,
        )

    @user_errors
    def adopt(image: str, txt: str, comb: str, s: Session | None) -> Session:
        """The example's search becomes the session's last search (so Pin and the map work on it); the
        reference is already encoded, so this is the text pass only."""
        s = s if isinstance(s, Session) else Session()
        if image and txt:
            search_with_session(services, s, image, None, txt, comb, services.default_gallery, 12)
        return s

    ex = gr.Examples(
        examples=rows,
        inputs=[ref_image, text, combiner],
        outputs=[results, weights, status, record],
        fn=run_example,
        cache_examples=True,
        cache_mode="lazy",
        label="Examples: click a row to run it (reference · text · combiner)",
        examples_per_page=len(rows),
        api_name="run_example",
        elem_id="examples",
    )
    follow_cache_folder(ex, lambda: examples_cache_folder(services, rows))
    return ex.cache_event.then(
        adopt,
        [ref_image, text, combiner, session],
        [session],
        api_name="adopt_example",
        api_visibility="private",
    )
