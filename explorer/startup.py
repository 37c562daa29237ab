"""Start-up progress that the page shows while the server already answers.

The app serves its page within seconds of process start; loading weights, downloading galleries and
building the demo gallery happen afterwards, as named steps of a :class:`Startup`. Each step reports
what it does and how far it is; the page polls :meth:`Startup.snapshot` and Search refuses politely
(:class:`NotReadyError`, shown as a message) until :attr:`Startup.ready`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("pending", "running", "done", "failed", "skipped")
ICONS = {"pending": "○", "running": "◐", "done": "✔", "failed": "✖", "skipped": "–"}


class NotReadyError(RuntimeError):
    """The model or the galleries are still being prepared; the message says what is happening."""


@dataclass
class Step:
    """One start-up step as the page shows it."""

    name: str
    label: str
    status: str = "pending"
    message: str = ""
    fraction: float | None = None  #: progress of a running step in [0, 1], None when unknown
    seconds: float = 0.0  #: time taken (so far)
    started: float = field(default=0.0, repr=False)


class Startup:
    """Thread-safe state of the start-up steps (written by the start-up runner, read by the page)."""

    def __init__(self, steps: list[tuple[str, str]] | None = None) -> None:
        self._lock = threading.Lock()
        self._steps: dict[str, Step] = {}
        self._ready = threading.Event()
        self._done = threading.Event()
        self.error = ""  #: why the app cannot search (set by :meth:`fail_startup`)
        self.version = 0  #: bumped on every change (the page refreshes when it moves)
        self.t0 = time.monotonic()
        for name, label in steps or []:
            self.add(name, label)

    # ---- writing ------------------------------------------------------------------------------------
    def add(self, name: str, label: str) -> None:
        """Declare a step (shown as pending)."""
        with self._lock:
            self._steps[name] = Step(name, label)
            self.version += 1

    def _set(self, name: str, **changes: Any) -> None:
        with self._lock:
            step = self._steps.setdefault(name, Step(name, name))
            now = time.monotonic()
            if changes.get("status") == "running" and step.status != "running":
                step.started = now
            for key, value in changes.items():
                setattr(step, key, value)
            if step.started:
                step.seconds = round(now - step.started, 1)
            self.version += 1

    def start(self, name: str, message: str = "") -> None:
        """Mark ``name`` running."""
        self._set(name, status="running", message=message, fraction=None)

    def progress(self, name: str, message: str, fraction: float | None = None) -> None:
        """Update a running step's message and fraction."""
        self._set(
            name,
            status="running",
            message=message,
            fraction=None if fraction is None else max(0.0, min(1.0, float(fraction))),
        )

    def reporter(self, name: str):
        """A ``report(message, fraction)`` callable writing into step ``name``."""
        return lambda message, fraction=None: self.progress(name, message, fraction)

    def finish(self, name: str, message: str = "") -> None:
        """Mark ``name`` done."""
        self._set(name, status="done", message=message, fraction=1.0)

    def skip(self, name: str, message: str = "") -> None:
        """Mark ``name`` skipped (not needed in this configuration)."""
        self._set(name, status="skipped", message=message, fraction=None)

    def fail(self, name: str, message: str) -> None:
        """Mark ``name`` failed; the app may still work without it (see :meth:`fail_startup`)."""
        self._set(name, status="failed", message=message, fraction=None)

    def mark_ready(self) -> None:
        """Search works from now on."""
        with self._lock:
            self.version += 1
        self._ready.set()

    def fail_startup(self, message: str) -> None:
        """The app cannot search at all (e.g. the weights cannot be had): every search says ``message``."""
        with self._lock:
            self.error = message
            self.version += 1
        self._done.set()

    def mark_done(self) -> None:
        """Every step has ended."""
        with self._lock:
            self.version += 1
        self._done.set()

    # ---- reading ------------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True once search works."""
        return self._ready.is_set()

    @property
    def done(self) -> bool:
        """True once every step has ended (successfully or not)."""
        return self._done.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until ready (or the start-up failed); returns :attr:`ready`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self.error or (deadline is not None and time.monotonic() > deadline):
                break
        return self.ready

    def current(self) -> Step | None:
        """The running step (the first one), or None."""
        with self._lock:
            return next((s for s in self._steps.values() if s.status == "running"), None)

    def describe(self) -> str:
        """One sentence on what is happening, e.g. "downloading webvid-covr.ckpt (42 %)"."""
        if self.error:
            return self.error
        step = self.current()
        if step is None:
            return "starting" if not self.ready else "ready"
        pct = f" ({step.fraction * 100:.0f} %)" if step.fraction is not None else ""
        return f"{step.label}: {step.message or 'working'}{pct}"

    def require_ready(self, what: str = "Search") -> None:
        """Raise :class:`NotReadyError` with a clear message until search works."""
        if self.ready:
            return
        if self.error:
            raise NotReadyError(f"{what} is unavailable: {self.error}")
        raise NotReadyError(
            f"{what} is not ready yet: the app is still starting (now: {self.describe()}). The progress is "
            "shown at the top of the page; try again when it says Ready."
        )

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: ready, done, error, elapsed seconds, what is happening, and every step."""
        with self._lock:
            steps = [asdict(s) for s in self._steps.values()]
            version = self.version
        for s in steps:
            s.pop("started", None)
        return {
            "ready": self.ready,
            "done": self.done,
            "error": self.error,
            "version": version,
            "elapsed_s": round(time.monotonic() - self.t0, 1),
            "now": self.describe(),
            "steps": steps,
        }

    def markdown(self) -> str:
        """The start-up panel: a status line and one line per step."""
        snap = self.snapshot()
        if snap["error"]:
            head = f"**Start-up failed:** {snap['error']}"
        elif snap["ready"] and snap["done"]:
            head = f"**Ready** (started in {snap['elapsed_s']:.0f} s)."
        elif snap["ready"]:
            head = "**Ready to search.** Still preparing in the background: " + snap["now"]
        else:
            head = (
                "**Starting — Search works as soon as the model is ready** "
                f"({snap['elapsed_s']:.0f} s so far). "
                f"Now: {snap['now']}"
            )
        lines = [head, ""]
        for s in snap["steps"]:
            pct = (
                f" {s['fraction'] * 100:.0f} %"
                if s["status"] == "running" and s["fraction"] is not None
                else ""
            )
            took = f" · {s['seconds']:.0f} s" if s["seconds"] >= 1 else ""
            msg = f" — {s['message']}" if s["message"] else ""
            lines.append(f"- {ICONS[s['status']]} **{s['label']}**{pct}{msg}{took}")
        return "\n".join(lines)
