"""Heads: turn the backbone's last hidden states into class scores.

Pluggable through a small registry, like methods. The classification head pools only the
input's positions (never the prompt's), so pooling means the same with and without a prompt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from promptlearning.backbones import Backbone
from promptlearning.context import PromptContext
from promptlearning.data.batching import Batch
from promptlearning.errors import ConfigError, UnknownNameError

POOLINGS = ("auto", "cls", "mean", "last")


@dataclass
class HeadConfig:
    kind: str = "classification"
    pooling: str = "auto"  # auto: mean for encoders, last token for decoders
    dropout: float = 0.1
    label_words: dict[str, list[str]] | None = None  # verbalizer: words per label (default: the label names)

    def __post_init__(self) -> None:
        ensure_heads_registered()
        if self.kind not in HEADS:
            raise UnknownNameError(f"unknown head {self.kind!r}; choose one of: {', '.join(sorted(HEADS))}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {self.pooling!r}; choose one of: {', '.join(POOLINGS)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"head dropout must be in [0, 1) (got {self.dropout})")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HeadConfig:
        from promptlearning.configs import build

        return build(cls, values, "head option(s)")


class Head(nn.Module):
    kind: ClassVar[str] = ""

    def __init__(self, config: HeadConfig, backbone: Backbone, labels: Sequence[str]) -> None:
        super().__init__()
        self.config = config
        self.num_labels = len(labels)

    @property
    def serves_many_tasks(self) -> bool:
        """Whether one head can score several tasks' label sets (no per-task weights)."""
        return False

    def add_task(self, task: Any, backbone: Backbone, index: int) -> None:
        """Make room for another task's labels. Heads with per-task weights serve only the one they were built for."""
        if index == 0 and len(task.labels) == self.num_labels:
            return
        raise ConfigError(f"the {self.kind} head has per-task weights and serves one task; use "
                          "--head label_description (or the verbalizer on a causal LM) for several or new tasks")

    def default_template(self, task: str | None, labels: Sequence[str] | None = None) -> str | None:
        """The template this head wants for a task (its name and labels) when the user and the method give none."""
        return None

    def forward(self, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor:  # (B, C)
        raise NotImplementedError

    def score(self, batch: Batch, run: Callable[[Batch], tuple[torch.Tensor, PromptContext]]) -> torch.Tensor:
        """Class scores for a batch; ``run`` forwards the prompted backbone. Heads that need other
        inputs than the batch itself (e.g. multi-token label words) override this."""
        hidden, ctx = run(batch)
        return self(hidden, ctx)


def pool(hidden: torch.Tensor, text_mask: torch.Tensor, how: str) -> torch.Tensor:
    """Pool the input positions of (B, L, H) hidden states into (B, H)."""
    mask = text_mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    if how == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    if how == "cls":
        return hidden[:, 0]
    if how == "last":
        # index of each row's last attended position (works for left and right padding)
        positions = torch.arange(text_mask.shape[1], device=hidden.device)
        last = (text_mask.long() * positions).argmax(dim=1)  # (B,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ConfigError(f"unknown pooling {how!r}; choose one of: {', '.join(POOLINGS)}")


HEADS: dict[str, type[Head]] = {}


def register_head(cls: type[Head]) -> type[Head]:
    """Class decorator: make a head available by its ``kind`` (API, CLI, adapters)."""
    if not cls.kind:
        raise TypeError(f"{cls.__name__} needs a non-empty `kind`")
    if cls.kind in HEADS and HEADS[cls.kind] is not cls:
        raise TypeError(f"head kind {cls.kind!r} is already registered by {HEADS[cls.kind].__name__}")
    HEADS[cls.kind] = cls
    return cls


def ensure_heads_registered() -> None:
    """Import every module of the heads package so their ``@register_head`` decorators run."""
    from promptlearning.registry import import_submodules

    import_submodules("promptlearning.heads", skip=frozenset({"base"}))


def head_kinds() -> list[str]:
    """Every registered head kind, sorted (for CLI choices and messages)."""
    ensure_heads_registered()
    return sorted(HEADS)


def build_head(config: HeadConfig, backbone: Backbone, labels: Sequence[str] | int) -> Head:
    names = [f"label{i}" for i in range(labels)] if isinstance(labels, int) else list(labels)
    ensure_heads_registered()
    return HEADS[config.kind](config, backbone, names)

