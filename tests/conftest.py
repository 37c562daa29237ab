"""Suite-wide test lanes: every test that talks to a live ``app.py`` server is marked ``live``.

``make test-fast`` runs ``-m "not browser and not live"`` (no server, no Chromium); ``make test`` runs all.
"""

from __future__ import annotations

import pytest

LIVE_FIXTURES = {"live_app"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``live`` each test that uses the live-server fixture (directly or through another fixture)."""
    for item in items:
        if LIVE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.live)
