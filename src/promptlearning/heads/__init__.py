"""Heads: what turns the prompted backbone's hidden states into a task's outputs.

One module per head, each holding its config class and registering the head with
:func:`register_head` under its ``kind``: ``classification`` (pooled linear layer),
``verbalizer`` (label words scored by a causal LM's own head) and ``label_description``
(cosine to encoded label names). :mod:`.base` is the interface (what a head declares, and where
the token-labelling, language-modelling and image heads go), :mod:`.config` the selection
(``HeadConfig``) and registry, :mod:`.pooling` the shared pooling. A new head is one new module.
"""

from __future__ import annotations

from promptlearning.heads.base import (
    HEADS,
    POOLINGS,
    Head,
    HeadConfig,
    OutputKind,
    build_head,
    get_head,
    head_kinds,
    pool,
    register_head,
)

__all__ = ["HEADS", "POOLINGS", "Head", "HeadConfig", "OutputKind", "build_head", "get_head", "head_kinds", "pool",
           "register_head"]
