"""Fixtures of the precompute job tests: encoders loaded once per session, small synthetic datasets,
and a helper that runs a job as a real subprocess (for the SIGKILL tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.synthetic_data import make_cirr, make_demo_assets, make_webvid

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def lite_encoder():
    """The offline lite encoder (loaded once: its load is the slowest step of these tests)."""
    from covr_core.lite import load_lite_encoder

    return load_lite_encoder()


@pytest.fixture(scope="session")
def tiny_blip_dir(tmp_path_factory):
    """A tiny random BLIP saved with save_pretrained (loads through the real path)."""
    from helpers.tiny_blip import make_tiny_blip_folder

    return make_tiny_blip_folder(tmp_path_factory.mktemp("tiny_blip"))


@pytest.fixture(scope="session")
def tiny_blip(tiny_blip_dir):
    """The tiny BLIP as a BlipCoVREncoder."""
    from covr_core.blip_load import load_blip_encoder

    return load_blip_encoder(str(tiny_blip_dir))


@pytest.fixture(scope="session")
def cirr_data(tmp_path_factory):
    """A CIRR val split (12 images, 3 broken, 10 triplets); treat as read-only."""
    return make_cirr(tmp_path_factory.mktemp("cirr"), split="val", n_images=12, n_triplets=10)


@pytest.fixture(scope="session")
def webvid_data(tmp_path_factory):
    """WebVid-CoVR videos + CSV (8 videos, 1 corrupt, 1 missing, 10 rows); treat as read-only."""
    return make_webvid(tmp_path_factory.mktemp("webvid"), n_videos=8, n_rows=10)


@pytest.fixture(scope="session")
def demo_assets(tmp_path_factory):
    """An assets/-like folder with gallery.csv, 3 images and 1 video."""
    return make_demo_assets(tmp_path_factory.mktemp("assets"), n_images=3, n_videos=1)


def run_job(module: str, args: list[str], env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m <module> <args>`` from the repository root as a real subprocess."""
    full_env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "TQDM_DISABLE": "1",
                **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
