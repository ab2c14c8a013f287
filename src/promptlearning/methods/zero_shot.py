"""Zero-shot: no prompt and nothing trained, the frozen image model scored through a head that needs no
training: CLIP's hand-written template (the fixed-prompt baseline of CoOp and CoCoOp) or the frequency
label mapping of an image classifier's own classes (the baseline of visual prompting)."""

from __future__ import annotations

from dataclasses import dataclass

from promptlearning.methods.base import MethodConfig, PromptMethod, register_method


@dataclass
class ZeroShotConfig(MethodConfig):
    """No options."""


@register_method
class ZeroShot(PromptMethod):
    name = "zero_shot"
    config_class = ZeroShotConfig
    summary = "no prompt, nothing trained: the frozen image model through --head clip or label_mapping"
    needs_training = False
    input_kinds = frozenset({"image"})
