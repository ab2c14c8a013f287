"""promptlearning: adapt one frozen pretrained transformer to many text tasks with small prompts."""

from __future__ import annotations

from promptlearning.backbones import Backbone, BackboneInfo, list_backbones, load_backbone  # noqa: E402
from promptlearning.data.task_info import TaskInfo  # noqa: E402
from promptlearning.errors import PromptLearningError  # noqa: E402
from promptlearning.heads.base import HeadConfig  # noqa: E402
from promptlearning.methods import MethodConfig, PromptMethod, build_method, list_methods, register_method  # noqa: E402
from promptlearning.model import PromptModel  # noqa: E402
from promptlearning.version import __version__

__all__ = [
    "Backbone",
    "BackboneInfo",
    "HeadConfig",
    "MethodConfig",
    "PromptLearningError",
    "PromptMethod",
    "PromptModel",
    "TaskInfo",
    "__version__",
    "build_method",
    "list_backbones",
    "list_methods",
    "load_backbone",
    "register_method",
]
