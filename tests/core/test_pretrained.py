"""Encoders and weights as data: the config registry, weight tags -> files through the real
``huggingface_hub`` code (a pre-populated cache, HF_HUB_OFFLINE=1), sha256 refusal, BLIP's
hyperparameters enforced on a hub-style base config (eps 1e-5, 8 text heads)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from covr_core import encoder_registry as reg
from covr_core.blip_config import BlipConfigError
from covr_core.factory import create_encoder, resolve_encoder_choice
from covr_core.pretrained import WeightsIntegrityError, WeightsUnavailableError, plan_weights
from helpers.blip_reference import hand_query
from helpers.hub_cache import (
    BLIP_REPO,
    COVR_REPO,
    TINY_NAME,
    make_tiny_hub,
    sha256_of,
    tiny_model_config,
)

TOL = 1e-5


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch):
    """Each test sees the built-in configs plus what it registers (nothing leaks between tests)."""
    monkeypatch.setattr(reg, "_models", {})
    monkeypatch.setattr(reg, "_aliases", {})
    monkeypatch.setattr(reg, "_loaded_extra", set())
    monkeypatch.delenv(reg.EXTRA_CONFIGS_ENV, raising=False)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An offline Hugging Face cache holding tiny stand-ins under the real repo ids, and blip-tiny."""
    hf_home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "COVR_ENCODER", "COVR_WEIGHTS", "COVR_BLIP_SOURCE"):
        monkeypatch.delenv(var, raising=False)
    files = make_tiny_hub(hf_home, tmp_path / "work")
    reg.register_model_config(tiny_model_config())
    return files


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in [(70, 50), (48, 48)]]


# ------------------------------------------------------------------------------------- registry
def test_builtin_configs_and_tags_are_data():
    assert reg.list_models() == ["blip-large", "lite"]
    blip = reg.get_model_config("blip")  # alias
    assert blip.name == "blip-large" and blip.family == "blip" and blip.embed_dim == 256
    assert (
        blip.image_size == 384
        and blip.vision["layer_norm_eps"] == 1e-6
        and blip.text["num_attention_heads"] == 12
    )
    assert blip.base_repo == BLIP_REPO and blip.default_weights == "webvid-covr"
    w = blip.get_weights("webvid-covr")
    assert (w.hub_repo, w.filename, w.kind) == (COVR_REPO, "webvid-covr.ckpt", "covr-checkpoint")
    assert blip.get_weights("cirr_ft-covr+gt").filename == "cirr_ft-covr+gt.ckpt"
    assert blip.get_weights("fashioniq-all-ft_covr").filename == "fashioniq-all-ft_covr.ckpt"
    assert blip.get_weights("blip-l-coco").hub_repo == BLIP_REPO
    assert not blip.get_weights("cirr-gt").released
    assert all(t.licence and t.description for t in blip.weights.values() if t.released)
    # sha256 of the real files: unknown here (no network) -> "" (recorded at load, never compared)
    assert {t.sha256 for t in blip.weights.values()} == {""}
    assert ("covr2-blip2", "blip2-l-coco_covr") in reg.list_pretrained()


def test_unknown_names_and_tags_list_the_choices():
    with pytest.raises(ValueError, match="unknown encoder 'clip'.*blip-large.*lite"):
        reg.get_model_config("clip")
    with pytest.raises(
        reg.UnknownWeightsError, match="webvid-covr, cirr_ft-covr\\+gt, fashioniq-all-ft_covr"
    ):
        resolve_encoder_choice("blip", weights="webvid")
    with pytest.raises(ValueError, match="never released"):
        resolve_encoder_choice("blip", weights="cirr-gt")
    with pytest.raises(ValueError, match="reference only"):
        resolve_encoder_choice("covr2-blip2")
    with pytest.raises(ValueError, match="needs a BLIP encoder"):
        resolve_encoder_choice("lite", weights="webvid-covr")


def test_configs_are_validated_and_names_are_unique(tmp_path, monkeypatch):
    bad = tiny_model_config(default_weights="nope")
    with pytest.raises(ValueError, match="default_weights 'nope'"):
        reg.register_model_config(bad)
    wrong_sha = tiny_model_config()
    wrong_sha["weights"] = {
        **wrong_sha["weights"],
        "webvid-covr": {**wrong_sha["weights"]["webvid-covr"], "sha256": "xyz"},
    }
    with pytest.raises(ValueError, match="64 hex"):
        reg.register_model_config(wrong_sha)
    reg.register_model_config(tiny_model_config())
    with pytest.raises(ValueError, match="already registered"):
        reg.register_model_config(tiny_model_config())
    with pytest.raises(ValueError, match="already registered"):
        reg.register_model_config(tiny_model_config(name="other", aliases=["blip"]))
    # COVR_MODEL_CONFIGS: JSON files (or folders) read on first use
    (tmp_path / "cfgs").mkdir()
    (tmp_path / "cfgs" / "x.json").write_text(json.dumps(tiny_model_config(name="blip-tiny-2")))
    monkeypatch.setenv(reg.EXTRA_CONFIGS_ENV, str(tmp_path / "cfgs"))
    assert "blip-tiny-2" in reg.list_models()


# ------------------------------------------------------------------------------ tags -> encoders
@pytest.mark.parametrize("std", [0.02, 0.3], ids=["std0.02", "std0.3"])
def test_tag_loads_from_the_hub_cache_with_blip_hyperparameters(tmp_path, monkeypatch, images, std):
    """webvid-covr through hf_hub_download + the base through snapshot_download; the hub-style base
    config (eps 1e-5, 8 text heads) is corrected, so the model equals BLIP's hand-written forward."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    files = make_tiny_hub(tmp_path / "hf", tmp_path / "work", std=std)
    reg.register_model_config(tiny_model_config())
    enc = create_encoder(TINY_NAME, weights="webvid-covr", device="cpu", dtype="float32")
    assert enc.info.name == TINY_NAME
    assert enc.info.weights == f"webvid-covr ({COVR_REPO}/webvid-covr.ckpt)"
    assert enc.info.checkpoint == "webvid-covr.ckpt"
    assert enc.info.checkpoint_sha256 == sha256_of(files["webvid-covr.ckpt"])
    assert any("layer_norm_eps 1e-05 -> 1e-06" in c for c in enc.config_changes)
    assert any("num_attention_heads 8 -> 12" in c for c in enc.config_changes)
    cfg = enc.model.config
    assert cfg.vision_config.layer_norm_eps == 1e-6 and cfg.text_config.num_attention_heads == 12
    for img, text in zip(images, ["make it red", "the same dog on a beach"]):
        q = enc.encode_queries([img], [text])
        f_mm, f_img, f_txt = hand_query(enc, img, text)
        np.testing.assert_allclose(q.f_mm[0], f_mm, atol=TOL)
        np.testing.assert_allclose(q.f_img[0], f_img, atol=TOL)
        np.testing.assert_allclose(q.f_txt[0], f_txt, atol=TOL)


def test_the_hub_config_as_is_would_not_be_blip(hub, images):
    """Guard: the uncorrected base config really changes the embeddings (the test above means something)."""
    from transformers import BlipConfig, BlipForImageTextRetrieval

    enc = create_encoder(TINY_NAME, weights="webvid-covr", device="cpu")
    raw = BlipConfig.from_pretrained(str(hub["base"]))
    assert raw.vision_config.layer_norm_eps == 1e-5 and raw.text_config.num_attention_heads == 8
    plain = BlipForImageTextRetrieval(raw).eval()
    plain.load_state_dict(enc.model.state_dict())
    with torch.no_grad():
        pix = enc.image_transform(images[0]).unsqueeze(0)
        ours = enc.model.vision_model(pixel_values=pix).last_hidden_state
        theirs = plain.vision_model(pixel_values=pix).last_hidden_state
    assert (ours - theirs).abs().max().item() > 1e-4


def test_each_tag_brings_its_own_checkpoint(hub):
    a = create_encoder(TINY_NAME, weights="webvid-covr", device="cpu")
    b = create_encoder(TINY_NAME, weights="cirr_ft-covr+gt", device="cpu")
    assert b.info.checkpoint_sha256 == sha256_of(hub["cirr_ft-covr+gt.ckpt"]) != a.info.checkpoint_sha256
    assert "cirr_ft-covr+gt" in b.info.weights
    # the default tag of a BLIP encoder is webvid-covr: the real CoVR model, never the bare base
    assert create_encoder(TINY_NAME, device="cpu").info.checkpoint_sha256 == a.info.checkpoint_sha256


def test_base_model_tag_uses_the_snapshot_weights(hub):
    enc = create_encoder(TINY_NAME, weights="blip-l-coco", device="cpu")
    assert enc.info.checkpoint_sha256 == sha256_of(hub["base"] / "model.safetensors")
    assert enc.info.weights.startswith("blip-l-coco (")


def test_known_sha256_mismatch_is_refused_and_a_match_loads(hub):
    cfg = reg.get_model_config(TINY_NAME)
    good = sha256_of(hub["webvid-covr.ckpt"])
    tags = dict(cfg.weights)
    tags["pinned-good"] = dataclasses.replace(tags["webvid-covr"], tag="pinned-good", sha256=good)
    tags["pinned-bad"] = dataclasses.replace(tags["webvid-covr"], tag="pinned-bad", sha256="0" * 64)
    reg.register_model_config(dataclasses.replace(cfg, weights=tags), overwrite=True)
    assert create_encoder(TINY_NAME, weights="pinned-good", device="cpu").info.checkpoint_sha256 == good
    with pytest.raises(WeightsIntegrityError, match="refusing pinned-bad: its sha256 is " + good):
        create_encoder(TINY_NAME, weights="pinned-bad", device="cpu")


def test_checkpoint_file_and_folder_paths_still_work(hub, tmp_path):
    enc = create_encoder(TINY_NAME, weights=str(hub["webvid-covr.ckpt"]), device="cpu")
    assert enc.info.checkpoint_sha256 == sha256_of(hub["webvid-covr.ckpt"])
    enc = create_encoder(TINY_NAME, checkpoint=str(hub["webvid-covr.ckpt"]), device="cpu")  # the older flag
    assert enc.info.checkpoint_sha256 == sha256_of(hub["webvid-covr.ckpt"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_encoder(TINY_NAME, weights=str(tmp_path / "missing.ckpt"), device="cpu")


def test_missing_files_offline_fail_fast_with_advice(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE") as err:
        create_encoder(TINY_NAME, weights="fashioniq-all-ft_covr", device="cpu")
    assert f"hf download {COVR_REPO} fashioniq-all-ft_covr.ckpt" in str(err.value)
    assert "--encoder lite" in str(err.value)


def test_structural_mismatch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    make_tiny_hub(tmp_path / "hf", tmp_path / "w", checkpoints=("webvid-covr.ckpt",))
    # the same tiny weights but an encoder config that claims another width: cannot be "fixed"
    reg.register_model_config(
        tiny_model_config(name="blip-tiny-wide", vision={**tiny_model_config()["vision"], "hidden_size": 96})
    )
    with pytest.raises(BlipConfigError, match="vision hidden_size is 64, blip-tiny-wide needs 96"):
        create_encoder("blip-tiny-wide", weights="webvid-covr", device="cpu")


def test_a_plan_names_what_it_fetches(hub):
    plan = plan_weights(reg.get_model_config(TINY_NAME), "cirr_ft-covr+gt")
    urls = [f.url for f in plan.hub_files()]
    assert urls[0].endswith(f"/{BLIP_REPO}/resolve/main/config.json")
    assert urls[-1].endswith(f"/{COVR_REPO}/resolve/main/cirr_ft-covr%2Bgt.ckpt")  # the URL of covr.md §5.1


def test_a_fork_checkpoint_by_tag_brings_its_mlp_combiner(hub, tmp_path):
    """The study fork's checkpoints (weight_predictor.* keys) give the MLP combiner, by tag as by file."""
    from covr_core.combiners import list_combiners
    from helpers.hub_cache import populate_repo
    from helpers.tiny_blip import make_covr_state_dict, save_covr_checkpoint

    ckpt = save_covr_checkpoint(tmp_path / "fork.ckpt", make_covr_state_dict(seed=9, weight_predictor=True))
    populate_repo(tmp_path / "hf", "study/covr-mlp", {"webvid-covr-mlp.ckpt": ckpt})
    cfg = reg.get_model_config(TINY_NAME)
    tags = dict(cfg.weights)
    tags["study-mlp"] = dataclasses.replace(
        tags["webvid-covr"], tag="study-mlp", hub_repo="study/covr-mlp", filename="webvid-covr-mlp.ckpt"
    )
    reg.register_model_config(dataclasses.replace(cfg, weights=tags), overwrite=True)
    enc = create_encoder(TINY_NAME, weights="study-mlp", device="cpu")
    assert enc.mlp is not None and "MLP" in list_combiners(enc.mlp)
    assert create_encoder(TINY_NAME, weights="webvid-covr", device="cpu").mlp is None
