"""What a first-time visitor reads: the title, one sentence on CoVR, a short lite-encoder banner, and the
curated example rows of the Search tab (composition at work on the bundled demo gallery)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from explorer.services import ASSETS_DIR

TITLE = "CoVR Explorer"
ONE_LINE = (
    "Composed image and video retrieval: give a **reference** image or video and a **text** that says what "
    "should change (“the same dog, but on a beach”); CoVR ranks a gallery by how well each item matches both."
)


@dataclass(frozen=True)
class ExampleRow:
    """One curated example: a bundled image, a modification text, and why it shows composition."""

    image: str  #: file name under assets/images
    text: str
    why: str


#: Rows chosen so that neither the picture nor the text alone finds the answer (docs/PERFORMANCE.md,
#: "Demo query set"): the reference says *what kind* of thing, the text says *what changes*.
EXAMPLES: tuple[ExampleRow, ...] = (
    ExampleRow("apple.jpg", "make it an orange", "fruit stays fruit, the kind changes"),
    ExampleRow("dog.jpg", "a video where this dog turns into a tabby cat", "an image query finds a video"),
    ExampleRow("lemon_half.jpg", "a juicy wedge of orange instead of the halved lemon", "“instead of”"),
    ExampleRow(
        "building.jpg",
        "old red brick houses on a cobbled square instead of the modern hotel",
        "same scene type, other era",
    ),
    ExampleRow("palace.jpg", "a chinese pagoda on a hill by a lake instead of the palace", "other building"),
    ExampleRow("tissue.jpg", "a photograph of a human retina instead of the tissue sample", "medical image"),
)


def intro_markdown() -> str:
    """Title and one sentence (always visible)."""
    return f"# {TITLE}\n{ONE_LINE}"


def lite_banner(info: Any) -> str:
    """A one-line notice when the offline lite encoder stands in for CoVR ("" otherwise)."""
    if getattr(info, "name", "") != "lite":
        return ""
    return (
        "⚠️ **Offline demo encoder** (ImageNet classes + MiniLM), not CoVR: it shows how the app works, not "
        "CoVR's quality. How to load CoVR's weights: *Encoder, checkpoint and gallery* below."
    )


def example_rows(combiner: str) -> list[list[str]]:
    """``gr.Examples`` rows: [image path, text, combiner] for the bundled images that exist."""
    rows = []
    for ex in EXAMPLES:
        path = ASSETS_DIR / "images" / ex.image
        if path.exists():
            rows.append([str(path), ex.text, combiner])
    return rows
