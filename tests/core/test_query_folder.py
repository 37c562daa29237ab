"""The queries folder (``covr_core.query_folder.QuerySet``): build/save/load round trip, streaming from memory
maps, a failed save never leaves a manifest, and a damaged or hostile folder is refused with a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from covr_core import query_folder as qf
from covr_core.gallery_integrity import file_sha256
from covr_core.query_folder import QueryFolderError, QuerySet
from covr_core.types import EncoderInfo, QueryEmbeddings

DIM = 8
INFO = EncoderInfo(name="enc", version="2", checkpoint="ck", checkpoint_sha256="cd" * 32, dim=DIM)


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _table(n: int) -> pd.DataFrame:
    return pd.DataFrame({"query_id": np.arange(n) * 10, "reference": [f"r{i}" for i in range(n)],
                         "target": [f"t{i}" for i in range(n)], "caption": [f"edit {i}" for i in range(n)],
                         "members": [json.dumps([f"r{i}", f"t{i}"]) for i in range(n)], "group": np.arange(n) % 3})


def _queries(n: int = 5, seed: int = 0) -> QuerySet:
    rng = np.random.default_rng(seed)
    emb = QueryEmbeddings(_unit(rng, n), _unit(rng, n), _unit(rng, n))
    return QuerySet.build(emb, _table(n), INFO, "toy", planned=n + 2, failed=2, dataset="cirr",
                          provenance={"benchmark": "cirr", "command": "python -m precompute.queries"})


def test_round_trip_keeps_arrays_table_manifest_and_other_files(tmp_path: Path) -> None:
    qs = _queries()
    folder = tmp_path / "q"
    folder.mkdir()
    (folder / "failures.csv").write_text("id,reason\n")  # written by the job beside the queries
    assert not QuerySet.exists(folder)
    qs.save(folder)
    assert QuerySet.exists(folder) and (folder / "failures.csv").read_text() == "id,reason\n"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [qf.ARRAYS_FILE, qf.TABLE_FILE, qf.MANIFEST_FILE, "failures.csv"])  # no temp files left
    back = QuerySet.load(folder)
    assert back.folder == folder and len(back) == 5 and back.dim == DIM
    for k, a in qs.arrays().items():
        np.testing.assert_array_equal(back.arrays()[k], a)
        assert back.arrays()[k].dtype == np.float32 and back.arrays()[k].flags.c_contiguous
    pd.testing.assert_frame_equal(back.table, _table(5))  # extra columns and integer ids kept as they were
    m = back.manifest
    assert (m["kind"], m["encoder"], m["encoder_version"], m["checkpoint_sha256"]) == ("queries", "enc", "2", "cd" * 32)
    assert (m["dim"], m["count"], m["planned"], m["failed"], m["dataset"], m["benchmark"]) == (DIM, 5, 7, 2, "cirr", "cirr")
    assert m["queries_sha256"] == file_sha256(folder / qf.ARRAYS_FILE)
    assert json.loads((folder / qf.MANIFEST_FILE).read_text()) == m


def test_build_streams_memory_maps_and_take_keeps_rows_aligned(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    maps = {}
    for k in qf.ARRAYS:
        maps[k] = np.lib.format.open_memmap(tmp_path / f"{k}.npy", mode="w+", dtype=np.float32, shape=(6, DIM))
        maps[k][:] = _unit(rng, 6)
    qs = QuerySet.build(maps, _table(6), INFO, "mm")
    assert np.shares_memory(qs.emb.f_mm, maps["f_mm"])  # not copied into memory: saved straight from disk
    qs.save(tmp_path / "q")
    back = QuerySet.load(tmp_path / "q")
    np.testing.assert_array_equal(back.emb.f_txt, np.asarray(maps["f_txt"]))
    part = back.take([4, 1])
    assert part.table["query_id"].tolist() == [40, 10] and part.folder == back.folder
    np.testing.assert_array_equal(part.emb.f_img, back.emb.f_img[[4, 1]])


def test_build_refuses_bad_inputs() -> None:
    rng = np.random.default_rng(2)
    good = QueryEmbeddings(_unit(rng, 4), _unit(rng, 4), _unit(rng, 4))
    with pytest.raises(QueryFolderError, match=r"f_mm is float32 \(3, 8\), expected float32 \(4, 8\)"):
        QuerySet.build(QueryEmbeddings(good.f_mm[:3], good.f_img, good.f_txt), _table(4), INFO, "x")
    with pytest.raises(QueryFolderError, match="lacks column"):
        QuerySet.build(good, _table(4).drop(columns=["reference"]), INFO, "x")
    bad = good.f_txt.copy()
    bad[2, 0] = np.nan
    with pytest.raises(QueryFolderError, match="NaN or inf"):
        QuerySet.build(QueryEmbeddings(good.f_mm, good.f_img, bad), _table(4), INFO, "x")
    with pytest.raises(QueryFolderError, match="floating point"):
        QuerySet.build(QueryEmbeddings(good.f_mm, good.f_img, np.ones((4, DIM), np.int64)), _table(4), INFO, "x")
    with pytest.raises(QueryFolderError, match="lack"):
        QuerySet.build({"f_mm": good.f_mm}, _table(4), INFO, "x")
    as64 = QuerySet.build(QueryEmbeddings(good.f_mm.astype(np.float64), good.f_img, good.f_txt), _table(4), INFO, "x")
    assert as64.emb.f_mm.dtype == np.float32  # other floats are cast


def test_failed_save_leaves_no_manifest_and_no_temp_files(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    _queries().save(folder)
    broken = _queries()
    broken.table["caption"] = [object()] * len(broken.table)  # parquet cannot store it: the table write fails
    with pytest.raises(pa.ArrowException):
        broken.save(folder)
    assert not QuerySet.exists(folder)  # the manifest goes first: no manifest beside half-replaced files
    with pytest.raises(QueryFolderError, match="manifest.json is missing"):
        QuerySet.load(folder)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    stale = folder / f".{qf.ARRAYS_FILE}.tmp-999999999-0badf00d"  # left by a killed writer (no such pid)
    stale.write_bytes(b"half an npz")
    _queries().save(folder)
    assert not stale.exists() and QuerySet.load(folder).manifest["count"] == 5


class _Payload:
    """Unpickling this would create a file: loading must never unpickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _savez(path: Path, **arrays: np.ndarray) -> None:
    with path.open("wb") as fh:
        np.savez(fh, **arrays)


def _damage(folder: Path, how: str, marker: Path) -> None:
    """Break a saved queries folder in one way (files written with the owner's own names)."""
    manifest_path, arrays_path, table_path = (folder / qf.MANIFEST_FILE, folder / qf.ARRAYS_FILE, folder / qf.TABLE_FILE)
    manifest = json.loads(manifest_path.read_text())
    with np.load(arrays_path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if how == "no manifest":
        manifest_path.unlink()
    elif how == "manifest not json":
        manifest_path.write_text("{not json")
    elif how == "manifest a list":
        manifest_path.write_text("[1, 2]")
    elif how == "manifest lacks count":
        manifest.pop("count")
        manifest_path.write_text(json.dumps(manifest))
    elif how == "dim is text":
        manifest_path.write_text(json.dumps({**manifest, "dim": "8"}))
    elif how == "count is bool":
        manifest_path.write_text(json.dumps({**manifest, "count": True}))
    elif how == "a gallery manifest":
        manifest_path.write_text(json.dumps({**manifest, "kind": "gallery"}))
    elif how == "float16 manifest":
        manifest_path.write_text(json.dumps({**manifest, "dtype": "float16"}))
    elif how == "count disagrees":
        manifest_path.write_text(json.dumps({**manifest, "count": 4}))
    elif how == "no arrays file":
        arrays_path.unlink()
    elif how == "array missing":
        _savez(arrays_path, f_mm=arrays["f_mm"], f_img=arrays["f_img"])
    elif how == "float64 array":
        _savez(arrays_path, **{**arrays, "f_img": arrays["f_img"].astype(np.float64)})
    elif how == "wrong dim":
        _savez(arrays_path, **{**arrays, "f_txt": arrays["f_txt"][:, :4]})
    elif how == "fewer rows":
        _savez(arrays_path, **{**arrays, "f_mm": arrays["f_mm"][:3]})
    elif how == "inf value":
        arrays["f_mm"][1, 1] = np.inf
        _savez(arrays_path, **arrays)
    elif how == "pickled objects":
        hostile = np.empty(5, dtype=object)
        hostile[:] = [_Payload(marker)] * 5
        _savez(arrays_path, **{**arrays, "f_mm": hostile})
    elif how == "arrays not a zip":
        arrays_path.write_bytes(b"PK\x03\x04 garbage")
    elif how == "table corrupt":
        table_path.write_bytes(b"PAR1 not really")
    elif how == "table lacks reference":
        pd.read_parquet(table_path).drop(columns=["reference"]).to_parquet(table_path)
    else:
        raise AssertionError(how)


DAMAGE = {
    "no manifest": "manifest.json is missing", "manifest not json": "corrupt", "manifest a list": "JSON object",
    "manifest lacks count": r"lacks key\(s\) \['count'\]", "dim is text": "dim must be a whole number",
    "count is bool": "count must be a whole number", "a gallery manifest": "not a queries folder",
    "float16 manifest": "float32 only", "count disagrees": "has 5 rows but manifest.json says count=4",
    "no arrays file": "is missing", "array missing": r"lacks array\(s\) \['f_txt'\]",
    "float64 array": r"float64 \(5, 8\), expected float32 \(5, 8\)", "wrong dim": r"expected float32 \(5, 8\)",
    "fewer rows": r"float32 \(3, 8\), expected float32 \(5, 8\)", "inf value": "NaN or inf",
    "pickled objects": "corrupt or not plain arrays", "arrays not a zip": "corrupt or not plain arrays",
    "table corrupt": "corrupt", "table lacks reference": r"lacks column\(s\) \['reference'\]",
}  # fmt: skip


@pytest.mark.parametrize("how", list(DAMAGE))
def test_damaged_or_hostile_folder_is_refused(tmp_path: Path, how: str) -> None:
    folder = tmp_path / "q"
    _queries().save(folder)
    marker = tmp_path / "unpickled"
    _damage(folder, how, marker)
    with pytest.raises(QueryFolderError, match=DAMAGE[how]) as err:
        QuerySet.load(folder)
    assert isinstance(err.value, ValueError)  # callers that catch ValueError keep working
    assert not marker.exists()  # nothing was unpickled


def test_table_alone_is_read_and_checked(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    _queries().save(folder)
    captions = qf.read_table(folder, columns=["query_id", "caption"])
    assert list(captions.columns) == ["query_id", "caption"] and captions["caption"].iloc[2] == "edit 2"
    with pytest.raises(QueryFolderError, match=r"lacks column\(s\) \['nope'\]"):
        qf.read_table(folder, columns=["query_id", "nope"])
