"""Trainers: strategies over the same PromptModel, chosen from one table (:mod:`.strategies`)."""

from promptlearning.training.callbacks import TrainerCallback, TrainingProgress
from promptlearning.training.config import TrainConfig
from promptlearning.training.trainer import Trainer, TrainResult

__all__ = ["TrainConfig", "TrainResult", "Trainer", "TrainerCallback", "TrainingProgress"]
