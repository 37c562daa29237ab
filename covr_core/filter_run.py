"""A WebVid filter run: the study's Table 4 counts of the author / category filter and its per-rule CSVs.

Folder layout (docs/DATA_FORMATS.md), written by ``precompute.filter_webvid`` (the app finds runs under
``<data>/webvid_filter/<name>/``), per input CSV ``<stem>.csv``:

- ``<stem>_<rule>.csv`` for each rule of :data:`RULES`: the input rows the rule keeps, original columns untouched
  (streamed by the job in chunks; :func:`rule_csv_path` names them);
- ``stats.md``: Table 4 in Markdown (dataset | target videos | triplets | query videos);
- ``stats.json``: ``{"stats": {stem: {row: {target_videos, triplets, query_videos}}}, "inputs": [...], "map": ...,
  "warnings": [...], ...}`` with the rows :data:`TABLE4_ROWS` (every triplet, then each rule) and whole counts.

The job renames every rule CSV into place before ``save`` writes ``stats.md`` and then ``stats.json`` (each
atomic), and :meth:`FilterRun.clear` removes ``stats.json`` before a rerun: a folder with ``stats.json`` is a
finished run. ``load`` treats the folder as untrusted input (a download, a hand-made fixture): a damaged
``stats.json``, an unknown rule, a count that is not a whole number >= 0 or a missing rule CSV raise
:class:`FilterRunError` (a ``ValueError``) naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from covr_core.atomic import atomic_write_json, atomic_write_text
from covr_core.json_file import read_json_object

__all__ = ["FilterRun", "FilterRunError"]

STATS_FILE, MARKDOWN_FILE = "stats.json", "stats.md"
RULES = ("same-author", "same-category", "same-author-or-category")  #: the study's three rules (§4)
TABLE4_ROWS = ("all", *RULES)  #: Table 4's rows per input CSV: every triplet, then each rule
COUNTS = ("target_videos", "triplets", "query_videos")  #: Table 4's counts per row
TABLE4_HEAD = ("dataset", "target videos", "triplets", "query videos")
RULE_LABELS = {"all": "WebVid-CoVR ({name})", "same-author": "same author", "same-category": "same category",
               "same-author-or-category": 'same author or category ("F")'}  # fmt: skip
REBUILD_HINT = "rerun python -m precompute.filter_webvid (see --help)"

Stats = dict[str, dict[str, dict[str, int]]]  #: input CSV stem -> Table 4 row -> count name -> count


class FilterRunError(ValueError):
    """A filter run folder is missing, damaged or inconsistent, or an input to ``build`` is invalid."""


def rule_csv_path(folder: str | Path, stem: str, rule: str) -> Path:
    """Where the job writes the rows of input CSV ``<stem>.csv`` that ``rule`` (one of :data:`RULES`) keeps."""
    if rule not in RULES:
        raise FilterRunError(f"unknown filter rule {rule!r} (rules: {list(RULES)})")
    return Path(folder) / f"{stem}_{rule}.csv"


def table4(stats: Stats) -> list[tuple[str, int, int, int]]:
    """The study's Table 4 rows (dataset label, target videos, triplets, query videos) of checked statistics."""
    return [(RULE_LABELS[row].format(name=name), *(per[row][c] for c in COUNTS))  # type: ignore[misc]
            for name, per in stats.items() for row in TABLE4_ROWS]  # fmt: skip


def stats_markdown(stats: Stats) -> str:
    """Table 4 in Markdown (the text of ``stats.md``), counts with thousands separators."""
    lines = [f"| {' | '.join(TABLE4_HEAD)} |", "|---|---|---|---|"]
    lines += [f"| {label} | {target:,} | {triplets:,} | {query:,} |"
              for label, target, triplets, query in table4(stats)]  # fmt: skip
    return "\n".join(lines) + "\n"


@dataclass
class FilterRun:
    """One filter run: ``record`` is ``stats.json`` as a whole (``stats``, ``inputs``, ``map``, ``warnings``...)."""

    record: dict[str, Any]
    folder: Path | None = None

    # ------------------------------------------------------------------ build / save
    @classmethod
    def build(cls, stats: Stats, **details: Any) -> FilterRun:
        """A run from its Table 4 ``stats`` and the job's ``details`` (``inputs``, ``map``, ``warnings``, timings,
        provenance; kept in this order after ``stats`` in ``stats.json``), checked like a loaded one."""
        record = {"stats": stats, **details}
        _check_record(record, "the filter statistics")
        return cls(record=record)

    @staticmethod
    def clear(folder: str | Path) -> None:
        """Remove ``stats.json`` (the finished-run mark) before a job rewrites the folder's rule CSVs."""
        (Path(folder) / STATS_FILE).unlink(missing_ok=True)

    def save(self, folder: str | Path) -> None:
        """Write ``stats.md`` and then ``stats.json`` into ``folder`` (each atomic); the rule CSVs must be there."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / MARKDOWN_FILE, self.markdown)
        atomic_write_json(folder / STATS_FILE, self.record)
        self.folder = folder

    # ------------------------------------------------------------------ find / load
    @staticmethod
    def exists(folder: str | Path) -> bool:
        """True when ``folder`` holds a finished filter run (``stats.json``; checked on ``load``)."""
        return (Path(folder) / STATS_FILE).is_file()

    @staticmethod
    def find(root: str | Path) -> dict[str, Path]:
        """Filter runs under ``root`` (e.g. ``<data>/webvid_filter``), name -> folder: ``root`` itself first when
        a run was written straight into it, then ``<root>/<name>/`` sorted by name; hidden folders are skipped."""
        root = Path(root)
        if not root.is_dir():
            return {}
        runs = {p.parent.name: p.parent for p in sorted(root.glob(f"*/{STATS_FILE}"))
                if not p.parent.name.startswith(".")}  # fmt: skip
        return {root.name: root, **runs} if FilterRun.exists(root) else runs

    @classmethod
    def load(cls, folder: str | Path) -> FilterRun:
        """Open a filter run and check it: ``stats.json`` (types, known rules, whole counts >= 0, warnings as
        text) and every rule CSV it counts."""
        folder = Path(folder)
        path = folder / STATS_FILE
        record = read_json_object(
            path, FilterRunError, f"{folder} is not a finished filter run: {STATS_FILE} is missing; {REBUILD_HINT}",
            REBUILD_HINT)
        _check_record(record, str(path))
        run = cls(record=record, folder=folder)
        for stem in run.stats:
            for rule in RULES:
                if not run.rule_csv(stem, rule).is_file():
                    raise FilterRunError(f"{run.rule_csv(stem, rule)} is missing but {path} counts it; {REBUILD_HINT}")
        return run

    # ------------------------------------------------------------------ use
    @property
    def stats(self) -> Stats:
        """Input CSV stem -> Table 4 row (:data:`TABLE4_ROWS`) -> ``target_videos``, ``triplets``, ``query_videos``."""
        return self.record["stats"]

    @property
    def warnings(self) -> list[str]:
        """Problems the job met in the CleanVid map (e.g. single-quoted rows), as sentences."""
        return list(self.record.get("warnings", []))

    @property
    def inputs(self) -> list[Path]:
        """The input CSVs as the job was given them (they may since have moved)."""
        return [Path(p) for p in self.record.get("inputs", [])]

    @property
    def markdown(self) -> str:
        """Table 4 in Markdown (what ``stats.md`` holds)."""
        return stats_markdown(self.stats)

    def rule_csv(self, stem: str, rule: str) -> Path:
        """The rule CSV of input ``<stem>.csv`` in this run's folder."""
        if self.folder is None:
            raise FilterRunError("this filter run has no folder yet: save it first")
        return rule_csv_path(self.folder, stem, rule)


def _check_record(record: Any, where: str) -> None:
    """An object whose ``stats`` maps file stems to every Table 4 row of whole counts >= 0; ``warnings`` and
    ``inputs`` lists of text."""
    if not isinstance(record, dict):
        raise FilterRunError(f"{where}: expected a JSON object, got {type(record).__name__}")
    stats = record.get("stats")
    if not isinstance(stats, Mapping):
        raise FilterRunError(f"{where}: 'stats' must be an object (input CSV -> rule -> counts); {REBUILD_HINT}")
    for stem, per in stats.items():
        if not isinstance(per, Mapping):
            raise FilterRunError(f"{where}: stats[{stem!r}] must be an object of rules")
        if not stem or any(c in stem for c in "/\\\0"):  # names a file in the folder, never a path out of it
            raise FilterRunError(f"{where}: {stem!r} is not an input CSV's name (a file name without folders)")
        unknown = [r for r in per if r not in TABLE4_ROWS]
        missing = [r for r in TABLE4_ROWS if r not in per]
        if unknown or missing:
            raise FilterRunError(f"{where}: stats[{stem!r}] has unknown rule(s) {unknown} / lacks {missing} "
                                 f"(rules: {list(TABLE4_ROWS)})")  # fmt: skip
        for row in TABLE4_ROWS:
            counts = per[row]
            if not isinstance(counts, Mapping):
                raise FilterRunError(f"{where}: stats[{stem!r}][{row!r}] must be an object of counts")
            for key in COUNTS:
                value = counts.get(key)
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise FilterRunError(f"{where}: stats[{stem!r}][{row!r}][{key!r}] must be a whole number >= 0, "
                                         f"got {value!r}")  # fmt: skip
    for key in ("warnings", "inputs"):
        value = record.get(key, [])
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise FilterRunError(f"{where}: {key!r} must be a list of text")
