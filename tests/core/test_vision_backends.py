"""Every speed path of the BLIP encoder against the hand-written BLIP forward (tiny models, std 0.02 and 0.3).

float32 paths must match the reference to float32 rounding (cosine >= 0.9999 and |diff| <= 2e-5); bfloat16
paths are lossy and held to the bounds measured for them (docs/PERFORMANCE.md). Also: how the backend is
chosen, forced and shown, the fallback when a backend cannot be built, and that an export is cached on disk.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from covr_core import vision_backends as vb
from covr_core.artifact_cache import ArtifactCache
from covr_core.blip_load import load_blip_encoder
from helpers.blip_reference import hand_query
from helpers.tiny_blip import make_tiny_blip_folder

TEXTS = ["Make it RED.", "the dog is now sitting on a (very) large sofa!", "two", "same scene at night"]
#: OpenVINO inference runs in a child process (``isolated``, tests/conftest.py says why)
OPENVINO = pytest.param("openvino", marks=pytest.mark.isolated)
#: torch.compile builds for seconds (``slow``: out of ``make test-fast``)
FLOAT32_BACKENDS = ["transformers", "sdpa", OPENVINO, "onnxruntime", pytest.param("compile", marks=pytest.mark.slow)]
#: worst cosine to the float32 reference measured for bfloat16 paths on these tiny models (f_mm is the worst),
#: with a margin; BLIP-L-size numbers are in docs/PERFORMANCE.md
BF16_MIN_COSINE = {0.02: 0.9997, 0.3: 0.99}


@pytest.fixture(scope="module", params=[0.02, 0.3], ids=["std0.02", "std0.3"])
def folder(request, tmp_path_factory):
    return make_tiny_blip_folder(tmp_path_factory.mktemp(f"tiny{request.param}"), seed=3, std=request.param), request.param


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    sizes = [(70, 50), (48, 48), (33, 90), (64, 64)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("COVR_COMPILE_CACHE", str(tmp_path_factory.getbasetemp() / "compiled"))
    monkeypatch.delenv(vb.ENV_VAR, raising=False)


def _available(backend: str) -> None:
    for module in {"openvino": "openvino", "onnxruntime": "onnxruntime onnx"}.get(backend, "").split():
        pytest.importorskip(module)


def _cosines(enc, images, reference_enc) -> dict[str, float]:
    """Worst cosine per embedding between the encoder's batched and single queries and the hand forward."""
    batched = enc.encode_queries(images, TEXTS)
    worst = {"f_mm": 1.0, "f_img": 1.0, "f_txt": 1.0}
    for i, (img, text) in enumerate(zip(images, TEXTS)):
        single = enc.encode_query(img, text)
        for name, ref in zip(worst, hand_query(reference_enc, img, text)):
            for got in (getattr(batched, name)[i], getattr(single, name)):
                worst[name] = min(worst[name], float(got @ ref / np.linalg.norm(ref)))
    return worst


@pytest.mark.parametrize("backend", FLOAT32_BACKENDS)
def test_float32_backends_match_hand_forward(folder, images, backend):
    _available(backend)
    path, _std = folder
    if backend == "compile" and _std == 0.02:
        pytest.skip("torch.compile is slow to build; checked once (std 0.3)")
    enc = load_blip_encoder(str(path), vision_backend=backend)
    assert enc.info.backend == backend
    for img, text in zip(images[:1] if backend == "compile" else images, TEXTS):
        q = enc.encode_queries([img], [text])
        for name, ref in zip(("f_mm", "f_img", "f_txt"), hand_query(enc, img, text)):
            np.testing.assert_allclose(getattr(q, name)[0], ref, atol=2e-5, err_msg=f"{backend} {name}")
    if backend != "compile":  # compile: one input shape only (each new batch size compiles again)
        assert min(_cosines(enc, images, enc).values()) >= 0.9999
    assert enc.info.backend == backend  # built without falling back


@pytest.mark.parametrize("backend", ["sdpa", OPENVINO, "transformers"])
def test_bfloat16_backends_within_measured_bound(folder, images, backend):
    _available(backend)
    path, std = folder
    enc = load_blip_encoder(str(path), dtype="bfloat16", vision_backend=backend)
    reference = load_blip_encoder(str(path), vision_backend="transformers")
    worst = _cosines(enc, images, reference)
    assert enc.info.backend == backend and enc.info.dtype == "bfloat16"
    assert min(worst.values()) >= BF16_MIN_COSINE[std], worst
    assert min(worst.values()) < 0.999999  # really computed in bfloat16


@pytest.mark.isolated
def test_gallery_batches_match_single_images(folder, images):
    path, _ = folder
    enc = load_blip_encoder(str(path), vision_backend="openvino" if _has("openvino") else "sdpa")
    batch = enc.encode_images(images * 3)  # one forward of 12 images (dynamic batch in the export)
    singles = np.stack([enc.encode_images([img])[0] for img in images])
    np.testing.assert_allclose(batch, np.concatenate([singles] * 3), atol=2e-5)


# ------------------------------------------------------------------------------ choosing the backend
def test_auto_backend_choice(folder, monkeypatch):
    path, _ = folder
    enc = load_blip_encoder(str(path))
    assert enc.info.backend == "sdpa"  # tiny ViT: the export would not pay back
    vm = enc.model.vision_model
    monkeypatch.setattr(vm.config, "hidden_size", 1024)  # a real-size ViT on CPU
    assert vb.resolve_backend(None, vm) == ("openvino" if _has("openvino") else "sdpa")
    monkeypatch.setattr(vb, "_has_module", lambda name: False)
    assert vb.resolve_backend("auto", vm) == "sdpa"


def test_env_var_forces_backend_and_unknown_names_are_refused(folder, monkeypatch):
    path, _ = folder
    monkeypatch.setenv(vb.ENV_VAR, "transformers")
    assert load_blip_encoder(str(path)).info.backend == "transformers"
    assert load_blip_encoder(str(path), vision_backend="sdpa").info.backend == "sdpa"  # argument beats env
    monkeypatch.setenv(vb.ENV_VAR, "tensorrt")
    with pytest.raises(ValueError, match="unknown vision backend 'tensorrt'.*openvino"):
        load_blip_encoder(str(path))


def test_unavailable_backend_falls_back_to_sdpa_and_says_so(folder, images, caplog):
    path, _ = folder
    enc = load_blip_encoder(str(path), dtype="bfloat16", vision_backend="onnxruntime")  # ORT: float32 only
    assert enc.info.backend == "onnxruntime"
    q = enc.encode_query(images[0], TEXTS[0])
    assert enc.info.backend == "sdpa" and "onnxruntime unavailable" in enc._vision.detail
    assert "onnxruntime unavailable" in caplog.text
    assert np.isfinite(q.f_img).all()


def test_header_shows_backend(folder, tmp_path):
    from covr_core.settings import Settings
    from explorer.header import header_markdown
    from explorer.services import Services

    path, _ = folder
    enc = load_blip_encoder(str(path), dtype="bfloat16", vision_backend="sdpa")
    services = Services(enc, Settings(data_dir=tmp_path), "none")
    assert "**compute** `sdpa bfloat16`" in header_markdown(services)


# ------------------------------------------------------------------------------ export cache
@pytest.mark.isolated
def test_openvino_export_is_cached_and_reused(tmp_path, images, monkeypatch):
    ov = pytest.importorskip("openvino")
    path = make_tiny_blip_folder(tmp_path / "m", seed=9)
    monkeypatch.setenv("COVR_COMPILE_CACHE", str(tmp_path / "cache"))
    first = load_blip_encoder(str(path), vision_backend="openvino")
    want = first.encode_images(images)
    entries = ArtifactCache(tmp_path / "cache").entries()
    assert len(entries) == 1 and {p.name for p in entries[0].iterdir()} >= {"vision.xml", "vision.bin"}

    def no_export(*_a, **_k):
        raise AssertionError("exported again despite a cached IR")

    monkeypatch.setattr(ov, "convert_model", no_export)
    second = load_blip_encoder(str(path), vision_backend="openvino")  # a restart: same weights, same versions
    np.testing.assert_allclose(second.encode_images(images), want, atol=1e-6)
    assert second.info.backend == "openvino"
    # other weights -> another key: exports again (here: refused, so it falls back and says so)
    other = load_blip_encoder(str(make_tiny_blip_folder(tmp_path / "o", seed=10)), vision_backend="openvino")
    other.encode_images(images[:1])
    assert other.info.backend == "sdpa" and "exported again" in other._vision.detail


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_fast_text_follows_the_model_to_another_dtype(folder, images):
    path, _ = folder
    enc = load_blip_encoder(str(path), vision_backend="sdpa")
    before = enc.encode_texts(TEXTS)
    enc.model.to(torch.float64)  # the fused Q/K/V copy must follow the module's weights
    enc.dtype = torch.float64
    with torch.inference_mode():
        ids, mask = enc.tokenize(TEXTS)
        again = enc._text_features(ids, mask).numpy()
    np.testing.assert_allclose(again, before, atol=1e-5)


def test_backend_rebuilt_when_the_weights_move(folder, images):
    path, _ = folder
    enc = load_blip_encoder(str(path), vision_backend="transformers")
    first = enc.encode_images(images[:1])
    runner = enc._vision.runner()
    enc.model.to(torch.float64)  # stands in for a move to a GPU worker: the runner must follow
    enc.dtype = torch.float64
    assert enc._vision.runner() is not runner
    np.testing.assert_allclose(enc.encode_images(images[:1]), first, atol=1e-5)
