"""``--ray``: the embedding jobs on a real local Ray cluster (2 CPUs, no dashboard) give exactly the
single-process result, also when a worker process is SIGKILLed mid-unit, and a unit that fails for good
makes the launch exit non-zero and leaves parts that a plain rerun completes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import ray

from covr_core.gallery import Gallery
from covr_core.query_folder import QuerySet
from precompute import gallery as gallery_job
from precompute import queries as queries_job

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster():
    # Ray's memory monitor kills workers when the *machine* is nearly full; on a shared test machine other
    # processes fill it, and a worker killed for them would fail these tests for no fault of the code.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_memory_monitor_refresh_ms", "0")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _flags(cirr_data, blip_dir, out, *extra):
    return ["--dataset", "cirr", "--root", str(cirr_data.root), "--split", "val", "--out", str(out),
            "--encoder", "blip", "--blip-source", str(blip_dir), "--device", "cpu", "--num-workers", "0",
            "--batch-size", "2", "--flush-every", "2", "--chunk-items", "4", "--no-thumbs", *extra]


@pytest.fixture(scope="module")
def single_process_gallery(cirr_data, tiny_blip_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "g"
    assert gallery_job.main(_flags(cirr_data, tiny_blip_dir, out)) == 0
    return out


def _assert_same_gallery(out, reference):
    a, b = Gallery.load(reference), Gallery.load(out)
    assert b.items["id"].tolist() == a.items["id"].tolist() and b.items["id"].is_unique
    assert np.array_equal(np.asarray(b.embeddings), np.asarray(a.embeddings))  # bit-identical
    assert b.manifest["count"] == a.manifest["count"]
    fa, fb = pd.read_csv(reference / "failures.csv"), pd.read_csv(out / "failures.csv")
    assert fb["item"].tolist() == fa["item"].tolist()


def test_gallery_on_ray_equals_single_process(ray_cluster, cirr_data, tiny_blip_dir, single_process_gallery,
                                              tmp_path):
    out = tmp_path / "g"
    assert gallery_job.main(_flags(cirr_data, tiny_blip_dir, out, "--ray", "auto")) == 0
    _assert_same_gallery(out, single_process_gallery)
    assert not (out / "_parts").exists()  # merged, then the parts were deleted
    assert ray.is_initialized()  # a cluster the launch found is left running


def test_worker_killed_mid_unit_is_retried_without_duplicate_or_gap(ray_cluster, cirr_data, tiny_blip_dir,
                                                                     single_process_gallery, tmp_path, monkeypatch):
    marker = tmp_path / "killed"
    monkeypatch.setenv("COVR_PRECOMPUTE_KILL_AFTER", "3")  # after a flush of 2 items, mid-way through a unit
    monkeypatch.setenv("COVR_PRECOMPUTE_KILL_ONCE", str(marker))
    out = tmp_path / "g"
    s = gallery_job.run(dataset="cirr", root=str(cirr_data.root), split="val", out=str(out), encoder="blip",
                        blip_source=str(tiny_blip_dir), device="cpu", batch_size=2, flush_every=2, chunk_items=4,
                        thumbs=False, ray="auto", ray_workers=1, keep_parts=True, argv=["--test"])
    assert marker.exists()  # a worker process really died
    assert s.ok and s.complete and s.units_failed == 0
    assert s.skipped >= 2 and s.done + s.failed + s.skipped == 12  # the retry skipped what was flushed
    _assert_same_gallery(out, single_process_gallery)
    assert s.part_files == 3  # 12 items in units of 4: one compacted file per unit


def test_unit_failing_for_good_exits_nonzero_and_a_rerun_completes(ray_cluster, cirr_data, tiny_blip_dir,
                                                                   tmp_path, monkeypatch):
    kw = dict(dataset="cirr", root=str(cirr_data.root), split="val", encoder="blip",
              blip_source=str(tiny_blip_dir), device="cpu", batch_size=2, flush_every=2, argv=["--test"])
    assert queries_job.run(out=str(tmp_path / "ref"), **kw).complete
    out = tmp_path / "q"
    monkeypatch.setenv("COVR_PRECOMPUTE_KILL_AFTER", "3")
    monkeypatch.setenv("COVR_PRECOMPUTE_KILL_ONCE", str(tmp_path / "killed"))
    args = ["--dataset", "cirr", "--root", str(cirr_data.root), "--split", "val", "--out", str(out),
            "--encoder", "blip", "--blip-source", str(tiny_blip_dir), "--device", "cpu", "--num-workers", "0",
            "--batch-size", "2", "--flush-every", "2"]
    assert queries_job.main([*args, "--ray", "auto", "--ray-workers", "1", "--ray-retries", "0"]) == 1
    assert (out / "_parts").is_dir() and not QuerySet.exists(out)
    monkeypatch.delenv("COVR_PRECOMPUTE_KILL_AFTER")
    assert queries_job.main(args) == 0  # the part store is the truth: a plain rerun finishes the job
    ref, got = QuerySet.load(tmp_path / "ref"), QuerySet.load(out)
    assert got.table.equals(ref.table) and got.table["query_id"].is_unique
    for k, a in got.arrays().items():
        np.testing.assert_allclose(a, ref.arrays()[k], atol=1e-6)
    assert got.manifest["benchmark"] == "cirr"


def test_map_placement_on_ray_equals_placement_here(ray_cluster, tmp_path, monkeypatch):
    from covr_core.types import EncoderInfo
    from precompute import umap as umap_job
    from covr_core.placement import load_map

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(300, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    items = pd.DataFrame({"id": [f"i{k}" for k in range(300)], "kind": "image", "media": "x.png"})
    info = EncoderInfo(name="lite", version="t", checkpoint="t", checkpoint_sha256="ab" * 32, dim=16)
    monkeypatch.setattr(umap_job, "RAY_PLACE_ROWS", 100)  # 250 rows to place -> 3 Ray tasks
    maps = {}
    for mode in (None, "auto"):
        folder = tmp_path / f"g-{mode}"
        Gallery.build(emb, items, info, name="toy", media_root=str(tmp_path)).save(folder)
        res = umap_job.run(gallery=str(folder), fit_sample=50, min_umap_items=1000, ray=mode)
        assert res["fit_sample"] == 50
        maps[mode] = load_map(folder)[0][["x", "y"]].to_numpy()
    np.testing.assert_array_equal(maps["auto"], maps[None])
