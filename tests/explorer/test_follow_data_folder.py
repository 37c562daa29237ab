"""The app follows its data folder: evaluations and filter runs that appear or change after start are
listed and reloaded, combiner choices per evaluation (MLP reachable when any evaluation has it), paging of
the benchmark browser, and deep-link base URLs taken from the request."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from covr_core.settings import Settings
from explorer.browse import page_of, request_base_url
from precompute.demo import DemoJobs
from explorer.filter_view import WEBVID_ROOT_ENV, filter_tab, find_filter_runs, load_filter_report, webvid_root
from explorer.services import Services


def write_eval(data: Path, name: str, combiners: list[str], n: int = 3) -> Path:
    out = data / "evaluations" / name
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"query_id": str(i), "combiner": c, "reference": "r", "target": "t", "rank": i + 1, "top_ids": ["t"],
             "top_scores": np.array([0.5], np.float32), "w_mm": 1.0, "w_img": 0.0, "w_txt": 0.0}
            for c in combiners for i in range(n)]
    pd.DataFrame(rows).to_parquet(out / "per_query.parquet")
    (out / "metrics.json").write_text(json.dumps({"info": {"combiners": combiners}, "results": {}}))
    return out


@pytest.fixture()
def services(tmp_path):
    return Services(None, Settings(data_dir=tmp_path / "data"), "none")


def test_evaluations_appear_and_reload_without_restart(services):
    data = services.data_dir
    assert services.benchmark_names() == []
    write_eval(data, "a-first", ["NA", "AVG"])
    assert services.benchmark_names() == ["a-first"]
    assert services.get_benchmark("a-first").combiners == ["NA", "AVG"]
    time.sleep(0.01)
    folder = write_eval(data, "a-first", ["NA", "AVG", "MLP"], n=5)  # rewritten in place (e.g. a rerun)
    os.utime(folder / "per_query.parquet", ns=(time.time_ns(), time.time_ns() + 10**9))
    assert services.get_benchmark("a-first").combiners == ["NA", "AVG", "MLP"]
    assert len(services.get_benchmark("a-first").per_query) == 15
    (data / "evaluations" / ".b-tmp-123").mkdir()  # an evaluation being written is not listed
    (data / "evaluations" / ".b-tmp-123" / "per_query.parquet").write_bytes(b"")
    assert services.benchmark_names() == ["a-first"]
    with pytest.raises(KeyError, match="unknown benchmark"):
        services.get_benchmark("gone")


def test_mlp_reachable_when_the_first_evaluation_has_none(services):
    write_eval(services.data_dir, "a-no-mlp", ["NA", "AVG", "TEXT", "IMAGE"])
    write_eval(services.data_dir, "b-mlp", ["NA", "MLP"])
    assert services.benchmark_combiners("a-no-mlp") == ["NA", "AVG", "TEXT", "IMAGE"]
    assert services.all_benchmark_combiners() == ["NA", "AVG", "MLP", "TEXT", "IMAGE"]


def test_pages_cover_every_row_and_say_so():
    table = pd.DataFrame({"query_id": [str(i) for i in range(1234)]})
    first, info = page_of(table, 1, 500)
    assert len(first) == 500 and info.startswith("Rows 1–500 of 1,234") and "page 1 of 3" in info
    last, info = page_of(table, 99, 500)  # past the end: the last page
    assert len(last) == 234 and "Rows 1,001–1,234 of 1,234" in info
    assert page_of(table.head(0), 1, 500)[1] == "No query matches."


@pytest.mark.parametrize("headers, expected", [
    ({"origin": "https://me.hf.space"}, "https://me.hf.space"),
    ({"host": "127.0.0.1:50123"}, "http://127.0.0.1:50123"),
    ({"Host": "box:8080", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "demo.example.org"},
     "https://demo.example.org"),
    ({}, "fallback"),
])
def test_deep_link_base_follows_the_request(headers, expected):
    assert request_base_url(headers, default="fallback") == expected


def _filter_run(out: Path, tmp: Path) -> None:
    from precompute.filter_webvid import run

    csv = tmp / f"{out.name}.csv"
    pd.DataFrame({"pth1": ["v/a"], "pth2": ["v/b"], "edit": ["x"]}).to_csv(csv, index=False)
    pd.DataFrame({"id": ["a", "b"], "author": ['{"accountsId": "A"}'] * 2, "categories": ["[]", "[]"]}).to_csv(
        tmp / "map.csv", index=False)
    run(csv=[str(csv)], map=str(tmp / "map.csv"), out=str(out))


def test_filter_runs_are_found_where_the_docs_put_them(services, tmp_path, monkeypatch):
    data = services.data_dir
    md, _, _ = filter_tab(data, tmp_path / "cache")  # no run yet: the page says how to make one
    assert "No WebVid filter statistics yet" in md and "python -m precompute.filter_webvid" in md
    DemoJobs(data).filter_run()  # what the start-up's demo chain writes: the bundled demo, said so
    md, _, _ = filter_tab(data, tmp_path / "cache")
    assert "bundled mini demo" in md
    _filter_run(data / "webvid_filter" / "train", tmp_path)
    _filter_run(data / "webvid_filter", tmp_path)  # --out <data>/webvid_filter itself
    assert list(find_filter_runs(data)) == ["webvid_filter", "train", "demo"]
    assert services.filter_run_names() == ["webvid_filter", "train", "demo"]
    rep = load_filter_report(data, "train")
    assert rep.name == "train" and not rep.is_demo and rep.table["triplets"].iloc[0] == 1
    md, _, examples = filter_tab(data, tmp_path / "cache", "train")
    assert "filter run `train`" in md and examples == [] and "--webvid-root" in md  # no videos there
    with pytest.raises(KeyError, match="unknown filter run"):
        load_filter_report(data, "nope")
    monkeypatch.delenv(WEBVID_ROOT_ENV, raising=False)
    assert webvid_root(data) == data.resolve() / "webvid"
    monkeypatch.setenv(WEBVID_ROOT_ENV, str(tmp_path / "videos"))
    assert webvid_root(data) == (tmp_path / "videos").resolve()
    assert load_filter_report(data, "train").video_roots[0] == (tmp_path / "videos").resolve()


def test_app_takes_the_webvid_root_from_flag_or_environment(monkeypatch):
    import app

    monkeypatch.setenv(WEBVID_ROOT_ENV, "/env/videos")
    assert app.parse_args([]).webvid_root == "/env/videos"
    assert app.parse_args(["--webvid-root", "/flag/videos"]).webvid_root == "/flag/videos"
