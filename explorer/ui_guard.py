"""The page's guards inside Gradio: clean input errors, file-payload policy, a fair bounded queue, one
encoder pool.

* :class:`ExplorerBlocks` is ``gr.Blocks`` with one hook at the depth where Gradio turns an input into a
  handler argument (``preprocess_data``, run for every event of every session, including the per-session
  component copies Gradio creates when a handler returns a component update; an instance-level
  ``preprocess`` wrapper is lost on those copies). There: (1) every file payload must be an upload or a file
  the served-files policy allows *now*; (2) a component that fails to read its input (a text file renamed
  ``.jpg``) gives the media layer's own ``MediaError`` text (the same message the API gets), never Gradio's
  "Could not preprocess..." with temp paths and handler names.
* :class:`FairQueue` bounds the heavy events (encoder pool) waiting or running per browser session
  (``COVR_MAX_PENDING_PER_SESSION``) and per client address (``COVR_MAX_PENDING_PER_CLIENT``), on top of
  Gradio's global ``max_size`` (``COVR_MAX_QUEUE_SIZE``, all events): a client flooding the queue gets "busy"
  answers at once instead of pushing everyone else back.
* :func:`assign_encoder_pool` puts every endpoint that runs the encoder or decodes media / renders figures into
  one Gradio concurrency group (``concurrency_id="encoder"``) limited to ``COVR_MAX_CONCURRENT_JOBS``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import gradio as gr
from gradio import queueing
from gradio.exceptions import ComponentProcessingError, InvalidPathError

from covr_core.media import MediaError, load_image, probe_video
from covr_core.settings import Limits
from explorer.served_files import ServedFiles
from explorer.visitors import client_address, on_space

log = logging.getLogger(__name__)

ENCODER_POOL = "encoder"
#: Endpoints that run the encoder, decode media (uploads, gallery videos for stills, WebVid frames) or render
#: report figures: they share one pool. ``select_query`` / ``highest_*`` open an evaluation's query (a video
#: still of its reference, an outlined target), like ``open_deep_link``.
HEAVY_ENDPOINTS = frozenset({
    "search", "compare", "open_query", "open_deep_link", "encode_reference", "video_still", "sample_frames",
    "pin", "export", "export_all", "preview_pinned", "use_as_reference", "use_point", "filter_view",
    "select_query", "highest_w_mm", "highest_w_img", "highest_w_txt", "run_example", "adopt_example",
})  # fmt: skip
NOT_UPLOADED = "This file was not uploaded through this page; please upload it again."


def assign_encoder_pool(demo: gr.Blocks, limit: int) -> list[str]:
    """Put every heavy endpoint of ``demo`` into the one encoder pool of ``limit`` slots; returns their names."""
    pooled = []
    for fn in demo.fns.values():
        if fn.api_name in HEAVY_ENDPOINTS:
            fn.concurrency_id = ENCODER_POOL
            fn.concurrency_limit = limit
            pooled.append(str(fn.api_name))
    return sorted(pooled)


def _file_paths(value: Any) -> list[str]:
    """Paths of the file payloads (dicts with a string ``path``) inside an input value."""
    if isinstance(value, dict):
        own = [value["path"]] if isinstance(value.get("path"), str) else []
        return own + [p for v in value.values() if isinstance(v, (dict, list)) for p in _file_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _file_paths(v)]
    return []


def _inside(path: str, folder: Path) -> bool:
    try:
        return folder in Path(os.path.abspath(path)).resolve().parents
    except (OSError, ValueError):
        return False


def media_message(block: Any, path: str) -> str | None:
    """The media layer's message for an unreadable image/video input, None when it reads fine."""
    try:
        if isinstance(block, gr.Image):
            load_image(path)
        elif isinstance(block, gr.Video):
            probe_video(path)
        else:
            return None
    except MediaError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a reader bug must not leak either
        log.info("media check of an input failed: %s", exc)
        return "This file cannot be read."
    return None


class ExplorerBlocks(gr.Blocks):
    """``gr.Blocks`` whose inputs are checked against the served-files policy and whose input-reading errors
    are the media layer's clean messages (see the module docstring)."""

    served: ServedFiles | None = None
    limits: Limits = Limits()

    async def preprocess_data(self, block_fn: Any, inputs: list[Any], state: Any, explicit_call: bool = False):
        upload_dir = Path(gr.utils.get_upload_folder()).resolve()
        for value in inputs:
            for path in _file_paths(value):
                if not (_inside(path, upload_dir) or (self.served is not None and self.served.allows(path))):
                    raise gr.Error(NOT_UPLOADED, print_exception=False)
        try:
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except InvalidPathError:
            raise gr.Error(NOT_UPLOADED, print_exception=False) from None
        except ComponentProcessingError as exc:
            log.info("input of %s not readable: %s", block_fn.api_name, exc.__cause__ or exc)
            for block, value in zip(block_fn.inputs, inputs):
                for path in _file_paths(value):
                    message = media_message(block, path) if _inside(path, upload_dir) else None
                    if message:
                        raise gr.Error(message, print_exception=False) from None
            raise gr.Error("One of the inputs could not be read; please check it and try again.",
                           print_exception=False) from None  # fmt: skip

    def queue(self, *args: Any, **kwargs: Any) -> ExplorerBlocks:
        """``gr.Blocks.queue`` with a :class:`FairQueue` (same state; only ``push`` differs)."""
        super().queue(*args, **kwargs)
        self._queue.__class__ = FairQueue
        self._queue.limits = self.limits  # type: ignore[attr-defined]
        return self


def request_client(request: Any) -> str:
    """The client address of a FastAPI/Starlette request (see ``explorer.visitors.client_address``)."""
    peer = getattr(getattr(request, "client", None), "host", None)
    return client_address(getattr(request, "headers", {}) or {}, peer, on_space())


class FairQueue(queueing.Queue):
    """Gradio's queue with per-session and per-client bounds on waiting events (``push`` only)."""

    limits: Limits = Limits()

    def busy_reason(self, session_hash: str | None, client: str) -> str:
        """Why a new heavy event of this session/client is refused now ('' when it is accepted)."""
        mine_session = mine_client = 0
        for event in list(self.event_ids_to_events.values()):
            if event.concurrency_id != ENCODER_POOL:
                continue
            if session_hash and event.session_hash == session_hash:
                mine_session += 1
            if request_client(event.request) == client:
                mine_client += 1
        if mine_session >= self.limits.max_pending_per_session:
            return (f"You already have {mine_session} searches or uploads waiting; wait for them to finish "
                    "before starting another.")  # fmt: skip
        if mine_client >= self.limits.max_pending_per_client:
            return "Too many requests from your address are waiting; please wait for them to finish."
        return ""

    async def push(self, body: Any, request: Any, username: str | None):  # type: ignore[override]
        fn = self.blocks.fns.get(body.fn_index) if body.fn_index is not None else None
        if fn is not None and fn.concurrency_id == ENCODER_POOL:
            reason = self.busy_reason(body.session_hash, request_client(request))
            if reason:
                log.info("refused a %s event of client %s: %s", fn.api_name, request_client(request), reason)
                return False, reason, "queue_full"
        if self.max_size is not None and len(self) >= self.max_size:
            return False, "The server is busy right now; please try again in a moment.", "queue_full"
        return await super().push(body, request, username)
