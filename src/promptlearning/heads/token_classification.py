"""The token-classification head: one tag per input position, read at each word's first sub-token.

P-tuning v2's sequence-labelling head: the last hidden state of every input position goes through
dropout and one linear layer over the tag set. The head scores every input position (the prompt
positions a method prepends are dropped first), so it needs nothing but the hidden states and
the context; which positions count is the labels' business: -100 on every position that is not
a word's first sub-token (see :mod:`promptlearning.data.token_batching`), and the loss averages
over the others only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from promptlearning.backbones import Backbone
from promptlearning.configs import option
from promptlearning.context import PromptContext
from promptlearning.errors import ConfigError
from promptlearning.heads.base import Head, HeadConfig, OutputKind, register_head


@dataclass
class TokenClassificationConfig(HeadConfig):
    """Options of the token-classification head."""

    kind: str = option("token_classification", "the token-classification head")
    dropout: float = option(0.0, "dropout before the linear layer, in [0, 1) (P-tuning v2 used 0.1)")

    def check(self) -> None:
        super().check()
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"head dropout must be in [0, 1) (got {self.dropout})")


@register_head
class TokenClassificationHead(Head):
    """Dropout and a linear layer over every input position's hidden state: (B, L, tags)."""

    kind = "token_classification"
    config_class = TokenClassificationConfig
    summary = "a tag per word (its first sub-token) by a linear layer over the tag set (sequence labelling, trained)"
    output = OutputKind.TOKEN_LABELS
    needs_training = True
    serves_many_tasks = False

    config: TokenClassificationConfig

    def __init__(self, config: TokenClassificationConfig, backbone: Backbone, labels: Sequence[str]) -> None:
        super().__init__(config, backbone, labels)
        self.dropout = nn.Dropout(config.dropout)
        self.linear = nn.Linear(backbone.info.hidden_size, len(labels))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same head every time: reproducible without a global seed
            nn.init.normal_(self.linear.weight, std=0.02)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor:
        text = hidden[:, ctx.num_prompt_positions:]  # (B, L, H): the input positions, as the labels cover
        return self.linear(self.dropout(text))  # (B, L, C)

    def loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy averaged over the scored positions (labels != -100); 0 when a batch scores none
        (every word cut by max_length), where a plain mean would be NaN."""
        if labels.dim() != 2:
            raise ConfigError("the token_classification head tags every word and trains on tagged sentences; "
                              "use a tagging task (e.g. --task pos_wsj) or another --head for sentence labels")
        total = F.cross_entropy(scores.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="sum")
        return total / (labels != -100).sum().clamp(min=1)
