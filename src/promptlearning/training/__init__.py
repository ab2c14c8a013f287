"""Trainers: strategies over the same PromptModel."""

from .config import TrainConfig
from .trainer import Trainer, TrainResult

__all__ = ["TrainConfig", "TrainResult", "Trainer"]
