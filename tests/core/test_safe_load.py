"""Restricted checkpoint loading: tensors come back, foreign pickled objects are never executed."""

from __future__ import annotations

import enum
import os
import pickle
import subprocess
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from covr_core.safe_load import StubObject, extract_state_dict, load_checkpoint, load_checkpoint_state_dict


class FileWriter:
    """Unpickling this object would create a file (if the loader called ``Path.write_text``)."""

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


class SubprocessToucher:
    """Unpickling this would run ``touch`` through ``subprocess`` (a module torch does not block)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (subprocess.call, (["touch", self.target],))


class ExecWriter:
    """Unpickling this would ``exec`` Python source that creates a file."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (exec, (f"open({self.target!r}, 'w').write('pwned')",))


class CosineSchedule:
    """Stand-in for CoVR's pickled scheduler object."""

    def __init__(self) -> None:
        self.base_lr, self.steps = 1e-4, 1000


class Precision(enum.Enum):
    """A pickled enum, as Lightning stores precision plugins' settings."""

    BF16 = "bf16-mixed"


def _state():
    return OrderedDict(
        [
            ("module.vision_proj.weight", torch.randn(4, 6)),
            ("module.text_proj.bias", torch.arange(4, dtype=torch.float16)),
            ("module.text_encoder.embeddings.position_ids", torch.arange(8, dtype=torch.int64)[None]),
        ]
    )


def _assert_same_weights(out, sd):
    assert set(out) == {k[len("module.") :] for k in sd}
    for key, value in sd.items():
        assert torch.equal(out[key[len("module.") :]], value)
        assert out[key[len("module.") :]].dtype == value.dtype


def _registered_stubs() -> list:
    return [g for g in torch.serialization.get_safe_globals() if isinstance(g, tuple) and "Stub[" in repr(g[0])]


def test_plain_weights_only_file(tmp_path):
    sd = _state()
    torch.save({"epoch": 3, "model": sd}, tmp_path / "a.ckpt")
    loaded = load_checkpoint(tmp_path / "a.ckpt")
    assert loaded.method == "weights_only" and loaded.stubbed == []
    _assert_same_weights(extract_state_dict(loaded.obj), sd)


def test_fabric_checkpoint_with_pickled_extras_loads(tmp_path):
    """Fabric.save's layout: weights, optimizer state, the scheduler object pickled as is, extras."""
    sd = _state()
    shared = torch.randn(10)
    sd["module.view_a"] = shared[:5]  # views of one storage come back as views of one storage
    sd["module.view_b"] = shared[5:]
    payload = {
        "epoch": 4,
        "model": sd,
        "optimizer": {"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-5}]},
        "scheduler": CosineSchedule(),
        "precision": Precision.BF16,
        "hparams": [CosineSchedule(), {"nested": CosineSchedule()}],
    }
    torch.save(payload, tmp_path / "fabric.ckpt")
    loaded = load_checkpoint(tmp_path / "fabric.ckpt")
    assert loaded.method == "weights_only+stubs"
    assert loaded.stubbed == sorted(f"{__name__}.{n}" for n in ("CosineSchedule", "Precision"))
    _assert_same_weights(extract_state_dict(loaded.obj), sd)
    out = loaded.obj["model"]
    assert out["module.view_a"].untyped_storage().data_ptr() == out["module.view_b"].untyped_storage().data_ptr()
    scheduler = loaded.obj["scheduler"]
    assert isinstance(scheduler, StubObject) and not isinstance(scheduler, CosineSchedule)
    assert scheduler.state == {"base_lr": 1e-4, "steps": 1000}
    assert repr(scheduler) == f"<stub of {__name__}.CosineSchedule>"
    assert isinstance(loaded.obj["precision"], StubObject) and loaded.obj["precision"].args == ("bf16-mixed",)
    assert loaded.obj["hparams"][1]["nested"].state == {"base_lr": 1e-4, "steps": 1000}
    assert torch.equal(loaded.obj["optimizer"]["state"][0]["exp_avg"], torch.zeros(3))
    # the stubs are registered only while loading: a plain weights_only load still refuses the file
    assert not _registered_stubs()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "fabric.ckpt", weights_only=True)


@pytest.mark.parametrize("evil_type", [SubprocessToucher, ExecWriter])
def test_foreign_callables_are_stubbed_not_called(tmp_path, evil_type):
    """A global from a module torch does not block loads as an inert stub holding its arguments."""
    target = tmp_path / "pwned.txt"
    sd = _state()
    torch.save({"model": sd, "evil": evil_type(str(target)), "more": [evil_type(str(target))]}, tmp_path / "e.ckpt")
    loaded = load_checkpoint(tmp_path / "e.ckpt")
    assert not target.exists(), "the loader executed a pickled __reduce__"
    assert isinstance(loaded.obj["evil"], StubObject) and isinstance(loaded.obj["more"][0], StubObject)
    assert str(target) in repr(loaded.obj["evil"].args)
    # protocol 2 writes subprocess.call under its Python 2 name, commands.call
    assert loaded.stubbed in (["commands.call"], ["subprocess.call"], ["builtins.exec"])
    _assert_same_weights(load_checkpoint_state_dict(tmp_path / "e.ckpt"), sd)
    assert not target.exists()


@pytest.mark.parametrize(
    "evil",
    [
        pytest.param(lambda t: FileWriter(t), id="getattr-then-call"),
        pytest.param(lambda t: ShellToucher(t), id="os.system"),
        pytest.param(lambda t: os.system, id="os.system-by-reference"),
        pytest.param(lambda t: [CosineSchedule(), FileWriter(t), ShellToucher(t)], id="mixed"),
    ],
)
def test_malicious_pickle_is_refused_and_not_executed(tmp_path, evil):
    """Files that call what a global returns, or name os/sys/posix, are refused with a clear error."""
    target = tmp_path / "pwned.txt"
    torch.save({"epoch": 1, "model": _state(), "evil": evil(str(target))}, tmp_path / "evil.ckpt")
    assert not target.exists()
    with pytest.raises(ValueError, match=r"evil\.ckpt: refused, not loadable without running its code") as info:
        load_checkpoint_state_dict(tmp_path / "evil.ckpt")
    assert not target.exists(), "the loader executed a pickled __reduce__"
    assert str(tmp_path) not in str(info.value)  # the message names the file, not the server path
    assert not _registered_stubs()


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
