"""Instance-aware prompt generators: each input gets its own prompt.

At each chosen layer a small bottleneck network reads that layer's incoming hidden states
(pooled over the input's positions), projects down, applies a non-linearity and projects up
to P x H: the prompt placed before that layer. Layer 0 means the input level (the
embeddings' output). Shared by LPT-style single-layer generation and, later, SPT's gated
per-layer generators.
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
    option,
    register_method,
)
from promptlearning.methods.search_space import IntRange, LogFloat

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
POOLS = ("mean", "first")


@dataclass
class GeneratorConfig(MethodConfig):
    num_tokens: int = option(5, "prompt length P generated per layer")
    layers: list[int] | None = option(None, "layers that get a generated prompt; 0 is the input level "
                                            "(default: the middle layer, as in LPT)")
    bottleneck: int = option(64, "width r of the bottleneck (parameters per layer ~ H*r + r*P*H)")
    activation: str = option("relu", "non-linearity: relu, tanh or gelu")
    pooling: str = option("mean", "how the layer's input positions are pooled: mean or first (token)")
    share_down: bool = option(False, "share the down-projection across layers to save parameters")
    init_std: float = option(0.1, "standard deviation of the up-projection bias (the prompt at init)")
    init_seed: int = option(0, "seed of the initialisation")

    def check(self) -> None:
        if self.num_tokens < 1 or self.bottleneck < 1:
            raise ConfigError("num_tokens and bottleneck must be >= 1; pass e.g. --option num_tokens=5")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {self.activation!r}; choose one of: {', '.join(ACTIVATIONS)}")
        if self.pooling not in POOLS:
            raise ConfigError(f"unknown pooling {self.pooling!r}; choose one of: {', '.join(POOLS)}")

    def check_backbone(self, info: BackboneInfo) -> None:
        check_layers(self.layers, info)

    def resolved_layers(self, info: BackboneInfo) -> list[int]:
        return check_layers(self.layers if self.layers is not None else [info.num_layers // 2], info)


def pool_inputs(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Pool the input positions of (B, L, H) into (B, H); the prompt positions are excluded."""
    if how == "first":
        positions = torch.arange(mask.shape[1], device=mask.device)
        first = torch.where(mask.bool(), positions, mask.shape[1]).argmin(dim=1)  # (B,) first attended position
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class PromptGenerator(nn.Module):
    """pooled (B, H) -> (B, P, H) through a bottleneck."""

    def __init__(self, hidden: int, bottleneck: int, length: int, activation: str,
                 down: nn.Linear | None = None) -> None:
        super().__init__()
        self.length, self.hidden = length, hidden
        self.down = down if down is not None else nn.Linear(hidden, bottleneck)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, length * hidden)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        out = self.up(self.act(self.down(pooled)))  # (B, P * H)
        return out.view(-1, self.length, self.hidden)  # (B, P, H)


def build_generators(layers: list[int], hidden: int, bottleneck: int, length: int, activation: str,
                     share_down: bool, init_std: float, seed: int) -> nn.ModuleDict:
    """One seeded generator per layer (keyed by layer index), optionally sharing the down-projection."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        shared = nn.Linear(hidden, bottleneck) if share_down else None
        generators = nn.ModuleDict({str(layer): PromptGenerator(hidden, bottleneck, length, activation, shared)
                                    for layer in layers})
        for gen in generators.values():
            assert isinstance(gen, PromptGenerator)
            nn.init.normal_(gen.up.weight, std=0.02)
            nn.init.normal_(gen.up.bias, std=init_std)
    return generators


def generated_prompt(generator: nn.Module, hidden: torch.Tensor, ctx: PromptContext, pooling: str) -> torch.Tensor:
    """A generator's prompt (B, P, H) from a layer's incoming hidden states, read at the input's positions."""
    assert ctx.text_mask is not None
    text = hidden[:, ctx.num_prompt_positions:]  # (B, L, H) the input's positions only
    return generator(pool_inputs(text, ctx.text_mask, pooling))


@register_method
class InstancePromptGenerator(PromptMethod):
    name = "generator"
    reads_input = True  # its prompts are made from the input (see PromptMethod.reads_input)
    config_class = GeneratorConfig
    summary = "instance-aware prompt generator: a bottleneck net turns a layer's hidden states into that input's prompt"
    default_lr = 3e-3
    search_space = {"num_tokens": IntRange(2, 16, 1), "bottleneck": IntRange(16, 128, 16),
                    "init_std": LogFloat(0.01, 1.0)}

    def __init__(self, config: GeneratorConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.config: GeneratorConfig = config
        self._layers = config.resolved_layers(backbone.info)
        hidden = backbone.info.hidden_size
        self.generators = build_generators(self._layers, hidden, config.bottleneck, config.num_tokens,
                                           config.activation, config.share_down, config.init_std, config.init_seed)

    @property
    def num_prompt_positions(self) -> int:
        return self.config.num_tokens

    @property
    def prompt_layers(self) -> list[int]:
        return list(self._layers)

    def layer_prompt(self, layer: int, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor | None:
        if str(layer) not in self.generators:
            return None
        return generated_prompt(self.generators[str(layer)], hidden, ctx, self.config.pooling)
