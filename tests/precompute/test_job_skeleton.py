"""The shared skeleton of the embedding jobs: typed options, the dataset registry, bounded and compacted part
files, the streaming merge, the folder lock, exit codes, progress lines without a terminal, clean-up."""

from __future__ import annotations

import argparse
import logging
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers.media_files import write_test_clip
from helpers.synthetic_data import pattern_image

from covr_core.datasets import DatasetSelection, get_dataset, list_datasets, query_datasets
from covr_core.gallery import Gallery
from precompute import gallery as gallery_job
from precompute import merge
from precompute import queries as queries_job
from precompute.engine.lock import JobLockedError, job_lock
from precompute.engine.options import GalleryOptions, parse_failure_budget
from precompute.engine.parts import PartStore, PlanMismatchError, gather, scan
from precompute.engine.ray_cluster import RayUnavailableError, check_reachable, forwarded_env, import_ray
from precompute.engine.units import make_units


def _cirr(cirr_data, out, blip_dir, *extra):
    return ["--dataset", "cirr", "--root", str(cirr_data.root), "--split", "val", "--out", str(out),
            "--encoder", "blip", "--blip-source", str(blip_dir), "--device", "cpu", "--num-workers", "0",
            "--batch-size", "2", "--flush-every", "2", "--no-thumbs", *extra]


# ------------------------------------------------------------------------------------------ options
def test_mistyped_keyword_or_value_fails_instead_of_disappearing(tmp_path):
    with pytest.raises(TypeError, match="batchsize"):
        gallery_job.run(dataset="demo", out=str(tmp_path), encoder="lite", batchsize=8)
    with pytest.raises(TypeError, match="batch_size must be"):
        GalleryOptions(dataset="demo", out=str(tmp_path), batch_size="8")
    with pytest.raises(TypeError, match="thumbs must be"):
        GalleryOptions(dataset="demo", out=str(tmp_path), thumbs="no")
    with pytest.raises(ValueError, match="--ray launches every shard"):
        GalleryOptions(dataset="demo", out=str(tmp_path), ray="auto", num_shards=2)
    with pytest.raises(ValueError, match="max-failures"):
        GalleryOptions(dataset="demo", out=str(tmp_path), max_failures="many")
    ns = argparse.Namespace(**vars(gallery_job.parse_args(["--dataset", "demo", "--out", "x"])), surprise=1)
    with pytest.raises(TypeError, match="surprise"):
        GalleryOptions.from_namespace(ns)
    assert parse_failure_budget("2.5%", 1000) == 25 and parse_failure_budget("7", 10) == 7
    assert parse_failure_budget(None, 10) is None


def test_every_cli_flag_is_an_option_field():
    for job, cls in ((gallery_job, GalleryOptions), (queries_job, queries_job.QueriesOptions)):
        ns = job.parse_args(["--dataset", "cirr", "--root", "r", "--out", "o"])
        assert cls.from_namespace(ns).batch_size == 64


def test_help_of_on_off_switches_reads_right(capsys):
    with pytest.raises(SystemExit):
        gallery_job.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    no_thumbs = text[text.rindex("--no-thumbs"):text.rindex("--no-thumbs") + 100]  # its help, not the usage
    assert "(default: True)" not in no_thumbs and "by default both are written" in no_thumbs
    for flag in ("--ray auto|local|ADDRESS", "--ray-workers", "--ray-retries", "--chunk-items", "--max-failures",
                 "--keep-parts", "--progress-every", "requirements-ray.txt", "folder = a plain folder"):
        assert flag in text


# ------------------------------------------------------------------------------------------ registry
def test_dataset_registry_and_plain_folder_listing(tmp_path):
    assert {"cirr", "webvid", "folder", "demo"} <= set(list_datasets())
    assert query_datasets() == ["cirr", "webvid"]
    assert (get_dataset("cirr").exclusion, get_dataset("webvid").exclusion) == ("reference", "same-video")
    assert get_dataset("webvid").benchmark == "webvid" and get_dataset("folder").benchmark is None
    with pytest.raises(ValueError, match="choose one of"):
        get_dataset("imagenet")
    with pytest.raises(ValueError, match="--csv and --video-root are required"):
        get_dataset("webvid").gallery(DatasetSelection())
    with pytest.raises(ValueError, match="has no composed queries"):
        get_dataset("folder").queries(DatasetSelection(root=str(tmp_path)))
    (tmp_path / "b" / ".hidden").mkdir(parents=True)
    pattern_image(1).save(tmp_path / "b" / "dog.PNG")
    pattern_image(2).save(tmp_path / "a.jpg")
    pattern_image(3).save(tmp_path / "b" / ".hidden" / "x.png")
    (tmp_path / "notes.txt").write_text("not media")
    write_test_clip(tmp_path / "b" / "clip.mp4", 12, fps=6, size=(64, 48))
    listed = get_dataset("folder").gallery(DatasetSelection(root=str(tmp_path)))
    assert listed.items["id"].tolist() == ["a.jpg", "b/clip.mp4", "b/dog.PNG"]
    assert listed.items["kind"].tolist() == ["image", "video", "image"]
    assert listed.media_root == tmp_path.resolve()


def test_folder_gallery_end_to_end(tiny_blip, tmp_path):
    media = tmp_path / "media"
    (media / "sub").mkdir(parents=True)
    for i in range(3):
        pattern_image(i).save(media / "sub" / f"p{i}.png")
    write_test_clip(media / "clip.mp4", 20, fps=10, size=(64, 48))
    s = gallery_job.run(dataset="folder", root=str(media), out=str(tmp_path / "g"), encoder=tiny_blip,
                        device="cpu", batch_size=4, argv=["--test"])
    assert s.complete and s.done == 4
    g = Gallery.load(tmp_path / "g")
    assert g.items["id"].tolist() == ["clip.mp4", "sub/p0.png", "sub/p1.png", "sub/p2.png"]
    assert g.media_path("sub/p1.png") == (media / "sub" / "p1.png").resolve()
    assert (tmp_path / "g" / g.items["frames"].iloc[0]).is_file()


# ------------------------------------------------------------------------------------------ part files
def test_units_bound_the_part_files_for_a_webvid_scale_job():
    opts = GalleryOptions(dataset="webvid", out="x")
    units = make_units(2_500_000, np.arange(2_500_000), opts, per_batch=64, chunk=opts.chunk_items)
    assert len(units) == math.ceil(2_500_000 / 16384) == 153  # one compacted file per unit when done
    assert all(len(u.rows) % 64 == 0 for u in units[:-1])  # whole batches: same batches on any cluster
    assert units[1].rows[0] == 16384 and len({u.label for u in units}) == 153
    shard = make_units(10, np.arange(10), GalleryOptions(dataset="demo", out="x", num_shards=3, shard_id=1),
                       per_batch=2, chunk=2)
    assert [u.rows.tolist() for u in shard] == [[1, 4], [7]]


def test_unit_parts_compact_into_one_segment_and_merge_streams_them(tmp_path):
    store = PartStore(tmp_path)
    store.dir.mkdir()
    w = store.writer("c4n000000")
    w.write_part([3, 1], {"emb": np.array([[3.0], [1.0]], np.float32)}, [{"t": "3"}, {"t": "1"}], [(0, "bad")])
    w.write_part([1, 2], {"emb": np.array([[1.0], [2.0]], np.float32)}, [{"t": "1"}, {"t": "2"}], [])
    other = store.writer("c4n000001")  # a second unit, left uncompacted (still running)
    other.write_part([5, 4], {"emb": np.array([[5.0], [4.0]], np.float32)}, [{"t": "5"}, {}], [(6, "gone")])
    assert w.compact().name.startswith("seg-c4n000000-")
    assert [p.name[:13] for p in store.files()] == ["part-c4n00000", "seg-c4n000000"]
    index = scan([store], 8)
    assert index.done_rows.tolist() == [1, 2, 3, 4, 5] and index.failures == {0: "bad", 6: "gone"}
    emb = np.zeros((5, 1), np.float32)
    records = gather(index, {"emb": emb})
    assert emb[:, 0].tolist() == [1, 2, 3, 4, 5] and records["t"].tolist()[:3] == ["1", "2", "3"]
    assert pd.isna(records["t"].iloc[3])


def test_job_parts_are_compacted_per_unit_and_deleted_after_the_merge(cirr_data, tiny_blip, tmp_path):
    kw = dict(dataset="cirr", root=str(cirr_data.root), split="val", encoder=tiny_blip, device="cpu",
              batch_size=2, flush_every=1, chunk_items=4, thumbs=False, argv=["--test"])
    kept = gallery_job.run(out=str(tmp_path / "kept"), keep_parts=True, **kw)
    assert kept.units == 3 and kept.part_files == 3  # 12 flushes of 1 item -> one segment per unit of 4
    assert len(PartStore(tmp_path / "kept").files(kind="seg")) == 3
    s = gallery_job.run(out=str(tmp_path / "g"), **kw)
    assert s.complete and not (tmp_path / "g" / "_parts").exists()  # no doubled disk use
    again = gallery_job.run(out=str(tmp_path / "g"), **kw)  # a finished output is left alone
    assert (again.done, again.skipped, again.complete) == (0, 12, True)
    assert not (tmp_path / "g" / "_parts").exists()
    with pytest.raises(PlanMismatchError, match="another job"):
        gallery_job.run(out=str(tmp_path / "g"), **{**kw, "split": "val", "dataset": "demo"})


def test_merge_cli_deletes_the_shards_parts(cirr_data, tiny_blip, tmp_path):
    kw = dict(dataset="cirr", root=str(cirr_data.root), split="val", encoder=tiny_blip, device="cpu",
              batch_size=2, thumbs=False, num_shards=2, argv=["--test"])
    for i in range(2):
        gallery_job.run(out=str(tmp_path / f"s{i}"), shard_id=i, **kw)
    assert merge.main(["--out", str(tmp_path / "m"), "--inputs", str(tmp_path / "s0"), str(tmp_path / "s1")]) == 0
    assert not any((tmp_path / d / "_parts").exists() for d in ("s0", "s1", "m"))
    assert len(Gallery.load(tmp_path / "m")) == len(cirr_data.good_names)


# ------------------------------------------------------------------------------------------ lock
def test_a_second_launch_on_the_same_folder_refuses(cirr_data, tiny_blip, tmp_path):
    out = tmp_path / "g"
    kw = dict(dataset="cirr", root=str(cirr_data.root), split="val", encoder=tiny_blip, device="cpu",
              batch_size=2, thumbs=False, argv=["--test"])
    with job_lock(out / "_parts"):  # a launch in progress (flock: per open file, so this process counts)
        with pytest.raises(JobLockedError, match="already running .*pid"):
            gallery_job.run(out=str(out), **kw)
        with pytest.raises(JobLockedError):
            merge.run(out=str(out))
    assert not (out / "_parts" / "job.json").exists()  # the refused launch wrote nothing
    with job_lock(out / "_parts", shard=(0, 2)):  # shards of a manual split share the folder ...
        with job_lock(out / "_parts", shard=(1, 2)):
            with pytest.raises(JobLockedError, match="shard 0 of 2"):  # ... but not a shard twice
                gallery_job.run(out=str(out), num_shards=2, shard_id=0, **kw)
            with pytest.raises(JobLockedError):  # and no whole-job launch meanwhile
                gallery_job.run(out=str(out), **kw)
    assert gallery_job.run(out=str(out), **kw).complete  # released when the holders are gone


# ------------------------------------------------------------------------------------------ exit codes
def test_run_main_exits_nonzero_beyond_the_allowed_failures(cirr_data, tiny_blip_dir, tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    assert gallery_job.main(_cirr(cirr_data, tmp_path / "a", tiny_blip_dir, "--max-failures", "0")) == 1
    assert "3 item(s) failed, more than --max-failures allows (0)" in caplog.text
    assert (tmp_path / "a" / "manifest.json").exists()  # the output is still written
    assert gallery_job.main(_cirr(cirr_data, tmp_path / "b", tiny_blip_dir, "--max-failures", "25%")) == 0
    # a shard of a manual split that finished its items exits 0 (the merge is a separate step)
    assert queries_job.main([*_cirr(cirr_data, tmp_path / "q", tiny_blip_dir)[:-1], "--num-shards", "2"]) == 0


def test_progress_lines_when_stderr_is_not_a_terminal(cirr_data, tiny_blip_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="precompute")
    assert gallery_job.main(_cirr(cirr_data, tmp_path / "g", tiny_blip_dir, "--progress-every", "0")) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "precompute" and " img (" in r.getMessage()]
    assert len(lines) >= 6 and lines[-1].startswith("gallery cirr-val-blip-tiny: 12/12 img (100.0%)")
    assert "img/s" in lines[0] and "ETA" in lines[0]


# ------------------------------------------------------------------------------------------ Ray bad input
def test_ray_missing_or_unreachable_fails_fast_with_a_clear_message(monkeypatch, tmp_path):
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody answers there
    t0 = time.monotonic()
    with pytest.raises(RayUnavailableError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        check_reachable(f"127.0.0.1:{port}")
    assert time.monotonic() - t0 < 10
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(RayUnavailableError, match="requirements-ray.txt"):
        import_ray()
    code = gallery_job.main(["--dataset", "demo", "--out", str(tmp_path / "g"), "--encoder", "lite", "--ray", "auto"])
    assert code == 2 and not (tmp_path / "g" / "_parts" / "job.json").exists()
    shutil.rmtree(tmp_path / "g", ignore_errors=True)


def test_workers_get_the_cache_and_job_settings_but_no_secret(monkeypatch):
    monkeypatch.setenv("HF_HOME", "/shared/hf")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COVR_PRECOMPUTE_KILL_AFTER", "3")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    env = forwarded_env()
    assert {"HF_HOME": "/shared/hf", "HF_HUB_OFFLINE": "1", "COVR_PRECOMPUTE_KILL_AFTER": "3"}.items() <= env.items()
    assert "HF_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
