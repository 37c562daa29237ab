"""The study's WebVid-CoVR filter (seed-study §4): keep triplets whose two videos share an author or a category.

    python -m precompute.filter_webvid --csv webvid2m-covr_train.csv --map cleanvid-15m_map.parquet --out data/filtered

Joins each CSV with the CleanVid map (``id``, ``author`` = JSON whose ``accountsId`` names the author,
``categories`` = JSON list; CSV or parquet) on the video id (last path component of ``pth1``/``pth2``) and
writes, per input CSV, one CSV per rule with the original columns, untouched:

- ``<stem>_same-author.csv``: both videos have a non-null, equal author;
- ``<stem>_same-category.csv``: the two category sets intersect;
- ``<stem>_same-author-or-category.csv``: either (the study's "F").

Plus ``stats.md`` / ``stats.json`` in the study's Table 4 layout (dataset | target videos | triplets | query
videos), written through the folder's owner ``covr_core.filter_run.FilterRun``. Vectorised and streaming: the map is read in Arrow batches and only rows of videos used by the CSVs
are kept; authors are parsed with one vectorised regex, categories become per-video bitsets; the CSVs are read
in chunks. The 1.6M-row train CSV against the 15M-row map runs in minutes in a few GB (bench/bench_filter_webvid.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from covr_core.atomic import cleanup_stale_temps, fsync_dir
from covr_core.filter_run import MARKDOWN_FILE, RULES, STATS_FILE, TABLE4_ROWS, FilterRun, rule_csv_path

from .engine import common as C

log = logging.getLogger(__name__)

#: ``accountsId`` as a JSON string (spaces and escapes kept) or a bare JSON number / literal.
_AUTHOR_RE = r'"accountsId"\s*:\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^,}\s"]+))'
_QUOTED_RE = r'"((?:[^"\\]|\\.)*)"'
_SINGLE_QUOTED_RE = r"'accountsId'\s*:|\['|'\]"


@dataclass
class VideoMeta:
    """Per-video metadata of the videos the CSVs use: index, author code (-1 = none), category bitsets."""

    index: pd.Index
    author: np.ndarray  #: int64 [V]
    bits: np.ndarray  #: uint64 [V, words]
    categories: list[str]
    warnings: list[str] = field(default_factory=list)  #: problems met while parsing the map


def video_ids(pth: pd.Series) -> pd.Series:
    """WebVid video id of each ``pth``: the last path component, ``.mp4`` dropped (vectorised)."""
    return pth.astype(str).str.rpartition("/")[2].str.removesuffix(".mp4")


def _csv_ids(csv: Path, chunksize: int) -> np.ndarray:
    from pyarrow import csv as pacsv

    ids: set[str] = set()
    reader = pacsv.open_csv(csv, read_options=pacsv.ReadOptions(block_size=max(1 << 12, chunksize * 300)),
                            convert_options=pacsv.ConvertOptions(include_columns=["pth1", "pth2"],
                                                                 column_types={"pth1": pa.string(), "pth2": pa.string()},
                                                                 strings_can_be_null=False))
    for batch in reader:
        for col in ("pth1", "pth2"):
            ids.update(pd.unique(video_ids(batch.column(col).to_pandas())).tolist())
    return np.array(sorted(ids), dtype=object)


def _map_batches(path: Path, batch_rows: int) -> Iterator[pa.RecordBatch]:
    cols = ["id", "author", "categories"]
    if path.suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=cols)
        return
    from pyarrow import csv as pacsv

    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=64 << 20),
                            convert_options=pacsv.ConvertOptions(include_columns=cols,
                                                                 column_types={c: pa.string() for c in cols}))
    yield from reader


def load_video_meta(map_path: str | Path, wanted: np.ndarray, batch_rows: int = 1_000_000) -> VideoMeta:
    """Stream the CleanVid map, keep the ``wanted`` video ids, parse authors and categories (vectorised)."""
    value_set = pa.array(wanted.tolist(), type=pa.string())
    kept = []
    for batch in _map_batches(Path(map_path), batch_rows):
        ids = pc.cast(batch.column("id"), pa.string())
        mask = pc.is_in(ids, value_set=value_set)
        if pc.any(mask).as_py():
            sub = pa.table({"id": pc.filter(ids, mask), "author": pc.filter(pc.cast(batch.column("author"), pa.string()), mask),
                            "categories": pc.filter(pc.cast(batch.column("categories"), pa.string()), mask)})
            kept.append(sub.to_pandas())
    df = (pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=["id", "author", "categories"]))
    df = df.drop_duplicates("id", keep="first").reset_index(drop=True)
    author = parse_authors(df["author"])
    codes, _ = pd.factorize(author, use_na_sentinel=True)
    cats = df["categories"].astype("string").fillna("").str.findall(_QUOTED_RE).explode()
    cats = cats[cats.notna() & (cats != "")]
    cats = cats.map(dict(zip(pd.unique(cats), (json_unescape(c) for c in pd.unique(cats)))))
    cat_codes, names = pd.factorize(cats)
    words = max(1, (len(names) + 63) // 64)
    bits = np.zeros((len(df), words), dtype=np.uint64)
    rows = cats.index.to_numpy()
    np.bitwise_or.at(bits, (rows, cat_codes // 64), np.left_shift(np.uint64(1), (cat_codes % 64).astype(np.uint64)))
    warnings = single_quoted_warnings(df)
    log.info("map: %d of %d wanted videos found, %d authors, %d categories", len(df), len(wanted),
             int(codes.max()) + 1 if len(codes) else 0, len(names))
    return VideoMeta(index=pd.Index(df["id"].astype(str)), author=codes.astype(np.int64), bits=bits,
                     categories=[str(n) for n in names], warnings=warnings)


def json_unescape(text: str) -> str:
    """The string a JSON string literal's contents stand for (``\\u0026`` -> ``&``); unchanged when invalid."""
    if "\\" not in text:
        return text
    try:
        return json.loads(f'"{text}"')
    except json.JSONDecodeError:
        return text


def parse_authors(author: pd.Series) -> pd.Series:
    """``accountsId`` of each CleanVid ``author`` JSON (vectorised; NA when absent or null).

    A quoted id is kept whole (spaces included) and its JSON escapes decoded; a bare number stays as written.
    """
    parts = author.astype("string").str.extract(_AUTHOR_RE)
    quoted = parts["quoted"]
    quoted = quoted.map(dict(zip(pd.unique(quoted.dropna()), map(json_unescape, pd.unique(quoted.dropna())))),
                        na_action="ignore")
    bare = parts["bare"].where(~parts["bare"].isin(["null", "None", "true", "false"]))
    out = quoted.fillna(bare)
    return out.where(out != "")


def single_quoted_warnings(df: pd.DataFrame) -> list[str]:
    """Messages for map rows written as Python dicts/lists (single quotes): not JSON, so no author / category
    is read from them (as ``json.loads`` would fail); the count is logged and kept in ``stats.json``."""
    out = []
    for col, what in (("author", "author"), ("categories", "categories")):
        text = df[col].astype("string").fillna("")
        bad = text.str.contains(_SINGLE_QUOTED_RE, regex=True) & ~text.str.contains('"', regex=False)
        n = int(bad.sum())
        if n:
            example = str(df.loc[bad.to_numpy(), "id"].iloc[0])
            msg = (f"{n} map row(s) hold single-quoted (Python-style, not JSON) {what} values, e.g. video {example}: "
                   f"no {what} is read from them; fix the map (json.dumps) to count them")
            log.warning("%s", msg)
            out.append(msg)
    return out


def rule_masks(meta: VideoMeta, pth1: pd.Series, pth2: pd.Series) -> dict[str, np.ndarray]:
    """Boolean masks of the three rules for rows with these ``pth1``/``pth2``."""
    i1 = meta.index.get_indexer(video_ids(pth1))
    i2 = meta.index.get_indexer(video_ids(pth2))
    ok = (i1 >= 0) & (i2 >= 0)
    j1, j2 = np.where(ok, i1, 0), np.where(ok, i2, 0)
    if len(meta.author):
        a1, a2 = meta.author[j1], meta.author[j2]
        same_author = ok & (a1 >= 0) & (a1 == a2)
        same_cat = ok & np.any((meta.bits[j1] & meta.bits[j2]) != 0, axis=1)
    else:
        same_author = same_cat = np.zeros(len(i1), dtype=bool)
    return {"same-author": same_author, "same-category": same_cat, "same-author-or-category": same_author | same_cat}


def _csv_batches(csv: Path, block_bytes: int):
    """(schema, batches) of a CSV read by Arrow with every column as a string (values kept verbatim)."""
    from pyarrow import csv as pacsv

    names = pd.read_csv(csv, nrows=0).columns.tolist()
    reader = pacsv.open_csv(csv, read_options=pacsv.ReadOptions(block_size=block_bytes),
                            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                                 strings_can_be_null=False))
    return reader.schema, reader


def filter_csv(csv: Path, meta: VideoMeta, out: Path, chunksize: int) -> dict[str, dict[str, int]]:
    """Write the three rule CSVs for one input CSV; returns Table-4 counts per rule (and ``all``).

    Read and written with Arrow (strings untouched, quoted only where needed); ``chunksize`` rows map to an
    Arrow block of about ``chunksize * 300`` bytes.
    """
    from pyarrow import csv as pacsv

    stem = csv.stem
    finals = {r: rule_csv_path(out, stem, r) for r in RULES}
    for p in finals.values():  # temp files left by a killed run
        cleanup_stale_temps(p)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmps = {r: p.with_name(f".{p.name}.tmp-{tag}") for r, p in finals.items()}
    targets: dict[str, set[str]] = {k: set() for k in TABLE4_ROWS}
    queries: dict[str, set[str]] = {k: set() for k in TABLE4_ROWS}
    triplets = dict.fromkeys(TABLE4_ROWS, 0)
    schema, batches = _csv_batches(csv, max(1 << 12, chunksize * 300))
    opts = pacsv.WriteOptions(quoting_style="needed")
    with contextlib.ExitStack() as stack:
        writers = {r: stack.enter_context(pacsv.CSVWriter(str(t), schema, write_options=opts)) for r, t in tmps.items()}
        for batch in batches:
            p1 = batch.column("pth1").to_pandas()
            p2 = batch.column("pth2").to_pandas()
            masks = {"all": np.ones(len(p1), dtype=bool), **rule_masks(meta, p1, p2)}
            for rule, m in masks.items():
                triplets[rule] += int(m.sum())
                targets[rule].update(pd.unique(p2.values[m]).tolist())
                queries[rule].update(pd.unique(p1.values[m]).tolist())
                if rule != "all":
                    writers[rule].write_batch(batch.filter(pa.array(m)))
            C.maybe_kill("filter-batch")
    for r in RULES:
        with open(tmps[r], "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmps[r], finals[r])
        C.maybe_kill("filter-rename")
    fsync_dir(out)
    return {k: {"target_videos": len(targets[k]), "triplets": triplets[k], "query_videos": len(queries[k])}
            for k in TABLE4_ROWS}


def run(*, csv: Sequence[str], map: str, out: str, chunksize: int = 250_000, map_batch_rows: int = 1_000_000,
        **_: Any) -> dict:
    """Filter every CSV in ``csv`` against the CleanVid ``map`` into ``out``; returns the statistics."""
    t0 = time.perf_counter()
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    FilterRun.clear(outdir)  # the rule CSVs are about to change: no stats.json until they all have
    csvs = [Path(c) for c in csv]
    wanted = np.unique(np.concatenate([_csv_ids(c, chunksize) for c in csvs])) if csvs else np.array([], dtype=object)
    meta = load_video_meta(map, wanted, map_batch_rows)
    C.maybe_kill("filter-map")
    t_map = time.perf_counter() - t0
    stats: dict[str, dict[str, dict[str, int]]] = {}
    for c in csvs:
        name = c.stem
        stats[name] = filter_csv(c, meta, outdir, chunksize)
        log.info("%s: %s", name, {r: v["triplets"] for r, v in stats[name].items()})
    result = FilterRun.build(stats, inputs=[str(c.resolve()) for c in csvs], map=str(map),
                             videos_in_csvs=int(len(wanted)), videos_in_map=len(meta.index),
                             categories=len(meta.categories), warnings=meta.warnings,
                             seconds=round(time.perf_counter() - t0, 2), seconds_map=round(t_map, 2),
                             provenance=C.provenance())
    result.save(outdir)
    record = result.record
    log.info("done=%d skipped=0 failed=0 (triplets read) in %.1fs; tables in %s",
             sum(s["all"]["triplets"] for s in stats.values()), record["seconds"], outdir)
    return record


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags of ``python -m precompute.filter_webvid``."""
    p = C.make_parser("python -m precompute.filter_webvid", __doc__)
    p.add_argument("--csv", nargs="+", required=True, help="WebVid-CoVR CSV file(s) to filter")
    p.add_argument("--map", required=True, help="CleanVid map (id, author, categories) as .csv or .parquet")
    p.add_argument("--out", required=True, help=f"output folder for the filtered CSVs, {MARKDOWN_FILE} and {STATS_FILE}")
    p.add_argument("--chunksize", type=int, default=250_000, help="CSV rows read per chunk")
    p.add_argument("--map-batch-rows", type=int, default=1_000_000, help="map rows per Arrow batch (parquet)")
    C.add_log_arg(p)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m precompute.filter_webvid``."""
    return C.run_main(parse_args, lambda a: run(**vars(a)), argv)


if __name__ == "__main__":
    raise SystemExit(main())
