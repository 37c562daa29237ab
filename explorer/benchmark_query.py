"""A benchmark query run live in Search (the Explore tab's "Open in Search" and deep links).

The query runs through the same path as every search (``explorer.search.run_with_session`` ->
``explorer.query.run_query``) under the benchmark's protocol, so its rank is the benchmark table's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from covr_core.media import load_image
from explorer.browse import QueryView, open_query
from explorer.query import QueryResult, SearchOutcome, make_reference
from explorer.search import benchmark_protocol, default_combiner, remember_reference, run_with_session

if TYPE_CHECKING:
    from explorer.services import Services, Session


@dataclass
class BenchmarkRun:
    """What Search shows for a benchmark query: its view, the combiner used, the outcome and a note."""

    view: QueryView
    combiner: str
    result: QueryResult
    note: str = ""

    @property
    def outcome(self) -> SearchOutcome:
        """The outcome of the combiner used."""
        return self.result.outcomes[self.combiner]


def choose_combiner(requested: str | None, available: list[str]) -> tuple[str, str]:
    """The requested combiner when available, else the default one, with a note saying so."""
    if requested and requested in available:
        return requested, ""
    chosen = default_combiner(available)
    if requested:
        why = " (no trained MLP combiner is loaded: start the app with --mlp)" if requested == "MLP" else ""
        return chosen, f"Combiner {requested} is not available here{why}; showing {chosen}, the default."
    return chosen, ""


def run_benchmark_query(
    services: Services, session: Session, bench_name: str, query_id: str, combiner: str | None = None, k: int = 12
) -> BenchmarkRun:
    """Put a benchmark query (its reference, text and ground truth) into ``session`` and run it live."""
    view = open_query(services, bench_name, str(query_id), combiner)
    if view.reference_path is None:
        raise FileNotFoundError(
            f"the reference {view.detail['reference']!r} of query {query_id} is not in gallery "
            f"{view.gallery!r}"
        )
    comb, note = choose_combiner(combiner, services.combiners())
    ref = make_reference(
        services,
        load_image(view.reference_path),
        view.detail["reference"],
        f"benchmark:{bench_name}:{query_id}",
    )
    remember_reference(session, ref.key, ref.gallery_id, ref.label)
    session.benchmark, session.query_id, session.target_id = bench_name, str(query_id), view.detail["target"]
    is_video = bool(view.reference_media) and view.reference_media != view.reference_path
    result = run_with_session(
        services,
        session,
        ref,
        view.detail["caption"],
        [comb],
        view.gallery,
        k,
        reference_kind="video" if is_video else "image",
    )
    return BenchmarkRun(view=view, combiner=comb, result=result, note=note)


def protocol_description(services: Services, bench_name: str) -> str:
    """What the benchmark table's ranks count, in one line (the same scope Search states)."""
    bench = services.get_benchmark(bench_name)
    proto = benchmark_protocol(bench)
    gname = services.gallery_for_benchmark(bench)
    if proto.name == "webvid":
        n = len(proto.candidates or ())
        return (
            f"Ranks: the target's position among the {n} videos of this evaluation (WebVid-CoVR protocol: "
            "the targets of all its rows; the reference's own video removed). Search uses the same scope "
            "when you open a query there."
        )
    n = len(services.get_gallery(gname))
    return (
        f"Ranks: the target's position among the {n - 1} other items of `{gname}` (CIRR protocol: the "
        "reference removed). Search uses the same scope when you open a query there."
    )
