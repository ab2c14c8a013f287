"""The classification head: dropout and a linear layer over the pooled input positions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from promptlearning.backbones import Backbone
from promptlearning.context import PromptContext
from promptlearning.heads.base import Head, HeadConfig, pool, register_head


@register_head
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
