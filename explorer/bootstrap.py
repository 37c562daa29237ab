"""The slow part of start-up, run after the server answers: weights, the image tower's one-time build (an
OpenVINO export on CPU), gallery sources, demo gallery, map, mini benchmark, WebVid filter demo — each a step
of ``services.startup`` that the page shows.

``run_startup(services, demo)`` runs in the main thread (``app.py`` launches Gradio with
``prevent_thread_lock=True`` first): on ZeroGPU, CUDA placement must happen in the main thread, where the
``spaces`` package emulates CUDA. Search becomes ready as soon as the encoder is loaded and the default
gallery is there; the map, the mini benchmark and the filter demo follow in the background of the page.

The app reads, jobs write: the demo folders are written by ``demo``, a :class:`DemoBuilder` that
``app.py`` passes in (``precompute.demo.DemoJobs``, the chain of the batch jobs); this package never runs
a job itself.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Callable, Protocol

from covr_core.combiners import load_mlp_combiner
from covr_core.data_layout import demo_gallery_name
from covr_core.encoder import Encoder
from covr_core.factory import load_choice
from covr_core.gallery import Gallery, GalleryError
from covr_core.pretrained import hf_cache_dir
from explorer.gallery_sources import fetch_repo_galleries, mounted_galleries
from explorer.services import REPO_ROOT, Services

log = logging.getLogger(__name__)

#: ``report(message, fraction)``: a step's progress in the page.
Report = Callable[[str, float], None]


class DemoBuilder(Protocol):
    """Writes the bundled demo's folders under the data folder (``precompute.demo.DemoJobs``); every method is
    idempotent and keeps what is complete already."""

    def gallery(self, encoder: Encoder, report: Report | None = None) -> Path:
        """The demo gallery built with ``encoder``; returns its folder."""

    def map(self, encoder: Encoder) -> str:
        """The demo gallery's 2-D map; returns what was done."""

    def benchmarks(self, encoder: Encoder, report: Report | None = None) -> list[str]:
        """The mini benchmark's evaluations on the demo gallery; returns their names."""

    def filter_run(self) -> Path | None:
        """The WebVid filter's run on the bundled mini benchmark; its folder, or None without the assets."""


def public_message(text: str, services: Services) -> str:
    """``text`` without server paths (the data folder, the hub cache, the repository, home) for the page."""
    out = str(text)
    for path, name in (
        (hf_cache_dir(), "<HF cache>"),
        (services.data_dir, "<data>"),
        (REPO_ROOT, "<app>"),
        (Path.home(), "~"),
    ):
        out = out.replace(str(Path(path).resolve()), name).replace(str(path), name)
    return re.sub(r"\s+", " ", out).strip()[:1200]


def _run_step(services: Services, name: str, fn: Callable[[], str], fatal: bool = False) -> bool:
    """Run one step; its return value is the step's message. Errors are logged in full and shown short."""
    st = services.startup
    st.start(name)
    try:
        st.finish(name, fn())
        return True
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message in the page
        log.exception("start-up step %s failed", name)
        message = public_message(
            f"{exc}"
            if isinstance(exc, (ValueError, RuntimeError, OSError))
            else f"{type(exc).__name__}: {exc}",
            services,
        )
        st.fail(name, message)
        if fatal:
            st.fail_startup(message)
        return False


def load_encoder_step(services: Services) -> str:
    """Fetch the weights (progress in the page), load the encoder on its device, install it."""
    opts = services.options
    report = services.startup.reporter("encoder")
    inner = load_choice(services.choice, opts.device, opts.dtype, report)
    mlp = load_mlp_combiner(opts.mlp) if opts.mlp else None
    services.set_encoder(inner, mlp)
    info = services.encoder_unchecked.info
    if services.default_gallery == demo_gallery_name(services.choice.name):  # a replaced base may be named otherwise
        services.use_default_gallery(demo_gallery_name(info.name))
    changes = getattr(inner, "config_changes", [])
    fixed = f"; BLIP values enforced on the base config ({len(changes)} changes)" if changes else ""
    return f"{info.name} · {info.weights or info.checkpoint} on {info.device} ({info.dtype}){fixed}"


def prepare_compute_step(services: Services) -> str:
    """Build the image tower's backend before anyone searches: on CPU an OpenVINO export of the ViT (minutes
    on the first start, then read from the compile cache), so no visitor's query pays for it."""
    backend = services.encoder_unchecked.info.backend or "model's"
    services.startup.progress(
        "compute",
        f"building the {backend} image tower (a one-time export can take minutes; later starts "
        "reuse it from the compile cache)",
    )
    t0 = time.perf_counter()
    what = services.encoder_unchecked.prepare_compute()
    return f"{what or 'nothing to build'} ({time.perf_counter() - t0:.0f} s)"


def gallery_sources_step(services: Services) -> str:
    """``COVR_GALLERY_REPO`` and ``COVR_GALLERY_DIRS``: verified galleries join the list; problems are
    reported (the step fails with the message when a source gave nothing) but never stop the app."""
    opts, info = services.options, services.encoder_unchecked.info
    reports = []
    if opts.gallery_repo:
        reports.append(
            fetch_repo_galleries(
                opts.gallery_repo, services.data_dir, info, services.startup.reporter("galleries")
            )
        )
    if opts.gallery_dirs:
        rep = mounted_galleries(opts.gallery_dirs, info)
        services.add_gallery_folders(rep.galleries)
        reports.append(rep)
    text = " · ".join(r.message() for r in reports)
    if any(r.error for r in reports):
        raise RuntimeError(text + ". The bundled demo gallery still works.")
    return text


def _default_gallery_ok(services: Services) -> str:
    """Check the default gallery now loads; fall back to the demo gallery (with a note) when it does not."""
    info = services.encoder_unchecked.info
    entries = services.gallery_entries()
    name = services.default_gallery
    try:
        if name not in entries:
            raise KeyError(f"gallery {name!r} was not found (have {sorted(entries)})")
        Gallery.load(entries[name].folder, expected=info)
        return ""
    except (KeyError, GalleryError) as exc:
        demo = demo_gallery_name(info.name)
        if name == demo or demo not in entries:
            raise
        services.use_default_gallery(demo)
        why = public_message(str(exc.args[0] if exc.args else exc), services)
        return f"default gallery: {why}; using {demo}"


def run_startup(services: Services, demo: DemoBuilder | None = None,
                on_galleries: Callable[[], None] | None = None) -> None:
    """Run every start-up step of ``services`` (blocking; see the module docstring).

    ``demo`` writes the bundled demo's folders (without one, those steps are skipped and only galleries that
    exist already are searched); ``on_galleries`` is called whenever new gallery folders may exist (the page
    then serves their media)."""
    st = services.startup
    t0 = time.perf_counter()
    if not _run_step(services, "encoder", lambda: load_encoder_step(services), fatal=True):
        return
    if services.choice is not None and services.choice.family == "blip":
        _run_step(services, "compute", lambda: prepare_compute_step(services))  # a failure: built on first use
    if services.options.gallery_repo or services.options.gallery_dirs:
        _run_step(services, "galleries", lambda: gallery_sources_step(services))
        if on_galleries:
            on_galleries()
    encoder = services.encoder_unchecked
    demo_ok = demo is not None and _run_step(
        services, "demo", lambda: demo.gallery(encoder, st.reporter("demo")).name
    )
    if demo is None:
        st.skip("demo", "no demo builder")
    if on_galleries:
        on_galleries()
    note = ""
    try:
        note = _default_gallery_ok(services)
    except Exception as exc:  # noqa: BLE001 - nothing to search in: the page says why
        st.fail_startup(public_message(f"no gallery to search: {exc.args[0] if exc.args else exc}", services))
        return
    if note:
        st.progress("demo", note, 1.0)
        st.finish("demo", note)
    st.mark_ready()
    log.info("ready to search after %.1f s of start-up", time.perf_counter() - t0)
    if demo_ok:
        _run_step(services, "map", lambda: demo.map(encoder))
        _run_step(services, "benchmarks",
                  lambda: ", ".join(demo.benchmarks(encoder, st.reporter("benchmarks"))) or "none")
    else:
        st.skip("map", "no demo gallery")
        st.skip("benchmarks", "no demo gallery")
    if demo is not None:
        _run_step(services, "filter", lambda: str(getattr(demo.filter_run(), "name", "no bundled WebVid assets")))
    else:
        st.skip("filter", "no demo builder")
    st.mark_done()
    log.info("start-up finished after %.1f s", time.perf_counter() - t0)
