"""Start the real app (``python app.py --encoder lite``) as a subprocess for live-server tests and benches.

``start_app(data_dir, env=...)`` launches the server on a free port with its own ``COVR_DATA_DIR`` and
``GRADIO_TEMP_DIR``, waits until the page answers and then, by default, until the app's start-up work is
done (``/startup_status``: encoder loaded, demo gallery built, map and mini benchmark made), so tests see
the app as a user does once it says Ready; ``wait="page"`` returns as soon as the page answers (the
start-up experience), ``wait="ready"`` once Search works. ``LiveApp.stop()`` ends it (SIGTERM, SIGKILL).
The first start in a process builds the demo gallery (and the mini benchmarks) in its data folder; later
starts with an empty data folder copy those built folders from that first one instead of rebuilding,
so each extra server costs only the encoder load.
"""

from __future__ import annotations

import atexit
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

WAITS = ("page", "ready", "done")

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = float(os.environ.get("COVR_TEST_START_TIMEOUT", "900"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
#: Headless Debian Chromium flags: no sandbox (root), and no background traffic on a machine without network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_BUILT_PARTS = ("galleries", "queries", "evaluations", "webvid_filter")
_template: dict[str, Path] = {}


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveApp:
    """A running app server."""

    proc: subprocess.Popen
    port: int
    data_dir: Path
    temp_dir: Path
    log_path: Path
    host: str = "127.0.0.1"
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:50123/``."""
        return f"http://{self.host}:{self.port}/"

    def client(self):
        """A fresh ``gradio_client.Client`` (its own session) connected to the server."""
        from gradio_client import Client

        return Client(self.url, verbose=False, download_files=False)

    def alive(self) -> bool:
        """True when the process runs and the page answers HTTP 200."""
        if self.proc.poll() is not None:
            return False
        try:
            return httpx.get(self.url, timeout=30).status_code == 200
        except httpx.HTTPError:
            return False

    def startup_status(self) -> dict:
        """The app's start-up state (``/startup_status``): ready, done, error, now, steps."""
        import json

        answer = call_api(self, "startup_status", [], timeout=60)
        for line in answer.splitlines():
            if line.startswith("data: ") and "event: complete" in answer:
                value = json.loads(line[len("data: "):])
                return value[0] if isinstance(value, list) else value
        raise RuntimeError(f"/startup_status gave no answer: {answer[:500]}")

    def wait_startup(self, until: str = "done", timeout: float = START_TIMEOUT_S, poll_s: float = 1.0) -> dict:
        """Poll ``/startup_status`` until ``until`` ("ready" or "done"); RuntimeError with the log when the
        start-up fails, the process exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        status: dict = {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with code {self.proc.returncode}:\n{self.log()[-6000:]}")
            try:
                status = self.startup_status()
            except (RuntimeError, httpx.HTTPError):
                status = {}
            if status.get("error"):
                raise RuntimeError(f"app start-up failed: {status['error']}\n{self.log()[-6000:]}")
            if status.get(until):
                return status
            time.sleep(poll_s)
        raise RuntimeError(f"app not {until} within {timeout:.0f} s ({status.get('now')}):\n{self.log()[-6000:]}")

    def log(self) -> str:
        """The server's stdout + stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the server (its whole process group), SIGKILL after ``timeout`` seconds."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)


def seed_data_dir(data_dir: Path) -> None:
    """Copy the demo gallery and mini benchmarks built by an earlier server into an empty ``data_dir``."""
    src = _template.get("data")
    if src is None or any(data_dir.iterdir()):
        return
    for part in _BUILT_PARTS:
        if (src / part).is_dir():
            shutil.copytree(src / part, data_dir / part)


def _remember_template(data_dir: Path) -> None:
    if "data" in _template:
        return
    dest = Path(tempfile.mkdtemp(prefix="covr-live-template-"))
    atexit.register(shutil.rmtree, dest, True)
    for part in _BUILT_PARTS:
        if (data_dir / part).is_dir():
            shutil.copytree(data_dir / part, dest / part)
    _template["data"] = dest


def start_app(data_dir: str | Path, env: dict[str, str] | None = None, encoder: str = "lite",
              temp_dir: str | Path | None = None, args: list[str] | None = None,
              port: int | None = None, timeout: float = START_TIMEOUT_S, seed: bool = True,
              poll_s: float = 1.0, wait: str = "done") -> LiveApp:
    """Start ``python app.py --encoder <encoder>`` with ``COVR_DATA_DIR=data_dir`` and wait until it serves.

    ``env`` adds or overrides environment variables (limits, ``GRADIO_SERVER_NAME``...).
    ``GRADIO_TEMP_DIR`` is ``temp_dir`` (default: ``<data_dir>/../gradio-tmp``). Raises
    ``RuntimeError`` with the server log when it exits or does not answer within ``timeout``.
    ``seed=False`` never copies an earlier server's built data (benchmarks of a cold start); ``poll_s`` is
    how often the page is tried; ``wait`` is what to wait for: "page", "ready" (Search works) or "done"
    (the default: every start-up step ended).
    """
    if wait not in WAITS:
        raise ValueError(f"wait must be one of {WAITS}")
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if seed:
        seed_data_dir(data_dir)
    temp_dir = Path(temp_dir) if temp_dir else data_dir.parent / f"{data_dir.name}-gradio-tmp"
    temp_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    full_env = dict(os.environ)
    full_env.update({
        "COVR_DATA_DIR": str(data_dir),
        "GRADIO_TEMP_DIR": str(temp_dir),
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    full_env.pop("GRADIO_SERVER_NAME", None)
    full_env.update(env or {})
    log_path = data_dir.parent / f"{data_dir.name}-server-{port}.log"
    fh = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "app.py", "--encoder", encoder, *(args or [])], cwd=REPO_ROOT,
                            env=full_env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    fh.close()
    host = full_env.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    app = LiveApp(proc, port, data_dir, temp_dir, log_path, "127.0.0.1" if host == "0.0.0.0" else host, full_env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited with code {proc.returncode}:\n{app.log()[-6000:]}")
        try:
            answered = httpx.get(app.url, timeout=10).status_code == 200
        except httpx.HTTPError:
            answered = False
        if answered:
            if wait == "page":
                return app
            try:
                app.wait_startup(wait, timeout=max(1.0, deadline - time.monotonic()), poll_s=poll_s)
            except RuntimeError:
                app.stop()
                raise
            if wait == "done":
                _remember_template(data_dir)
            return app
        time.sleep(poll_s)
    app.stop()
    raise RuntimeError(f"app did not answer within {timeout:.0f} s:\n{app.log()[-6000:]}")


def raw_get(app: LiveApp, path: str) -> tuple[int, bytes]:
    """GET ``path`` sent byte for byte (no client-side normalisation of ``..`` or ``%2e``): status and body."""
    conn = http.client.HTTPConnection(app.host, app.port, timeout=60)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def count_files(folder: str | Path) -> int:
    """Number of regular files below ``folder`` (0 when it does not exist)."""
    folder = Path(folder)
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """``(ip, port)`` of every TCP socket in LISTEN state owned by ``pid`` or its children."""
    import psutil

    proc = psutil.Process(pid)
    out: set[tuple[str, int]] = set()
    for p in [proc, *proc.children(recursive=True)]:
        try:
            conns = p.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out.update((c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN)
    return out


def search_parts(result) -> tuple[list, str, dict]:
    """``(gallery, status markdown, record)`` from a /search result, whatever the order of extra outputs.

    The record is the dict output holding ``results``; the status is the string that mentions "results".
    """
    values = list(result) if isinstance(result, (list, tuple)) else [result]
    record = next((v for v in values if isinstance(v, dict) and "results" in v), None)
    status = next((v for v in values if isinstance(v, str) and "results" in v), "")
    gallery = next((v for v in values if isinstance(v, list)), [])
    if record is None:
        raise AssertionError(f"no record in the /search result: {str(values)[:500]}")
    return gallery, status, record


def call_api(app: LiveApp, api: str, data: list, timeout: float = 300) -> str:
    """POST ``/gradio_api/call/<api>`` with raw JSON ``data`` (nothing uploaded or rewritten by a client)
    and return the whole server-sent-events answer as text (``event: complete`` or ``event: error``)."""
    r = httpx.post(f"{app.url}gradio_api/call/{api}", json={"data": data}, timeout=60)
    if r.status_code != 200:
        return f"HTTP {r.status_code}: {r.text}"
    event_id = r.json()["event_id"]
    with httpx.stream("GET", f"{app.url}gradio_api/call/{api}/{event_id}", timeout=timeout) as s:
        return "".join(s.iter_text())
