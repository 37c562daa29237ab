"""CoVR checkpoint conversion: original BLIP key names -> transformers, strict loading, CLI, MLP keys."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from covr_core.blip_load import load_blip_encoder
from covr_core.combiners import list_combiners
from covr_core.convert import (
    CheckpointError,
    CheckpointShapeError,
    convert_covr_state_dict,
    covr_to_hf_key,
    main,
)
from covr_core.safe_load import file_sha256
from helpers.tiny_blip import make_covr_state_dict, make_tiny_blip_folder, make_tiny_blip_model, save_covr_checkpoint


class CosineSchedule:
    """Stand-in for the scheduler object CoVR's Fabric checkpoints pickle."""

    def __init__(self) -> None:
        self.lr = 1e-4


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("conv")
    base = make_tiny_blip_folder(root / "base", seed=0, std=0.3)  # config + tokenizer (+ other weights)
    target = make_tiny_blip_folder(root / "target", seed=7, std=0.3)  # weights the checkpoint carries
    sd = make_covr_state_dict(target, weight_predictor=True)
    ckpt = save_covr_checkpoint(root / "covr.ckpt", sd, scheduler=CosineSchedule(), optimizer={"state": {}})
    return {"root": root, "base": base, "target": target, "ckpt": ckpt, "sd": sd}


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(1)
    imgs = [Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)) for _ in range(2)]
    return imgs, ["make the dog brown", "add a hat to the person on the left"]


def _assert_same_outputs(a, b, sample, atol=1e-5):
    qa, qb = a.encode_queries(*sample), b.encode_queries(*sample)
    for name in ("f_mm", "f_img", "f_txt"):
        np.testing.assert_allclose(getattr(qa, name), getattr(qb, name), atol=atol)


def test_key_renames_follow_covr_md():
    assert covr_to_hf_key("visual_encoder.cls_token") == "vision_model.embeddings.class_embedding"
    assert covr_to_hf_key("visual_encoder.pos_embed") == "vision_model.embeddings.position_embedding"
    assert covr_to_hf_key("visual_encoder.patch_embed.proj.weight") == "vision_model.embeddings.patch_embedding.weight"
    assert covr_to_hf_key("visual_encoder.blocks.11.norm1.bias") == "vision_model.encoder.layers.11.layer_norm1.bias"
    assert covr_to_hf_key("visual_encoder.blocks.3.attn.qkv.weight") == "vision_model.encoder.layers.3.self_attn.qkv.weight"
    assert covr_to_hf_key("visual_encoder.blocks.3.attn.proj.bias") == "vision_model.encoder.layers.3.self_attn.projection.bias"
    assert covr_to_hf_key("visual_encoder.blocks.0.mlp.fc2.weight") == "vision_model.encoder.layers.0.mlp.fc2.weight"
    assert covr_to_hf_key("visual_encoder.norm.weight") == "vision_model.post_layernorm.weight"
    for same in ("text_encoder.encoder.layer.0.crossattention.self.key.weight", "vision_proj.weight", "text_proj.bias"):
        assert covr_to_hf_key(same) == same


def test_round_trip_state_dict_is_exact():
    model = make_tiny_blip_model(seed=2, std=0.3)
    conv = convert_covr_state_dict(make_covr_state_dict(model, weight_predictor=True))
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("itm_head.")}
    assert set(conv.hf_state_dict) == set(own)
    for key, value in own.items():
        assert torch.equal(conv.hf_state_dict[key], value), key
    assert conv.dropped_keys == ["text_encoder.embeddings.position_ids"]
    assert set(conv.mlp_state_dict) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_checkpoint_loads_strictly_and_equals_from_pretrained(folders, sample):
    enc = load_blip_encoder(str(folders["base"]), checkpoint=str(folders["ckpt"]))
    report = enc.load_report
    assert report.unexpected == []
    assert report.missing == ["itm_head.weight", "itm_head.bias"]  # CoVR files carry no ITM head
    assert enc.info.checkpoint == "covr.ckpt"
    assert enc.info.checkpoint_sha256 == file_sha256(folders["ckpt"])
    assert enc.mlp is not None and enc.mlp.trained and "MLP" in list_combiners(enc.mlp)
    torch.testing.assert_close(enc.mlp.weight_predictor[0].weight, folders["sd"]["weight_predictor.0.weight"])
    ref = load_blip_encoder(str(folders["target"]))
    _assert_same_outputs(enc, ref, sample)
    base = load_blip_encoder(str(folders["base"]))
    q_base, q_enc = base.encode_queries(*sample), enc.encode_queries(*sample)
    assert np.abs(q_base.f_mm - q_enc.f_mm).max() > 1e-3  # the checkpoint really replaced the weights


def test_convert_cli_writes_from_pretrained_folder(folders, sample, capsys):
    out = folders["root"] / "converted"
    assert main([str(folders["ckpt"]), str(out), "--base", str(folders["base"])]) == 0
    printed = capsys.readouterr().out
    assert "missing 2" in printed and "unexpected 0" in printed
    for name in ("model.safetensors", "config.json", "tokenizer_config.json", "mlp_combiner.safetensors",
                 "mlp_combiner.json", "covr_conversion.json"):
        assert (out / name).is_file(), name
    record = json.loads((out / "covr_conversion.json").read_text())
    assert record["checkpoint_sha256"] == file_sha256(folders["ckpt"])
    enc = load_blip_encoder(str(out))
    assert enc.info.checkpoint_sha256 == record["checkpoint_sha256"]
    assert enc.mlp is not None and enc.mlp.trained
    _assert_same_outputs(enc, load_blip_encoder(str(folders["target"])), sample)
    from transformers import BlipForImageTextRetrieval

    model = BlipForImageTextRetrieval.from_pretrained(str(out))
    assert model.text_encoder.encoder.layer[0].crossattention.self.key.weight.shape[1] == 64


def test_wrong_shape_is_refused_with_key_and_shapes(folders, tmp_path, capsys):
    sd = dict(folders["sd"])
    sd["text_encoder.encoder.layer.1.crossattention.self.key.weight"] = torch.zeros(48, 32)
    bad = save_covr_checkpoint(tmp_path / "bad.ckpt", sd)
    with pytest.raises(CheckpointShapeError) as info:
        load_blip_encoder(str(folders["base"]), checkpoint=str(bad))
    msg = str(info.value)
    assert "text_encoder.encoder.layer.1.crossattention.self.key.weight" in msg
    assert "[48, 32]" in msg and "[48, 64]" in msg
    assert main([str(bad), str(tmp_path / "out"), "--base", str(folders["base"])]) == 2
    assert "crossattention.self.key.weight" in capsys.readouterr().err


def test_missing_cross_attention_or_extra_keys_are_refused(folders, tmp_path):
    sd = {k: v for k, v in folders["sd"].items() if "crossattention" not in k}
    path = save_covr_checkpoint(tmp_path / "nocross.ckpt", sd)
    with pytest.raises(CheckpointError, match="crossattention"):
        load_blip_encoder(str(folders["base"]), checkpoint=str(path))
    sd = dict(folders["sd"])
    sd["some_new_head.weight"] = torch.zeros(2)
    path = save_covr_checkpoint(tmp_path / "extra.ckpt", sd)
    with pytest.raises(CheckpointError, match="some_new_head"):
        load_blip_encoder(str(folders["base"]), checkpoint=str(path))


def test_cli_help_names_every_flag():
    res = subprocess.run([sys.executable, "-m", "covr_core.convert", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0
    for flag in ("IN", "OUT", "--base", "--verbose"):
        assert flag in res.stdout


def test_folder_without_cross_attention_is_refused(tmp_path):
    """A model saved without cross-attention must not silently give a text-only f_mm."""
    from transformers import BlipForImageTextRetrieval

    from helpers.tiny_blip import randomise_, tiny_blip_config
    from covr_core.text import build_blip_tokenizer

    config = tiny_blip_config()
    config.text_config.is_decoder = False
    model = randomise_(BlipForImageTextRetrieval(config), seed=0, std=0.02)
    model.save_pretrained(tmp_path)
    build_blip_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="crossattention"):
        load_blip_encoder(str(tmp_path))
