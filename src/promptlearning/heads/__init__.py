"""Heads: what turns the prompted backbone's hidden states into a task's outputs.

One module per head, each registering itself with :func:`register_head` under its ``kind``:
``classification`` (pooled linear layer), ``verbalizer`` (label words scored by a causal
LM's own head) and ``label_description`` (cosine to encoded label names). A new head
(token labelling, language modelling, an image head) is one new module here.
"""

from __future__ import annotations

from promptlearning.heads.base import (
    HEADS,
    POOLINGS,
    Head,
    HeadConfig,
    build_head,
    head_kinds,
    pool,
    register_head,
)

__all__ = ["HEADS", "POOLINGS", "Head", "HeadConfig", "build_head", "head_kinds", "pool", "register_head"]
