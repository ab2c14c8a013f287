"""Input -> target pairs as token ids with per-position labels: the loss reads the target's tokens only.

A training row is the prompt (the template with the input in ``{text_a}``), then the target's
tokens and the end-of-text token, so the model learns where an answer stops. Each position's
label is its own token id on the target and -100 everywhere else (special tokens, [P] slots, the
template's words, the input, padding); the language-modelling head shifts them, position t
predicting token t + 1. The prompt positions a method prepends are no part of the row: the head
drops them first, so labels cover the row alone.

The target is never cut: the input gives way (``truncation`` says which part it keeps) so that the
whole row fits ``max_length``, and a target that leaves no room for the input is a one-line error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from promptlearning.data.batching import Batch, Encoded, collate
from promptlearning.data.examples import Example
from promptlearning.data.templates import Template, tokenize
from promptlearning.data.text_pairs import TextPair, target_separator
from promptlearning.data.truncation import TruncationCount
from promptlearning.errors import DataError

IGNORE = -100  # the label of a position no loss reads


@dataclass(frozen=True)
class TargetEncoded(Encoded):
    """One tokenised pair. ``label`` is unused (-100); ``targets`` labels every position of the row."""

    targets: tuple[int, ...] = ()  # per position: the token id on the target (and end-of-text), -100 elsewhere


def target_ids(tokenizer: Any, template: Template, target: str) -> list[int]:
    """The target's token ids as they follow the prompt (a space first unless the template ends in
    whitespace), then the end-of-text token if the tokenizer has one."""
    eos = getattr(tokenizer, "eos_token_id", None)
    return tokenize(tokenizer, target_separator(template.text) + target) + ([int(eos)] if eos is not None else [])


def encode_pairs(tokenizer: Any, template: Template, pairs: Sequence[TextPair], max_length: int, task_id: int = 0,
                 truncation: str = "head", count: TruncationCount | None = None) -> list[TargetEncoded]:
    """Tokenise pairs once: each row the rendered prompt (cut to leave the target room) and the target."""
    fixed = template.fixed_length(tokenizer)
    items = []
    for number, pair in enumerate(pairs, 1):
        target = target_ids(tokenizer, template, pair.target)
        if fixed + len(target) + 1 > max_length:
            raise DataError(f"the target of pair {number} ({pair.target[:40]!r}) takes {len(target)} tokens, leaving "
                            f"no room for its input within --max-length {max_length}; raise --max-length or shorten "
                            "the target")
        ids, slots = template.render(tokenizer, Example(pair.input, 0), max_length - len(target), truncation, count)
        items.append(TargetEncoded(tuple(ids + target), None, IGNORE, task_id, tuple(slots + [-1] * len(target)),
                                   targets=(IGNORE,) * len(ids) + tuple(target)))
    return items


def encode_prompts(tokenizer: Any, template: Template, inputs: Sequence[str], max_length: int, task_id: int = 0,
                   truncation: str = "head", count: TruncationCount | None = None) -> list[Encoded]:
    """Rows to generate from: each input in the template, cut to ``max_length`` tokens (the caller leaves
    room for the tokens it will generate)."""
    if template.fixed_length(tokenizer) + 1 > max_length:
        raise DataError(f"the template {template.text[:60]!r} leaves no room for the input within {max_length} tokens "
                        "(--max-length less the tokens to generate); raise --max-length or shorten the template")
    rendered = [template.render(tokenizer, Example(text, 0), max_length, truncation, count) for text in inputs]
    return [Encoded(tuple(ids), None, IGNORE, task_id, tuple(slots)) for ids, slots in rendered]


def collate_targets(items: Sequence[TargetEncoded], pad_id: int, left_pad: bool = False) -> Batch:
    """:func:`~promptlearning.data.batching.collate`, with labels (B, L) padded like the ids (-100 on padding)."""
    batch = collate(items, pad_id, left_pad)
    width = batch.input_ids.shape[1]
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    for row, item in enumerate(items):
        n = len(item.targets)
        cols = slice(width - n, width) if left_pad else slice(0, n)
        labels[row, cols] = torch.tensor(item.targets, dtype=torch.long)
    return replace(batch, labels=labels)


def target_batches(items: Sequence[TargetEncoded], batch_size: int, pad_id: int, left_pad: bool = False,
                   order: Sequence[int] | None = None) -> list[Batch]:
    """Split (optionally reordered) items into padded batches with per-position labels."""
    index = list(order) if order is not None else list(range(len(items)))
    return [collate_targets([items[i] for i in index[s:s + batch_size]], pad_id, left_pad)
            for s in range(0, len(index), batch_size)]
