"""The app's one query path: /search, /compare, benchmark queries and deep links all call ``run_query``.

A query is a :class:`Reference` (the image, encoded and hashed once), a modification text, one or more
combiners, a gallery and a :class:`Protocol` that says which gallery items compete. ``run_query``
encodes reference + text once, removes the reference (and what goes with it) once, and ranks the
candidates for every combiner.

**Rank** (one definition for the status line, the green frame, the record, the Curate table, the
exported caption and the benchmark table): the target's 1-based position among the candidates the user
sees: the items in scope minus the reference and the items removed with it, ties broken by gallery order
(``covr_core.metrics.target_ranks``, as ``precompute.evaluate``). It is always given with its scope,
"rank 4 among 63 items". The target itself is never removed.

Protocols (which items compete, which are removed with the reference):

* ``free`` (the user's own queries): every item of the chosen kind (all / images / videos); removed:
  the reference's own gallery item, identical copies and, with "hide near-duplicates" (default on),
  near-duplicates (explorer.near_duplicates);
* ``cirr`` (CIRR-format benchmark queries): every gallery item; removed: the reference (CoVR's CIRR rule,
  as ``precompute.evaluate``);
* ``webvid`` (WebVid-CoVR benchmark queries): the evaluation's candidates, the targets of all its rows
  (CoVR's test protocol ranks videos only); removed: videos of the reference's video
  (``webvid_video_key``), never the target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from PIL import Image

from covr_core.combiners import combine
from covr_core.datasets.webvid import webvid_video_key
from covr_core.media import MediaError
from covr_core.metrics import target_ranks, topk_stable
from covr_core.types import QueryEmbeddings
from explorer.near_duplicates import NearDuplicateFinder, RemovedWithReference

if TYPE_CHECKING:
    from explorer.services import Services

#: Galleries up to this size are ranked with exact scores (numpy); larger free queries without a target
#: use the gallery's FAISS index (exact for flat indexes).
EXACT_MAX_ITEMS = 300_000
KIND_NOUNS = {"all": "items", "image": "images", "video": "videos"}
PROTOCOLS = ("free", "cirr", "webvid")
K_RANGE = (1, 100)


@dataclass(frozen=True)
class Reference:
    """The query's reference image, hashed and encoded once (``key`` is the encoder's cache key)."""

    image: Image.Image
    key: str
    gallery_id: str | None = None  #: the reference's id in the searched gallery, when known
    label: str = "upload"  #: what the record says: "upload", "gallery:<id>", "benchmark:<name>:<query>"


@dataclass(frozen=True)
class Protocol:
    """Which gallery items compete in a query (see the module docstring)."""

    name: str = "free"
    kind: str = "all"  #: all | image | video (free queries)
    candidates: tuple[str, ...] | None = None  #: the benchmark's candidate ids, in evaluation order
    hide_near_duplicates: bool = True  #: free queries only

    def __post_init__(self) -> None:
        if self.name not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.name!r}")
        if self.kind not in KIND_NOUNS:
            raise ValueError(f"kind must be one of {sorted(KIND_NOUNS)}, got {self.kind!r}")

    @property
    def noun(self) -> str:
        """What the candidates are called: "items", "images" or "videos"."""
        return KIND_NOUNS[self.kind]


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
        """The caption under a result: ``#rank · id · score`` (with a mark on the ground truth)."""
        mark = " · ✔ target" if self.is_target else ""
        return f"#{self.rank} · {self.id} · {self.score:.3f}{mark}"


@dataclass
class SearchOutcome:
    """One combiner's ranking: hits, weights, the target's rank and the scope it is counted in."""

    text: str
    combiner: str
    gallery: str
    hits: list[Hit]
    weights: np.ndarray  #: [3] (w_mm, w_img, w_txt)
    elapsed_s: float
    query: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.float32))
    target_id: str | None = None
    target_rank: int | None = None  #: among the candidates (module docstring); None: not among them
    candidates: int = 0  #: how many items competed (scope minus the removed ones)
    noun: str = "items"  #: what they are: items / images / videos
    removed: RemovedWithReference = field(default_factory=RemovedWithReference)
    protocol: str = "free"

    @property
    def ids(self) -> list[str]:
        """Result ids, best first."""
        return [h.id for h in self.hits]

    @property
    def scope(self) -> str:
        """ "63 items": what the rank is counted among."""
        return scope_text(self.candidates, self.noun)


@dataclass
class QueryResult:
    """Every requested combiner's outcome for one encoded query."""

    outcomes: dict[str, SearchOutcome]
    removed: RemovedWithReference
    elapsed_s: float
    embeddings: QueryEmbeddings = field(repr=False, default=None)  # type: ignore[assignment]


def validate_text(text: str | None, max_chars: int) -> str:
    """The stripped modification text, or ``MediaError`` with a message for the user."""
    text = (text or "").strip()
    if not text:
        raise MediaError("Type a modification text (what should change in the reference).")
    if len(text) > max_chars:
        raise MediaError(f"The modification text is too long ({len(text)} characters, at most {max_chars}).")
    return text


def validate_k(k: Any) -> int:
    """``k`` as an int in ``K_RANGE``, else ``ValueError``."""
    try:
        k = int(k if k not in (None, "") else 12)
    except (TypeError, ValueError):
        raise ValueError("k must be a whole number") from None
    if not K_RANGE[0] <= k <= K_RANGE[1]:
        raise ValueError(f"k must be between {K_RANGE[0]} and {K_RANGE[1]}")
    return k


def make_reference(
    services: Services, image: Image.Image, gallery_id: str | None = None, label: str = "upload"
) -> Reference:
    """Encode (and hash) a reference image once through the services' encoder."""
    return Reference(image=image, key=services.prepare_reference(image), gallery_id=gallery_id, label=label)


def row_or_none(gallery: Any, item_id: str | None) -> int | None:
    """The gallery row of ``item_id``, None when absent (or no id)."""
    if item_id is None:
        return None
    try:
        return gallery.row_of(str(item_id))
    except KeyError:
        return None


def scope_rows(gallery: Any, protocol: Protocol) -> np.ndarray:
    """Gallery rows that compete, in ranking order (gallery order; the benchmark's order for WebVid)."""
    if protocol.candidates is not None:
        rows = [row_or_none(gallery, item_id) for item_id in protocol.candidates]
        return np.asarray([r for r in rows if r is not None], dtype=np.int64)
    if protocol.kind == "all":
        return np.arange(len(gallery), dtype=np.int64)
    kinds = gallery.items["kind"].astype(str).to_numpy()
    return np.nonzero(kinds == protocol.kind)[0].astype(np.int64)


def benchmark_removed(
    gallery: Any, protocol: Protocol, reference_id: str | None, target_id: str | None
) -> RemovedWithReference:
    """What a benchmark protocol removes with the reference (as ``precompute.evaluate``): CIRR the reference
    item, WebVid-CoVR every candidate of the reference's video except the target."""
    if protocol.name == "webvid":
        ref_video = webvid_video_key(reference_id) if reference_id else None
        same = [c for c in (protocol.candidates or ()) if ref_video and webvid_video_key(c) == ref_video]
        return RemovedWithReference(reference=[c for c in same if c != target_id])
    keep = (
        reference_id is not None
        and reference_id != target_id
        and row_or_none(gallery, reference_id) is not None
    )
    return RemovedWithReference(reference=[reference_id] if keep else [])


def removed_with_reference(
    gallery: Any,
    reference: Reference,
    f_img: np.ndarray,
    protocol: Protocol,
    target_id: str | None,
    finder: NearDuplicateFinder,
) -> RemovedWithReference:
    """What the protocol removes together with the reference, limited to its scope; never the target."""
    if protocol.name != "free":
        return benchmark_removed(gallery, protocol, reference.gallery_id, target_id)
    out = finder.find(gallery, reference.image, f_img, reference.gallery_id, protocol.hide_near_duplicates)
    kinds = gallery.items["kind"].astype(str)
    in_scope = lambda i: protocol.kind == "all" or kinds.iloc[gallery.row_of(i)] == protocol.kind  # noqa: E731
    keep = lambda ids: [i for i in ids if i != target_id and in_scope(i)]  # noqa: E731
    return RemovedWithReference(reference=keep(out.reference), near_duplicates=keep(out.near_duplicates))


def scope_text(count: int, noun: str) -> str:
    """ "63 items", "1 video"."""
    return f"{count} {noun if count != 1 else noun[:-1]}"


def candidate_count(gallery: Any, protocol: Protocol, removed: Sequence[str]) -> int:
    """How many items compete: the protocol's scope minus the removed ones."""
    rows = scope_rows(gallery, protocol)
    gone = [r for r in (row_or_none(gallery, i) for i in removed) if r is not None]
    return int(len(rows) - np.isin(rows, np.asarray(gone, dtype=np.int64)).sum()) if gone else len(rows)


def rank_candidates(
    gallery: Any, query: np.ndarray, protocol: Protocol, removed: Sequence[str], k: int, target_id: str | None
) -> tuple[np.ndarray, np.ndarray, int | None, int]:
    """(top rows, their scores, target rank or None, number of candidates) for one combined query.

    Exact scores rank the candidates (stable ties, as the evaluation job) whenever a target is known, the
    scope is restricted or the gallery has at most ``EXACT_MAX_ITEMS`` items; otherwise the index does.
    """
    rows = scope_rows(gallery, protocol)
    removed_rows = [gallery.row_of(i) for i in removed]
    if removed_rows:
        rows = rows[~np.isin(rows, np.asarray(removed_rows, dtype=np.int64))]
    q = np.asarray(query, dtype=np.float32).reshape(1, -1)
    exact = (
        target_id is not None
        or protocol.candidates is not None
        or protocol.kind != "all"
        or len(gallery) <= EXACT_MAX_ITEMS
    )
    if not exact:
        hits = gallery.search(q, k=min(k, len(rows)), exclude_ids=[set(removed)] if removed else None)
        keep = hits.rows[0] >= 0
        return hits.rows[0][keep], hits.scores[0][keep], None, len(rows)
    scores = gallery.scores(q)[0][rows]
    top = topk_stable(scores[None, :], min(k, len(rows)))[0]
    rank = None
    target_row = row_or_none(gallery, target_id)
    if target_row is not None:
        pos = np.nonzero(rows == target_row)[0]
        if len(pos):
            rank = int(target_ranks(scores[None, :], pos[:1])[0])
    return rows[top], scores[top], rank, len(rows)


def _hits(gallery: Any, rows: np.ndarray, scores: np.ndarray, target_id: str | None) -> list[Hit]:
    items = gallery.items
    out = []
    for rank, (row, score) in enumerate(zip(rows.tolist(), scores.tolist()), start=1):
        it = items.iloc[int(row)]
        item_id = str(it["id"])
        out.append(
            Hit(
                rank=rank,
                id=item_id,
                score=float(score),
                kind=str(it.get("kind", "image")),
                media=str(gallery.media_path(item_id)),
                caption=str(it.get("caption", "") or ""),
                is_target=target_id is not None and item_id == str(target_id),
            )
        )
    return out


def run_query(
    services: Services,
    reference: Reference,
    text: str,
    combiners: Sequence[str],
    gallery_name: str | None = None,
    k: int = 12,
    target_id: str | None = None,
    protocol: Protocol = Protocol(),
) -> QueryResult:
    """Encode ``reference`` + ``text`` once and rank the protocol's candidates with every combiner.

    Checks the text (``services.settings`` limit), ``k`` and the combiners; the reference is encoded from
    the encoder's cache by its key (no second hash, no second vision pass).
    """
    text = validate_text(text, services.settings.limits.max_text_chars)
    k = validate_k(k)
    available = services.combiners()
    if not combiners:
        raise ValueError("no combiner available")
    for c in combiners:
        if c not in available:
            raise ValueError(f"combiner {c!r} is not available (have {', '.join(available)})")
    gallery_name = gallery_name or services.default_gallery
    gallery = services.get_gallery(gallery_name)
    t0 = time.perf_counter()
    emb = services.encode_query(reference.image, text, key=reference.key)
    removed = removed_with_reference(
        gallery, reference, emb.f_img, protocol, target_id, services.near_duplicates
    )
    outcomes = {}
    for name in combiners:
        t1 = time.perf_counter()
        cq = combine(name, emb, mlp=services.mlp)
        query = np.asarray(cq.query, dtype=np.float32).reshape(-1)
        rows, scores, rank, count = rank_candidates(gallery, query, protocol, removed.all, k, target_id)
        outcomes[name] = SearchOutcome(
            text=text,
            combiner=name,
            gallery=gallery_name,
            hits=_hits(gallery, rows, scores, target_id),
            weights=np.asarray(cq.weights, dtype=float).reshape(3),
            elapsed_s=time.perf_counter() - t1,
            query=query,
            target_id=target_id,
            target_rank=rank,
            candidates=count,
            noun=protocol.noun,
            removed=removed,
            protocol=protocol.name,
        )
    elapsed = time.perf_counter() - t0
    for o in outcomes.values():
        o.elapsed_s = elapsed
    return QueryResult(outcomes=outcomes, removed=removed, elapsed_s=elapsed, embeddings=emb)
