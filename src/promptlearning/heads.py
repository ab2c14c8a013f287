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

from .backbones import Backbone
from .data.batching import Batch
from .errors import ConfigError, UnknownNameError
from .methods.base import PromptContext

POOLINGS = ("auto", "cls", "mean", "last")


@dataclass
class HeadConfig:
    kind: str = "classification"
    pooling: str = "auto"  # auto: mean for encoders, last token for decoders
    dropout: float = 0.1
    label_words: dict[str, list[str]] | None = None  # verbalizer: words per label (default: the label names)

    def __post_init__(self) -> None:
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
        from .configs import build

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


class ClassificationHead(Head):
    """Dropout and a linear layer over the pooled input positions."""

    kind = "classification"

    def __init__(self, config: HeadConfig, backbone: Backbone, labels: Sequence[str]) -> None:
        super().__init__(config, backbone, labels)
        num_labels = len(labels)
        self.pooling = config.pooling if config.pooling != "auto" else ("last" if backbone.info.is_decoder else "mean")
        self.dropout = nn.Dropout(config.dropout)
        self.linear = nn.Linear(backbone.info.hidden_size, num_labels)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same head every time: reproducible without a global seed
            nn.init.normal_(self.linear.weight, std=0.02)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor:
        assert ctx.text_mask is not None
        text = hidden[:, ctx.num_prompt_positions:]  # (B, L, H)
        pooled = pool(text, ctx.text_mask, self.pooling)  # (B, H)
        return self.linear(self.dropout(pooled))  # (B, C)


HEADS: dict[str, type[Head]] = {"classification": ClassificationHead}


def register_head(cls: type[Head]) -> type[Head]:
    HEADS[cls.kind] = cls
    return cls


def build_head(config: HeadConfig, backbone: Backbone, labels: Sequence[str] | int) -> Head:
    names = [f"label{i}" for i in range(labels)] if isinstance(labels, int) else list(labels)
    return HEADS[config.kind](config, backbone, names)


from . import label_description, verbalizer  # noqa: E402,F401  (register the other heads)
