"""Benchmark browser: reading evaluation folders, the wide table, filters, deep links."""

from __future__ import annotations

import pytest

from explorer.browse import (
    filter_queries,
    find_benchmarks,
    load_benchmark,
    make_deep_link,
    parse_deep_link,
    query_detail,
    wide_table,
)


def test_find_and_load(eval_folder):
    found = find_benchmarks(eval_folder.parent.parent)
    assert found == {"mini": eval_folder}
    b = load_benchmark(eval_folder)
    assert b.combiners == ["AVG", "MLP"]
    assert b.captions["1"] == "add a dog"


def test_wide_table_success_and_disagreement(eval_folder):
    b = load_benchmark(eval_folder)
    t = wide_table(b, "MLP", k=10)
    assert list(t["query_id"]) == [str(i) for i in range(6)]
    assert list(t["rank_AVG"]) == [1, 3, 20, 2, 50, 1] and list(t["rank_MLP"]) == [2, 15, 20, 1, 40, 1]
    assert list(t["success"]) == [True, False, False, True, False, True]
    assert list(t["disagree"]) == [False, True, False, False, False, False]
    assert t.loc[0, "w_mm"] == pytest.approx(0.6)
    with pytest.raises(ValueError):
        wide_table(b, "NOPE")


def test_filters(eval_folder):
    t = wide_table(load_benchmark(eval_folder), "AVG", k=5)
    assert list(filter_queries(t, text="DOG")["query_id"]) == ["1", "3"]
    assert list(filter_queries(t, outcome="failure")["query_id"]) == ["2", "4"]
    assert list(filter_queries(t, disagreement=True)["query_id"]) == ["1"]
    assert list(filter_queries(t, text="red", outcome="success")["query_id"]) == ["0", "5"]
    with pytest.raises(ValueError):
        filter_queries(t, outcome="maybe")


def test_query_detail(eval_folder):
    d = query_detail(load_benchmark(eval_folder), "2", "MLP")
    assert d["caption"] == "make it blue" and d["rank"] == 20 and d["target"] == "img3"
    assert d["top_ids"] == ["img3", "img4", "img5"] and d["weights"] == pytest.approx([0.3, 0.2, 0.5])
    with pytest.raises(KeyError):
        query_detail(load_benchmark(eval_folder), "99", "MLP")


def test_deep_link_round_trip():
    url = make_deep_link("http://127.0.0.1:7860/", "mini cirr", "12", "AVG")
    assert url == "http://127.0.0.1:7860/?bench=mini+cirr&query=12&combiner=AVG"
    from urllib.parse import parse_qsl, urlparse

    assert parse_deep_link(dict(parse_qsl(urlparse(url).query))) == {
        "bench": "mini cirr",
        "query": "12",
        "combiner": "AVG",
    }
    assert parse_deep_link({"bench": "x"}) is None
