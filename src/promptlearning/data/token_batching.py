"""Tagged sentences as token ids with per-position labels: a word is scored at its first sub-token.

The backbone splits words into sub-tokens; a tagger reads one position per word, the first
sub-token's (as BERT's NER recipe and P-tuning v2 do), and every other position (later
sub-tokens, special tokens, a template's fixed words and [P] slots, padding) carries -100,
the label cross-entropy ignores. The prompt positions a method prepends are no part of the
input: the head drops them before scoring, so labels here cover the input positions alone.

Words are joined with single spaces and tokenised as one text with character offsets (a fast
tokenizer's offset mapping), so each sub-token is tokenised exactly as in running text, the
first sub-token of a word being the first whose characters overlap it. A sentence longer
than ``max_length`` loses its last sub-tokens; a word whose first sub-token is cut has no
position (``-1``): it is not trained on, and the metrics count it as an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from promptlearning.data.batching import Batch, Encoded, collate
from promptlearning.data.templates import Template, special_tokens, tokenize
from promptlearning.errors import ConfigError

IGNORE = -100  # the label of a position no loss or metric reads


@dataclass(frozen=True)
class TokenEncoded(Encoded):
    """One tokenised sentence. ``label`` is unused (-100); ``tags`` labels every input position."""

    tags: tuple[int, ...] = ()  # per position: the word's tag id at its first sub-token, -100 elsewhere
    word_starts: tuple[int, ...] = ()  # per word: its first sub-token's position, -1 when cut off
    gold: tuple[str, ...] = ()  # per word: the gold tag's name (may be outside the model's tag set)


def _text_piece(tokenizer: object, words: Sequence[str], lead: str, budget: int) -> tuple[list[int], list[int]]:
    """Ids of the words as one text (``lead`` prepended, cut to ``budget`` tokens) and each word's first
    token index in them (-1: cut off, or no token at all)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("token labelling needs a fast (Rust) tokenizer to align words with sub-tokens; "
                          "use a backbone whose tokenizer has one (every packaged backbone does)")
    text = lead + " ".join(words)
    out = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)  # type: ignore[operator]
    ids = list(out["input_ids"])[:budget]
    offsets = list(out["offset_mapping"])[:budget]
    starts, pos, token = [], len(lead), 0
    for word in words:
        end = pos + len(word)
        while token < len(offsets) and offsets[token][1] <= pos:  # tokens wholly before this word
            token += 1
        hit = token < len(offsets) and offsets[token][0] < end and offsets[token][1] > pos
        starts.append(token if hit else -1)
        pos = end + 1  # the joining space
    return ids, starts


def encode_words(tokenizer: object, words: Sequence[str], max_length: int,
                 template: Template | None = None) -> tuple[list[int], list[int] | None, list[int]]:
    """(ids, template slots or None, each word's first sub-token position or -1) of one sentence.

    With a template, its fixed words and [P] slots sit where it puts them and the sentence fills
    ``{text_a}``; a template with ``{text_b}`` is refused (a tagged row is one text)."""
    if template is not None and template.uses_text_b:
        raise ConfigError(f"template {template.text!r} has {{text_b}}, but a tagged sentence is one text; "
                          "use a template with {text_a} alone")
    prefix, suffix = special_tokens(tokenizer)
    parts = template.parts if template is not None else ()
    fixed = len(prefix) + len(suffix) + sum(
        p.count if p.kind == "pseudo" else len(tokenize(tokenizer, p.value)) for p in parts if p.kind in ("pseudo", "literal"))
    budget = max_length - fixed
    if budget < 1:
        raise ConfigError(f"max_length {max_length} leaves no room for the sentence; raise --max-length")
    ids, slots = list(prefix), [-1] * len(prefix)
    positions: list[int] = []
    if template is None:
        text_ids, starts = _text_piece(tokenizer, words, "", budget)
        positions = [s + len(ids) if s >= 0 else -1 for s in starts]
        ids += text_ids
        return ids + list(suffix), None, positions
    pseudo = 0
    for i, part in enumerate(parts):
        if part.kind == "pseudo":
            ids += [0] * part.count  # placeholder ids: the method's vectors replace their embeddings
            slots += list(range(pseudo, pseudo + part.count))
            pseudo += part.count
        elif part.kind == "literal":
            piece = tokenize(tokenizer, part.value)
            ids += piece
            slots += [-1] * len(piece)
        elif part.kind == "text_a":
            lead = parts[i - 1].value if i > 0 and parts[i - 1].kind == "space" else ""
            text_ids, starts = _text_piece(tokenizer, words, lead, budget)
            positions = [s + len(ids) if s >= 0 else -1 for s in starts]
            ids += text_ids
            slots += [-1] * len(text_ids)
    return ids + list(suffix), slots + [-1] * len(suffix), positions


def encode_tagged(tokenizer: object, sentences: Sequence[tuple[Sequence[str], Sequence[str] | None]],
                  tag_ids: dict[str, int], max_length: int, template: Template | None = None,
                  task_id: int = 0) -> list[TokenEncoded]:
    """Tokenise (words, gold tag names) sentences once (gold None: untagged text to predict). ``tag_ids``
    is the model's tag set: a gold tag outside it trains nothing (-100) and stays in ``gold`` for the
    metrics to count."""
    items = []
    for words, given in sentences:
        ids, slots, starts = encode_words(tokenizer, words, max_length, template)
        tags = [IGNORE] * len(ids)
        gold = list(given) if given is not None else []
        for start, name in zip(starts, gold, strict=given is not None):
            if start >= 0:
                tags[start] = tag_ids.get(name, IGNORE)
        items.append(TokenEncoded(tuple(ids), None, IGNORE, task_id, tuple(slots) if slots is not None else None,
                                  tags=tuple(tags), word_starts=tuple(starts), gold=tuple(gold)))
    return items


def collate_tagged(items: Sequence[TokenEncoded], pad_id: int, left_pad: bool = False) -> Batch:
    """:func:`~promptlearning.data.batching.collate`, with labels (B, L) padded like the ids (-100 on padding)."""
    batch = collate(items, pad_id, left_pad)
    width = batch.input_ids.shape[1]
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    for row, item in enumerate(items):
        n = len(item.tags)
        cols = slice(width - n, width) if left_pad else slice(0, n)
        labels[row, cols] = torch.tensor(item.tags, dtype=torch.long)
    return replace(batch, labels=labels)


def tagged_batches(items: Sequence[TokenEncoded], batch_size: int, pad_id: int, left_pad: bool = False,
                   order: Sequence[int] | None = None) -> list[Batch]:
    """Split (optionally reordered) items into padded batches with per-position labels."""
    index = list(order) if order is not None else list(range(len(items)))
    return [collate_tagged([items[i] for i in index[s:s + batch_size]], pad_id, left_pad)
            for s in range(0, len(index), batch_size)]

