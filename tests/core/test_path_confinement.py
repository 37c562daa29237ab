"""Path confinement and safe names (explorer/safety.py), and the export/curation id checks that rely on them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from explorer.safety import PathEscapeError, confine, delete_cache_setting, safe_filename


@pytest.mark.parametrize("name", ["a.zip", "sub/a.zip", "./a.zip", "sub/../a.zip"])
def test_confine_accepts_paths_inside(tmp_path: Path, name: str):
    out = confine(name, tmp_path)
    assert out.parent in (tmp_path.resolve(), tmp_path.resolve() / "sub")
    assert tmp_path.resolve() in out.parents


@pytest.mark.parametrize("name", ["../a.zip", "../../etc/passwd", "/etc/passwd", "sub/../../a.zip",
                                  "..", "a\x00.zip"])
def test_confine_refuses_escapes(tmp_path: Path, name: str):
    (tmp_path / "sub").mkdir()
    with pytest.raises(PathEscapeError) as exc:
        confine(name, tmp_path / "sub")
    assert str(tmp_path) not in str(exc.value)  # the message names no server path


def test_confine_refuses_symlink_out(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / "link")
    with pytest.raises(PathEscapeError):
        confine("link/x.zip", root)


def test_confine_root_prefix_is_not_enough(tmp_path: Path):
    """``/data/exports-evil`` starts with ``/data/exports`` but is outside it."""
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports-evil").mkdir()
    with pytest.raises(PathEscapeError):
        confine("../exports-evil/a.zip", tmp_path / "exports")


@pytest.mark.parametrize("name,expected", [("../../etc/passwd", "passwd"), ("..\\..\\win.ini", "win.ini"),
                                           ("..", "file"), ("", "file"), ("a b/c d.png", "c-d.png"),
                                           ("ok-name_1.zip", "ok-name_1.zip"), (".hidden", "hidden")])
def test_safe_filename(name: str, expected: str):
    assert safe_filename(name) == expected
    assert "/" not in safe_filename(name) and ".." not in safe_filename(name)


def test_delete_cache_setting():
    assert delete_cache_setting({}) == (600, 3600)
    assert delete_cache_setting({"COVR_TEMP_MAX_AGE_S": "5"}) == (5, 5)
    for bad in ("0", "-3", "soon"):
        with pytest.raises(ValueError, match="COVR_TEMP_MAX_AGE_S"):
            delete_cache_setting({"COVR_TEMP_MAX_AGE_S": bad})


@pytest.mark.parametrize("bad_id", ["../../etc/passwd", "../curated-x", "/etc/passwd", "a/../../b", "..",
                                    "20260101-000000-abcdef/../../x"])
def test_curation_ids_cannot_name_paths(tmp_path: Path, bad_id: str):
    """Export and preview look up pinned examples by id: an id with path parts is refused before any I/O."""
    from explorer.curation import CurationStore

    store = CurationStore(tmp_path / "curated")
    (tmp_path / "passwd.json").write_text('{"secret": 1}')
    for call in (store.get, store.reference_image, store.remove):
        with pytest.raises(KeyError):
            call(bad_id)
    assert (tmp_path / "passwd.json").exists()


def test_export_zip_lands_in_its_folder(tmp_path: Path):
    """The export ZIP name comes from the pinned id (checked) or a timestamp: it stays in the export folder."""
    from PIL import Image

    from explorer.curation import CurationStore
    from explorer.export import slugify, write_export_zip

    store = CurationStore(tmp_path / "curated")
    rec = store.add({"text": "../../evil", "combiner": "AVG", "results": []}, Image.new("RGB", (8, 8)))
    out_dir = tmp_path / "exports"
    from explorer.export_figure import FigureOptions, Panel, render_example

    fig = render_example(Panel(Image.new("RGB", (8, 8))), "t", [], FigureOptions())
    path = write_export_zip([(rec, fig)], confine(f"covr-examples-{rec['id']}.zip", out_dir))
    assert path.parent == out_dir.resolve() and path.exists()
    assert ".." not in slugify("../../evil") and "/" not in slugify("../../evil")
