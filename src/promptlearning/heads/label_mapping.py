"""The label mapping head: a frozen image classifier's own scores, mapped onto a task's labels.

The image counterpart of the verbaliser: instead of label words scored by an LM head, each label
reads one of the pretrained model's source classes (ImageNet's, for EfficientNet-Lite0). Two
mappings, after ILM-VP (Chen et al., CVPR 2023):

- ``frequency``: fitted once, before training, from the training images through the model as it
  starts (a zero-initialised visual prompt leaves it unchanged): each label takes the source class
  its images are most often predicted as, greedily one to one (the largest count first; ties broken
  by the mean probability). No parameters: a baseline that needs no training at all.
- ``learned``: a linear layer from the source logits to the labels, trained with the method.

Until fitted, label ``c`` reads source class ``c``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from promptlearning.backbones import Backbone
from promptlearning.configs import option
from promptlearning.context import PromptContext
from promptlearning.data.batching import Batch
from promptlearning.errors import ConfigError
from promptlearning.heads.base import Head, HeadConfig, OutputKind, Runner, register_head

MAPPINGS = ("frequency", "learned")


@dataclass
class LabelMappingConfig(HeadConfig):
    kind: str = option("label_mapping", "the frozen image classifier's own scores, mapped onto the task's labels")
    mapping: str = option("frequency", "frequency (each label reads the source class its training images are most "
                                       "often predicted as; no parameters) or learned (a trained linear map)")

    def check(self) -> None:
        super().check()
        if self.mapping not in MAPPINGS:
            raise ConfigError(f"unknown label mapping {self.mapping!r}; choose one of: {', '.join(MAPPINGS)}")


def greedy_one_to_one(scores: torch.Tensor) -> torch.Tensor:
    """For scores (C, K), C <= K: the column each row gets, taking the largest remaining entry first
    and striking its row and column, so no two rows share a column. Returns (C,) column indices."""
    work = scores.clone().double()
    chosen = torch.full((scores.shape[0],), -1, dtype=torch.long)
    for _ in range(scores.shape[0]):
        flat = int(work.argmax())
        row, col = divmod(flat, work.shape[1])
        chosen[row] = col
        work[row, :] = float("-inf")
        work[:, col] = float("-inf")
    return chosen


@register_head
class LabelMappingHead(Head):
    kind = "label_mapping"
    config_class = LabelMappingConfig
    summary = "the frozen image classifier's own classes mapped onto the labels (frequency: no parameters, or learned)"
    output = OutputKind.LABEL
    needs_training = False  # the frequency mapping is fitted, not trained; the learned one trains with the method
    serves_many_tasks = False
    input_kinds = frozenset({"image"})

    config: LabelMappingConfig
    source_index: torch.Tensor

    @classmethod
    def check_backbone(cls, backbone: Backbone) -> None:
        super().check_backbone(backbone)
        if int(getattr(backbone.info, "source_classes", 0)) < 1:
            raise ConfigError(f"the label_mapping head reads a classifier's own classes and {backbone.info.name} has "
                              "none; use --head classification (or efficientnet-lite0, or a ViT ...ForImageClassification)")

    def __init__(self, config: LabelMappingConfig, backbone: Backbone, labels: Sequence[str]) -> None:
        super().__init__(config, backbone, labels)
        sources = int(getattr(backbone.info, "source_classes", 0))
        if len(labels) > sources:
            raise ConfigError(f"{len(labels)} labels but {backbone.info.name}'s classifier has {sources} classes; "
                              "use --head classification")
        object.__setattr__(self, "_backbone", backbone)  # frozen, owned by the model: not saved here
        self.register_buffer("source_index", torch.arange(len(labels)))  # (C,): the source class of each label
        self.linear = nn.Linear(sources, len(labels)) if config.mapping == "learned" else None
        if self.linear is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                nn.init.normal_(self.linear.weight, std=0.01)
            nn.init.zeros_(self.linear.bias)

    def source_logits(self, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor:
        backbone: Any = self._backbone
        return backbone.source_logits(hidden, ctx.num_prompt_positions)  # (B, K)

    def forward(self, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor:
        source = self.source_logits(hidden, ctx)  # (B, K)
        if self.linear is not None:
            return self.linear(source)  # (B, C)
        return source[:, self.source_index]  # (B, C)

    @torch.no_grad()
    def fit_to_data(self, batches: Iterable[Batch], run: Runner) -> None:
        if self.linear is not None:
            return
        device = self.source_index.device
        counts: torch.Tensor | None = None
        for batch in batches:
            hidden, ctx = run(batch.to(device))
            probs = self.source_logits(hidden, ctx).float().softmax(-1)  # (B, K)
            if counts is None:
                counts = torch.zeros(self.num_labels, probs.shape[1], dtype=torch.float64, device=probs.device)
                mass = torch.zeros_like(counts)
            assert batch.labels is not None
            labels = batch.labels.to(probs.device)
            counts.index_put_((labels, probs.argmax(-1)), torch.ones(len(labels), dtype=counts.dtype,
                                                                    device=counts.device), accumulate=True)
            mass.index_add_(0, labels, probs.double())
        if counts is None:
            return
        seen = counts.sum(1, keepdim=True).clamp(min=1)
        self.source_index.copy_(greedy_one_to_one((counts + mass / seen / 2).cpu()).to(device))
