"""WebVid-CoVR CSV reader: chunked streaming, safe `scores` parsing, video paths/ids, subsets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from covr_core.datasets import webvid as wv
from covr_core.datasets.webvid import (
    iter_webvid_covr,
    parse_scores,
    read_webvid_covr,
    select_subset,
    webvid_video_id,
    webvid_video_int_id,
    webvid_video_path,
)

HEADER = "pth1,pth2,txt1,txt2,edit,scores,sim_txt,sim_vid\n"


def write_csv(path: Path, n: int) -> Path:
    rows = [
        f'{1000 + i % 7}/{5000 + i},{1000 + i % 5}/{9000 + i},"cat, sitting",dog {i},make it a dog,'
        f'"[{i / 10:.1f}, 0.2, 0.3]",0.{i % 9},0.5\n'
        for i in range(n)
    ]
    path.write_text(HEADER + "".join(rows))
    return path


def test_read_parses_scores_and_keeps_ids_as_strings(tmp_path: Path) -> None:
    df = read_webvid_covr(write_csv(tmp_path / "a.csv", 25), chunksize=7)
    assert len(df) == 25 and list(df.index) == list(range(25))
    assert df["pth1"][0] == "1000/5000" and df["txt1"][0] == "cat, sitting"
    assert df["scores"][3] == [0.3, 0.2, 0.3] and isinstance(df["scores"][0][0], float)
    chunks = list(iter_webvid_covr(tmp_path / "a.csv", columns=["pth2", "scores"], chunksize=10))
    assert [len(c) for c in chunks] == [10, 10, 5] and list(chunks[0].columns) == ["pth2", "scores"]
    only = read_webvid_covr(tmp_path / "a.csv", columns=["pth1", "edit"], nrows=4)
    assert list(only.columns) == ["pth1", "edit"] and len(only) == 4


def test_parse_scores_is_safe() -> None:
    assert parse_scores("[0.1, 0.2]") == [0.1, 0.2]
    assert parse_scores("(0.5, 1)") == [0.5, 1.0]  # Python literal via ast.literal_eval
    assert parse_scores("") == [] and parse_scores(float("nan")) == [] and parse_scores(None) == []
    for hostile in ("__import__('os').system('echo hi')", "[1, 2] + [3]", "{'a': 1}"):
        with pytest.raises(ValueError):
            parse_scores(hostile)


def test_bad_scores_rows_become_empty_not_crash(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = tmp_path / "b.csv"
    p.write_text(HEADER + 'a/1,b/2,x,y,e,"[0.1, oops]",0.1,0.2\na/3,b/4,x,y,e,"[0.4]",0.1,0.2\n')
    df = read_webvid_covr(p)
    assert df["scores"].tolist() == [[], [0.4]]
    assert "unparseable" in caplog.text


def test_streaming_is_linear_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_csv(tmp_path / "big.csv", 5000)
    calls = []
    real = wv._parse_scores_column
    monkeypatch.setattr(wv, "_parse_scores_column", lambda col, off: calls.append(len(col)) or real(col, off))
    df = read_webvid_covr(path, chunksize=1000)
    assert calls == [1000] * 5 and len(df) == 5000 and df["scores"][4999][0] == pytest.approx(499.9)


def test_video_paths_and_ids() -> None:
    root = "/data/WebVid/8M/train"
    assert webvid_video_path(root, "1012/4567") == Path("/data/WebVid/8M/train/1012/4567.mp4")
    assert webvid_video_int_id("1012/4567") == 101204567  # non-digits -> '0' (CoVR)
    assert webvid_video_int_id("videos/clip_a") == 0
    assert webvid_video_id("1012/4567") == "4567" and webvid_video_id("v/abc.mp4") == "abc"
    assert webvid_video_id("4567") == "4567"


def test_select_subset(tmp_path: Path) -> None:
    df = read_webvid_covr(write_csv(tmp_path / "c.csv", 30))
    assert select_subset(df, first=5)["pth2"].tolist() == df["pth2"][:5].tolist()
    r1, r2 = select_subset(df, random=8, seed=3), select_subset(df, random=8, seed=3)
    pd.testing.assert_frame_equal(r1, r2)
    assert len(r1) == 8 and r1["pth2"].str.split("/").str[1].astype(int).is_monotonic_increasing  # order kept
    assert not select_subset(df, random=8, seed=4)["pth2"].equals(r1["pth2"])
    assert len(select_subset(df, random=100)) == 30
    ids = tmp_path / "ids.txt"
    ids.write_text("# hosted videos\n" + "\n".join([*df["pth1"][:4], *df["pth2"][:3], "9/9"]) + "\n\n")
    sub = select_subset(df, ids_file=ids)
    assert sub["pth2"].tolist() == df["pth2"][:3].tolist()  # both videos of a row must be listed
    assert len(select_subset(df, ids_file=ids, id_columns=["pth2"], first=2)) == 2
    with pytest.raises(ValueError, match="either"):
        select_subset(df, first=1, random=1)
