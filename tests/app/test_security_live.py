"""Security of the live server: Gradio's file route, FileData payloads naming server files, allowed paths,
upload temp files, and the installed Gradio release.

Advisories this guards against: CVE-2023-51449 (file route path traversal), GHSA-j36p-7w88-g82j and the
class of ``FileData`` payloads that name arbitrary server paths. See docs/SECURITY.md.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from gradio_client import handle_file
from PIL import Image

from helpers.live_app import LiveApp, call_api, count_files, raw_get, search_parts, start_app

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"
APPLE = ASSETS / "images" / "apple.jpg"
MIN_GRADIO = (6, 16, 0)
PASSWD_MARK = "root:x:0:0"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def secret(tmp_path_factory) -> Path:
    """A readable image outside every allowed folder: serving or encoding it would be a leak."""
    folder = tmp_path_factory.mktemp("secret")
    path = folder / "secret.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(path)
    (folder / "secret.txt").write_text("TOP-SECRET-" + uuid.uuid4().hex)
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> LiveApp:
    # COVR_TEMP_MAX_AGE_S: Gradio's delete_cache age for upload temp files (explorer/safety.py)
    server = start_app(tmp_path_factory.mktemp("security") / "data", env={"COVR_TEMP_MAX_AGE_S": "4"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(app: LiveApp):
    return app.client()


def search(client, image=None, text="make it an orange", k=5):
    return search_parts(client.predict(handle_file(str(image)) if image else None, None, text, "AVG", None, k,
                                       api_name="/search"))


# ------------------------------------------------------------------------------------------ gradio version
def test_gradio_is_a_fixed_release():
    import gradio

    version = tuple(int(x) for x in gradio.__version__.split(".")[:3])
    assert version >= MIN_GRADIO, f"gradio {gradio.__version__} < 6.16.0 (GHSA-j36p-7w88-g82j)"
    pinned = [ln for ln in (REPO / "requirements.txt").read_text().splitlines() if ln.startswith("gradio")]
    assert pinned, "gradio is not pinned in requirements.txt"
    spec = pinned[0].split("==")
    assert len(spec) == 2 and tuple(int(x) for x in spec[1].split(".")[:3]) >= MIN_GRADIO, pinned


# ------------------------------------------------------------------------------------------ file route
def _traversal_paths(app: LiveApp, secret: Path) -> list[str]:
    media = ASSETS / "images"
    app_py = REPO / "app.py"
    up = "../" * 12
    return [
        "/gradio_api/file=/etc/passwd",
        f"/gradio_api/file={app_py}",
        "/gradio_api/file=app.py",  # relative to the server's working directory
        "/gradio_api/file=./app.py",
        f"/gradio_api/file={secret}",
        f"/gradio_api/file={secret.parent / 'secret.txt'}",
        f"/gradio_api/file={media}/{up}etc/passwd",
        f"/gradio_api/file={media}/../../app.py",
        f"/gradio_api/file={media}/..%2f..%2fapp.py",
        f"/gradio_api/file={media}/%2e%2e/%2e%2e/app.py",
        f"/gradio_api/file={quote(str(media / '..' / '..' / 'app.py'), safe='')}",
        "/gradio_api/file=%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/gradio_api/file=%2Fetc%2Fpasswd",
        "/gradio_api/file=//etc/passwd",
        f"/gradio_api/file={media}//..//..//app.py",
        f"/gradio_api/file={app.temp_dir}/../{app.data_dir.name}/curated",
        f"/gradio_api/file={app.temp_dir}/{up}etc/passwd",
        f"/gradio_api/file={app.data_dir}/curated",
        "/gradio_api/file=" + "..%5c" * 10 + "etc%5cpasswd",
        "/file=/etc/passwd",
        f"/file={app_py}",
        "/gradio_api/file=/proc/self/environ",
        f"/gradio_api/file={REPO}/.git/config",
    ]


def test_file_route_refuses_traversal_and_absolute_paths(app, secret):
    secret_text = (secret.parent / "secret.txt").read_text()
    app_head = (REPO / "app.py").read_text()[:60]
    for path in _traversal_paths(app, secret):
        status, body = raw_get(app, path)
        text = body.decode("latin-1")
        assert status in (400, 403, 404, 405), f"{path} -> HTTP {status}"
        assert PASSWD_MARK not in text, path
        assert app_head not in text, path
        assert secret_text not in text, path
        assert "COVR_DATA_DIR" not in text, path  # /proc/self/environ
        assert body[:8] != b"\x89PNG\r\n\x1a\n", path
    assert app.alive()


def test_file_route_serves_gallery_media(app):
    """Positive control: the allowed gallery media is served (so the refusals above are not a dead route)."""
    status, body = raw_get(app, "/gradio_api/file=" + quote(str(APPLE)))
    assert status == 200 and body == APPLE.read_bytes()


def test_gallery_index_files_are_not_served(app):
    """allowed_paths cover media (and thumbnails), not the gallery's index, embeddings or manifest."""
    gallery = next((app.data_dir / "galleries").glob("demo-*"))
    for name in ("manifest.json", "embeddings.npy", "index.faiss", "items.parquet"):
        if (gallery / name).exists():
            status, _body = raw_get(app, "/gradio_api/file=" + quote(str(gallery / name)))
            assert status in (403, 404), f"{name} served (HTTP {status})"


# ------------------------------------------------------------------------------------------ FileData payloads
def _payload(path: str | Path) -> dict:
    return {"path": str(path), "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}


def _targets(secret: Path) -> list[Path]:
    return [Path("/etc/passwd"), REPO / "app.py", secret, secret.parent / "secret.txt", APPLE.parent / ".." / ".." /
            "app.py"]


def test_filedata_naming_a_server_file_is_refused(app, secret):
    """An API call whose image or video names a file that was never uploaded fails and leaks nothing."""
    secret_text = (secret.parent / "secret.txt").read_text()
    for target in _targets(secret):
        for data in ([_payload(target), None, "make it red", "AVG", None, 5],
                     [None, _payload(target), "make it red", "AVG", None, 5]):
            answer = call_api(app, "search", data)
            assert "event: complete" not in answer, f"{target} accepted: {answer[:500]}"
            assert "error" in answer.lower(), answer[:500]
            assert PASSWD_MARK not in answer and secret_text not in answer, answer[:500]
            assert "Traceback" not in answer, answer[:500]
    assert app.alive()


def test_filedata_with_url_to_server_file_is_refused(app, secret):
    """A FileData whose ``url`` points back at the server's own file route is no way around the check."""
    data = [{"path": str(secret), "url": f"{app.url}gradio_api/file={secret}", "meta": {"_type": "gradio.FileData"}},
            None, "make it red", "AVG", None, 5]
    answer = call_api(app, "search", data)
    assert "event: complete" not in answer, answer[:500]


def test_filedata_path_given_as_url_is_refused(app, client, secret):
    """A FileData whose ``path`` is a URL back to the server's file route fetches nothing forbidden.

    (``gradio_client`` itself uploads any local path it is given, so the attack is sent as raw JSON.)
    """
    secret_text = (secret.parent / "secret.txt").read_text()
    for target in (secret, secret.parent / "secret.txt", Path("/etc/passwd")):
        data = [{"path": f"{app.url}gradio_api/file={target}", "meta": {"_type": "gradio.FileData"}},
                None, "make it red", "AVG", None, 5]
        answer = call_api(app, "search", data)
        assert "event: complete" not in answer, f"{target} accepted: {answer[:500]}"
        assert PASSWD_MARK not in answer and secret_text not in answer, answer[:500]
    _g, _s, record = search(client, APPLE)
    assert len(record["results"]) == 5


# ------------------------------------------------------------------------------------------ served folders
def test_served_folders_are_only_gallery_media(app):
    """Every folder the file route serves is a gallery's thumbs/ or frames/ or a media root the operator's
    configuration allows (here the bundled assets/images and assets/videos); never the repo, data, /."""
    from explorer.served_files import BUNDLED_MEDIA, ServedFiles
    from explorer.services import scan_galleries

    policy = ServedFiles(app.data_dir)
    entries = scan_galleries(app.data_dir)
    assert entries
    for entry in entries.values():
        result = policy.folders_for(entry.folder, entry.manifest)
        assert not result.problem, (entry.name, result.problem)
        for folder in result.folders:
            ok = folder in BUNDLED_MEDIA or (folder.parent == entry.folder and folder.name in ("thumbs", "frames"))
            assert ok, folder
        policy.register(result.folders)
    forbidden = {Path("/").resolve(), REPO, REPO / "assets", app.data_dir.resolve(), Path.home().resolve(),
                 Path("/tmp").resolve()}  # fmt: skip
    assert not forbidden & set(policy.folders())


# ------------------------------------------------------------------------------------------ temp files
def _upload_files(app: LiveApp) -> list[Path]:
    return [p for p in app.temp_dir.rglob("*") if p.is_file()]


def test_upload_temp_files_are_cleaned_up(app, client, tmp_path):
    """Uploads land in GRADIO_TEMP_DIR; the same upload is stored once; old uploads are deleted.

    Gradio keeps each upload under ``GRADIO_TEMP_DIR/<sha>/`` (same content = same file). The app sets
    ``gr.Blocks(delete_cache=...)`` from COVR_TEMP_MAX_AGE_S (4 s in this module), so Gradio deletes
    uploads and generated files older than that; the app's own per-query files stay bounded.
    """
    for _ in range(5):  # the same file five times: one stored copy
        search(client, APPLE)
    before = count_files(app.temp_dir)
    images = []
    for i in range(6):
        p = tmp_path / f"u{i}.png"
        Image.new("RGB", (40, 30), (40 * i, 200 - 30 * i, 90)).save(p)
        images.append(p)
        search(client, p, text="make it blue")
    after = count_files(app.temp_dir)
    assert after - before <= 6 * 3, (before, after)  # an upload + at most a converted copy and an output
    for _ in range(5):
        search(client, images[0], text="make it blue")
    assert count_files(app.temp_dir) - after <= 3  # the same image again stores (almost) nothing new
    app_cache = app.data_dir / "cache"
    cached = count_files(app_cache)
    for _ in range(5):
        search(client, APPLE, text="make it green")
    assert count_files(app_cache) - cached <= 2, "the app writes a file per query"
    # delete_cache: every upload of this batch disappears once older than COVR_TEMP_MAX_AGE_S
    names = {p.name for p in images}
    deadline = time.monotonic() + 90
    left = names
    while time.monotonic() < deadline:
        left = {p.name for p in _upload_files(app)} & names
        if not left:
            break
        time.sleep(2)
    assert not left, f"uploads never deleted: {sorted(left)} (set gr.Blocks(delete_cache=...))"
    _g, _s, record = search(client, APPLE)  # and the app still works after the clean-up
    assert len(record["results"]) == 5


# ------------------------------------------------------------------------------------------ exports
def test_export_ids_cannot_leave_the_export_folder(app, client):
    """/export takes pinned ids: ids with path parts are refused, and the ZIP lands in the export folder."""
    from gradio_client.exceptions import AppError

    outside = app.data_dir.parent / "pwned"
    for evil in ("../../pwned", "../../../../tmp/pwned", "/tmp/pwned", "..", "a/../../pwned"):
        with pytest.raises(AppError) as exc:
            client.predict(evil, None, api_name="/export")
        msg = str(exc.value)
        assert "Traceback" not in msg and str(app.data_dir) not in msg, msg
    assert not outside.exists() and not list(Path("/tmp").glob("pwned*"))
    search(client, APPLE)
    pinned = client.predict(handle_file(str(APPLE)), None, None, api_name="/pin")
    assert "Pinned" in json.dumps(pinned, ensure_ascii=False)
    zip_out, _status = client.predict(None, api_name="/export_all")
    zpath = zip_out["path"] if isinstance(zip_out, dict) else zip_out
    assert zpath and str(zpath).endswith(".zip")
    exports = app.temp_dir / "covr-exports"  # served in place from Gradio's upload folder, deleted later
    assert exports.is_dir() and list(exports.rglob("*.zip"))
    assert all(exports.resolve() in p.resolve().parents for p in exports.rglob("*.zip"))
