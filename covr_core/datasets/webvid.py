"""WebVid-CoVR annotation reader (CSV: ``pth1, pth2, txt1, txt2, edit, scores, sim_txt, sim_vid, ...``).

The train CSV has 1.6M rows (437 MB), so it is read in chunks with pandas and every step is linear.
``scores`` (per-frame CLIP scores of the target, stored as the string ``"[0.1, 0.2]"``) is parsed with
``json.loads`` and, for non-JSON spellings, ``ast.literal_eval`` -- never ``eval``.
Video ids: ``pth`` is ``<folder>/<videoid>``; the video file is ``<root>/<pth>.mp4``.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from covr_core.datasets.registry import GALLERY_COLUMNS, QUERY_COLUMNS, DatasetSelection, ItemList

logger = logging.getLogger(__name__)

_HAS_DIGIT = re.compile(r"[0-9]")
_NON_DIGIT = re.compile(r"\D")
STRING_COLUMNS = ("pth1", "pth2", "txt1", "txt2", "edit")


def parse_scores(value: object) -> list[float]:
    """Parse a ``scores`` cell (``"[0.1, 0.2]"``) into floats; empty list for a missing cell.

    Raises ValueError on text that is neither JSON nor a Python literal list of numbers.
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value]
    text = str(value).strip()
    if not text:
        return []
    try:
        parsed = json.loads(text)
    except ValueError:
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            raise ValueError(f"cannot parse scores {text[:60]!r}") from exc
    if isinstance(parsed, (int, float)):
        return [float(parsed)]
    if not isinstance(parsed, (list, tuple)):
        raise ValueError(f"scores must be a list of numbers, got {type(parsed).__name__}")
    return [float(v) for v in parsed]


def _parse_scores_column(col: pd.Series, offset: int) -> tuple[list[list[float]], int]:
    out, bad = [], 0
    for i, value in enumerate(col.tolist()):
        try:
            out.append(parse_scores(value))
        except (ValueError, TypeError):
            bad += 1
            if bad <= 3:
                logger.warning("row %d: unparseable scores %r (kept as [])", offset + i, str(value)[:60])
            out.append([])
    return out, bad


def iter_webvid_covr(path: str | Path, columns: Sequence[str] | None = None,
                     chunksize: int = 200_000,
                     nrows: int | None = None) -> Iterator[pd.DataFrame]:  # fmt: skip
    """Yield the CSV in chunks of ``chunksize`` rows with ``scores`` parsed (when read)."""
    dtype = {c: "string" for c in STRING_COLUMNS}
    reader = pd.read_csv(path, usecols=list(columns) if columns else None, dtype=dtype,
                         chunksize=chunksize, nrows=nrows, keep_default_na=False, na_values=[""])  # fmt: skip
    offset = 0
    with reader:
        for chunk in reader:
            if "scores" in chunk.columns:
                parsed, bad = _parse_scores_column(chunk["scores"], offset)
                chunk["scores"] = pd.Series(parsed, index=chunk.index, dtype=object)
                if bad:
                    logger.warning("%s: %d unparseable scores cell(s) in rows %d..", path, bad, offset)
            for col in STRING_COLUMNS:
                if col in chunk.columns:
                    chunk[col] = chunk[col].fillna("").astype(str)
            offset += len(chunk)
            yield chunk


def read_webvid_covr(path: str | Path, columns: Sequence[str] | None = None,
                     chunksize: int = 200_000, nrows: int | None = None) -> pd.DataFrame:  # fmt: skip
    """Read a WebVid-CoVR CSV (streamed in chunks; ``scores`` parsed to ``list[float]``)."""
    chunks = list(iter_webvid_covr(path, columns=columns, chunksize=chunksize, nrows=nrows))
    if not chunks:
        return pd.read_csv(path, usecols=list(columns) if columns else None, nrows=0)
    return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0].reset_index(drop=True)


def read_ids_file(path: str | Path) -> list[str]:
    """Ids from a text file: one per line; blank lines and ``#`` comments ignored."""
    ids = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(line)
    return ids


def select_subset(df: pd.DataFrame, first: int | None = None, random: int | None = None, seed: int = 0,
                  ids_file: str | Path | None = None,
                  id_columns: Sequence[str] = ("pth1", "pth2")) -> pd.DataFrame:  # fmt: skip
    """Rows of ``df``: those whose ``id_columns`` are all in ``ids_file`` (if given), then the ``first`` N
    or ``random`` N (seeded, original order kept). ``first`` and ``random`` are exclusive."""
    if first is not None and random is not None:
        raise ValueError("choose either first or random, not both")
    out = df
    if ids_file is not None:
        wanted = set(read_ids_file(ids_file))
        mask = np.ones(len(out), dtype=bool)
        for col in id_columns:
            mask &= out[col].astype(str).isin(wanted).to_numpy()
        out = out[mask]
    if first is not None:
        if first < 0:
            raise ValueError("first must be >= 0")
        out = out.iloc[:first]
    elif random is not None:
        if random < 0:
            raise ValueError("random must be >= 0")
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(out), size=min(random, len(out)), replace=False))
        out = out.iloc[pick]
    return out.reset_index(drop=True)


def webvid_video_path(root: str | Path, pth: str) -> Path:
    """Video file of a ``pth`` id: ``<root>/<pth>.mp4``."""
    return Path(root) / f"{pth}.mp4"


def webvid_video_int_id(pth: str) -> int:
    """CoVR's integer video id: every non-digit of ``pth`` replaced by ``0``, parsed as int."""
    digits = _NON_DIGIT.sub("0", str(pth))
    return int(digits) if digits else 0


def webvid_video_key(pth: str) -> str:
    """Identity of a ``pth``'s video for "same video" masking: CoVR's integer id when ``pth`` has digits
    (every real WebVid path), else ``pth`` itself (CoVR's rule would map every digit-free path, such as the
    bundled demo's ``videos/zoom_cat``, to the same id 0 and mask every other video)."""
    return str(webvid_video_int_id(pth)) if _HAS_DIGIT.search(str(pth)) else f"path:{pth}"


def webvid_video_id(pth: str) -> str:
    """Video id: the last path component of ``pth`` (``"1012/4567"`` -> ``"4567"``), ``.mp4`` dropped."""
    name = str(pth).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return name[:-4] if name.endswith(".mp4") else name


# ------------------------------------------------------------------------------ job item lists (registry)
def _selected(sel: DatasetSelection, columns: Sequence[str]) -> pd.DataFrame:
    df = read_webvid_covr(sel.csv, columns=list(columns))
    df["_row"] = np.arange(len(df), dtype=np.int64)
    return select_subset(df, first=sel.subset_first, random=sel.subset_random, seed=sel.seed,
                         ids_file=sel.subset_ids)


def gallery_items(sel: DatasetSelection) -> ItemList:
    """Every distinct target video (``pth2``) of the (sub)set, in first-appearance order."""
    df = _selected(sel, ["pth1", "pth2", "txt2", "scores"]).drop_duplicates("pth2", keep="first")
    root = Path(sel.video_root).resolve()
    split = Path(sel.csv).stem
    paths = [str(webvid_video_path(root, p)) for p in df["pth2"]]
    scores = [json.dumps([float(x) for x in s]) if isinstance(s, (list, tuple, np.ndarray)) and len(s) else ""
              for s in df["scores"]]
    items = pd.DataFrame({"id": df["pth2"].astype(str).to_numpy(), "kind": "video", "path": paths,
                          "media": [os.path.relpath(p, root) for p in paths],
                          "caption": df["txt2"].fillna("").astype(str).to_numpy(), "split": split,
                          "duration": np.nan, "scores": scores}, columns=list(GALLERY_COLUMNS))
    return ItemList(items.reset_index(drop=True), root, split)


def query_items(sel: DatasetSelection) -> ItemList:
    """One row per triplet; ``query_id`` is the CSV row number, the reference is the middle frame of ``pth1``."""
    df = _selected(sel, ["pth1", "pth2", "edit"])
    root = Path(sel.video_root).resolve()
    qid = df["_row"].to_numpy(dtype=np.int64)
    items = pd.DataFrame({"id": [str(i) for i in qid], "query_id": qid, "reference": df["pth1"].astype(str).values,
                          "target": df["pth2"].astype(str).values, "caption": df["edit"].fillna("").astype(str).values,
                          "path": [str(webvid_video_path(root, p)) for p in df["pth1"]], "kind": "video"},
                         columns=[c for c in QUERY_COLUMNS if c not in ("members", "target_soft")])
    return ItemList(items.reset_index(drop=True), root, Path(sel.csv).stem)
