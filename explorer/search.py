"""Search handlers: reference loading, one query through one combiner, result captions (plain values)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageOps

from covr_core.combiners import combine
from covr_core.media import (
    MediaError,
    load_image,
    middle_frame,
    probe_video,
    read_frames,
    sample_frame_indices,
)
from covr_core.types import QueryEmbeddings

OUTLINE_COLOUR = (44, 160, 44)
VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v"}


@dataclass
class Hit:
    """One result row."""

    rank: int
    id: str
    score: float
    kind: str
    media: str  #: absolute path of the image or video
    caption: str = ""
    is_target: bool = False

    @property
    def label(self) -> str:
        """The caption shown under a result: ``#rank · score · id`` (with a mark on the ground truth)."""
        mark = " · ✔ target" if self.is_target else ""
        return f"#{self.rank} · {self.score:.3f} · {self.id}{mark}"


@dataclass
class SearchOutcome:
    """What one search returns: hits, the combiner's weights, timings and the ground truth's rank."""

    text: str
    combiner: str
    gallery: str
    hits: list[Hit]
    weights: np.ndarray  #: [3] (w_mm, w_img, w_txt)
    elapsed_s: float
    query: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.float32))
    target_id: str | None = None
    target_rank: int | None = None  #: rank of the target over the whole gallery (1 = best)

    @property
    def ids(self) -> list[str]:
        """Result ids, best first."""
        return [h.id for h in self.hits]


def validate_text(text: str | None, max_chars: int | None = None) -> str:
    """Return the stripped modification text or raise ``MediaError`` with a message for the user.

    ``max_chars``: default ``COVR_MAX_TEXT_CHARS`` (``covr_core.settings``), the one limit of every endpoint.
    """
    if max_chars is None:
        from covr_core.settings import load_settings

        max_chars = load_settings().limits.max_text_chars
    text = (text or "").strip()
    if not text:
        raise MediaError("Type a modification text (what should change in the reference).")
    if len(text) > max_chars:
        raise MediaError(f"The modification text is too long ({len(text)} characters, at most {max_chars}).")
    return text


def is_video_path(path: str | Path | None) -> bool:
    """True when the file name looks like a video."""
    return path is not None and Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


def load_reference(image: Any = None, video: str | Path | None = None) -> Image.Image:
    """The query image: ``image`` (path/bytes/PIL) when given, else the middle frame of ``video``.

    Raises ``MediaError`` with a readable message for missing, corrupt, huge or wrong-type inputs.
    """
    if image is not None and not (isinstance(image, str) and not image):
        if is_video_path(image if isinstance(image, (str, Path)) else None):
            return middle_frame(image)
        return load_image(image)
    if video:
        return middle_frame(require_video_file(video))
    raise MediaError("Add a reference image or video first.")


def require_video_file(video: str | Path) -> Path:
    """``video`` as a path when its name is a video's (the content is checked by ``probe_video``, which also
    refuses still images that FFmpeg would open); ``MediaError`` otherwise. Every video endpoint uses it."""
    if not is_video_path(video):
        raise MediaError(f"Not a video file: {Path(str(video)).name} (use mp4/webm/mov/mkv).")
    return Path(str(video))


def sampled_frames(video: str | Path, k: int = 15) -> list[Image.Image]:
    """The ``k`` frames CoVR samples from a video (for display on request); validated like the video still."""
    video = require_video_file(video)
    info = probe_video(video)
    return read_frames(video, sample_frame_indices(info.frame_count, k))


def duplicate_ids(gallery: Any, emb: QueryEmbeddings, threshold: float = 0.999, k: int = 5) -> list[str]:
    """Gallery items that are the reference itself (f_img cosine >= ``threshold``): hidden from results,
    as CoVR removes the reference from CIRR rankings."""
    hits = gallery.search(np.asarray(emb.f_img, dtype=np.float32).reshape(1, -1), k=min(k, len(gallery)))
    return [i for i, s in zip(hits.ids[0], hits.scores[0]) if float(s) >= threshold]


def search_embeddings(
    gallery: Any,
    gallery_name: str,
    emb: QueryEmbeddings,
    text: str,
    combiner: str,
    k: int,
    mlp: Any = None,
    target_id: str | None = None,
    exclude_ids: Sequence[str] = (),
) -> SearchOutcome:
    """Combine the three embeddings with ``combiner`` and search ``gallery`` (top ``k``)."""
    t0 = time.perf_counter()
    cq = combine(combiner, emb, mlp=mlp)
    q = np.asarray(cq.query, dtype=np.float32).reshape(1, -1)
    hits_raw = gallery.search(q, k=int(k), exclude_ids=[set(exclude_ids)] if exclude_ids else None)
    items = gallery.items
    hits: list[Hit] = []
    for r, (iid, score, row) in enumerate(
        zip(hits_raw.ids[0], hits_raw.scores[0], hits_raw.rows[0]), start=1
    ):
        if int(row) < 0:
            continue
        it = items.iloc[int(row)]
        hits.append(
            Hit(
                rank=r,
                id=str(iid),
                score=float(score),
                kind=str(it.get("kind", "image")),
                media=str(gallery.media_path(str(iid))),
                caption=str(it.get("caption", "") or ""),
                is_target=target_id is not None and str(iid) == str(target_id),
            )
        )
    target_rank = None
    if target_id is not None:
        try:
            row = gallery.row_of(str(target_id))
        except (KeyError, ValueError, IndexError):
            row = None
        if row is not None:
            scores = np.asarray(gallery.scores(q))[0]
            target_rank = int((scores > scores[row]).sum()) + 1
    return SearchOutcome(
        text=text,
        combiner=combiner,
        gallery=gallery_name,
        hits=hits,
        weights=np.asarray(cq.weights, dtype=float).reshape(3),
        elapsed_s=time.perf_counter() - t0,
        query=q[0],
        target_id=target_id,
        target_rank=target_rank,
    )


def run_search(
    encoder: Any,
    gallery: Any,
    gallery_name: str,
    image: Image.Image,
    text: str,
    combiner: str,
    k: int = 12,
    mlp: Any = None,
    target_id: str | None = None,
    exclude_ids: Sequence[str] = (),
) -> SearchOutcome:
    """Encode (reference from the cache when prepared) and search; ``elapsed_s`` covers encode + search."""
    text = validate_text(text)
    t0 = time.perf_counter()
    emb = encoder.encode_query(image, text)
    out = search_embeddings(
        gallery, gallery_name, emb, text, combiner, k, mlp=mlp, target_id=target_id, exclude_ids=exclude_ids
    )
    out.elapsed_s = time.perf_counter() - t0
    return out


def outlined_copy(
    path: str | Path, cache_dir: str | Path, colour: tuple[int, int, int] = OUTLINE_COLOUR, width: int = 12
) -> str:
    """A copy of an image with a coloured frame (the ground truth in the results), cached by path."""
    path = Path(path)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = cache_dir / (hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16] + ".png")
    if not out.exists():
        img = load_image(path)
        img.thumbnail((512, 512))
        ImageOps.expand(img, border=width, fill=colour).save(out)
    return str(out)


def gallery_value(outcome: SearchOutcome, outline_dir: str | Path | None = None) -> list[tuple[str, str]]:
    """``gr.Gallery`` value: (media path, "#rank · score · id") per hit; image targets get a green frame."""
    out = []
    for h in outcome.hits:
        media = h.media
        if h.is_target and h.kind == "image" and outline_dir is not None:
            try:
                media = outlined_copy(h.media, outline_dir)
            except MediaError:
                pass
        out.append((media, h.label))
    return out


def outcome_markdown(outcome: SearchOutcome) -> str:
    """One-line summary under the results: the text searched, time, combiner, weights, ground truth rank."""
    w = outcome.weights
    shown = outcome.text if len(outcome.text) <= 60 else outcome.text[:57] + "..."
    shown = " ".join(shown.replace("`", "'").split())
    parts = [
        f"**{len(outcome.hits)} results** for `{shown}` in {outcome.elapsed_s * 1000:.0f} ms",
        f"combiner **{outcome.combiner}** (w_mm {w[0]:.2f}, w_img {w[1]:.2f}, w_txt {w[2]:.2f})",
        f"gallery `{outcome.gallery}`",
    ]
    if outcome.target_id is not None:
        rank = outcome.target_rank
        parts.append(
            f"target `{outcome.target_id}` at rank **{rank}**"
            if rank
            else f"target `{outcome.target_id}` is not in this gallery"
        )
    return " · ".join(parts)


def result_record(
    outcome: SearchOutcome, encoder_info: Any, manifest_sha: str, query: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON record of a search (what is pinned and exported)."""
    return {
        "query": query or {},
        "text": outcome.text,
        "combiner": outcome.combiner,
        "weights": {n: round(float(v), 6) for n, v in zip(("w_mm", "w_img", "w_txt"), outcome.weights)},
        "encoder": getattr(encoder_info, "name", ""),
        "checkpoint": getattr(encoder_info, "checkpoint", ""),
        "checkpoint_sha256": getattr(encoder_info, "checkpoint_sha256", ""),
        "gallery": outcome.gallery,
        "gallery_manifest_sha256": manifest_sha,
        "target_id": outcome.target_id,
        "target_rank": outcome.target_rank,
        "results": [
            {"rank": h.rank, "id": h.id, "score": round(h.score, 6), "kind": h.kind, "is_target": h.is_target}
            for h in outcome.hits
        ],
    }


def video_still_path(video: str | Path, cache_dir: str | Path) -> str:
    """Save the video's middle frame (the query image) as a PNG in ``cache_dir``; returns its path."""
    frame = middle_frame(require_video_file(video))
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = cache_dir / f"still-{hashlib.sha1(frame.tobytes()).hexdigest()[:16]}.png"
    if not out.exists():
        frame.save(out)
    return str(out)


def item_reference(services: Any, gallery_name: str, item_id: str) -> tuple[str, str | None]:
    """An item as the new reference: (image path, video path or None); videos give their middle frame."""
    path = services.item_path(gallery_name, item_id)
    if is_video_path(path):
        return video_still_path(path, services.cache_dir), str(path)
    return str(path), None


def search_with_session(
    services: Any,
    session: Any,
    image: Any,
    video: Any,
    text: str,
    combiner: str,
    gallery_name: str | None,
    k: int,
) -> SearchOutcome:
    """The /search handler without the UI: load the reference, search, remember the result in ``session``."""
    text = validate_text(text, services.settings.limits.max_text_chars)
    if combiner not in services.combiners():
        raise ValueError(f"combiner {combiner!r} is not available (have {services.combiners()})")
    k = int(k or 12)
    if not 1 <= k <= 100:
        raise ValueError("k must be between 1 and 100")
    gallery_name = gallery_name or services.default_gallery
    gal = services.get_gallery(gallery_name)
    ref = load_reference(image, video)
    t0 = time.perf_counter()
    key = services.prepare_reference(ref)
    if session.benchmark_key and key != session.benchmark_key:
        session.benchmark = session.query_id = session.target_id = session.benchmark_key = None
    emb = services.encode_query(ref, text)
    exclude = set(duplicate_ids(gal, emb))
    if session.reference_id:
        exclude.add(session.reference_id)
    out = search_embeddings(
        gal,
        gallery_name,
        emb,
        text,
        combiner,
        k,
        mlp=services.mlp,
        target_id=session.target_id,
        exclude_ids=sorted(exclude),
    )
    out.elapsed_s = time.perf_counter() - t0
    session.reference_key = key
    session.last = result_record(
        out,
        services.info,
        services.gallery_hash(gallery_name),
        query={
            "reference": session.reference_label,
            "benchmark": session.benchmark,
            "query_id": session.query_id,
            "excluded_ids": sorted(exclude),
        },
    )
    session.last_query = [round(float(v), 6) for v in out.query]
    return out
