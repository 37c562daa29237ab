"""Live server fixture (``python app.py --encoder lite`` via ``helpers.live_app``) and headless Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers.live_app import CHROMIUM, CHROMIUM_ARGS, start_app

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output"


@pytest.fixture(scope="session")
def live_app(tmp_path_factory):
    """One lite-encoder server for the whole test session."""
    app = start_app(tmp_path_factory.mktemp("appdata") / "data")
    yield app
    app.stop()


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
