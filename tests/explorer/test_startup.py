"""Start-up progress (``Startup``), the services before they are ready, and a start-up that fails."""

from __future__ import annotations

import dataclasses
import shutil
import threading

import pytest
from PIL import Image

from covr_core import encoder_registry as reg
from covr_core.settings import AppOptions
from explorer.header import header_markdown
from explorer.bootstrap import load_encoder_step, prepare_compute_step, public_message, run_startup
from explorer.services import Services, startup_steps
from explorer.startup import NotReadyError, Startup
from helpers.hub_cache import TINY_NAME, make_tiny_hub, tiny_model_config


def test_steps_progress_and_messages():
    st = Startup([("encoder", "Load the model weights"), ("demo", "Build the demo gallery")])
    v0 = st.version
    st.start("encoder")
    st.progress("encoder", "downloading webvid-covr.ckpt", 0.42)
    assert st.version > v0 and not st.ready
    assert st.describe() == "Load the model weights: downloading webvid-covr.ckpt (42 %)"
    with pytest.raises(NotReadyError, match="Search is not ready yet: the app is still starting .*42 %"):
        st.require_ready()
    md = st.markdown()
    assert (
        md.startswith("**Starting")
        and "◐ **Load the model weights** 42 %" in md
        and "○ **Build the demo" in md
    )
    st.finish("encoder", "blip-large · webvid-covr")
    st.reporter("demo")("encoding 3/64 items", 3 / 64)
    st.mark_ready()
    st.require_ready()  # no error once ready
    snap = st.snapshot()
    assert snap["ready"] and not snap["done"] and [s["status"] for s in snap["steps"]] == ["done", "running"]
    st.finish("demo")
    st.mark_done()
    assert st.markdown().startswith("**Ready**") and st.wait_ready(0)


def test_a_failed_start_up_says_why_everywhere():
    st = Startup([("encoder", "Load the model weights")])
    st.fail("encoder", "refusing webvid-covr: its sha256 is x")
    st.fail_startup("refusing webvid-covr: its sha256 is x")
    assert st.done and not st.ready and not st.wait_ready(5)
    with pytest.raises(NotReadyError, match="Compare is unavailable: refusing webvid-covr"):
        st.require_ready("Compare")
    assert st.markdown().startswith("**Start-up failed:** refusing")


def test_readers_and_writers_in_threads():
    st = Startup([("demo", "demo")])
    st.start("demo")

    def write():
        for i in range(200):
            st.progress("demo", f"{i}", i / 200)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(200):
        st.snapshot(), st.markdown()
    for t in threads:
        t.join()
    assert st.snapshot()["steps"][0]["status"] == "running"


@pytest.fixture
def tiny_cfg(monkeypatch):
    monkeypatch.setattr(reg, "_models", {})
    monkeypatch.setattr(reg, "_aliases", {})
    monkeypatch.setattr(reg, "_loaded_extra", set())
    cfg = reg.register_model_config(tiny_model_config())
    tags = dict(cfg.weights)
    tags["pinned"] = dataclasses.replace(tags["webvid-covr"], tag="pinned", sha256="0" * 64)
    reg.register_model_config(dataclasses.replace(cfg, weights=tags), overwrite=True)


def test_services_before_ready_and_a_refused_checkpoint(tmp_path, monkeypatch, tiny_cfg):
    """The services exist (and the header names the tag) before loading; a checkpoint whose sha256 differs
    from the tag's is refused, and the page says so without server paths."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    make_tiny_hub(tmp_path / "hf", tmp_path / "w", checkpoints=("webvid-covr.ckpt",))
    svc = Services.create(
        AppOptions(encoder=TINY_NAME, weights="pinned", device="cpu", data_dir=tmp_path / "d")
    )
    assert not svc.startup.ready
    header = header_markdown(svc)
    assert f"`{TINY_NAME}`" in header and "`pinned` (lucas-ventura/CoVR/webvid-covr.ckpt)" in header
    assert "loading" in header
    with pytest.raises(NotReadyError):
        svc.get_gallery()
    with pytest.raises(NotReadyError):
        svc.prepare_reference(object())
    assert svc.combiners() and "MLP" not in svc.combiners()
    run_startup(svc)
    snap = svc.startup.snapshot()
    assert snap["done"] and not snap["ready"] and snap["error"].startswith("refusing pinned: its sha256 is")
    assert str(tmp_path) not in snap["error"] and "<HF cache>" in snap["error"]
    assert "start-up failed" in header_markdown(svc)
    with pytest.raises(NotReadyError, match="Search is unavailable: refusing pinned"):
        svc.get_gallery()


def test_public_message_hides_server_paths(tmp_path, monkeypatch):
    from covr_core.settings import Settings

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    svc = Services(None, Settings(data_dir=tmp_path / "data"), "x")
    text = f"cannot read {tmp_path / 'data' / 'galleries' / 'g'} nor {tmp_path / 'hf' / 'hub' / 'models--a'}"
    assert public_message(text, svc) == "cannot read <data>/galleries/g nor <HF cache>/models--a"


@pytest.mark.isolated  # runs OpenVINO: in a child process (tests/conftest.py says why)
def test_image_tower_is_built_in_a_startup_step(tmp_path, monkeypatch, tiny_cfg):
    """The ViT's one-time OpenVINO export (minutes for BLIP-L on a small CPU) happens in the start-up step
    shown in the page, not on the first visitor's query; a restart reuses it from the compile cache."""
    pytest.importorskip("openvino")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COVR_VISION_BACKEND", "openvino")
    monkeypatch.setenv("COVR_COMPILE_CACHE", str(tmp_path / "compiled"))
    make_tiny_hub(tmp_path / "hf", tmp_path / "w", checkpoints=("webvid-covr.ckpt",))
    options = AppOptions(encoder=TINY_NAME, device="cpu", data_dir=tmp_path / "d")
    assert [n for n, _ in startup_steps(options, "blip")][:2] == ["encoder", "compute"]
    assert "compute" not in [n for n, _ in startup_steps(options, "lite")]
    svc = Services.create(options)
    load_encoder_step(svc)
    assert not list((tmp_path / "compiled").glob("*/vision.xml"))  # loading alone exports nothing
    message = prepare_compute_step(svc)
    assert message.startswith("openvino: OpenVINO") and svc.encoder_unchecked.info.backend == "openvino"
    exports = list((tmp_path / "compiled").glob("*/vision.xml"))
    assert len(exports) == 1
    shutil.rmtree(tmp_path / "compiled")  # were the first query to export again, a new export would appear
    svc.encoder_unchecked.inner.encode_query(Image.new("RGB", (40, 30), (200, 30, 30)), "a red one")
    assert not list((tmp_path / "compiled").glob("*/vision.xml"))
    assert svc.encoder_unchecked.info.backend == "openvino"
