"""Pinned (curated) examples and their ZIP exports: per visitor on a Space, shared locally; bounded.

* :class:`CurationStore`: one folder of pinned examples (``<id>.json`` + ``<id>.png``), written atomically so
  they survive restarts, at most ``max_pins`` of them.
* :class:`CurationStores`: ``<data>/curated/`` itself when running locally (one shared store), or one folder
  per visitor under ``<data>/curated/visitors/<visitor key>/`` on a Space (``explorer.visitors``): a visitor
  never lists, previews, exports or deletes another visitor's pins.
* :class:`Exports`: export ZIPs under a folder Gradio serves in place (its upload folder), one sub-folder per
  visitor, unique names (time + random), at most ``max_per_visitor`` kept per visitor (the oldest goes), and
  deleted after download (with a short grace) or once older than ``max_age_s``.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from covr_core.atomic import atomic_write_bytes
from explorer.export import record_figure, write_export_zip
from explorer.export_figure import FigureOptions
from explorer.visitors import Visitor

if TYPE_CHECKING:
    from explorer.services import Services

log = logging.getLogger(__name__)
_ID = re.compile(r"^[a-z0-9-]{6,64}$")


class CurationStore:
    """A folder of pinned examples: ``<id>.json`` (the record) and ``<id>.png`` (the reference image)."""

    def __init__(self, folder: str | Path, max_pins: int | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_pins = max_pins
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
            if self.max_pins is not None and len(self) >= self.max_pins:
                raise ValueError(
                    f"You have {len(self)} pinned examples, the most this server keeps per visitor; export "
                    "them and remove some in the Curate tab first."
                )
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


class CurationStores:
    """The pinned examples of every visitor: the shared ``root`` when not ``private``, else one folder each."""

    def __init__(self, root: str | Path, private: bool, max_pins: int | None = None):
        self.root = Path(root)
        self.private = private
        self.max_pins = max_pins
        self._lock = threading.Lock()
        self._stores: dict[str, CurationStore] = {}

    def for_visitor(self, visitor: Visitor) -> CurationStore:
        """The store of ``visitor`` (created on first use)."""
        if self.private == visitor.shared:
            raise ValueError("This server keeps pinned examples per visitor; reload the page.")
        folder = self.root if visitor.shared else self.root / "visitors" / visitor.key
        with self._lock:
            if visitor.key not in self._stores:
                self._stores[visitor.key] = CurationStore(folder, self.max_pins)
            return self._stores[visitor.key]


class Exports:
    """Export ZIPs per visitor in ``root``: unique names, a per-visitor quota, deleted after download or age."""

    def __init__(self, root: str | Path, max_per_visitor: int = 3, max_age_s: float = 3600.0,
                 grace_s: float | None = None):  # fmt: skip
        self.root = Path(root)
        self.max_per_visitor = max(1, int(max_per_visitor))
        self.max_age_s = float(max_age_s)
        #: seconds between the start of a download and the deletion (the transfer must finish first)
        self.grace_s = float(grace_s) if grace_s is not None else min(60.0, self.max_age_s / 4)
        self._lock = threading.Lock()

    def new_path(self, visitor: Visitor, label: str) -> Path:
        """A fresh, unique ZIP path for ``visitor``; old exports are swept and the visitor's oldest ones
        removed so that at most ``max_per_visitor`` remain once this one is written."""
        self.sweep()
        folder = self.root / visitor.key
        with self._lock:
            folder.mkdir(parents=True, exist_ok=True)
        self.keep_newest(visitor, self.max_per_visitor - 1)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return folder / f"covr-examples-{label}-{stamp}-{secrets.token_hex(8)}.zip"

    def keep_newest(self, visitor: Visitor, n: int | None = None) -> None:
        """Delete all but the ``n`` (default ``max_per_visitor``) newest exports of ``visitor`` (call it after
        writing one too: simultaneous exports all finish, then only the newest stay)."""
        n = self.max_per_visitor if n is None else n
        with self._lock:
            mine = []
            for path in (self.root / visitor.key).glob("*.zip"):
                try:
                    mine.append((path.stat().st_mtime_ns, path))
                except FileNotFoundError:
                    continue
            for _mtime, old in sorted(mine)[: max(0, len(mine) - n)]:
                old.unlink(missing_ok=True)

    def sweep(self, now: float | None = None) -> int:
        """Delete exports older than ``max_age_s`` (and empty visitor folders); returns how many."""
        now = time.time() if now is None else now
        removed = 0
        for path in self.root.glob("*/*.zip*"):
            try:
                if now - path.stat().st_mtime > self.max_age_s:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        with self._lock:  # empty visitor folders untouched for max_age_s (a fresh one may be about to be used)
            for folder in self.root.glob("*/"):
                try:
                    if not any(folder.iterdir()) and now - folder.stat().st_mtime > self.max_age_s:
                        folder.rmdir()
                except OSError:
                    continue
        return removed

    def downloaded(self, path: str | Path) -> bool:
        """Delete an export ``grace_s`` seconds after its download started (only files inside ``root``)."""
        try:
            target = Path(path).resolve()
        except (OSError, ValueError):
            return False
        if self.root.resolve() not in target.parents or target.suffix != ".zip":
            return False
        timer = threading.Timer(self.grace_s, lambda: target.unlink(missing_ok=True))
        timer.daemon = True
        timer.start()
        return True


def export_pinned(
    services: Services,
    store: CurationStore,
    example_ids: list[str] | None,
    out_path: str | Path,
    options: FigureOptions = FigureOptions(),
) -> Path:
    """ZIP of the given pinned examples of ``store`` (all of them when ``example_ids`` is None) at
    ``out_path``, each drawn with ``options`` (``explorer.export``); an empty list is refused (nothing selected)."""
    if example_ids is not None and not example_ids:
        raise ValueError("No example is selected: click a row of the table first, or use Export all.")
    records = store.list() if example_ids is None else [store.get(i) for i in example_ids]
    if not records:
        raise ValueError("Nothing to export: pin an example in the Search tab first.")
    entries = [(rec, record_figure(services, rec, store.reference_image(rec["id"]), options)) for rec in records]
    return write_export_zip(entries, Path(out_path), options)


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
