"""The hand-written mini benchmark over the bundled demo gallery, in the real annotation formats.

* CIRR: ``assets/benchmark/cirr/cap.rc2.demo.json`` + ``split.rc2.demo.json`` (image names are the
  gallery ids; paths ``../../images/<id>.jpg`` relative to the split file's folder).
* WebVid-CoVR: ``assets/benchmark/webvid/webvid-covr_demo.csv`` (``pth`` = ``videos/<id>``, relative
  to ``assets/``; one row per distinct target, like the real test split).
* CleanVid map: ``assets/benchmark/webvid/cleanvid_map_demo.csv`` (``id, author, categories``).

Every modification text below was written by looking at both pictures and says how the target
differs from the reference. ``img_set`` members are the reference, the target and four other demo
images chosen with a fixed seed. ``scores`` are 15 equal per-frame weights; ``sim_txt`` / ``sim_vid``
are left empty (the real files hold CLIP similarities, which this offline demo cannot compute).
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from precompute.asset_builder.specs import IMAGES, VIDEOS

#: (reference, target, modification text)
CIRR_TRIPLETS: list[tuple[str, str, str]] = [
    ("apple", "orange", "make it an orange instead of a red apple"),
    ("orange", "apple", "a red apple instead of the orange"),
    ("orange", "orange_wedge", "cut it open and show a juicy wedge of orange up close"),
    ("orange_wedge", "orange", "show the whole uncut orange instead of a wedge"),
    ("lemon_half", "lime", "show a whole green lime instead of the cut lemon"),
    ("lime", "lemon_half", "show a halved yellow lemon instead of the green lime"),
    ("kiwi", "fruits", "zoom out to show the kiwi together with an orange wedge, a lime and a lemon"),
    ("fruits", "kiwi", "zoom in on only the half kiwi fruit"),
    ("cat", "dog", "a small brown dog with its mouth open instead of the cat"),
    ("dog", "cat", "a tabby cat instead of the dog"),
    ("cat", "cat_eyes", "zoom in closer on the cat's eyes and nose"),
    ("cat_eyes", "cat", "zoom out to show the whole face of the cat"),
    ("squirrel", "butterfly", "a butterfly on a leaf instead of a squirrel on a branch"),
    ("butterfly", "squirrel", "a red squirrel eating on a branch instead of the butterfly"),
    ("horse", "dog", "a photo of a small brown dog instead of a black horse silhouette"),
    ("espresso", "apple", "replace the cup of espresso with a red apple"),
    ("pagoda", "pagoda_roof", "zoom in on the tiered roofs of the pagoda"),
    ("pagoda_roof", "pagoda", "zoom out to show the whole pagoda on its hill by the lake"),
    ("pagoda", "palace", "a yellow palace with ornate towers instead of the chinese pagoda"),
    ("palace", "building", "a modern hotel block with balconies instead of the ornate palace"),
    ("building", "palace", "an ornate yellow palace under a blue sky instead of the modern building"),
    ("old_street", "old_street_2", "the same square of brick houses, seen from closer to the houses"),
    ("old_street", "building", "a modern hotel building instead of old brick houses"),
    ("aerial_town", "aerial_road", "an aerial view with a long straight road and the sea in view"),
    ("rocket", "astronaut", "an astronaut in an orange spacesuit instead of the rocket"),
    ("astronaut", "rocket", "show a rocket on its launch pad at dusk, with no person"),
    ("galaxies", "rocket", "a rocket on a launch pad instead of distant galaxies"),
    ("toys", "toy_whale", "only the teal rubber whale, close up"),
    ("toy_whale", "toys", "zoom out to show the other toys and the yellow box too"),
    ("sweets", "fruits", "real cut fruit instead of chocolate sweets"),
    ("bricks", "gravel", "loose gravel instead of a brick wall"),
    ("gravel", "grass", "grass instead of gravel"),
    ("grass", "bricks", "a brick wall instead of grass"),
    ("biscuit_box", "cluttered_table", "the biscuit box lying in a pile of other packages"),
    ("cluttered_table", "biscuit_box", "only the biscuit box, seen from the front"),
    ("circuit_board", "desk_items", "a pencil, a lighter and a coin on a table instead of the circuit board"),
    ("notebook", "sudoku", "a sudoku puzzle in a newspaper instead of the notebook"),
    ("sudoku", "notebook", "a closed black notebook with an elastic band instead of the newspaper puzzle"),
    ("cameraman", "two_men_ball", "two men tossing a ball indoors instead of one man filming outdoors"),
    ("two_men_ball", "cameraman", "one man filming with a camera on a tripod outdoors"),
    ("coins", "sweets", "coloured chocolate sweets instead of ancient coins"),
    ("clock", "espresso", "a cup of espresso in colour instead of the blurred clock"),
    ("retina", "tissue", "a stained tissue sample under the microscope instead of the eye"),
    ("dahlia", "aloe", "a potted aloe plant instead of the dahlia flower"),
    ("aloe", "dahlia", "an orange dahlia flower instead of the potted aloe"),
    ("car_rear", "old_street", "a cobbled square with old brick houses instead of the car"),
]

#: (reference video, target video, edit text); one row per distinct target
WEBVID_TRIPLETS: list[tuple[str, str, str]] = [
    ("fade_apple_orange", "pan_fruits", "cut citrus fruit and a kiwi instead of a whole apple and orange"),
    ("pan_fruits", "fade_apple_orange", "a whole red apple that turns into an orange instead of cut fruit"),
    ("zoom_cat", "fade_dog_cat", "start with a small brown dog that turns into the cat"),
    ("fade_dog_cat", "zoom_cat", "only the tabby cat, slowly zooming in"),
    ("zoom_squirrel", "pan_butterfly", "a butterfly on a leaf instead of the squirrel"),
    ("pan_butterfly", "zoom_squirrel", "a red squirrel on a branch instead of the butterfly"),
    ("zoom_dahlia", "tree_window", "a leafy tree seen through a window instead of a flower"),
    ("pan_pagoda", "pan_old_street", "old brick houses on a cobbled square instead of a pagoda"),
    ("pan_old_street", "pan_pagoda", "a chinese pagoda by a lake instead of brick houses"),
    ("zoom_out_rocket", "pan_galaxies", "distant galaxies in deep space instead of the rocket"),
    ("pan_galaxies", "zoom_out_rocket", "a rocket on its launch pad at dusk instead of galaxies"),
    ("people_courtyard", "people_courtyard_2", "the same courtyard with people walking past the lamp post"),
    ("zoom_espresso", "zoom_dahlia", "an orange dahlia flower instead of the cup of espresso"),
    ("zoom_circuit", "zoom_espresso", "a cup of espresso on a red saucer instead of a circuit board"),
    ("tree_window", "people_courtyard", "people walking across a courtyard instead of a tree"),
    ("zoom_espresso", "zoom_circuit", "a green circuit board instead of the cup of espresso"),
]

#: CleanVid-style author of each demo video (the source of its pictures) -> accountsId
_AUTHORS = {
    "opencv": {"accountsId": "opencv-samples", "name": "OpenCV sample data (Debian opencv-doc)"},
    "skimage-svdw": {"accountsId": "skimage-stefan-van-der-walt",
                     "name": "Stefan van der Walt (scikit-image)"},
    "skimage-nasa": {"accountsId": "skimage-nasa", "name": "NASA (scikit-image)"},
    "skimage-spacex": {"accountsId": "skimage-spacex", "name": "SpaceX (scikit-image)"},
    "skimage-coffee": {"accountsId": "skimage-rachel-michetti", "name": "Rachel Michetti (scikit-image)"},
    "sklearn-db": {"accountsId": "sklearn-danielbuechele",
                   "name": "danielbuechele (scikit-learn, CC BY 2.0)"},
}
_VIDEO_AUTHOR = {
    "people_courtyard": "opencv", "people_courtyard_2": "opencv", "tree_window": "opencv",
    "pan_pagoda": "sklearn-db", "zoom_dahlia": "sklearn-db", "zoom_squirrel": "opencv",
    "fade_apple_orange": "opencv", "pan_fruits": "opencv", "pan_old_street": "opencv",
    "zoom_out_rocket": "skimage-spacex", "pan_galaxies": "skimage-nasa", "zoom_cat": "skimage-svdw",
    "zoom_espresso": "skimage-coffee", "fade_dog_cat": "opencv", "pan_butterfly": "opencv",
    "zoom_circuit": "opencv",
}


def cirr_records(seed: int = 0) -> tuple[list[dict], dict[str, str]]:
    """The CIRR-format triplets and split map of the demo benchmark."""
    names = [s.id for s in IMAGES]
    rng = random.Random(seed)
    records = []
    for i, (ref, tgt, caption) in enumerate(CIRR_TRIPLETS):
        others = rng.sample([n for n in names if n not in (ref, tgt)], 4)
        members = [ref, tgt, *others]
        rng.shuffle(members)
        records.append({
            "pairid": i,
            "reference": ref,
            "target_hard": tgt,
            "target_soft": {tgt: 1.0},
            "caption": caption,
            "img_set": {"id": i, "members": members,
                        "reference_rank": members.index(ref), "target_rank": members.index(tgt)},
        })
    split = {n: f"../../images/{n}.jpg" for n in names}
    return records, split


def write_benchmark(assets: Path) -> None:
    """Write the CIRR, WebVid-CoVR and CleanVid-map files under ``assets/benchmark/``."""
    videos = {v.id: v for v in VIDEOS}
    images = {s.id for s in IMAGES}
    for ref, tgt, _ in CIRR_TRIPLETS:
        assert ref in images and tgt in images, (ref, tgt)
    cirr = assets / "benchmark" / "cirr"
    cirr.mkdir(parents=True, exist_ok=True)
    records, split = cirr_records()
    (cirr / "cap.rc2.demo.json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    (cirr / "split.rc2.demo.json").write_text(json.dumps(split, indent=1) + "\n", encoding="utf-8")

    webvid = assets / "benchmark" / "webvid"
    webvid.mkdir(parents=True, exist_ok=True)
    with open(webvid / "webvid-covr_demo.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["pth1", "pth2", "txt1", "txt2", "edit", "scores", "sim_txt", "sim_vid"])
        for ref, tgt, edit in WEBVID_TRIPLETS:
            scores = "[" + ", ".join(["0.3"] * 15) + "]"
            w.writerow([f"videos/{ref}", f"videos/{tgt}", videos[ref].caption, videos[tgt].caption, edit,
                        scores, "", ""])
    with open(webvid / "cleanvid_map_demo.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "author", "categories"])
        for v in VIDEOS:
            w.writerow([v.id, json.dumps(_AUTHORS[_VIDEO_AUTHOR[v.id]]), json.dumps(list(v.categories))])
