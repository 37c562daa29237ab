"""Atomic file/folder writes: content lands whole or not at all; crashes leave the old version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from covr_core import atomic
from covr_core.atomic import (
    atomic_folder,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    cleanup_stale_temps,
    recover_folder,
)


def test_write_bytes_text_json_replace_existing(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(p, b"one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two"
    atomic_write_text(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    atomic_write_json(tmp_path / "j.json", {"a": [1, 2]})
    assert json.loads((tmp_path / "j.json").read_text()) == {"a": [1, 2]}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["j.json", "sub", "t.txt"]  # no temp left


def test_failed_write_keeps_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "f.txt"
    atomic_write_text(p, "old")

    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(p, "new")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_folder_creates_and_replaces(tmp_path: Path) -> None:
    final = tmp_path / "g"
    with atomic_folder(final) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".g.tmp-")
        (tmp / "a.txt").write_text("1")
    assert (final / "a.txt").read_text() == "1"
    with atomic_folder(final) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(x.name for x in final.iterdir()) == ["b.txt"]
    assert [x.name for x in tmp_path.iterdir()] == ["g"]


def test_atomic_folder_exception_leaves_old(tmp_path: Path) -> None:
    final = tmp_path / "g"
    with atomic_folder(final) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_folder(final) as tmp:
            (tmp / "a.txt").write_text("new")
            raise RuntimeError("crash")
    assert (final / "a.txt").read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["g"]


def test_fallback_swap_without_renameat2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    final = tmp_path / "g"
    for text in ("1", "2"):
        with atomic_folder(final) as tmp:
            (tmp / "a.txt").write_text(text)
    assert (final / "a.txt").read_text() == "2"
    assert [x.name for x in tmp_path.iterdir()] == ["g"]


def test_killed_writer_leaves_old_folder_and_temp_is_cleaned(tmp_path: Path) -> None:
    final = tmp_path / "g"
    with atomic_folder(final) as tmp:
        (tmp / "a.txt").write_text("old")
    code = textwrap.dedent(
        f"""
        import os
        from covr_core.atomic import atomic_folder
        with atomic_folder({str(final)!r}) as tmp:
            (tmp / "a.txt").write_text("half")
            os._exit(9)  # hard crash: no cleanup runs
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2])
    assert proc.returncode == 9
    leftovers = [x for x in tmp_path.iterdir() if x.name != "g"]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".g.tmp-")
    assert (final / "a.txt").read_text() == "old"
    removed = cleanup_stale_temps(final)
    assert removed == leftovers
    assert [x.name for x in tmp_path.iterdir()] == ["g"]


def test_recover_folder_restores_backup_of_interrupted_fallback_swap(tmp_path: Path) -> None:
    final = tmp_path / "g"
    backup = tmp_path / ".g.old-999999999-abcd1234"  # pid that does not exist
    backup.mkdir()
    (backup / "a.txt").write_text("old")
    assert recover_folder(final) is True
    assert (final / "a.txt").read_text() == "old"
    assert recover_folder(final) is False


def test_live_writer_temp_is_not_cleaned(tmp_path: Path) -> None:
    final = tmp_path / "g"
    live = tmp_path / f".g.tmp-{os.getpid()}-deadbeef"
    live.mkdir()
    assert cleanup_stale_temps(final) == []
    assert live.exists()
