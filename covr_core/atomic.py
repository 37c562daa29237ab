"""Atomic file and folder writing: write to a temp sibling, fsync, then rename into place.

A reader never sees a half-written file or folder: it sees either the old version or the new one.

- ``atomic_write_bytes(path, data)``, ``atomic_write_text(path, text)``, ``atomic_write_json(path, obj)``:
  temp file in the same folder, ``fsync``, ``os.replace``, ``fsync`` of the folder; ``atomic_open(path)`` does
  the same for a file streamed through an open handle.
- ``atomic_folder(final_path)``: a context manager that yields an empty temp folder next to ``final_path``;
  on a clean exit every file in it is fsynced and the folder is swapped in (Linux ``renameat2`` with
  ``RENAME_EXCHANGE`` when available, so ``final_path`` never disappears; otherwise rename the old folder
  aside, rename the new one in, delete the old). On an exception the temp folder is removed and the old
  folder is left untouched.
- Temp names are ``.<name>.tmp-<pid>-<random>`` (hidden, so folder listings skip them);
  ``cleanup_stale_temps(final_path)`` removes those left behind by dead processes and
  ``recover_folder(final_path)`` restores a backup left by a crash in the fallback swap's short window.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

logger = logging.getLogger(__name__)

_TMP_TAG = ".tmp-"
_OLD_TAG = ".old-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _temp_sibling(path: Path, tag: str = _TMP_TAG) -> Path:
    return path.with_name(f".{path.name}{tag}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def fsync_dir(path: str | Path) -> None:
    """fsync a directory so that renames inside it are durable (no-op where unsupported)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | Path) -> None:
    """fsync one existing file."""
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """Yield a binary file open on a temp sibling of ``path``; on a clean exit it is fsynced and renamed onto
    ``path`` (large outputs are streamed into it); on an exception it is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path)
    try:
        with open(tmp, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, os.replace)."""
    with atomic_open(path) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (UTF-8, sorted keys off, trailing newline) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fsync_file(Path(dirpath) / name)
        fsync_dir(dirpath)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths with Linux renameat2(RENAME_EXCHANGE); False when unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    res = fn(_AT_FDCWD, os.fsencode(str(a)), _AT_FDCWD, os.fsencode(str(b)), _RENAME_EXCHANGE)
    if res == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def swap_in_folder(tmp: Path, final: Path) -> None:
    """Move the finished folder ``tmp`` to ``final``, replacing any existing folder there."""
    if not final.exists():
        os.rename(tmp, final)
    elif _exchange(tmp, final):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
    else:
        old = _temp_sibling(final, _OLD_TAG)
        os.rename(final, old)  # a crash right here is repaired by recover_folder()
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    fsync_dir(final.parent)


@contextlib.contextmanager
def atomic_folder(final_path: str | Path) -> Iterator[Path]:
    """Yield a temp folder next to ``final_path``; on success fsync it and swap it in atomically.

    On an exception nothing at ``final_path`` changes and the temp folder is removed.
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(final)
    tmp = _temp_sibling(final)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        swap_in_folder(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _pid_of(temp: Path) -> int | None:
    try:
        return int(temp.name.rsplit("-", 2)[-2])
    except (ValueError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temps(final_path: str | Path) -> list[Path]:
    """Temp/backup siblings of ``final_path`` whose writing process is gone."""
    final = Path(final_path)
    if not final.parent.is_dir():
        return []
    out = []
    for tag in (_TMP_TAG, _OLD_TAG):
        for p in final.parent.glob(f".{final.name}{tag}*"):
            pid = _pid_of(p)
            if pid is None or not _pid_alive(pid):
                out.append(p)
    return sorted(out)


def recover_folder(final_path: str | Path) -> bool:
    """If ``final_path`` is missing but a backup from an interrupted swap exists, move it back.

    Returns True when a backup was restored.
    """
    final = Path(final_path)
    if final.exists():
        return False
    backups = [p for p in stale_temps(final) if _OLD_TAG in p.name and p.is_dir()]
    if not backups:
        return False
    newest = max(backups, key=lambda p: p.stat().st_mtime)
    os.rename(newest, final)
    logger.warning("restored %s from interrupted swap backup %s", final, newest.name)
    return True


def cleanup_stale_temps(final_path: str | Path) -> list[Path]:
    """Restore a lost folder if needed, then delete temp folders/files left by dead writers."""
    recover_folder(final_path)
    removed = []
    for p in stale_temps(final_path):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()
        removed.append(p)
    if removed:
        logger.info("removed %d stale temp path(s) next to %s", len(removed), final_path)
    return removed
