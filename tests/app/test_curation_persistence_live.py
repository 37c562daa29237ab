"""Curated (pinned) examples are written atomically and survive an app restart (live server, same data dir)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gradio_client import handle_file

from helpers.live_app import search_parts, start_app

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "assets" / "images"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _listed_ids(client) -> list[str]:
    table = client.predict(None, api_name="/list_pinned")  # no browser token: a local run shares one store
    rows = table.get("data", []) if isinstance(table, dict) else table
    return [str(r[0]) for r in rows]


def _pin(client, image: Path, text: str) -> str:
    _g, _s, record = search_parts(client.predict(handle_file(str(image)), None, text, "AVG", None, 5,
                                                 api_name="/search"))
    assert len(record["results"]) == 5
    status = client.predict(handle_file(str(image)), None, None, api_name="/pin")
    assert "Pinned" in status, status
    return status.split("`")[1]


def test_pins_survive_a_restart(tmp_path):
    data = tmp_path / "data"
    app = start_app(data)
    try:
        client = app.client()
        pinned = {_pin(client, IMAGES / "apple.jpg", "make it an orange"): "make it an orange",
                  _pin(client, IMAGES / "aloe.jpg", "put it in a red pot"): "put it in a red pot"}
        assert set(pinned) <= set(_listed_ids(client))
    finally:
        app.stop()
    curated = data / "curated"
    # atomic writes leave only complete files: every record parses, no temp files remain
    assert sorted(p.stem for p in curated.glob("*.json")) == sorted(pinned)
    assert not [p for p in curated.iterdir() if p.suffix not in (".json", ".png")], list(curated.iterdir())
    for example_id, text in pinned.items():
        rec = json.loads((curated / f"{example_id}.json").read_text())
        assert rec["id"] == example_id and rec["text"] == text and len(rec["results"]) == 5
        assert (curated / f"{example_id}.png").stat().st_size > 0

    app2 = start_app(data)  # same data folder, fresh process
    try:
        client2 = app2.client()
        assert set(pinned) <= set(_listed_ids(client2))
        for example_id in pinned:  # each can still be previewed and exported after the restart
            preview = client2.predict(example_id, None, api_name="/preview_pinned")
            assert preview
        zip_out, _status = client2.predict(next(iter(pinned)), None, api_name="/export")
        zpath = zip_out["path"] if isinstance(zip_out, dict) else zip_out
        assert str(zpath).endswith(".zip")
    finally:
        app2.stop()


def test_half_written_pin_is_not_listed(tmp_path):
    """A crash mid-write leaves at most a temp file, which the store ignores; a torn record is skipped."""
    from explorer.curation import CurationStore, pinned_table

    store = CurationStore(tmp_path / "curated")
    rec = store.add({"text": "ok", "combiner": "AVG", "results": []})
    (tmp_path / "curated" / ".tmp-123.json.partial").write_text('{"id": "broken"')
    (tmp_path / "curated" / "20260101-000000-abcdef.json").write_text('{"id": "torn", "te')
    ids = [r[0] for r in pinned_table(store)]
    assert ids == [rec["id"]]
