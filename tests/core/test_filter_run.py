"""The WebVid filter-run folder's owner (covr_core.filter_run.FilterRun): round trip, find, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from covr_core import filter_run as fr
from covr_core.filter_run import FilterRun, FilterRunError

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "benchmark" / "webvid"
STEM = "mini"


def _stats(**overrides: dict) -> dict:
    per = {row: {"target_videos": 3 + i, "triplets": 1000 + i, "query_videos": 2 + i}
           for i, row in enumerate(fr.TABLE4_ROWS)}  # fmt: skip
    return {STEM: {**per, **overrides}}


def _write_run(folder: Path, **details) -> FilterRun:
    """A finished run as the job leaves it: the rule CSVs first, then ``save``."""
    folder.mkdir(parents=True, exist_ok=True)
    for rule in fr.RULES:
        fr.rule_csv_path(folder, STEM, rule).write_text("pth1,pth2\nv/a,v/b\n")
    run = FilterRun.build(_stats(), inputs=[f"/in/{STEM}.csv"], map="map.csv", warnings=["2 rows single-quoted"],
                          **details)  # fmt: skip
    run.save(folder)
    return run


def test_round_trip(tmp_path):
    written = _write_run(tmp_path / "run", seconds=1.5)
    assert FilterRun.exists(tmp_path / "run") and written.folder == tmp_path / "run"
    loaded = FilterRun.load(tmp_path / "run")
    assert loaded.record == written.record and list(loaded.record) == ["stats", "inputs", "map", "warnings", "seconds"]
    assert loaded.stats[STEM]["same-author"] == {"target_videos": 4, "triplets": 1001, "query_videos": 3}
    assert loaded.warnings == ["2 rows single-quoted"] and loaded.inputs == [Path(f"/in/{STEM}.csv")]
    assert loaded.rule_csv(STEM, "same-category") == tmp_path / "run" / f"{STEM}_same-category.csv"
    assert (tmp_path / "run" / fr.MARKDOWN_FILE).read_text() == loaded.markdown
    assert "| WebVid-CoVR (mini) | 3 | 1,000 | 2 |" in loaded.markdown
    assert '| same author or category ("F") | 6 | 1,003 | 5 |' in loaded.markdown


def test_the_job_writes_what_the_owner_reads(tmp_path):
    from precompute import filter_webvid

    csv = ASSETS / "webvid-covr_demo.csv"
    record = filter_webvid.run(csv=[str(csv)], map=str(ASSETS / "cleanvid_map_demo.csv"), out=str(tmp_path))
    run = FilterRun.load(tmp_path)
    assert run.record == json.loads(json.dumps(record)) and run.stats[csv.stem]["all"]["triplets"] == 16
    assert (tmp_path / fr.MARKDOWN_FILE).read_text() == run.markdown
    assert all(run.rule_csv(csv.stem, rule).is_file() for rule in fr.RULES)


def test_clear_unmarks_a_run(tmp_path):
    _write_run(tmp_path)
    FilterRun.clear(tmp_path)
    assert not FilterRun.exists(tmp_path)
    with pytest.raises(FilterRunError, match="not a finished filter run"):
        FilterRun.load(tmp_path)


def test_find_lists_runs_under_a_root_and_the_root_itself(tmp_path):
    root = tmp_path / "webvid_filter"
    assert FilterRun.find(root) == {}
    for name in ("train", "demo", ".writing"):
        _write_run(root / name)
    (root / "empty").mkdir()
    assert list(FilterRun.find(root)) == ["demo", "train"]
    _write_run(root)
    assert FilterRun.find(root) == {"webvid_filter": root, "demo": root / "demo", "train": root / "train"}


@pytest.mark.parametrize("text, message", [
    ("{not json", "is corrupt"),
    ("[1, 2]", "expected a JSON object, got list"),
    ('{"stats": [1]}', "'stats' must be an object"),
    ('{"stats": {"mini": 3}}', "must be an object of rules"),
    (json.dumps({"stats": _stats(**{"same-look": {}})}), r"unknown rule\(s\) \['same-look'\]"),
    (json.dumps({"stats": {STEM: {"all": {"target_videos": 1, "triplets": 1, "query_videos": 1}}}}),
     "lacks \\['same-author'"),
    (json.dumps({"stats": _stats(all={"target_videos": -1, "triplets": 1, "query_videos": 1})}), "got -1"),
    (json.dumps({"stats": _stats(all={"target_videos": True, "triplets": 1, "query_videos": 1})}), "got True"),
    (json.dumps({"stats": _stats(all={"target_videos": 1.5, "triplets": 1, "query_videos": 1})}), "got 1.5"),
    (json.dumps({"stats": _stats(all={"target_videos": "9", "triplets": 1, "query_videos": 1})}), "got '9'"),
    (json.dumps({"stats": _stats(all={"target_videos": 1, "triplets": 1})}), r"\['query_videos'\] must be a whole"),
    (json.dumps({"stats": {"../../etc/x": _stats()[STEM]}}), "not an input CSV's name"),
    (json.dumps({"stats": {"/etc/x": _stats()[STEM]}}), "not an input CSV's name"),
    (json.dumps({"stats": _stats(), "warnings": [1]}), "'warnings' must be a list of text"),
    (json.dumps({"stats": _stats(), "inputs": "a.csv"}), "'inputs' must be a list of text"),
])  # fmt: skip
def test_a_damaged_or_hostile_stats_file_is_refused(tmp_path, text, message):
    _write_run(tmp_path)
    (tmp_path / fr.STATS_FILE).write_text(text)
    with pytest.raises(FilterRunError, match=message) as info:
        FilterRun.load(tmp_path)
    assert fr.STATS_FILE in str(info.value) and isinstance(info.value, ValueError)


def test_a_missing_rule_csv_is_refused(tmp_path):
    _write_run(tmp_path)
    fr.rule_csv_path(tmp_path, STEM, "same-category").unlink()
    with pytest.raises(FilterRunError, match=f"{STEM}_same-category.csv is missing but .*{fr.STATS_FILE} counts it"):
        FilterRun.load(tmp_path)


def test_build_refuses_what_load_would(tmp_path):
    with pytest.raises(FilterRunError, match="got -2"):
        FilterRun.build(_stats(all={"target_videos": 1, "triplets": -2, "query_videos": 1}))
    with pytest.raises(FilterRunError, match="unknown filter rule 'same-look'"):
        fr.rule_csv_path(tmp_path, STEM, "same-look")
    with pytest.raises(FilterRunError, match="save it first"):
        FilterRun.build(_stats()).rule_csv(STEM, "same-author")
