"""VPT (Jia et al., ECCV 2022): learned prompt tokens beside a frozen vision transformer's patch tokens.

Shallow VPT puts P tokens at the input only; they flow up through every layer. Deep VPT gives every
layer its own P tokens, replacing those that flow up from below: the hidden-state form of P-tuning
v2, through the same injector pre-hooks. Initialised as VPT does: uniform in +-sqrt(6 / (fan_in +
H)), fan_in being the patch projection's (3 x patch x patch, taken as H when unknown).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from promptlearning.backbones import Backbone, BackboneInfo
from promptlearning.errors import ConfigError
from promptlearning.methods.base import MethodConfig, PromptContext, PromptMethod, option, register_method


@dataclass
class VptConfig(MethodConfig):
    num_tokens: int = option(8, "prompt tokens P (per layer when deep)")
    deep: bool = option(True, "a fresh prompt before every layer (VPT-deep); false: at the input only (VPT-shallow)")
    init_seed: int = option(0, "seed of the prompt initialisation")

    def check(self) -> None:
        if self.num_tokens < 1:
            raise ConfigError(f"num_tokens must be >= 1 (got {self.num_tokens}); pass --option num_tokens=8")

    def check_backbone(self, info: BackboneInfo) -> None:
        if info.num_layers < 1:
            raise ConfigError(f"vpt places tokens in a vision transformer's layers and {info.name} has none (a CNN); "
                              "use --method visual_prompt")


@register_method
class VisualPromptTuning(PromptMethod):
    name = "vpt"
    config_class = VptConfig
    summary = "VPT: prompt tokens in a frozen vision transformer, at the input (shallow) or every layer (deep)"
    default_lr = 1e-2
    input_kinds = frozenset({"image"})

    def __init__(self, config: VptConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.config: VptConfig = config
        self._layers = list(range(backbone.info.num_layers)) if config.deep else [0]
        hidden = backbone.info.hidden_size
        identity = getattr(backbone, "identity_weight", None)  # image backbones: the patch projection
        fan_in = int(identity()[0].numel()) if identity is not None else hidden
        bound = math.sqrt(6.0 / (fan_in + hidden))
        generator = torch.Generator().manual_seed(config.init_seed)
        shape = (len(self._layers), config.num_tokens, hidden)
        self.prompts = nn.Parameter((torch.rand(shape, generator=generator) * 2 - 1) * bound)  # (S, P, H)
        self._slot = {layer: i for i, layer in enumerate(self._layers)}

    @property
    def num_prompt_positions(self) -> int:
        return self.config.num_tokens

    @property
    def prompt_layers(self) -> list[int]:
        return list(self._layers)

    def layer_prompt(self, layer: int, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor | None:
        slot = self._slot.get(layer)
        if slot is None:
            return None
        return self.prompts[slot].unsqueeze(0).expand(ctx.batch_size, -1, -1)  # (B, P, H)
