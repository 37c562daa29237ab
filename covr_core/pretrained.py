"""Known CoVR / BLIP weight tags (covr.md §5.1): data only, nothing here downloads.

``source`` is what ``load_blip_encoder`` takes as its ``source`` (the transformers base: config,
tokenizer and, for ``blip-l-coco``, the weights); ``url`` is where the original CoVR file lives
(pass the downloaded file as ``checkpoint``). ``sha256`` is "" where it has not been verified.
"""

from __future__ import annotations

from dataclasses import dataclass

GCS = "https://storage.googleapis.com/sfr-vision-language-research"
HF = "https://huggingface.co/lucas-ventura"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
BLIP_L_SOURCE = "Salesforce/blip-itm-large-coco"
BLIP_LICENCE = "BSD-3-Clause (Salesforce BLIP)"
COVR_LICENCE = "MIT per the CoVR repository (weights' terms not verified here; check before redistributing)"


@dataclass(frozen=True)
class PretrainedCfg:
    """One weight tag."""

    tag: str
    source: str  #: transformers base (hub id) for config/tokenizer
    url: str  #: original checkpoint file ("" when not released)
    sha256: str  #: expected sha256 of the file at ``url`` ("" when unverified)
    licence: str
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    description: str
    family: str = "blip"  #: "blip" (supported here) or "blip2" (listed for reference only)
    supported: bool = True


def _blip(tag: str, url: str, description: str, licence: str = COVR_LICENCE) -> PretrainedCfg:
    return PretrainedCfg(tag, BLIP_L_SOURCE, url, "", licence, 384, CLIP_MEAN, CLIP_STD, description)


def _blip2(tag: str, url: str, description: str) -> PretrainedCfg:
    return PretrainedCfg(
        tag, "", url, "", COVR_LICENCE, 364, CLIP_MEAN, CLIP_STD, description, family="blip2", supported=False
    )


_TAGS: dict[str, PretrainedCfg] = {
    cfg.tag: cfg
    for cfg in (
        _blip("blip-l-coco", f"{GCS}/BLIP/models/model_large_retrieval_coco.pth",
              "BLIP ViT-L retrieval fine-tuned on COCO (CoVR's initialisation)", licence=BLIP_LICENCE),
        _blip("webvid-covr", f"{HF}/CoVR/resolve/main/webvid-covr.ckpt", "CoVR trained on WebVid-CoVR from blip-l-coco"),
        _blip("cirr_ft-covr+gt", f"{HF}/CoVR/resolve/main/cirr_ft-covr%2Bgt.ckpt",
              "webvid-covr fine-tuned on CIRR train"),
        _blip("fashioniq-all-ft_covr", f"{HF}/CoVR/resolve/main/fashioniq-all-ft_covr.ckpt",
              "webvid-covr fine-tuned on FashionIQ (all categories)"),
        _blip("cirr-gt", "", "CoVR trained on CIRR only from blip-l-coco (not released)"),
        _blip2("blip2-l-coco", f"{GCS}/LAVIS/models/BLIP2/blip2_finetune_coco.pth", "LAVIS BLIP-2 COCO fine-tune"),
        _blip2("blip2-l-coco_covr", f"{HF}/CoVR2/resolve/main/webvid-covr.ckpt", "CoVR-2 on WebVid-CoVR"),
        _blip2("blip2-l-coco_coir", f"{HF}/CoVR2/resolve/main/coir.ckpt", "CoVR-2 on CC-CoIR"),
        _blip2("blip2-l-coco_coir+covr", f"{HF}/CoVR2/resolve/main/coir%2Bcovr.ckpt", "CoVR-2 on CC-CoIR + WebVid-CoVR"),
    )
}


def list_pretrained(supported_only: bool = False) -> list[str]:
    """All weight tags (``supported_only``: only those the BLIP encoder can load)."""
    return [t for t, cfg in _TAGS.items() if cfg.supported or not supported_only]


def get_pretrained(tag: str) -> PretrainedCfg:
    """The :class:`PretrainedCfg` of ``tag`` (KeyError naming the known tags otherwise)."""
    try:
        return _TAGS[tag]
    except KeyError:
        raise KeyError(f"unknown weight tag {tag!r}; known: {', '.join(_TAGS)}") from None
