"""Content-hash keyed, bounded, thread-safe LRU cache (reference-image states of the encoders)."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np


def content_hash(data: "bytes | np.ndarray | Any") -> str:
    """sha256 (hex) of the content: raw bytes, an array (dtype, shape and values) or a PIL image
    (mode, size and pixels). Two images with equal pixels get the same key, whatever their file name."""
    h = hashlib.sha256()
    if isinstance(data, (bytes, bytearray, memoryview)):
        h.update(b"bytes:")
        h.update(bytes(data))
    elif isinstance(data, np.ndarray):
        arr = np.ascontiguousarray(data)
        h.update(f"array:{arr.dtype.str}:{arr.shape}:".encode())
        h.update(arr.tobytes())
    elif hasattr(data, "tobytes") and hasattr(data, "mode") and hasattr(data, "size"):
        h.update(f"image:{data.mode}:{tuple(data.size)}:".encode())
        h.update(data.tobytes())
    else:
        raise TypeError(f"content_hash: unsupported type {type(data).__name__}")
    return h.hexdigest()


class LRUCache:
    """Bounded least-recently-used mapping; ``get`` refreshes an entry, ``put`` evicts the oldest.

    Counters ``hits`` and ``misses`` record ``get`` outcomes (useful in tests and the UI)."""

    def __init__(self, maxsize: int = 32) -> None:
        if maxsize < 0:
            raise ValueError("maxsize must be >= 0")
        self.maxsize = int(maxsize)
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, default: Any = None) -> Any:
        """Value for ``key`` (marking it most recent) or ``default``."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return default

    def put(self, key: Hashable, value: Any) -> None:
        """Insert or refresh ``key``; evict least-recently-used entries beyond ``maxsize``."""
        with self._lock:
            if self.maxsize == 0:
                return
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def pop(self, key: Hashable, default: Any = None) -> Any:
        """Remove ``key`` and return its value (or ``default``)."""
        with self._lock:
            return self._data.pop(key, default)

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        with self._lock:
            self._data.clear()

    def keys(self) -> list:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._data.keys())

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)
