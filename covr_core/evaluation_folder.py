"""An evaluation folder: every combiner's outcome per query and its metrics, for one benchmark run.

Folder layout (docs/ARCHITECTURE.md), written by ``precompute.evaluate`` (the app finds them under
``<data>/evaluations/<name>/``):

- ``per_query.parquet``: one row per (query, combiner), columns :data:`PER_QUERY_COLUMNS` (``rank`` is 1-based,
  null without a labelled target; ``top_ids`` / ``top_scores`` are equal-length lists; ``w_*`` the weights);
- ``metrics.json``: ``{"info": {...}, "results": {combiner: {metric: value}}}``; ``info`` names the
  ``queries`` and ``gallery`` folders (paths, relative ones resolved from the evaluation folder upwards), the
  ``benchmark`` (``cirr`` / ``webvid``), the ``combiners`` and how the run was made;
- ``metrics.md`` / ``metrics.csv`` / ``metrics.tex`` (:data:`REPORT_FILES`): the tables of a labelled run;
- ``submissions/<combiner>/<file>``: CIRR test1 submission files (no targets).

``save`` is atomic (``covr_core.atomic.atomic_folder``): a failed run leaves nothing and an earlier run stays.
``load`` treats the folder as untrusted (it may come from a Hugging Face repo): a damaged table, a missing
column, wrong types or lists of unequal length raise :class:`EvaluationError` (a ``ValueError``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from covr_core.atomic import atomic_folder
from covr_core.json_file import read_json_object
from covr_core.query_folder import QueryFolderError, QuerySet, read_table
from covr_core.types import WEIGHT_NAMES

__all__ = ["Evaluation", "EvaluationError"]
logger = logging.getLogger(__name__)

PER_QUERY_FILE, METRICS_FILE, SUBMISSIONS_DIR = "per_query.parquet", "metrics.json", "submissions"
REPORT_FILES = ("metrics.md", "metrics.csv", "metrics.tex")
PER_QUERY_COLUMNS = ("query_id", "combiner", "reference", "target", "rank", "target_score", "top_ids", "top_scores",
                     *WEIGHT_NAMES)  # fmt: skip
REQUIRED_COLUMNS = tuple(c for c in PER_QUERY_COLUMNS if c != "target_score")  #: what every reader relies on
_LIST_COLUMNS = ("top_ids", "top_scores")
_NUMBER_COLUMNS = ("rank", *WEIGHT_NAMES)
_PATH_KEYS = ("queries", "gallery")  #: ``info`` keys that name folders


class EvaluationError(ValueError):
    """An evaluation folder is damaged or inconsistent, or an input to ``build`` is invalid."""


@dataclass
class Evaluation:
    """One evaluation run: the long per-query table, the ``info`` block and ``results`` of ``metrics.json``,
    and (when built by the job) the rendered tables and CIRR submission files it saves beside them."""

    per_query: pd.DataFrame
    info: dict[str, Any]
    results: dict[str, dict[str, Any]]
    folder: Path | None = None
    reports: dict[str, str] = field(default_factory=dict)  #: REPORT_FILES name -> text
    submissions: dict[str, dict[str, str]] = field(default_factory=dict)  #: combiner -> file name -> text

    # ------------------------------------------------------------------ build / save
    @classmethod
    def build(cls, per_query: pd.DataFrame, info: Mapping[str, Any],
              results: Mapping[str, Mapping[str, Any]] | None = None, *, reports: Mapping[str, str] | None = None,
              submissions: Mapping[str, Mapping[str, str]] | None = None) -> Evaluation:  # fmt: skip
        """An evaluation from its per-query table (:data:`REQUIRED_COLUMNS`), ``info`` and ``results``;
        ``reports``: texts of :data:`REPORT_FILES`; ``submissions``: combiner -> {file name: text}."""
        table = pa.Table.from_pandas(per_query, preserve_index=False)
        _check_per_query(table, "the per-query table")
        _check_info(dict(info), "info")
        unknown = sorted(set(reports or {}) - set(REPORT_FILES))
        if unknown:
            raise EvaluationError(f"unknown report file(s) {unknown}; expected {REPORT_FILES}")
        for combiner, files in (submissions or {}).items():
            for name in [combiner, *files]:
                if PurePosixPath(name).name != name or name in ("", ".", ".."):
                    raise EvaluationError(f"submission names must be plain file names, got {name!r}")
        return cls(per_query=per_query.reset_index(drop=True), info=dict(info),
                   results={k: dict(v) for k, v in (results or {}).items()}, reports=dict(reports or {}),
                   submissions={c: dict(f) for c, f in (submissions or {}).items()})  # fmt: skip

    @staticmethod
    def submission_path(combiner: str, file_name: str) -> str:
        """Where a submission file lies, relative to the evaluation folder (as listed in ``results``)."""
        return f"{SUBMISSIONS_DIR}/{combiner}/{file_name}"

    @property
    def report(self) -> dict[str, Any]:
        """The content of ``metrics.json``: ``{"info": ..., "results": ...}``."""
        return {"info": self.info, "results": self.results}

    def save(self, folder: str | Path) -> None:
        """Write the folder atomically: a temp sibling is filled, fsynced and swapped in; on any error nothing
        at ``folder`` changes."""
        folder = Path(folder)
        with atomic_folder(folder) as tmp:
            for combiner, files in self.submissions.items():
                for name, text in files.items():
                    path = tmp / self.submission_path(combiner, name)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text, encoding="utf-8")
            self.per_query.to_parquet(tmp / PER_QUERY_FILE, index=False)
            for name, text in self.reports.items():
                (tmp / name).write_text(text, encoding="utf-8")
            (tmp / METRICS_FILE).write_text(
                json.dumps(self.report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        self.folder = folder

    # ------------------------------------------------------------------ find / load
    @staticmethod
    def find(root: str | Path) -> dict[str, Path]:
        """Evaluation folders directly under ``root`` (e.g. ``<data>/evaluations``), name -> folder, sorted by
        name; hidden folders (an evaluation being written) are skipped."""
        root = Path(root)
        if not root.is_dir():
            return {}
        return {p.parent.name: p.parent for p in sorted(root.glob(f"*/{PER_QUERY_FILE}"))
                if not p.parent.name.startswith(".")}  # fmt: skip

    @staticmethod
    def exists(folder: str | Path) -> bool:
        """True when ``folder`` holds a finished evaluation (folders are swapped in whole)."""
        return (Path(folder) / PER_QUERY_FILE).is_file()

    @staticmethod
    def stamp(folder: str | Path) -> tuple:
        """Changes when the folder is rewritten: modification times and sizes of its table and metrics."""
        out = []
        for name in (PER_QUERY_FILE, METRICS_FILE):
            try:
                st = (Path(folder) / name).stat()
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    @staticmethod
    def read_report(folder: str | Path) -> dict[str, Any]:
        """``metrics.json`` checked (an object whose ``info`` and ``results`` are objects); a folder without
        one gives empty blocks."""
        path = Path(folder) / METRICS_FILE
        if not path.is_file():
            return {"info": {}, "results": {}}
        report = read_json_object(path, EvaluationError, f"{path} is missing")
        for key in ("info", "results"):
            report.setdefault(key, {})
            if not isinstance(report[key], dict):
                raise EvaluationError(f"{path}: {key!r} must be an object")
        _check_info(report["info"], str(path))
        return report

    @classmethod
    def load(cls, folder: str | Path, columns: Sequence[str] | None = None) -> Evaluation:
        """Open an evaluation folder: ``metrics.json`` and the per-query table (only ``columns`` when given),
        both checked."""
        folder = Path(folder)
        report = cls.read_report(folder)
        path = folder / PER_QUERY_FILE
        if not path.is_file():
            raise EvaluationError(f"{path} is missing: not an evaluation folder")
        try:
            table = pq.read_table(path, columns=list(columns) if columns else None)
        except Exception as exc:  # pyarrow raises several types for damaged files or unknown columns
            raise EvaluationError(f"{path} is corrupt or lacks columns ({type(exc).__name__}: {exc})") from exc
        _check_per_query(table, str(path), columns or REQUIRED_COLUMNS)
        return cls(per_query=table.to_pandas(), info=report["info"], results=report["results"], folder=folder)

    @classmethod
    def combiner_names(cls, folder: str | Path) -> list[str]:
        """Combiners of an evaluation folder from ``info.combiners`` (the table's column when that is absent)."""
        try:
            names = cls.read_report(folder)["info"].get("combiners")
        except EvaluationError:
            names = None
        if names:
            return [str(n) for n in names]
        return list(dict.fromkeys(cls.load(folder, columns=["combiner"]).per_query["combiner"].astype(str)))

    # ------------------------------------------------------------------ use
    @property
    def combiners(self) -> list[str]:
        """Combiners evaluated, in table order."""
        return list(dict.fromkeys(self.per_query["combiner"].astype(str)))

    @property
    def gallery_folder(self) -> Path | None:
        """The gallery folder the run used (None when not recorded or not found)."""
        return self._linked("gallery")

    @property
    def queries_folder(self) -> Path | None:
        """The queries folder the run used (None when not recorded or not found)."""
        return self._linked("queries")

    def _linked(self, key: str) -> Path | None:
        value = self.info.get(key)
        if not value:
            return None
        path = Path(value)
        base = self.folder or Path.cwd()
        for cand in (path, base / path, base.parent / path, base.parent.parent / path):
            if cand.exists():
                return cand.resolve()
        return None

    def captions(self) -> dict[str, str]:
        """query_id -> modification text, from the queries folder the run names ({} when there is none; a
        damaged one is logged and skipped)."""
        qdir = self.queries_folder
        if qdir is None or not QuerySet.exists(qdir):
            return {}
        try:
            table = read_table(qdir, columns=["query_id", "caption"])
        except QueryFolderError as exc:
            logger.warning("no captions for evaluation %s: %s", self.folder, exc)
            return {}
        return dict(zip(table["query_id"].astype(str), table["caption"].astype(str)))


def _check_info(info: dict, where: str) -> None:
    """Folder links are text; ``combiners`` a list of text."""
    bad = [k for k in _PATH_KEYS if info.get(k) is not None and not isinstance(info[k], str)]
    combiners = info.get("combiners")
    if combiners is not None and not (isinstance(combiners, list) and all(isinstance(c, str) for c in combiners)):
        bad.append("combiners")
    if bad:
        raise EvaluationError(f"{where}: info {bad} have the wrong type (folders are text, combiners a list)")


def _check_per_query(table: pa.Table, where: str, columns: Sequence[str] = REQUIRED_COLUMNS) -> None:
    """Required columns, numeric ranks and weights, list columns of equal length per row."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise EvaluationError(f"{where} lacks column(s) {missing}")
    types = {name: table.schema.field(name).type for name in table.column_names}
    wrong = [c for c in _NUMBER_COLUMNS if c in types and not (pa.types.is_integer(types[c])
             or pa.types.is_floating(types[c]) or pa.types.is_null(types[c]))]  # fmt: skip
    wrong += [c for c in _LIST_COLUMNS if c in types and not (pa.types.is_list(types[c])
              or pa.types.is_large_list(types[c]))]  # fmt: skip
    if wrong:
        raise EvaluationError(f"{where}: column(s) {wrong} have the wrong type (numbers; lists for top_ids/top_scores)")
    if all(c in types for c in _LIST_COLUMNS):
        lengths = [pc.list_value_length(table[c]) for c in _LIST_COLUMNS]
        if pc.all(pc.equal(*lengths)).as_py() is False:
            raise EvaluationError(f"{where}: top_ids and top_scores differ in length")
