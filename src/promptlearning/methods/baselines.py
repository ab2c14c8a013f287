"""The two references every results table needs: a linear probe and full fine-tuning.

Both are methods with no prompt positions, so they run through exactly the same model,
trainer, adapters and bench as the prompt methods; only what trains differs.
"""

from __future__ import annotations

from dataclasses import dataclass

from promptlearning.backbones import Backbone
from promptlearning.methods.base import MethodConfig, PromptMethod, register_method


@dataclass
class LinearProbeConfig(MethodConfig):
    """No options: only the head trains."""


@register_method
class LinearProbe(PromptMethod):
    name = "linear_probe"
    config_class = LinearProbeConfig
    summary = "head-only linear probing of the frozen backbone (no prompt)"
    default_lr = 1e-2


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

    def __init__(self, config: FineTuneConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
