"""The app as an API: gradio_client against a live ``python app.py --encoder lite`` server."""

from __future__ import annotations

import io
import json
import urllib.request
import zipfile
from pathlib import Path

import pytest
from gradio_client import handle_file
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _ids(record: dict) -> list[str]:
    return [r["id"] for r in record["results"]]


def _search(client, image=None, video=None, text="make it an orange", combiner="AVG", k=12, gallery=None):
    gallery = (
        gallery
        or client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/search"][
            "parameters"
        ][4]["parameter_default"]
    )
    return client.predict(
        handle_file(str(image)) if image else None,
        handle_file(str(video)) if video else None,
        text,
        combiner,
        gallery,
        k,
        api_name="/search",
    )


def test_page_says_which_encoder(live_app):
    with urllib.request.urlopen(live_app.url + "config", timeout=30) as r:
        config = json.loads(r.read())
    header = next(
        c["props"]["value"]
        for c in config["components"]
        if c.get("props", {}).get("elem_id") == "covr-header"
    )
    assert "**Encoder** `lite`" in header and "Lite offline encoder" in header and "--encoder blip" in header
    # the page was built before start-up finished; once loaded it shows the live header (gallery included)
    live = live_app.startup_status()["header"]
    assert "**Encoder** `lite`" in live and "Lite offline encoder" in live
    assert "demo-lite" in live and "items" in live


def test_every_event_has_an_api_name(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/search", "/compare", "/encode_reference", "/export", "/pin", "/video_still", "/map"} <= names


def test_lite_apple_to_orange_is_sensible(client):
    gallery, _plot, status, record = _search(
        client, ASSETS / "images" / "apple.jpg", text="make it an orange", combiner="AVG", k=12
    )
    assert len(gallery) == 12 and len(record["results"]) == 12
    assert "orange" in _ids(record)[:3], _ids(record)
    assert gallery[0]["caption"].startswith("#1 · ")
    assert "combiner **AVG**" in status and " ms" in status


def test_search_with_each_combiner(client):
    combiners = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/search"][
        "parameters"
    ][3]["type"]["enum"]
    assert "MLP" not in combiners and {"NA", "AVG", "TEXT", "IMAGE"} <= set(combiners)
    for c in combiners:
        _g, _p, _s, record = _search(
            client, ASSETS / "images" / "apple.jpg", text="a round fruit", combiner=c, k=5
        )
        assert record["combiner"] == c and len(record["results"]) == 5
        w = record["weights"]
        assert abs(w["w_mm"] + w["w_img"] + w["w_txt"] - 1) < 1e-4
    _g, _p, _s, rec = _search(client, ASSETS / "images" / "apple.jpg", text="x", combiner="IMAGE", k=3)
    # IMAGE = f_img only: the reference itself would come first, but it is hidden (as CoVR does)
    assert "apple" not in [r["id"] for r in rec["results"]] and rec["query"]["excluded_ids"] == ["apple"]


def test_search_with_a_video(client):
    video = ASSETS / "videos" / "people_courtyard.mp4"
    gallery, _p, _s, record = _search(client, video=video, text="the same scene", combiner="IMAGE", k=6)
    assert len(record["results"]) == 6
    # the query is the middle frame: the same video comes first (or is hidden when identical)
    video_id = f"videos/{video.stem}"  # the demo gallery names videos like WebVid-CoVR's pth
    hidden = record["query"]["excluded_ids"] + record["query"]["hidden_near_duplicates"]
    assert _ids(record)[0] == video_id or video_id in hidden, _ids(record)
    videos = [g for g in gallery if g.get("video")]
    assert videos, "the result gallery should hold playable videos"


def test_video_still_and_encode_reference(client):
    video = sorted((ASSETS / "videos").glob("*.mp4"))[0]
    still, status = client.predict(handle_file(str(video)), api_name="/video_still")
    assert "middle frame" in status
    assert Image.open(still).size[0] > 0
    msg = client.predict(handle_file(str(ASSETS / "images" / "apple.jpg")), api_name="/encode_reference")
    assert "Reference encoded" in msg


def test_compare(client):
    out = client.predict(
        handle_file(str(ASSETS / "images" / "apple.jpg")),
        None,
        "make it an orange",
        client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/search"]["parameters"][
            4
        ]["parameter_default"],
        8,
        api_name="/compare",
    )
    md, table, overlap = out[0], out[1], out[2]
    assert "Compared" in md
    names = [row[0] for row in table["data"]]
    assert {"NA", "AVG", "TEXT", "IMAGE"} <= set(names)
    assert [row[0] for row in overlap["data"]] == names
    galleries = out[4:]
    assert sum(1 for g in galleries if g) == len(names)


def test_pin_and_export_zip_matches_ranks(client):
    image = ASSETS / "images" / "apple.jpg"
    _g, _p, _s, record = _search(client, image, text="make it an orange", combiner="AVG", k=6)
    msg = client.predict(handle_file(str(image)), None, None, api_name="/pin")  # no browser token: a local run
    example_id = msg.split("`")[1]
    zpath, status = client.predict(example_id, None, api_name="/export")
    assert "Exported" in status
    with zipfile.ZipFile(zpath) as zf:
        names = zf.namelist()
        rec = json.loads(zf.read(next(n for n in names if n.endswith("record.json"))))
        png = Image.open(io.BytesIO(zf.read(next(n for n in names if n.endswith("figure.png")))))
        png.load()
        tex = zf.read(next(n for n in names if n.endswith("snippet.tex"))).decode()
    assert png.width > 4 * 224
    assert [(r["rank"], r["id"]) for r in rec["results"]] == [(r["rank"], r["id"]) for r in record["results"]]
    assert rec["checkpoint_sha256"] and rec["gallery_manifest_sha256"] and rec["weights"] == record["weights"]
    assert "make it an orange" in tex


@pytest.mark.parametrize(
    "case", ["empty_text", "long_text", "corrupt_image", "text_file_as_video", "nothing"]
)
def test_bad_input_gives_a_message_and_server_keeps_serving(client, tmp_path, case):
    from gradio_client.exceptions import AppError

    image, video, text = ASSETS / "images" / "apple.jpg", None, "make it red"
    if case == "empty_text":
        text = "   "
    elif case == "long_text":
        text = "word " * 400
    elif case == "corrupt_image":
        image = tmp_path / "broken.jpg"
        image.write_bytes(b"\xff\xd8\xff garbage")
    elif case == "text_file_as_video":
        image, video = None, tmp_path / "notes.txt"
        video.write_text("hello")
    elif case == "nothing":
        image = None
    with pytest.raises(AppError) as err:
        _search(client, image, video, text=text)
    msg = str(err.value)
    assert "Traceback" not in msg and len(msg) < 400
    # the server still answers
    _g, _p, _s, record = _search(client, ASSETS / "images" / "apple.jpg", text="make it red", k=3)
    assert len(record["results"]) == 3
