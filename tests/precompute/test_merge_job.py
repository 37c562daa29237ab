"""Sharded runs merged with ``python -m precompute.merge`` equal one unsharded run."""

from __future__ import annotations

import numpy as np

from covr_core.gallery import Gallery
from covr_core.query_folder import QuerySet
from precompute import gallery as gallery_job
from precompute import merge
from precompute import queries as queries_job


def _cirr(cirr_data, out, enc, **kw):
    return gallery_job.run(dataset="cirr", root=str(cirr_data.root), split="val", out=str(out), encoder=enc,
                           device="cpu", batch_size=2, flush_every=2, thumbs=False, argv=["--test"], **kw)


def test_two_shards_in_separate_folders_merge_to_the_unsharded_gallery(cirr_data, tiny_blip, tmp_path):
    _cirr(cirr_data, tmp_path / "full", tiny_blip)
    full = Gallery.load(tmp_path / "full")
    s0 = _cirr(cirr_data, tmp_path / "s0", tiny_blip, num_shards=2, shard_id=0)
    assert not s0.complete and s0.total == 6  # items 0, 2, 4, ...
    # merging with a shard missing refuses and names what is missing
    assert merge.main(["--out", str(tmp_path / "merged"), "--inputs", str(tmp_path / "s0")]) == 1
    assert not (tmp_path / "merged" / "manifest.json").exists()
    _cirr(cirr_data, tmp_path / "s1", tiny_blip, num_shards=2, shard_id=1)
    assert merge.main(["--out", str(tmp_path / "merged"), "--inputs", str(tmp_path / "s0"), str(tmp_path / "s1")]) == 0
    merged = Gallery.load(tmp_path / "merged", expected=tiny_blip.info)
    assert merged.items["id"].tolist() == full.items["id"].tolist()
    np.testing.assert_allclose(np.asarray(merged.embeddings), np.asarray(full.embeddings), atol=1e-5)
    assert merged.items["id"].is_unique and len(merged) == len(cirr_data.good_names)


def test_shards_sharing_one_folder_then_merge(cirr_data, tiny_blip, tmp_path):
    out = tmp_path / "shared"
    for i in range(3):
        _cirr(cirr_data, out, tiny_blip, num_shards=3, shard_id=i)
    assert merge.main(["--out", str(out)]) == 0
    g = Gallery.load(out)
    assert g.items["id"].tolist() == cirr_data.good_names


def test_query_shards_merge(cirr_data, tiny_blip, tmp_path):
    kw = dict(dataset="cirr", root=str(cirr_data.root), split="val", encoder=tiny_blip, device="cpu",
              batch_size=2, flush_every=2, argv=["--test"])
    queries_job.run(out=str(tmp_path / "full"), **kw)
    for i in range(2):
        queries_job.run(out=str(tmp_path / "sh"), num_shards=2, shard_id=i, **kw)
    assert merge.run(out=str(tmp_path / "sh")).complete
    a, b = QuerySet.load(tmp_path / "full"), QuerySet.load(tmp_path / "sh")
    assert a.table.equals(b.table)
    for k, arr in a.arrays().items():
        np.testing.assert_allclose(arr, b.arrays()[k], atol=1e-5)
