"""The one query path (explorer.query.run_query) and its page-level handlers on a real (tiny random-weight)
BLIP encoder and a real FAISS gallery: one exclusion rule, one text limit, one rank definition."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from covr_core.combiners import list_combiners
from covr_core.media import MediaError
from explorer.compare import compare_outcome, topk_overlap
from explorer.query import Protocol, make_reference, rank_candidates, run_query, validate_k, validate_text
from explorer.search import (
    gallery_value,
    item_reference,
    load_reference,
    outcome_markdown,
    remember_reference,
    search_with_session,
    video_still_path,
)
from explorer.services import Session

pytestmark = pytest.mark.slow


def _ref(svc, item="p3"):
    return make_reference(svc, load_reference(str(svc.item_path("pics", item))), gallery_id=item)


def test_validate_text_and_k():
    assert validate_text("  make it red ", 20) == "make it red"
    with pytest.raises(MediaError, match="Type a modification text"):
        validate_text("   ", 20)
    with pytest.raises(MediaError, match="too long"):
        validate_text("x" * 21, max_chars=20)
    assert validate_k("7") == 7 and validate_k(None) == 12
    for bad in (0, 101, "many"):
        with pytest.raises(ValueError, match="k must"):
            validate_k(bad)


def test_the_text_limit_is_the_settings_one_for_search_and_compare(tiny_services):
    limit = tiny_services.settings.limits.max_text_chars
    img = str(tiny_services.item_path("pics", "p1"))
    run_query(tiny_services, _ref(tiny_services, "p1"), "x" * limit, ["AVG"], "pics", 3)  # at the limit: fine
    for combiners in (["AVG"], tiny_services.combiners()):  # /search and /compare alike
        with pytest.raises(MediaError, match=f"at most {limit}"):
            search_with_session(tiny_services, Session(), img, None, "x" * (limit + 1), combiners, "pics", 3)


def test_load_reference_errors(tmp_path):
    with pytest.raises(MediaError, match="reference"):
        load_reference(None, None)
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(MediaError):
        load_reference(str(bad))
    with pytest.raises(MediaError, match="Not a video"):
        load_reference(None, str(tmp_path / "a.txt"))


def test_rank_is_counted_among_what_the_user_sees(tiny_services):
    """The reference is removed and not counted: the target's rank equals its position in the grid."""
    gal = tiny_services.get_gallery("pics")
    ref = _ref(tiny_services, "p3")
    res = run_query(tiny_services, ref, "make it brighter", ["IMAGE"], "pics", 9, target_id="p5")
    out = res.outcomes["IMAGE"]
    assert "p3" not in out.ids and res.removed.reference == ["p3"]  # the reference itself is hidden
    assert out.candidates == len(gal) - 1 and out.scope == f"{len(gal) - 1} items"
    framed = [h.rank for h in out.hits if h.is_target]
    assert framed == [out.target_rank]
    # the same rank from first principles: items scoring above the target, the reference not counted
    scores = gal.scores(out.query[None])[0]
    rows = [gal.row_of(i) for i in gal.items["id"] if i != "p3"]
    assert out.target_rank == 1 + sum(scores[r] > scores[gal.row_of("p5")] for r in rows)
    md = outcome_markdown(out)
    assert f"at rank **{out.target_rank}** among {out.scope}" in md and "the reference hidden" in md


def test_hits_and_labels(tiny_services):
    res = run_query(
        tiny_services, _ref(tiny_services), "make it brighter", ["IMAGE"], "pics", 5, target_id="p4"
    )
    out = res.outcomes["IMAGE"]
    assert [h.rank for h in out.hits] == [1, 2, 3, 4, 5] and np.allclose(out.weights, [0, 1, 0])
    scores = [h.score for h in out.hits]
    assert scores == sorted(scores, reverse=True)
    for h in out.hits:  # "#rank · id · score": the id comes before the score, the mark last
        assert h.label.startswith(f"#{h.rank} · {h.id} · {h.score:.3f}")
        assert h.label.endswith("✔ target") == h.is_target


def test_gallery_value_outlines_image_target(tiny_services, tmp_path):
    res = run_query(tiny_services, _ref(tiny_services), "x", ["IMAGE"], "pics", 8, target_id="p5")
    out = res.outcomes["IMAGE"]
    val = gallery_value(out, tmp_path)
    i = next(j for j, h in enumerate(out.hits) if h.is_target)
    assert val[i][0].startswith(str(tmp_path)) and Image.open(val[i][0]).getpixel((2, 2)) == (44, 160, 44)
    assert all(v[0] == h.media for v, h in zip(val, out.hits) if not h.is_target)


@pytest.mark.parametrize("combiner", ["NA", "AVG", "TEXT", "IMAGE"])
def test_every_combiner_searches(tiny_services, combiner):
    assert combiner in list_combiners(None)
    s = Session()
    out = search_with_session(
        tiny_services, s, str(tiny_services.item_path("pics", "p1")), None, "a red one", combiner, "pics", 4
    ).outcomes[combiner]
    assert len(out.hits) == 4 and s.last["combiner"] == combiner
    assert [r["rank"] for r in s.last["results"]] == [1, 2, 3, 4]
    assert s.last["gallery_manifest_sha256"] == tiny_services.gallery_hash("pics")
    assert len(s.last_query) == tiny_services.info.dim


def test_search_with_video_uses_middle_frame(tiny_services):
    s = Session()
    video = str(tiny_services.item_path("pics", "clip"))
    res = search_with_session(tiny_services, s, None, video, "same scene", "IMAGE", "pics", 3)
    # the middle frame is exactly the clip's gallery embedding: an identical copy, hidden with the reference
    assert "clip" not in res.outcomes["IMAGE"].ids and s.last["query"]["excluded_ids"] == ["clip"]
    assert s.last["query"]["reference_kind"] == "video"
    still = video_still_path(video, tiny_services.cache_dir)
    assert Image.open(still).size == (80, 48)
    assert item_reference(tiny_services, "pics", "clip") == (still, video)


def test_search_refuses_bad_input(tiny_services):
    s = Session()
    img = str(tiny_services.item_path("pics", "p1"))
    with pytest.raises(ValueError, match="not available"):
        search_with_session(tiny_services, s, img, None, "x", "MLP", "pics", 4)
    with pytest.raises(ValueError, match="k must"):
        search_with_session(tiny_services, s, img, None, "x", "AVG", "pics", 1000)
    with pytest.raises(KeyError):
        search_with_session(tiny_services, s, img, None, "x", "AVG", "nope", 4)


def test_reference_is_hashed_and_encoded_once(tiny_services, monkeypatch):
    """One query: one content hash and no vision pass when the reference is already prepared."""
    import covr_core.encoder as encoder_mod

    enc = tiny_services.encoder
    ref = _ref(tiny_services)
    before, hashes = enc.vision_calls, []
    real = encoder_mod.content_hash
    monkeypatch.setattr(encoder_mod, "content_hash", lambda x: hashes.append(1) or real(x))
    run_query(tiny_services, ref, "new text", tiny_services.combiners(), "pics", 3)
    assert enc.vision_calls == before and hashes == []  # the key travels with the reference


def test_a_stale_key_falls_back_to_the_image(tiny_services):
    ref = _ref(tiny_services)
    tiny_services.encoder.reference_cache.clear()
    out = run_query(tiny_services, ref, "x", ["IMAGE"], "pics", 2).outcomes["IMAGE"]
    assert len(out.hits) == 2


def test_benchmark_context_ends_with_another_reference(tiny_services):
    s = Session()
    key = _ref(tiny_services, "p1").key
    remember_reference(s, key, "p1", "benchmark:b:1")
    s.benchmark, s.query_id, s.target_id = None, "1", "p2"  # a free query with a ground truth
    out = search_with_session(
        tiny_services, s, str(tiny_services.item_path("pics", "p1")), None, "x", "IMAGE", "pics", 3
    ).outcomes["IMAGE"]
    assert out.target_id == "p2" and "p1" not in out.ids  # CoVR removes the reference from the results
    out = search_with_session(
        tiny_services, s, str(tiny_services.item_path("pics", "p5")), None, "x", "IMAGE", "pics", 3
    ).outcomes["IMAGE"]
    assert out.target_id is None and s.reference_id is None and s.query_id is None
    assert "p5" not in out.ids  # an identical copy of the new reference


def test_kind_scope_counts_only_that_kind(tiny_services):
    ref = _ref(tiny_services, "p3")
    res = run_query(tiny_services, ref, "x", ["IMAGE"], "pics", 9, protocol=Protocol("free", kind="video"))
    out = res.outcomes["IMAGE"]
    assert out.ids == ["clip"] and out.scope == "1 video"


def test_exact_and_index_paths_agree(tiny_services, monkeypatch):
    import explorer.query as q

    gal = tiny_services.get_gallery("pics")
    query = np.random.default_rng(1).normal(size=gal.dim).astype(np.float32)
    query /= np.linalg.norm(query)
    exact = rank_candidates(gal, query, Protocol(), ["p3"], 5, None)
    monkeypatch.setattr(q, "EXACT_MAX_ITEMS", 0)
    index = rank_candidates(gal, query, Protocol(), ["p3"], 5, None)
    assert exact[0].tolist() == index[0].tolist() and exact[3] == index[3] == len(gal) - 1


def test_compare_runs_every_combiner_on_one_encoding(tiny_services):
    enc = tiny_services.encoder
    ref = _ref(tiny_services)
    calls = enc.vision_calls
    res = run_query(
        tiny_services, ref, "make it red", ["NA", "AVG", "TEXT", "IMAGE"], "pics", 4, target_id="p3"
    )
    cmp = compare_outcome(res)
    assert enc.vision_calls == calls
    assert list(cmp.outcomes) == list(cmp.table["combiner"]) == ["NA", "AVG", "TEXT", "IMAGE"]
    assert set(cmp.table["among"]) == {f"{len(tiny_services.get_gallery('pics'))} items"}
    assert np.allclose(np.diag(cmp.overlap.to_numpy()), 1.0) and cmp.overlap.shape == (4, 4)
    # the target is never removed, even when it is the reference's gallery item
    assert cmp.table.set_index("combiner").loc["IMAGE", "target_rank"] == 1


def test_topk_overlap():
    ov = topk_overlap({"A": ["a", "b", "c", "d"], "B": ["a", "x", "c", "y"]})
    assert ov.loc["A", "B"] == 0.5 and ov.loc["B", "B"] == 1.0
