"""Live server fixture: ``python app.py --encoder lite`` on a free port with a temporary COVR_DATA_DIR."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output"
START_TIMEOUT_S = float(os.environ.get("COVR_TEST_START_TIMEOUT", "900"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class LiveApp:
    """A running app: its URL, data folder, process and log file."""

    url: str
    data_dir: Path
    proc: subprocess.Popen
    log: Path

    def log_tail(self, n: int = 40) -> str:
        """Last lines of the server log (for failure messages)."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(
    data_dir: Path, encoder: str = "lite", extra_env: dict | None = None, timeout_s: float = START_TIMEOUT_S
) -> LiveApp:
    """Start app.py as a subprocess and wait until its page answers."""
    port = free_port()
    env = {
        **os.environ,
        "COVR_DATA_DIR": str(data_dir),
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    log = data_dir / "server.log"
    fh = open(log, "w")
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--encoder", encoder],
        cwd=REPO,
        env=env,
        stdout=fh,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    app = LiveApp(url, data_dir, proc, log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}:\n{app.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return app
        except OSError:
            pass
        time.sleep(1.0)
    stop_app(app)
    raise TimeoutError(f"app.py did not answer within {timeout_s:.0f} s:\n{app.log_tail()}")


def stop_app(app: LiveApp) -> None:
    """Terminate the server (kill after 20 s)."""
    app.proc.terminate()
    try:
        app.proc.wait(20)
    except subprocess.TimeoutExpired:
        app.proc.kill()
        app.proc.wait(10)


@pytest.fixture(scope="session")
def live_app(tmp_path_factory):
    """One lite-encoder server for the whole test session (COVR_TEST_APP_URL reuses a running one)."""
    if os.environ.get("COVR_TEST_APP_URL"):
        yield LiveApp(
            os.environ["COVR_TEST_APP_URL"].rstrip("/") + "/",
            Path(os.environ.get("COVR_DATA_DIR", "data")),
            subprocess.Popen([sys.executable, "-c", "pass"]),
            Path(os.devnull),
        )
        return
    app = start_app(tmp_path_factory.mktemp("appdata"))
    yield app
    stop_app(app)
    if app.proc.returncode not in (0, -15, None):
        print(app.log_tail())


@pytest.fixture(scope="session")
def client(live_app):
    """A gradio_client.Client connected to the live server."""
    from gradio_client import Client

    return Client(live_app.url, verbose=False)


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """test-output/ (screenshots, kept for a human to look at)."""
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Chromium is not installed (make browser)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
