"""The served-files policy (issue 12, defect 1) and the gallery scan's handling of malformed manifests
(defect 3), without a server. Live HTTP checks: tests/app/test_public_files_live.py."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from explorer.services import scan_galleries


def gallery(data: Path, name: str, manifest: dict | bytes) -> Path:
    folder = data / "galleries" / name
    folder.mkdir(parents=True)
    raw = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    (folder / "manifest.json").write_bytes(raw)
    return folder


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    (d / "curated").mkdir(parents=True)
    (d / "media").mkdir()
    return d


def test_manifest_media_root_outside_is_refused(data: Path) -> None:
    """The issue's repro: {"media_root": "/"} handed '/' to Gradio's allowed paths."""
    from explorer.served_files import ServedFiles

    policy = ServedFiles(data)
    for root in ("/", "/etc", "../../..", str(data), str(data / "curated"), str(data / "cache" / "app"),
                 str(data / "galleries"), "."):  # fmt: skip
        folder = data / "galleries" / "x"
        folder.mkdir(parents=True, exist_ok=True)
        result = policy.folders_for(folder, {"media_root": root})
        assert result.problem and not result.folders, root
        assert "/" not in result.problem.replace("w/o", ""), result.problem  # page-safe: no server path
    assert not policy.allows("/etc/passwd")


def test_media_inside_data_or_configured_roots_is_served(data: Path, tmp_path: Path) -> None:
    from explorer.served_files import ASSETS_DIR, ServedFiles, ServedFilesGuard  # noqa: F401

    mounted = tmp_path / "volume" / "cirr"
    mounted.mkdir(parents=True)
    (mounted / "a.png").write_bytes(b"x")
    (data / "media" / "b.png").write_bytes(b"x")
    folder = data / "galleries" / "g"
    (folder / "thumbs").mkdir(parents=True)
    (folder / "media").mkdir()
    policy = ServedFiles(data, media_roots=[tmp_path / "volume"])
    for root, served in ((str(mounted), mounted), (str(data / "media"), data / "media"), ("media", folder / "media")):
        result = policy.folders_for(folder, {"media_root": root})
        assert not result.problem and served in [p.resolve() for p in result.folders], root
    assert ServedFiles(data).folders_for(folder, {"media_root": str(mounted)}).problem  # not configured
    result = policy.folders_for(folder, {"media_root": str(mounted)})
    policy.register(result.folders)
    assert policy.allows(mounted / "a.png") and policy.allows(folder / "thumbs" / "t.jpg")
    assert not policy.allows(folder / "manifest.json") and not policy.allows(data / "curated" / "x.png")


def test_bundled_assets_serve_media_not_readme_or_csv(data: Path) -> None:
    from explorer.served_files import ASSETS_DIR, ServedFiles, ServedFilesGuard  # noqa: F401

    folder = data / "galleries" / "demo"
    folder.mkdir(parents=True)
    policy = ServedFiles(data)
    result = policy.folders_for(folder, {"media_root": str(ASSETS_DIR)})
    assert not result.problem
    policy.register(result.folders)
    assert policy.allows(ASSETS_DIR / "images" / "apple.jpg")
    for name in ("README.md", "gallery.csv", "ATTRIBUTION.csv", "benchmark/cirr/cap.rc2.demo.json"):
        assert not policy.allows(ASSETS_DIR / name), name


def test_thumbs_symlink_out_makes_the_gallery_unavailable(data: Path) -> None:
    from explorer.served_files import ASSETS_DIR, ServedFiles, ServedFilesGuard  # noqa: F401

    folder = data / "galleries" / "g"
    folder.mkdir(parents=True)
    (folder / "thumbs").symlink_to("/")
    result = ServedFiles(data).folders_for(folder, {"media_root": "media"})
    assert "thumbs/ folder is a link leading out" in result.problem and not result.folders


def test_gallery_folder_linked_from_elsewhere_is_unavailable(data: Path, tmp_path: Path) -> None:
    from explorer.served_files import ASSETS_DIR, ServedFiles, ServedFilesGuard  # noqa: F401

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (data / "galleries").mkdir()
    (data / "galleries" / "g").symlink_to(elsewhere)
    assert "outside the folders" in ServedFiles(data).folders_for(data / "galleries" / "g", {}).problem
    assert not ServedFiles(data, gallery_folders=[elsewhere]).folders_for(elsewhere, {}).problem


def test_a_registered_folder_swapped_for_a_symlink_serves_nothing(data: Path, tmp_path: Path) -> None:
    from explorer.served_files import ASSETS_DIR, ServedFiles, ServedFilesGuard  # noqa: F401

    folder = data / "galleries" / "g"
    (folder / "thumbs").mkdir(parents=True)
    (folder / "thumbs" / "a.jpg").write_bytes(b"x")
    policy = ServedFiles(data)
    policy.register(policy.folders_for(folder, {}).folders)
    assert policy.allows(folder / "thumbs" / "a.jpg")
    (folder / "thumbs" / "a.jpg").unlink()
    (folder / "thumbs").rmdir()
    (folder / "thumbs").symlink_to(tmp_path)  # replaced while the app runs
    (tmp_path / "secret.txt").write_text("s")
    assert not policy.allows(folder / "thumbs" / "secret.txt")
    assert not policy.allows(tmp_path / "secret.txt")


def test_guard_refuses_urls_and_paths_outside(data: Path, tmp_path: Path) -> None:
    from explorer.served_files import ASSETS_DIR, ServedFiles, ServedFilesGuard  # noqa: F401

    upload = tmp_path / "gradio"
    (upload / "abc").mkdir(parents=True)
    (upload / "abc" / "u.png").write_bytes(b"x")
    guard = ServedFilesGuard(None, ServedFiles(data), upload)
    assert guard.allows_target(str(upload / "abc" / "u.png"))
    assert guard.allows_target(str(ASSETS_DIR / "images" / "apple.jpg"))
    for target in ("https://example.com/x.png", "http://127.0.0.1:80/", "//evil/x", "/etc/passwd",
                   f"{upload}/../secret", str(ASSETS_DIR / "README.md"), "app.py"):  # fmt: skip
        assert not guard.allows_target(target), target


def test_guard_answers_403_and_429(data: Path, tmp_path: Path) -> None:
    from explorer.served_files import ASSETS_DIR, ServedFiles, ServedFilesGuard  # noqa: F401

    calls: list[str] = []

    async def app(scope, receive, send):
        calls.append(scope["path"])

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    waits = iter([0.0, 12.0])
    guard = ServedFilesGuard(app, ServedFiles(data), tmp_path, upload_limiter=lambda client: next(waits))
    def run(scope: dict) -> None:  # in its own thread: a browser test may have left a loop running here
        worker = threading.Thread(target=lambda: asyncio.run(guard(scope, None, send)))
        worker.start()
        worker.join()

    run({"type": "http", "path": "/gradio_api/file=/etc/passwd", "method": "GET"})
    assert sent[0]["status"] == 403 and not calls
    run({"type": "http", "path": "/gradio_api/upload", "method": "POST", "client": ("1.2.3.4", 1)})
    assert calls == ["/gradio_api/upload"]
    run({"type": "http", "path": "/gradio_api/upload", "method": "POST", "client": ("1.2.3.4", 1)})
    assert sent[-2]["status"] == 429 and b"Too many uploads" in sent[-1]["body"]


# ------------------------------------------------------------------------------------------ scan
@pytest.mark.parametrize("content", [b"[]", b"\xff\xfe garbage", b'{"name": 5}', b"{broken", b"null",
                                     b'{"media_root": "/"}'])  # fmt: skip
def test_scan_skips_malformed_manifests_with_a_reason(data: Path, content: bytes) -> None:
    gallery(data, "bad", content)
    entries = scan_galleries(data)  # never raises (AttributeError / UnicodeDecodeError before)
    assert entries["bad"].problem.startswith("its manifest.json is malformed")
    assert str(data) not in entries["bad"].problem
