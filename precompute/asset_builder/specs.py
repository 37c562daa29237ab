"""What the bundled demo gallery (``assets/``) is made of: sources, images, videos, captions.

Every item names the package and original file it comes from, and the licence as that package
states it. ``precompute.asset_builder`` turns these specs into files; captions were written by
looking at each picture.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: source key -> (package as installed, licence of the files as the package states it)
OPENCV_LICENCE = (
    "Apache-2.0 AND BSD-3-Clause (Debian opencv-doc copyright, 'Files: *': upstream relicensed the "
    "project to Apache-2.0, a large portion remains BSD-3-Clause)"
)
SOURCES: dict[str, str] = {
    "opencv": "Debian opencv-doc 4.6.0+dfsg-12 (/usr/share/doc/opencv-doc/examples/data)",
    "skimage": "PyPI scikit-image 0.26.0 (skimage/data)",
    "sklearn": "PyPI scikit-learn 1.9.1 (sklearn/datasets/images)",
}
SKLEARN_CC_BY = "CC-BY-2.0 (https://creativecommons.org/licenses/by/2.0/)"
_CHINA_CREDIT = "Some rights reserved by danielbuechele (flickr.com/photos/danielbuechele/6061409035)"


@dataclass(frozen=True)
class ImageSpec:
    """One gallery photo: ``crop`` is (left, top, right, bottom) in source pixels, or None."""

    id: str
    source: str
    file: str
    caption: str
    licence: str
    crop: tuple[int, int, int, int] | None = None
    notes: str = ""


def _ocv(id_: str, file: str, caption: str, crop=None, notes: str = "") -> ImageSpec:
    return ImageSpec(id_, "opencv", file, caption, OPENCV_LICENCE, crop, notes)


IMAGES: list[ImageSpec] = [
    _ocv("apple", "apple.jpg", "a red apple standing on a table in front of a green background"),
    _ocv("orange", "orange.jpg", "a whole orange (the fruit) in front of a greenish background"),
    _ocv("fruits", "fruits.jpg",
         "cut fruit close up: an orange wedge, a lime, a halved lemon and half a kiwi"),
    _ocv("orange_wedge", "fruits.jpg", "a juicy wedge of orange, close up", (70, 40, 350, 480),
         "crop of fruits.jpg"),
    _ocv("lime", "fruits.jpg", "a whole green lime next to a cut lemon", (320, 110, 512, 300),
         "crop of fruits.jpg"),
    _ocv("lemon_half", "fruits.jpg", "a halved lemon showing its pale yellow cut face", (320, 245, 512, 480),
         "crop of fruits.jpg"),
    _ocv("kiwi", "fruits.jpg", "half a kiwi fruit with green flesh and black seeds", (0, 265, 135, 480),
         "crop of fruits.jpg"),
    _ocv("butterfly", "butterfly.jpg", "a black and white swallowtail butterfly resting on a green leaf"),
    _ocv("building", "building.jpg", "a modern multi-storey hotel building with balconies behind trees"),
    _ocv("palace", "home.jpg", "the ornate yellow towers of a palace under a blue sky with birds"),
    _ocv("squirrel", "squirrel_cls.jpg", "a red squirrel eating something on a tree branch"),
    _ocv("dog", "chicky_512.png", "a small long-haired brown dog with its mouth open and tongue out"),
    _ocv("aerial_town", "aero1.jpg", "an aerial view of a town with apartment blocks, forest and a river"),
    _ocv("aerial_road", "aero3.jpg", "an aerial view of a town and a long straight road near the sea"),
    _ocv("aloe", "aloeL.jpg", "an aloe plant in a terracotta pot in front of patterned wallpaper"),
    _ocv("circuit_board", "board.jpg", "a green electronic circuit board with chips and capacitors"),
    _ocv("biscuit_box", "box.png", "black and white photo of a box of Italian almond biscuits"),
    _ocv("cluttered_table", "box_in_scene.png",
         "black and white photo of a pile of packages, with the biscuit box among them"),
    _ocv("two_men_ball", "basketball1.png",
         "black and white photo of two men tossing a ball in an office corridor"),
    _ocv("blocks", "blox.jpg", "black and white photo of wooden blocks standing on a hexagonal board"),
    _ocv("notebook", "ela_original.jpg", "a black notebook closed with a yellow-green elastic band"),
    _ocv("graffiti", "graf1.png", "colourful graffiti of a cartoon figure painted on a wall"),
    _ocv("old_street", "leuvenA.jpg", "a cobbled square with old red brick houses under a cloudy sky"),
    _ocv("old_street_2", "leuvenB.jpg", "the same cobbled square with old brick houses from closer in"),
    _ocv("car_rear", "licenseplate_motion.jpg", "the back of a light blue car, blurred by motion"),
    _ocv("toys", "rubberwhale1.png",
         "toys on a striped blanket: a teal rubber whale, orange foam shapes and a yellow box"),
    _ocv("toy_whale", "rubberwhale1.png", "a small teal rubber toy whale on a dark striped blanket",
         (190, 70, 340, 200), "crop of rubberwhale1.png"),
    _ocv("sweets", "smarties.png", "shiny coloured chocolate sweets scattered on a white background"),
    _ocv("desk_items", "stuff.jpg", "a pencil, a pink lighter, a coin and two lids on a grey table"),
    _ocv("sudoku", "sudoku.png", "a sudoku puzzle printed in a newspaper"),
    ImageSpec("astronaut", "skimage", "astronaut.png",
              "astronaut Eileen Collins in an orange spacesuit, a US flag and a space shuttle model behind",
              "public domain (NASA; 'No known copyright restrictions, released into the public domain')"),
    ImageSpec("cameraman", "skimage", "camera.png",
              "black and white photo of a man filming with a camera on a tripod in a park",
              "CC0 (by the photographer Lav Varshney)"),
    ImageSpec("cat", "skimage", "chelsea.png", "close-up of the face of a tabby cat with yellow-green eyes",
              "CC0 (by the photographer Stefan van der Walt)"),
    ImageSpec("cat_eyes", "skimage", "chelsea.png", "extreme close-up of a tabby cat's green eyes and nose",
              "CC0 (by the photographer Stefan van der Walt)", (100, 20, 360, 260), "crop of chelsea.png"),
    ImageSpec("espresso", "skimage", "coffee.png", "a cup of espresso on a red saucer on a wooden table",
              "CC0 (by the photographer Rachel Michetti)"),
    ImageSpec("coins", "skimage", "coins.png", "black and white photo of rows of ancient Greek coins",
              "no known copyright restrictions (Brooklyn Museum collection)"),
    ImageSpec("galaxies", "skimage", "hubble_deep_field.jpg",
              "the Hubble eXtreme Deep Field: thousands of distant galaxies on a black sky",
              "public domain (NASA, HubbleSite)"),
    ImageSpec("rocket", "skimage", "rocket.jpg",
              "a Falcon 9 rocket on its launch pad at dusk, lit by floodlights",
              "public domain (SpaceX photos released into the public domain)"),
    ImageSpec("clock", "skimage", "clock_motion.png",
              "black and white photo of a wall clock blurred by camera motion",
              "public domain (released by the photographer Stefan van der Walt)"),
    ImageSpec("retina", "skimage", "retina.jpg", "a medical photograph of a human retina (eye fundus)",
              "CC0 1.0 (Mikael Haggstrom, via Wikimedia Commons)"),
    ImageSpec("horse", "skimage", "horse.png", "a black silhouette of a standing horse on white",
              "CC0 (by the owner Andreas Preuss, openclipart)"),
    ImageSpec("bricks", "skimage", "brick.png", "black and white texture of a brick wall",
              "CC0 (CC0Textures Bricks25)"),
    ImageSpec("grass", "skimage", "grass.png", "black and white close-up texture of grass",
              "CC0 (DeviantArt linolafett, Grass-01)"),
    ImageSpec("gravel", "skimage", "gravel.png", "black and white close-up texture of gravel",
              "CC0 (CC0Textures Gravel04)"),
    ImageSpec("tissue", "skimage", "ihc.png",
              "a microscope image of stained colon tissue (immunohistochemistry)",
              "no known copyright restrictions (CMMI)"),
    ImageSpec("pagoda", "sklearn", "china.jpg",
              "a Chinese pagoda temple on a wooded hill beside a lake",
              SKLEARN_CC_BY, None, _CHINA_CREDIT),
    ImageSpec("pagoda_roof", "sklearn", "china.jpg",
              "close-up of the tiered, ornate roofs of a Chinese pagoda",
              SKLEARN_CC_BY, (60, 20, 360, 320),
              "crop of china.jpg; " + _CHINA_CREDIT),
    ImageSpec("dahlia", "sklearn", "flower.jpg", "an orange dahlia flower against dark green leaves",
              SKLEARN_CC_BY, None,
              "sklearn README: 'Some rights reserved by danielbuechele', "
              "photo page flickr.com/photos/vultilion/6056698931"),
]


@dataclass(frozen=True)
class VideoSpec:
    """One demo video: a cut of a clip (``kind='clip'``) or made from photos (pan, zoom, fade)."""

    id: str
    kind: str  #: clip | pan | zoom_in | zoom_out | fade
    sources: tuple[str, ...]  #: image ids (pan/zoom/fade) or a clip file name (clip)
    caption: str
    duration: float
    categories: tuple[str, ...]
    start: float = 0.0  #: clip start (s)
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  #: zoom target / pan window (fractions)
    licence: str = ""
    notes: str = field(default="")


VIDEOS: list[VideoSpec] = [
    VideoSpec("people_courtyard", "clip", ("vtest.avi",),
              "people walk across a paved campus courtyard, filmed from a window above",
              6.0, ("People", "Urban"), start=2.0, licence=OPENCV_LICENCE, notes="cut of vtest.avi"),
    VideoSpec("people_courtyard_2", "clip", ("vtest.avi",),
              "a few people cross a campus courtyard past a lamp post, filmed from above",
              6.0, ("People", "Urban"), start=50.0, licence=OPENCV_LICENCE, notes="cut of vtest.avi"),
    VideoSpec("tree_window", "clip", ("tree.avi",),
              "a leafy green tree seen through a window while the camera moves",
              3.3, ("Nature",), licence=OPENCV_LICENCE,
              notes="first 3.3 s of tree.avi (before a hand enters)"),
    VideoSpec("pan_pagoda", "pan", ("pagoda",), "a slow pan across a Chinese pagoda temple beside a lake",
              5.0, ("Travel", "Architecture"), box=(0.0, 0.1, 0.6, 0.7)),
    VideoSpec("zoom_dahlia", "zoom_in", ("dahlia",), "a slow zoom into an orange dahlia flower",
              5.0, ("Nature", "Plants"), box=(0.3, 0.15, 0.75, 0.75)),
    VideoSpec("zoom_squirrel", "zoom_in", ("squirrel",), "a slow zoom onto a red squirrel eating on a branch",
              5.0, ("Nature", "Animals"), box=(0.45, 0.2, 0.9, 0.8)),
    VideoSpec("fade_apple_orange", "fade", ("apple", "orange"), "a red apple cross-fades into an orange",
              4.0, ("Food",)),
    VideoSpec("pan_fruits", "pan", ("fruits",), "a pan across cut citrus fruit and half a kiwi",
              5.0, ("Food",), box=(0.0, 0.2, 0.6, 0.8)),
    VideoSpec("pan_old_street", "pan", ("old_street",), "a pan along a cobbled square of old brick houses",
              6.0, ("Travel", "Architecture"), box=(0.0, 0.15, 0.55, 0.85)),
    VideoSpec("zoom_out_rocket", "zoom_out", ("rocket",),
              "a slow zoom out from a rocket on its launch pad at dusk",
              5.0, ("Science", "Space"), box=(0.35, 0.2, 0.6, 0.8)),
    VideoSpec("pan_galaxies", "pan", ("galaxies",), "a pan across a deep sky full of distant galaxies",
              6.0, ("Science", "Space"), box=(0.0, 0.0, 0.5, 0.6)),
    VideoSpec("zoom_cat", "zoom_in", ("cat",), "a slow zoom into the face of a tabby cat",
              4.0, ("Animals", "Pets"), box=(0.2, 0.05, 0.8, 0.85)),
    VideoSpec("zoom_espresso", "zoom_in", ("espresso",), "a slow zoom into a cup of espresso on a red saucer",
              4.0, ("Food", "Drinks"), box=(0.25, 0.0, 0.8, 0.75)),
    VideoSpec("fade_dog_cat", "fade", ("dog", "cat"), "a small brown dog cross-fades into a tabby cat",
              4.0, ("Animals", "Pets")),
    VideoSpec("pan_butterfly", "pan", ("butterfly",), "a pan across a swallowtail butterfly on a leaf",
              5.0, ("Nature", "Animals"), box=(0.0, 0.15, 0.6, 0.85)),
    VideoSpec("zoom_circuit", "zoom_in", ("circuit_board",), "a slow zoom into a green circuit board",
              4.0, ("Technology",), box=(0.3, 0.3, 0.8, 0.8)),
]
