"""Weight analysis (Figure 1 histograms, ternary coordinates, extremes) and the plotly figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from explorer.plots import map_figure_json, ternary_figure, weights_bar_figure, weights_histogram_figure
from explorer.weights import (
    has_weights,
    highest_weight_queries,
    identical_combiners,
    identical_note,
    jitter_on_simplex,
    same_weights_count,
    weight_histograms,
    weight_summary,
)


def _table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    w = rng.dirichlet([10, 3, 7], size=n)
    return pd.DataFrame(
        {
            "query_id": [str(i) for i in range(n)],
            "w_mm": w[:, 0],
            "w_img": w[:, 1],
            "w_txt": w[:, 2],
            "success": rng.random(n) > 0.5,
        }
    )


def test_histograms_are_normalised_and_means_match():
    df = _table()
    h = weight_histograms(df, bins=20)
    assert len(h.edges) == 21 and h.count == 200
    for name in ("w_mm", "w_img", "w_txt"):
        assert h.freq[name].sum() == pytest.approx(1.0)
        assert h.mean[name] == pytest.approx(df[name].mean())
    assert h.mean["w_mm"] > h.mean["w_txt"] > h.mean["w_img"]


def test_histograms_refuse_tables_without_weights():
    assert not has_weights(pd.DataFrame({"x": [1]}))
    with pytest.raises(ValueError):
        weight_histograms(pd.DataFrame({"x": [1.0]}))


def test_jitter_keeps_points_on_the_simplex_and_separates_equal_ones():
    w = np.tile([1 / 3, 1 / 3, 1 / 3], (46, 1))
    j = jitter_on_simplex(w)
    np.testing.assert_allclose(j.sum(axis=1), 1.0)
    assert (j >= 0).all() and len({tuple(np.round(r, 6)) for r in j}) == 46
    assert np.abs(j - w).max() < 0.1  # near the true point
    np.testing.assert_array_equal(jitter_on_simplex(w), j)  # fixed seed: the same picture every time
    assert list(same_weights_count(np.vstack([w[:3], [[1, 0, 0]]]))) == [3, 3, 3, 1]


def _per_query(ranks: dict[str, list[int]], tops: dict[str, list[list[str]]]) -> pd.DataFrame:
    rows = []
    for c, rs in ranks.items():
        for i, r in enumerate(rs):
            rows.append({"query_id": str(i), "combiner": c, "rank": r, "top_ids": tops[c][i]})
    return pd.DataFrame(rows)


def test_identical_combiners_and_the_note_that_explains_them():
    tops = [["a", "b"], ["c", "d"]]
    pq = _per_query(
        {"NA": [1, 3], "AVG": [1, 3], "TEXT": [2, 3]},
        {"NA": tops, "AVG": tops, "TEXT": [["b", "a"], ["c", "d"]]},
    )
    assert identical_combiners(pq) == [("NA", "AVG")]
    from covr_core.types import EncoderInfo

    lite = EncoderInfo("lite", "1", "pkg", "", 384, fused=False, note="f_mm = normalise(f_img + f_txt)")
    note = identical_note([("NA", "AVG")], lite)
    assert "NA and AVG rank every query of this run identically" in note and "no fused" in note
    assert "f_mm = normalise(f_img + f_txt)" in note
    assert identical_note([], lite) == ""
    assert identical_combiners(_per_query({"NA": [1, 2], "AVG": [1, 3]}, {"NA": tops, "AVG": tops})) == []


def test_highest_weight_queries_and_summary():
    df = _table()
    top = highest_weight_queries(df, "w_img", n=3)
    assert list(top["w_img"]) == sorted(df["w_img"], reverse=True)[:3]
    with pytest.raises(ValueError):
        highest_weight_queries(df, "w_foo")
    s = weight_summary(df)
    assert list(s["weight"]) == ["w_mm", "w_img", "w_txt"]
    assert s.loc[0, "max"] == pytest.approx(round(df["w_mm"].max(), 4))


def test_figures_have_the_expected_traces():
    df = _table(50)
    bar = weights_bar_figure([0.5, 0.2, 0.3], "MLP")
    assert list(bar.data[0].x) == ["w_mm", "w_img", "w_txt"] and bar.data[0].y[0] == 0.5
    hist = weights_histogram_figure(weight_histograms(df))
    assert [t.name.split()[0] for t in hist.data] == ["w_mm", "w_img", "w_txt"]
    tern = ternary_figure(df)
    ok = int(df["success"].sum())
    assert [t.name for t in tern.data] == [f"success ({ok})", f"failure ({50 - ok})"]
    assert all(t.type == "scatterternary" for t in tern.data) and sum(len(t.a) for t in tern.data) == 50
    assert "w_mm=" in tern.data[0].text[0]  # the hover gives the true weights


def test_map_figure_json_carries_hover_data():
    pts = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "x": [0.0, 1, 2],
            "y": [0.0, 1, 0],
            "group": ["image", "video", "image"],
            "caption": ["A", "B", "C"],
            "thumb_url": ["/a.png", "", "/c.png"],
        }
    )
    fig = map_figure_json(
        pts,
        [{"name": "query", "x": [0.5], "y": [0.5], "ids": ["query"], "captions": ["q"], "thumb_urls": [""]}],
    )
    assert [t["name"] for t in fig["data"]] == ["image", "video", "query"]
    assert fig["data"][0]["customdata"] == [["a", "A", "/a.png"], ["c", "C", "/c.png"]]
    assert fig["data"][2]["marker"]["symbol"] == "star"
