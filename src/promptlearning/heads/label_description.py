"""The label-description head: score an input against its task's encoded label names.

Each label is a fixed vector: the frozen backbone's mean-pooled encoding of its name (or of
phrases the user gives), computed once with no prompt. An input's score for a label is the
scaled cosine between its prompted, mean-pooled encoding and that vector. There are no
trainable parameters at all, so a task the model has never seen is served as soon as its
label names are known: at K=0, and in mixed-task batches where tasks have different label
sets (rows are scored only against their own task's labels; the rest are masked).

Mean pooling on both sides is how the packaged MiniLM sentence encoder was trained to compare
texts; on a causal LM the same scoring works but is weaker, and the verbaliser is the better
parameter-free head there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from promptlearning.backbones import Backbone
from promptlearning.configs import option
from promptlearning.context import PromptContext
from promptlearning.errors import ConfigError
from promptlearning.heads.base import Head, LabelWordsConfig, OutputKind, legacy_key, register_head
from promptlearning.heads.pooling import check_pooling, pool

if TYPE_CHECKING:
    from promptlearning.data.task_info import TaskInfo

SCALE = 20.0  # cosine similarities live in [-1, 1]; a fixed temperature makes them usable logits
MASKED = -1e4  # logit of a label slot the row's task does not have


def label_phrases(task: TaskInfo, label_words: dict[str, list[str]] | None) -> list[list[str]]:
    """Phrases standing for each label: the task's own, else the head's, else the label name."""
    out = []
    for label in task.labels:
        phrases = task.label_texts.get(label) or (label_words or {}).get(label) or [label]
        phrases = [p for p in phrases if p.strip()]
        if not phrases:
            raise ConfigError(f"label {label!r} of task {task.name!r} has only empty phrases; give a word or phrase")
        out.append(phrases)
    return out


@dataclass
class LabelDescriptionConfig(LabelWordsConfig):
    """Options of the label-description head (``label_words``: phrases for labels a task gives none for)."""

    kind: str = option("label_description", "the label-description head")
    pooling: str = option("auto", "how the input's positions become one vector: auto (mean, as the label names are "
                                  "encoded), cls, mean or last")
    dropout: float = legacy_key(0.1)

    def check(self) -> None:
        super().check()
        check_pooling(self.pooling)


@register_head
class LabelDescriptionHead(Head):
    kind = "label_description"
    config_class = LabelDescriptionConfig
    summary = "scaled cosine to the frozen encodings of each task's label names (no parameters, any number of tasks)"
    output = OutputKind.LABEL
    needs_training = False
    serves_many_tasks = True

    config: LabelDescriptionConfig

    def __init__(self, config: LabelDescriptionConfig, backbone: Backbone, labels: Sequence[str]) -> None:
        super().__init__(config, backbone, labels)
        self.pooling = config.pooling if config.pooling != "auto" else "mean"
        hidden = backbone.info.hidden_size
        self.label_vectors: torch.Tensor
        self.label_valid: torch.Tensor
        self.register_buffer("label_vectors", torch.zeros(0, 0, hidden))  # (T, C, H) unit vectors
        self.register_buffer("label_valid", torch.zeros(0, 0, dtype=torch.bool))  # (T, C)

    def add_task(self, task: TaskInfo, backbone: Backbone, index: int) -> None:
        from promptlearning.data.task_info import encode_texts

        phrases = label_phrases(task, self.config.label_words)
        flat = [p for group in phrases for p in group]
        encoded = F.normalize(encode_texts(backbone, flat), dim=-1)  # (sum phrases, H)
        vectors, start = [], 0
        for group in phrases:
            vectors.append(F.normalize(encoded[start:start + len(group)].mean(0), dim=-1))
            start += len(group)
        new = torch.stack(vectors)  # (C_t, H)
        tasks, width = self.label_vectors.shape[0], max(self.label_vectors.shape[1], new.shape[0])
        if index != tasks:
            raise ConfigError(f"task {task.name!r} must be added as task {tasks}, not {index}")
        device = self.label_vectors.device
        table = torch.zeros(tasks + 1, width, new.shape[1], device=device)
        valid = torch.zeros(tasks + 1, width, dtype=torch.bool, device=device)
        table[:tasks, : self.label_vectors.shape[1]] = self.label_vectors
        valid[:tasks, : self.label_valid.shape[1]] = self.label_valid
        table[tasks, : new.shape[0]] = new.to(device)
        valid[tasks, : new.shape[0]] = True
        self.label_vectors, self.label_valid = table, valid

    def forward(self, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor:  # (B, C)
        assert ctx.text_mask is not None and ctx.task_ids is not None
        text = hidden[:, ctx.num_prompt_positions:]  # (B, L, H)
        pooled = F.normalize(pool(text, ctx.text_mask, self.pooling).float(), dim=-1)  # (B, H)
        ids = ctx.task_ids.to(self.label_vectors.device)
        labels = self.label_vectors[ids]  # (B, C, H)
        scores = SCALE * torch.einsum("bh,bch->bc", pooled, labels)  # (B, C)
        return scores.masked_fill(~self.label_valid[ids], MASKED)
