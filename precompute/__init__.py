"""Precompute jobs for CoVR Explorer: one module per job, each runnable as ``python -m precompute.<job>``.

Jobs: ``gallery`` (embed a CIRR split, a WebVid-CoVR subset or the bundled demo into a gallery folder),
``queries`` (f_mm, f_img, f_txt for every triplet), ``merge`` (join shard/part outputs), ``umap``
(2-D maps), ``filter_webvid`` (the study's author/category filter). Shared plumbing lives in
``_common.py`` (flags, encoder creation, atomic writes, failure logs, provenance) and ``_parts.py``
(resumable, shardable part files).
"""
