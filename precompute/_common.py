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

from covr_core.atomic import atomic_write_text
from covr_core.types import Summary

log = logging.getLogger("precompute")

ENCODER_CHOICES = ("auto", "blip", "lite")
DTYPE_CHOICES = ("float32", "bfloat16", "float16")
#: Test hooks: the process SIGKILLs itself after this many processed items / at this named stage.
KILL_AFTER_ENV = "COVR_PRECOMPUTE_KILL_AFTER"
KILL_AT_ENV = "COVR_PRECOMPUTE_KILL_AT"
PACKAGES = ("covr-explorer", "torch", "transformers", "numpy", "pandas", "pyarrow", "faiss-cpu", "av",
            "pillow", "umap-learn")


@dataclass
class JobSummary(Summary):
    """A job's :class:`Summary` plus where it wrote and how long each stage took."""

    total: int = 0  #: items in this shard
    out: str = ""
    complete: bool = False  #: True when the final output (gallery / queries file) was written
    timing: dict[str, float] = field(default_factory=dict)  #: seconds per stage (decode wait, transfer, model)

    def line(self) -> str:
        """The one-line ``done/skipped/failed`` report printed at the end of a job."""
        return (f"done={self.done} skipped={self.skipped} failed={self.failed} total={self.total} "
                f"complete={self.complete} out={self.out}")


# ----------------------------------------------------------------------------------------------- flags
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults and keeps the description's line breaks."""


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argparse parser with the project's help formatter."""
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)


def encoder_choices() -> list[str]:
    """``auto`` plus the factory's registry (``blip``, ``lite``)."""
    try:
        from covr_core.factory import list_encoders
    except ImportError:  # factory not importable: the fixed list
        return list(ENCODER_CHOICES)
    return ["auto", *list_encoders()]


def add_dataset_args(p: argparse.ArgumentParser, datasets: Sequence[str], csv_help: str) -> argparse._ArgumentGroup:
    """The ``dataset`` flag group shared by the gallery and queries jobs; returns the group for extras."""
    g = p.add_argument_group("dataset")
    g.add_argument("--dataset", choices=tuple(datasets), required=True, help="which dataset to embed")
    g.add_argument("--root", help="CIRR root (holds the annotation and images folders)")
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
    g.add_argument("--dtype", choices=DTYPE_CHOICES, default="bfloat16",
                   help="autocast dtype on CUDA (CPU always computes in float32)")


def add_run_args(p: argparse.ArgumentParser, batch_size: int = 64) -> None:
    """Batching, data-loading, sharding and resume flags."""
    g = p.add_argument_group("run")
    g.add_argument("--out", required=True, help="output folder (gallery / queries folder); parts go to OUT/_parts")
    g.add_argument("--batch-size", type=int, default=batch_size, help="images (or video frames) per forward pass")
    g.add_argument("--num-workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="DataLoader worker processes that decode and resize media (0 = in the main process)")
    g.add_argument("--num-shards", type=int, default=1,
                   help="split the items into N shards (item i -> shard i %% N)")
    g.add_argument("--shard-id", type=int, default=0, help="which shard this process computes (0..N-1)")
    g.add_argument("--flush-every", type=int, default=256, help="write a part file every N finished items")
    g.add_argument("--retry-failed", action="store_true", help="retry items that failed in an earlier run")
    g.add_argument("--no-finalize", action="store_true",
                   help="only write parts; run `python -m precompute.merge` later (implied when --num-shards > 1)")
    add_log_arg(g)


def add_log_arg(p) -> None:
    """``--log-level`` (every job)."""
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="logging level")


def check_shard_args(num_shards: int, shard_id: int) -> None:
    """Raise ValueError unless ``0 <= shard_id < num_shards``."""
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise ValueError(f"need 0 <= --shard-id < --num-shards, got shard {shard_id} of {num_shards}")


def shard_indices(n: int, num_shards: int = 1, shard_id: int = 0) -> list[int]:
    """Indices ``i`` of ``range(n)`` with ``i % num_shards == shard_id`` (clip-retrieval's sampler)."""
    check_shard_args(num_shards, shard_id)
    return list(range(shard_id, n, num_shards))


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
    from covr_core.factory import create_encoder

    model_dtype = dtype if device.startswith("cuda") else "float32"
    return create_encoder(encoder, weights, checkpoint=checkpoint, source=blip_source, device=device, dtype=model_dtype)


def autocast_context(device: str, dtype: str):
    """bf16/fp16 autocast on CUDA; a no-op context elsewhere."""
    import torch

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
def progress(total: int, desc: str, unit: str, initial: int = 0):
    """A tqdm bar on stderr (hidden when stderr is not a TTY) with unit, total, rate and ETA."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=None, file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)


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
    as at least N items were processed in this run (``stage == "item"``).
    """
    at = os.environ.get(KILL_AT_ENV)
    after = os.environ.get(KILL_AFTER_ENV)
    if (at and at == stage) or (after and items_done is not None and stage == "item" and items_done >= int(after)):
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
        import covr_core

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
    """Shared ``main``: parse, set up logging, run, print the summary line; exit code 1 when incomplete."""
    args = parse(argv)
    setup_logging(getattr(args, "log_level", "INFO"))
    result = job(args)
    if not isinstance(result, JobSummary):  # jobs returning a JobSummary log their own summary line
        log.info("%s", json.dumps(result, default=str))
    return 0
