"""The plain trainer on tagged sentences: batches carry per-position labels, dev is scored per word.

Everything else (optimizer groups, schedule, clipping, checkpoints, exact resume, keeping the
best step) is the plain :class:`~promptlearning.training.trainer.Trainer`'s; the head's own
loss reads the (B, L) labels, so only the two things that differ are overridden. The best
step is the one with the best dev word accuracy (for BIO tags too: entity F1 is reported, but
accuracy keeps one selection rule for every tag set).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from promptlearning.data.batching import Batch, Encoded
from promptlearning.data.token_batching import TokenEncoded, collate_tagged
from promptlearning.model import PromptModel
from promptlearning.training.callbacks import TrainerCallback
from promptlearning.training.config import TrainConfig
from promptlearning.training.token_metrics import evaluate_tagged
from promptlearning.training.trainer import Trainer


class TokenTrainer(Trainer):
    """:class:`Trainer` over :class:`~promptlearning.data.token_batching.TokenEncoded` sentences."""

    def __init__(self, model: PromptModel, config: TrainConfig, train: Sequence[TokenEncoded],
                 dev: Sequence[TokenEncoded], output_dir: str | Path | None = None,
                 run_info: dict[str, Any] | None = None, callbacks: Sequence[TrainerCallback] = ()) -> None:
        rows: list[Encoded] = list(train)
        super().__init__(model, config, rows, list(dev), output_dir, run_info, callbacks)
        self.tagged_train, self.tagged_dev = list(train), list(dev)

    def batch_at(self, step: int) -> Batch:
        return collate_tagged([self.tagged_train[i] for i in self.local_rows(step)], self.model.pad_id,
                              self.model.left_pad)

    def batch_weight(self, rows: list[int]) -> float:
        """The scored positions of these sentences: the head's loss is a mean over them, not over rows."""
        labels = collate_tagged([self.tagged_train[i] for i in rows], self.model.pad_id, self.model.left_pad).labels
        assert labels is not None
        return float((labels != -100).sum())

    def dev_scores(self) -> dict[str, Any]:
        return evaluate_tagged(self.model, self.tagged_dev, self.config.eval_batch_size)
