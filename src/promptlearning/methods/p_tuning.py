"""P-tuning (Liu et al., 2021): pseudo-token prompts produced by a prompt encoder.

The template decides where the pseudo tokens sit (before, between and after the input's
parts, e.g. ``"[P3] {text_a} [P2] {text_b} [P1]"``); the encoder (a bidirectional LSTM
followed by an MLP, or an MLP alone) turns T trainable embeddings into the T prompt vectors,
which couples the pseudo tokens and steadies training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..backbones import Backbone
from ..data.templates import Template
from ..errors import ConfigError
from .base import MethodConfig, PromptContext, PromptMethod, option, register_method
from .prompt_init import vocab_prompt

ENCODERS = ("lstm", "mlp")


@dataclass
class PTuningConfig(MethodConfig):
    template: str = option("[P3] {text_a} [P3]", "where the pseudo tokens go: [Pn] slots around {text_a}/{text_b}")
    encoder: str = option("lstm", "prompt encoder: lstm (bidirectional LSTM + MLP) or mlp")
    encoder_hidden: int = option(256, "hidden width of the prompt encoder")
    init_seed: int = option(0, "seed of the initialisation")

    def check(self) -> None:
        if self.encoder not in ENCODERS:
            raise ConfigError(f"unknown encoder {self.encoder!r}; choose one of: {', '.join(ENCODERS)}")
        if Template.parse(self.template).num_pseudo < 1:
            raise ConfigError(f"p_tuning template {self.template!r} has no [P] slot; e.g. '[P3] {{text_a}} [P3]'")
        if self.encoder_hidden < 1:
            raise ConfigError("encoder_hidden must be >= 1")


@register_method
class PTuning(PromptMethod):
    name = "p_tuning"
    config_class = PTuningConfig
    summary = "P-tuning: template pseudo tokens (before/between/after the input) from an LSTM or MLP prompt encoder"
    default_lr = 3e-3

    def __init__(self, config: PTuningConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.config: PTuningConfig = config
        hidden = backbone.info.hidden_size
        self._count = Template.parse(config.template).num_pseudo
        generator = torch.Generator().manual_seed(config.init_seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.init_seed)
            self.embeddings = nn.Parameter(vocab_prompt(backbone.input_embeddings().weight, self._count, generator))
            width = config.encoder_hidden
            self.lstm = (nn.LSTM(hidden, width // 2, num_layers=2, bidirectional=True, batch_first=True)
                         if config.encoder == "lstm" else None)
            self.mlp = nn.Sequential(nn.Linear(width if self.lstm is not None else hidden, width), nn.ReLU(),
                                     nn.Linear(width, hidden))

    @property
    def num_template_tokens(self) -> int:
        return self._count

    @property
    def default_template(self) -> str:
        return self.config.template

    def encoded(self) -> torch.Tensor:
        """The T prompt vectors, (T, H)."""
        x = self.embeddings.unsqueeze(0)  # (1, T, H)
        if self.lstm is not None:
            x = self.lstm(x)[0]  # (1, T, width)
        return self.mlp(x).squeeze(0)  # (T, H)

    def template_prompt(self, ctx: PromptContext) -> torch.Tensor:
        return self.encoded().unsqueeze(0).expand(ctx.batch_size, -1, -1)  # (B, T, H)
