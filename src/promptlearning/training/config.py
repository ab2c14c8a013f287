"""Training hyper-parameters, as one dataclass the CLI and YAML files fill."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from promptlearning.configs import option
from promptlearning.errors import ConfigError

#: the experiment trackers ``report_to`` accepts (Accelerate's names; each an optional extra)
TRACKERS = ("tensorboard", "mlflow", "wandb")


@dataclass
class TrainConfig:
    lr: float | None = option(None, "learning rate of the method's weights (default: the method's own)")
    head_lr: float = option(1e-2, "learning rate of the head")
    weight_decay: float = option(0.01, "AdamW weight decay on matrices of the head (and backbone when fine-tuning)")
    batch_size: int = option(8, "training batch size")
    eval_batch_size: int = option(64, "evaluation batch size")
    max_steps: int = option(200, "number of optimisation steps")
    warmup_ratio: float = option(0.06, "share of steps with linear warm-up, then linear decay to zero")
    max_grad_norm: float = option(1.0, "gradient clipping norm (0 turns clipping off)")
    eval_every: int = option(20, "evaluate on dev every N steps")
    eval_at_start: bool = option(False, "also evaluate on dev before the first step, so the starting state can be "
                                        "the best one (a hybrid started from a good discrete prompt)")
    patience: int = option(0, "stop after N evaluations without dev improvement (0: never stop early)")
    train_past_perfect_dev: bool = option(False, "keep training after dev accuracy reaches 1.0 (by default the "
                                                 "run stops there: the kept model, the first best on dev, can no "
                                                 "longer change, so later steps only cost time)")
    checkpoint_every: int = option(50, "write a resumable checkpoint every N steps (0: only at the end)")
    log_every: int = option(10, "log the training loss every N steps")
    seed: int = option(42, "seed of Python, NumPy and torch (data order, dropout, init)")
    device: str = option("auto", "auto, cpu or cuda")
    quiet: bool = option(False, "no progress bar")
    report_to: str | None = option(None, "also log the loss and dev scores to an experiment tracker: "
                                         "tensorboard (in OUTPUT/trackers), mlflow or wandb (optional extras)")

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_batch_size", "max_steps", "eval_every", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1 (got {getattr(self, name)})")
        for name in ("lr", "head_lr"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a finite number > 0 (got {value}); e.g. --{name.replace('_', '-')} 0.01")
        for name in ("weight_decay", "max_grad_norm"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0 (got {value})")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1) (got {self.warmup_ratio})")
        if self.device not in ("auto", "cpu", "cuda"):
            hint = "; to train on GPU N set CUDA_VISIBLE_DEVICES=N with --device cuda" \
                if self.device.startswith("cuda:") else ""
            raise ConfigError(f"device must be auto, cpu or cuda (got {self.device!r}){hint}")
        if self.patience < 0 or self.checkpoint_every < 0:
            raise ConfigError("patience and checkpoint_every must be >= 0")
        if self.report_to is not None and self.report_to not in TRACKERS:
            raise ConfigError(f"unknown tracker {self.report_to!r} for report_to; choose one of: {', '.join(TRACKERS)}")

    def to_dict(self) -> dict[str, Any]:
        """Every setting; ``train_past_perfect_dev`` only when turned on, ``report_to`` only when given.

        The dict is part of every stored bench job's key and of --resume's fingerprint. Stopping at a
        perfect dev accuracy keeps exactly the model a full run keeps (a later evaluation replaces the kept
        model only when strictly better), so jobs stored before the setting existed keep their keys, while
        turning it off (full dev curves, all steps) is a different job."""
        values = dataclasses.asdict(self)
        if not self.train_past_perfect_dev:
            del values["train_past_perfect_dev"]
        if self.report_to is None:  # where a run logs, added later: absent at its default, keys unchanged
            del values["report_to"]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        from promptlearning.configs import build

        return build(cls, values, "training option(s)")
