"""Shared plumbing of the precompute jobs: flags, encoder creation, atomic writes, progress, provenance.

Every job uses the same kebab-case flags (``add_encoder_args``, ``add_run_args``) so a SLURM array or a
Makefile can pass the same options to ``gallery``, ``queries`` and ``merge``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import platform
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import covr_core
from covr_core.atomic import atomic_write_text
from covr_core.datasets import get_dataset
from covr_core.factory import create_encoder, list_encoders, resolve_dtype_name
from covr_core.types import Summary

from .options import CHUNK_ITEMS, DTYPE_CHOICES
from .progress import PROGRESS_EVERY, Progress

log = logging.getLogger("precompute")

#: Test hooks: the process SIGKILLs itself after this many processed items / at this named stage; with
#: KILL_ONCE_ENV set to a file path, only the first process to create that file does (a retry then succeeds).
KILL_AFTER_ENV = "COVR_PRECOMPUTE_KILL_AFTER"
KILL_AT_ENV = "COVR_PRECOMPUTE_KILL_AT"
KILL_ONCE_ENV = "COVR_PRECOMPUTE_KILL_ONCE"
PACKAGES = ("covr-explorer", "torch", "transformers", "numpy", "pandas", "pyarrow", "faiss-cpu", "av",
            "pillow", "umap-learn")


class JobInputError(RuntimeError):
    """A problem with what the job was given (folder, cluster, install): the CLI prints it without a traceback."""


@dataclass
class JobSummary(Summary):
    """A job's :class:`Summary` plus where it wrote, how long each stage took and what went wrong."""

    total: int = 0  #: items of this launch (all items, or one shard's)
    out: str = ""
    complete: bool = False  #: True when the final output (gallery / queries file) was written
    timing: dict[str, float] = field(default_factory=dict)  #: seconds per stage (decode wait, transfer, model)
    units: int = 0  #: units of work run (chunks of --chunk-items items; one Ray task each)
    units_failed: int = 0  #: units that failed even after their retries
    part_files: int = 0  #: files under _parts/ before the merge
    problem: str = ""  #: why the job must exit non-zero ("" when it did what it was asked)

    @property
    def ok(self) -> bool:
        """True when the job did what it was asked (run_main exits 0)."""
        return not self.problem

    def line(self) -> str:
        """The one-line ``done/skipped/failed`` report printed at the end of a job."""
        return (f"done={self.done} skipped={self.skipped} failed={self.failed} total={self.total} "
                f"units={self.units} part_files={self.part_files} complete={self.complete} out={self.out}"
                + (f" problem={self.problem!r}" if self.problem else ""))


# ----------------------------------------------------------------------------------------------- flags
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults (not for on/off switches, where "(default: True)" after "--no-thumbs" reads inverted)
    and keeps the description's line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return action.help or ""
        return super()._get_help_string(action)


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argparse parser with the project's help formatter."""
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)


def encoder_choices() -> list[str]:
    """``auto`` plus the factory's registry (``blip``, ``lite``)."""
    return ["auto", *list_encoders()]


def add_dataset_args(p: argparse.ArgumentParser, datasets: Sequence[str], csv_help: str) -> argparse._ArgumentGroup:
    """The ``dataset`` flag group shared by the gallery and queries jobs; returns the group for extras."""
    g = p.add_argument_group("dataset")
    g.add_argument("--dataset", choices=tuple(datasets), required=True,
                   help="which dataset to embed: " + "; ".join(f"{d} = {get_dataset(d).description}"
                                                              for d in datasets))
    g.add_argument("--root", help="CIRR root (holds the annotation and images folders), or the media folder "
                                  "of --dataset folder")
    g.add_argument("--split", default="val",
                   help="CIRR split: val, test1, train (or demo for assets/benchmark/cirr)")
    g.add_argument("--csv", help=csv_help)
    g.add_argument("--video-root", help="WebVid folder: videos are <video-root>/<pth>.mp4")
    s = g.add_mutually_exclusive_group()
    s.add_argument("--subset-first", type=int, help="WebVid: only the first N rows of the CSV")
    s.add_argument("--subset-random", type=int, help="WebVid: N random rows (see --seed)")
    s.add_argument("--subset-ids", help="WebVid: a file of pth values (one per line) to keep")
    g.add_argument("--seed", type=int, default=0, help="seed of --subset-random")
    return g


def add_encoder_args(p: argparse.ArgumentParser) -> None:
    """``--encoder --weights --checkpoint --blip-source --device --dtype`` (every job that embeds)."""
    g = p.add_argument_group("encoder")
    g.add_argument("--encoder", choices=encoder_choices(), default="auto",
                   help="an encoder config of covr_core/model_configs (blip = blip-large: CoVR's BLIP-L; lite = the "
                        "offline stand-in); auto = BLIP-L + webvid-covr when those weights can be had, else lite")
    g.add_argument("--weights", default=None,
                   help="weight tag of the encoder (blip: webvid-covr (default), cirr_ft-covr+gt, "
                        "fashioniq-all-ft_covr, blip-l-coco), downloaded into the Hugging Face cache; or a file")
    g.add_argument("--checkpoint", default=None, help="CoVR .ckpt/.pth/.safetensors file applied on top of BLIP "
                                                       "(same as --weights FILE)")
    g.add_argument("--blip-source", default=None,
                   help="hub id or local from_pretrained folder of the BLIP backbone (default: the factory's)")
    g.add_argument("--device", default="auto", help="torch device: auto (cuda when available), cpu, cuda, cuda:1")
    g.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                   help="model precision: auto = bfloat16 on CUDA (with autocast), float32 on CPU; an explicit "
                        "bfloat16 also runs on CPU (about half of BLIP-L's float32 time on CPUs with bf16 units)")


def add_run_args(p: argparse.ArgumentParser, batch_size: int = 64) -> None:
    """Batching, data-loading, sharding, resume, failure and Ray flags."""
    g = p.add_argument_group("run")
    g.add_argument("--out", required=True, help="output folder (gallery / queries folder); parts go to OUT/_parts")
    g.add_argument("--batch-size", type=int, default=batch_size, help="images (or video frames) per forward pass")
    g.add_argument("--num-workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="DataLoader worker processes that decode and resize media (0 = in the main process)")
    g.add_argument("--num-shards", type=int, default=1,
                   help="split the items into N shards by hand (item i -> shard i %% N); prefer --ray")
    g.add_argument("--shard-id", type=int, default=0, help="which shard this process computes (0..N-1)")
    g.add_argument("--flush-every", type=int, default=256, help="write a part file every N finished items")
    g.add_argument("--chunk-items", type=int, default=CHUNK_ITEMS,
                   help="items per unit of work: one Ray task, compacted into one part file when it finishes "
                        "(2.5M items -> 153 files)")
    g.add_argument("--retry-failed", action="store_true",
                   help="retry items that failed in an earlier run (e.g. after repairing the media)")
    g.add_argument("--max-failures", default=None,
                   help="failed items (unreadable media) tolerated before the job exits non-zero: a count "
                        "(0, 10) or a share (1%%); default: any number (they are listed in failures.csv)")
    g.add_argument("--no-finalize", action="store_true",
                   help="only write parts; run `python -m precompute.merge` later (implied when --num-shards > 1)")
    g.add_argument("--keep-parts", action="store_true",
                   help="keep OUT/_parts after a successful merge (by default it is deleted: no doubled disk use)")
    g.add_argument("--progress-every", type=float, default=PROGRESS_EVERY,
                   help="seconds between progress lines when stderr is not a terminal (logs, pipes, clusters)")
    r = p.add_argument_group("ray (optional: pip install -r requirements-ray.txt)")
    r.add_argument("--ray", default=None, metavar="auto|local|ADDRESS",
                   help="run the units on a Ray cluster with retries and merge at the end: auto = the running "
                        "cluster (RAY_ADDRESS or `ray start` on this machine) else a local one, local = a new "
                        "cluster on this machine, or the head's address (host:6379, ray://host:10001)")
    r.add_argument("--ray-workers", type=int, default=None,
                   help="Ray workers (each loads the model once): default one per GPU of the cluster, or "
                        "CPUs / --ray-cpus-per-worker on a CPU cluster")
    r.add_argument("--ray-cpus-per-worker", type=int, default=None,
                   help="CPUs reserved per worker (its decode workers / torch threads); default --num-workers, at least 1")
    r.add_argument("--ray-retries", type=int, default=3,
                   help="times a unit is retried after its worker died or raised (then the launch reports it failed)")
    add_log_arg(g)


def add_log_arg(p) -> None:
    """``--log-level`` (every job)."""
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="logging level")


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr with timestamps (jobs only; library code never configures logging)."""
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# ---------------------------------------------------------------------------------------------- device
def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def create_job_encoder(encoder: str = "auto", checkpoint: str | None = None, blip_source: str | None = None,
                       device: str = "cpu", dtype: str = "float32", weights: str | None = None):
    """Create the encoder a job runs with (model on ``device`` once) with ``covr_core.factory.create_encoder``:
    ``weights`` is a tag or file, ``blip_source`` a folder / hub id replacing the BLIP base (``auto`` never
    hangs offline)."""
    model_dtype = resolve_dtype_name(dtype, device)  # auto: bfloat16 on CUDA, float32 on CPU; explicit: as asked
    return create_encoder(encoder, weights, checkpoint=checkpoint, source=blip_source, device=device, dtype=model_dtype)


def autocast_context(device: str, dtype: str):
    """bf16/fp16 autocast on CUDA (``auto`` = bfloat16); a no-op context elsewhere."""
    import torch

    dtype = resolve_dtype_name(dtype, device)
    if device.startswith("cuda") and dtype in ("bfloat16", "float16"):
        return torch.autocast("cuda", dtype=getattr(torch, dtype))
    return contextlib.nullcontext()


# --------------------------------------------------------------------------------------- atomic files
def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def safe_name(item_id: str) -> str:
    """A file name for an item id (``folder/video`` -> ``folder__video``); keeps it inside its folder."""
    name = str(item_id).replace("\\", "/").replace("/", "__")
    name = "".join(c if c.isalnum() or c in "-_.=+" else "_" for c in name)
    return name.lstrip(".") or "_"


# --------------------------------------------------------------------------------------- progress/logs
def progress(total: int, desc: str, unit: str, every: float = PROGRESS_EVERY) -> Progress:
    """A tqdm bar on a terminal, a log line every ``every`` seconds otherwise (see ``_progress``)."""
    return Progress(total, desc, unit, every=every)


def write_failures(path: str | Path, failures: Iterable[tuple[str, str]]) -> Path:
    """Write the ``item,reason`` failure log (CSV) atomically; returns its path."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["item", "reason"])
    for item, reason in failures:
        w.writerow([item, reason])
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def maybe_kill(stage: str, items_done: int | None = None) -> None:
    """Test hook: SIGKILL this process at a named stage or after N items (real SIGKILL, no cleanup).

    ``COVR_PRECOMPUTE_KILL_AT=<stage>`` kills at that stage; ``COVR_PRECOMPUTE_KILL_AFTER=N`` kills as soon
    as at least N items were processed in this run (``stage == "item"``). With ``COVR_PRECOMPUTE_KILL_ONCE=
    <file>`` only the process that creates that file dies (a Ray worker's retry then runs to the end).
    """
    at = os.environ.get(KILL_AT_ENV)
    after = os.environ.get(KILL_AFTER_ENV)
    if (at and at == stage) or (after and items_done is not None and stage == "item" and items_done >= int(after)):
        once = os.environ.get(KILL_ONCE_ENV)
        if once:
            try:
                os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
        log.warning("test hook: SIGKILL at %s (items=%s)", stage, items_done)
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


# ----------------------------------------------------------------------------------------- provenance
def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape the outputs (missing ones are left out)."""
    out = {"python": platform.python_version()}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    if "covr-explorer" not in out:
        out["covr-explorer"] = getattr(covr_core, "__version__", "")
    return out


def provenance(argv: Sequence[str] | None = None, extra: dict | None = None) -> dict:
    """What made an output: command line, package versions, host and time."""
    job = (extra or {}).get("job")
    cmd = [sys.executable, "-m", _job_module(job)] + list(sys.argv[1:] if argv is None else argv)
    rec = {"command": shlex.join(cmd), "versions": package_versions(), "host": platform.node(),
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if extra:
        rec.update(extra)
    return rec


def _job_module(job: str | None = None) -> str:
    """The running ``precompute.<job>`` module; ``precompute.<job>`` when called as a library (app, tests)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and (spec.name or "").startswith("precompute."):
        return spec.name
    return f"precompute.{job}" if job else "precompute"


def encoder_record(info) -> dict:
    """EncoderInfo as a JSON-able dict (for job plans and manifests)."""
    from dataclasses import asdict

    return asdict(info)


class StageTimer:
    """Accumulates wall time per named stage (``with timer("model"): ...``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0

    def rounded(self) -> dict[str, float]:
        """Seconds per stage, rounded to ms."""
        return {k: round(v, 3) for k, v in self.seconds.items()}


def run_main(parse: Callable[[Sequence[str] | None], argparse.Namespace], job: Callable[..., Any],
             argv: Sequence[str] | None) -> int:
    """Shared ``main``: parse, set up logging, run, log the summary. Exit code 1 when the job is incomplete, a
    unit failed for good or more items failed than ``--max-failures`` allows; 2 when its input is wrong (a
    busy folder, no Ray, a missing file: the message, no traceback)."""
    args = parse(argv)
    setup_logging(getattr(args, "log_level", "INFO"))
    try:
        result = job(args)
    except (JobInputError, ValueError, FileNotFoundError) as exc:
        log.debug("details", exc_info=True)
        log.error("%s", exc)
        return 2
    if not isinstance(result, JobSummary):  # jobs returning a JobSummary log their own summary line
        log.info("%s", json.dumps(result, default=str))
        return 0
    if not result.ok:
        log.error("%s", result.problem)
        return 1
    return 0
