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


@pytest.fixture()
def shoot(output_dir):
    """``shoot(page, name, full_page=True)``: a screenshot in test-output/ once no output is pending (Gradio
    dims an event's outputs to 20 % while it runs and fades them back in 0.15 s), so a reviewer sees the page
    as its user does, not mid-update."""

    def shoot_(page, name: str, full_page: bool = True) -> None:
        page.wait_for_function("() => !document.querySelector('.pending')", timeout=60_000)
        page.wait_for_timeout(400)
        page.screenshot(path=str(output_dir / name), full_page=full_page)

    return shoot_


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


@pytest.fixture()
def open_page(browser, live_app):
    """``open_page(query="", width=1400, height=1000)`` -> a loaded page of the live app (Search ready);
    ``page.errors`` collects the page's JavaScript errors. Contexts are closed after the test."""
    contexts = []

    def open_(query: str = "", width: int = 1400, height: int = 1000):
        ctx = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        contexts.append(ctx)
        pg = ctx.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(live_app.url + query, wait_until="domcontentloaded")
        pg.wait_for_selector("#search-btn", timeout=120_000)
        pg.errors = errors  # type: ignore[attr-defined]
        return pg

    yield open_
    for ctx in contexts:
        ctx.close()


#: A server configured as on a public Hugging Face Space, with small limits so that tests reach them quickly.
PUBLIC_ENV = {
    "SPACE_ID": "covr-tests/public",
    "COVR_MAX_PENDING_PER_SESSION": "2",
    "COVR_MAX_PENDING_PER_CLIENT": "4",
    "COVR_MAX_PINS_PER_VISITOR": "3",
    "COVR_MAX_EXPORTS_PER_VISITOR": "2",
    "COVR_UPLOADS_PER_MINUTE": "20",
    "COVR_EXPORT_MAX_AGE_S": "40",  # exports are deleted 10 s after their download starts
}


@pytest.fixture(scope="session")
def public_app(tmp_path_factory, live_app):
    """A server as on a public Space (``SPACE_ID`` set: private curation, proxy addresses) whose data folder
    holds hostile galleries before it starts (helpers.hostile_galleries). ``live_app`` first: its built demo
    gallery is the template copied here."""
    from helpers.hostile_galleries import seed_before_start
    from helpers.live_app import seed_data_dir

    data = tmp_path_factory.mktemp("public") / "data"
    data.mkdir()
    seed_data_dir(data)
    seed_before_start(data)
    app = start_app(data, env=PUBLIC_ENV)
    yield app
    app.stop()
