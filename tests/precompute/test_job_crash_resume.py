"""Jobs killed with a real SIGKILL at three points resume to the same result as an uninterrupted run.

The job runs as a subprocess; the test hook ``COVR_PRECOMPUTE_KILL_AFTER=N`` / ``COVR_PRECOMPUTE_KILL_AT=stage``
makes it send SIGKILL to itself (no cleanup, no atexit). The rerun must skip what the parts already hold,
compute the rest, and produce the same items, in the same order, each exactly once.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest
from conftest import run_job

from covr_core.gallery import Gallery
from covr_core.query_folder import QuerySet
from precompute import gallery as gallery_job
from precompute import queries as queries_job
from precompute.engine.parts import PartStore

pytestmark = pytest.mark.slow

KILL_POINTS = [
    pytest.param({"COVR_PRECOMPUTE_KILL_AFTER": "1"}, id="first-batch-nothing-flushed"),
    pytest.param({"COVR_PRECOMPUTE_KILL_AFTER": "6"}, id="mid-run-one-part-plus-buffer"),
    pytest.param({"COVR_PRECOMPUTE_KILL_AT": "finalize"}, id="all-parts-before-final-write"),
]


def _args(job, cirr_data, blip_dir, out):
    return ["--dataset", "cirr", "--root", str(cirr_data.root), "--split", "val", "--out", str(out),
            "--encoder", "blip", "--blip-source", str(blip_dir), "--device", "cpu", "--num-workers", "0",
            "--batch-size", "2", "--flush-every", "4"]


def _kill(module, args, env):
    proc = run_job(module, args, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def _finished(out):
    return len(PartStore(out).finished_rows())


@pytest.fixture(scope="module")
def reference_gallery(cirr_data, tiny_blip, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "g"
    gallery_job.run(dataset="cirr", root=str(cirr_data.root), split="val", out=str(out), encoder=tiny_blip,
                    device="cpu", batch_size=2, flush_every=4, argv=["--test"])
    return Gallery.load(out)


@pytest.mark.parametrize("env", KILL_POINTS)
def test_gallery_killed_and_rerun_equals_uninterrupted(env, cirr_data, tiny_blip, tiny_blip_dir,
                                                       reference_gallery, tmp_path):
    out = tmp_path / "g"
    _kill("precompute.gallery", _args("gallery", cirr_data, tiny_blip_dir, out), env)
    assert not (out / "manifest.json").exists()
    before = _finished(out)
    expected_before = {"1": 0, "6": 4}.get(env.get("COVR_PRECOMPUTE_KILL_AFTER"), 12)
    assert before == expected_before  # at most the unwritten batch was lost
    s = gallery_job.run(dataset="cirr", root=str(cirr_data.root), split="val", out=str(out), encoder=tiny_blip,
                        device="cpu", batch_size=2, flush_every=4, argv=["--test"])
    assert s.skipped == before and s.done + s.failed + s.skipped == 12 and s.complete
    g = Gallery.load(out, expected=tiny_blip.info)
    assert g.items["id"].tolist() == reference_gallery.items["id"].tolist()
    assert g.items["id"].is_unique
    np.testing.assert_allclose(np.asarray(g.embeddings), np.asarray(reference_gallery.embeddings), atol=1e-5)
    assert len(s.failures) == len(cirr_data.bad)


@pytest.mark.parametrize("env", KILL_POINTS)
def test_queries_killed_and_rerun_equals_uninterrupted(env, cirr_data, tiny_blip, tiny_blip_dir, tmp_path):
    kw = dict(dataset="cirr", root=str(cirr_data.root), split="val", encoder=tiny_blip, device="cpu",
              batch_size=2, flush_every=4, argv=["--test"])
    queries_job.run(out=str(tmp_path / "ref"), **kw)
    out = tmp_path / "q"
    _kill("precompute.queries", _args("queries", cirr_data, tiny_blip_dir, out), env)
    assert not QuerySet.exists(out)
    before = _finished(out)
    s = queries_job.run(out=str(out), **kw)
    assert s.skipped == before and s.complete
    ref, got = QuerySet.load(tmp_path / "ref"), QuerySet.load(out)
    assert got.table.equals(ref.table) and got.table["query_id"].is_unique
    for k, a in got.arrays().items():
        np.testing.assert_allclose(a, ref.arrays()[k], atol=1e-5)
