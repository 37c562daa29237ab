"""Explore tab against a live server: the app follows the data folder (evaluations and filter runs written
after it started), per-evaluation combiners with MLP reachable, every row of a large evaluation reachable
page by page, and deep links that point at the server's real host and port."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from covr_core.evaluation_folder import Evaluation

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def write_evaluation(data: Path, name: str, n: int, combiners: list[str]) -> Path:
    """An evaluation folder in precompute.evaluate's layout (n queries per combiner), written after start."""
    out = data / "evaluations" / name
    rng = np.random.default_rng(0)
    frames = []
    for c in combiners:
        w = rng.dirichlet([3, 1, 2], size=n) if c == "MLP" else np.tile([1 / 3] * 3, (n, 1))
        frames.append(pd.DataFrame({
            "query_id": [str(i) for i in range(n)], "combiner": c, "reference": [f"r{i}" for i in range(n)],
            "target": [f"t{i}" for i in range(n)], "rank": rng.integers(1, 100, n), "top_ids": [["t0"]] * n,
            "top_scores": [np.array([0.5], np.float32)] * n, "w_mm": w[:, 0], "w_img": w[:, 1], "w_txt": w[:, 2]}))
    Evaluation.build(pd.concat(frames, ignore_index=True), {"combiners": combiners}).save(out)
    return out


def test_evaluation_written_after_start_is_listed_with_every_row(live_app, client):
    write_evaluation(live_app.data_dir, "zz-large", 1234, ["NA", "AVG", "MLP"])
    table, info, message, scope = client.predict("zz-large", "MLP", 10, "", "all", False, 1, api_name="/list_queries")
    assert len(table["data"]) == 500 and "Rows 1–500 of 1,234" in info and "page 1 of 3" in info
    assert message == "" and scope.startswith("Ranks:")  # rows shown, no empty-state message; what ranks count
    table3, info3, _, _ = client.predict("zz-large", "MLP", 10, "", "all", False, 3, api_name="/list_queries")
    assert len(table3["data"]) == 234 and "Rows 1,001–1,234 of 1,234" in info3
    ids = {r[0] for r in table["data"]} | {r[0] for r in table3["data"]}
    assert len(ids) == 734  # distinct rows, no overlap between pages
    empty, _, message, _ = client.predict("zz-large", "MLP", 10, "no such words", "all", False, 1,
                                          api_name="/list_queries")
    assert not empty["data"] and "No query matches" in message  # an empty filter says what to change


def test_mlp_reachable_when_another_evaluation_has_none(live_app, client):
    write_evaluation(live_app.data_dir, "zz-mlp", 30, ["NA", "MLP"])
    _hist, _tern, summary, _note = client.predict("zz-mlp", "MLP", 10, api_name="/weights")
    assert summary["data"], summary  # the MLP's weights are shown
    with pytest.raises(Exception, match="not evaluated here"):
        client.predict("mini-cirr-lite", "MLP", 10, "", "all", False, 1, api_name="/list_queries")


def test_deep_link_uses_the_servers_real_port(live_app, client):
    out = client.predict("mini-cirr-lite", "AVG", 10, api_name="/highest_w_mm")
    link = next(v for v in out if isinstance(v, str) and "?bench=" in v)
    assert link.startswith(f"http://127.0.0.1:{live_app.port}/?bench=mini-cirr-lite"), link
    assert ":7860" not in link or live_app.port == 7860


def test_filter_run_written_after_start_can_be_chosen(live_app, client, tmp_path):
    from precompute.filter_webvid import run

    demo_md, _, _ = client.predict("", api_name="/filter_view")  # no run yet: the bundled demo, labelled
    assert "bundled mini demo" in demo_md
    csv = tmp_path / "later.csv"
    pd.DataFrame({"pth1": ["v/a", "v/c"], "pth2": ["v/b", "v/d"], "edit": ["x", "y"]}).to_csv(csv, index=False)
    pd.DataFrame({"id": list("abcd"), "author": ['{"accountsId": "Same One"}'] * 2 + ['{"accountsId": "B"}', ""],
                  "categories": ['["x"]', '["y"]', '["z"]', '["w"]']}).to_csv(tmp_path / "map.csv", index=False)
    run(csv=[str(csv)], map=str(tmp_path / "map.csv"), out=str(live_app.data_dir / "webvid_filter" / "later"))
    md, table, _examples = client.predict("later", api_name="/filter_view")
    assert "filter run `later`" in md and "bundled mini demo" not in md
    rows = {r[0]: r for r in table["data"]}
    assert rows["same author"][2] == 1 and rows['same author or category ("F")'][2] == 1
    default_md, _, _ = client.predict("", api_name="/filter_view")  # a real run now comes before the demo
    assert "filter run `later`" in default_md
