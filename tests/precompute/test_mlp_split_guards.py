"""MLP recipe and guards: group-wise splits (CIRR image sets, WebVid target videos), the train/val and
train/eval overlap warnings, and a run that never beats the untrained MLP is not offered as trained.
Plus the WebVid evaluation with repeated targets (one gallery entry per target video) and atomic output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from covr_core.combiners import combine, load_mlp_combiner
from covr_core.evaluation_folder import Evaluation
from covr_core.query_folder import QuerySet
from helpers.planted_benchmark import PLANTED_ENCODER, make_planted_split, write_gallery_folder, write_queries_folder
from precompute import evaluate, train_combiner
from precompute._query_split import group_keys, read_query_ids, split_by_group


@pytest.fixture(scope="module")
def shared_sets(tmp_path_factory):
    """240 planted queries; every 3 consecutive queries share one CIRR image set (members)."""
    root = tmp_path_factory.mktemp("sets")
    s = make_planted_split(240, dim=32, seed=11, prefix="s", extra_distractors=40)
    table = s.table.copy()
    members = table["members"].tolist()
    table["members"] = [members[i - i % 3] for i in range(len(table))]
    q = write_queries_folder(root / "q", s.emb, table, PLANTED_ENCODER, "sets")
    g = write_gallery_folder(root / "g", s.gallery_ids, s.gallery_emb, PLANTED_ENCODER, "sets")
    return root, q, g, table


def test_image_set_split_keeps_sets_whole(shared_sets):
    _, _, _, table = shared_sets
    split = split_by_group(table, "image-set", {"train": 0.6, "val": 0.2, "heldout": 0.2}, seed=3)
    keys = group_keys(table, "image-set")
    seen = {}
    for part, rows in split.parts.items():
        for k in keys.iloc[rows]:
            assert seen.setdefault(k, part) == part  # a set never lands in two parts
    assert sum(len(r) for r in split.parts.values()) == len(table)
    assert split.groups == {"train": 48, "val": 16, "heldout": 16}
    again = split_by_group(table, "image-set", {"train": 0.6, "val": 0.2, "heldout": 0.2}, seed=3)
    assert all(np.array_equal(split.parts[p], again.parts[p]) for p in split.parts)


def test_video_split_keeps_target_videos_whole():
    table = pd.DataFrame({"reference": [f"a/{i}" for i in range(12)], "target": [f"b/{i % 4}" for i in range(12)],
                          "caption": "x", "query_id": range(12)})
    split = split_by_group(table, "video", {"train": 0.5, "val": 0.5}, seed=0)
    train_t = set(table["target"].iloc[split.parts["train"]])
    val_t = set(table["target"].iloc[split.parts["val"]])
    assert train_t and val_t and not train_t & val_t


@pytest.mark.slow
def test_split_training_holds_out_and_evaluation_flags_leakage(shared_sets, caplog):
    root, q, g, table = shared_sets
    out = root / "mlp" / "m.safetensors"
    record = train_combiner.main(["--train-queries", str(q), "--gallery", str(g), "--split-by", "image-set",
                                  "--val-fraction", "0.2", "--holdout-fraction", "0.3", "--out", str(out),
                                  "--epochs", "8", "--patience", "3"])
    assert record["trained"] is True and record["leakage"] is False and record["overlap"]["val_in_train"] == 0
    assert record["split"]["by"] == "image-set" and record["split"]["heldout_ids"] == "m.heldout.txt"
    heldout = read_query_ids(out.with_name("m.heldout.txt"))
    assert len(heldout) == record["split"]["queries"]["heldout"] > 0
    assert record["data"]["num_train"] + record["data"]["num_val"] + len(heldout) == len(table)
    held = evaluate.main(["--queries", str(q), "--gallery", str(g), "--benchmark", "cirr", "--out", str(root / "eh"),
                          "--mlp", str(out), "--query-ids", str(out.with_name("m.heldout.txt"))])
    assert held["info"]["num_queries"] == len(heldout) and held["info"]["mlp_overlap"] is None
    assert "LEAKAGE" not in (root / "eh" / "metrics.md").read_text()
    caplog.clear()
    full = evaluate.main(["--queries", str(q), "--gallery", str(g), "--benchmark", "cirr", "--out", str(root / "ea"),
                          "--mlp", str(out)])
    leak = full["info"]["mlp_overlap"]
    assert leak["train"] == record["data"]["num_train"] and leak["val"] == record["data"]["num_val"]
    assert "LEAKAGE" in caplog.text and "LEAKAGE" in (root / "ea" / "metrics.md").read_text()


def test_training_on_the_validation_queries_warns_and_is_recorded(shared_sets, tmp_path, caplog):
    _, q, g, table = shared_sets
    record = train_combiner.run(q, g, q, tmp_path / "m.safetensors", epochs=1)
    assert record["leakage"] is True and record["overlap"]["val_in_train"] == len(table)
    assert "LEAKAGE" in caplog.text
    assert json.loads((tmp_path / "m.json").read_text())["leakage"] is True


def test_run_that_never_beats_the_untrained_mlp_is_not_offered(shared_sets, tmp_path, caplog):
    _, q, g, _ = shared_sets
    out = tmp_path / "m.safetensors"
    record = train_combiner.main(["--train-queries", str(q), "--gallery", str(g), "--split-by", "image-set",
                                  "--out", str(out), "--epochs", "2", "--lr", "0"])  # lr 0: nothing can improve
    assert record["best_epoch"] == 0 and record["trained"] is False
    assert "never beat the untrained MLP" in record["status"] and "never beat" in caplog.text
    assert json.loads(out.with_suffix(".json").read_text())["trained"] is False
    with pytest.raises(ValueError, match="untrained MLP combiner.*never beat"):
        load_mlp_combiner(out)
    with pytest.raises(ValueError, match="untrained"):
        evaluate.run(q, g, "cirr", tmp_path / "eval", mlp=out)
    assert not (tmp_path / "eval").exists()


def test_split_options_are_checked(shared_sets, tmp_path):
    _, q, g, _ = shared_sets
    with pytest.raises(ValueError, match="--split-by"):
        train_combiner.run(q, g, None, tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="not both"):
        train_combiner.run(q, g, q, tmp_path / "m.safetensors", split_by="image-set")


def _repeated_targets(tmp_path):
    """30 WebVid rows over 9 target videos (targets repeat); row 2's reference video is also a target."""
    rng = np.random.default_rng(5)
    n, dim = 30, 32
    unit = lambda x: (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)  # noqa: E731
    videos = [f"200/{2000 + v}" for v in range(9)]
    t_emb = unit(rng.standard_normal((9, dim)))
    tv = rng.integers(0, 9, n)
    refs = [f"100/{1000 + i}" for i in range(n)]
    refs[2] = videos[(tv[2] + 1) % 9]
    f = [unit(t_emb[tv] + 0.9 * rng.standard_normal((n, dim))) for _ in range(3)]
    f[0][2] = unit(t_emb[(tv[2] + 1) % 9] + 0.05 * rng.standard_normal(dim))  # closest to its reference video
    from covr_core.types import QueryEmbeddings

    table = pd.DataFrame({"query_id": np.arange(n), "reference": refs, "target": [videos[v] for v in tv],
                          "caption": [f"edit {i}" for i in range(n)]})
    qdir = write_queries_folder(tmp_path / "q", QueryEmbeddings(*f), table, PLANTED_ENCODER, "wq")
    gdir = write_gallery_folder(tmp_path / "g", videos[::-1], t_emb[::-1], PLANTED_ENCODER, "wg")
    return qdir, gdir, table, videos, t_emb


def test_webvid_repeated_targets_one_gallery_entry_per_video(tmp_path):
    qdir, gdir, table, videos, t_emb = _repeated_targets(tmp_path)
    report = evaluate.run(qdir, gdir, "webvid", tmp_path / "out", combiners=["NA", "AVG"], top_k=5)
    assert report["info"]["num_gallery"] == table["target"].nunique() and report["info"]["num_queries"] == 30
    qs = QuerySet.load(qdir)
    for name in ("NA", "AVG"):
        scores = combine(name, qs.emb).query @ t_emb.T  # independent: gallery = the 9 videos
        ranks = []
        for i, row in table.iterrows():
            s = scores[i].copy()
            for j, v in enumerate(videos):
                if v == row["reference"] and v != row["target"]:
                    s[j] = -np.inf
            t = videos.index(row["target"])
            ranks.append(1 + int((s > s[t]).sum()))
        ranks = np.array(ranks)
        for k in (1, 5, 10, 50):
            assert report["results"][name][f"R@{k}"] == pytest.approx(100 * np.mean(ranks <= k)), (name, k)
        pq = Evaluation.load(tmp_path / "out").per_query
        assert pq[pq["combiner"] == name]["rank"].tolist() == ranks.tolist()
    na = Evaluation.load(tmp_path / "out").per_query.query("combiner == 'NA'").set_index("query_id")
    assert table["reference"][2] not in list(na.loc[2, "top_ids"])  # its reference video is excluded
    assert "one gallery entry per distinct target video" in report["info"]["gallery_protocol"]


def test_failed_evaluation_leaves_no_folder(tmp_path):
    qdir, _, _, videos, t_emb = _repeated_targets(tmp_path)
    short = write_gallery_folder(tmp_path / "short", videos[:-1], t_emb[:-1], PLANTED_ENCODER, "short")
    (tmp_path / "evaluations").mkdir()
    with pytest.raises(ValueError, match="not in the gallery"):
        evaluate.run(qdir, short, "webvid", tmp_path / "evaluations" / "broken")
    assert not (tmp_path / "evaluations" / "broken").exists()
    assert not any((tmp_path / "evaluations").iterdir())  # no temp folder left either
