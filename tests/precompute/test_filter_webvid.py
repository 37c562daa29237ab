"""``python -m precompute.filter_webvid``: the study's author/category filter on a small hand-made table."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from covr_core.filter_run import MARKDOWN_FILE, FilterRun
from precompute import filter_webvid as job

MAP_ROWS = [  # id, author JSON, categories JSON
    ("1", '{"accountsId": "A", "displayName": "x, y"}', '["Nature", "Animals"]'),
    ("2", '{"accountsId": "A"}', '["City"]'),
    ("3", '{"accountsId": "B"}', '["Nature"]'),
    ("4", '{"accountsId": null}', "[]"),
    ("5", "", '["City", "Night"]'),
    ("6", '{"accountsId": 77, "n": 1}', '["Sports"]'),
    ("7", '{"accountsId": 77}', '["Food"]'),
    ("99", '{"accountsId": "Z"}', '["Nature"]'),  # not used by the CSV
]
PAIRS = [("10/1", "20/2"), ("10/1", "30/3"), ("10/2", "30/5"), ("10/4", "30/5"), ("10/6", "30/7"),
         ("10/1", "40/8"), ("10/3", "20/1"), ("10/2", "20/1"), ("10/4", "20/4"), ("20/5", "30/2")]
# computed by hand from the two tables above
EXPECTED = {
    "all": {"target_videos": 8, "triplets": 10, "query_videos": 6},
    "same-author": {"target_videos": 3, "triplets": 3, "query_videos": 3},
    "same-category": {"target_videos": 4, "triplets": 4, "query_videos": 4},
    "same-author-or-category": {"target_videos": 6, "triplets": 7, "query_videos": 5},
}
EXPECTED_ROWS = {"same-author": [0, 4, 7], "same-category": [1, 2, 6, 9],
                 "same-author-or-category": [0, 1, 2, 4, 6, 7, 9]}


@pytest.fixture
def tables(tmp_path):
    rows = [{"txt1": f"a, b {i}", "txt2": f'say "hi" {i}', "sim_txt": f"0.{i}5", "pth1": p1, "pth2": p2,
             "edit": f"make it {i}", "scores": json.dumps([0.1 * i, 0.25])} for i, (p1, p2) in enumerate(PAIRS)]
    csv = tmp_path / "webvid2m-covr_train.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    cmap = pd.DataFrame(MAP_ROWS, columns=["id", "author", "categories"])
    cmap.to_csv(tmp_path / "map.csv", index=False)
    cmap.assign(id=cmap["id"].astype("int64")).to_parquet(tmp_path / "map.parquet")  # ids as integers
    return csv, tmp_path


@pytest.mark.parametrize("map_name", ["map.csv", "map.parquet"])
def test_filter_counts_match_hand_counts(tables, map_name, tmp_path):
    csv, folder = tables
    out = tmp_path / f"out-{map_name}"
    assert job.main(["--csv", str(csv), "--map", str(folder / map_name), "--out", str(out), "--chunksize", "3"]) == 0
    stats = FilterRun.load(out).stats["webvid2m-covr_train"]
    assert stats == EXPECTED
    original = pd.read_csv(csv, dtype=str, keep_default_na=False)
    for rule, rows in EXPECTED_ROWS.items():
        got = pd.read_csv(out / f"webvid2m-covr_train_{rule}.csv", dtype=str, keep_default_na=False)
        assert list(got.columns) == list(original.columns)  # original columns, unchanged values
        assert got.equals(original.iloc[rows].reset_index(drop=True))
    md = (out / MARKDOWN_FILE).read_text()
    assert "| dataset | target videos | triplets | query videos |" in md
    assert "| same author or category (\"F\") | 6 | 7 | 5 |" in md


def test_filter_matches_a_row_by_row_reference(tables, tmp_path):
    """The vectorised masks equal a plain per-row json.loads implementation."""
    csv, folder = tables
    meta = job.load_video_meta(folder / "map.csv", pd.Series(["1", "2", "3", "4", "5", "6", "7", "8"]).to_numpy(object))
    df = pd.read_csv(csv, dtype=str)
    masks = job.rule_masks(meta, df["pth1"], df["pth2"])
    lookup = {}
    for vid, author, cats in MAP_ROWS:
        acc = json.loads(author).get("accountsId") if author else None
        lookup[vid] = (acc, set(json.loads(cats)))
    for i, (p1, p2) in enumerate(PAIRS):
        a = lookup.get(p1.split("/")[-1], (None, set()))
        b = lookup.get(p2.split("/")[-1], (None, set()))
        same_author = a[0] is not None and a[0] == b[0]
        same_cat = bool(a[1] & b[1])
        assert masks["same-author"][i] == same_author
        assert masks["same-category"][i] == same_cat
        assert masks["same-author-or-category"][i] == (same_author or same_cat)


def test_many_categories_use_several_bitset_words(tmp_path):
    names = [f"c{k}" for k in range(150)]
    cmap = pd.DataFrame({"id": ["1", "2", "3"], "author": ["", "", ""],
                         "categories": [json.dumps(names[:70]), json.dumps([names[140]]), json.dumps([names[140], "x"])]})
    cmap.to_csv(tmp_path / "m.csv", index=False)
    meta = job.load_video_meta(tmp_path / "m.csv", pd.Series(["1", "2", "3"]).to_numpy(object))
    assert meta.bits.shape == (3, 2)  # 72 distinct categories -> two 64-bit words
    m = job.rule_masks(meta, pd.Series(["a/1", "a/2"]), pd.Series(["b/2", "b/3"]))
    assert m["same-category"].tolist() == [False, True]


@pytest.mark.parametrize("stage", ["filter-map", "filter-batch", "filter-rename"])
def test_filter_killed_then_rerun_gives_the_same_files(stage, tables, tmp_path):
    """A real SIGKILL at three points: the rerun's outputs equal an uninterrupted run, byte for byte."""
    import signal

    from conftest import run_job

    csv, folder = tables
    args = ["--csv", str(csv), "--map", str(folder / "map.csv"), "--chunksize", "3"]
    job.main([*args, "--out", str(tmp_path / "ref")])
    out = tmp_path / "killed"
    proc = run_job("precompute.filter_webvid", [*args, "--out", str(out)], env={"COVR_PRECOMPUTE_KILL_AT": stage})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not FilterRun.exists(out)
    job.main([*args, "--out", str(out)])
    names = sorted(p.name for p in (tmp_path / "ref").iterdir())
    assert sorted(p.name for p in out.iterdir()) == names  # no temp files left behind
    for name in names:
        if name.endswith(".csv") or name == MARKDOWN_FILE:
            assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()


def _meta(tmp_path, rows):
    cmap = pd.DataFrame(rows, columns=["id", "author", "categories"])
    cmap.to_csv(tmp_path / "m.csv", index=False)
    return job.load_video_meta(tmp_path / "m.csv", cmap["id"].astype(str).to_numpy(object))


def test_account_id_with_a_space_is_kept_whole(tmp_path):
    """Two different authors whose ids share the part before a space must not merge."""
    meta = _meta(tmp_path, [("1", '{"accountsId": "Studio One"}', "[]"), ("2", '{"accountsId": "Studio Two"}', "[]"),
                            ("3", '{"accountsId": "Studio One", "x": 1}', "[]"),
                            ("4", '{"accountsId": "A\\u0026B"}', "[]"), ("5", '{"accountsId": "A&B"}', "[]")])
    m = job.rule_masks(meta, pd.Series(["a/1", "a/1", "a/4"]), pd.Series(["b/2", "b/3", "b/5"]))
    assert m["same-author"].tolist() == [False, True, True]


def test_single_quoted_author_json_gives_a_warning(tmp_path, caplog):
    csv = tmp_path / "c.csv"
    pd.DataFrame({"pth1": ["a/1"], "pth2": ["b/2"], "edit": ["x"]}).to_csv(csv, index=False)
    pd.DataFrame([("1", "{'accountsId': 'A'}", '["x"]'), ("2", "{'accountsId': 'A'}", '["y"]')],
                 columns=["id", "author", "categories"]).to_csv(tmp_path / "m.csv", index=False)
    with caplog.at_level("WARNING"):
        record = job.run(csv=[str(csv)], map=str(tmp_path / "m.csv"), out=str(tmp_path / "out"))
    assert any("single-quoted" in w and "author" in w for w in record["warnings"]), record["warnings"]
    assert "single-quoted" in caplog.text
    assert FilterRun.load(tmp_path / "out").warnings == record["warnings"]


def test_escaped_and_plain_category_names_are_the_same_category(tmp_path):
    meta = _meta(tmp_path, [("1", "", '["Food \\u0026 Drink"]'), ("2", "", '["Food & Drink"]'), ("3", "", '["Other"]')])
    assert sorted(meta.categories) == ["Food & Drink", "Other"]
    m = job.rule_masks(meta, pd.Series(["a/1", "a/1"]), pd.Series(["b/2", "b/3"]))
    assert m["same-category"].tolist() == [True, False]
