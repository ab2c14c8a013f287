"""promptlearning: adapt one frozen pretrained transformer to many text tasks with small prompts.

The public names below are imported on first use (PEP 562), not when the package is: the
command line imports ``promptlearning`` for every call, and importing torch and transformers
for ``promptlearning --help`` or a mistyped flag cost seconds.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from promptlearning.version import __version__

# public name -> module that defines it
_PUBLIC: dict[str, str] = {
    "Backbone": "promptlearning.backbones",
    "BackboneInfo": "promptlearning.backbones",
    "list_backbones": "promptlearning.backbones",
    "load_backbone": "promptlearning.backbones",
    "PromptLearningError": "promptlearning.errors",
    "HeadConfig": "promptlearning.heads.base",
    "TaskInfo": "promptlearning.data.task_info",
    "MethodConfig": "promptlearning.methods",
    "PromptMethod": "promptlearning.methods",
    "build_method": "promptlearning.methods",
    "list_methods": "promptlearning.methods",
    "register_method": "promptlearning.methods",
    "PromptModel": "promptlearning.model",
    "TrainConfig": "promptlearning.training",
    "Trainer": "promptlearning.training",
    "TrainerCallback": "promptlearning.training",
    "TrainingProgress": "promptlearning.training",
    "TrainResult": "promptlearning.training",
}

if TYPE_CHECKING:
    from promptlearning.backbones import Backbone, BackboneInfo, list_backbones, load_backbone
    from promptlearning.data.task_info import TaskInfo
    from promptlearning.errors import PromptLearningError
    from promptlearning.heads.base import HeadConfig
    from promptlearning.methods import MethodConfig, PromptMethod, build_method, list_methods, register_method
    from promptlearning.model import PromptModel
    from promptlearning.training import TrainConfig, Trainer, TrainerCallback, TrainingProgress, TrainResult


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'promptlearning' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


__all__ = [
    "Backbone",
    "BackboneInfo",
    "HeadConfig",
    "MethodConfig",
    "PromptLearningError",
    "PromptMethod",
    "PromptModel",
    "TaskInfo",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainerCallback",
    "TrainingProgress",
    "__version__",
    "build_method",
    "list_backbones",
    "list_methods",
    "load_backbone",
    "register_method",
]
