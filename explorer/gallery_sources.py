"""Galleries that do not live in the data folder: a Hugging Face dataset repo, or a mounted read-only volume.

``COVR_GALLERY_REPO=<owner>/<dataset>`` (optionally ``@<revision>``): at start the repo is fetched with
``snapshot_download`` (the Hugging Face cache, ``HF_HOME``) and every gallery folder in it
(``galleries/<name>/``, ``<name>/`` or the repo root, each with a ``manifest.json``) is checked with
:func:`verify_gallery` and linked into ``<data>/galleries/<name>/`` (hard links; copies across file
systems), with the repo's ``evaluations/<name>/`` next to them. ``COVR_GALLERY_DIRS`` names folders (a
mounted bucket or dataset: read-only) whose gallery folders are used in place after the same check.

Nothing read from a hub or a mount is trusted: a folder that fails :func:`verify_gallery` is skipped
with its reason, and a repo that does not exist or holds no valid gallery gives one clear message; the
bundled demo gallery works either way.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from covr_core.data_layout import EVALUATIONS
from covr_core.pretrained import hf_cache_dir, hub_offline

log = logging.getLogger(__name__)

REPO_ENV = "COVR_GALLERY_REPO"
DIRS_ENV = "COVR_GALLERY_DIRS"
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}(@[\w./-]{1,100})?$")
MAX_LISTED = 256  #: at most this many gallery folders are taken from one source


@dataclass
class SourceReport:
    """What one source gave: usable gallery folders and the reasons others were skipped."""

    source: str
    galleries: list[Path] = field(default_factory=list)
    evaluations: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  #: "name: reason"
    error: str = ""  #: why the source gave nothing at all ("" when it worked)

    def message(self) -> str:
        """One line for the start-up panel."""
        if self.error:
            return f"{self.source}: {self.error}"
        names = ", ".join(p.name for p in self.galleries) or "none"
        skipped = f"; skipped {len(self.skipped)} ({'; '.join(self.skipped[:3])})" if self.skipped else ""
        return f"{self.source}: {len(self.galleries)} galleries ({names}){skipped}"


def verify_gallery(folder: Path, encoder_info: Any, root: Path | None = None) -> None:
    """The one integrity check for galleries from outside (raises ``GalleryError`` with the reason).

    Everything ``Gallery.load`` checks (files, shapes, ids, index, and the encoder: name, version, dim,
    checkpoint) plus the embeddings' sha256 against the manifest (``verify=True``); stronger checks
    added to ``Gallery.load`` apply here automatically. The manifest's ``media_root`` must stay inside
    ``root`` (default: the gallery folder): the server serves that folder, so a manifest naming ``/`` or
    ``../..`` is refused."""
    from covr_core.gallery import Gallery, GalleryError

    gallery = Gallery.load(folder, expected=encoder_info, verify=True)
    media_root = str(gallery.manifest.get("media_root") or ".")
    base = Path(root or folder).resolve()
    target = (folder / media_root).resolve()
    if Path(media_root).is_absolute() or not target.is_relative_to(base):
        raise GalleryError(f"its media_root {media_root!r} points outside the gallery; refused")


def find_gallery_folders(root: Path) -> list[Path]:
    """Gallery folders (holding ``manifest.json``) under ``root``: itself, ``galleries/*``, or ``*``."""
    if (root / "manifest.json").is_file():
        return [root]
    found = sorted(p.parent for p in root.glob("galleries/*/manifest.json"))
    found += sorted(p.parent for p in root.glob("*/manifest.json") if p.parent.name != "galleries")
    return [p for p in found if not p.name.startswith(".")][:MAX_LISTED]


def parse_repo(value: str) -> tuple[str, str | None]:
    """``owner/name[@revision]`` -> (repo id, revision); ``ValueError`` for anything else."""
    value = value.strip()
    if not _REPO_RE.match(value):
        raise ValueError(
            f"{REPO_ENV}={value!r} is not a dataset repo id like owner/name (optionally @revision)"
        )
    repo, _, rev = value.partition("@")
    return repo, rev or None


def _link_tree(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` (a fresh folder) as hard links to the real files where possible."""

    def link_or_copy(a: str, b: str) -> None:
        real = os.path.realpath(a)
        try:
            os.link(real, b)
        except OSError:
            shutil.copy2(real, b)

    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, symlinks=False, copy_function=link_or_copy)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)


def fetch_repo_galleries(
    value: str, data_dir: Path, encoder_info: Any, report: Callable[[str, float | None], None] | None = None
) -> SourceReport:
    """Download ``owner/name[@rev]`` (a dataset repo) and link its valid galleries into ``data_dir``."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from covr_core.evaluation_folder import Evaluation, EvaluationError
    from covr_core.gallery import GalleryError

    out = SourceReport(f"gallery repo {value}")
    try:
        repo, revision = parse_repo(value)
    except ValueError as exc:
        out.error = str(exc)
        return out
    if report:
        report(f"downloading the dataset repo {repo}", None)
    try:
        snap = Path(
            snapshot_download(
                repo,
                repo_type="dataset",
                revision=revision,
                cache_dir=str(hf_cache_dir()),
                local_files_only=hub_offline(),
            )
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        why = "not in the local Hugging Face cache and HF_HUB_OFFLINE is set" if hub_offline() else str(exc)
        out.error = f"could not be downloaded ({type(exc).__name__}: {why.splitlines()[0][:300]})"
        return out
    folders = find_gallery_folders(snap)
    for i, folder in enumerate(folders):
        if report:
            report(f"checking gallery {folder.name} of {repo}", i / max(1, len(folders)))
        dest = data_dir / "galleries" / folder.name
        try:
            verify_gallery(folder, encoder_info)  # only the folder is linked: its media must be inside
            _link_tree(folder, dest)
            out.galleries.append(dest)
        except (GalleryError, OSError, ValueError) as exc:
            out.skipped.append(f"{folder.name}: {exc}")
    for name, ev in list(Evaluation.find(snap / EVALUATIONS).items())[:MAX_LISTED]:
        try:
            Evaluation.load(ev)  # checked like a gallery: a damaged one is skipped with its reason
        except (EvaluationError, OSError) as exc:
            out.skipped.append(f"evaluation {name}: {exc}")
            continue
        dest = data_dir / EVALUATIONS / name
        _link_tree(ev, dest)
        out.evaluations.append(dest)
    if not out.galleries:
        out.error = "holds no valid gallery" + (
            f" ({'; '.join(out.skipped[:3])})"
            if out.skipped
            else " (expected galleries/<name>/manifest.json)"
        )
    return out


def mounted_galleries(value: str, encoder_info: Any) -> SourceReport:
    """Gallery folders under the ``os.pathsep``-separated folders of ``value`` (used in place, read-only)."""
    from covr_core.gallery import GalleryError

    out = SourceReport(f"{DIRS_ENV}")
    for entry in filter(None, (v.strip() for v in value.split(os.pathsep))):
        root = Path(entry).expanduser()
        if not root.is_dir():
            out.skipped.append(f"{root}: not a folder")
            continue
        for folder in find_gallery_folders(root):
            try:
                verify_gallery(folder, encoder_info, root=root)
                out.galleries.append(folder.resolve())
            except (GalleryError, OSError, ValueError) as exc:
                out.skipped.append(f"{folder.name}: {exc}")
    if not out.galleries:
        out.error = "no valid gallery" + (f" ({'; '.join(out.skipped[:3])})" if out.skipped else "")
    return out
