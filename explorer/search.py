"""Search handlers without the UI: references, the per-user session, status lines and JSON records.

Every query goes through ``explorer.query.run_query``; this module turns page inputs and the ``Session``
into a :class:`~explorer.query.Reference` and a :class:`~explorer.query.Protocol`, and the outcome into
what the page shows (the gallery value, the status line, the record that is pinned and exported).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageOps

from covr_core.media import (
    MediaError,
    load_image,
    middle_frame,
    probe_video,
    read_frames,
    sample_frame_indices,
)
from explorer.query import (
    Protocol,
    QueryResult,
    Reference,
    SearchOutcome,
    make_reference,
    run_query,
)

if TYPE_CHECKING:
    from explorer.services import Services, Session

OUTLINE_COLOUR = (44, 160, 44)
VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v"}
#: What the "Show" radio offers (label -> protocol kind).
KIND_CHOICES = {"all items": "all", "images": "image", "videos": "video"}


def default_combiner(combiners: list[str]) -> str:
    """MLP when trained weights are loaded, else NA (plain CoVR: in the study's Table 3 AVG is never better
    than NA), else the first available."""
    return next((c for c in ("MLP", "NA") if c in combiners), combiners[0])


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


def video_still_path(video: str | Path, cache_dir: str | Path) -> str:
    """Save the video's middle frame (the query image) as a PNG in ``cache_dir``; returns its path."""
    frame = middle_frame(require_video_file(video))
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = cache_dir / f"still-{hashlib.sha1(frame.tobytes()).hexdigest()[:16]}.png"
    if not out.exists():
        frame.save(out)
    return str(out)


def item_reference(services: Services, gallery_name: str, item_id: str) -> tuple[str, str | None]:
    """An item as the new reference: (image path, video path or None); videos give their middle frame."""
    path = services.item_path(gallery_name, item_id)
    if is_video_path(path):
        return video_still_path(path, services.cache_dir), str(path)
    return str(path), None


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
    """``gr.Gallery`` value: (media path, "#rank · id · score") per hit; an image target gets a green frame
    (a video target is framed by the page's stylesheet: its caption carries "✔ target")."""
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


# ---------------------------------------------------------------------------------------------- texts
def rank_phrase(outcome: SearchOutcome) -> str:
    """ "rank 4 among 63 items" (the one rank definition, with its scope), or why there is none."""
    if outcome.target_id is None:
        return ""
    if outcome.target_rank:
        return f"rank {outcome.target_rank} among {outcome.scope}"
    return f"not among the {outcome.scope} searched"


def removed_phrase(outcome: SearchOutcome) -> str:
    """What was left out with the reference, e.g. "reference and 1 near-duplicate hidden"."""
    parts = []
    if outcome.removed.reference:
        parts.append(
            "the reference"
            if len(outcome.removed.reference) == 1
            else f"the reference and {len(outcome.removed.reference) - 1} copies"
        )
    n = len(outcome.removed.near_duplicates)
    if n:
        parts.append(f"{n} near-duplicate{'s' if n != 1 else ''} of it")
    return (" and ".join(parts) + " hidden") if parts else ""


def outcome_markdown(outcome: SearchOutcome, note: str = "") -> str:
    """The status line under the results: text, time, combiner, weights, the target's rank with its scope,
    what was hidden with the reference (and why nothing more is), and an optional note."""
    w = outcome.weights
    shown = outcome.text if len(outcome.text) <= 60 else outcome.text[:57] + "..."
    shown = " ".join(shown.replace("`", "'").split())
    parts = [
        f"**{len(outcome.hits)} results** for `{shown}` in {outcome.elapsed_s * 1000:.0f} ms",
        f"combiner **{outcome.combiner}** (w_mm {w[0]:.2f}, w_img {w[1]:.2f}, w_txt {w[2]:.2f})",
        f"gallery `{outcome.gallery}`",
    ]
    if outcome.target_id is not None:
        if outcome.target_rank:
            parts.append(
                f"target `{outcome.target_id}` at rank **{outcome.target_rank}** among {outcome.scope}"
            )
        else:
            parts.append(f"target `{outcome.target_id}` is not among the {outcome.scope} searched")
    removed = removed_phrase(outcome)
    if removed:
        ids = ", ".join(f"`{i}`" for i in outcome.removed.near_duplicates[:3])
        parts.append(
            removed + (f" ({ids}{', …' if len(outcome.removed.near_duplicates) > 3 else ''})" if ids else "")
        )
    if outcome.protocol != "free":
        parts.append(
            f"{outcome.protocol.upper() if outcome.protocol == 'cirr' else 'WebVid-CoVR'} benchmark protocol"
        )
    line = " · ".join(parts)
    return f"{line}\n\n{note}" if note else line


def result_record(
    outcome: SearchOutcome, encoder_info: Any, manifest_sha: str, query: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON record of a search (what is pinned and exported): the rank comes with its scope."""
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
        "rank_scope": {"candidates": outcome.candidates, "noun": outcome.noun, "protocol": outcome.protocol},
        "rank_text": rank_phrase(outcome),
        "results": [
            {"rank": h.rank, "id": h.id, "score": round(h.score, 6), "kind": h.kind, "is_target": h.is_target}
            for h in outcome.hits
        ],
    }


# ---------------------------------------------------------------------------------------------- session
def remember_reference(
    session: Session, key: str, gallery_id: str | None = None, label: str | None = None
) -> None:
    """Make ``key`` the session's reference. Another image than before ends the old reference's gallery id
    and benchmark context (no stale ground truth, no stale exclusion)."""
    if key != session.reference_key:
        session.reference_id, session.reference_label = None, "upload"
        session.benchmark = session.query_id = session.target_id = None
    session.reference_key = key
    if gallery_id is not None:
        session.reference_id = gallery_id
    if label is not None:
        session.reference_label = label


def forget_reference(session: Session, label: str = "upload") -> None:
    """No reference any more (a new upload starts, or an upload failed)."""
    session.reference_key = session.reference_id = None
    session.benchmark = session.query_id = session.target_id = None
    session.reference_label = label


def session_reference(services: Services, session: Session, image: Any, video: Any) -> Reference:
    """Load, hash and encode the page's reference once, and bind it to the session."""
    img = load_reference(image, video)
    ref = make_reference(services, img)
    remember_reference(session, ref.key)
    return Reference(ref.image, ref.key, session.reference_id, session.reference_label)


def session_protocol(
    services: Services, session: Session, kind: str = "all", hide_near_duplicates: bool = True
) -> Protocol:
    """The benchmark's protocol inside a benchmark context, else a free query's."""
    if session.benchmark:
        return benchmark_protocol(services.get_benchmark(session.benchmark))
    return Protocol(
        "free", kind=KIND_CHOICES.get(kind, kind), hide_near_duplicates=bool(hide_near_duplicates)
    )


def benchmark_protocol(bench: Any) -> Protocol:
    """The protocol of an evaluation run: CIRR ranks the whole gallery; WebVid-CoVR ranks its targets."""
    if str(bench.info.get("benchmark", "cirr")) == "webvid":
        pq = bench.per_query
        first = pq["combiner"].astype(str).iloc[0]
        targets = pq.loc[pq["combiner"].astype(str) == first, "target"].astype(str)
        # one candidate per distinct target video, in first-appearance order (precompute._webvid_eval)
        return Protocol("webvid", kind="video", candidates=tuple(dict.fromkeys(targets)), hide_near_duplicates=False)
    return Protocol("cirr", hide_near_duplicates=False)


def run_with_session(
    services: Services,
    session: Session,
    reference: Reference,
    text: str,
    combiners: list[str],
    gallery_name: str | None,
    k: int,
    kind: str = "all",
    hide_near_duplicates: bool = True,
    reference_kind: str = "image",
    remember: bool = True,
) -> QueryResult:
    """One query for the page with the session's ground truth and protocol. With ``remember`` the first
    combiner's search becomes ``session.last`` (the record that is pinned) and ``session.last_query``."""
    protocol = session_protocol(services, session, kind, hide_near_duplicates)
    result = run_query(services, reference, text, combiners, gallery_name, k, session.target_id, protocol)
    if remember:
        out = next(iter(result.outcomes.values()))
        session.last = result_record(
            out,
            services.info,
            services.gallery_hash(out.gallery),
            query={
                "reference": session.reference_label,
                "reference_kind": reference_kind,
                "benchmark": session.benchmark,
                "query_id": session.query_id,
                "excluded_ids": result.removed.reference,
                "hidden_near_duplicates": result.removed.near_duplicates,
            },
        )
        session.last_query = [round(float(v), 6) for v in out.query]
    return result


def search_with_session(
    services: Services,
    session: Session,
    image: Any,
    video: Any,
    text: str,
    combiners: str | list[str],
    gallery_name: str | None,
    k: int,
    kind: str = "all",
    hide_near_duplicates: bool = True,
    remember: bool = True,
) -> QueryResult:
    """The /search and /compare handler without the UI: the page's reference, then ``run_with_session``."""
    names = [combiners] if isinstance(combiners, str) else list(combiners)
    services.get_gallery(gallery_name)  # "not ready yet" (start-up) or an unknown gallery before any encoding
    reference = session_reference(services, session, image, video)
    is_video = bool(video) or str(session.reference_label).startswith("video:")
    return run_with_session(
        services,
        session,
        reference,
        text,
        names,
        gallery_name,
        k,
        kind,
        hide_near_duplicates,
        "video" if is_video else "image",
        remember,
    )
