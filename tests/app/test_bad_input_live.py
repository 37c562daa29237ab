"""Bad input through ``gradio_client`` against a live ``python app.py --encoder lite`` server.

Each bad image, video or text either gives a correct result (valid but unusual images) or a clear error
message (a ``gr.Error``: readable, names the problem, no stack trace and no server path); after each one
the server still runs and the next normal query works. The server runs with small limits
(``COVR_MAX_VIDEO_SECONDS=2``, ``COVR_MAX_VIDEO_SIDE=100``, ``COVR_MAX_UPLOAD_MB=1``) so that "too long",
"too large" and "too big" inputs stay tiny.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from gradio_client import handle_file

from helpers import media_files as mf
from helpers.live_app import LiveApp, call_api, search_parts, start_app

REPO = Path(__file__).resolve().parents[2]
APPLE = REPO / "assets" / "images" / "apple.jpg"
LIMIT_ENV = {"COVR_MAX_VIDEO_SECONDS": "2", "COVR_MAX_VIDEO_SIDE": "100", "COVR_MAX_UPLOAD_MB": "1",
             "COVR_UPLOADS_PER_MINUTE": "100000"}  # hundreds of uploads a minute from one address: not a flood here
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

#: What a user must never see in an error message.
LEAKS = ("Traceback", 'File "', ".py", "/tmp/", "/work/", "/home/", "site-packages", "gradio_api", "Exception",
         "Error:")


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def app(tmp_path_factory) -> LiveApp:
    """One server with small limits for the whole module."""
    server = start_app(tmp_path_factory.mktemp("badinput") / "data", env=LIMIT_ENV)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(app: LiveApp):
    return app.client()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("badmedia")


def search(client, image: Any = None, video: Any = None, text: str = "make it an orange", k: int = 5):
    """Call /search; file arguments are local paths (uploaded by gradio_client) or ready payloads."""
    def arg(x: Any) -> Any:
        return handle_file(str(x)) if isinstance(x, (str, Path)) else x

    return search_parts(client.predict(arg(image), arg(video), text, "AVG", None, k, api_name="/search"))


def assert_clean_error(exc: BaseException, *keywords: str) -> str:
    """The message is short, human-readable, names the problem, and leaks no trace or path."""
    from gradio_client.exceptions import AppError

    assert isinstance(exc, AppError), f"not a gr.Error but {type(exc).__name__}: {exc}"
    msg = str(exc)
    assert msg and len(msg) < 400, msg
    for leak in LEAKS:
        assert leak not in msg, f"{leak!r} in error message: {msg!r}"
    assert re.search(r"[A-Za-z]{3,} [A-Za-z]{2,}", msg), f"not a sentence: {msg!r}"
    low = msg.lower()
    assert any(k in low for k in keywords), f"none of {keywords} in {msg!r}"
    return msg


def assert_still_serves(app: LiveApp, client) -> None:
    """The server process runs, its page answers, and a normal query returns results."""
    assert app.alive(), app.log()[-3000:]
    _gallery, status, record = search(client, APPLE, text="make it an orange", k=5)
    assert len(record["results"]) == 5 and "results" in status


# ------------------------------------------------------------------------------------------ images
BAD_IMAGES: dict[str, tuple[Callable[[Path], Path], str, tuple[str, ...]]] = {
    "truncated-png": (mf.write_truncated_png, "t.png", ("damaged", "incomplete", "truncated", "corrupt")),
    "truncated-jpeg": (mf.write_truncated_jpeg, "t.jpg", ("damaged", "incomplete", "truncated", "corrupt")),
    "empty": (mf.write_empty_file, "empty.png", ("empty", "0 bytes")),
    "not-an-image": (mf.write_not_an_image, "photo.jpg", ("not a supported image", "not an image")),
    "bomb-50000x50000": (mf.write_png_bomb, "bomb.png", ("too large", "too many pixels", "decompression")),
    "tiff": (mf.write_tiff, "scan.tiff", ("not a supported image", "accepted")),
}

ODD_IMAGES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "animated-gif": (mf.write_animated_gif, "anim.gif"),
    "animated-webp": (mf.write_animated_webp, "anim.webp"),
    "cmyk-jpeg": (mf.write_cmyk_jpeg, "cmyk.jpg"),
    "16bit-png": (mf.write_16bit_png, "deep.png"),
    "palette-png": (lambda p: mf.write_palette_png(p, transparent=True), "pal.png"),
    "rgba-png": (mf.write_rgba_png, "alpha.png"),
    "la-png": (mf.write_la_png, "la.png"),
    "exif-rotated-jpeg": (mf.write_exif_rotated_jpeg, "rotated.jpg"),
}


@pytest.mark.parametrize("kind", sorted(BAD_IMAGES))
def test_bad_image_gives_clear_error(app, client, media, kind):
    write, name, keywords = BAD_IMAGES[kind]
    path = write(media / f"{kind}-{name}")
    with pytest.raises(Exception) as exc:
        search(client, path)
    assert_clean_error(exc.value, *keywords)
    assert_still_serves(app, client)


@pytest.mark.parametrize("kind", sorted(ODD_IMAGES))
def test_odd_but_valid_image_gives_results(app, client, media, kind):
    write, name = ODD_IMAGES[kind]
    path = write(media / f"{kind}-{name}")
    _gallery, status, record = search(client, path, text="make it blue", k=5)
    assert len(record["results"]) == 5 and "results" in status
    assert_still_serves(app, client)


def test_exif_rotation_is_applied_before_encoding(app, client, media):
    """The reference encoded for an EXIF-rotated JPEG equals the one for the same pixels stored upright."""
    from PIL import Image, ImageOps

    rotated = mf.write_exif_rotated_jpeg(media / "rot6.jpg", size=(60, 30), orientation=6)
    upright = media / "upright.png"
    ImageOps.exif_transpose(Image.open(rotated)).save(upright)
    _g, _s, rec_rot = search(client, rotated, text="make it blue", k=10)
    _g, _s, rec_up = search(client, upright, text="make it blue", k=10)
    ids = lambda r: [x["id"] for x in r["results"]]  # noqa: E731
    assert ids(rec_rot)[:3] == ids(rec_up)[:3]


def test_upload_over_the_size_limit_is_refused(app, client, media):
    """COVR_MAX_UPLOAD_MB=1: a 1.5 MB file never reaches the handler, the server keeps serving."""
    import numpy as np
    from PIL import Image

    big = media / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (800, 700, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > 1.2 * 2**20
    with pytest.raises(Exception) as exc:
        search(client, big)
    msg = str(exc.value)
    assert "Traceback" not in msg and 'File "' not in msg
    assert any(k in msg.lower() for k in ("size", "large", "big", "413")), msg
    assert_still_serves(app, client)


# ------------------------------------------------------------------------------------------ videos
def _long_clip(p: Path) -> Path:
    mf.write_test_clip(p, n_frames=100, fps=25, size=(48, 32))  # 4 s > COVR_MAX_VIDEO_SECONDS=2
    return p


def _wide_clip(p: Path) -> Path:
    mf.write_test_clip(p, n_frames=10, fps=25, size=(192, 96))  # 192 px > COVR_MAX_VIDEO_SIDE=100
    return p


BAD_VIDEOS: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "zero-frame": (mf.write_zero_frame_mp4, ("no frames", "0 frames", "no video", "corrupt")),
    "audio-only": (mf.write_audio_only_mp4, ("only audio", "no video")),
    "corrupt-garbage": (lambda p: mf.write_corrupt_mp4(p, "garbage"), ("corrupt", "could not be read", "not a video")),
    "corrupt-truncated": (lambda p: mf.write_corrupt_mp4(p, "truncated"),
                          ("corrupt", "could not be read", "incomplete", "no frame")),
    "text-as-mp4": (lambda p: mf.write_corrupt_mp4(p, "text"), ("corrupt", "could not be read", "not a video")),
    "too-long": (_long_clip, ("too long",)),
    "too-large": (_wide_clip, ("too large", "resolution")),
}


@pytest.mark.parametrize("kind", sorted(BAD_VIDEOS))
def test_bad_video_gives_clear_error(app, client, media, kind):
    write, keywords = BAD_VIDEOS[kind]
    path = write(media / f"{kind}.mp4")
    with pytest.raises(Exception) as exc:
        search(client, video=path)
    assert_clean_error(exc.value, *keywords)
    assert_still_serves(app, client)


def test_valid_short_video_gives_results(app, client, media):
    path = media / "ok.mp4"
    mf.write_test_clip(path, n_frames=25, fps=25, size=(48, 32))
    _g, status, record = search(client, video=path, text="make it blue", k=5)
    assert len(record["results"]) == 5 and "results" in status


# ------------------------------------------------------------------------------------------ texts
@pytest.mark.parametrize("text", ["", "   \n\t  "], ids=["empty", "whitespace"])
def test_empty_text_asks_for_a_text(app, client, text):
    with pytest.raises(Exception) as exc:
        search(client, APPLE, text=text)
    assert_clean_error(exc.value, "text")
    assert_still_serves(app, client)


def test_ten_thousand_characters_is_refused_with_the_limit(app, client):
    with pytest.raises(Exception) as exc:
        search(client, APPLE, text="make it red " * 834)  # 10,008 characters
    msg = assert_clean_error(exc.value, "too long")
    assert "1000" in msg.replace(",", "")  # names the limit (COVR_MAX_TEXT_CHARS default)
    assert_still_serves(app, client)


@pytest.mark.parametrize("text", [
    "make it \x00red\x07 \x1b[31mnow\x1b[0m \u200b\u202e",  # NUL, bell, ANSI escapes, zero-width, RTL override
    "اجعلها برتقالة",  # Arabic (right-to-left)
    "שנה את הצבע לכחול",  # Hebrew (right-to-left)
    "make it 🍊🍊 with a 🐶 and 👩🏽‍🚀",  # emoji, skin tone and ZWJ sequences
    "\U0010ffff\ufffe lonely surrogate-free oddities",
], ids=["control-chars", "arabic-rtl", "hebrew-rtl", "emoji", "noncharacters"])
def test_unusual_text_gives_results(app, client, text):
    _g, status, record = search(client, APPLE, text=text, k=5)
    assert len(record["results"]) == 5 and "results" in status
    assert_still_serves(app, client)


# ------------------------------------------------------------------------------------------ file names
@pytest.mark.parametrize("evil", ["../../../escape-{tag}.png", "..\\..\\escape-{tag}.png",
                                  "/tmp/escape-{tag}.png", "%2e%2e%2f%2e%2e%2fescape-{tag}.png"])
def test_upload_name_with_dotdot_stays_in_the_upload_folder(app, client, evil):
    """A multipart upload named ``../../x.png`` is stored inside GRADIO_TEMP_DIR and can be searched."""
    tag = uuid.uuid4().hex[:10]
    name = evil.format(tag=tag)
    r = httpx.post(app.url + "gradio_api/upload", files={"files": (name, APPLE.read_bytes(), "image/jpeg")},
                   timeout=60)
    assert r.status_code == 200, r.text
    (stored,) = r.json()
    stored_path = Path(stored).resolve()
    assert app.temp_dir.resolve() in stored_path.parents, stored
    assert stored_path.exists()
    # nothing named escape-<tag> was written anywhere around the server
    for root in {app.temp_dir.parent, app.temp_dir.parent.parent, app.data_dir, REPO, Path("/tmp")}:
        hits = [p for p in Path(root).glob(f"**/escape-{tag}*") if app.temp_dir.resolve() not in p.resolve().parents] \
            if root != Path("/tmp") else list(Path("/tmp").glob(f"escape-{tag}*"))
        assert not hits, hits
    payload = {"path": stored, "orig_name": name, "meta": {"_type": "gradio.FileData"}}
    answer = call_api(app, "search", [payload, None, "make it an orange", "AVG", None, 5])
    assert "event: complete" in answer and '"results"' in answer, answer[:800]
    assert_still_serves(app, client)


def test_server_log_has_no_unhandled_errors(app, client):
    """After all the bad input above, the server logged no unexpected exception in a callback."""
    assert_still_serves(app, client)
    log = app.log()
    assert "callback" not in log or "failed" not in log, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
