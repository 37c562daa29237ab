"""Suite-wide hooks.

- Lanes: every test that talks to a live ``app.py`` server is marked ``live``. ``make test-fast`` runs
  ``-m "not browser and not live and not slow"`` (no server, no Chromium); ``make test`` runs all.
- Tests marked ``isolated`` run in a fresh Python process (a child pytest: seconds each, so they are also
  marked ``slow`` and stay out of ``make test-fast``). Why: on an x86 KVM guest with AMX (the CI
  machines of this project), a pytest process that has run OpenVINO inference later dies with SIGSEGV
  (``si_code`` SI_KERNEL, at a syscall's return in the main thread), tests after it included. Such tests run
  in a child ``pytest`` of their own node id; the parent reports the child's outcome (pass, skip with its
  reason, or failure with the child's output), so nothing is hidden.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

LIVE_FIXTURES = {"live_app"}
CHILD_ENV = "COVR_TEST_ISOLATED_CHILD"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "isolated: runs in a fresh Python process (tests/conftest.py says why)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``live`` each test that uses the live-server fixture (directly or through another fixture), and
    ``slow`` each ``isolated`` one (its child process starts Python, torch and pytest again)."""
    for item in items:
        if LIVE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.live)
        if item.get_closest_marker("isolated") is not None:
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an ``isolated`` test's node id in a child pytest (unless this already is that child)."""
    if pyfuncitem.get_closest_marker("isolated") is None or os.environ.get(CHILD_ENV):
        return None
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", pyfuncitem.nodeid],
        cwd=pyfuncitem.config.rootpath, env={**os.environ, CHILD_ENV: "1"}, capture_output=True, text=True,
        timeout=1800,
    )
    out = res.stdout + res.stderr
    if res.returncode == 0 and re.search(r"\b1 passed\b", out):
        return True
    if res.returncode == 0 and re.search(r"\b1 skipped\b", out):
        reason = re.search(r"SKIPPED \[\d+\] [^:]+:\d+: (.*)", out)
        pytest.skip(f"(in the child process) {reason.group(1) if reason else 'skipped'}")
    pytest.fail(f"isolated test failed in its child process (exit {res.returncode}):\n{out[-6000:]}", pytrace=False)
