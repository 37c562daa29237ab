"""Read-only services shared by all users (encoder, galleries, benchmarks, curation); the small ``Session``.

``Services`` is built once by ``app.py``; the UI callbacks only read it: its state is behind read-only
properties, and only the start-up (``explorer.bootstrap``) changes it, through :meth:`Services.set_encoder`,
:meth:`Services.use_default_gallery` and :meth:`Services.add_gallery_folders`. It writes no folder of the data
folder (the jobs do, ``precompute``); it keeps only its caches. The page header is ``explorer.header``.
Per-user state is a ``Session`` kept in ``gr.State`` (a few strings, never images or arrays).

Galleries found on disk are untrusted input: a malformed manifest makes that gallery unavailable (with a
page-safe reason, ``gallery_problems``), never the app; which of their folders may be served is decided by
``explorer.served_files.ServedFiles`` (operator configuration), and ``Gallery.load`` verifies every file.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from covr_core.combiners import list_combiners
from covr_core.data_layout import demo_gallery_name
from covr_core.encoder import Encoder
from covr_core.factory import resolve_encoder_choice
from covr_core.gallery import Gallery
from covr_core.gallery_files import GalleryError
from covr_core.gallery_files import read_manifest as read_gallery_manifest
from covr_core.gallery_integrity import HashCache
from covr_core.media import ImageLimits, check_resize_budget
from covr_core.settings import AppOptions, Settings, app_options_from_env, load_settings
from covr_core.types import EncoderInfo, QueryEmbeddings
from explorer.browse import (
    Benchmark,
    benchmark_combiner_names,
    benchmark_stamp,
    find_benchmarks,
    load_benchmark,
)
from explorer.curation import CurationStores
from explorer.export import manifest_hash
from explorer.filter_view import find_filter_runs
from explorer.near_duplicates import NearDuplicateFinder
from explorer.safety import public_message
from explorer.served_files import ServedFiles
from explorer.startup import NotReadyError, Startup
from explorer.visitors import load_secret, on_space

if TYPE_CHECKING:
    from covr_core.combiners import MLPCombiner
    from covr_core.factory import EncoderChoice

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
        encoder: Encoder | None,
        settings: Settings,
        default_gallery: str,
        extra_galleries: Sequence[Path] | None = None,
        mlp: MLPCombiner | None = None,
        encoder_reason: str = "",
        startup: Startup | None = None,
        choice: EncoderChoice | None = None,
        options: AppOptions | None = None,
    ):
        self.settings = settings
        self.data_dir = Path(settings.data_dir).resolve()
        self._default_gallery = default_gallery
        self._extra_galleries = [Path(p).resolve() for p in extra_galleries or []]
        self._mlp = mlp
        self.encoder_reason = encoder_reason
        self.startup = startup or Startup()
        self.choice = choice  #: the encoder being loaded (:meth:`create`); None for a ready encoder
        self.options = options  #: the app's options (:meth:`create`); None for a ready encoder
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
        self._encoder: Encoder | None = None
        self._encode_lock = threading.Lock()  #: one encoder pass at a time (the pool's worker threads share it)
        self._galleries: dict[str, Gallery] = {}
        self._benchmarks: dict[str, Benchmark] = {}
        self._lock = threading.RLock()
        if encoder is not None:
            self.set_encoder(encoder, mlp)
            self.startup.mark_ready()
            self.startup.mark_done()

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def create(cls, options: AppOptions | None = None, choice: EncoderChoice | None = None) -> "Services":
        """Decide the encoder (fast: local files, or one bounded hub probe) and return services that are
        not ready yet; ``explorer.bootstrap.run_startup`` does the slow part while the page is served.

        Raises at once (ValueError / WeightsUnavailableError) for an unknown encoder or tag, or an explicitly
        requested BLIP encoder whose weights cannot be had. ``choice``: an already resolved EncoderChoice."""
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
        return cls(None, settings, default, extra_galleries=extra, encoder_reason=choice.reason,
                   startup=Startup(startup_steps(options, choice.family)), choice=choice, options=options)

    # ---- start-up (explorer.bootstrap): the only writers of the state below ------------------------------
    def set_encoder(self, encoder: Encoder, mlp: MLPCombiner | None = None) -> None:
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
        self._mlp = mlp
        self._encoder = enc

    def use_default_gallery(self, name: str) -> None:
        """Make ``name`` the gallery searched by default (the demo gallery when the configured one fails)."""
        self._default_gallery = name

    def add_gallery_folders(self, folders: Sequence[Path]) -> None:
        """Add verified gallery folders outside the data folder (``COVR_GALLERY_DIRS``) to the listing."""
        for folder in (Path(f).resolve() for f in folders):
            if folder not in self._extra_galleries:
                self._extra_galleries.append(folder)

    # ---- read-only state -------------------------------------------------------------------------------
    @property
    def default_gallery(self) -> str:
        """The gallery searched when none is chosen."""
        return self._default_gallery

    @property
    def extra_galleries(self) -> tuple[Path, ...]:
        """Gallery folders outside ``<data>/galleries/`` (``--gallery DIR``, ``COVR_GALLERY_DIRS``)."""
        return tuple(self._extra_galleries)

    @property
    def mlp(self) -> MLPCombiner | None:
        """The trained MLP combiner, if any."""
        return self._mlp

    @property
    def encoder(self) -> Encoder:
        """The encoder (a ``GpuEncoder``); ``NotReadyError`` until start-up made search ready."""
        self.startup.require_ready()
        if self._encoder is None:
            raise NotReadyError("The encoder is not loaded.")
        return self._encoder

    # ---- encoder ------------------------------------------------------------------------------------
    @property
    def encoder_unchecked(self) -> Encoder | None:
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

    def encode_query(self, image: Any, text: str, key: str | None = None) -> QueryEmbeddings:
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

    def get_gallery(self, name: str | None = None) -> Gallery:
        """Load (once, verifying every file) and return a gallery by name; ``KeyError`` for unknown names,
        ``GalleryError`` (page-safe message) for unusable ones, ``NotReadyError`` during start-up."""
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
        seen: list[str] = []
        for folder in find_benchmarks(self.data_dir).values():
            seen.extend(c for c in benchmark_combiner_names(folder) if c not in seen)
        order = {c: i for i, c in enumerate(dict.fromkeys(["NA", "AVG", "MLP", *list_combiners(None)]))}
        return sorted(seen, key=lambda c: order.get(c, len(order)))

    def filter_run_names(self) -> list[str]:
        """WebVid filter runs under ``<data>/webvid_filter/`` (re-scanned on each call)."""
        return list(find_filter_runs(self.data_dir))

    def gallery_for_benchmark(self, bench: Benchmark) -> str:
        """Name of the gallery a benchmark was evaluated on (the default one when unknown)."""
        folder = bench.gallery_folder
        for name, entry in self.gallery_entries().items():
            if folder is not None and entry.folder == folder.resolve():
                return name
        gname = (bench.info.get("gallery_manifest") or {}).get("name")
        return gname if gname in self.gallery_entries() else self.default_gallery

def _manifest_stat(folder: Path) -> tuple:
    """What changes when a gallery is replaced (its manifest's size, mtime and inode)."""
    try:
        st = (folder / "manifest.json").stat()
        return (st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError:
        return ()
