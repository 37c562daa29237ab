"""CIRR metrics: hand-built score matrices with known answers, then the real 4,181 val triplets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from covr_core.datasets.cirr import CirrTriplet, load_cirr_split, load_cirr_triplets
from covr_core.cirr_submission import validate_cirr_submission, write_cirr_submission
from covr_core.metrics import cirr_recall_at_k, cirr_subset_recall, evaluate_cirr, per_query_table
from covr_core.ranking import target_ranks, topk_stable

DATA = Path(__file__).parents[1] / "data" / "cirr"
G = ["a", "b", "c", "d", "e", "f", "g", "h"]


def trip(pairid, ref, target, members=("a", "b", "c", "d", "e", "f"), soft=None) -> CirrTriplet:
    soft = soft if soft is not None else {target: 1.0}
    return CirrTriplet(pairid, ref, target, soft, "cap", 1, tuple(members))


@pytest.fixture(scope="module")
def val() -> tuple[list[CirrTriplet], list[str]]:
    return load_cirr_triplets(DATA / "cap.rc2.val.json"), sorted(load_cirr_split(DATA / "split.rc2.val.json"))


# ---------------------------------------------------------------- hand-built cases
def test_reference_top_hit_is_excluded() -> None:
    s = np.array([[0.99, 0.9, 0.1, 0.2, 0.3, 0.0, 0.0, 0.0]])  # reference "a" scores highest
    r = cirr_recall_at_k(s, G, [trip(1, "a", "b")], ks=(1, 5))
    assert r["R@1"] == 100.0 and r["R@5"] == 100.0 and r["missing_targets"] == 0


def test_known_ranks_give_known_recalls() -> None:
    s = np.array([
        [0.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3],  # target b: rank 1
        [0.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3],  # target f: rank 5
        [0.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3],  # target h: rank 7
        [0.5, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3],  # target missing from the gallery: miss
    ])  # fmt: skip
    trips = [trip(1, "a", "b"), trip(2, "a", "f"), trip(3, "a", "h"), trip(4, "a", "zz")]
    r = cirr_recall_at_k(s, G, trips, ks=(1, 5, 10))
    assert r == {"R@1": 25.0, "R@5": 50.0, "R@10": 75.0, "n_queries": 4, "missing_targets": 1}


def test_ties_follow_stable_gallery_order() -> None:
    s = np.full((2, 8), 0.5)  # every item ties
    trips = [trip(1, "a", "b"), trip(2, "a", "d")]
    # reference a removed; ties ordered by gallery column: b is 1st, d is 3rd
    assert target_ranks(np.where(np.arange(8) == 0, -np.inf, s), np.array([1, 3])).tolist() == [1, 3]
    r = cirr_recall_at_k(s, G, trips, ks=(1, 2, 3))
    assert r["R@1"] == 50.0 and r["R@2"] == 50.0 and r["R@3"] == 100.0
    s2 = np.array([[0.0, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1]])  # target c ties with b (lower column) -> rank 2
    assert cirr_recall_at_k(s2, G, [trip(1, "a", "c")], ks=(1, 2))["R@1"] == 0.0
    assert cirr_recall_at_k(s2, G, [trip(1, "a", "b")], ks=(1,))["R@1"] == 100.0


def test_subset_recall_hard_and_graded() -> None:
    members = ("a", "b", "c", "d", "e", "f")
    s = np.array([[0.99, 0.1, 0.9, 0.8, 0.95, 0.2, 0.97, 0.0]])  # g is not a member; order e, c, d, f, b
    soft = {"d": 1.0, "c": 0.5, "e": -1.0, "a": 1.0}  # the reference's own label must never count
    t = trip(1, "a", "d", members, soft)
    hard = cirr_subset_recall(s, G, [t])
    assert hard == {"Rs@1": 0.0, "Rs@2": 0.0, "Rs@3": 100.0, "missing_targets": 0}
    graded = cirr_subset_recall(s, G, [t], graded=True)
    assert graded["Rs_soft@1"] == 0.0  # e has -1 -> max(0, -1)
    assert graded["Rs_soft@2"] == 50.0 and graded["Rs_soft@3"] == 100.0
    ties = np.zeros((1, 8))
    # all tie: b comes first by gallery column
    assert cirr_subset_recall(ties, G, [trip(1, "a", "b", members)], ks=(1,))["Rs@1"] == 100.0
    assert cirr_subset_recall(ties, G, [trip(1, "a", "c", members)], ks=(1,))["Rs@1"] == 0.0


def test_subset_member_missing_from_gallery() -> None:
    members = ("a", "b", "c", "zz", "e", "f")
    s = np.array([[0.0, 0.1, 0.2, 0.0, 0.3, 0.4, 0.0, 0.0]])
    r = cirr_subset_recall(s, G, [trip(1, "a", "zz", members)])
    assert r["Rs@3"] == 0.0 and r["missing_targets"] == 1
    assert cirr_subset_recall(s, G, [trip(1, "a", "c", members)])["Rs@3"] == 100.0  # f, e, c


def test_unlabelled_triplets_and_bad_shapes_are_refused() -> None:
    t1 = CirrTriplet(1, "a", None, {}, "cap", 1, ("a", "b"))
    with pytest.raises(ValueError, match="test1"):
        cirr_recall_at_k(np.zeros((1, 8)), G, [t1])
    with pytest.raises(ValueError, match="scores must be"):
        cirr_recall_at_k(np.zeros((2, 8)), G, [trip(1, "a", "b")])
    with pytest.raises(ValueError, match="NaN"):
        cirr_recall_at_k(np.full((1, 8), np.nan), G, [trip(1, "a", "b")])


def test_per_query_table_ranks_and_topk() -> None:
    s = np.array([[0.99, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]])
    df = per_query_table(s, G, [10, 11], ["c", "nope"], k=3, exclude_ids=[["a"], []])
    assert df["rank"].tolist()[0] == 2 and df["rank"].isna().tolist() == [False, True]
    assert df["top_ids"].tolist() == [["b", "c", "d"], ["h", "g", "f"]]
    np.testing.assert_allclose(df["top_scores"][0], [0.9, 0.8, 0.7], rtol=1e-6)
    assert df["target_score"][0] == pytest.approx(0.8)


# ---------------------------------------------------------------- the real 4,181 val triplets
def planted_scores(triplets, gallery, ranks, seed=0) -> np.ndarray:
    """Random scores where each target sits at the given rank (reference removed); reference scores top."""
    rng = np.random.default_rng(seed)
    col = {g: i for i, g in enumerate(gallery)}
    s = rng.random((len(triplets), len(gallery))).astype(np.float32)
    for i, (t, r) in enumerate(zip(triplets, ranks)):
        ref, tgt = col[t.reference], col[t.target_hard]
        s[i, ref] = 2.0
        others = np.delete(s[i], [ref, tgt])
        desc = np.sort(others)[::-1]
        s[i, tgt] = desc[0] + 0.5 if r == 1 else (desc[r - 2] + desc[r - 1]) / 2
    return s


def test_real_val_planted_ranks_give_known_recall(val) -> None:
    triplets, gallery = val
    ranks = np.random.default_rng(1).integers(1, 80, len(triplets))
    s = planted_scores(triplets, gallery, ranks)
    r = cirr_recall_at_k(s, gallery, triplets)
    assert r["n_queries"] == 4181 and r["missing_targets"] == 0
    for k in (1, 5, 10, 50):
        assert r[f"R@{k}"] == pytest.approx(100 * np.mean(ranks <= k))
    full = evaluate_cirr(s, gallery, triplets)
    assert set(full) >= {"R@1", "R@50", "Rs@1", "Rs@3", "Rs_soft@1", "Rs_soft@3", "Avg"}
    assert full["Avg"] == pytest.approx((full["R@5"] + full["Rs@1"]) / 2)


def test_real_val_subset_matches_naive_loop(val) -> None:
    triplets, gallery = val
    s = np.random.default_rng(2).random((len(triplets), len(gallery))).astype(np.float32)
    col = {g: i for i, g in enumerate(gallery)}
    hard = cirr_subset_recall(s, gallery, triplets)
    soft = cirr_subset_recall(s, gallery, triplets, graded=True)
    for k in (1, 2, 3):
        exp_hard, exp_soft = [], []
        for i, t in enumerate(triplets):
            others = [m for m in t.members if m != t.reference]
            cand = sorted(others, key=lambda m: (-s[i, col[m]], col[m]))[:k]
            exp_hard.append(t.target_hard in cand)
            exp_soft.append(max([0.0] + [t.target_soft.get(m, 0.0) for m in cand]))
        assert hard[f"Rs@{k}"] == pytest.approx(100 * np.mean(exp_hard))
        assert soft[f"Rs_soft@{k}"] == pytest.approx(100 * np.mean(exp_soft))


def test_real_val_submission_round_trip(val, tmp_path: Path) -> None:
    triplets, gallery = val
    ranks = np.ones(len(triplets), dtype=int)
    s = planted_scores(triplets, gallery, ranks, seed=3)  # references score highest, targets rank 1
    rec_path, sub_path = write_cirr_submission(s, gallery, triplets, tmp_path / "sub")
    assert (rec_path.name, sub_path.name) == ("recalls_cirr.json", "recalls_cirr_subset.json")
    names = set(gallery)
    import json

    rec, sub = json.loads(rec_path.read_text()), json.loads(sub_path.read_text())
    assert rec["version"] == sub["version"] == "rc2"
    assert rec["metric"] == "recall" and sub["metric"] == "recall_subset"
    assert len(rec) == len(sub) == 4181 + 2
    for t in triplets:
        top, top3 = rec[str(t.pairid)], sub[str(t.pairid)]
        assert len(top) == 50 and len(set(top)) == 50 and t.reference not in top and set(top) <= names
        assert top[0] == t.target_hard and top3[0] == t.target_hard
        assert len(top3) == 3 and t.reference not in top3 and set(top3) <= set(t.members)
    assert validate_cirr_submission(rec_path, triplets, names) == []
    assert validate_cirr_submission(sub_path, triplets, names) == []
    # test1-style triplets (no labels) still produce submissions
    test1 = [dataclasses.replace(t, target_hard=None, target_soft={}) for t in triplets[:100]]
    p1, _ = write_cirr_submission(s[:100], gallery, test1, tmp_path / "t1")
    assert validate_cirr_submission(p1, test1, names) == []
    rec[str(triplets[0].pairid)] = rec[str(triplets[0].pairid)][:49] + [triplets[0].reference]
    (tmp_path / "bad.json").write_text(json.dumps(rec))
    problems = validate_cirr_submission(tmp_path / "bad.json", triplets, names)
    assert any("reference" in p for p in problems)


def test_topk_stable_equals_full_stable_sort_with_ties() -> None:

    rng = np.random.default_rng(0)
    for trial in range(20):
        s = rng.integers(0, 4 if trial % 2 else 1000, (40, 300)).astype(np.float32)  # many ties / few ties
        k = int(rng.integers(1, 60))
        np.testing.assert_array_equal(topk_stable(s, k), np.argsort(-s, axis=1, kind="stable")[:, :k])
