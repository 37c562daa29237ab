"""Run the units of an embedding job on a Ray cluster: one worker (actor) per GPU, retries, one progress bar.

Like img2dataset's and clip-retrieval's distributors, the job is cut into units (chunks of the plan) and a
worker runs ``UnitRunner.run`` on each; unlike a task per unit, a worker is an actor that loads the model
once and keeps it for every unit it is given. Fault tolerance is Ray's: a worker that dies (OOM, a lost
node, a SIGKILL) is restarted and its unit retried (``max_restarts`` / ``max_task_retries`` =
``--ray-retries``), an exception is retried the same way; the retried unit skips what the dead attempt
already flushed, because the part store under ``--out`` (shared storage) is the source of truth. A unit
that still fails is reported, the others finish, and the launch exits non-zero: rerunning the same command
redoes only what is missing. Workers add what they flushed to a small counter actor; the launcher polls it
for the one progress bar over all items.

Ray is optional (``pip install -r requirements-ray.txt``); without it ``--ray`` fails with that hint, and an
address nobody answers on fails within seconds instead of waiting for Ray's own minutes-long timeouts.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import socket
from typing import Any, Iterator

from . import common as C
from .options import EmbedOptions
from .runner import UnitResult
from .units import EmbeddingKind, Unit, UnitRunner, options_for_worker

log = logging.getLogger(__name__)

RAY_INSTALL_HINT = "pip install -r requirements-ray.txt   (Ray 2.60: pip install 'ray==2.60.0')"
POLL_SECONDS = 1.0


class RayUnavailableError(C.JobInputError):
    """Ray is not installed, or the cluster address does not answer."""


def import_ray():
    """The ``ray`` module, or RayUnavailableError naming what to install."""
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError(f"--ray needs Ray, which is not installed here ({exc}): {RAY_INSTALL_HINT}") from None
    return ray


def _host_port(address: str) -> tuple[str, int]:
    rest = address.strip()
    default = 10001 if rest.startswith("ray://") else 6379
    rest = rest.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    try:
        return host or "127.0.0.1", int(port) if port else default
    except ValueError:
        raise RayUnavailableError(f"cannot parse the Ray address {address!r} (expected host:port)") from None


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Raise RayUnavailableError unless something answers on the address's host and port."""
    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise RayUnavailableError(
            f"cannot reach the Ray cluster at {address} ({host}:{port}: {exc}); start it with "
            "`ray start --head` on the head machine and pass its address, or use --ray local") from None


#: environment variables a launch hands to its workers on every machine (cache locations, offline mode,
#: the jobs' settings and test hooks); anything named like a secret stays behind
FORWARDED_ENV_PREFIXES = ("HF_", "TRANSFORMERS_", "COVR_")


def forwarded_env() -> dict[str, str]:
    """The launch's variables its workers get (``FORWARDED_ENV_PREFIXES``, without tokens or keys)."""
    return {k: v for k, v in os.environ.items()
            if k.startswith(FORWARDED_ENV_PREFIXES) and not any(w in k for w in ("TOKEN", "KEY", "SECRET"))}


class ProgressCounter:
    """Items flushed by all workers (a Ray actor without CPU)."""

    def __init__(self) -> None:
        self.n = 0

    def add(self, n: int) -> None:
        """Count ``n`` more items."""
        self.n += n

    def get(self) -> int:
        """Items counted so far."""
        return self.n


class EmbedWorker:
    """A Ray actor: loads the encoder once on its device, then runs the units it is given."""

    def __init__(self, kind: EmbeddingKind, opts: EmbedOptions, device: str) -> None:
        C.setup_logging(opts.log_level)
        self.runner = UnitRunner.load(kind, opts, device)

    def info(self) -> Any:
        """The loaded encoder's EncoderInfo."""
        return self.runner.encoder.info

    def run(self, unit: Unit, counter: Any) -> UnitResult:
        """Run one unit; report flushed items to ``counter``."""
        return self.runner.run(unit, on_flush=lambda n: counter.add.remote(n))


class RayCluster:
    """A connection to a Ray cluster and the workers of one launch."""

    def __init__(self, ray: Any, owned: bool) -> None:
        self.ray, self.owned = ray, owned
        self.workers: list[Any] = []
        self.counter: Any = None
        self.retries = 0

    @classmethod
    @contextlib.contextmanager
    def connect(cls, address: str) -> Iterator[RayCluster]:
        """Connect (``auto``: the running cluster, else a local one; ``local``; an address); reuse an
        already initialised Ray (then leave it running); shut down what this call started."""
        ray = import_ray()
        owned = not ray.is_initialized()
        if owned:
            cls._init(ray, address)
        cluster = cls(ray, owned)
        try:
            yield cluster
        finally:
            cluster.close()

    @staticmethod
    def _init(ray: Any, address: str) -> None:
        quiet = {"include_dashboard": False, "logging_level": logging.WARNING}
        if address == "local":
            ray.init(**quiet)
        elif address == "auto":
            if os.environ.get("RAY_ADDRESS"):
                check_reachable(os.environ["RAY_ADDRESS"])
            try:
                ray.init(address="auto", logging_level=logging.WARNING)
            except ConnectionError:
                log.info("no running Ray cluster found: starting a local one")
                ray.init(**quiet)
        else:
            check_reachable(address)
            ray.init(address=address, logging_level=logging.WARNING)
        log.info("Ray cluster: %s", {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")})

    @property
    def worker_count(self) -> int:
        """Workers started by ``start_workers``."""
        return len(self.workers)

    def _plan_workers(self, opts: EmbedOptions) -> tuple[int, dict, str]:
        res = self.ray.cluster_resources()
        gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 0))
        if opts.device.startswith("cuda") and not gpus:
            raise RayUnavailableError(f"--device {opts.device} but the Ray cluster has no GPU")
        use_gpu = gpus > 0 and opts.device != "cpu"
        cpus_per = opts.ray_cpus_per_worker or max(1, opts.num_workers)
        capacity = min(gpus, cpus // cpus_per) if use_gpu else cpus // cpus_per
        if capacity < 1:
            raise RayUnavailableError(f"the Ray cluster ({cpus} CPU, {gpus} GPU) cannot hold one worker of "
                                      f"{cpus_per} CPU{' + 1 GPU' if use_gpu else ''}; lower --ray-cpus-per-worker")
        n = opts.ray_workers or capacity
        if n > capacity:
            log.warning("--ray-workers %d: the cluster holds only %d; starting %d", n, capacity, capacity)
            n = capacity
        resources = {"num_cpus": cpus_per, "num_gpus": 1 if use_gpu else 0}
        return n, resources, "cuda" if use_gpu else "cpu"

    def start_workers(self, kind: EmbeddingKind, opts: EmbedOptions) -> Any:
        """Start the workers (each loads the encoder); returns their common EncoderInfo."""
        n, resources, device = self._plan_workers(opts)
        self.retries = opts.ray_retries
        env = forwarded_env()
        actor = self.ray.remote(EmbedWorker).options(
            **resources, max_restarts=opts.ray_retries, max_task_retries=opts.ray_retries,
            **({"runtime_env": {"env_vars": env}} if env else {}))
        worker_opts = options_for_worker(opts)
        self.workers = [actor.remote(kind, worker_opts, device) for _ in range(n)]
        self.counter = self.ray.remote(num_cpus=0)(ProgressCounter).remote()
        log.info("starting %d Ray worker(s) on %s, %s each", n, device, resources)
        try:
            infos = self.ray.get([w.info.remote() for w in self.workers])
        except self.ray.exceptions.RayError as exc:
            raise RuntimeError(f"the Ray workers could not load the encoder: {_reason(exc)}") from None
        if any(i != infos[0] for i in infos[1:]):
            raise RuntimeError(f"Ray workers loaded different encoders ({sorted({str(i) for i in infos})}); "
                               "give every machine the same checkpoint")
        return infos[0]

    def run(self, units: list[Unit], bar: Any) -> tuple[list[UnitResult], list[tuple[Unit, str]]]:
        """Run every unit on the workers (a free worker takes the next unit); returns (results, failures)."""
        ray = self.ray
        queue = collections.deque(units)
        idle = list(self.workers)
        busy: dict[Any, tuple[Any, Unit]] = {}
        results: list[UnitResult] = []
        failed: list[tuple[Unit, str]] = []
        while queue or busy:
            while idle and queue:
                worker, unit = idle.pop(), queue.popleft()
                ref = worker.run.options(retry_exceptions=True).remote(unit, self.counter)
                busy[ref] = (worker, unit)
            if not busy:  # every worker is gone: nothing can run the rest
                failed.extend((u, "no Ray worker left") for u in queue)
                break
            ready, _ = ray.wait(list(busy), num_returns=len(busy), timeout=POLL_SECONDS)
            bar.set(ray.get(self.counter.get.remote()))
            for ref in ready:
                worker, unit = busy.pop(ref)
                try:
                    results.append(ray.get(ref))
                    idle.append(worker)
                except ray.exceptions.RayActorError as exc:  # the worker died more often than it may restart
                    log.error("unit %s lost its worker for good: %s", unit.label, _reason(exc))
                    failed.append((unit, _reason(exc)))
                except ray.exceptions.RayError as exc:
                    log.error("unit %s failed after %d retries: %s", unit.label, self.retries, _reason(exc))
                    failed.append((unit, _reason(exc)))
                    idle.append(worker)
        bar.set(sum(r.done + r.failed + r.skipped for r in results))  # exact: a dying worker's last count may be lost
        return results, failed

    def map_tasks(self, fn: Any, calls: list[tuple], desc: str, unit: str, num_cpus: int = 1,
                  retries: int = 3) -> list:
        """``fn(*call)`` for every call as Ray tasks (retried after a crash or an exception), one progress
        bar; results in call order. Raises RuntimeError when a task still fails."""
        remote = self.ray.remote(fn).options(num_cpus=num_cpus, max_retries=retries, retry_exceptions=True)
        pending = {remote.remote(*call): i for i, call in enumerate(calls)}
        results: list = [None] * len(calls)
        bar = C.progress(len(calls), desc, unit)
        try:
            while pending:
                ready, _ = self.ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
                for ref in ready:
                    i = pending.pop(ref)
                    try:
                        results[i] = self.ray.get(ref)
                    except self.ray.exceptions.RayError as exc:
                        raise RuntimeError(f"{desc}: task {i} failed after {retries} retries: {_reason(exc)}") from None
                    bar.update(1)
        finally:
            bar.close()
        return results

    def close(self) -> None:
        """Stop this launch's workers (and the cluster, when this launch started it)."""
        for handle in [*self.workers, self.counter]:
            if handle is not None:
                with contextlib.suppress(Exception):
                    self.ray.kill(handle)
        self.workers, self.counter = [], None
        if self.owned:
            self.ray.shutdown()


def _reason(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else type(exc).__name__
