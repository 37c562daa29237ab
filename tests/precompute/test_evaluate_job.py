"""precompute.evaluate: numbers equal covr_core.metrics on the same scores; report files; per-query table;
CIRR test1 submission files; WebVid-CoVR protocol (same-video exclusion, gallery order)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from covr_core import metrics
from covr_core.cirr_submission import validate_cirr_submission
from covr_core.combiners import MLPCombiner, combine, load_mlp_combiner, save_mlp_combiner
from covr_core.datasets.cirr import CirrTriplet
from covr_core.evaluation_folder import Evaluation
from covr_core.query_folder import QuerySet
from covr_core.gallery import Gallery
from covr_core.types import QueryEmbeddings
from helpers.planted_benchmark import (
    PLANTED_ENCODER,
    make_planted_split,
    write_gallery_folder,
    write_queries_folder,
)
from precompute import evaluate
from precompute.evaluate import cirr_triplets_from_table

ROOT = Path(__file__).resolve().parents[2]
ALL = ["NA", "AVG", "MLP", "TEXT", "IMAGE"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict:
    """A CIRR-style planted split (120 queries) + gallery on disk and an untrained-but-marked MLP file."""
    root = tmp_path_factory.mktemp("planted_eval")
    s = make_planted_split(120, dim=32, seed=7, prefix="e", extra_distractors=40)
    qdir = write_queries_folder(root / "queries", s.emb, s.table, PLANTED_ENCODER, "planted-eval")
    gdir = write_gallery_folder(root / "gallery", s.gallery_ids, s.gallery_emb, PLANTED_ENCODER, "planted-eval")
    torch.manual_seed(0)
    mlp = MLPCombiner(dim=32, hidden=16)
    mlp.trained = True  # random weights: only the plumbing is under test here
    save_mlp_combiner(mlp, root / "mlp.safetensors", {"trained": True, "note": "test"})
    return {"root": root, "split": s, "queries": qdir, "gallery": gdir, "mlp": root / "mlp.safetensors"}


@pytest.fixture(scope="module")
def val_report(planted) -> tuple[dict, Path]:
    out = planted["root"] / "report"
    report = evaluate.main(["--queries", str(planted["queries"]), "--gallery", str(planted["gallery"]),
                            "--benchmark", "cirr", "--out", str(out), "--mlp", str(planted["mlp"]),
                            "--pretraining", "planted"])
    return report, out


def _independent_scores(planted, name: str) -> tuple[np.ndarray, list[str]]:
    """Scores computed without precompute.evaluate: combine() then a plain product with the gallery rows."""
    gal = Gallery.load(planted["gallery"])
    mlp = load_mlp_combiner(planted["mlp"])
    q = combine(name, planted["split"].emb, mlp=mlp).query
    return q @ np.asarray(gal.embeddings, dtype=np.float32).T, gal.items["id"].astype(str).tolist()


def test_every_combiner_equals_metrics_module(planted, val_report) -> None:
    report, _ = val_report
    assert list(report["results"]) == ALL
    triplets = cirr_triplets_from_table(planted["split"].table)
    for name in ALL:
        scores, ids = _independent_scores(planted, name)
        expected = metrics.evaluate_cirr(scores, ids, triplets)
        got = report["results"][name]
        for key in ("R@1", "R@5", "R@10", "R@50", "Rs@1", "Rs@2", "Rs@3", "Rs_soft@1", "Rs_soft@2", "Rs_soft@3"):
            assert got[key] == pytest.approx(expected[key], abs=1e-9), (name, key)
    # the graded and the hard subset recalls really differ on this benchmark (both are reported)
    assert any(report["results"][n]["Rs_soft@1"] != report["results"][n]["Rs@1"] for n in ALL)


def test_triplets_rebuilt_from_queries_file(planted) -> None:
    qs = QuerySet.load(planted["queries"])
    t = cirr_triplets_from_table(qs.table)
    row = planted["split"].table.iloc[1]
    assert isinstance(t[1], CirrTriplet)
    assert t[1].reference == row["reference"] and t[1].target_hard == row["target"]
    assert list(t[1].members) == json.loads(row["members"]) and t[1].target_soft == json.loads(row["target_soft"])


def test_report_files(planted, val_report) -> None:
    report, out = val_report
    md = (out / "metrics.md").read_text()
    assert "planted-eval" in md and "planted-synthetic" in md  # gallery and checkpoint named in the header
    assert str(planted["mlp"]) in md
    assert "| pretraining | method | R@1 | R@5 | R@10 | R@50 | Rs@1 | Rs@2 | Rs@3 | Avg | Rs~@1 | Rs~@2 | Rs~@3 |" in md
    assert "graded" in md and "hard" in md
    for name in ALL:
        assert f"| planted | {name} | {report['results'][name]['R@1']:.2f} |" in md
    csv = pd.read_csv(out / "metrics.csv", keep_default_na=False)  # "NA" is a combiner, not a missing value
    assert csv["method"].tolist() == ALL
    for name, row in csv.set_index("method").iterrows():
        assert row["R@10"] == pytest.approx(report["results"][name]["R@10"], abs=1e-4)
        assert row["Rs_soft@2"] == pytest.approx(report["results"][name]["Rs_soft@2"], abs=1e-4)
    on_disk = Evaluation.read_report(out)
    assert on_disk["results"] == json.loads(json.dumps(report["results"]))
    assert on_disk["info"]["gallery_manifest"]["checkpoint"] == "planted-synthetic"
    assert on_disk["info"]["num_queries"] == 120 and on_disk["info"]["provenance"]["command"]


def test_per_query_table(planted, val_report) -> None:
    report, out = val_report
    pq = Evaluation.load(out).per_query
    n = len(planted["split"].table)
    assert len(pq) == n * len(ALL) and set(pq["combiner"]) == set(ALL)
    for col in ("query_id", "combiner", "reference", "target", "rank", "top_ids", "top_scores", "w_mm", "w_img", "w_txt"):
        assert col in pq.columns
    mlp = load_mlp_combiner(planted["mlp"])
    for name in ALL:
        part = pq[pq["combiner"] == name].reset_index(drop=True)
        ranks = part["rank"].to_numpy(dtype=np.int64)
        for k in (1, 5, 10, 50):  # the ranks reproduce the recalls
            assert 100.0 * np.mean(ranks <= k) == pytest.approx(report["results"][name][f"R@{k}"])
        weights = combine(name, planted["split"].emb, mlp=mlp).weights
        np.testing.assert_allclose(part[["w_mm", "w_img", "w_txt"]].to_numpy(), weights, atol=1e-6)
        scores, ids = _independent_scores(planted, name)
        ref = metrics.per_query_table(scores, ids, planted["split"].table["query_id"].tolist(),
                                      planted["split"].table["target"].tolist(), k=10,
                                      exclude_ids=[[r] for r in planted["split"].table["reference"]])
        assert part["rank"].tolist() == ref["rank"].tolist()
        assert [list(x) for x in part["top_ids"]] == [list(x) for x in ref["top_ids"]]
        assert all(len(x) == 10 for x in part["top_ids"])
        assert not any(r in list(top) for r, top in zip(part["reference"], part["top_ids"]))  # reference removed
        np.testing.assert_allclose(np.stack(part["top_scores"]), np.stack(ref["top_scores"]), atol=1e-6)


def test_mlp_only_with_weights(planted, tmp_path) -> None:
    report = evaluate.run(planted["queries"], planted["gallery"], "cirr", tmp_path)
    assert "MLP" not in report["results"] and set(report["results"]) == {"NA", "AVG", "TEXT", "IMAGE"}
    assert "not evaluated" in (tmp_path / "metrics.md").read_text()
    only = evaluate.run(planted["queries"], planted["gallery"], "cirr", tmp_path / "two", combiners=["NA", "AVG"])
    assert list(only["results"]) == ["NA", "AVG"]
    with pytest.raises(ValueError, match="not available"):
        evaluate.run(planted["queries"], planted["gallery"], "cirr", tmp_path / "x", combiners=["MLP"])


def test_cirr_test1_writes_submission_files(planted, tmp_path) -> None:
    s = planted["split"]
    table = s.table.assign(target="", target_soft="{}")  # test1: no labels
    qdir = write_queries_folder(tmp_path / "q", s.emb, table, PLANTED_ENCODER, "planted-test1")
    out = tmp_path / "out"
    report = evaluate.run(qdir, planted["gallery"], "cirr", out, mlp=planted["mlp"])
    triplets = cirr_triplets_from_table(table)
    assert triplets[0].target_hard is None
    for name in ALL:
        recall, subset = out / "submissions" / name / "recalls_cirr.json", out / "submissions" / name / "recalls_cirr_subset.json"
        assert report["results"][name]["submission"] == [p.relative_to(out).as_posix() for p in (recall, subset)]
        for path in (recall, subset):
            assert validate_cirr_submission(path, triplets, s.gallery_ids) == []
        # the submission ranks by the same scores as the per-query table
        sub = json.loads(recall.read_text())
        pq = Evaluation.load(out).per_query
        first = pq[(pq["combiner"] == name)].iloc[0]
        assert sub[str(first["query_id"])][:10] == list(first["top_ids"])
        assert pq["rank"].isna().all()
    assert not (out / "metrics.md").exists() and (out / "metrics.json").exists()


def _webvid_case(tmp_path: Path) -> tuple[Path, Path, np.ndarray, list[str], list[str]]:
    """12 WebVid rows; rows 0 and 1 share a reference video that is also row 5's target (same-video case)."""
    rng = np.random.default_rng(3)
    n, dim = 12, 32
    refs = [f"100/{1000 + i}" for i in range(n)]
    refs[1] = refs[0]
    targets = [f"200/{2000 + i}" for i in range(n)]
    targets[5] = "300/1000"  # another folder, same video number as refs[0]: CoVR's integer id differs
    targets[6] = refs[0]  # exactly the reference video of rows 0 and 1
    unit = lambda x: (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)  # noqa: E731
    t_emb = unit(rng.standard_normal((n, dim)))
    f = [unit(t_emb + 0.8 * rng.standard_normal((n, dim))) for _ in range(3)]
    f[0][0] = unit(t_emb[6] + 0.1 * rng.standard_normal(dim))  # row 0's query is closest to row 6's target
    emb = QueryEmbeddings(*f)
    table = pd.DataFrame({"query_id": np.arange(n), "reference": refs, "target": targets,
                          "caption": [f"edit {i}" for i in range(n)]})
    qdir = write_queries_folder(tmp_path / "wq", emb, table, PLANTED_ENCODER, "webvid-q")
    order = rng.permutation(n)  # the gallery is stored in another order than the queries
    gdir = write_gallery_folder(tmp_path / "wg", [targets[i] for i in order], t_emb[order], PLANTED_ENCODER, "webvid-g")
    return qdir, gdir, t_emb, refs, targets


def test_webvid_protocol(tmp_path) -> None:
    from covr_core.datasets.webvid import webvid_video_int_id

    qdir, gdir, t_emb, refs, targets = _webvid_case(tmp_path)
    report = evaluate.run(qdir, gdir, "webvid", tmp_path / "out", combiners=["NA", "AVG", "TEXT", "IMAGE"], top_k=11)
    qs = QuerySet.load(qdir)
    for name in ("NA", "AVG", "TEXT", "IMAGE"):
        scores = combine(name, qs.emb).query @ t_emb.T  # column i = target of row i
        expected = metrics.webvid_recalls(scores, [webvid_video_int_id(r) for r in refs],
                                          [webvid_video_int_id(t) for t in targets])
        for key in ("R@1", "R@5", "R@10", "R@50", "meanR3", "meanR4"):
            assert report["results"][name][key] == pytest.approx(expected[key]), (name, key)
    pq = Evaluation.load(tmp_path / "out").per_query
    na = pq[pq["combiner"] == "NA"].set_index("query_id")
    assert refs[0] not in list(na.loc[0, "top_ids"])  # same video as the reference: excluded
    assert "300/1000" in list(na.loc[0, "top_ids"])  # same trailing number, other CoVR video id: kept
    assert len(na.loc[0, "top_ids"]) == 11 and np.isfinite(na.loc[0, "top_scores"]).all()
    md = (tmp_path / "out" / "metrics.md").read_text()
    assert "| pretraining | method | R@1 | R@5 | R@10 | R@50 | meanR3 | meanR4 |" in md and "WebVid-CoVR" in md


def test_webvid_missing_target_is_an_error(tmp_path) -> None:
    qdir, _, t_emb, _, targets = _webvid_case(tmp_path)
    gdir = write_gallery_folder(tmp_path / "short", targets[:-1], t_emb[:-1], PLANTED_ENCODER, "short")
    with pytest.raises(ValueError, match="not in the gallery"):
        evaluate.run(qdir, gdir, "webvid", tmp_path / "out")


def test_cli_help_runs_as_module() -> None:
    res = subprocess.run([sys.executable, "-m", "precompute.evaluate", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and "--benchmark" in res.stdout and "--mlp" in res.stdout


MINI_CIRR = ROOT / "assets" / "benchmark" / "cirr"


def run_mini_pipeline(root: Path, split: str, work: Path) -> tuple[dict, dict]:
    """gallery job -> queries job (lite encoder) -> train_combiner -> evaluate, all through the real jobs."""
    from covr_core.lite import load_lite_encoder
    from precompute import gallery as gallery_job
    from precompute import queries as queries_job
    from precompute import train_combiner

    enc = load_lite_encoder(device="cpu")
    common = dict(dataset="cirr", root=str(root), split=split, encoder=enc, device="cpu", dtype="float32",
                  num_workers=0, batch_size=8)
    g = gallery_job.run(out=str(work / "gallery"), thumbs=False, **common)
    q = queries_job.run(out=str(work / "queries"), **common)
    assert g.complete and q.complete and g.failed == 0 and q.failed == 0
    # the mini benchmark has one split: train and validate on it (this checks the plumbing, not generalisation)
    record = train_combiner.main(["--train-queries", str(work / "queries"), "--gallery", str(work / "gallery"),
                                  "--val-queries", str(work / "queries"), "--out", str(work / "mlp.safetensors"),
                                  "--epochs", "3", "--batch-size", "8"])
    report = evaluate.main(["--queries", str(work / "queries"), "--gallery", str(work / "gallery"),
                            "--benchmark", "cirr", "--out", str(work / "eval"), "--mlp", str(work / "mlp.safetensors")])
    return record, report


@pytest.mark.slow
def test_pipeline_end_to_end_on_bundled_mini_benchmark(tmp_path) -> None:
    assert (MINI_CIRR / "cap.rc2.demo.json").is_file(), f"bundled mini benchmark missing under {MINI_CIRR}"
    record, report = run_mini_pipeline(MINI_CIRR, "demo", tmp_path)
    triplets = cirr_triplets_from_table(QuerySet.load(tmp_path / "queries").table)
    assert list(report["results"]) == ALL and report["info"]["num_queries"] == len(triplets) > 0
    assert report["info"]["gallery_manifest"]["encoder"] == "lite"
    assert record["trained"] and 0.0 <= record["best_val_R@1"] <= 100.0
    for name in ALL:
        res = report["results"][name]
        assert all(0.0 <= res[k] <= 100.0 for k in ("R@1", "R@5", "R@10", "R@50", "Rs@1", "Rs_soft@1"))
        assert res["R@1"] <= res["R@5"] <= res["R@10"] <= res["R@50"]
    pq = Evaluation.load(tmp_path / "eval").per_query
    assert len(pq) == len(triplets) * len(ALL)
    assert (tmp_path / "eval" / "metrics.md").read_text().count("|") > 20


def test_dimension_mismatch_is_refused(planted, tmp_path) -> None:
    s = make_planted_split(6, dim=16, seed=1, prefix="m", extra_distractors=0)
    enc16 = PLANTED_ENCODER.__class__(**{**PLANTED_ENCODER.__dict__, "dim": 16})
    qdir = write_queries_folder(tmp_path / "q16", s.emb, s.table, enc16, "q16")
    with pytest.raises(ValueError, match="16-d but gallery"):
        evaluate.run(qdir, planted["gallery"], "cirr", tmp_path / "out")


def test_mlp_of_another_dimension_is_refused(planted, tmp_path) -> None:
    mlp = MLPCombiner(dim=16, hidden=8)
    mlp.trained = True
    save_mlp_combiner(mlp, tmp_path / "m16.safetensors", {"trained": True})
    with pytest.raises(ValueError, match="16-d embeddings"):
        evaluate.run(planted["queries"], planted["gallery"], "cirr", tmp_path / "out", mlp=tmp_path / "m16.safetensors")
