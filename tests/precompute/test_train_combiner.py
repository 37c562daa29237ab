"""precompute.train_combiner on the planted benchmark: the trained MLP beats NA and AVG on held-out queries,
its weights follow the planted components, the record / curve / weights load in the app's MLP combiner,
and training is deterministic for a seed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from covr_core.combiners import combine, list_combiners, load_mlp_combiner
from covr_core.evaluation_folder import Evaluation
from covr_core.query_folder import QuerySet
from helpers.planted_benchmark import GROUP_NAMES, make_planted_split, write_planted_benchmark
from precompute import evaluate, train_combiner
from precompute.train_combiner import composed_queries, distinct_target_batches

SIZES = {"train": 900, "val": 240, "test": 450}


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("planted_train")
    return {"root": root, **write_planted_benchmark(root, SIZES, dim=32, seed=1, extra_distractors=100)}


def _train_args(bench, out, *extra: str) -> list[str]:
    (tq, tg), (vq, vg) = bench["train"], bench["val"]
    return ["--train-queries", str(tq), "--gallery", str(tg), "--val-queries", str(vq), "--val-gallery", str(vg),
            "--out", str(out), *extra]


@pytest.fixture(scope="module")
def trained(bench) -> tuple[dict, object]:
    out = bench["root"] / "mlp" / "combiner.safetensors"
    record = train_combiner.main(_train_args(bench, out, "--epochs", "20", "--patience", "2", "--seed", "5"))
    return record, out


@pytest.fixture(scope="module")
def held_out_report(bench, trained) -> dict:
    _, out = trained
    q, g = bench["test"]
    return evaluate.run(q, g, "cirr", bench["root"] / "eval-test", mlp=out)


@pytest.mark.slow
def test_mlp_beats_na_and_avg_on_held_out_queries(held_out_report) -> None:
    r = {name: res["R@1"] for name, res in held_out_report["results"].items()}
    assert set(r) == {"NA", "AVG", "MLP", "TEXT", "IMAGE"}
    assert r["MLP"] >= r["NA"] + 10 and r["MLP"] >= r["AVG"] + 10, r
    assert r["MLP"] >= 80, r  # per-query weighting solves the planted benchmark; fixed weights cannot
    assert held_out_report["results"]["MLP"]["Rs@1"] > held_out_report["results"]["AVG"]["Rs@1"]


@pytest.mark.slow
def test_predicted_weights_follow_planted_components(bench, trained, held_out_report) -> None:
    _, out = trained
    q, _ = bench["test"]
    qs = QuerySet.load(q)
    w = combine("MLP", qs.emb, mlp=load_mlp_combiner(out)).weights
    groups = qs.table["group"].to_numpy()
    for k, name in enumerate(GROUP_NAMES):
        mean_w = w[groups == k].mean(axis=0)
        assert int(np.argmax(mean_w)) == k, (name, mean_w)
        assert mean_w[k] > 0.5, (name, mean_w)
    # the per-query table written by the evaluation carries the same weights
    pq = Evaluation.load(bench["root"] / "eval-test").per_query
    mlp_rows = pq[pq["combiner"] == "MLP"]
    np.testing.assert_allclose(mlp_rows[["w_mm", "w_img", "w_txt"]].to_numpy(), w, atol=1e-6)


@pytest.mark.slow
def test_record_curve_and_loading(bench, trained) -> None:
    record, out = trained
    on_disk = json.loads(out.with_suffix(".json").read_text())
    assert on_disk["trained"] is True and on_disk["best_epoch"] == record["best_epoch"] >= 1
    assert on_disk["best_val_R@1"] == pytest.approx(max(h["val_R@1"] for h in on_disk["history"]))
    assert on_disk["best_val_R@1"] > on_disk["initial_val_R@1"]
    assert on_disk["data"]["train_queries"] == str(bench["train"][0]) and on_disk["data"]["num_train"] == 900
    hp = on_disk["hyper_parameters"]
    assert (hp["loss"], hp["alpha"], hp["beta"], hp["temperature"], hp["optimizer"]) == ("hn-nce", 1.0, 0.5, 0.07, "AdamW")
    assert on_disk["seed"] == 5 and "jointly" in on_disk["note"]
    for name in ("w_mm", "w_img", "w_txt"):
        stats = on_disk["weight_stats"][name]
        assert 0.0 <= stats["mean"] <= 1.0 and stats["std"] > 0.05  # per-query weights, not one fixed triple
    # early stopping: training ends `patience` epochs after the best one (or at the epoch limit)
    assert on_disk["epochs"] == min(20, on_disk["best_epoch"] + 2)
    assert [h["epoch"] for h in on_disk["history"]] == list(range(on_disk["epochs"] + 1))
    curve = out.parent / on_disk["curve"]
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    assert Image.open(curve).size[0] >= 400
    mlp = load_mlp_combiner(out)
    assert mlp.trained and "MLP" in list_combiners(mlp)
    assert mlp.record["best_epoch"] == record["best_epoch"]


@pytest.mark.slow
def test_training_query_equals_app_combiner(bench, trained) -> None:
    _, out = trained
    qs = QuerySet.load(bench["val"][0])
    mlp = load_mlp_combiner(out)
    with torch.no_grad():
        q, w = composed_queries(mlp, *(torch.from_numpy(a) for a in (qs.emb.f_mm, qs.emb.f_img, qs.emb.f_txt)))
    app = combine("MLP", qs.emb, mlp=mlp)
    np.testing.assert_allclose(q.numpy(), app.query, atol=1e-5)
    np.testing.assert_allclose(w.numpy(), app.weights, atol=1e-6)


@pytest.mark.slow
def test_best_val_recall_matches_evaluation(bench, trained) -> None:
    record, out = trained
    q, g = bench["val"]
    report = evaluate.run(q, g, "cirr", bench["root"] / "eval-val", mlp=out, combiners=["MLP"])
    assert report["results"]["MLP"]["R@1"] == pytest.approx(record["best_val_R@1"])


@pytest.mark.slow
def test_same_seed_same_weights(bench, tmp_path) -> None:
    outs = []
    for run, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        out = tmp_path / run / "m.safetensors"
        train_combiner.main(_train_args(bench, out, "--epochs", "2", "--patience", "5", "--seed", seed,
                                        "--loss", "info-nce"))
        outs.append(load_file(str(out)))
    assert outs[0].keys() == outs[1].keys()
    for k in outs[0]:
        assert torch.equal(outs[0][k], outs[1][k]), k
    assert not all(torch.equal(outs[0][k], outs[2][k]) for k in outs[0])
    rec = json.loads((tmp_path / "a" / "m.json").read_text())
    assert rec["hyper_parameters"]["loss"] == "info-nce" and rec["hyper_parameters"]["beta"] == 0.0


def test_batches_hold_distinct_targets() -> None:
    targets = np.array([0, 0, 0, 1, 2, 2, 3, 4, 4, 4, 5, 6])
    g = torch.Generator().manual_seed(0)
    batches = distinct_target_batches(targets, 4, g)
    assert [len(b) for b in batches] == [4, 3]
    flat = np.concatenate(batches)
    assert sorted(targets[flat].tolist()) == list(range(7))  # one query per target per epoch
    for b in batches:
        assert len(set(targets[b].tolist())) == len(b)  # no target twice in a batch
    again = distinct_target_batches(targets, 4, torch.Generator().manual_seed(0))
    assert all(np.array_equal(x, y) for x, y in zip(batches, again))
    # a last batch of one (no negatives) is dropped for that epoch
    assert [len(b) for b in distinct_target_batches(targets, 3, torch.Generator().manual_seed(0))] == [3, 3]
    picks = {tuple(sorted(np.concatenate(distinct_target_batches(targets, 4, g)).tolist())) for _ in range(30)}
    assert len(picks) > 1  # the query drawn for a repeated target changes between epochs


def test_target_outside_gallery_is_left_out(tmp_path, caplog) -> None:
    s = make_planted_split(30, seed=2, prefix="o", extra_distractors=5)
    from helpers.planted_benchmark import PLANTED_ENCODER, write_gallery_folder, write_queries_folder

    q = write_queries_folder(tmp_path / "q", s.emb, s.table, PLANTED_ENCODER, "o")
    keep = [i for i, gid in enumerate(s.gallery_ids) if gid != s.table["target"][0]]
    g = write_gallery_folder(tmp_path / "g", [s.gallery_ids[i] for i in keep], s.gallery_emb[keep], PLANTED_ENCODER, "o")
    record = train_combiner.run(q, g, q, tmp_path / "m.safetensors", epochs=1, batch_size=8)
    assert record["data"]["num_train"] == 29 and record["data"]["num_val"] == 29
    assert "left out" in caplog.text


def test_too_few_targets_is_refused(tmp_path) -> None:
    s = make_planted_split(6, seed=3, prefix="f", extra_distractors=2)
    from helpers.planted_benchmark import PLANTED_ENCODER, write_gallery_folder, write_queries_folder

    q = write_queries_folder(tmp_path / "q", s.emb, s.table, PLANTED_ENCODER, "f")
    g = write_gallery_folder(tmp_path / "g", s.gallery_ids, s.gallery_emb, PLANTED_ENCODER, "f")
    with pytest.raises(ValueError, match="at least 2 distinct targets"):
        train_combiner.run(q, g, q, tmp_path / "m.safetensors", batch_size=1)
