"""P-tuning v2, hidden-state form: a fresh trainable prompt before every chosen layer.

At each chosen layer the P prompt positions of the incoming hidden states are replaced by
that layer's own vectors; between chosen layers the prompt flows up through the backbone.
Nothing trains below the lowest chosen layer, so autograd never reaches further down.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from promptlearning.backbones import Backbone, BackboneInfo
from promptlearning.errors import ConfigError
from promptlearning.methods.base import (
    MethodConfig,
    PromptContext,
    PromptMethod,
    check_layers,
    check_prompt_length,
    option,
    register_method,
)
from promptlearning.methods.protocols import shape_checked
from promptlearning.methods.search_space import IntRange, LogFloat


@dataclass
class DeepPromptConfig(MethodConfig):
    num_tokens: int = option(16, "prompt length P at every chosen layer")
    layers: list[int] | None = option(None, "layer indices that get a prompt (default: all layers)")
    init_std: float = option(0.5, "standard deviation of the Gaussian initialisation (hidden states are unit-scale)")
    init_seed: int = option(0, "seed of the prompt initialisation")

    def check(self) -> None:
        if self.num_tokens < 1:
            raise ConfigError(f"num_tokens must be >= 1 (got {self.num_tokens}); pass --option num_tokens=16")
        if self.layers is not None and not self.layers:
            raise ConfigError("layers is empty; give at least one layer index or omit it for all layers")

    def check_backbone(self, info: BackboneInfo) -> None:
        check_layers(self.layers, info)
        check_prompt_length(self.num_tokens, info, "prompt")


@register_method
class DeepPrompts(PromptMethod):
    name = "p_tuning_v2"
    config_class = DeepPromptConfig
    summary = "P-tuning v2 deep prompts (hidden-state form) at all layers or a given layer list"
    default_lr = 1e-2
    search_space = {"num_tokens": IntRange(4, 32, 4), "init_std": LogFloat(0.02, 1.0),
                    "train.lr": LogFloat(1e-3, 1e-1)}

    def __init__(self, config: DeepPromptConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.config: DeepPromptConfig = config
        self._layers = check_layers(config.layers, backbone.info)
        generator = torch.Generator().manual_seed(config.init_seed)
        shape = (len(self._layers), config.num_tokens, backbone.info.hidden_size)
        self.prompts = nn.Parameter(torch.randn(shape, generator=generator) * config.init_std)  # (S, P, H)
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

    # ---- SoftPrompt: one (P, H) block per layer of ``prompt_layers``
    def soft_prompt(self) -> torch.Tensor:
        return self.prompts.detach().clone()  # (S, P, H)

    @torch.no_grad()
    def set_soft_prompt(self, value: torch.Tensor) -> None:
        self.prompts.copy_(shape_checked(self.prompts, value, self.name))
