"""Which files the web server may serve: decided by the operator's configuration, never by a manifest.

Gallery folders come from disk (``<data>/galleries/*``, downloads that appear while the app runs, ``--gallery``
folders) and their manifests are untrusted. The policy (``ServedFiles``) decides, after ``resolve()``:

* **configured roots** (operator configuration): the data folder, the ``COVR_MEDIA_ROOTS`` folders, the
  ``--gallery`` folders, and the bundled ``assets/images`` and ``assets/videos``;
* a gallery's **served folders**: its ``thumbs/`` and ``frames/`` when they stay inside the gallery folder (a
  symlink out is refused), and its media root when that lies inside a configured root, is not the data
  folder, does not contain a gallery folder, and is not (inside) one of the app's own folders there
  (``galleries/`` except the gallery's own sub-folders, ``curated/``, ``cache/``, ``queries/``,
  ``evaluations/``); the bundled demo gallery's media root (``assets/``) serves only the bundled media
  folders, never ``README.md`` or the CSV files. A gallery breaking a rule is unavailable; its
  ``problem`` says why without naming server paths (the log names them).

:class:`ServedFilesGuard` (ASGI middleware) applies the policy to every ``/gradio_api/file=`` request, after
Gradio's own ``allowed_paths`` check and independently of it: a registered folder whose path resolves
elsewhere than when it was checked (a symlink swapped in later) serves nothing, http(s) URLs are never
proxied, and file uploads are rate-limited per client address.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"
BUNDLED_MEDIA = (ASSETS_DIR / "images", ASSETS_DIR / "videos")
#: Folders of the data folder that the app itself writes; media may not be served from them.
APP_FOLDERS = ("galleries", "curated", "cache", "queries", "evaluations")
GALLERY_SUBFOLDERS = ("thumbs", "frames")
FILE_ROUTES = ("/gradio_api/file=", "/file=")
UPLOAD_ROUTE = "/gradio_api/upload"
MAX_REMEMBERED_WARNINGS = 1000  #: refusals logged once each; past this many distinct ones, every time


def within(path: Path, root: Path) -> bool:
    """True when ``path`` equals ``root`` or lies below it (both already resolved)."""
    return path == root or root in path.parents


@dataclass(frozen=True)
class GalleryFolders:
    """The folders of one gallery that may be served, or why the gallery is unavailable."""

    folders: tuple[Path, ...] = ()
    problem: str = ""  #: page-safe reason (no server paths); empty when the gallery is fine


class ServedFiles:
    """The operator's file-serving policy and the folders registered under it (thread-safe)."""

    def __init__(self, data_dir: str | Path, media_roots: Iterable[str | Path] = (),
                 gallery_folders: Iterable[str | Path] = (), static_files: Iterable[str | Path] = ()):  # fmt: skip
        self.data_dir = Path(data_dir).resolve()
        self.media_roots = tuple(Path(p).resolve() for p in media_roots)
        self.extra_galleries = tuple(Path(p).resolve() for p in gallery_folders)
        self.static_files = [Path(p).resolve() for p in static_files]
        self.bundled = tuple(p.resolve() for p in BUNDLED_MEDIA)
        self._lock = threading.Lock()
        self._registered: dict[Path, Path] = {}  #: unresolved folder -> its resolved path when checked
        self._listeners: list[Callable[[list[Path]], None]] = []
        self._warned: set[str] = set()  #: refusals already logged

    # ------------------------------------------------------------------ rules
    def _warn(self, message: str, *args: Any) -> None:
        """Log a refusal once per distinct message (galleries are re-scanned on every page load)."""
        key = message % args
        with self._lock:
            if key in self._warned:
                return
            if len(self._warned) < MAX_REMEMBERED_WARNINGS:
                self._warned.add(key)
        log.warning("%s", key)

    def configured_roots(self) -> tuple[Path, ...]:
        """Folders the operator configured; nothing outside them is ever served."""
        return (self.data_dir, *self.media_roots, *self.extra_galleries, *self.bundled)

    def _private(self) -> tuple[Path, ...]:
        return tuple(self.data_dir / name for name in APP_FOLDERS)

    def gallery_folder_problem(self, folder: Path) -> str:
        """Why a gallery folder itself may not be used ('' when it may)."""
        real = folder.resolve()
        homes = (self.data_dir / "galleries", *self.media_roots)
        if real in self.extra_galleries or any(home in real.parents for home in homes):
            return ""
        self._warn("gallery folder %s resolves to %s, outside the configured folders", folder, real)
        return "its folder is a link to a place outside the folders this server is configured to read"

    def media_root_problem(self, gallery_folder: Path, media_root: Path) -> str:
        """Why a (resolved) media root may not be served ('' when it may)."""
        gal = gallery_folder.resolve()
        if not any(within(media_root, root) for root in self.configured_roots()):
            return ("its manifest puts the media outside the folders this server may serve (the data folder "
                    "and COVR_MEDIA_ROOTS); the operator can add the media folder to COVR_MEDIA_ROOTS")  # fmt: skip
        if within(gal, media_root):
            return "its manifest's media root contains the gallery folder itself (index and manifest)"
        for private in self._private():
            if within(private, media_root):
                return "its manifest's media root contains the app's own folders"
            if within(media_root, private) and gal not in media_root.parents:
                return "its manifest's media root lies inside one of the app's own folders"
        return ""

    def folders_for(self, gallery_folder: str | Path, manifest: dict[str, Any]) -> GalleryFolders:
        """The served folders of a gallery (thumbs/, frames/, media root), or its problem."""
        folder = Path(gallery_folder)
        problem = self.gallery_folder_problem(folder)
        if problem:
            return GalleryFolders(problem=problem)
        real = folder.resolve()
        out: list[Path] = []
        for sub in GALLERY_SUBFOLDERS:
            p = folder / sub
            if p.is_symlink() or p.exists():
                if real not in p.resolve().parents:
                    self._warn("gallery %s: %s/ resolves to %s, outside the gallery", folder, sub, p.resolve())
                    return GalleryFolders(problem=f"its {sub}/ folder is a link leading out of the gallery folder")
                out.append(p)
        raw = manifest.get("media_root")
        if isinstance(raw, str) and raw:
            mr = Path(raw) if Path(raw).is_absolute() else folder / raw
            resolved = mr.resolve()
            if resolved == ASSETS_DIR.resolve():
                out.extend(BUNDLED_MEDIA)
            else:
                problem = self.media_root_problem(folder, resolved)
                if problem:
                    self._warn("gallery %s: media root %s (%s) refused: %s", folder, raw, resolved, problem)
                    return GalleryFolders(problem=problem)
                out.append(mr)
        return GalleryFolders(tuple(out))

    # ------------------------------------------------------------------ registry
    def allow_file(self, path: str | Path) -> None:
        """Serve this one file too (e.g. the bundled plotly.js)."""
        with self._lock:
            if Path(path).resolve() not in self.static_files:
                self.static_files.append(Path(path).resolve())

    def add_listener(self, fn: Callable[[list[Path]], None]) -> None:
        """Call ``fn(new_folders)`` whenever folders are registered (e.g. to tell Gradio about them)."""
        self._listeners.append(fn)

    def register(self, folders: Iterable[Path]) -> None:
        """Allow serving these folders (each remembered with its resolved path)."""
        new = []
        with self._lock:
            for f in folders:
                f = Path(os.path.abspath(f))
                if f not in self._registered:
                    self._registered[f] = f.resolve()
                    new.append(f)
        if new:
            for fn in self._listeners:
                fn(new)

    def folders(self) -> list[Path]:
        """Registered folders (resolved), the bundled media folders first."""
        with self._lock:
            regs = list(dict.fromkeys([*self.bundled, *self._registered.values()]))
        return regs

    def allows(self, path: str | Path) -> bool:
        """May the file at ``path`` be served? Only files inside a registered folder whose path still resolves
        where it did when it was checked, plus the explicitly listed static files."""
        target = Path(os.path.abspath(path)).resolve()
        with self._lock:
            regs = list(self._registered.items())
            if target in self.static_files:
                return True
        for folder in self.bundled:
            if folder in target.parents:
                return True
        for raw, real in regs:
            if real in target.parents and raw.resolve() == real:
                return True
        return False


class ServedFilesGuard:
    """ASGI middleware: the file route serves only what ``policy`` allows (plus Gradio's upload folder), never
    proxies URLs, and uploads are rate-limited per client (``upload_limiter(client) -> seconds to wait``)."""

    def __init__(self, app: Any, policy: ServedFiles, upload_dir: str | Path,
                 upload_limiter: Callable[[str], float] | None = None,
                 client_of: Callable[[dict], str] | None = None):  # fmt: skip
        self.app = app
        self.policy = policy
        self.upload_dir = Path(upload_dir).resolve()
        self.upload_limiter = upload_limiter
        self.client_of = client_of or (lambda scope: str((scope.get("client") or ("?",))[0]))

    def allows_target(self, target: str) -> bool:
        """The decision for the part of a file URL after ``file=``."""
        if "://" in target or target.startswith("//"):
            return False
        try:
            real = Path(os.path.abspath(target)).resolve()
        except (OSError, ValueError):
            return False
        return self.upload_dir in real.parents or self.policy.allows(real)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            path = str(scope.get("path", ""))
            for route in FILE_ROUTES:
                if path.startswith(route) and not self.allows_target(path[len(route):]):
                    return await _plain(send, 403, "File not allowed.")
            if self.upload_limiter and scope.get("method") == "POST" and path.rstrip("/") == UPLOAD_ROUTE:
                wait = self.upload_limiter(self.client_of(scope))
                if wait > 0:
                    return await _plain(send, 429, f"Too many uploads; try again in {wait:.0f} s.",
                                        {"retry-after": str(int(wait) + 1)})  # fmt: skip
        await self.app(scope, receive, send)


async def _plain(send: Any, status: int, text: str, headers: dict[str, str] | None = None) -> None:
    body = text.encode()
    raw = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
