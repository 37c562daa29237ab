"""Weight tags -> local files: the real ``huggingface_hub`` download path, sha256 checks, availability.

``plan_weights(model, weights=...)`` turns a tag (``webvid-covr``), a checkpoint file or a folder into a
:class:`WeightsPlan`; ``weights_availability(plan)`` says quickly (local cache, ``HF_HUB_OFFLINE``, one
bounded hub probe) whether it can be had; ``fetch_weights(plan)`` downloads what is missing with
``hf_hub_download`` / ``snapshot_download`` into the Hugging Face cache (``HF_HOME``) and hashes the
checkpoint: a file whose sha256 differs from the tag's known value is refused
(:class:`WeightsIntegrityError`); an unknown value is recorded (``ResolvedWeights.sha256``).

The cache folder and the offline switch are read from the environment at each call (not when
``huggingface_hub`` was imported), so tests can point ``HF_HOME`` at a pre-populated cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from covr_core.encoder_registry import ModelCfg, UnknownWeightsError, WeightsCfg

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_ENV = "COVR_HUB_PROBE_TIMEOUT"
DEFAULT_PROBE_TIMEOUT = 3.0
CHECKPOINT_SUFFIXES = (".ckpt", ".pth", ".pt", ".bin", ".safetensors")
_TRUE = ("1", "true", "yes", "on")
#: ``report(message, fraction)``: progress of a long step (fraction in [0, 1] or None when unknown).
Progress = Callable[[str, "float | None"], None]


class WeightsIntegrityError(ValueError):
    """A downloaded or given file whose sha256 differs from the tag's known value (refused)."""


class WeightsUnavailableError(RuntimeError):
    """The weights cannot be had (not cached, offline or the hub unreachable); says how to get them."""


@dataclass(frozen=True)
class HubFile:
    """One file of a hub repo that a plan needs."""

    repo: str
    filename: str

    @property
    def url(self) -> str:
        """``<HF_ENDPOINT>/<repo>/resolve/main/<filename>`` (file name URL-quoted: ``+`` -> ``%2B``)."""
        return f"{hub_endpoint()}/{self.repo}/resolve/main/{urllib.parse.quote(self.filename)}"


@dataclass(frozen=True)
class WeightsPlan:
    """What to fetch for one encoder: a base (config + tokenizer [+ weights]) and maybe a CoVR checkpoint."""

    model: ModelCfg
    tag: str  #: the weight tag ("" when a file or folder was given by path)
    label: str  #: for the page header and logs, e.g. "webvid-covr (lucas-ventura/CoVR/webvid-covr.ckpt)"
    base: str  #: hub repo id or local folder of the base config and tokenizer
    base_files: tuple[str, ...]  #: files of a hub base to fetch ("" entries never)
    base_has_weights: bool  #: True: the base itself holds the weights (from_pretrained folder)
    checkpoint: HubFile | None = None  #: CoVR checkpoint on the hub
    checkpoint_path: str = ""  #: CoVR checkpoint given as a local file
    expected_sha256: str = ""  #: known sha256 of the checkpoint / main weights file ("" unknown)
    licence: str = ""

    @property
    def base_is_local(self) -> bool:
        """True when ``base`` is a local folder (nothing to download for it)."""
        return Path(self.base).expanduser().is_dir() or self.base.startswith(("/", "./", "../", "~"))

    def hub_files(self) -> list[HubFile]:
        """Every hub file the plan needs (config first)."""
        files = [] if self.base_is_local else [HubFile(self.base, f) for f in self.base_files]
        return files + ([self.checkpoint] if self.checkpoint else [])


@dataclass(frozen=True)
class ResolvedWeights:
    """Local files of a plan, ready for ``covr_core.blip_load.load_blip_encoder``."""

    plan: WeightsPlan
    base_dir: str  #: local folder with config.json (+ tokenizer, + weights when ``base_has_weights``)
    checkpoint: str | None  #: local CoVR checkpoint file, or None
    sha256: str  #: sha256 of the checkpoint (or of the base's model.safetensors); "" when unknown
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------- environment
def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to a true value."""
    return any(
        os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` or https://huggingface.co."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hf_cache_dir() -> Path:
    """The hub cache folder from the environment now (``HF_HUB_CACHE``, ``HF_HOME``/hub, ~/.cache/...)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def probe_timeout() -> float:
    """``COVR_HUB_PROBE_TIMEOUT`` seconds (default 3)."""
    try:
        return max(0.1, float(os.environ.get(PROBE_TIMEOUT_ENV, DEFAULT_PROBE_TIMEOUT)))
    except ValueError:
        return DEFAULT_PROBE_TIMEOUT


# ----------------------------------------------------------------------------------------- plans
def _is_path(value: str) -> bool:
    return (
        Path(value).expanduser().exists()
        or value.startswith(("/", "./", "../", "~"))
        or value.endswith(CHECKPOINT_SUFFIXES)
    )


def plan_weights(
    model: ModelCfg, weights: str | None = None, checkpoint: str | None = None, source: str | None = None
) -> WeightsPlan:
    """The :class:`WeightsPlan` of a BLIP-family encoder.

    ``weights``: a tag of ``model`` (error listing its tags otherwise), a checkpoint file, or a
    ``from_pretrained`` folder; ``checkpoint``: a checkpoint file (the older flag, same as a file in
    ``weights``); ``source``: a folder or hub id replacing the model's base repo (``COVR_BLIP_SOURCE``).
    With neither, a ``source`` brings its own weights, otherwise the model's default tag is used."""
    if model.family != "blip":
        raise ValueError(f"plan_weights: {model.name} is not a BLIP-family encoder")
    base = source or model.base_repo
    files = tuple(model.base_files)
    if checkpoint and weights and not _is_path(weights):
        raise ValueError(f"give a weight tag or a checkpoint file, not both ({weights!r} and {checkpoint!r})")
    path = checkpoint or (weights if weights and _is_path(weights) else None)
    if path:
        p = Path(path).expanduser()
        if p.is_dir():
            return WeightsPlan(model, "", f"folder {p}", str(p), files, True)
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint file {p} does not exist")
        return WeightsPlan(model, "", p.name, base, files, False, checkpoint_path=str(p))
    if weights is None and source:
        return WeightsPlan(model, "", str(source), str(source), (*files, "model.safetensors"), True)
    cfg: WeightsCfg = model.get_weights(weights or model.default_weights)
    if not cfg.released:
        raise UnknownWeightsError(
            f"weight tag {cfg.tag!r} ({cfg.description}) was never released; choose one of "
            f"{', '.join(t for t, w in model.weights.items() if w.released)}"
        )
    label = f"{cfg.tag} ({cfg.location})"
    if cfg.kind == "hub-model":
        return WeightsPlan(
            model,
            cfg.tag,
            label,
            source or cfg.hub_repo,
            (*files, cfg.filename),
            True,
            expected_sha256=cfg.sha256,
            licence=cfg.licence,
        )
    if cfg.kind == "covr-checkpoint" and cfg.hub_repo and cfg.filename:
        return WeightsPlan(
            model,
            cfg.tag,
            label,
            base,
            files,
            False,
            checkpoint=HubFile(cfg.hub_repo, cfg.filename),
            expected_sha256=cfg.sha256,
            licence=cfg.licence,
        )
    raise ValueError(
        f"weight tag {cfg.tag!r} has no downloadable file ({cfg.url or 'no URL'}); download it "
        "yourself and pass the file as --weights PATH"
    )


# ---------------------------------------------------------------------------------- availability
def cached_path(repo: str, filename: str) -> str | None:
    """Path of ``filename`` of ``repo`` in the local hub cache, or None (never touches the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo, filename, cache_dir=str(hf_cache_dir()))
    except Exception:  # noqa: BLE001 - a broken cache is "not cached"
        return None
    return hit if isinstance(hit, str) and os.path.isfile(hit) else None


def probe_urls(urls: list[str], timeout: float | None = None) -> tuple[bool, str]:
    """HEAD every URL in parallel daemon threads, giving up after ``timeout`` seconds in total.

    A stalled DNS lookup or a silent server cannot block the caller longer than the limit.
    Returns (all reachable, reason)."""
    timeout = probe_timeout() if timeout is None else timeout
    results: dict[str, tuple[bool, str]] = {}

    def head(url: str) -> None:
        try:
            req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "covr-explorer"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - hub URL
                results[url] = (200 <= resp.status < 400, f"HTTP {resp.status}")
        except urllib.error.HTTPError as exc:
            results[url] = (False, f"the hub answered HTTP {exc.code} for {url}")
        except Exception as exc:  # noqa: BLE001 - any failure means "cannot download"
            results[url] = (False, f"the model hub could not be reached ({type(exc).__name__}: {exc})")

    threads = [threading.Thread(target=head, args=(u,), name="covr-hub-probe", daemon=True) for u in urls]
    deadline = time.monotonic() + timeout
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    missing = [u for u in urls if u not in results]
    if missing:
        return False, f"the model hub did not answer within {timeout:g} s"
    bad = [why for ok, why in results.values() if not ok]
    return (not bad), (bad[0] if bad else "the model hub answered")


def weights_availability(plan: WeightsPlan, probe: bool = True) -> tuple[bool, str]:
    """Whether ``plan`` can be had: local files, the local hub cache, or (online) a bounded hub probe."""
    if plan.base_is_local:
        base = Path(plan.base).expanduser()
        if not base.is_dir():
            return False, f"the folder {base} does not exist"
        if not (base / "config.json").is_file():
            return False, f"{base} has no config.json"
        if plan.base_has_weights and not any(
            (base / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")
        ):
            return False, f"{base} has no model weights (model.safetensors)"
    if plan.checkpoint_path and not Path(plan.checkpoint_path).is_file():
        return False, f"checkpoint file {plan.checkpoint_path} does not exist"
    needed = [
        f
        for f in plan.hub_files()
        if f.filename == "config.json"
        or f == plan.checkpoint
        or (plan.base_has_weights and f.filename.endswith((".safetensors", ".bin")))
    ]
    missing = [f for f in needed if cached_path(f.repo, f.filename) is None]
    if not missing:
        return True, f"{plan.label}: found locally" + (" (Hugging Face cache)" if needed else "")
    names = ", ".join(f"{f.repo}/{f.filename}" for f in missing)
    if hub_offline():
        return (
            False,
            f"{names} not in the local Hugging Face cache ({hf_cache_dir()}) and HF_HUB_OFFLINE is set",
        )
    if not probe:
        return False, f"{names} not in the local Hugging Face cache"
    ok, why = probe_urls([f.url for f in missing])
    if ok:
        return True, f"{plan.label}: will be downloaded from the model hub ({names})"
    return False, f"{names} not in the local Hugging Face cache and {why}"


def how_to_get(plan: WeightsPlan) -> str:
    """One sentence telling a person how to make ``plan`` available."""
    cmds = [
        f"hf download {f.repo} {f.filename}"
        for f in plan.hub_files()
        if f.filename == "config.json" or f == plan.checkpoint
    ]
    return (
        f"With internet access the weights download by themselves; otherwise fetch them once "
        f"({'; '.join(cmds) or 'see the README'}) into the Hugging Face cache (HF_HOME), or pass a local "
        f"checkpoint with --weights PATH. The offline lite encoder needs nothing: --encoder lite."
    )


# -------------------------------------------------------------------------------------- fetching
def _tqdm_reporting(report: Progress | None, what: str):
    """A tqdm class that forwards byte progress to ``report`` (huggingface_hub's ``tqdm_class``)."""
    from tqdm.auto import tqdm

    class Reporting(tqdm):  # type: ignore[misc, valid-type]
        def update(self, n=1):  # noqa: ANN001 - tqdm's signature
            out = super().update(n)
            if report is not None and self.total:
                report(f"downloading {what}", min(1.0, self.n / self.total))
            return out

    return Reporting


def file_sha256(
    path: str | Path, report: Progress | None = None, what: str = "", chunk: int = 1 << 22
) -> str:
    """Hex sha256 of a file, reporting progress (large checkpoints take seconds)."""
    size = max(1, os.path.getsize(path))
    digest, done = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
            done += len(block)
            if report is not None:
                report(f"checking the sha256 of {what or Path(path).name}", done / size)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str, what: str, report: Progress | None = None) -> str:
    """sha256 of ``path``; :class:`WeightsIntegrityError` when ``expected`` is known and differs."""
    actual = file_sha256(path, report, what)
    if expected and actual != expected.lower():
        raise WeightsIntegrityError(
            f"refusing {what}: its sha256 is {actual} but the tag's known value is {expected}. The file is "
            f"damaged or not the published one; delete it from the cache ({path}) and download it again."
        )
    if not expected:
        logger.info("%s: sha256 %s (no known value to compare with; recorded)", what, actual)
    return actual


def _download(repo: str, filename: str, report: Progress | None) -> str:
    from huggingface_hub import hf_hub_download

    return hf_hub_download(
        repo,
        filename,
        cache_dir=str(hf_cache_dir()),
        local_files_only=hub_offline(),
        tqdm_class=_tqdm_reporting(report, filename),
    )


def _snapshot(repo: str, files: tuple[str, ...], report: Progress | None) -> str:
    from huggingface_hub import snapshot_download

    if report is not None:
        report(f"fetching the config of {repo}", None)
    return snapshot_download(
        repo, allow_patterns=list(files), cache_dir=str(hf_cache_dir()), local_files_only=hub_offline()
    )


def fetch_weights(plan: WeightsPlan, report: Progress | None = None) -> ResolvedWeights:
    """Make every file of ``plan`` local (downloading into the hub cache when needed) and check sha256s.

    Raises :class:`WeightsUnavailableError` (with how to get them) when a file cannot be had and
    :class:`WeightsIntegrityError` when a file's sha256 differs from the known value."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        base_dir = (
            str(Path(plan.base).expanduser())
            if plan.base_is_local
            else _snapshot(plan.base, plan.base_files, report)
        )
        ckpt = plan.checkpoint_path or None
        if plan.checkpoint is not None:
            if report is not None:
                report(f"downloading {plan.checkpoint.filename}", None)
            ckpt = _download(plan.checkpoint.repo, plan.checkpoint.filename, report)
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise WeightsUnavailableError(
            f"the weights {plan.label} could not be had: {exc}. {how_to_get(plan)}"
        ) from None
    if not (Path(base_dir) / "config.json").is_file():
        raise WeightsUnavailableError(
            f"{plan.base} has no config.json (looked in {base_dir}). {how_to_get(plan)}"
        )
    notes: list[str] = []
    if ckpt is not None:
        sha = verify_sha256(ckpt, plan.expected_sha256, Path(ckpt).name if not plan.tag else plan.tag, report)
    else:
        weights = Path(base_dir) / "model.safetensors"
        sha = (
            verify_sha256(weights, plan.expected_sha256, plan.tag or weights.name, report)
            if weights.is_file()
            else ""
        )
        if not sha:
            notes.append(f"no model.safetensors in {base_dir}: sha256 unknown")
    return ResolvedWeights(plan, base_dir, ckpt, sha, notes)
