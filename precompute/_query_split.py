"""Group-wise splits of a queries table and the query keys that detect train/eval overlap.

The MLP combiner must never be judged on the queries it learned from. CIRR has no public labelled split
besides train and val, so a researcher who only has val splits it; the split must keep related queries
together, or near-duplicates leak:

- ``image-set`` (CIRR): all triplets of one 6-image set (``img_set.members``) go to the same part;
- ``video`` (WebVid-CoVR): all triplets of one target video (``pth2``) go to the same part.

Groups are shuffled with a seed and cut by cumulative fractions, so a split is reproducible from
(table, by, fractions, seed). :func:`query_keys` hashes (reference, target, caption) per row: two queries
with equal keys are the same question, whatever their ids; training records keep the keys they used
(``<mlp>.split.npz``) and evaluation counts the overlap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from covr_core.atomic import atomic_write_bytes, atomic_write_text

SPLIT_BY = ("image-set", "video")


def query_keys(table: pd.DataFrame) -> np.ndarray:
    """uint64 key per row from (reference, target, caption) (pandas' fixed-key hash: stable across runs)."""
    cols = pd.DataFrame({c: table[c].astype(str) if c in table else "" for c in ("reference", "target", "caption")})
    return pd.util.hash_pandas_object(cols, index=False).to_numpy(dtype=np.uint64)


def group_keys(table: pd.DataFrame, by: str) -> pd.Series:
    """The group of each row: the sorted image-set members (CIRR) or the target video (WebVid)."""
    if by == "image-set":
        if "members" not in table:
            raise ValueError("--split-by image-set needs CIRR queries (a members column)")

        def key(value: object, ref: str) -> str:
            members = json.loads(value) if isinstance(value, str) and value else []
            return "|".join(sorted(map(str, members))) or f"ref:{ref}"

        return pd.Series([key(m, r) for m, r in zip(table["members"], table["reference"].astype(str))],
                         index=table.index)
    if by == "video":
        return table["target"].astype(str)
    raise ValueError(f"split must be one of {SPLIT_BY}, got {by!r}")


@dataclass
class QuerySplit:
    """Row indices of each part of a group-wise split, plus how it was made."""

    parts: dict[str, np.ndarray]
    by: str
    seed: int
    fractions: dict[str, float]
    groups: dict[str, int]

    def record(self) -> dict:
        """JSON-able description (counts, not the rows)."""
        return {"by": self.by, "seed": self.seed, "fractions": self.fractions, "groups": self.groups,
                "queries": {k: int(len(v)) for k, v in self.parts.items()}}


def split_by_group(table: pd.DataFrame, by: str, fractions: dict[str, float], seed: int = 0) -> QuerySplit:
    """Cut the rows into parts (e.g. ``{"train": .6, "val": .2, "heldout": .2}``) with whole groups per part.

    Fractions are of groups and must sum to 1; every part with a positive fraction gets at least one group.
    """
    if abs(sum(fractions.values()) - 1.0) > 1e-6 or any(f < 0 for f in fractions.values()):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    keys = group_keys(table, by)
    codes, uniq = pd.factorize(keys)
    wanted = [name for name, f in fractions.items() if f > 0]
    if len(uniq) < len(wanted):
        raise ValueError(f"{len(uniq)} {by} group(s) cannot be split into {len(wanted)} parts")
    order = np.random.default_rng(seed).permutation(len(uniq))
    bounds = np.round(np.cumsum([fractions[n] for n in fractions]) * len(uniq)).astype(int)
    part_of_group = np.empty(len(uniq), dtype=np.int64)
    start = 0
    for i, end in enumerate(bounds):
        end = max(end, start + (1 if fractions[list(fractions)[i]] > 0 else 0))
        part_of_group[order[start:end]] = i
        start = end
    part_of_group[order[start:]] = len(bounds) - 1
    parts = {name: np.nonzero(part_of_group[codes] == i)[0] for i, name in enumerate(fractions)}
    groups = {name: int((part_of_group == i).sum()) for i, name in enumerate(fractions)}
    return QuerySplit(parts=parts, by=by, seed=seed, fractions=dict(fractions), groups=groups)


def save_split_keys(path: str | Path, keys: dict[str, np.ndarray]) -> Path:
    """Write ``{part: uint64 keys}`` next to an MLP file (``.split.npz``, no pickle)."""
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v, dtype=np.uint64) for k, v in keys.items()})
    return atomic_write_bytes(Path(path), buf.getvalue())


def split_keys_path(mlp_path: str | Path) -> Path:
    """``<mlp stem>.split.npz`` beside the MLP weights."""
    p = Path(mlp_path)
    return p.with_name(p.stem + ".split.npz")


def load_split_keys(mlp_path: str | Path) -> dict[str, np.ndarray]:
    """The query keys an MLP was trained / validated on ({} when the file is absent)."""
    p = split_keys_path(mlp_path)
    if not p.is_file():
        return {}
    with np.load(p, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def overlap(keys: np.ndarray, others: dict[str, np.ndarray]) -> dict[str, int]:
    """How many of ``keys`` appear in each of ``others`` (parts with no overlap are left out)."""
    out = {}
    for name, ks in others.items():
        n = int(np.isin(keys, ks).sum())
        if n:
            out[name] = n
    return out


def read_query_ids(path: str | Path) -> list[str]:
    """Query ids, one per line (blank lines and ``#`` comments ignored)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]


def write_query_ids(path: str | Path, ids: Sequence) -> Path:
    """Write query ids one per line (atomically)."""
    return atomic_write_text(Path(path), "".join(f"{i}\n" for i in ids))
