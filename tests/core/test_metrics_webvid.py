"""WebVid-CoVR recalls: the true target of query i is column i; same-video columns are excluded."""

from __future__ import annotations

import numpy as np
import pytest

from covr_core.datasets.webvid import webvid_video_int_id
from covr_core.metrics import per_query_table, webvid_recalls


def test_known_ranks() -> None:
    s = np.array([
        [0.9, 0.1, 0.2, 0.3],  # true col 0: rank 1
        [0.9, 0.5, 0.2, 0.3],  # true col 1: rank 2
        [0.9, 0.8, 0.2, 0.3],  # true col 2: rank 4
        [0.0, 0.0, 0.0, 0.0],  # all tie: col 3 comes after cols 0..2 -> rank 4
    ])  # fmt: skip
    vids = ["q0", "q1", "q2", "q3"]
    r = webvid_recalls(s, vids, ["t0", "t1", "t2", "t3"], ks=(1, 2, 3, 4))
    assert r["R@1"] == 25.0 and r["R@2"] == 50.0 and r["R@3"] == 50.0 and r["R@4"] == 100.0


def test_same_video_exclusion_but_never_the_true_column() -> None:
    s = np.array([
        [0.2, 0.9, 0.8],  # cols 1, 2 are targets from the query's own reference video -> excluded
        [0.1, 0.3, 0.9],
        [0.1, 0.2, 0.5],
    ])  # fmt: skip
    r = webvid_recalls(s, ["v1", "v9", "v3"], ["v0", "v1", "v1"])
    # query 0: cols 1, 2 excluded -> rank 1; query 1: col 2 higher -> rank 2; query 2: rank 1
    assert r["R@1"] == pytest.approx(200 / 3)
    assert r["R@5"] == 100.0 and r["n_queries"] == 3
    assert r["meanR3"] == pytest.approx(np.mean([r["R@1"], r["R@5"], r["R@10"]]))
    assert r["meanR4"] == pytest.approx(np.mean([r["R@1"], r["R@5"], r["R@10"], r["R@50"]]))
    s2 = np.array([[0.1, 0.9], [0.9, 0.1]])  # true column shares the reference video: kept anyway
    assert webvid_recalls(s2, ["a", "b"], ["a", "b"], ks=(1,))["R@1"] == 0.0
    assert webvid_recalls(s2, ["a", "b"], ["x", "a"], ks=(1,))["R@1"] == 50.0  # col 1 excluded for q0


def test_integer_ids_and_planted_ranks_at_scale() -> None:
    n = 2500
    rng = np.random.default_rng(0)
    ranks = rng.integers(1, 70, n)
    s = rng.random((n, n)).astype(np.float32)
    ref_pth = [f"{1000 + i % 13}/{20000 + i}" for i in range(n)]
    tgt_pth = [f"{1000 + i % 11}/{40000 + i}" for i in range(n)]
    ref_pth[5] = tgt_pth[17] = "7/777"  # query 5 shares its video with target column 17
    s[5, 17] = 5.0  # would be the top hit without the exclusion
    for i in range(n):
        others = np.sort(np.delete(s[i], [i, 17] if i == 5 else [i]))[::-1]
        r = ranks[i]
        s[i, i] = others[0] + 0.5 if r == 1 else (others[r - 2] + others[r - 1]) / 2
    q_ids = [webvid_video_int_id(p) for p in ref_pth]
    t_ids = [webvid_video_int_id(p) for p in tgt_pth]
    r = webvid_recalls(s, q_ids, t_ids)
    for k in (1, 5, 10, 50):
        assert r[f"R@{k}"] == pytest.approx(100 * np.mean(ranks <= k))


def test_per_query_table_for_webvid() -> None:
    s = np.array([[0.1, 0.9, 0.5], [0.2, 0.3, 0.4], [0.6, 0.5, 0.7]])
    df = per_query_table(s, ["t0", "t1", "t2"], ["q0", "q1", "q2"], ["t0", "t1", "t2"], k=2)
    assert df["rank"].tolist() == [3, 2, 1]
    assert df["top_ids"].tolist() == [["t1", "t2"], ["t2", "t1"], ["t2", "t0"]]
    with pytest.raises(ValueError, match="square"):
        webvid_recalls(np.zeros((2, 3)), ["a", "b"], ["a", "b", "c"])
