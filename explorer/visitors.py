"""Who is asking: visitors (for private curation), client addresses and per-client rate limits.

* On a Hugging Face Space (``SPACE_ID`` set) every visitor has their own pinned examples and exports: a
  signed-in visitor (Hugging Face OAuth, when the Space enables it with ``hf_oauth: true``) is their user
  name; anyone else is a random token kept in their browser (``gr.BrowserState``), which the server only ever
  stores as an HMAC (``Visitor.key``), so neither tokens nor user names appear on disk. Locally (no
  ``SPACE_ID``) everyone shares one store, as a single researcher expects.
* :func:`client_address` is the address rate limits and queue fairness count by: the peer address, or on a
  Space (behind Hugging Face's proxy) the last ``X-Forwarded-For`` entry, the one the proxy added.
* :class:`RateLimiter` is a sliding-window limit per key (``N`` events per ``window_s``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHARED = "shared"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22,128}$")


def on_space(env: Mapping[str, str] | None = None) -> bool:
    """True when running on a Hugging Face Space (``SPACE_ID`` is set)."""
    return bool((os.environ if env is None else env).get("SPACE_ID"))


def oauth_enabled(env: Mapping[str, str] | None = None) -> bool:
    """True when the Space has Hugging Face sign-in enabled (``hf_oauth: true`` sets ``OAUTH_CLIENT_ID``)."""
    env = os.environ if env is None else env
    return on_space(env) and bool(env.get("OAUTH_CLIENT_ID"))


def new_token() -> str:
    """A fresh random browser token (128 bits, URL-safe)."""
    return secrets.token_urlsafe(16)


def valid_token(token: Any) -> bool:
    """True for a token this server could have issued (any other value gets a new token)."""
    return isinstance(token, str) and bool(_TOKEN.match(token))


def load_secret(path: str | Path) -> bytes:
    """The server's HMAC key: read from ``path`` or created there once (mode 0600)."""
    path = Path(path)
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    data = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return data


@dataclass(frozen=True)
class Visitor:
    """One visitor: ``key`` names their private store (``"shared"`` locally), ``label`` is shown to them."""

    key: str
    label: str

    @property
    def shared(self) -> bool:
        """True for the one store everybody shares (not on a Space)."""
        return self.key == SHARED


def identify(token: Any, username: str | None, secret: bytes, private: bool) -> Visitor:
    """The visitor of a request: shared when not ``private``; else the signed-in ``username`` or the browser
    ``token`` (which must be valid), as an HMAC so that the store name reveals neither."""
    if not private:
        return Visitor(SHARED, "everyone on this server (local run)")
    if username:
        digest = hmac.new(secret, f"hf:{username}".encode(), hashlib.sha256).hexdigest()[:32]
        return Visitor(f"u-{digest}", f"signed in as {username}")
    if not valid_token(token):
        raise ValueError("This browser has no visitor id yet; reload the page.")
    digest = hmac.new(secret, f"browser:{token}".encode(), hashlib.sha256).hexdigest()[:32]
    return Visitor(f"b-{digest}", "this browser")


def client_address(headers: Mapping[str, str], peer: str | None, behind_proxy: bool) -> str:
    """The client's address: the last ``X-Forwarded-For`` entry behind a proxy, else the peer address."""
    if behind_proxy:
        forwarded = [p.strip() for p in str(headers.get("x-forwarded-for", "")).split(",") if p.strip()]
        if forwarded:
            return forwarded[-1]
    return peer or "unknown"


class RateLimiter:
    """At most ``limit`` events per ``window_s`` seconds per key (sliding window, bounded memory)."""

    def __init__(self, limit: int, window_s: float = 60.0, max_keys: int = 100_000):
        self.limit = int(limit)
        self.window_s = float(window_s)
        self.max_keys = max_keys
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, key: str, now: float | None = None) -> float:
        """0 and the event is counted when ``key`` is under its limit; else the seconds until it is."""
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._events.get(key)
            if q is None:
                if len(self._events) >= self.max_keys:  # forget the oldest key rather than grow without bound
                    self._events.pop(next(iter(self._events)))
                q = self._events[key] = deque()
            while q and q[0] <= now - self.window_s:
                q.popleft()
            if len(q) >= self.limit:
                return q[0] + self.window_s - now
            q.append(now)
            return 0.0
