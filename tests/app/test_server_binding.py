"""The app listens on 127.0.0.1 unless told otherwise and never opens a public share link."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers.live_app import listening_addresses, start_app

REPO = Path(__file__).resolve().parents[2]
SOURCES = [REPO / "app.py", *sorted((REPO / "explorer").glob("*.py"))]


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _is_true(node: ast.AST) -> bool:
    return not (isinstance(node, ast.Constant) and node.value in (False, None))


def test_no_share_link_anywhere():
    """No ``share=<anything but False/None>`` keyword and no ``"share": True`` in a launch dict."""
    offenders = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(), filename=str(path))
        for call in _calls(tree):
            for kw in call.keywords:
                if kw.arg == "share" and _is_true(kw.value):
                    offenders.append(f"{path.name}:{call.lineno} share=...")
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if isinstance(key, ast.Constant) and key.value == "share" and _is_true(value):
                        offenders.append(f"{path.name}:{node.lineno} 'share': ...")
    assert not offenders, offenders


def test_launch_is_called_with_a_localhost_default():
    """app.py's ``launch(server_name=...)`` defaults to 127.0.0.1 (GRADIO_SERVER_NAME may override it)."""
    tree = ast.parse((REPO / "app.py").read_text())
    launches = [c for c in _calls(tree) if isinstance(c.func, ast.Attribute) and c.func.attr == "launch"]
    assert launches, "app.py never calls launch()"
    for call in launches:
        server_name = next((kw.value for kw in call.keywords if kw.arg == "server_name"), None)
        assert server_name is not None, "launch() without server_name binds per Gradio's default"
        consts = [n.value for n in ast.walk(server_name) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        assert "127.0.0.1" in consts and "0.0.0.0" not in consts, consts


def test_launch_kwargs_never_share(tmp_path):
    from covr_core.settings import Settings
    from explorer.served_files import ServedFiles, ServedFilesGuard
    from explorer.ui import launch_kwargs

    class _S:  # the smallest stand-in launch_kwargs reads: no galleries, default limits
        settings = Settings(data_dir=tmp_path)
        data_dir = tmp_path
        cache_dir = tmp_path / "cache" / "app"
        served = ServedFiles(tmp_path)

    kwargs = launch_kwargs(_S())
    assert kwargs.get("share") in (False, None)
    assert "server_name" not in kwargs or kwargs["server_name"] == "127.0.0.1"
    assert kwargs.get("allowed_paths") == [str(_S.cache_dir)]  # result copies only; the guard serves media
    assert kwargs.get("show_error") is False  # raw exception text never reaches the page
    assert [m.cls for m in kwargs["app_kwargs"]["middleware"]] == [ServedFilesGuard]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_live_server_listens_on_localhost_only(tmp_path):
    """Started without GRADIO_SERVER_NAME, every listening socket of the server is on 127.0.0.1."""
    app = start_app(tmp_path / "data")
    try:
        addrs = listening_addresses(app.proc.pid)
        assert (("127.0.0.1", app.port) in addrs), addrs
        assert all(ip == "127.0.0.1" for ip, _port in addrs), addrs
        assert "0.0.0.0" not in app.log() and "gradio.live" not in app.log()
    finally:
        app.stop()
