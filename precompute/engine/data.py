"""Datasets and DataLoader plumbing of the embedding jobs.

Decoding, resizing, thumbnails and the encoder's ``image_transform`` all run inside DataLoader worker
processes; the main process only moves ready tensors to the device and runs the model. A bad file becomes a
failure record (``reason``), never an exception in the loop.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from PIL import Image

from covr_core import media

from .common import safe_name

log = logging.getLogger(__name__)
# Register every Pillow plugin up front so worker processes decode the same formats as the main process
# (Pillow registers most plugins lazily).
Image.init()

THUMB_SIZE = 256
STRIP_HEIGHT = 64
FRAMES_PER_VIDEO = 15


@dataclass
class Sample:
    """One item after the worker: pixels (images: [3,H,W], videos: [n,3,H,W]) or a failure reason."""

    row: int
    pixels: torch.Tensor | None = None
    image: Image.Image | None = None  #: queries: the decoded reference image (transformed by the encoder)
    text: str = ""
    record: dict = field(default_factory=dict)
    reason: str = ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, media.MediaError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _save_jpeg(image: Image.Image, path: Path, quality: int = 85) -> None:
    """Write a JPEG via temp file + rename (no fsync: thumbnails are cheap to redo, and an fsync per file
    would cap throughput on network filesystems; the part files, which say what is done, are fsynced)."""
    buf = io.BytesIO()
    media.to_rgb(image).save(buf, "JPEG", quality=quality)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def _thumbnail(image: Image.Image, size: int = THUMB_SIZE) -> Image.Image:
    return media.make_thumbnail(image, size)


class MediaItems(torch.utils.data.Dataset):
    """Gallery items (images or videos) of a plan; yields :class:`Sample`.

    ``rows`` are plan row numbers, ``paths`` the media files, ``kinds`` ``image``/``video``; ``scores``
    (optional, per row) are the CSV's per-frame scores (kept for the main process's pooling).
    """

    def __init__(self, rows: Sequence[int], ids: Sequence[str], paths: Sequence[str | Path], kinds: Sequence[str],
                 transform: Callable[[Image.Image], torch.Tensor], out: str | Path, thumbs: bool = True,
                 frames_per_video: int = FRAMES_PER_VIDEO) -> None:
        self.rows, self.ids, self.paths, self.kinds = list(rows), list(ids), [str(p) for p in paths], list(kinds)
        self.transform = transform
        self.out = Path(out)
        self.thumbs = thumbs
        self.k = frames_per_video

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, j: int) -> Sample:
        row, item_id, path, kind = self.rows[j], self.ids[j], self.paths[j], self.kinds[j]
        try:
            if kind == "video":
                return self._video(row, item_id, path)
            return self._image(row, item_id, path)
        except Exception as exc:  # noqa: BLE001 - any decoder error becomes a logged failure
            return Sample(row=row, reason=_reason(exc))

    def _image(self, row: int, item_id: str, path: str) -> Sample:
        if not Path(path).is_file():
            return Sample(row=row, reason=f"missing file: {path}")
        img = media.load_image(path)
        record: dict[str, Any] = {}
        if self.thumbs:
            rel = f"thumbs/{safe_name(item_id)}.jpg"
            _save_jpeg(_thumbnail(img), self.out / rel)
            record["thumbnail"] = rel
        return Sample(row=row, pixels=self.transform(img), record=record)

    def _video(self, row: int, item_id: str, path: str) -> Sample:
        if not Path(path).is_file():
            return Sample(row=row, reason=f"missing file: {path}")
        info = media.probe_video(path)
        indices = media.sample_frame_indices(info.frame_count, self.k)
        frames = media.read_frames(path, indices)
        if not frames:
            return Sample(row=row, reason=f"no decodable frame: {path}")
        record: dict[str, Any] = {"duration": float(info.duration) if info.duration else None,
                                  "n_frames": len(frames)}
        if self.thumbs:
            name = safe_name(item_id)
            _save_jpeg(_thumbnail(frames[len(frames) // 2]), self.out / f"thumbs/{name}.jpg")
            _save_jpeg(media.video_frame_strip(frames, STRIP_HEIGHT), self.out / f"frames/{name}.jpg")
            record.update(thumbnail=f"thumbs/{name}.jpg", frames=f"frames/{name}.jpg")
        pixels = torch.stack([self.transform(f.convert("RGB")) for f in frames])
        return Sample(row=row, pixels=pixels, record=record)


class QueryItems(torch.utils.data.Dataset):
    """Query references: a CIRR image or the middle frame of a WebVid-CoVR ``pth1`` video, plus the text."""

    def __init__(self, rows: Sequence[int], paths: Sequence[str | Path], kinds: Sequence[str],
                 texts: Sequence[str]) -> None:
        self.rows, self.paths, self.kinds, self.texts = list(rows), [str(p) for p in paths], list(kinds), list(texts)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, j: int) -> Sample:
        row, path = self.rows[j], self.paths[j]
        try:
            if not Path(path).is_file():
                return Sample(row=row, reason=f"missing file: {path}")
            img = media.middle_frame(path) if self.kinds[j] == "video" else media.load_image(path)
            return Sample(row=row, image=img.convert("RGB"), text=self.texts[j])
        except Exception as exc:  # noqa: BLE001 - any decoder error becomes a logged failure
            return Sample(row=row, reason=_reason(exc))


def collate_samples(samples: list[Sample]) -> dict:
    """Batch samples: stacked pixels of the good ones (videos flattened to frames) plus the failures."""
    good = [s for s in samples if not s.reason]
    bad = [(s.row, s.reason) for s in samples if s.reason]
    out: dict[str, Any] = {"rows": [s.row for s in good], "records": [s.record for s in good], "failed": bad}
    tensors = [s.pixels if s.pixels.dim() == 4 else s.pixels.unsqueeze(0) for s in good if s.pixels is not None]
    out["counts"] = [t.shape[0] for t in tensors]
    out["pixels"] = torch.cat(tensors) if tensors else None
    out["images"] = [s.image for s in good if s.image is not None]
    out["texts"] = [s.text for s in good if s.image is not None]
    return out


def make_loader(dataset: torch.utils.data.Dataset, batch_size: int, num_workers: int,
                device: str) -> torch.utils.data.DataLoader:
    """A DataLoader with worker decoding, pinned memory on CUDA and a few batches of prefetch."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs.update(prefetch_factor=4, persistent_workers=False)
    return torch.utils.data.DataLoader(dataset, batch_size=max(1, batch_size), shuffle=False,
                                       num_workers=num_workers, collate_fn=collate_samples,
                                       pin_memory=device.startswith("cuda"), **kwargs)
