"""precompute.reproduce's pieces without embedding anything: report tables (Markdown, CSV and LaTeX agree),
encoder flags passed through to the jobs, argument checks; plus a small WebVid-CoVR + filter run (slow)."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from covr_core.evaluation_folder import Evaluation
from covr_core.filter_run import TABLE4_ROWS, FilterRun
from precompute import _study_report as R
from precompute import reproduce


def _report(results: dict, n: int = 10) -> dict:
    return {"info": {"num_queries": n, "identical_combiners": [["NA", "AVG"]],
                     "gallery_manifest": {"encoder": "lite"}}, "results": results}


def test_table_files_agree(tmp_path):
    evals = {"run-cirr-val": _report({"NA": {"R@1": 12.345, "R@5": 50.0, "R@10": 60, "R@50": 90, "Rs@1": 30,
                                             "Rs@2": 50, "Rs@3": 70, "Avg": 40.0},
                                      "MLP": {"R@1": 1234.5, "R@5": 1, "R@10": 2, "R@50": 3, "Rs@1": 4, "Rs@2": 5,
                                              "Rs@3": 6, "Avg": 2.5}}, n=4181)}
    rows = R.metric_rows(evals, R.TABLE1_METRICS, "lite_v1")
    paths = R.write_table(tmp_path, "table1", ["model", "evaluation", "queries", "method", *R.TABLE1_METRICS],
                          rows, "Table 1 & more")
    md, tex = paths[0].read_text(), paths[2].read_text()
    assert "| lite_v1 | run-cirr-val | 4,181 | NA | 12.35 | 50.00 | 60.00 | 90.00 | 30.00 | 50.00 | 70.00 | 40.00 |" in md
    assert r"lite\_v1 & run-cirr-val & 4,181 & NA & 12.35 & 50.00" in tex and r"Table 1 \& more" in tex
    assert tex.count(r"\\") == 3 and r"\begin{tabular}{llrlrrrrrrrr}" not in tex
    with open(paths[1], newline="") as fh:
        got = list(csv.DictReader(fh))
    assert got[0]["queries"] == "4181" and got[0]["Avg"] == "40.00" and got[1]["R@1"] == "1234.50"


def test_table4_rows_from_filter_stats():
    stats = {"train": {r: {"target_videos": 1000 + i, "triplets": 2000 + i, "query_videos": 3 + i}
                       for i, r in enumerate(TABLE4_ROWS)}}
    rows = R.table4_rows(stats)
    assert rows[0] == ["WebVid-CoVR (train)", "1,000", "2,000", "3"]
    assert rows[3][0] == 'same author or category ("F")'


def test_index_lists_notes_and_mlp_status():
    md = R.index_markdown("x", ["table1.md"], {"e": _report({})}, {"trained": False, "status": "not trained: ..."},
                          "not drawn", ["filter: 2 rows single-quoted"])
    assert "NA and AVG give identical queries" in md and "not trained: ..." in md and "single-quoted" in md


def test_encoder_flags_are_passed_through(tmp_path):
    a = reproduce.parse_args(["--cirr-root", "x", "--data-dir", str(tmp_path), "--name", "n", "--encoder", "blip",
                              "--weights", "webvid-covr", "--checkpoint", "c.ckpt", "--blip-source", "m/blip"])
    argv = reproduce.Reproduction(a, []).encoder_argv()
    assert argv[argv.index("--encoder") + 1] == "blip" and argv[argv.index("--weights") + 1] == "webvid-covr"
    assert argv[argv.index("--checkpoint") + 1] == "c.ckpt" and argv[argv.index("--blip-source") + 1] == "m/blip"
    plain = reproduce.Reproduction(reproduce.parse_args(["--cirr-root", "x", "--data-dir", str(tmp_path),
                                                         "--name", "m", "--encoder", "lite"]), []).encoder_argv()
    assert "--weights" not in plain and "--checkpoint" not in plain


@pytest.mark.parametrize("args, message", [
    ([], "nothing to reproduce"),
    (["--webvid-csv", "t.csv"], "--video-root"),
    (["--filter-csv", "t.csv"], "--cleanvid-map"),
])
def test_bad_arguments_are_explained(tmp_path, args, message):
    with pytest.raises(ValueError, match=message):
        reproduce.run(reproduce.parse_args(["--data-dir", str(tmp_path), "--name", "n", *args]))


@pytest.mark.slow
def test_webvid_and_filter_stages(tmp_path):
    """WebVid-CoVR with repeated targets and the filter through reproduce (lite encoder, 6 generated videos)."""
    from helpers.synthetic_data import make_webvid

    wv = make_webvid(tmp_path / "wv", n_videos=6, n_rows=14, broken=False)
    ids = sorted({p.split("/")[-1] for r in wv.rows for p in (r["pth1"], r["pth2"])})
    pd.DataFrame({"id": ids, "author": [json.dumps({"accountsId": f"Studio {i % 2}"}) for i in range(len(ids))],
                  "categories": [json.dumps(["Food \u0026 Drink" if i % 3 else "Food & Drink"]) for i in range(len(ids))]}
                 ).to_csv(tmp_path / "map.csv", index=False)
    data = tmp_path / "data"
    reproduce.main(["--webvid-csv", str(wv.csv), "--video-root", str(wv.video_root), "--filter-csv", str(wv.csv),
                    "--cleanvid-map", str(tmp_path / "map.csv"), "--data-dir", str(data), "--name", "wv",
                    "--encoder", "lite", "--device", "cpu", "--no-thumbs"])
    report = data / "reports" / "wv"
    ev = Evaluation.read_report(data / "evaluations" / f"wv-webvid-{wv.csv.stem}")
    assert ev["info"]["num_queries"] == 14 and ev["info"]["num_gallery"] == len(wv.targets) < 14
    with open(report / "webvid.csv", newline="") as fh:
        rows = {r["method"]: r for r in csv.DictReader(fh)}
    for method, res in ev["results"].items():
        assert float(rows[method]["R@10"]) == pytest.approx(res["R@10"], abs=0.005)
    stats = FilterRun.load(data / "webvid_filter" / "wv").stats[wv.csv.stem]
    assert stats["same-category"]["triplets"] == 14  # "\u0026" and "&" are one category
    t4 = (report / "table4.md").read_text()
    assert f"| same category | {stats['same-category']['target_videos']:,} | 14 |" in t4
    assert (report / "table4.tex").is_file() and (report / "table4.csv").is_file()
