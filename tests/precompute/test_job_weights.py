"""Jobs take the same encoders and weight tags as the app (``create_encoder(name, weights=tag)``):
``--weights <tag>`` fetches through the real huggingface_hub code from a pre-populated cache (offline);
``--checkpoint FILE`` keeps working; an unknown tag is a clear error listing the tags."""

from __future__ import annotations

import json

import pytest
from conftest import run_job
from helpers.hub_cache import TINY_NAME, make_tiny_hub, sha256_of, write_tiny_model_config

from covr_core.gallery import Gallery


def _env(tmp_path):
    hf = tmp_path / "hf"
    files = make_tiny_hub(hf, tmp_path / "work", checkpoints=("webvid-covr.ckpt", "cirr_ft-covr+gt.ckpt"))
    cfg = write_tiny_model_config(tmp_path / "blip-tiny.json")
    return files, {"HF_HOME": str(hf), "HF_HUB_OFFLINE": "1", "COVR_MODEL_CONFIGS": str(cfg)}


@pytest.mark.slow  # two job subprocesses
def test_gallery_job_with_a_weight_tag_and_with_a_file(cirr_data, tmp_path):
    files, env = _env(tmp_path)
    common = [
        "--dataset",
        "cirr",
        "--root",
        str(cirr_data.root),
        "--split",
        "val",
        "--encoder",
        TINY_NAME,
        "--device",
        "cpu",
        "--num-workers",
        "0",
        "--no-thumbs",
    ]
    res = run_job(
        "precompute.gallery", [*common, "--weights", "cirr_ft-covr+gt", "--out", str(tmp_path / "g1")], env
    )
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((tmp_path / "g1" / "manifest.json").read_text())
    assert manifest["encoder"] == TINY_NAME
    assert manifest["checkpoint_sha256"] == sha256_of(files["cirr_ft-covr+gt.ckpt"])
    res = run_job(
        "precompute.gallery",
        [*common, "--checkpoint", str(files["webvid-covr.ckpt"]), "--out", str(tmp_path / "g2")],
        env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    g2 = Gallery.load(tmp_path / "g2")
    assert g2.manifest["checkpoint_sha256"] == sha256_of(files["webvid-covr.ckpt"])


def test_unknown_tag_lists_the_tags(cirr_data, tmp_path):
    _, env = _env(tmp_path)
    res = run_job(
        "precompute.queries",
        [
            "--dataset",
            "cirr",
            "--root",
            str(cirr_data.root),
            "--encoder",
            TINY_NAME,
            "--weights",
            "webvid",
            "--out",
            str(tmp_path / "q"),
            "--device",
            "cpu",
        ],
        env,
    )
    assert res.returncode != 0
    assert "unknown weight tag 'webvid'" in res.stderr and "webvid-covr, cirr_ft-covr+gt" in res.stderr


def test_dtype_auto_is_float32_on_cpu_and_an_explicit_bfloat16_goes_through(tiny_blip_dir):
    """``--dtype auto`` (the default) keeps CPU jobs in float32; ``--dtype bfloat16`` really computes in
    bfloat16 on CPU (issue 15's fast path), not silently in float32."""
    from precompute.engine import common as C
    from precompute.engine.options import GalleryOptions

    assert GalleryOptions(dataset="demo", out="x").dtype == "auto"
    auto = C.create_job_encoder("blip", None, str(tiny_blip_dir), "cpu", "auto")
    bf16 = C.create_job_encoder("blip", None, str(tiny_blip_dir), "cpu", "bfloat16")
    assert auto.info.dtype == "float32" and bf16.info.dtype == "bfloat16"
    assert str(next(bf16.model.parameters()).dtype) == "torch.bfloat16"
