"""The shared job engine of the embedding jobs: typed options, the folder lock, progress, units of work and the
loop of one unit, DataLoader datasets, part files, the Ray launcher, and the skeleton (``job.run_embedding_job``)
that ``precompute.gallery`` and ``precompute.queries`` follow (``common.run_main`` for every job's ``main``)."""
