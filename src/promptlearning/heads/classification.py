"""The classification head: dropout and a linear layer over the pooled input positions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from promptlearning.backbones import Backbone
from promptlearning.configs import option
from promptlearning.context import PromptContext
from promptlearning.errors import ConfigError
from promptlearning.heads.base import Head, HeadConfig, OutputKind, legacy_key, register_head
from promptlearning.heads.pooling import check_pooling, pool


@dataclass
class ClassificationConfig(HeadConfig):
    """Options of the classification head."""

    kind: str = option("classification", "the classification head")
    pooling: str = option("auto", "how the input's positions become one vector: auto (mean on encoders, the last "
                                  "token on decoders), cls, mean or last")
    dropout: float = option(0.1, "dropout before the linear layer, in [0, 1)")
    label_words: dict[str, list[str]] | None = legacy_key(None)

    def check(self) -> None:
        super().check()
        check_pooling(self.pooling)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"head dropout must be in [0, 1) (got {self.dropout})")


@register_head
class ClassificationHead(Head):
    """Dropout and a linear layer over the pooled input positions."""

    kind = "classification"
    config_class = ClassificationConfig
    summary = "pooled linear layer over the input's positions (per-task weights, trained)"
    output = OutputKind.LABEL
    needs_training = True
    serves_many_tasks = False
    input_kinds = frozenset({"text", "image"})  # image backbones hand patch tokens or pooled features alike

    config: ClassificationConfig

    def __init__(self, config: ClassificationConfig, backbone: Backbone, labels: Sequence[str]) -> None:
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
