"""The fixed hand-written prompt: no trainable parameters at all.

With the verbaliser head it scores a task's hand-written template through the LM head, the
baseline every learned prompt is compared with ("prompt effectiveness").
"""

from __future__ import annotations

from dataclasses import dataclass

from promptlearning.methods.base import MethodConfig, PromptMethod, register_method


@dataclass
class FixedPromptConfig(MethodConfig):
    """No options: the template and label words are the whole prompt."""


@register_method
class FixedPrompt(PromptMethod):
    name = "fixed_prompt"
    config_class = FixedPromptConfig
    summary = ("fixed hand-written template, no training: scored by --head verbalizer on a causal LM "
               "or --head label_description on an encoder")
    needs_training = False
