"""CIRR reader on the real val annotations: layouts, triplet fields, image paths, missing-image report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from covr_core.datasets.cirr import CirrDataset, find_cirr_annotation, load_cirr_split, load_cirr_triplets

DATA = Path(__file__).parents[1] / "data" / "cirr"


def test_real_val_triplets_fields() -> None:
    trips = load_cirr_triplets(DATA / "cap.rc2.val.json")
    assert len(trips) == 4181 and len({t.pairid for t in trips}) == 4181
    t = trips[0]
    assert t.pairid == 12060 and t.reference == "dev-244-0-img0" and t.target_hard == "dev-1028-1-img1"
    assert t.target_soft == {"dev-1028-1-img1": 1.0} and t.caption == "show three bottles of soft drink"
    assert t.img_set_id == 36 and len(t.members) == 6
    assert t.reference in t.members and t.target_hard in t.members
    values = [v for x in trips for v in x.target_soft.values()]
    assert sorted(set(values)) == [-1.0, 0.2, 0.5, 1.0] and values.count(1.0) == 4216  # covr.md §1.1
    split = load_cirr_split(DATA / "split.rc2.val.json")
    assert len(split) == 2297 and split["dev-244-0-img0"] == "./dev/dev-244-0-img0.png"


def _repo_layout(root: Path) -> Path:
    (root / "captions").mkdir(parents=True)
    (root / "image_splits").mkdir()
    shutil.copy(DATA / "cap.rc2.val.json", root / "captions")
    shutil.copy(DATA / "split.rc2.val.json", root / "image_splits")
    return root


def test_find_annotation_repo_flat_and_missing(tmp_path: Path) -> None:
    cap, spl = find_cirr_annotation(_repo_layout(tmp_path / "repo"), "val")
    assert cap.parent.name == "captions" and spl.parent.name == "image_splits"
    cap, spl = find_cirr_annotation(DATA, "val")  # flat
    assert cap == DATA / "cap.rc2.val.json" and spl == DATA / "split.rc2.val.json"
    with pytest.raises(FileNotFoundError, match="cap.rc2.test1.json"):
        find_cirr_annotation(DATA, "test1")


def test_dataset_reports_missing_images_without_crashing(tmp_path: Path) -> None:
    root = _repo_layout(tmp_path / "cirr")
    split = load_cirr_split(DATA / "split.rc2.val.json")
    present = sorted(split)[:10]
    for name in present:  # a few real-size placeholder images under img_raw/dev/
        p = root / "img_raw" / split[name]
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (1, 2, 3)).save(p)
    ds = CirrDataset(root, "val")
    assert ds.image_root == root / "img_raw" and len(ds) == 4181
    assert ds.image_paths[present[0]] == (root / "img_raw" / "dev" / f"{present[0]}.png").resolve()
    assert len(ds.missing) == 2297 - 10 and not set(present) & set(ds.missing)
    report = ds.missing_report()
    assert report.startswith("2287 of 2297 CIRR val images missing") and "e.g." in report
    assert ds.unlisted == [] and ds.gallery_names == sorted(split)


def test_dataset_all_present_and_unlisted_names(tmp_path: Path) -> None:
    root = tmp_path / "c"
    root.mkdir()
    trips = json.loads((DATA / "cap.rc2.val.json").read_text())[:3]
    names = sorted({n for t in trips for n in [t["reference"], t["target_hard"], *t["img_set"]["members"]]})
    split = {n: f"./dev/{n}.png" for n in names[1:]}  # first name deliberately unlisted
    (root / "cap.rc2.val.json").write_text(json.dumps(trips))
    (root / "split.rc2.val.json").write_text(json.dumps(split))
    for rel in split.values():
        p = root / "images" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(p)
    ds = CirrDataset(root, "val")
    assert ds.missing == [] and ds.unlisted == [names[0]]
    assert "not in split.rc2.val.json" in ds.missing_report()


def test_test1_style_triplets_without_labels(tmp_path: Path) -> None:
    img_set = {"id": 3, "members": ["a", "b"]}
    t = {"pairid": 7, "reference": "test1-1-0-img0", "caption": "x", "img_set": img_set}
    (tmp_path / "cap.rc2.test1.json").write_text(json.dumps([t]))
    (trip,) = load_cirr_triplets(tmp_path / "cap.rc2.test1.json")
    assert trip.target_hard is None and trip.target_soft == {} and trip.members == ("a", "b")
    (tmp_path / "bad.json").write_text(json.dumps({"not": "a list"}))
    with pytest.raises(ValueError, match="JSON list"):
        load_cirr_triplets(tmp_path / "bad.json")
