"""Full fine-tuning: every backbone weight trains with the head (the reference, not parameter-efficient).

A method with no prompt positions that marks itself ``trains_backbone``, so the model unfreezes
the backbone and runs copy it first; everything else is the same path as the prompt methods.
"""

from __future__ import annotations

from dataclasses import dataclass

from promptlearning.backbones import Backbone
from promptlearning.methods.base import MethodConfig, PromptMethod, register_method
from promptlearning.methods.search_space import LogFloat


@dataclass
class FineTuneConfig(MethodConfig):
    """No options: every backbone weight trains with the head."""


@register_method
class FullFineTune(PromptMethod):
    name = "finetune"
    config_class = FineTuneConfig
    summary = "full fine-tuning of every backbone weight (the reference, not parameter-efficient)"
    trains_backbone = True
    default_lr = 3e-5
    input_kinds = frozenset({"text", "image"})
    search_space = {"train.lr": LogFloat(5e-6, 3e-4)}

    def __init__(self, config: FineTuneConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
