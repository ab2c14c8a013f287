"""The trainer's public callback API: hooks that see a run's progress and may stop it.

Trackers (TensorBoard, MLflow, W&B), Optuna's pruning and a user's own monitoring hang on
these hooks instead of patching the trainer. A callback subclasses :class:`TrainerCallback`
and overrides only the hooks it needs; the trainer calls them in the order given:

- ``on_train_begin(trainer)``: before the first step (after a resume, the restored state).
- ``on_step(trainer, record)``: after every optimizer step; ``record`` holds ``step`` (steps
  done), ``loss`` (the step's mean training loss over the whole global batch) and ``lr``.
- ``on_evaluate(trainer, record)``: after each dev evaluation; ``record`` is the line written
  to ``metrics.jsonl`` (``step``, ``dev_accuracy``, ``dev_macro_f1`` and a strategy's extras).
- ``on_save(trainer, path, kind)``: after the trainer wrote ``kind`` ``"best"`` (the adapter
  kept as best on dev) or ``"checkpoint"`` (the resumable state) to ``path``.
- ``on_train_end(trainer, result)``: once the loop ended and the best state is restored.

A callback stops a run with ``trainer.request_stop("why")``: the step under way finishes, the
checkpoint is written, the run ends as stopped early and ``metrics.jsonl`` records the reason.
(An exception raised by a hook, e.g. ``optuna.TrialPruned``, ends the run at once instead and
reaches the caller.) ``trainer.progress`` is a snapshot of where the run stands.

In a data-parallel run the hooks run on the main process only (rank 0), which sees the
global loss and the one dev evaluation; a stop it requests is shared with every rank before
the next step, so all ranks stop together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the trainer imports this module; callbacks only annotate with it
    from promptlearning.training.trainer import Trainer, TrainResult


@dataclass(frozen=True)
class TrainingProgress:
    """Where a run stands, as a callback sees it (``trainer.progress``)."""

    step: int  # optimizer steps done
    max_steps: int
    best_dev: float  # -1.0 before the first dev evaluation
    best_step: int  # -1 before the first dev evaluation
    stopped_early: bool


class TrainerCallback:
    """Base class of trainer callbacks: every hook does nothing until overridden (see the module docstring)."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first step of :meth:`Trainer.fit` (or the first step after a resume)."""

    def on_step(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After each optimizer step: ``record`` = ``{"step", "loss", "lr"}``."""

    def on_evaluate(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After each dev evaluation: ``record`` = the metrics.jsonl line (``step``, ``dev_accuracy``, ...)."""

    def on_save(self, trainer: Trainer, path: Path, kind: str) -> None:
        """After writing ``kind`` (``"best"`` or ``"checkpoint"``) to the directory ``path``."""

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        """Once training ended (finished, stopped early or stopped by a callback)."""
