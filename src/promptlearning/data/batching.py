"""Tokenised examples and the batches the model consumes.

A batch carries each row's task id (and optionally a task representation) besides ids and
mask, so mixed-task batches, multi-task training and hypernetworks need no special path.
Datasets are tokenised once; batches are padded to their own longest row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch

from promptlearning.data.examples import Example
from promptlearning.data.templates import Template, special_tokens
from promptlearning.data.truncation import TruncationCount, check_truncation, keep
from promptlearning.errors import ConfigError


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, L)
    task_ids: torch.Tensor  # (B,)
    labels: torch.Tensor | None = None  # (B,)
    token_type_ids: torch.Tensor | None = None  # (B, L)
    task_repr: torch.Tensor | None = None  # (B, D)
    prompt_slots: torch.Tensor | None = None  # (B, L): template pseudo-token index, -1 elsewhere
    pixel_values: torch.Tensor | None = None  # (B, 3, S, S) uint8: the images of an image task (data.images)

    def to(self, device: torch.device | str) -> Batch:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in moved.items()})

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass(frozen=True)
class Encoded:
    """One tokenised example."""

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...] | None
    label: int
    task_id: int
    slots: tuple[int, ...] | None = None
    pixels: torch.Tensor | None = field(default=None, compare=False, repr=False)  # (3, S, S) uint8 of an image row


def encode(tokenizer: Any, examples: Sequence[Example], max_length: int, task_id: int = 0,
           template: Template | None = None, truncation: str = "head",
           count: TruncationCount | None = None) -> list[Encoded]:
    """Tokenise examples once. Over-long inputs keep the part ``truncation`` names (pairs: from the
    longer text first, each keeping its head); ``count``, if given, records what was cut."""
    check_truncation(truncation)
    if not examples:
        return []
    if template is not None:
        rendered = [template.render(tokenizer, e, max_length, truncation, count) for e in examples]
        return [Encoded(tuple(ids), None, e.label, task_id, tuple(slots))
                for (ids, slots), e in zip(rendered, examples, strict=True)]
    texts_a = [e.text_a for e in examples]
    pairs = any(e.text_b is not None for e in examples)
    texts_b = [e.text_b or "" for e in examples] if pairs else None
    if pairs and truncation != "head":
        raise ConfigError(f"--truncation {truncation} works on single texts; sentence pairs keep each text's head "
                          "(drop --truncation or use single texts)")
    if truncation == "head":
        out = tokenizer(texts_a, texts_b, truncation=True, max_length=max_length)
        if count is not None:
            full = tokenizer(texts_a, texts_b, truncation=False)["input_ids"]
            for before, after in zip(full, out["input_ids"], strict=True):
                count.add(len(before), len(after))
        types = out.get("token_type_ids")
        return [
            Encoded(tuple(ids), tuple(types[i]) if types is not None else None, e.label, task_id)
            for i, (ids, e) in enumerate(zip(out["input_ids"], examples, strict=True))
        ]
    prefix, suffix = special_tokens(tokenizer)
    room = max_length - len(prefix) - len(suffix)
    full = tokenizer(texts_a, truncation=False)
    types = full.get("token_type_ids")
    out_items = []
    for i, (ids, e) in enumerate(zip(full["input_ids"], examples, strict=True)):
        ids = list(ids)
        if len(ids) > max_length:
            body = ids[len(prefix):len(ids) - len(suffix)]
            ids = list(prefix) + keep(body, room, truncation) + list(suffix)
        if count is not None:
            count.add(len(full["input_ids"][i]), len(ids))
        row_types = tuple(types[i][:len(ids)]) if types is not None else None
        out_items.append(Encoded(tuple(ids), row_types, e.label, task_id))
    return out_items


def collate(items: Sequence[Encoded], pad_id: int, left_pad: bool = False) -> Batch:
    """Pad to the longest row; decoders pad on the left so the last position is real text."""
    width = max(len(x.input_ids) for x in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    has_types = items[0].token_type_ids is not None
    types = torch.zeros((len(items), width), dtype=torch.long) if has_types else None
    slots = torch.full((len(items), width), -1, dtype=torch.long) if items[0].slots is not None else None
    for row, item in enumerate(items):
        n = len(item.input_ids)
        cols = slice(width - n, width) if left_pad else slice(0, n)
        ids[row, cols] = torch.tensor(item.input_ids)
        mask[row, cols] = 1
        if types is not None and item.token_type_ids is not None:
            types[row, cols] = torch.tensor(item.token_type_ids)
        if slots is not None and item.slots is not None:
            slots[row, cols] = torch.tensor(item.slots)
    return Batch(
        input_ids=ids,
        attention_mask=mask,
        task_ids=torch.tensor([x.task_id for x in items], dtype=torch.long),
        labels=torch.tensor([x.label for x in items], dtype=torch.long),
        token_type_ids=types,
        prompt_slots=slots,
        pixel_values=torch.stack([x.pixels for x in items if x.pixels is not None]) if items[0].pixels is not None else None,
    )


def batches(items: Sequence[Encoded], batch_size: int, pad_id: int, left_pad: bool = False,
            order: Sequence[int] | None = None) -> list[Batch]:
    """Split (optionally reordered) items into padded batches."""
    index = list(order) if order is not None else list(range(len(items)))
    return [collate([items[i] for i in index[s:s + batch_size]], pad_id, left_pad)
            for s in range(0, len(index), batch_size)]


#: padded tokens one evaluation batch may hold per row of ``batch_size`` (see :func:`token_batches`)
TOKENS_PER_ROW = 128


def token_batches(items: Sequence[Encoded], batch_size: int, pad_id: int, left_pad: bool = False,
                  order: Sequence[int] | None = None, max_tokens: int | None = None) -> list[Batch]:
    """Batches of at most ``batch_size`` rows *and* ``max_tokens`` padded tokens (rows x longest row).

    Evaluation memory grows with the padded tokens of a batch, not its rows: 64 rows of 512 tokens
    hold as many activations as 256 rows of 128. Capping the tokens keeps long inputs from
    running a big backbone out of memory, while short ones (most sentences) still fill whole
    batches. ``max_tokens`` defaults to ``batch_size * TOKENS_PER_ROW``, so inputs up to 128 tokens
    batch exactly as :func:`batches` would. A single row longer than the cap is its own batch."""
    cap = max_tokens if max_tokens is not None else batch_size * TOKENS_PER_ROW
    index = list(order) if order is not None else list(range(len(items)))
    out: list[Batch] = []
    group: list[Encoded] = []
    longest = 0
    for i in index:
        item = items[i]
        width = max(longest, len(item.input_ids))
        if group and (len(group) >= batch_size or width * (len(group) + 1) > cap):
            out.append(collate(group, pad_id, left_pad))
            group, width = [], len(item.input_ids)
        group.append(item)
        longest = width
    if group:
        out.append(collate(group, pad_id, left_pad))
    return out
