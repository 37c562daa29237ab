"""Search › example rows: curated (reference image, text, combiner) rows that run on click, their outputs
cached lazily after first use (layout and wiring only; the rows are in explorer/intro.py)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from explorer.plots import weights_bar_figure
from explorer.search import gallery_value, outcome_markdown, search_with_session
from explorer.services import Services, Session
from explorer.ui import user_errors


@contextlib.contextmanager
def _examples_cache(folder: Path) -> Iterator[None]:
    """Gradio reads its example cache folder from the environment when ``gr.Examples`` is built."""
    old = os.environ.get("GRADIO_EXAMPLES_CACHE")
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(folder)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("GRADIO_EXAMPLES_CACHE", None)
        else:
            os.environ["GRADIO_EXAMPLES_CACHE"] = old


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

    # one cache per encoder checkpoint, gallery build and set of rows: no change ever shows stale results
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
    folder = services.cache_dir / "examples" / key[:16]
    with _examples_cache(folder):
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
    return ex.cache_event.then(
        adopt,
        [ref_image, text, combiner, session],
        [session],
        api_name="adopt_example",
        api_visibility="private",
    )
