"""Error handling shared by every callback (no server needed)."""

from __future__ import annotations

import gradio as gr
import pytest

from covr_core.media import MediaError
from explorer.ui_common import plotly_js_path, user_errors


def test_expected_errors_become_their_message():
    @user_errors
    def f(exc):
        raise exc

    with pytest.raises(gr.Error) as err:
        f(MediaError("Type a modification text"))
    assert err.value.message == "Type a modification text"
    with pytest.raises(gr.Error) as err:
        f(KeyError("unknown gallery 'x'"))
    assert err.value.message == "unknown gallery 'x'"


def test_unexpected_errors_are_logged_not_shown(caplog):
    @user_errors
    def boom():
        raise ZeroDivisionError("secret internals")

    with pytest.raises(gr.Error) as err:
        boom()
    assert "ZeroDivisionError" in err.value.message and "secret internals" not in err.value.message
    assert "secret internals" in caplog.text


def test_plotly_bundle_is_local():
    p = plotly_js_path()
    assert p.is_file() and p.stat().st_size > 1_000_000
