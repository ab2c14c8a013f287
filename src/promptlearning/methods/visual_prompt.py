"""Visual prompting in pixel space (Bahng et al. 2022): a learned border added to every image.

The prompt is a frame of width ``pad`` pixels around the image (in [0, 1] space, before the model's
normalisation); the inside is left as it is. It needs nothing from the model but its gradient, so it
serves any image classifier, convolutional ones included, usually with the label mapping head (the
model's own classifier read through a mapping of its classes to the task's labels). Initialised at
zero, so the untrained prompt leaves the model exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from promptlearning.backbones import Backbone, BackboneInfo
from promptlearning.errors import ConfigError
from promptlearning.methods.base import MethodConfig, PromptContext, PromptMethod, option, register_method


@dataclass
class VisualPromptConfig(MethodConfig):
    pad: int = option(30, "width in pixels of the learned frame around the image (at the model's input size)")

    def check(self) -> None:
        if self.pad < 1:
            raise ConfigError(f"pad must be >= 1 pixel (got {self.pad}); pass --option pad=30")

    def check_backbone(self, info: BackboneInfo) -> None:
        size = int(getattr(info, "image_size", 0))
        if 2 * self.pad >= size:
            raise ConfigError(f"a frame of pad {self.pad} covers the whole {size}x{size} input of {info.name}; "
                              f"pass --option pad=N with N < {size // 2}")


@register_method
class PaddingPrompt(PromptMethod):
    name = "visual_prompt"
    config_class = VisualPromptConfig
    summary = "visual prompt: a learned pixel frame added to every image (any image classifier, CNNs included)"
    default_lr = 1e-2  # with Adam, as ILM-VP (Chen et al. 2023) trains its pixel prompts
    input_kinds = frozenset({"image"})

    def __init__(self, config: VisualPromptConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.config: VisualPromptConfig = config
        size, pad = int(getattr(backbone.info, "image_size", 0)), config.pad
        self.size = size
        self.top = nn.Parameter(torch.zeros(3, pad, size))  # (3, pad, S)
        self.bottom = nn.Parameter(torch.zeros(3, pad, size))
        self.left = nn.Parameter(torch.zeros(3, size - 2 * pad, pad))  # (3, S - 2 pad, pad)
        self.right = nn.Parameter(torch.zeros(3, size - 2 * pad, pad))

    def frame(self) -> torch.Tensor:
        """The prompt as an image (3, S, S): the learned frame, zero inside."""
        pad = self.config.pad
        middle = torch.cat([self.left, self.left.new_zeros(3, self.size - 2 * pad, self.size - 2 * pad), self.right],
                           dim=2)  # (3, S - 2 pad, S)
        return torch.cat([self.top, middle, self.bottom], dim=1)  # (3, S, S)

    def pixel_prompt(self, pixels: torch.Tensor, ctx: PromptContext) -> torch.Tensor | None:
        frame = self.frame().to(pixels.dtype)
        if frame.shape[-1] != pixels.shape[-1]:
            frame = F.interpolate(frame.unsqueeze(0), size=pixels.shape[-2:], mode="bilinear", align_corners=False)[0]
        return pixels + frame.unsqueeze(0)  # (B, 3, S, S)
