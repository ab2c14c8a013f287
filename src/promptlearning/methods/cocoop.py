"""CoCoOp (Zhou et al., CVPR 2022): CoOp's context, shifted per image by a small meta-network.

The instance-aware variant of CoOp: a meta-network (Linear(D, D/16), ReLU, Linear(D/16, H_text))
reads each image's normalised CLIP features and adds the same bias to each of the M context
vectors, so the class prompts adapt to every image. Its last layer starts at zero, so the untrained
method equals CoOp at its initialisation (and so zero-shot CLIP with "a photo of a {class}.").
The cost: the text tower runs once per image and class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from promptlearning.backbones import Backbone
from promptlearning.errors import ConfigError
from promptlearning.methods.base import PromptContext, PromptMethod, option, register_method
from promptlearning.methods.coop import CoopConfig, initial_context


@dataclass
class CocoopConfig(CoopConfig):
    reduction: int = option(16, "the meta-network's hidden width is the image features' width divided by this")

    def check(self) -> None:
        super().check()
        if self.reduction < 1:
            raise ConfigError(f"reduction must be >= 1 (got {self.reduction})")


@register_method
class ConditionalContextOptimization(PromptMethod):
    name = "cocoop"
    config_class = CocoopConfig
    summary = "CoCoOp: CoOp's context plus a per-image shift from a meta-network on CLIP's image features"
    default_lr = 2e-3
    input_kinds = frozenset({"image"})
    needs_text_tower = True

    def __init__(self, config: CocoopConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.config: CocoopConfig = config
        self.context = nn.Parameter(initial_context(config, backbone))  # (M, H_text)
        clip: Any = backbone.model
        features = int(clip.config.projection_dim)
        width = self.context.shape[1]
        hidden = max(1, features // config.reduction)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.init_seed)
            self.meta_net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, width))
        last: Any = self.meta_net[2]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def class_context(self, ctx: PromptContext) -> torch.Tensor | None:
        if ctx.image_features is None:
            raise ConfigError("cocoop reads CLIP image features; use a CLIP backbone")
        features = ctx.image_features / ctx.image_features.norm(dim=-1, keepdim=True)  # (B, D)
        shift = self.meta_net(features.to(self.context.dtype))  # (B, H_text)
        return self.context.unsqueeze(0) + shift.unsqueeze(1)  # (B, M, H_text)
