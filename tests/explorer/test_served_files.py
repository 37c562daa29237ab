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


def _late_gallery(tiny_encoder, data: Path, name: str, media: Path) -> Path:
    """A gallery written into ``data/galleries`` while the app runs (as a download would), media in ``media``."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from covr_core.gallery import Gallery

    media.mkdir(parents=True, exist_ok=True)
    images, rows = [], []
    for i in range(3):
        img = Image.new("RGB", (40, 32), (60 * i, 90, 200 - 50 * i))
        img.save(media / f"{name}{i}.png")
        images.append(img)
        rows.append({"id": f"{name}{i}", "kind": "image", "media": f"{name}{i}.png", "caption": f"late {i}",
                     "split": "demo", "duration": np.nan, "thumbnail": ""})  # fmt: skip
    gal = Gallery.build(tiny_encoder.encode_images(images), pd.DataFrame(rows), tiny_encoder.info, name,
                        media_root=str(media))  # fmt: skip
    gal.save(data / "galleries" / name)
    return data / "galleries" / name


def _late_evaluation(data: Path, name: str, gallery_folder: Path, ids: list[str]) -> None:
    """An evaluation written into ``data/evaluations`` while the app runs, naming ``gallery_folder``."""
    import numpy as np
    import pandas as pd

    from covr_core.evaluation_folder import Evaluation

    per_query = pd.DataFrame([{"query_id": "0", "combiner": "AVG", "reference": ids[0], "target": ids[1], "rank": 1,
                               "top_ids": ids, "top_scores": np.linspace(0.9, 0.5, len(ids)).astype(np.float32),
                               "w_mm": 1.0, "w_img": 0.0, "w_txt": 0.0}])  # fmt: skip
    Evaluation.build(per_query, {"combiners": ["AVG"], "gallery": str(gallery_folder)}).save(data / "evaluations" / name)


def test_galleries_and_evaluations_added_after_start_go_through_the_policy(tiny_encoder, data: Path, tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture):
    """What happens to a gallery or an evaluation that appears while the app runs: the next scan (every page
    load, the Explore tab's refresh, any gallery lookup) checks the gallery like one present at start-up and
    registers only its allowed folders; an evaluation's media come only from a usable gallery's served folders,
    whatever its metrics.json names."""
    from covr_core.gallery_files import GalleryError
    from covr_core.settings import Settings
    from explorer.browse import open_query
    from explorer.services import Services

    services = Services(tiny_encoder, Settings(data_dir=data), "late")
    assert services.gallery_names() == [] and services.benchmark_names() == []
    served_before = set(services.served.folders())

    late = _late_gallery(tiny_encoder, data, "late", data / "late-media")  # media inside the data folder
    outside = _late_gallery(tiny_encoder, data, "elsewhere", tmp_path / "outside")  # media not configured
    assert services.gallery_names() == ["late"]
    assert "outside the folders this server may serve" in services.gallery_problems()["elsewhere"]
    assert services.served.allows(data / "late-media" / "late0.png")
    assert not services.served.allows(tmp_path / "outside" / "elsewhere0.png")
    assert set(services.served.folders()) - served_before == {(data / "late-media").resolve()}
    with pytest.raises(Exception, match="unavailable"):
        services.get_gallery("elsewhere")
    refusals = [r for r in caplog.records if "elsewhere" in r.getMessage() and "refused" in r.getMessage()]
    assert len(refusals) == 1, "logged once for the operator, not on every re-scan (page load)"

    _late_evaluation(data, "eval-late", late, ["late0", "late1", "late2"])
    _late_evaluation(data, "eval-elsewhere", outside, ["elsewhere0", "elsewhere1"])  # names the refused gallery
    assert services.benchmark_names() == ["eval-elsewhere", "eval-late"]
    view = open_query(services, "eval-late", "0")
    assert view.gallery == "late" and view.reference_path and len(view.results) == 3
    for path in [view.reference_path, view.target_path, *(p for p, _ in view.results)]:
        assert services.served.allows(path) or Path(path).resolve().is_relative_to(services.cache_dir), path
    with pytest.raises(GalleryError, match="Gallery 'elsewhere' is unavailable: its manifest puts") as err:
        open_query(services, "eval-elsewhere", "0")  # its gallery is refused: a clear refusal, nothing opened
    assert str(tmp_path) not in str(err.value)
    assert not any(services.served.allows(p) for p in (tmp_path / "outside").iterdir())


def test_filter_report_videos_stay_inside_the_webvid_folder(tmp_path: Path) -> None:
    """A filter run in the data folder names videos by ``pth``; one leading out of the configured WebVid folder
    (``..``, an absolute path, a symlink out) is never decoded into the page."""
    from explorer.filter_view import _video

    root, outside = tmp_path / "webvid", tmp_path / "secret"
    (root / "0001").mkdir(parents=True)
    outside.mkdir()
    (root / "0001" / "a.mp4").write_bytes(b"x")
    (outside / "b.mp4").write_bytes(b"x")
    (root / "link.mp4").symlink_to(outside / "b.mp4")
    assert _video([root], "0001/a") == (root / "0001" / "a.mp4").resolve()
    for pth in ("../secret/b", str(outside / "b"), "link", "0001/missing"):
        assert _video([root], pth) is None, pth
