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


def item_image(services: Any, gallery_name: str, item_id: str) -> Image.Image:
    """An item as a still image (videos give their middle frame)."""
    from covr_core.media import load_image, middle_frame
    from explorer.search import is_video_path

    path = services.item_path(gallery_name, item_id)
    return middle_frame(path) if is_video_path(path) else load_image(path)


def render_record(
    services: Any, record: dict[str, Any], reference: Image.Image | None, top_n: int = 5
) -> Image.Image:
    """The report PNG of a pinned record: reference -> text -> top ``top_n`` results (target outlined)."""
    from explorer.export import ResultTile, render_example_png

    tiles = []
    for r in record.get("results", [])[:top_n]:
        try:
            img = item_image(services, record["gallery"], r["id"])
        except (KeyError, ValueError, OSError) as exc:
            log.warning("result %s not renderable: %s", r.get("id"), exc)
            img = Image.new("RGB", (224, 224), (220, 220, 220))
        tiles.append(
            ResultTile(img, f"#{r['rank']} · {float(r['score']):.3f} · {r['id']}", bool(r.get("is_target")))
        )
    ref = reference if reference is not None else Image.new("RGB", (224, 224), (220, 220, 220))
    title = f"{record.get('combiner')} · {record.get('encoder')} · {record.get('gallery')}"
    q = record.get("query") or {}
    return render_example_png(
        ref,
        str(record.get("text", "")),
        tiles,
        title=title,
        reference_caption=str(q.get("reference") or "reference"),
    )


def export_pinned(services: Any, example_ids: list[str] | None, out_dir: str | Path) -> Path:
    """ZIP of the given pinned examples (all when ``example_ids`` is empty/None); returns the ZIP's path."""
    from explorer.export import write_export_zip

    store: CurationStore = services.curation
    records = store.list() if not example_ids else [store.get(i) for i in example_ids]
    if not records:
        raise ValueError("Nothing to export: pin an example in the Search tab first.")
    entries = [(rec, render_record(services, rec, store.reference_image(rec["id"]))) for rec in records]
    name = (
        "covr-examples-"
        + (records[0]["id"] if len(records) == 1 else time.strftime("%Y%m%d-%H%M%S"))
        + ".zip"
    )
    return write_export_zip(entries, Path(out_dir) / name)


def pinned_table(store: CurationStore) -> list[list[Any]]:
    """Rows for the Curate tab's list: id, text, combiner, target rank, top-1, gallery."""
    rows = []
    for r in store.list():
        top1 = r.get("results", [{}])[0].get("id", "") if r.get("results") else ""
        rows.append(
            [
                r["id"],
                r.get("text", ""),
                r.get("combiner", ""),
                r.get("target_rank") or "",
                top1,
                r.get("gallery", ""),
            ]
        )
    return rows
