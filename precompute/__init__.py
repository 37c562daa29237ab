"""Precompute jobs for CoVR Explorer: one module per job, each runnable as ``python -m precompute.<job>``.

Jobs: ``gallery`` (embed a CIRR split, a WebVid-CoVR subset or the bundled demo into a gallery folder),
``queries`` (f_mm, f_img, f_txt for every triplet), ``merge`` (join shard/part outputs), ``umap``
(2-D maps), ``filter_webvid`` (the study's author/category filter), ``evaluate``, ``train_combiner``,
``reproduce`` (the study end to end) and ``demo`` (the bundled demo's chain). The shared job engine is the
``engine`` package (flags and ``run_main``, typed options, the lock, units, part files, the Ray launcher); an
underscore module next to a job serves that job only; ``asset_builder`` rebuilds ``assets/`` (developer time).
"""
