"""Load checkpoint state dicts without executing code from the file.

CoVR's released ``.ckpt`` files (Lightning ``Fabric.save``) pickle a scheduler object next to the
weights, so ``torch.load(weights_only=True)`` may refuse them. We try ``weights_only=True`` first and
otherwise read the torch zip archive with :class:`RestrictedUnpickler`: it rebuilds tensors, storages,
plain containers and ``OrderedDict`` only; every other global becomes an inert stub class (its
``__reduce__`` callable is never called). This is the only place in the project that unpickles.
"""

from __future__ import annotations

import collections
import hashlib
import io
import logging
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)


class StubObject:
    """Placeholder for a global the restricted unpickler refuses to import; keeps args and state."""

    _stub_of = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state, self.items = args, kwargs, None, []

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> "StubObject":
        """A stubbed callable (e.g. a stubbed ``getattr`` result) only returns another stub."""
        return type(self)(*args, **kwargs)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))

    def append(self, value: Any) -> None:
        self.items.append(value)

    def extend(self, values: Any) -> None:
        self.items.extend(values)

    def __repr__(self) -> str:
        return f"<stub of {self._stub_of}>"


def _rebuild_from_type_v2(func, new_type, args, state):
    """Safe stand-in for ``torch._tensor._rebuild_from_type_v2`` (plain tensors/parameters only)."""
    if func not in _REBUILD_FUNCS:
        raise pickle.UnpicklingError(f"refusing tensor rebuild function {func!r}")
    ret = func(*args)
    if new_type is torch.nn.Parameter and not isinstance(ret, torch.nn.Parameter):
        ret = torch.nn.Parameter(ret, requires_grad=False)
    return ret


_REBUILD_FUNCS = {torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter}

_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): torch.Tensor,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("builtins", "range"): range,
}
_STORAGE_NAMES = {
    name
    for name in dir(torch)
    if name.endswith("Storage") and isinstance(getattr(torch, name, None), type) and name != "TypedStorage"
}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` only returns allow-listed tensor/container builders.

    Anything else resolves to a fresh :class:`StubObject` subclass named after it (recorded in
    ``stubbed``), so reducing it just builds an inert placeholder."""

    def __init__(self, file, zip_reader=None) -> None:
        super().__init__(file)
        self.zip_reader = zip_reader
        self.stubbed: list[str] = []
        self._storages: dict[str, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_NAMES:
            return getattr(torch, name)
        qual = f"{module}.{name}"
        self.stubbed.append(qual)
        return type(f"Stub[{qual}]", (StubObject,), {"_stub_of": qual})

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage" or self.zip_reader is None:
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if storage_type is torch.UntypedStorage:
            dtype = torch.uint8
        else:
            dtype = getattr(storage_type, "dtype", None)
            if not isinstance(dtype, torch.dtype):
                raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        key = str(key)
        if key not in self._storages:
            nbytes = int(numel) * torch._utils._element_size(dtype)
            untyped = self.zip_reader.get_storage_from_record(f"data/{key}", nbytes, torch.UntypedStorage)
            untyped = untyped._typed_storage()._untyped_storage
            self._storages[key] = torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)
        return self._storages[key]


@dataclass
class LoadedCheckpoint:
    """A checkpoint object plus what was stubbed while loading it."""

    obj: Any
    stubbed: list[str] = field(default_factory=list)
    method: str = "weights_only"


def restricted_torch_load(path: str | Path) -> LoadedCheckpoint:
    """Read a torch zip checkpoint with :class:`RestrictedUnpickler` (no arbitrary code runs)."""
    reader = torch._C.PyTorchFileReader(str(path))
    if reader.has_record("byteorder") and reader.get_record("byteorder") not in (b"little", None):
        raise ValueError(f"{path}: big-endian checkpoints are not supported")
    unpickler = RestrictedUnpickler(io.BytesIO(reader.get_record("data.pkl")), zip_reader=reader)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # TypedStorage deprecation
        obj = unpickler.load()
    return LoadedCheckpoint(obj=obj, stubbed=sorted(set(unpickler.stubbed)), method="restricted")


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Load a checkpoint object: ``.safetensors`` directly, else ``torch.load(weights_only=True)``,
    else the restricted unpickler (for files that pickle foreign objects, e.g. a scheduler)."""
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
    try:
        return LoadedCheckpoint(obj=torch.load(path, map_location="cpu", weights_only=True))
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as exc:
        logger.info("weights_only load of %s refused (%s); using the restricted unpickler", path.name, exc)
    loaded = restricted_torch_load(path)
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
