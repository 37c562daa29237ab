"""Read-only services shared by all users (encoder, galleries, benchmarks, curation); the small ``Session``.

``Services`` is built once by ``app.py``; the UI callbacks only read it. Per-user state is a ``Session``
kept in ``gr.State`` (a few strings, never images or arrays).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from covr_core.settings import Settings, load_settings
from covr_core.types import EncoderInfo
from explorer.browse import Benchmark, benchmark_combiner_names, benchmark_stamp, find_benchmarks, load_benchmark
from explorer.curation import CurationStore
from explorer.export import manifest_hash
from explorer.near_duplicates import NearDuplicateFinder
from explorer.spaces import gpu

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


class Services:
    """Everything the UI reads: encoder, galleries, benchmarks, curated examples."""

    def __init__(
        self,
        encoder: Any,
        settings: Settings,
        default_gallery: str,
        extra_galleries: list[Path] | None = None,
        mlp: Any = None,
        encoder_reason: str = "",
    ):
        self.encoder = encoder
        self.settings = settings
        self.data_dir = Path(settings.data_dir).resolve()
        self.default_gallery = default_gallery
        self.extra_galleries = [Path(p).resolve() for p in extra_galleries or []]
        self.mlp = mlp
        self.encoder_reason = encoder_reason
        self.curation = CurationStore(self.data_dir / "curated")
        self.near_duplicates = NearDuplicateFinder()
        self.cache_dir = self.data_dir / "cache" / "app"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._galleries: dict[str, Any] = {}
        self._benchmarks: dict[str, Benchmark] = {}
        self._lock = threading.RLock()
        self._encode_lock = threading.Lock()

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        encoder: str = "auto",
        gallery: str | None = None,
        data_dir: str | Path | None = None,
        checkpoint: str | None = None,
        device: str = "cpu",
        mlp: str | Path | None = None,
        dtype: str = "float32",
    ) -> "Services":
        """Load the encoder, build the bundled demo gallery on first start, find galleries and benchmarks."""
        from covr_core.combiners import load_mlp_combiner
        from covr_core.factory import create_encoder, resolve_encoder_choice

        settings = load_settings()
        if data_dir is not None:
            settings = Settings(limits=settings.limits, data_dir=Path(data_dir))
        choice = resolve_encoder_choice(encoder)
        log.info("encoder %s (%s)", choice.name, choice.reason)
        enc = create_encoder(choice.name, checkpoint=checkpoint, device=device, dtype=dtype)
        # a --mlp file wins; else the MLP that came with a study-fork checkpoint (weight_predictor.* keys)
        mlp_model = load_mlp_combiner(mlp) if mlp else getattr(enc, "mlp", None)
        if mlp_model is not None and mlp_model.dim != enc.info.dim:
            raise ValueError(
                f"The MLP combiner expects {mlp_model.dim}-d embeddings but the {enc.info.name} encoder makes "
                f"{enc.info.dim}-d ones: train it on this encoder's queries (python -m precompute.train_combiner)."
            )
        extra = []
        default = f"demo-{enc.info.name}"
        if gallery:
            gpath = Path(gallery)
            if (gpath / "manifest.json").exists():
                extra.append(gpath)
                default = gpath.resolve().name
            else:
                default = gallery  # a name under <data>/galleries/
        svc = cls(enc, settings, default, extra_galleries=extra, mlp=mlp_model, encoder_reason=choice.reason)
        svc.ensure_demo_gallery()
        svc.ensure_demo_benchmarks()
        if default not in svc.gallery_entries():
            raise FileNotFoundError(f"gallery {gallery!r} not found (have {sorted(svc.gallery_entries())})")
        return svc

    def ensure_demo_gallery(self) -> Path:
        """Build the bundled demo gallery for this encoder under ``<data>/galleries/demo-<encoder>/`` once.

        A cached demo gallery built by another encoder version is rebuilt (with its mini-benchmark results).
        """
        import shutil

        from covr_core.gallery import Gallery, GalleryError

        folder = self.data_dir / "galleries" / f"demo-{self.info.name}"
        if (folder / "manifest.json").exists():
            try:
                Gallery.load(folder, expected=self.info)
            except GalleryError as exc:
                log.warning("rebuilding the cached demo gallery: %s", exc)
                shutil.rmtree(folder)
                for sub in ("queries", "evaluations"):
                    for stale in (self.data_dir / sub).glob(f"mini-*-{self.info.name}*"):
                        shutil.rmtree(stale, ignore_errors=True)
        if not (folder / "manifest.json").exists():
            from precompute.gallery import build_demo_gallery

            t0 = time.perf_counter()
            log.info("building the demo gallery in %s (first start)", folder)

            def progress(done: int, total: int) -> None:
                if total and (done == total or done % 16 == 0):
                    log.info("demo gallery: %d/%d items encoded", done, total)

            build_demo_gallery(self.encoder, folder, on_progress=progress)
            log.info("demo gallery built in %.1f s", time.perf_counter() - t0)
        if not (folder / "umap.parquet").exists():
            try:
                from precompute.umap import run as umap_run

                t0 = time.perf_counter()
                umap_run(gallery=str(folder))
                log.info("demo gallery map computed in %.1f s", time.perf_counter() - t0)
            except Exception as exc:  # noqa: BLE001 - the map is optional
                log.warning("no map for the demo gallery: %s", exc)
        return folder

    def ensure_demo_benchmarks(self) -> list[str]:
        """Evaluate the bundled mini benchmark (CIRR and WebVid format) on the demo gallery once.

        Runs ``precompute.queries`` and ``precompute.evaluate`` into ``<data>/queries/`` and
        ``<data>/evaluations/``; a failure is logged and the Explore tab simply lists fewer benchmarks.
        """
        from precompute import evaluate, queries

        gallery = self.data_dir / "galleries" / f"demo-{self.info.name}"
        bench = ASSETS_DIR / "benchmark"
        plans = {
            "cirr": dict(dataset="cirr", root=str(bench / "cirr"), split="demo"),
            "webvid": dict(
                dataset="webvid",
                csv=str(bench / "webvid" / "webvid-covr_demo.csv"),
                video_root=str(ASSETS_DIR),
            ),
        }
        done = []
        for kind, plan in plans.items():
            name = f"mini-{kind}-{self.info.name}"
            out = self.data_dir / "evaluations" / name
            if (out / "per_query.parquet").exists():
                done.append(name)
                continue
            source = Path(plan.get("root") or plan.get("csv"))
            if not source.exists():
                continue
            qdir = self.data_dir / "queries" / name
            try:
                summary = queries.run(
                    out=qdir,
                    encoder=self.encoder,
                    device=self.info.device,
                    dtype="float32",
                    batch_size=16,
                    argv=["(app start)"],
                    **plan,
                )
                if not getattr(summary, "complete", True):
                    raise RuntimeError(summary.line())
                evaluate.run(queries=qdir, gallery=gallery, benchmark=kind, out=out, top_k=12)
                done.append(name)
            except Exception as exc:  # noqa: BLE001 - optional at start-up, the app works without it
                log.warning("mini benchmark %s not evaluated: %s", name, exc)
        return done

    # ---- encoder ------------------------------------------------------------------------------------
    @property
    def info(self) -> EncoderInfo:
        """The encoder's description (name, checkpoint, sha, device...)."""
        return self.encoder.info

    def combiners(self) -> list[str]:
        """Combiners really available (MLP only with trained weights)."""
        from covr_core.combiners import list_combiners

        return list(list_combiners(self.mlp))

    @gpu
    def prepare_reference(self, image: Any) -> str:
        """Encode and cache a reference image; returns its cache key."""
        with self._encode_lock:
            return self.encoder.prepare_reference(image)

    @gpu
    def encode_query(self, image: Any, text: str, key: str | None = None) -> Any:
        """The three query embeddings (the reference comes from the cache when prepared; ``key``, the key
        ``prepare_reference`` returned for ``image``, saves hashing it again)."""
        with self._encode_lock:
            return self.encoder.encode_query(image, text, key=key)

    # ---- galleries ----------------------------------------------------------------------------------
    def gallery_entries(self) -> dict[str, GalleryEntry]:
        """Gallery folders available now (re-scanned on each call: new folders appear without restart)."""
        return scan_galleries(self.data_dir, self.extra_galleries)

    def gallery_names(self) -> list[str]:
        """Gallery names for the dropdown: the default first."""
        names = sorted(self.gallery_entries())
        return sorted(names, key=lambda n: n != self.default_gallery)

    def get_gallery(self, name: str | None = None) -> Any:
        """Load (once) and return a gallery by name; raises ``KeyError`` for unknown names."""
        from covr_core.gallery import Gallery

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
    def header_markdown(self, gallery_name: str | None = None) -> str:
        """The always-visible header: encoder, checkpoint (name + short sha), gallery, device, lite banner."""
        info = self.info
        name = gallery_name or self.default_gallery
        try:
            gal = self.get_gallery(name)
            created = str(gal.manifest.get("created", ""))[:19].replace("T", " ")
            gtxt = f"`{name}` ({len(gal):,} items, built {created or 'unknown'})"
        except Exception as exc:  # noqa: BLE001 - shown in the header, never a stack trace
            gtxt = f"`{name}` (not loadable: {exc})"
        line = (
            f"**Encoder** `{info.name}` · **checkpoint** `{info.checkpoint}` (`{info.short_sha}`) · "
            f"**gallery** {gtxt} · **device** `{info.device}`"
        )
        if getattr(info, "backend", ""):  # what runs the image tower (covr_core.vision_backends), issue 15
            line += f" · **compute** `{info.backend} {info.dtype}`"
        if info.name == "lite":
            from covr_core.factory import HOW_TO_GET_BLIP

            why = (
                self.encoder_reason
                if HOW_TO_GET_BLIP in self.encoder_reason
                else f"{self.encoder_reason or 'lite encoder requested'}. {HOW_TO_GET_BLIP}"
            )
            line += (
                "\n\n> ⚠️ **Lite offline encoder**: small off-the-shelf image and text models, not CoVR; "
                "results "
                f"show how the app works, not CoVR's quality. {why} A CoVR checkpoint goes on top with "
                "`python app.py --encoder blip --checkpoint path/to/covr.ckpt`."
            )
        if info.note:
            line += f"\n\n*{info.note}*"
        return line
