"""The linear probe: no prompt at all, only the head trains on the frozen backbone's features.

A reference every results table needs; a method with no prompt positions, so it runs through
exactly the same model, trainer, adapters and bench as the prompt methods.
"""

from __future__ import annotations

from dataclasses import dataclass

from promptlearning.methods.base import MethodConfig, PromptMethod, register_method
from promptlearning.methods.search_space import Choice, LogFloat


@dataclass
class LinearProbeConfig(MethodConfig):
    """No options: only the head trains."""


@register_method
class LinearProbe(PromptMethod):
    name = "linear_probe"
    config_class = LinearProbeConfig
    summary = "head-only linear probing of the frozen backbone (no prompt)"
    default_lr = 1e-2
    input_kinds = frozenset({"text", "image"})
    # nothing of its own trains: only the head's learning rate matters
    search_space = {"train.lr": Choice((None,)), "train.head_lr": LogFloat(1e-3, 1e-1)}
