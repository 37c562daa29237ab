"""Restricted checkpoint loading: tensors come back, foreign pickled objects are never executed."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from covr_core.safe_load import (
    StubObject,
    extract_state_dict,
    load_checkpoint,
    load_checkpoint_state_dict,
    restricted_torch_load,
)

class FileWriter:
    """Unpickling this object would create a file (if the loader executed ``__reduce__``)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (Path(self.target), "pwned"))


class ShellToucher:
    """Unpickling this would run a shell command creating a file."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class CosineSchedule:
    """Stand-in for CoVR's pickled scheduler object."""

    def __init__(self) -> None:
        self.base_lr, self.steps = 1e-4, 1000


def _state():
    return OrderedDict(
        [
            ("module.vision_proj.weight", torch.randn(4, 6)),
            ("module.text_proj.bias", torch.arange(4, dtype=torch.float16)),
            ("module.text_encoder.embeddings.position_ids", torch.arange(8, dtype=torch.int64)[None]),
        ]
    )


def test_plain_weights_only_file(tmp_path):
    sd = _state()
    torch.save({"epoch": 3, "model": sd}, tmp_path / "a.ckpt")
    loaded = load_checkpoint(tmp_path / "a.ckpt")
    assert loaded.method == "weights_only"
    out = extract_state_dict(loaded.obj)
    assert set(out) == {k[len("module.") :] for k in sd}
    for key, value in sd.items():
        assert torch.equal(out[key[len("module.") :]], value)


def test_malicious_pickle_is_not_executed(tmp_path):
    target = tmp_path / "pwned.txt"
    sd = _state()
    shared = torch.randn(10)
    sd["module.view_a"] = shared[:5]
    sd["module.view_b"] = shared[5:]
    payload = {
        "epoch": 1,
        "model": sd,
        "scheduler": CosineSchedule(),
        "evil": FileWriter(str(target)),
        "evil_list": [FileWriter(str(target)), ShellToucher(str(target))],
        "system": os.system,  # a foreign global by reference
    }
    torch.save(payload, tmp_path / "evil.ckpt")
    assert not target.exists()
    out = load_checkpoint_state_dict(tmp_path / "evil.ckpt")
    assert not target.exists(), "the loader executed a pickled __reduce__"
    for key, value in sd.items():
        assert torch.equal(out[key[len("module.") :]], value)
    assert out["text_proj.bias"].dtype == torch.float16
    loaded = restricted_torch_load(tmp_path / "evil.ckpt")
    assert not target.exists()
    assert isinstance(loaded.obj["evil"], StubObject) and isinstance(loaded.obj["scheduler"], StubObject)
    assert any("CosineSchedule" in s for s in loaded.stubbed)
    assert any(s.endswith("getattr") for s in loaded.stubbed)
    assert any(s.endswith(".system") for s in loaded.stubbed)
    assert loaded.obj["scheduler"].state == {"base_lr": 1e-4, "steps": 1000}


def test_safetensors_and_missing_file(tmp_path):
    from safetensors.torch import save_file

    save_file({"a": torch.ones(2)}, str(tmp_path / "w.safetensors"))
    assert torch.equal(load_checkpoint_state_dict(tmp_path / "w.safetensors")["a"], torch.ones(2))
    with pytest.raises(FileNotFoundError):
        load_checkpoint_state_dict(tmp_path / "nope.ckpt")


def test_not_a_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"this is not a zip archive at all")
    with pytest.raises((ValueError, RuntimeError)):
        load_checkpoint_state_dict(bad)


def test_state_dict_without_tensors_is_refused(tmp_path):
    torch.save({"model": {"a": 1}}, tmp_path / "empty.ckpt")
    with pytest.raises(ValueError, match="no tensors"):
        load_checkpoint_state_dict(tmp_path / "empty.ckpt")
