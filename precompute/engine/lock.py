"""One launch per output folder: an advisory ``flock`` on ``<out>/_parts/job.lock``.

A whole-job launch (one process, or a Ray launch) and ``merge`` hold the job lock exclusively; the
processes of a manual split (``--num-shards N --shard-id I``) share it and each holds its own shard lock,
so N shards can write one folder at once but two launches of the same shard, or a launch next to a running
merge, refuse at once (``JobLockedError``) instead of corrupting each other. The kernel releases a lock
when its process dies, so a crash never leaves a stale lock. On network file systems ``flock`` is as
reliable as the file system's locking (NFSv4: yes).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import time
from pathlib import Path
from typing import Iterator

from .common import JobInputError

LOCK_NAME = "job.lock"


class JobLockedError(JobInputError):
    """Another launch holds the output folder."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return ""
    return f" (pid {info.get('pid')} on {info.get('host')} since {info.get('since')})" if info else ""


def _take(path: Path, exclusive: bool, what: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JobLockedError(f"{what} is already running{_holder(path)}; wait for it to finish or stop it "
                             f"(lock file {path})") from None
    if exclusive:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": platform.node(),
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
    return fd


@contextlib.contextmanager
def job_lock(parts_dir: str | Path, shard: tuple[int, int] | None = None) -> Iterator[None]:
    """Hold the folder's lock: exclusive, or shared plus shard ``(shard_id, num_shards)``'s own lock."""
    parts_dir = Path(parts_dir)
    parts_dir.mkdir(parents=True, exist_ok=True)
    out = parts_dir.parent
    exclusive = shard is None
    fds = [_take(parts_dir / LOCK_NAME, exclusive,
                 f"another launch on {out}" if shard is None else f"a whole-job launch or merge on {out}")]
    try:
        if shard is not None:
            fds.append(_take(parts_dir / f"shard-{shard[0]}-of-{shard[1]}.lock", True,
                             f"shard {shard[0]} of {shard[1]} on {out}"))
        yield
    finally:
        if exclusive:
            os.ftruncate(fds[0], 0)  # no stale holder in the message a later refusal shows
        for fd in reversed(fds):
            os.close(fd)
