"""WebVid filter view: Table-4 statistics and example pairs from a real filter_webvid run."""

from __future__ import annotations

import json

import pandas as pd
from PIL import Image

from explorer.filter_view import filter_examples, load_filter_report, pair_image, stats_table


def test_stats_table_layout():
    s = {
        "demo": {
            k: {"target_videos": 3, "triplets": 5, "query_videos": 4}
            for k in ("all", "same-author", "same-category", "same-author-or-category")
        }
    }
    t = stats_table(s)
    assert list(t.columns) == ["dataset", "target videos", "triplets", "query videos"]
    assert list(t["dataset"]) == [
        "WebVid-CoVR (demo)",
        "same author",
        "same category",
        'same author or category ("F")',
    ]


def test_report_and_example_pairs(tmp_path):
    from helpers.media_files import write_test_clip

    from precompute.filter_webvid import run

    data = tmp_path / "data"
    vids = data / "webvid" / "v"
    vids.mkdir(parents=True)
    for name in ("a", "b", "c", "d"):
        write_test_clip(vids / f"{name}.mp4", n_frames=10)
    csv = tmp_path / "mini.csv"
    pd.DataFrame(
        {
            "txt1": ["t1", "t2", "t3"],
            "txt2": ["u1", "u2", "u3"],
            "sim_txt": ["0.9"] * 3,
            "pth1": ["v/a", "v/a", "v/c"],
            "pth2": ["v/b", "v/c", "v/d"],
            "edit": ["e1", "e2", "e3"],
            "scores": ["[0.9]"] * 3,
        }
    ).to_csv(csv, index=False)
    mp = tmp_path / "map.csv"
    pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "author": [json.dumps({"accountsId": x}) for x in ("1", "1", "2", "3")],
            "categories": [json.dumps(x) for x in (["cats"], ["dogs"], ["cats"], ["birds"])],
        }
    ).to_csv(mp, index=False)
    run(csv=[str(csv)], map=str(mp), out=str(data / "webvid_filter" / "mini"))
    rep = load_filter_report(data)
    assert rep is not None and rep.folder.name == "mini"
    t = rep.table.set_index("dataset")
    assert t.loc["same author", "triplets"] == 1 and t.loc["same category", "triplets"] == 1
    assert t.loc['same author or category ("F")', "triplets"] == 2
    assert list(rep.examples["same author"]["pth2"]) == ["v/b"]
    assert list(rep.examples["same category"]["pth2"]) == ["v/c"]
    gal = filter_examples(rep, tmp_path / "cache")
    assert [c.split(":")[0] for _, c in gal] == ["same author", "same category", "neither"]  # from its input CSV
    assert Image.open(gal[0][0]).size[1] == 160


def test_pair_image():
    im = pair_image(
        Image.new("RGB", (80, 40), "red"), Image.new("RGB", (40, 40), "blue"), "same author", height=40
    )
    assert im.size == (80 + 40 + 12, 66) and im.getpixel((5, 5)) == (255, 0, 0)
