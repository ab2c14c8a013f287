"""Tiny randomly initialised backbones built in memory.

They make unit tests take milliseconds and let the whole CLI run end to end with no
download, while exercising exactly the code paths of a real BERT or Llama backbone.
The weights are seeded, so two builds are identical (adapters made on one load on the other).
"""

from __future__ import annotations

import string
from typing import Any

import torch

_WORDS = ["the", "a", "an", "and", "or", "but", "not", "no", "is", "was", "are", "be", "it", "this", "that", "of", "to", "in", "on", "for", "with", "as", "at", "by", "from", "movie", "film", "story", "plot", "actor", "acting", "great", "good", "bad", "awful", "boring", "fun", "funny", "best", "worst", "love", "hate", "like", "enjoy", "product", "phone", "camera", "battery", "works", "broke", "price", "cheap", "quality", "review", "positive", "negative", "neutral", "certain", "uncertain", "may", "might", "possibly", "likely", "fresh", "rotten", "very", "really", "so", "too", "quite", "i", "you", "he", "she", "they", "we", "my", "your", "his", "her", "their", "one", "two", "three", "time", "year", "day", "well", "just", "even", "more", "most"]


def _vocab() -> dict[str, int]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    pieces = specials + chars + ["##" + c for c in string.ascii_lowercase + string.digits] + _WORDS
    vocab: dict[str, int] = {}
    for p in pieces:
        vocab.setdefault(p, len(vocab))
    return vocab


def tiny_tokenizer(kind: str = "bert") -> Any:
    """A lower-casing WordPiece tokenizer over a ~200-token vocabulary."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = _vocab()
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=50))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    if kind == "bert":
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
        )
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                       cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   bos_token="[CLS]", eos_token="[SEP]")


def tiny_parts(kind: str = "bert", *, layers: int = 2, hidden: int = 32,
               heads: int = 4) -> tuple[Any, Any, Any]:
    """(model, tokenizer, output embeddings or None) of a seeded random 2-layer BERT or Llama.

    :func:`promptlearning.backbones.tiny_backbone` wraps them; this module stays below it.
    """
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer(kind)
    vocab_size = len(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        if kind == "bert":
            bert_config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                                num_attention_heads=heads, intermediate_size=hidden * 2,
                                max_position_embeddings=128)
            model = BertModel(bert_config, add_pooling_layer=False)
            return model, tokenizer, None
        if kind == "llama":
            config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                                 num_attention_heads=heads, num_key_value_heads=heads,
                                 intermediate_size=hidden * 2, max_position_embeddings=256,
                                 pad_token_id=0, bos_token_id=2, eos_token_id=3)
            full = LlamaForCausalLM(config)
            return full.base_model, tokenizer, full.get_output_embeddings()
    raise ValueError(f"unknown tiny backbone kind {kind!r}; use 'bert' or 'llama'")
