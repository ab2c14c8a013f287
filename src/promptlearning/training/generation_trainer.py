"""The plain trainer on input -> target pairs: batches carry per-position target labels, dev is teacher-forced.

Everything else (optimizer groups, schedule, clipping, checkpoints, exact resume, keeping the
best step) is the plain :class:`~promptlearning.training.trainer.Trainer`'s; the language-modelling
head's own loss reads the (B, L) labels, so only the batches and the dev score are overridden. The
best step is the one whose dev target tokens are most often ranked first (teacher-forced: one
forward per dev batch, no decoding loop); the dev loss is logged beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from promptlearning.data.batching import Batch, Encoded
from promptlearning.data.target_batching import IGNORE, TargetEncoded, collate_targets
from promptlearning.model import PromptModel
from promptlearning.training.callbacks import TrainerCallback
from promptlearning.training.config import TrainConfig
from promptlearning.training.generation_eval import teacher_forced_scores
from promptlearning.training.trainer import Trainer


class GenerationTrainer(Trainer):
    """:class:`Trainer` over :class:`~promptlearning.data.target_batching.TargetEncoded` pairs."""

    def __init__(self, model: PromptModel, config: TrainConfig, train: Sequence[TargetEncoded],
                 dev: Sequence[TargetEncoded], output_dir: str | Path | None = None,
                 run_info: dict[str, Any] | None = None, callbacks: Sequence[TrainerCallback] = ()) -> None:
        rows: list[Encoded] = list(train)
        super().__init__(model, config, rows, list(dev), output_dir, run_info, callbacks)
        self.pair_train, self.pair_dev = list(train), list(dev)
        self._dev_loss: float | None = None

    def batch_at(self, step: int) -> Batch:
        return collate_targets([self.pair_train[i] for i in self.local_rows(step)], self.model.pad_id,
                               self.model.left_pad)

    def batch_weight(self, rows: list[int]) -> float:
        """The target tokens of these pairs: the head's loss is a mean over them, not over rows."""
        return float(sum(sum(t != IGNORE for t in self.pair_train[i].targets) for i in rows))

    def dev_scores(self) -> dict[str, Any]:
        scores = teacher_forced_scores(self.model, self.pair_dev, self.config.eval_batch_size)
        self._dev_loss = scores["loss"]
        return scores

    def extra_record(self) -> dict[str, Any]:
        return {"dev_loss": round(self._dev_loss, 6)} if self._dev_loss is not None else {}
