"""App benchmarks: process start -> first page answer -> ready -> first search answered; /search round
trips; page load in Chromium.

    python bench/bench_app.py [--encoder lite] [--tiny-blip] [--blip-large-random] [--repeats 10]

Prints one JSON line per case: ``{"bench": "app", "case": ..., "encoder": ..., ...}``.

``start`` cases time one process from ``Popen``: ``page_s`` (the page answers HTTP 200), ``ready_s``
(``/startup_status`` says Search works), ``first_search_s`` (the first /search answered after that,
reference upload included) and ``done_s`` (map and mini benchmark too). Cold = a fresh data folder (the
demo gallery is built), warm = the same folder again. ``--blip-large-random`` runs a BLIP-L-sized model
with random weights through the real weight path: a hub-style base config under
``Salesforce/blip-itm-large-coco`` and a 1.8 GB CoVR-format ``webvid-covr.ckpt`` under
``lucas-ventura/CoVR`` in a temporary Hugging Face cache, ``HF_HUB_OFFLINE=1``, ``--weights webvid-covr``.
``--device`` is passed as ``COVR_DEVICE`` (``auto`` = cuda when present).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.helpers.live_app import CHROMIUM, CHROMIUM_ARGS, start_app

REPO = Path(__file__).resolve().parent.parent
IMAGE = REPO / "assets" / "images" / "apple.jpg"
TEXTS = [
    "make it an orange",
    "make it green",
    "show two of them",
    "on a white plate",
    "cut in half",
    "in a basket",
    "make it red",
    "a smaller one",
    "with leaves",
    "seen from above",
]


def emit(case: str, encoder: str, **values) -> None:
    """One JSON line on stdout."""
    print(
        json.dumps(
            {
                "bench": "app",
                "case": case,
                "encoder": encoder,
                "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(),
                **values,
            }
        ),
        flush=True,
    )


def _search_once(url: str, gallery: str | None = None) -> dict:
    from gradio_client import Client, handle_file

    c = Client(url, verbose=False)
    if gallery is None:
        api = c.view_api(return_format="dict", print_info=False)["named_endpoints"]["/search"]
        gallery = api["parameters"][4]["parameter_default"]
    out = c.predict(handle_file(str(IMAGE)), None, TEXTS[0], "AVG", gallery, 12, api_name="/search")
    return next(v for v in out if isinstance(v, dict) and "results" in v)


def bench_start(label: str, encoder: str, env_extra: dict, data: Path, temperature: str) -> dict:
    """One process start: page, ready, first search, done (seconds from Popen)."""
    t0 = time.perf_counter()
    app = start_app(data, env=env_extra, encoder=encoder, timeout=7200, seed=False, poll_s=0.05, wait="page")
    page_s = time.perf_counter() - t0
    try:
        status = app.wait_startup("ready", timeout=7200, poll_s=0.25)
        ready_s = time.perf_counter() - t0
        record = _search_once(app.url)
        first_search_s = time.perf_counter() - t0
        app.wait_startup("done", timeout=7200, poll_s=0.5)
        done_s = time.perf_counter() - t0
        steps = {s["name"]: s["seconds"] for s in app.startup_status()["steps"]}
        emit(
            "start",
            label,
            start=temperature,
            page_s=round(page_s, 2),
            ready_s=round(ready_s, 2),
            first_search_s=round(first_search_s, 2),
            done_s=round(done_s, 2),
            steps_s=steps,
            results=len(record["results"]),
            device=status.get("header", "").split("**device** `")[-1][:6],
            note="seconds from process start (Popen)",
        )
        return {"url": app.url, "app": app}
    except Exception:
        app.stop()
        raise


def bench_search(url: str, encoder: str, repeats: int) -> None:
    """/search round trips after /encode_reference (text pass only)."""
    from gradio_client import Client, handle_file

    c = Client(url, verbose=False)
    gallery = c.view_api(return_format="dict", print_info=False)["named_endpoints"]["/search"]["parameters"][
        4
    ]["parameter_default"]
    img = handle_file(str(IMAGE))
    t0 = time.perf_counter()
    c.predict(img, None, api_name="/encode_reference")
    emit("encode_reference_roundtrip", encoder, seconds=round(time.perf_counter() - t0, 4))
    times, server = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        out = c.predict(img, None, TEXTS[i % len(TEXTS)], "AVG", gallery, 12, api_name="/search")
        times.append(time.perf_counter() - t0)
        server.append(float(re.findall(r" in (\d+) ms", out[2])[-1]) / 1000)
    emit(
        "search_roundtrip_prepared",
        encoder,
        repeats=repeats,
        median_s=round(statistics.median(times), 4),
        max_s=round(max(times), 4),
        server_median_s=round(statistics.median(server), 4),
        note="HTTP round trip via gradio_client incl. upload of the reference file; server_* = encode+search",
    )


def bench_page(url: str, encoder: str, repeats: int = 5) -> None:
    """Chromium: time to an interactive Search button and to a drawn map; click-to-results of Search
    after the upload was encoded."""
    if not Path(CHROMIUM).exists():
        emit("page_load", encoder, skipped="no chromium")
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for attempt in ("first", "second"):
            pg = b.new_page()
            t0 = time.perf_counter()
            pg.goto(url)
            pg.wait_for_selector("#search-btn", timeout=120_000)
            t_ui = time.perf_counter() - t0
            pg.get_by_role("tab", name="Explore").click()  # tabs render lazily
            pg.get_by_role("tab", name="Map").click()
            pg.wait_for_selector("#covr-map .scatterlayer .point", state="attached", timeout=120_000)
            emit(
                "page_load",
                encoder,
                visit=attempt,
                interactive_s=round(t_ui, 3),
                map_drawn_s=round(time.perf_counter() - t0, 3),
            )
            pg.close()
        pg = b.new_page()
        pg.goto(url)
        pg.wait_for_selector("#search-btn", timeout=120_000)
        pg.set_input_files("#ref-image input[type=file]", str(IMAGE))
        pg.wait_for_selector("#ref-status :text('Reference encoded')", timeout=120_000)
        times = []
        for i in range(repeats):
            pg.fill("#mod-text textarea", TEXTS[i % len(TEXTS)])
            before = pg.locator("#search-status").inner_text()
            t0 = time.perf_counter()
            pg.click("#search-btn")
            pg.wait_for_function(
                "([sel, old]) => { const t = document.querySelector(sel).innerText;"
                " return t.includes('results') && t !== old; }",
                arg=["#search-status", before],
                timeout=120_000,
                polling=10,
            )
            times.append(time.perf_counter() - t0)
        emit(
            "click_to_results",
            encoder,
            repeats=repeats,
            median_s=round(statistics.median(times), 4),
            max_s=round(max(times), 4),
            note="Chromium: Search click -> status updated, reference pre-encoded",
        )
        b.close()


def bench_no_weights(env_extra: dict) -> None:
    """``--encoder blip`` with no weights reachable: seconds until the process exits with its message."""
    with tempfile.TemporaryDirectory(prefix="covr-bench-nohub-") as tmp:
        env = {
            **os.environ,
            "HF_HOME": str(Path(tmp) / "hf"),
            "COVR_DATA_DIR": str(Path(tmp) / "data"),
            "HF_HUB_OFFLINE": "1",
            **env_extra,
        }
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "app.py", "--encoder", "blip"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        emit(
            "blip_without_weights",
            "blip-large",
            seconds=round(time.perf_counter() - t0, 2),
            exit_code=proc.returncode,
            message=proc.stderr.strip().splitlines()[-1][:160],
        )


def run_encoder(label: str, encoder: str, env_extra: dict, repeats: int, interactive: bool = True) -> None:
    """Cold start, warm start (+ search and page load on the warm server) for one encoder."""
    with tempfile.TemporaryDirectory(prefix="covr-bench-") as tmp:
        data = Path(tmp) / "data"
        bench_start(label, encoder, env_extra, data, "cold")["app"].stop()
        warm = bench_start(label, encoder, env_extra, data, "warm")
        try:
            if interactive:
                bench_search(warm["url"], label, repeats)
                bench_page(warm["url"], label)
        finally:
            warm["app"].stop()


def main(argv: list[str] | None = None) -> None:
    """Run the cases."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", default="lite", help="encoder of the main run")
    p.add_argument("--tiny-blip", action="store_true", help="also run with a tiny random-weight BLIP")
    p.add_argument(
        "--blip-large-random",
        action="store_true",
        help="also run a BLIP-L-sized random model through the real weight path (slow on CPU)",
    )
    p.add_argument("--device", default="auto", help="COVR_DEVICE of the servers (auto = cuda when present)")
    p.add_argument("--repeats", type=int, default=10, help="/search calls to time")
    p.add_argument("--url", default=None, help="measure a running server (skips the start-up cases)")
    a = p.parse_args(argv)
    env = {"COVR_DEVICE": a.device}
    if a.url:
        bench_search(a.url, a.encoder, a.repeats)
        bench_page(a.url, a.encoder)
        return
    bench_no_weights(env)
    run_encoder(a.encoder, a.encoder, env, a.repeats)
    if a.tiny_blip:
        from tests.helpers.tiny_blip import make_tiny_blip_folder

        with tempfile.TemporaryDirectory(prefix="covr-tinyblip-") as tmp:
            folder = make_tiny_blip_folder(Path(tmp) / "tiny")
            run_encoder("blip-tiny", "blip", {**env, "COVR_BLIP_SOURCE": str(folder)}, a.repeats)
    if a.blip_large_random:
        from tests.helpers.hub_cache import make_blip_large_random_hub

        with tempfile.TemporaryDirectory(prefix="covr-blipl-") as tmp:
            t0 = time.perf_counter()
            make_blip_large_random_hub(Path(tmp) / "hf", Path(tmp) / "work")
            emit(
                "make_blip_large_random_hub", "blip-large-random", seconds=round(time.perf_counter() - t0, 1)
            )
            hub = {
                **env,
                "HF_HOME": str(Path(tmp) / "hf"),
                "HF_HUB_OFFLINE": "1",
                "COVR_WEIGHTS": "webvid-covr",
            }
            run_encoder("blip-large-random", "blip-large", hub, a.repeats, interactive=False)


if __name__ == "__main__":
    main()
