"""Start-up of the real app as a Space starts it: the page first, then the weights and galleries.

The weights come by tag through the real huggingface_hub code from a pre-populated cache
(``HF_HUB_OFFLINE=1``): a tiny BLIP under ``Salesforce/blip-itm-large-coco`` with a hub-style config and a
tiny CoVR checkpoint as ``lucas-ventura/CoVR/webvid-covr.ckpt``; galleries come from a dataset repo in the
same cache (``COVR_GALLERY_REPO``), one of them damaged.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from covr_core.evaluation_folder import Evaluation

from helpers.gallery_repo import make_gallery_repo
from helpers.hub_cache import TINY_NAME, make_tiny_hub, tiny_model_config, write_tiny_model_config
from helpers.live_app import REPO_ROOT, search_parts, start_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
APPLE = REPO_ROOT / "assets" / "images" / "apple.jpg"
GALLERY_REPO = "covr-tests/fruit-galleries"


@pytest.fixture(scope="module")
def tiny_hub(tmp_path_factory):
    """HF cache with the tiny stand-ins and a gallery dataset repo; the environment the app needs."""
    from covr_core.blip_load import load_blip_encoder
    from covr_core.encoder_registry import model_cfg_from_dict

    root = tmp_path_factory.mktemp("tinyhub")
    files = make_tiny_hub(root / "hf", root / "work", checkpoints=("webvid-covr.ckpt",))
    config = write_tiny_model_config(root / "blip-tiny.json")
    # the encoder the app will load (same files, same config): it builds the repo's gallery
    enc = load_blip_encoder(
        str(files["base"]), str(files["webvid-covr.ckpt"]), model_cfg=model_cfg_from_dict(tiny_model_config())
    )
    make_gallery_repo(root / "hf", GALLERY_REPO, enc, root / "repo")
    return {"HF_HOME": str(root / "hf"), "HF_HUB_OFFLINE": "1", "COVR_MODEL_CONFIGS": str(config)}


@pytest.fixture(scope="module")
def covr_app(tiny_hub, tmp_path_factory):
    """The app as a Space runs it: no flags, everything from the environment."""
    env = {
        **tiny_hub,
        "COVR_ENCODER": TINY_NAME,
        "COVR_WEIGHTS": "webvid-covr",
        "COVR_DEVICE": "auto",
        "COVR_GALLERY_REPO": GALLERY_REPO,
        "COVR_GALLERY": "fruit-photos",
    }
    app = start_app(
        tmp_path_factory.mktemp("covr") / "data", env=env, encoder="auto", seed=False, wait="ready"
    )
    yield app
    app.stop()


def test_weights_by_tag_and_galleries_from_a_repo(covr_app):
    status = covr_app.startup_status()
    steps = {s["name"]: s for s in status["steps"]}
    assert status["ready"] and not status["error"]
    assert (
        steps["encoder"]["status"] == "done"
        and "webvid-covr (lucas-ventura/CoVR/webvid-covr.ckpt)" in steps["encoder"]["message"]
    )
    assert "BLIP values enforced" in steps["encoder"]["message"]  # the hub-style config was corrected
    assert steps["compute"]["status"] == "done" and steps["compute"]["message"].startswith("sdpa")  # tiny ViT
    gal_msg = steps["galleries"]["message"]
    assert steps["galleries"]["status"] == "done" and "fruit-photos" in gal_msg
    assert "damaged" in gal_msg and "sha256" in gal_msg  # the damaged copy was refused, with the reason
    assert str(covr_app.data_dir) not in gal_msg  # no server paths in the page
    assert Evaluation.load(covr_app.data_dir / "evaluations" / "repo-eval").combiners == ["AVG"]
    assert not (covr_app.data_dir / "galleries" / "damaged").exists()


def test_search_runs_on_the_repo_gallery_and_serves_its_media(covr_app):
    from gradio_client import handle_file

    client = covr_app.client()
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/search"]
    assert api["parameters"][4]["parameter_default"] == "fruit-photos"  # COVR_GALLERY from the repo
    result = client.predict(
        handle_file(str(APPLE)), None, "make it an orange", "AVG", "fruit-photos", 3, api_name="/search"
    )
    gallery, status, record = search_parts(result)
    assert record["encoder"] == TINY_NAME and record["gallery"] == "fruit-photos"
    assert len(record["results"]) == 3 and "apple" not in [r["id"] for r in record["results"]]
    image = gallery[0]["image"] if isinstance(gallery[0], dict) else gallery[0]
    url = image.get("url") if isinstance(image, dict) else None
    assert url, gallery[0]
    r = httpx.get(url if url.startswith("http") else covr_app.url + url.lstrip("/"), timeout=60)
    assert r.status_code == 200 and r.content[:3] == b"\xff\xd8\xff"  # the repo's JPEG, served


def test_bad_gallery_repo_is_reported_and_the_demo_gallery_works(tmp_path):
    env = {"COVR_GALLERY_REPO": "nobody/no-such-galleries", "HF_HOME": str(tmp_path / "empty-hf")}
    app = start_app(tmp_path / "data", env=env, encoder="lite", wait="ready")
    try:
        status = app.startup_status()
        step = next(s for s in status["steps"] if s["name"] == "galleries")
        assert status["ready"] and step["status"] == "failed"
        assert "nobody/no-such-galleries" in step["message"] and "could not be downloaded" in step["message"]
        assert "demo gallery still works" in step["message"]
        from gradio_client import handle_file

        result = app.client().predict(
            handle_file(str(APPLE)), None, "make it an orange", "AVG", "demo-lite", 4, api_name="/search"
        )
        assert len(search_parts(result)[2]["results"]) == 4
    finally:
        app.stop()


@pytest.mark.parametrize("silent_hub", [False, True], ids=["offline", "silent-hub"])
def test_explicit_blip_without_weights_exits_with_a_clear_error(tmp_path, silent_hub):
    """No weights anywhere: `python app.py --encoder blip` stops at once with advice (exit code 2)."""
    import socket

    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "COVR_DATA_DIR": str(tmp_path / "data"),
        "GRADIO_SERVER_PORT": "1",
        "HF_HUB_OFFLINE": "1",
    }
    sock = None
    if silent_hub:  # online, but the hub accepts connections and never answers
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        env.pop("HF_HUB_OFFLINE")
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "app.py", "--encoder", "blip"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        elapsed = time.monotonic() - t0
    finally:
        if sock is not None:
            sock.close()
    print(f"exited after {elapsed:.1f} s")  # recorded for the report; no timing assertion
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: the blip-large encoder was requested but" in proc.stderr
    assert "hf download lucas-ventura/CoVR webvid-covr.ckpt" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.browser
def test_the_page_shows_start_up_progress_then_searches(browser, tmp_path, output_dir):
    """A visitor arriving during a cold start sees the progress, a clear answer from Search, then results."""
    app = start_app(tmp_path / "data", encoder="lite", seed=False, wait="page")
    try:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.goto(app.url, wait_until="domcontentloaded")
        page.wait_for_selector("#search-btn", timeout=120_000)
        panel = page.locator("#startup-status")
        page.wait_for_function(
            "() => document.querySelector('#startup-status')?.innerText.includes('Starting')", timeout=60_000
        )
        assert "Search works as soon as the model is ready" in panel.inner_text()
        assert not app.startup_status()["ready"]  # the page answered before the app was ready
        page.fill("#mod-text textarea", "make it an orange")
        page.click("#search-btn")
        toast = page.locator(".toast-body").filter(has_text="not ready yet").first
        toast.wait_for(timeout=60_000)
        assert "progress is shown at the top of the page" in toast.inner_text()
        page.screenshot(path=str(output_dir / "startup-not-ready.png"))
        page.wait_for_function(
            "() => document.querySelector('#startup-status')?.innerText.includes('Ready')",
            timeout=1_800_000,
            polling=1000,
        )
        page.screenshot(path=str(output_dir / "startup-ready.png"))
        page.set_input_files("#ref-image input[type=file]", str(APPLE))
        page.wait_for_selector("#ref-status :text('Reference encoded')", timeout=120_000)
        page.click("#search-btn")
        page.wait_for_selector("#search-status :text('results')", timeout=120_000)
        assert page.locator("#results .thumbnail-item").count() == 12
        page.locator("#covr-details").get_by_text("Encoder, checkpoint and gallery").click()  # the details panel
        header = page.locator("#covr-header").inner_text()
        assert "Encoder" in header and "lite" in header and "demo-lite" in header
        page.screenshot(path=str(output_dir / "startup-searched.png"))
        app.wait_startup("done")
        page.wait_for_selector("#startup-status", state="hidden", timeout=60_000)  # gone once all is done
        ctx.close()
    finally:
        app.stop()
