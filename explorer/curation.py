"""Pinned (curated) examples, stored atomically under ``<data>/curated/`` so they survive restarts."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from PIL import Image

from covr_core.atomic import atomic_write_bytes

log = logging.getLogger(__name__)
_ID = re.compile(r"^[a-z0-9-]{6,64}$")


class CurationStore:
    """A folder of pinned examples: ``<id>.json`` (the record) and ``<id>.png`` (the reference image)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _check(self, example_id: str) -> str:
        if not isinstance(example_id, str) or not _ID.match(example_id):
            raise KeyError(f"no pinned example {example_id!r}")
        return example_id

    def add(self, record: dict[str, Any], reference: Image.Image | None = None) -> dict[str, Any]:
        """Store a copy of ``record`` (an ``id`` and ``created`` are added) and its reference image."""
        rec = dict(record)
        rec["id"] = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        rec.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        with self._lock:
            if reference is not None:
                buf = io.BytesIO()
                ref = reference.convert("RGB")
                ref.thumbnail((768, 768))
                ref.save(buf, format="PNG")
                atomic_write_bytes(self.folder / f"{rec['id']}.png", buf.getvalue())
                rec["reference_file"] = f"{rec['id']}.png"
            atomic_write_bytes(
                self.folder / f"{rec['id']}.json", json.dumps(rec, indent=2, default=str).encode()
            )
        log.info("pinned example %s", rec["id"])
        return rec

    def list(self) -> list[dict[str, Any]]:
        """All pinned records, oldest first (unreadable files are skipped with a warning)."""
        out = []
        for p in sorted(self.folder.glob("*.json")):
            try:
                out.append(json.loads(p.read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                log.warning("skipping unreadable pinned example %s: %s", p, exc)
        return sorted(out, key=lambda r: (r.get("created", ""), r.get("id", "")))

    def get(self, example_id: str) -> dict[str, Any]:
        """One record by id (``KeyError`` when absent)."""
        p = self.folder / f"{self._check(example_id)}.json"
        if not p.exists():
            raise KeyError(f"no pinned example {example_id!r}")
        return json.loads(p.read_text())

    def reference_image(self, example_id: str) -> Image.Image | None:
        """The stored reference image of an example, or None."""
        p = self.folder / f"{self._check(example_id)}.png"
        return Image.open(p).convert("RGB") if p.exists() else None

    def remove(self, example_id: str) -> None:
        """Delete one pinned example (missing ones are ignored)."""
        self._check(example_id)
        with self._lock:
            for suffix in (".json", ".png"):
                (self.folder / f"{example_id}{suffix}").unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(list(self.folder.glob("*.json")))


def pinned_table(store: CurationStore) -> list[list[Any]]:
    """Rows for the Curate tab's list: id, text, combiner, target rank (with its scope), top-1, gallery."""
    rows = []
    for r in store.list():
        top1 = r.get("results", [{}])[0].get("id", "") if r.get("results") else ""
        scope = r.get("rank_scope") or {}
        rank = r.get("target_rank") or ""
        if rank and scope.get("candidates"):
            rank = f"{rank} of {scope['candidates']} {scope.get('noun', 'items')}"
        rows.append([r["id"], r.get("text", ""), r.get("combiner", ""), rank, top1, r.get("gallery", "")])
    return rows
