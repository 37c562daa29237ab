"""Encoder selection: blip / lite / auto, offline fallback with a reason, never hanging on the network.

``auto`` wants the real CoVR model: the BLIP-L base config (Salesforce/blip-itm-large-coco) plus the
webvid-covr checkpoint (lucas-ventura/CoVR); the base alone is not CoVR and does not count."""

from __future__ import annotations

import http.server
import socket
import threading
from pathlib import Path

import pytest

from covr_core import pretrained
from covr_core.factory import (
    BLIP_HUB_ID,
    EncoderChoice,
    create_encoder,
    list_encoders,
    resolve_encoder_choice,
)
from covr_core.pretrained import WeightsUnavailableError

COVR_HUB_ID = "lucas-ventura/CoVR"


@pytest.fixture
def offline_env(tmp_path, monkeypatch):
    """No network, an empty Hugging Face cache, no encoder overrides."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "COVR_ENCODER",
                "COVR_BLIP_SOURCE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def no_probe(monkeypatch):
    """Fail the test if a hub probe is attempted."""
    def refuse(*args, **kwargs):
        raise AssertionError("the hub must not be probed here")

    monkeypatch.setattr(pretrained, "probe_urls", refuse)


def _fake_hf_cache(hf_home: Path, repo_id: str, files=("config.json", "model.safetensors")) -> Path:
    """A real Hugging Face cache layout (models--org--name/{refs,snapshots}) with tiny files."""
    repo = Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))
    rev = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(rev)
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True)
    for name in files:
        (snap / name).write_text("{}")
    return snap


def test_list_encoders():
    assert list_encoders() == ["blip-large", "lite", "blip", "blip-l"]


def test_auto_falls_back_to_lite_offline_and_says_why(offline_env, no_probe):
    choice = resolve_encoder_choice("auto")
    assert isinstance(choice, EncoderChoice)
    assert choice.name == "lite" and choice.fallback
    assert BLIP_HUB_ID in choice.reason
    assert "HF_HUB_OFFLINE" in choice.reason
    assert "hf download" in choice.reason and "COVR_BLIP_SOURCE" in choice.reason
    assert "huggingface-cli" not in choice.reason  # huggingface_hub 2.x ships `hf`


def test_auto_picks_covr_from_the_local_cache_without_network(offline_env, no_probe):
    _fake_hf_cache(offline_env / "hf_home", BLIP_HUB_ID, files=("config.json",))
    _fake_hf_cache(offline_env / "hf_home", COVR_HUB_ID, files=("webvid-covr.ckpt",))
    choice = resolve_encoder_choice("auto")
    assert choice.name == "blip-large" and not choice.fallback
    assert choice.weights == f"webvid-covr ({COVR_HUB_ID}/webvid-covr.ckpt)"
    assert choice.plan.base == BLIP_HUB_ID
    assert "found locally" in choice.reason


def test_the_bare_base_is_not_the_covr_model(offline_env, no_probe):
    """BLIP-L COCO weights alone are CoVR's initialisation, not CoVR: auto does not pick them."""
    _fake_hf_cache(offline_env / "hf_home", BLIP_HUB_ID)
    choice = resolve_encoder_choice("auto")
    assert choice.name == "lite" and "webvid-covr.ckpt" in choice.reason


def test_local_folder_source(offline_env, no_probe, monkeypatch):
    folder = offline_env / "blip"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setenv("COVR_BLIP_SOURCE", str(folder))
    choice = resolve_encoder_choice("auto")
    assert choice.name == "lite" and "no model weights" in choice.reason
    (folder / "model.safetensors").write_bytes(b"")
    choice = resolve_encoder_choice("auto")
    assert choice.name == "blip-large" and choice.plan.base == str(folder) and choice.plan.base_has_weights
    monkeypatch.setenv("COVR_BLIP_SOURCE", str(offline_env / "missing"))
    choice = resolve_encoder_choice("auto")
    assert choice.name == "lite" and "does not exist" in choice.reason


def test_env_and_explicit_names(offline_env, no_probe, monkeypatch):
    monkeypatch.setenv("COVR_ENCODER", "lite")
    assert resolve_encoder_choice("auto").name == "lite"
    assert resolve_encoder_choice(None).name == "lite"
    assert not resolve_encoder_choice(None).fallback
    monkeypatch.setenv("COVR_ENCODER", "blip")
    with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE"):  # explicit blip: no silent fallback
        resolve_encoder_choice(None)
    assert resolve_encoder_choice("lite").name == "lite"  # an explicit name beats the environment
    monkeypatch.setenv("COVR_ENCODER", "clip")
    with pytest.raises(ValueError, match="unknown encoder 'clip'"):
        resolve_encoder_choice(None)


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_HEAD(self):  # noqa: N802 - http.server API
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def local_hub(offline_env, monkeypatch):
    """An HTTP server on 127.0.0.1 standing in for the hub endpoint (HF_ENDPOINT)."""
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def start(status: int):
        handler = type("H", (_Handler,), {"status": status})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        servers.append(server)

    servers: list = []
    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def test_probe_reachable_hub_picks_blip(local_hub):
    local_hub(200)
    choice = resolve_encoder_choice("auto")
    assert choice.name == "blip-large" and "will be downloaded from the model hub" in choice.reason


def test_probe_missing_repo_falls_back(local_hub):
    local_hub(404)
    choice = resolve_encoder_choice("auto")
    assert choice.name == "lite" and choice.fallback and "HTTP 404" in choice.reason


@pytest.fixture
def silent_hub(offline_env, monkeypatch):
    """A hub endpoint that accepts connections but never answers; the probe's time limit is 0.3 s."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{sock.getsockname()[1]}")
    monkeypatch.setenv("COVR_HUB_PROBE_TIMEOUT", "0.3")
    yield
    sock.close()


def test_probe_gives_up_on_a_silent_server(silent_hub):
    """A server that accepts connections but never answers: the probe stops at its time limit."""
    choice = resolve_encoder_choice("auto")
    assert choice.name == "lite" and choice.fallback
    assert "could not be reached" in choice.reason or "did not answer" in choice.reason


def test_explicit_blip_without_weights_fails_fast_with_advice(offline_env, no_probe):
    with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE") as err:
        create_encoder("blip")
    assert f"hf download {COVR_HUB_ID} webvid-covr.ckpt" in str(err.value)


def test_explicit_blip_with_a_silent_hub_gives_up(silent_hub):
    """No weights cached, a hub that never answers: the probe's time limit ends it with a clear error."""
    with pytest.raises(WeightsUnavailableError, match="could not be reached|did not answer within"):
        create_encoder("blip")


def test_checkpoint_needs_blip(offline_env, no_probe):
    with pytest.raises(ValueError, match="needs a BLIP encoder"):
        create_encoder("lite", checkpoint="covr.ckpt")


@pytest.mark.slow
def test_create_encoder_auto_offline_loads_lite(offline_env, no_probe):
    from covr_core.lite import LiteEncoder

    enc = create_encoder("auto")
    assert isinstance(enc, LiteEncoder)
    assert enc.info.name == "lite" and not enc.info.fused
