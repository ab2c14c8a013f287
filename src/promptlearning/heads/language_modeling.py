"""The language-modelling head: next-token logits of a causal LM, trained on target text only.

Prefix tuning was made for generation: a prompt trained with the language-modelling loss on
target text. This head gives every prompt method that: it reads the backbone's own (frozen) LM
head, captured at construction and never saved (like the verbaliser's), and scores every input
position with it, (B, L, V), the prompt positions a method prepends dropped first. Which
positions train is the labels' business (:mod:`promptlearning.data.target_batching`): the target's
tokens carry their ids, everything else (the template, the input, padding) -100; the loss is the
shifted cross-entropy, position t predicting token t + 1, averaged over the target tokens.

It has no parameters, so a fixed prompt (``--method fixed_prompt``) generates with no training at
all: the no-prompt and in-context baselines. Fine-tuning trains the LM head with the backbone
(SmolLM2 ties it to the input embeddings), since the head is the backbone's own module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from promptlearning.backbones import Backbone
from promptlearning.configs import option
from promptlearning.context import PromptContext
from promptlearning.errors import ConfigError
from promptlearning.heads.base import Head, HeadConfig, OutputKind, register_head

#: a causal LM the messages name
CAUSAL_LM_EXAMPLE = "smollm2-135m"


@dataclass
class LanguageModelingConfig(HeadConfig):
    """The language-modelling head has no options: the backbone's LM head is the whole head."""

    kind: str = option("language_modeling", "the language-modelling head (generation)")


@register_head
class LanguageModelingHead(Head):
    """Next-token logits (B, L, V) over the input positions from the backbone's frozen LM head."""

    kind = "language_modeling"
    config_class = LanguageModelingConfig
    summary = ("next-token scores of a causal LM for generation, trained on target tokens only "
               "(input -> target text pairs; no parameters of its own)")
    output = OutputKind.TEXT
    needs_training = False
    serves_many_tasks = False
    needs_lm_head = True

    @classmethod
    def check_backbone(cls, backbone: Backbone) -> None:
        if not backbone.info.is_decoder or backbone.lm_head is None:
            raise ConfigError(f"the language_modeling head generates text with a causal LM; {backbone.info.name} is "
                              f"an encoder: use --backbone {CAUSAL_LM_EXAMPLE} (a causal LM), or use --head "
                              "classification to label texts")

    def __init__(self, config: LanguageModelingConfig, backbone: Backbone, labels: Sequence[str]) -> None:
        super().__init__(config, backbone, labels)
        object.__setattr__(self, "_lm_head", backbone.lm_head)  # the backbone's own: not saved with the adapter

    def add_task(self, task: Any, backbone: Backbone, index: int) -> None:
        """One task: the head has no labels to grow, but a model generates for the task it was trained on."""
        if index != 0:
            raise ConfigError("the language_modeling head serves one task (a generator is trained on one task's "
                              "pairs); give one --task")

    def forward(self, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor:
        text = hidden[:, ctx.num_prompt_positions:]  # (B, L, H): the input positions, as the labels cover
        lm_head: Any = self._lm_head
        return lm_head(text)  # (B, L, V)

    def loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each position's scores against the next position's label, averaged over the
        target tokens (labels != -100); 0 when a batch has none, where a plain mean would be NaN."""
        if labels.dim() != 2:
            raise ConfigError("the language_modeling head trains on input -> target text pairs; use a generation "
                              "task (e.g. --task trivia_qa) or a --train-file with input and target columns")
        logits = scores[:, :-1].flatten(0, 1).float()  # (B * (L - 1), V): position t predicts token t + 1
        gold = labels[:, 1:].flatten()  # (B * (L - 1),)
        total = F.cross_entropy(logits, gold, ignore_index=-100, reduction="sum")
        return total / (gold != -100).sum().clamp(min=1)
