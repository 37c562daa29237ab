"""Settings: documented defaults, environment overrides and clear errors for invalid values."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

import covr_core.settings as settings_module
from covr_core.settings import ENV_VARS, Limits, Settings, describe_settings, load_settings, replace_limits
from helpers.docs import documented_variables


def test_defaults():
    s = load_settings({})
    assert s == Settings()
    lim = s.limits
    assert lim.max_upload_mb == 50 and lim.max_upload_bytes == 50 * 1024 * 1024
    assert lim.max_image_pixels == 40_000_000 and lim.max_image_side == 12_000
    assert lim.max_video_seconds == 120 and lim.max_video_side == 1920 and lim.max_video_pixels == 1920 * 1088
    assert lim.max_text_chars == 1000 and lim.max_concurrent_jobs == 2
    assert s.data_dir == Path("./data")


def test_env_overrides_every_variable(tmp_path):
    env = {
        "COVR_MAX_UPLOAD_MB": "12.5",
        "COVR_MAX_IMAGE_PIXELS": "1_000_000",
        "COVR_MAX_IMAGE_SIDE": " 4096 ",
        "COVR_MAX_VIDEO_SECONDS": "30",
        "COVR_MAX_VIDEO_SIDE": "1280",
        "COVR_MAX_VIDEO_PIXELS": "921600",
        "COVR_MAX_TEXT_CHARS": "200",
        "COVR_MAX_CONCURRENT_JOBS": "4",
        "COVR_MAX_IMAGE_ASPECT": "8",
        "COVR_MAX_QUEUE_SIZE": "10",
        "COVR_MAX_PENDING_PER_SESSION": "2",
        "COVR_MAX_PENDING_PER_CLIENT": "5",
        "COVR_UPLOADS_PER_MINUTE": "7",
        "COVR_MAX_PINS_PER_VISITOR": "9",
        "COVR_MAX_EXPORTS_PER_VISITOR": "1",
        "COVR_EXPORT_MAX_AGE_S": "60",
        "COVR_DATA_DIR": str(tmp_path / "d"),
        "COVR_MEDIA_ROOTS": f"{tmp_path / 'm1'}{os.pathsep} {tmp_path / 'm2'} ",
        "UNRELATED": "x",
    }
    assert set(env) - {"UNRELATED"} == set(ENV_VARS)
    s = load_settings(env)
    assert s.limits == Limits(12.5, 1_000_000, 4096, 30.0, 1280, 921600, 200, 4, 8.0, 10, 2, 5, 7, 9, 1, 60)
    assert s.data_dir == tmp_path / "d"
    assert s.media_roots == (tmp_path / "m1", tmp_path / "m2")
    assert isinstance(s.limits.max_image_pixels, int) and isinstance(s.limits.max_upload_mb, float)


def test_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("COVR_MAX_TEXT_CHARS", "77")
    assert load_settings().limits.max_text_chars == 77


def test_empty_numeric_value_keeps_default():
    assert load_settings({"COVR_MAX_TEXT_CHARS": ""}).limits.max_text_chars == 1000


@pytest.mark.parametrize(
    "name, raw",
    [
        ("COVR_MAX_UPLOAD_MB", "abc"),
        ("COVR_MAX_UPLOAD_MB", "0"),
        ("COVR_MAX_UPLOAD_MB", "-5"),
        ("COVR_MAX_UPLOAD_MB", "nan"),
        ("COVR_MAX_VIDEO_SECONDS", "inf"),
        ("COVR_MAX_IMAGE_PIXELS", "1.5e6"),
        ("COVR_MAX_IMAGE_PIXELS", "40M"),
        ("COVR_MAX_CONCURRENT_JOBS", "0"),
        ("COVR_MAX_TEXT_CHARS", "-1"),
        ("COVR_DATA_DIR", "   "),
        ("COVR_MAX_QUEUE_SIZE", "0"),
        ("COVR_MAX_IMAGE_ASPECT", "-2"),
        ("COVR_MEDIA_ROOTS", "relative/folder"),
    ],
)
def test_invalid_values_raise_clear_errors(name, raw):
    with pytest.raises(ValueError) as err:
        load_settings({name: raw})
    msg = str(err.value)
    assert name in msg
    assert repr(raw) in msg or "empty" in msg


def test_settings_are_frozen():
    s = load_settings({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.limits.max_text_chars = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.data_dir = Path("x")  # type: ignore[misc]
    changed = replace_limits(s, max_video_seconds=5)
    assert changed.limits.max_video_seconds == 5 and s.limits.max_video_seconds == 120


def test_every_setting_is_documented():
    """Each setting is in the module docstring's table and in exactly one table row of the docs (the limits in
    docs/SECURITY.md's limits table, the data folder in README's configuration table)."""
    doc = settings_module.__doc__ or ""
    documented = documented_variables()
    rows = describe_settings(load_settings({}))
    assert [r[0] for r in rows] == list(ENV_VARS)
    fields = {f.name for f in dataclasses.fields(Limits)} | {"data_dir", "media_roots"}
    assert {attr for attr, _, _ in ENV_VARS.values()} == fields
    for name, (attr, _kind, _desc) in ENV_VARS.items():
        assert name in doc, f"{name} missing from the settings docstring table"
        where = documented.get(name, [])
        assert len(where) == 1, f"{name} needs exactly one table row in README.md / docs/*.md, found {where}"
        expected = "README.md" if attr == "data_dir" else "docs/SECURITY.md"
        assert where[0].startswith(expected + ":"), (name, where)
