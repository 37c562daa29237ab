"""The evaluation folder (``covr_core.evaluation_folder.Evaluation``): build/save/load round trip with reports and
submission files, listing, change stamps, links to the queries and gallery folders, atomic saves, and damaged or
hostile folders refused with a clear error."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from covr_core import evaluation_folder as ef
from covr_core.evaluation_folder import Evaluation, EvaluationError
from covr_core import query_folder as qf
from covr_core.query_folder import QuerySet
from covr_core.types import EncoderInfo, QueryEmbeddings

INFO = EncoderInfo(name="enc", version="1", checkpoint="ck", checkpoint_sha256="", dim=4)


def _per_query(combiners=("NA", "AVG"), n: int = 3) -> pd.DataFrame:
    frames = []
    for c in combiners:
        frames.append(pd.DataFrame({
            "query_id": [7 * i for i in range(n)], "combiner": c, "reference": [f"r{i}" for i in range(n)],
            "target": [f"t{i}" for i in range(n)], "rank": pd.array([1, None, 4][:n], dtype="Int64"),
            "target_score": [0.5, np.nan, 0.25][:n], "top_ids": [["t0", "x", "t1"]] * n,
            "top_scores": [[0.9, 0.8, 0.7]] * n, "w_mm": 1.0, "w_img": 0.0, "w_txt": 0.0}))
    return pd.concat(frames, ignore_index=True)


def _evaluation(**info) -> Evaluation:
    results = {"NA": {"R@1": 33.3}, "AVG": {"R@1": 50.0, "submission": ["submissions/AVG/recalls_cirr.json"]}}
    return Evaluation.build(_per_query(), {"benchmark": "cirr", "combiners": ["NA", "AVG"], **info}, results,
                            reports={"metrics.md": "# table\n", "metrics.csv": "a,b\n"},
                            submissions={"AVG": {"recalls_cirr.json": '{"version": "rc2"}\n'}})


def test_round_trip_with_reports_and_submissions(tmp_path: Path) -> None:
    folder = tmp_path / "evaluations" / "run"
    ev = _evaluation(seconds=1.5)
    ev.save(folder)
    assert ev.folder == folder and Evaluation.exists(folder)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == sorted([
        "metrics.csv", ef.METRICS_FILE, "metrics.md", ef.PER_QUERY_FILE, "submissions/AVG/recalls_cirr.json"])
    assert (folder / Evaluation.submission_path("AVG", "recalls_cirr.json")).read_text() == '{"version": "rc2"}\n'
    assert (folder / "metrics.md").read_text() == "# table\n"
    on_disk = (folder / ef.METRICS_FILE).read_text()
    assert on_disk == json.dumps(ev.report, indent=2, ensure_ascii=False) + "\n"  # the job's JSON layout
    back = Evaluation.load(folder)
    pd.testing.assert_frame_equal(back.per_query.drop(columns=["top_ids", "top_scores"]),
                                  _per_query().drop(columns=["top_ids", "top_scores"]))
    assert [list(x) for x in back.per_query["top_ids"]] == [["t0", "x", "t1"]] * 6
    assert back.info == ev.info and back.results == ev.results and back.combiners == ["NA", "AVG"]
    assert Evaluation.read_report(folder) == ev.report
    weights = Evaluation.load(folder, columns=["combiner", "w_mm"]).per_query
    assert list(weights.columns) == ["combiner", "w_mm"]


def test_find_exists_stamp_and_combiner_names(tmp_path: Path) -> None:
    root = tmp_path / "evaluations"
    assert Evaluation.find(root) == {}
    _evaluation().save(root / "b-run")
    Evaluation.build(_per_query(["TEXT", "MLP"]), {}).save(root / "a-run")  # no combiners in info: read the table
    Evaluation.build(_per_query(), {}).save(root / ".c-being-written")
    (root / "not-an-evaluation").mkdir()
    assert Evaluation.find(root) == {"a-run": root / "a-run", "b-run": root / "b-run"}
    assert not Evaluation.exists(root / "not-an-evaluation")
    assert Evaluation.combiner_names(root / "a-run") == ["TEXT", "MLP"]
    assert Evaluation.combiner_names(root / "b-run") == ["NA", "AVG"]
    before = Evaluation.stamp(root / "a-run")
    assert all(before)
    Evaluation.build(_per_query(["TEXT"], n=2), {}).save(root / "a-run")  # a rerun replaces the folder
    assert Evaluation.stamp(root / "a-run") != before
    assert Evaluation.stamp(tmp_path / "gone") == (None, None)


def test_links_resolve_from_the_evaluation_folder_and_captions_come_from_the_queries(tmp_path: Path,
                                                                                     caplog) -> None:
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"query_id": [0, 7, 14], "reference": ["r0", "r1", "r2"], "caption": ["red", "a dog", "zoom"]})
    emb = QueryEmbeddings(*(rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3)))
    QuerySet.build(emb, table, INFO, "q").save(data / "queries" / "q")
    (data / "galleries" / "g").mkdir(parents=True)
    ev = Evaluation.build(_per_query(), {"queries": "queries/q", "gallery": "galleries/g"})  # relative to <data>
    ev.save(data / "evaluations" / "run")
    back = Evaluation.load(data / "evaluations" / "run")
    assert back.queries_folder == (data / "queries" / "q").resolve()
    assert back.gallery_folder == (data / "galleries" / "g").resolve()
    assert back.captions() == {"0": "red", "7": "a dog", "14": "zoom"}
    assert Evaluation.build(_per_query(), {"gallery": "nowhere"}).gallery_folder is None
    (data / "queries" / "q" / qf.TABLE_FILE).write_bytes(b"broken")
    with caplog.at_level(logging.WARNING, logger="covr_core.evaluation_folder"):
        assert back.captions() == {}  # a damaged queries folder costs the captions, not the benchmark
    assert "no captions" in caplog.text and "corrupt" in caplog.text


def test_failed_save_keeps_the_earlier_run(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    _evaluation().save(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    broken = _evaluation()
    broken.reports["metrics.md"] = None  # not text: the write fails half-way through the folder
    with pytest.raises(TypeError):
        broken.save(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temp folder left


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns=["rank"]), r"lacks column\(s\) \['rank'\]"),
    (lambda f: f.assign(w_img="high"), r"\['w_img'\] have the wrong type"),
    (lambda f: f.assign(top_ids="t0"), r"\['top_ids'\] have the wrong type"),
    (lambda f: f.assign(top_scores=[[0.5]] * len(f)), "differ in length"),
])  # fmt: skip
def test_build_refuses_a_malformed_table(change, message) -> None:
    with pytest.raises(EvaluationError, match=message):
        Evaluation.build(change(_per_query()), {})


def test_build_refuses_unknown_report_files_and_path_like_submission_names() -> None:
    with pytest.raises(EvaluationError, match="unknown report file"):
        Evaluation.build(_per_query(), {}, reports={"../evil.md": "x"})
    for combiner, name in (("../AVG", "recalls_cirr.json"), ("AVG", "../../x.json"), ("AVG", "..")):
        with pytest.raises(EvaluationError, match="plain file names"):
            Evaluation.build(_per_query(), {}, submissions={combiner: {name: "{}"}})
    with pytest.raises(EvaluationError, match="wrong type"):
        Evaluation.build(_per_query(), {"gallery": 3})


def _write_table(path: Path, frame: pd.DataFrame) -> None:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


@pytest.mark.parametrize("how, message", [
    ("no table", "is missing: not an evaluation folder"),
    ("table not parquet", "corrupt"),
    ("table lacks combiner", "corrupt or lacks columns|lacks column"),
    ("unequal lists", "differ in length"),
    ("weights as text", "wrong type"),
    ("metrics not json", "corrupt"),
    ("metrics a list", "expected a JSON object"),
    ("info a string", "'info' must be an object"),
    ("gallery a number", "wrong type"),
    ("combiners not a list", "wrong type"),
])  # fmt: skip
def test_damaged_or_hostile_folder_is_refused(tmp_path: Path, how: str, message: str) -> None:
    folder = tmp_path / "run"
    _evaluation().save(folder)
    table, metrics = folder / ef.PER_QUERY_FILE, folder / ef.METRICS_FILE
    frame = pd.read_parquet(table)
    if how == "no table":
        table.unlink()
    elif how == "table not parquet":
        table.write_bytes(b"PAR1 garbage")
    elif how == "table lacks combiner":
        _write_table(table, frame.drop(columns=["combiner"]))
    elif how == "unequal lists":
        _write_table(table, frame.assign(top_scores=[[0.1]] * len(frame)))
    elif how == "weights as text":
        _write_table(table, frame.assign(w_mm="1.0"))
    elif how == "metrics not json":
        metrics.write_text("{oops")
    elif how == "metrics a list":
        metrics.write_text("[]")
    elif how == "info a string":
        metrics.write_text(json.dumps({"info": "x", "results": {}}))
    elif how == "gallery a number":
        metrics.write_text(json.dumps({"info": {"gallery": 5}, "results": {}}))
    elif how == "combiners not a list":
        metrics.write_text(json.dumps({"info": {"combiners": "NA"}, "results": {}}))
    with pytest.raises(EvaluationError, match=message) as err:
        Evaluation.load(folder)
    assert isinstance(err.value, ValueError)
