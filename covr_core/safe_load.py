"""Load checkpoint state dicts without executing code from the file.

CoVR's released ``.ckpt`` files (Lightning ``Fabric.save``) pickle a scheduler object next to the
weights, so a plain ``torch.load(weights_only=True)`` refuses them. We use torch's public safe-loading
API instead of an unpickler of our own: :func:`torch.serialization.get_unsafe_globals_in_checkpoint`
lists the foreign globals a file names, each is registered (``torch.serialization.safe_globals``) under
its name as a fresh inert :class:`StubObject` subclass (the real class or function is never imported),
and ``torch.load(weights_only=True)`` rebuilds the file. A stub only stores the arguments and state it
is given; calling a stub's result, globals from ``os``/``sys``/``posix``/``nt`` and item assignment into
foreign containers stay refused by torch's unpickler, so such files are rejected with a clear error.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

# torch's safe_globals context edits one process-wide set: our stubbed loads run one at a time so that
# two threads never race on it
_SAFE_GLOBALS_LOCK = threading.Lock()


class StubObject:
    """Inert stand-in for a global a checkpoint names: it keeps its arguments and state, nothing else."""

    _stub_of = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "StubObject":
        self = super().__new__(cls)
        self.args, self.kwargs, self.state = args, kwargs, None
        return self

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<stub of {self._stub_of}>"


def stub_class(qualname: str) -> type[StubObject]:
    """A fresh :class:`StubObject` subclass standing in for the global ``qualname``."""
    return type(f"Stub[{qualname}]", (StubObject,), {"_stub_of": qualname})


@dataclass
class LoadedCheckpoint:
    """A checkpoint object plus the foreign globals replaced by stubs while loading it."""

    obj: Any
    stubbed: list[str] = field(default_factory=list)
    method: str = "weights_only"


def _refused(path: Path, exc: BaseException) -> ValueError:
    return ValueError(f"{path.name}: refused, not loadable without running its code ({type(exc).__name__}: {exc})")


def load_with_stubs(path: str | Path) -> LoadedCheckpoint:
    """``torch.load(weights_only=True)`` of a torch zip checkpoint, every foreign global stubbed.

    Raises ``ValueError`` when torch's weights-only unpickler still refuses the file (e.g. it calls
    the result of a foreign function or names ``os.system``); nothing from the file runs either way."""
    path = Path(path)
    unsafe = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    stubs = [(stub_class(name), name) for name in unsafe]
    try:
        with _SAFE_GLOBALS_LOCK, torch.serialization.safe_globals(stubs):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as exc:
        raise _refused(path, exc) from exc
    return LoadedCheckpoint(obj=obj, stubbed=unsafe, method="weights_only+stubs" if unsafe else "weights_only")


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Load a checkpoint object: ``.safetensors`` directly, else ``torch.load(weights_only=True)`` with
    the file's foreign pickled objects (e.g. a scheduler) replaced by inert stubs (see module doc)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return LoadedCheckpoint(obj=load_file(str(path)), method="safetensors")
    if not zipfile.is_zipfile(path):
        # legacy (pre-1.6) torch.save format or not a checkpoint: only the weights_only loader may read it
        try:
            return LoadedCheckpoint(obj=torch.load(path, map_location="cpu", weights_only=True))
        except Exception as exc:  # noqa: BLE001 (any failure means: not loadable safely)
            raise ValueError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {exc})") from exc
    loaded = load_with_stubs(path)
    if loaded.stubbed:
        logger.warning("%s: stubbed (not executed) pickled objects: %s", path.name, ", ".join(loaded.stubbed))
    return loaded


def extract_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """The tensor state dict inside a checkpoint object (``model`` / ``state_dict`` sub-dict or the
    object itself), with a leading ``module.`` stripped from keys; non-tensor entries are dropped."""
    if isinstance(obj, dict):
        for sub in ("model", "state_dict"):
            if sub in obj and isinstance(obj[sub], dict):
                obj = obj[sub]
                break
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint holds no state dict (got {type(obj).__name__})")
    out: dict[str, torch.Tensor] = {}
    skipped = []
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            skipped.append(str(key))
            continue
        key = str(key)
        out[key[len("module.") :] if key.startswith("module.") else key] = value
    if skipped:
        logger.info("ignored %d non-tensor entries: %s", len(skipped), skipped[:10])
    if not out:
        raise ValueError("checkpoint state dict holds no tensors")
    return out


def load_checkpoint_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensor state dict of a ``.ckpt/.pth/.pt/.safetensors`` file, loaded safely (see module doc)."""
    return extract_state_dict(load_checkpoint(path).obj)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 (hex) of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
