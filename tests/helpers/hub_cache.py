"""A pre-populated Hugging Face hub cache for tests: the real ``hf_hub_download`` / ``snapshot_download``
code reads it with ``HF_HUB_OFFLINE=1`` (spaces.md, "Storage and weights"), so only the network is missing.

Layout written: ``<HF_HOME>/hub/{models,datasets}--<owner>--<name>/refs/main`` (a 40-hex commit id) and
``snapshots/<commit>/<files>``. Tiny BLIP models stand in for the real weights, under the real repo ids:
the base ``Salesforce/blip-itm-large-coco`` (config + tokenizer + model.safetensors) and CoVR-format
checkpoints in ``lucas-ventura/CoVR``. ``write_tiny_model_config`` writes the encoder config ``blip-tiny``
(tiny widths, BLIP's eps and head counts, the real weight tags of ``blip-large``) for
``COVR_MODEL_CONFIGS``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from .tiny_blip import (
    TINY_EMBED_DIM,
    TINY_IMAGE_SIZE,
    make_covr_state_dict,
    make_tiny_blip_folder,
    save_covr_checkpoint,
)

BLIP_REPO = "Salesforce/blip-itm-large-coco"
COVR_REPO = "lucas-ventura/CoVR"
TINY_NAME = "blip-tiny"


def commit_of(repo_id: str) -> str:
    """A stable fake 40-hex commit id per repo."""
    return hashlib.sha1(repo_id.encode()).hexdigest()


def populate_repo(
    hf_home: str | Path, repo_id: str, files: dict[str, str | Path | bytes], repo_type: str = "model"
) -> Path:
    """Write ``files`` (name -> source path or bytes) as the ``main`` snapshot of ``repo_id``; return it."""
    root = Path(hf_home) / "hub" / f"{repo_type}s--{repo_id.replace('/', '--')}"
    commit = commit_of(repo_id)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        dest = snap / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            dest.write_bytes(content)
        elif Path(content).is_dir():
            shutil.copytree(content, dest, dirs_exist_ok=True)
        else:
            shutil.copyfile(content, dest)
    return snap


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def hub_base_config(folder: Path, **overrides) -> None:
    """Rewrite ``folder/config.json`` the way the hub's BLIP configs are: transformers' defaults for
    vision eps (1e-5), text heads (8), unless ``overrides`` say otherwise (``vision.x``, ``text.x``)."""
    cfg = json.loads((folder / "config.json").read_text())
    values = {"vision.layer_norm_eps": 1e-5, "text.num_attention_heads": 8, **overrides}
    for key, value in values.items():
        tower, name = key.split(".")
        cfg[f"{tower}_config"][name] = value
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))


def make_tiny_hub(
    hf_home: str | Path,
    work: str | Path,
    seed: int = 5,
    std: float = 0.3,
    checkpoints: tuple[str, ...] = ("webvid-covr.ckpt", "cirr_ft-covr+gt.ckpt"),
    base_overrides: dict | None = None,
) -> dict[str, Path]:
    """Tiny stand-ins under the real repo ids: the base (hub-style config: eps 1e-5, 8 text heads) and
    CoVR checkpoints (different weights per file). Returns {"base": snapshot, "<file>": cached path}."""
    work = Path(work)
    base = make_tiny_blip_folder(work / "tiny-base", seed=seed, std=std)
    hub_base_config(base, **(base_overrides or {}))
    out = {"base": populate_repo(hf_home, BLIP_REPO, {p.name: p for p in base.iterdir()})}
    files = {}
    for i, name in enumerate(checkpoints):
        sd = make_covr_state_dict(seed=seed + 1 + i, std=std)
        files[name] = save_covr_checkpoint(work / name.replace("+", "_"), sd)
    snap = populate_repo(hf_home, COVR_REPO, files)
    out.update({name: snap / name for name in checkpoints})
    return out


def tiny_model_config(**changes) -> dict:
    """The ``blip-tiny`` encoder config: tiny widths with BLIP's eps/heads, the real tags of blip-large."""
    blip_large = json.loads(
        (Path(__file__).resolve().parents[2] / "covr_core" / "model_configs" / "blip-large.json").read_text()
    )
    cfg = {
        "name": TINY_NAME,
        "aliases": [],
        "family": "blip",
        "description": "tiny randomised BLIP for tests (tests/helpers/tiny_blip.py)",
        "base": blip_large["base"],
        "image_size": TINY_IMAGE_SIZE,
        "mean": blip_large["mean"],
        "std": blip_large["std"],
        "embed_dim": TINY_EMBED_DIM,
        "vision": {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 16,
            "image_size": TINY_IMAGE_SIZE,
            "patch_size": 16,
            "layer_norm_eps": 1e-6,
            "hidden_act": "gelu",
        },
        "text": {
            "vocab_size": 30524,
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 12,
            "encoder_hidden_size": 64,
            "max_position_embeddings": 64,
            "layer_norm_eps": 1e-12,
            "hidden_act": "gelu",
            "is_decoder": True,
        },
        "default_weights": blip_large["default_weights"],
        "weights": blip_large["weights"],
    }
    cfg.update(changes)
    return cfg


def write_tiny_model_config(path: str | Path, **changes) -> Path:
    """Write :func:`tiny_model_config` as JSON (for ``COVR_MODEL_CONFIGS``); returns the path."""
    path = Path(path)
    path.write_text(json.dumps(tiny_model_config(**changes), indent=2))
    return path


def blip_large_config(hub_style: bool = True):
    """BLIP-L's structure (``blip-large.json``); ``hub_style``: with transformers' eps/heads defaults, as the
    hub's config.json has them (the loader must correct them)."""
    from transformers import BlipConfig

    spec = json.loads(
        (Path(__file__).resolve().parents[2] / "covr_core" / "model_configs" / "blip-large.json").read_text()
    )
    vision, text = dict(spec["vision"]), dict(spec["text"])
    if hub_style:
        vision["layer_norm_eps"], text["num_attention_heads"] = 1e-5, 8
    text.update(bos_token_id=30522, pad_token_id=0, sep_token_id=102)
    return BlipConfig(text_config=text, vision_config=vision, image_text_hidden_size=spec["embed_dim"])


def make_blip_large_random_hub(hf_home: str | Path, work: str | Path, seed: int = 0) -> dict[str, Path]:
    """A BLIP-L-sized random model as the real files would be: the hub-style base config + tokenizer under
    ``Salesforce/blip-itm-large-coco`` and a CoVR-format ``webvid-covr.ckpt`` (about 1.8 GB, float32)."""
    import torch

    from covr_core.convert import build_blip_model
    from covr_core.text import build_blip_tokenizer

    work = Path(work)
    base = work / "blip-large-base"
    base.mkdir(parents=True, exist_ok=True)
    config = blip_large_config()
    config.save_pretrained(base)
    build_blip_tokenizer().save_pretrained(base)
    model = build_blip_model(blip_large_config(hub_style=False))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0.0, 0.02, generator=gen)
            if name.endswith("weight") and "norm" in name.lower() and p.ndim == 1:
                p.add_(1.0)
    ckpt = save_covr_checkpoint(work / "webvid-covr.ckpt", make_covr_state_dict(model))
    out = {"base": populate_repo(hf_home, BLIP_REPO, {p.name: p for p in base.iterdir()})}
    snap = populate_repo(hf_home, COVR_REPO, {})
    (snap / "webvid-covr.ckpt").unlink(missing_ok=True)
    ckpt.rename(snap / "webvid-covr.ckpt")  # move, not copy: 1.8 GB
    out["webvid-covr.ckpt"] = snap / "webvid-covr.ckpt"
    return out
