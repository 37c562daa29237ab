"""BlipCoVREncoder on tiny randomised BLIP folders (std 0.02 and 0.3), loaded via from_pretrained.

The reference numbers come from a hand-written BLIP forward (``helpers.blip_reference``: original ViT /
MED maths, BLIP's head counts 16/12 and eps 1e-6/1e-12 written out) over the model's own tensors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from covr_core.blip import BlipImageTransform
from covr_core.blip_load import load_blip_encoder
from helpers.blip_reference import hand_pixels, hand_query
from helpers.tiny_blip import TINY_IMAGE_SIZE, make_tiny_blip_folder

TEXTS = ["Make it RED.", "the dog is now sitting on a (very) large sofa!", "two", "same scene at night"]
TOL = 2e-5


@pytest.fixture(scope="module", params=[0.02, 0.3], ids=["std0.02", "std0.3"])
def enc(request, tmp_path_factory):
    folder = make_tiny_blip_folder(tmp_path_factory.mktemp(f"tiny{request.param}"), seed=3, std=request.param)
    return load_blip_encoder(str(folder), cache_size=2)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    sizes = [(70, 50), (48, 48), (33, 90), (64, 64)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


# ---------------------------------------------------------------- tests
def test_transform_follows_config_and_matches_hand_preprocessing(enc, images):
    assert isinstance(enc.image_transform, BlipImageTransform)
    assert enc.image_transform.size == TINY_IMAGE_SIZE
    for img in images:
        got = enc.image_transform(img)
        assert got.shape == (3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE) and got.dtype == torch.float32
        assert torch.allclose(got, hand_pixels(img, TINY_IMAGE_SIZE)[0], atol=1e-5)


def test_query_equals_hand_computed_pass_with_enc_token(enc, images):
    for img, text in zip(images, TEXTS):
        q = enc.encode_queries([img], [text])
        f_mm, f_img, f_txt = hand_query(enc, img, text)
        np.testing.assert_allclose(q.f_mm[0], f_mm, atol=TOL)
        np.testing.assert_allclose(q.f_img[0], f_img, atol=TOL)
        np.testing.assert_allclose(q.f_txt[0], f_txt, atol=TOL)


def test_enc_substitution_changes_the_query(enc, images):
    q = enc.encode_queries(images[:1], TEXTS[:1])
    with_cls, _, _ = hand_query(enc, images[0], TEXTS[0], enc_token=False)
    assert np.abs(q.f_mm[0] - with_cls).max() > 1e-3
    # the multimodal pass really uses the image: it is not the text-only embedding
    assert np.abs(q.f_mm[0] - q.f_txt[0]).max() > 1e-3


def test_f_img_is_cls_state_not_pooler_output(enc, images):
    pixels = enc.image_transform(images[0])[None]
    with torch.no_grad():
        out = enc.model.vision_model(pixel_values=pixels)
        pooled = F.normalize(enc.model.vision_proj(out.pooler_output), dim=-1)[0].numpy()
    f_img = enc.encode_pixels(pixels)[0]
    np.testing.assert_allclose(f_img, hand_query(enc, images[0], "x")[1], atol=TOL)
    assert np.abs(f_img - pooled).max() > 1e-4  # pooler_output applies post_layernorm twice


def test_all_outputs_l2_normalised_float32(enc, images):
    q = enc.encode_queries(images, TEXTS)
    arrays = [q.f_mm, q.f_img, q.f_txt, enc.encode_images(images), enc.encode_texts(TEXTS)]
    for arr in arrays:
        assert arr.dtype == np.float32 and arr.shape == (4, enc.info.dim)
        np.testing.assert_allclose(np.linalg.norm(arr, axis=1), 1.0, atol=1e-5)


def test_batch_and_padding_invariance(enc, images):
    batched = enc.encode_queries(images, TEXTS)  # texts of very different lengths -> padding
    for i, (img, text) in enumerate(zip(images, TEXTS)):
        single = enc.encode_queries([img], [text])
        for name in ("f_mm", "f_img", "f_txt"):
            np.testing.assert_allclose(getattr(batched, name)[i], getattr(single, name)[0], atol=TOL)
    np.testing.assert_allclose(enc.encode_texts(TEXTS)[2], enc.encode_texts([TEXTS[2]])[0], atol=TOL)


def test_changed_reference_image_changes_f_mm(enc, images):
    q = enc.encode_queries([images[0], images[1]], [TEXTS[0], TEXTS[0]])
    assert np.abs(q.f_mm[0] - q.f_mm[1]).max() > 1e-4
    np.testing.assert_allclose(q.f_txt[0], q.f_txt[1], atol=1e-6)


def test_single_query_uses_cache_and_matches_batched(enc, images):
    enc.clear_caches()
    before = enc.vision_calls
    first = enc.encode_query(images[0], TEXTS[0])
    assert enc.vision_calls == before + 1
    # text edits on the cached image: the ViT does not run again
    for text in TEXTS[1:]:
        q = enc.encode_query(images[0], text)
        ref = enc.encode_queries([images[0]], [text])
        for name in ("f_mm", "f_img", "f_txt"):
            np.testing.assert_allclose(getattr(q, name), getattr(ref, name)[0], atol=TOL)
    assert enc.vision_calls == before + 1 + len(TEXTS[1:])  # only the encode_queries references ran it
    calls = enc.vision_calls
    again = enc.encode_query(images[0].copy(), TEXTS[0])  # same pixels, new object: same key
    assert enc.vision_calls == calls
    np.testing.assert_allclose(again.f_mm, first.f_mm, atol=1e-6)
    # the bounded LRU (cache_size=2) evicts the oldest reference
    enc.prepare_reference(images[1])
    enc.prepare_reference(images[2])
    assert len(enc.reference_cache) == 2
    calls = enc.vision_calls
    enc.encode_query(images[0], TEXTS[0])
    assert enc.vision_calls == calls + 1


def test_bfloat16_close_to_float32(tmp_path, images):
    folder = make_tiny_blip_folder(tmp_path / "m", seed=5, std=0.02)
    f32 = load_blip_encoder(str(folder))
    bf16 = load_blip_encoder(str(folder), dtype="bfloat16")
    assert bf16.info.dtype == "bfloat16" and next(bf16.model.parameters()).dtype == torch.bfloat16
    a, b = f32.encode_queries(images, TEXTS), bf16.encode_queries(images, TEXTS)
    for name in ("f_mm", "f_img", "f_txt"):
        x, y = getattr(a, name), getattr(b, name)
        assert y.dtype == np.float32
        assert (x * y).sum(axis=1).min() > 0.98
    single = bf16.encode_query(images[0], TEXTS[0])
    assert float(single.f_mm @ b.f_mm[0]) > 0.98


def test_info_records_checkpoint_and_hash(enc):
    assert enc.info.name == "blip-tiny" and enc.info.dim == 64 and enc.info.fused
    assert len(enc.info.checkpoint_sha256) == 64
    assert enc.mlp is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(tmp_path, images):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    folder = make_tiny_blip_folder(tmp_path / "m", seed=4, std=0.3)
    cpu = load_blip_encoder(str(folder))
    gpu = load_blip_encoder(str(folder), device="cuda")
    assert gpu.info.device == "cuda"
    a, b = cpu.encode_queries(images, TEXTS), gpu.encode_queries(images, TEXTS)
    for name in ("f_mm", "f_img", "f_txt"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-4)
    single = gpu.encode_query(images[0], TEXTS[0])
    np.testing.assert_allclose(single.f_mm, a.f_mm[0], atol=1e-4)
    half = load_blip_encoder(str(folder), device="cuda", dtype="float16")
    assert (half.encode_queries(images, TEXTS).f_mm * a.f_mm).sum(axis=1).min() > 0.98
