"""Every app flag has an environment variable (a Space runs ``python app.py`` with no flags), and README's
configuration table lists each in exactly one row, with no row for a flag or variable the app lacks."""

from __future__ import annotations

import pytest

from covr_core.encoder_registry import EXTRA_CONFIGS_ENV
from covr_core.extensions import EXTENSIONS_ENV
from covr_core.pretrained import PROBE_TIMEOUT_ENV
from covr_core.settings import APP_ENV_VARS, AppOptions, app_options_from_env
from helpers.docs import README, tables


def test_each_variable_sets_its_option_and_flags_win(monkeypatch):
    import app

    env = {var: f"value-{i}" for i, var in enumerate(APP_ENV_VARS)}
    env["COVR_DATA_DIR"] = "/srv/covr"
    for var in APP_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    assert app_options_from_env({}) == AppOptions()  # defaults: auto encoder, auto device, auto dtype
    assert AppOptions().device == "auto" and AppOptions().dtype == "auto" and AppOptions().encoder == "auto"
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    opts = app.parse_args([])
    for var, (attr, _flag, _default, _meaning) in APP_ENV_VARS.items():
        got = getattr(opts, attr)
        assert str(got) == env[var], (var, got)
    flags = app.parse_args(["--device", "cpu", "--weights", "cirr_ft-covr+gt", "--gallery-repo", "me/g"])
    assert (flags.device, flags.weights, flags.gallery_repo) == ("cpu", "cirr_ft-covr+gt", "me/g")
    assert flags.dtype == env["COVR_DTYPE"]  # the others still come from the environment


def test_required_variables_exist():
    options = {attr for attr, *_ in APP_ENV_VARS.values()}
    assert {"encoder", "weights", "mlp", "device", "gallery", "gallery_repo", "dtype", "checkpoint",
            "data_dir"} <= options


def _readme_rows() -> list[list[str]]:
    """The rows (cells) of README's tables, headers left out."""
    return [cells for table in tables(README.read_text(encoding="utf-8")) for _no, cells in table[1:]]


def test_one_readme_table_has_every_flag_and_variable():
    rows = [cells for cells in _readme_rows() if cells[0].startswith("`--")]
    for var, (_attr, flag, _default, _meaning) in APP_ENV_VARS.items():
        hits = [r for r in rows if r[:2] == [f"`{flag}`", f"`{var}`"]]
        assert len(hits) == 1, f"README needs one table row `{flag}` | `{var}`"
    known = {(f"`{flag}`", f"`{var}`") for var, (_a, flag, _d, _m) in APP_ENV_VARS.items()}
    stale = [r[:2] for r in rows if tuple(r[:2]) not in known]
    assert not stale, f"README rows for flags the app does not have: {stale}"


@pytest.mark.parametrize("flag", [flag for _attr, flag, _d, _m in APP_ENV_VARS.values()])
def test_help_names_each_variable(flag, capsys):
    import app

    with pytest.raises(SystemExit):
        app.parse_args(["--help"])
    out = capsys.readouterr().out
    var = next(v for v, (_a, f, _d, _m) in APP_ENV_VARS.items() if f == flag)
    assert flag in out and f"${var}" in out


def test_compute_variables_are_the_ones_the_speed_path_reads(monkeypatch, tmp_path):
    """COVR_VISION_BACKEND and COVR_COMPILE_CACHE* (issue 15) are listed once in README's table and in
    ``--help``, and each really configures the speed path."""
    from covr_core import artifact_cache, vision_backends
    from covr_core.settings import COMPUTE_ENV_VARS

    assert vision_backends.ENV_VAR in COMPUTE_ENV_VARS
    variable_rows = [r[1] for r in _readme_rows() if r[0] == "" and r[1].startswith("`COVR_")]
    for var in COMPUTE_ENV_VARS:
        assert variable_rows.count(f"`{var}`") == 1, var
    others = {f"`{v}`" for v in (*COMPUTE_ENV_VARS, EXTRA_CONFIGS_ENV, PROBE_TIMEOUT_ENV, EXTENSIONS_ENV)}
    assert set(variable_rows) <= others, f"README rows for variables the app does not read: {set(variable_rows) - others}"
    monkeypatch.setenv("COVR_VISION_BACKEND", "onnxruntime")
    assert vision_backends.requested_backend() == "onnxruntime"
    monkeypatch.setenv("COVR_COMPILE_CACHE", "off")
    assert artifact_cache.default_cache() is None
    monkeypatch.setenv("COVR_COMPILE_CACHE", str(tmp_path / "cc"))
    monkeypatch.setenv("COVR_COMPILE_CACHE_MB", "7")
    monkeypatch.setenv("COVR_COMPILE_CACHE_ENTRIES", "2")
    cache = artifact_cache.default_cache()
    assert (cache.root, cache.max_bytes, cache.max_entries) == (tmp_path / "cc", 7 << 20, 2)


def test_help_names_the_compute_variables(capsys):
    import app
    from covr_core.settings import COMPUTE_ENV_VARS

    with pytest.raises(SystemExit):
        app.parse_args(["--help"])
    out = capsys.readouterr().out
    assert all(var in out for var in COMPUTE_ENV_VARS)
