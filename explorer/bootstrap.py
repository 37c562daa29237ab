"""The slow part of start-up, run after the server answers: weights, the image tower's one-time build (an
OpenVINO export on CPU), gallery sources, demo gallery, map, mini benchmark — each a step of
``services.startup`` that the page shows.

``run_startup(services)`` runs in the main thread (``app.py`` launches Gradio with
``prevent_thread_lock=True`` first): on ZeroGPU, CUDA placement must happen in the main thread, where the
``spaces`` package emulates CUDA. Search becomes ready as soon as the encoder is loaded and the default
gallery is there; the map and the mini benchmark follow in the background of the page.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from explorer.services import ASSETS_DIR, REPO_ROOT, Services

log = logging.getLogger(__name__)


def public_message(text: str, services: Services) -> str:
    """``text`` without server paths (the data folder, the hub cache, the repository, home) for the page."""
    from covr_core.pretrained import hf_cache_dir

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
    from covr_core.combiners import load_mlp_combiner
    from covr_core.factory import load_choice

    opts = services.options
    report = services.startup.reporter("encoder")
    inner = load_choice(services.choice, opts.device, opts.dtype, report)
    mlp = load_mlp_combiner(opts.mlp) if opts.mlp else None
    services.set_encoder(inner, mlp)
    info = services.encoder_unchecked.info
    if services.default_gallery == f"demo-{services.choice.name}":  # a replaced base may be named otherwise
        services.default_gallery = f"demo-{info.name}"
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
    from explorer.gallery_sources import fetch_repo_galleries, mounted_galleries

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
        services.extra_galleries.extend(p for p in rep.galleries if p not in services.extra_galleries)
        reports.append(rep)
    text = " · ".join(r.message() for r in reports)
    if any(r.error for r in reports):
        raise RuntimeError(text + ". The bundled demo gallery still works.")
    return text


def ensure_demo_gallery(services: Services, report: Any = None) -> Path:
    """Build the bundled demo gallery for this encoder under ``<data>/galleries/demo-<encoder>/`` once.

    A cached demo gallery built by another encoder version or weights is rebuilt (with its mini-benchmark
    results). ``report(message, fraction)`` receives the progress."""
    from covr_core.gallery import Gallery, GalleryError
    from precompute.gallery import build_demo_gallery

    info = services.encoder_unchecked.info
    folder = services.data_dir / "galleries" / f"demo-{info.name}"
    if (folder / "manifest.json").exists():
        try:
            Gallery.load(folder, expected=info)
        except GalleryError as exc:
            log.warning("rebuilding the cached demo gallery: %s", exc)
            shutil.rmtree(folder)
            for sub in ("queries", "evaluations"):
                for stale in (services.data_dir / sub).glob(f"mini-*-{info.name}*"):
                    shutil.rmtree(stale, ignore_errors=True)
    if not (folder / "manifest.json").exists():
        t0 = time.perf_counter()
        log.info("building the demo gallery in %s (first start)", folder)

        def progress(done: int, total: int) -> None:
            if report is not None and total:
                report(f"encoding the bundled demo media: {done}/{total} items", done / total)
            if total and (done == total or done % 16 == 0):
                log.info("demo gallery: %d/%d items encoded", done, total)

        build_demo_gallery(services.encoder_unchecked, folder, on_progress=progress)
        log.info("demo gallery built in %.1f s", time.perf_counter() - t0)
    return folder


def ensure_demo_map(services: Services) -> str:
    """The demo gallery's 2-D map (``umap.parquet``) once (optional: the Map view needs it)."""
    from precompute.umap import run as umap_run

    folder = services.data_dir / "galleries" / f"demo-{services.encoder_unchecked.info.name}"
    if (folder / "umap.parquet").exists():
        return "cached"
    t0 = time.perf_counter()
    umap_run(gallery=str(folder))
    return f"computed in {time.perf_counter() - t0:.0f} s"


def ensure_demo_benchmarks(services: Services, report: Any = None) -> list[str]:
    """Evaluate the bundled mini benchmark (CIRR and WebVid format) on the demo gallery once.

    Runs ``precompute.queries`` and ``precompute.evaluate`` into ``<data>/queries/`` and
    ``<data>/evaluations/``; a failure is logged and the Explore tab simply lists fewer benchmarks."""
    from covr_core.evaluation_folder import Evaluation
    from precompute import evaluate, queries

    info = services.encoder_unchecked.info
    gallery = services.data_dir / "galleries" / f"demo-{info.name}"
    bench = ASSETS_DIR / "benchmark"
    plans = {
        "cirr": dict(dataset="cirr", root=str(bench / "cirr"), split="demo"),
        "webvid": dict(
            dataset="webvid", csv=str(bench / "webvid" / "webvid-covr_demo.csv"), video_root=str(ASSETS_DIR)
        ),
    }
    done = []
    for i, (kind, plan) in enumerate(plans.items()):
        name = f"mini-{kind}-{info.name}"
        out = services.data_dir / "evaluations" / name
        if Evaluation.exists(out):
            done.append(name)
            continue
        if report is not None:
            report(f"encoding the {kind.upper()}-format queries", i / len(plans))
        qdir = services.data_dir / "queries" / name
        try:
            summary = queries.run(
                out=qdir,
                encoder=services.encoder_unchecked,
                device=info.device,
                dtype="float32",
                batch_size=16,
                argv=["(app start)"],
                **plan,
            )
            if not getattr(summary, "complete", True):
                raise RuntimeError(summary.line())
            evaluate.run(queries=qdir, gallery=gallery, benchmark=kind, out=out, top_k=12)
            done.append(name)
        except Exception as exc:  # noqa: BLE001 - optional at start-up, the app works without it
            log.warning("mini benchmark %s not evaluated: %s", name, exc)
    return done


def _default_gallery_ok(services: Services) -> str:
    """Check the default gallery now loads; fall back to the demo gallery (with a note) when it does not."""
    from covr_core.gallery import Gallery, GalleryError

    info = services.encoder_unchecked.info
    entries = services.gallery_entries()
    name = services.default_gallery
    try:
        if name not in entries:
            raise KeyError(f"gallery {name!r} was not found (have {sorted(entries)})")
        Gallery.load(entries[name].folder, expected=info)
        return ""
    except (KeyError, GalleryError) as exc:
        demo = f"demo-{info.name}"
        if name == demo or demo not in entries:
            raise
        services.default_gallery = demo
        why = public_message(str(exc.args[0] if exc.args else exc), services)
        return f"default gallery: {why}; using {demo}"


def run_startup(services: Services, on_galleries: Callable[[], None] | None = None) -> None:
    """Run every start-up step of ``services`` (blocking; see the module docstring).

    ``on_galleries`` is called whenever new gallery folders may exist (the page then serves their media)."""
    st = services.startup
    t0 = time.perf_counter()
    if not _run_step(services, "encoder", lambda: load_encoder_step(services), fatal=True):
        return
    if services.choice.family == "blip":
        _run_step(services, "compute", lambda: prepare_compute_step(services))  # a failure: built on first use
    if services.options.gallery_repo or services.options.gallery_dirs:
        _run_step(services, "galleries", lambda: gallery_sources_step(services))
        if on_galleries:
            on_galleries()
    demo_ok = _run_step(
        services, "demo", lambda: str(ensure_demo_gallery(services, st.reporter("demo")).name)
    )
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
        _run_step(services, "map", lambda: ensure_demo_map(services))
        _run_step(
            services,
            "benchmarks",
            lambda: ", ".join(ensure_demo_benchmarks(services, st.reporter("benchmarks"))) or "none",
        )
    else:
        st.skip("map", "no demo gallery")
        st.skip("benchmarks", "no demo gallery")
    st.mark_done()
    log.info("start-up finished after %.1f s", time.perf_counter() - t0)
