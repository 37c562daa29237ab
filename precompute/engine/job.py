"""The one skeleton of the embedding jobs (gallery, queries), in the spirit of clip-retrieval's runner.

    list the dataset (registry spec) -> plan -> lock the folder -> units of work (``_units``) -> run them
    here or on Ray (``_ray``) -> merge -> delete the parts

The part store is the source of truth: a relaunch after a crash redoes only unfinished rows, and an output
folder that is already complete (same dataset, encoder and item list) is left alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from covr_core.datasets import DatasetSpec, ItemList, get_dataset

from ..merge import finalize
from . import common as C
from .lock import job_lock
from .options import EmbedOptions
from .parts import IDENTITY_KEYS, PartStore, PlanMismatchError, plan_sha256
from .ray_cluster import RayCluster
from .runner import UnitResult
from .units import EmbeddingKind, Unit, UnitRunner, make_units, mine_count

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- job
def _job_record(kind: EmbeddingKind, opts: EmbedOptions, spec: DatasetSpec, listed: ItemList, info: Any,
                out: Path) -> dict:
    key = spec.key(opts.selection())
    name = opts.name or kind.default_name(opts, listed.split, info.name)
    media_root = listed.media_root
    if spec.name == "demo":  # the demo gallery lives next to the repo's assets: keep it relocatable
        media_root = Path(os.path.relpath(media_root, out.resolve()))
    identity = {"kind": kind.name, "dataset_key": key, "encoder_name": info.name,
                "encoder_sha256": info.checkpoint_sha256, "plan_sha256": plan_sha256(listed.items)}
    prov = C.provenance(opts.argv, {
        "job": kind.name, "dataset": spec.name, "dataset_key": key, "identity": identity,
        "benchmark": spec.benchmark, "exclusion": spec.exclusion,
        "checkpoint_file_sha256": C.sha256_file(opts.checkpoint) if opts.checkpoint else ""})
    return {**identity, "name": name, "encoder": C.encoder_record(info), "media_root": str(media_root),
            "count": len(listed.items), **kind.job_fields(opts, spec), "provenance": prov}


def finished_output(out: Path, identity: dict) -> bool:
    """True when ``out`` holds a complete output of this very job; PlanMismatchError for another job's."""
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        return False
    try:
        found = json.loads(manifest_path.read_text(encoding="utf-8")).get("provenance", {}).get("identity")
    except (OSError, ValueError):
        return False
    if not found:  # an output written before jobs recorded their identity: recompute over it
        return False
    for key in (*IDENTITY_KEYS, "plan_sha256"):
        if found.get(key) != identity.get(key):
            raise PlanMismatchError(f"{out} already holds a finished {found.get('kind')} of another job "
                                    f"({key}: {found.get(key)!r} != {identity.get(key)!r}); use a fresh --out "
                                    "or delete it")
    return True


def _seed_from_output(kind: EmbeddingKind, store: PartStore, out: Path, plan: pd.DataFrame, chunk: int) -> None:
    """Turn a finished output back into parts (its failed items stay to do): ``--retry-failed`` after the
    parts of the first run were deleted."""
    rows, arrays, records = kind.read_output(out, plan)
    log.info("retry-failed: seeding %d finished items from %s", len(rows), out)
    for start in range(0, len(rows), chunk):
        sl = slice(start, start + chunk)
        writer = store.writer(f"seed{start // chunk:06d}")
        writer.write_part(rows[sl].tolist(), {k: v[sl] for k, v in arrays.items()}, records[sl], [])
        writer.compact()


def run_embedding_job(kind: EmbeddingKind, opts: EmbedOptions) -> C.JobSummary:
    """Run one embedding job end to end (see module docstring); returns its summary."""
    spec = get_dataset(opts.dataset)
    listed = kind.list_items(spec, opts)
    plan = listed.items.reset_index(drop=True)
    out = Path(opts.out)
    store = PartStore(out)
    summary = C.JobSummary(out=str(out), total=mine_count(len(plan), opts))
    shard = (opts.shard_id, opts.num_shards) if opts.num_shards > 1 else None
    with contextlib.ExitStack() as stack:
        cluster = None
        if opts.ray is not None:
            cluster = stack.enter_context(RayCluster.connect(opts.ray))  # fails fast: no Ray, bad address
        stack.enter_context(job_lock(store.dir, shard))
        if cluster is not None:
            runner, info = None, cluster.start_workers(kind, opts)
        else:
            device = C.resolve_device(opts.device)
            encoder = opts.encoder if not isinstance(opts.encoder, str) else C.create_job_encoder(
                opts.encoder, opts.checkpoint, opts.blip_source, device, opts.dtype, weights=opts.weights)
            runner, info = UnitRunner(kind, opts, encoder, device, plan), encoder.info
        job = _job_record(kind, opts, spec, listed, info, out)
        per_batch = kind.items_per_batch(plan, opts)
        seed = not store.exists() and finished_output(out, job["provenance"]["identity"])
        if seed and not opts.retry_failed:
            store.remove()
            summary.skipped, summary.complete = summary.total, True
            log.info("%s %s is already complete in %s: nothing to do", kind.name, job["name"], out)
            return summary
        store.init_plan(job, plan)
        if seed:
            _seed_from_output(kind, store, out, plan, max(opts.chunk_items, per_batch))
        todo = ~store.finished_mask(len(plan), include_failed=not opts.retry_failed)
        workers = cluster.worker_count if cluster is not None else 1
        chunk = opts.chunk_items if cluster is None else min(
            opts.chunk_items, max(per_batch, math.ceil(len(plan) / (4 * workers))))
        units = make_units(len(plan), todo, opts, per_batch, chunk)
        n_todo = sum(len(u.rows) for u in units)
        summary.skipped = summary.total - n_todo
        summary.units = len(units)
        log.info("%s %s: %d items (%s), %d already finished, %d to do in %d unit(s)%s", kind.name, job["name"],
                 summary.total, f"shard {opts.shard_id}/{opts.num_shards}" if shard else "all", summary.skipped,
                 n_todo, len(units), f" on {workers} Ray worker(s)" if cluster is not None else "")
        bar = C.progress(n_todo, f"{kind.name} {job['name']}", kind.unit_label(plan, opts), opts.progress_every)
        try:
            if cluster is not None:
                results, failed_units = cluster.run(units, bar)
            else:
                results, failed_units = _run_here(runner, units, bar, opts.on_progress, n_todo), []
        finally:
            bar.close()
        _add_results(summary, results)
        summary.units_failed = len(failed_units)
        summary.part_files = len(store.files())
        if not opts.parts_only and not failed_units:
            merged = finalize(out, [out], index_type=job.get("index_type"))
            summary.complete, summary.failures = merged.complete, merged.failures
            if merged.complete and not opts.keep_parts:
                store.remove()
        summary.problem = _problem(summary, opts, failed_units)
    log.info("%s", summary.line())
    return summary


def _run_here(runner: UnitRunner, units: list[Unit], bar: Any, on_progress: Callable[[int, int], None] | None,
              total: int) -> list[UnitResult]:
    seen = [0]

    def on_batch(n: int) -> None:
        bar.update(n)
        seen[0] += n
        if on_progress:
            on_progress(seen[0], total)

    return [runner.run(u, on_batch=on_batch) for u in units]


def _add_results(summary: C.JobSummary, results: list[UnitResult]) -> None:
    for r in results:
        summary.done += r.done
        summary.failed += r.failed
        summary.skipped += r.skipped
        for k, v in r.timing.items():
            summary.timing[k] = round(summary.timing.get(k, 0.0) + v, 3)


def _problem(summary: C.JobSummary, opts: EmbedOptions, failed_units: list[tuple[Unit, str]]) -> str:
    if failed_units:
        unit, why = failed_units[0]
        return (f"{len(failed_units)} of {summary.units} unit(s) failed after {opts.ray_retries} retries "
                f"(first: {unit.label}: {why}); rerun the same command to redo only what is missing")
    if not opts.parts_only and not summary.complete:
        return "the output is incomplete (items missing from the parts); rerun the same command"
    failed = len(summary.failures) if not opts.parts_only else summary.failed
    allowed = opts.allowed_failures(summary.total)
    if allowed is not None and failed > allowed:
        return (f"{failed} item(s) failed, more than --max-failures allows ({allowed}); see failures.csv, "
                "repair the media and rerun with --retry-failed")
    return ""
