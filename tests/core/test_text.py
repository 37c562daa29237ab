"""Caption cleanup (CoVR's pre_caption) and the offline BLIP tokenizer."""

from __future__ import annotations

from covr_core.text import DEC_TOKEN_ID, ENC_TOKEN_ID, build_blip_tokenizer, enc_token_id, pre_caption


def test_pre_caption_matches_covr_rules():
    assert pre_caption("Make it RED.") == "make it red"
    assert pre_caption('a "dog" (small) * # : ; ~ ! here') == "a dog small here"
    assert pre_caption("  spaced    out\n") == "spaced out"
    assert pre_caption("") == ""
    words = " ".join(f"w{i}" for i in range(40))
    assert pre_caption(words).split() == [f"w{i}" for i in range(30)]
    assert pre_caption(words, max_words=5) == "w0 w1 w2 w3 w4"
    assert pre_caption("keep, commas? and-dashes'") == "keep, commas? and-dashes'"


def test_blip_tokenizer_ids():
    tok = build_blip_tokenizer()
    assert len(tok) == 30524
    assert tok.bos_token_id == DEC_TOKEN_ID == 30522
    assert enc_token_id(tok) == ENC_TOKEN_ID == 30523
    ids = tok("a red car")["input_ids"]
    assert ids == [101, 1037, 2417, 2482, 102]  # bert-base-uncased ids: [CLS] a red car [SEP]


def test_enc_id_fallback_for_tokenizers_without_enc(tmp_path):
    from transformers import BertTokenizer

    from covr_core.text import bundled_vocab_file

    vocab = {t: i for i, t in enumerate(bundled_vocab_file().read_text(encoding="utf-8").splitlines())}
    plain = BertTokenizer(vocab=vocab)
    assert enc_token_id(plain) == 30523
