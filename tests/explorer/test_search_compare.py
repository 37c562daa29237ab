"""Search and compare handlers on a real (tiny random-weight) BLIP encoder and a real FAISS gallery."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from covr_core.combiners import list_combiners
from covr_core.media import MediaError
from explorer.compare import run_compare, topk_overlap
from explorer.search import (
    gallery_value,
    item_reference,
    load_reference,
    outcome_markdown,
    run_search,
    search_with_session,
    validate_text,
    video_still_path,
)
from explorer.services import Session

pytestmark = pytest.mark.slow


def _ref(svc):
    return load_reference(str(svc.item_path("pics", "p3")))


def test_validate_text():
    assert validate_text("  make it red ") == "make it red"
    with pytest.raises(MediaError, match="Type a modification text"):
        validate_text("   ")
    with pytest.raises(MediaError, match="too long"):
        validate_text("x" * 2000, max_chars=1000)


def test_load_reference_errors(tmp_path):
    with pytest.raises(MediaError, match="reference"):
        load_reference(None, None)
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(MediaError):
        load_reference(str(bad))
    with pytest.raises(MediaError, match="Not a video"):
        load_reference(None, str(tmp_path / "a.txt"))


def test_search_ranks_target_and_labels(tiny_services):
    gal = tiny_services.get_gallery("pics")
    out = run_search(
        tiny_services.encoder,
        gal,
        "pics",
        _ref(tiny_services),
        "make it brighter",
        "IMAGE",
        k=5,
        target_id="p3",
    )
    assert len(out.hits) == 5 and [h.rank for h in out.hits] == [1, 2, 3, 4, 5]
    # IMAGE uses f_img only: the reference itself is the best match and the target rank is exact
    assert out.hits[0].id == "p3" and out.target_rank == 1 and out.hits[0].is_target
    assert out.hits[0].label.startswith("#1 · ") and out.hits[0].label.endswith("p3 · ✔ target")
    assert np.allclose(out.weights, [0, 1, 0])
    scores = [h.score for h in out.hits]
    assert scores == sorted(scores, reverse=True)
    md = outcome_markdown(out)
    assert "IMAGE" in md and "rank **1**" in md


def test_gallery_value_outlines_image_target(tiny_services, tmp_path):
    gal = tiny_services.get_gallery("pics")
    out = run_search(
        tiny_services.encoder, gal, "pics", _ref(tiny_services), "x", "IMAGE", k=3, target_id="p3"
    )
    val = gallery_value(out, tmp_path)
    assert val[0][0].startswith(str(tmp_path)) and val[1][0] == out.hits[1].media
    framed = Image.open(val[0][0])
    assert framed.getpixel((2, 2)) == (44, 160, 44)


@pytest.mark.parametrize("combiner", ["NA", "AVG", "TEXT", "IMAGE"])
def test_every_combiner_searches(tiny_services, combiner):
    assert combiner in list_combiners(None)
    s = Session()
    out = search_with_session(
        tiny_services, s, str(tiny_services.item_path("pics", "p1")), None, "a red one", combiner, "pics", 4
    )
    assert len(out.hits) == 4 and s.last["combiner"] == combiner
    assert [r["rank"] for r in s.last["results"]] == [1, 2, 3, 4]
    assert s.last["gallery_manifest_sha256"] == tiny_services.gallery_hash("pics")
    assert len(s.last_query) == tiny_services.info.dim


def test_search_with_video_uses_middle_frame(tiny_services):
    s = Session()
    video = str(tiny_services.item_path("pics", "clip"))
    out = search_with_session(tiny_services, s, None, video, "same scene", "IMAGE", "pics", 3)
    # the middle frame is exactly the clip's gallery embedding: the reference itself is hidden
    assert "clip" not in out.ids and s.last["query"]["excluded_ids"] == ["clip"] and len(out.hits) == 3
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


def test_reference_is_cached_so_search_costs_only_text(tiny_services):
    enc = tiny_services.encoder
    ref = _ref(tiny_services)
    tiny_services.prepare_reference(ref)
    before = enc.vision_calls
    s = Session()
    search_with_session(
        tiny_services, s, str(tiny_services.item_path("pics", "p3")), None, "new text", "AVG", "pics", 3
    )
    assert enc.vision_calls == before


def test_duplicate_ids_finds_the_reference_itself(tiny_services):
    from explorer.search import duplicate_ids

    gal = tiny_services.get_gallery("pics")
    emb = tiny_services.encode_query(_ref(tiny_services), "x")
    assert duplicate_ids(gal, emb) == ["p3"]


def test_benchmark_context_ends_with_another_reference(tiny_services):
    s = Session(
        benchmark="b",
        query_id="1",
        target_id="p2",
        reference_id="p1",
        benchmark_key=tiny_services.prepare_reference(
            load_reference(str(tiny_services.item_path("pics", "p1")))
        ),
    )
    out = search_with_session(
        tiny_services, s, str(tiny_services.item_path("pics", "p1")), None, "x", "IMAGE", "pics", 3
    )
    assert out.target_id == "p2" and "p1" not in out.ids  # CoVR removes the reference from the results
    out = search_with_session(
        tiny_services, s, str(tiny_services.item_path("pics", "p5")), None, "x", "IMAGE", "pics", 3
    )
    assert out.target_id is None and s.benchmark is None and "p5" not in out.ids


def test_compare_runs_every_combiner(tiny_services):
    gal = tiny_services.get_gallery("pics")
    res = run_compare(
        tiny_services.encoder,
        gal,
        "pics",
        _ref(tiny_services),
        "make it red",
        ["NA", "AVG", "TEXT", "IMAGE"],
        k=4,
        target_id="p3",
        exclude_ids=["p7"],
    )
    assert list(res.outcomes) == ["NA", "AVG", "TEXT", "IMAGE"]
    assert list(res.table["combiner"]) == ["NA", "AVG", "TEXT", "IMAGE"]
    assert res.table.set_index("combiner").loc["IMAGE", "target_rank"] == 1
    assert np.allclose(np.diag(res.overlap.to_numpy()), 1.0)
    assert res.overlap.shape == (4, 4)
    assert all("p7" not in o.ids for o in res.outcomes.values())


def test_topk_overlap():
    ov = topk_overlap({"A": ["a", "b", "c", "d"], "B": ["a", "x", "c", "y"]})
    assert ov.loc["A", "B"] == 0.5 and ov.loc["B", "B"] == 1.0
