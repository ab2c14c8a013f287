"""Prompt tuning: P trainable vectors prepended at the input layer (Lester et al., 2021)."""

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
    check_prompt_length,
    option,
    register_method,
)
from promptlearning.methods.prompt_init import INITS, initial_prompt
from promptlearning.methods.protocols import shape_checked
from promptlearning.methods.search_space import Choice, IntRange, LogFloat


@dataclass
class PromptTuningConfig(MethodConfig):
    num_tokens: int = option(20, "number of soft prompt vectors P")
    init: str = option("vocab", "initialisation: random, vocab (sampled token embeddings) or text")
    init_text: str | None = option(None, "text whose token embeddings start the prompt (init=text)")
    init_std: float = option(0.02, "standard deviation for init=random")
    init_seed: int = option(0, "seed of the prompt initialisation")

    def check(self) -> None:
        if self.num_tokens < 1:
            raise ConfigError(f"num_tokens must be >= 1 (got {self.num_tokens}); pass --option num_tokens=20")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of: {', '.join(INITS)}")
        if self.init == "text" and not self.init_text:
            raise ConfigError("init=text needs init_text; pass --option init_text=\"a phrase\" or choose init random/vocab")

    def check_backbone(self, info: BackboneInfo) -> None:
        check_prompt_length(self.num_tokens, info, "prompt")


@register_method
class PromptTuning(PromptMethod):
    name = "prompt_tuning"
    config_class = PromptTuningConfig
    summary = "input-layer soft prompt (init random, from sampled vocabulary, or from a text)"
    default_lr = 3e-2
    search_space = {"num_tokens": IntRange(4, 32, 4), "init": Choice(("vocab", "random")),
                    "train.lr": LogFloat(1e-3, 3e-1)}

    def __init__(self, config: PromptTuningConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.config: PromptTuningConfig = config
        init = initial_prompt(config.init, config.num_tokens, backbone.input_embeddings().weight,
                              backbone.tokenizer, seed=config.init_seed, std=config.init_std, text=config.init_text)
        self.prompt = nn.Parameter(init)  # (P, H)

    @property
    def num_prompt_positions(self) -> int:
        return self.config.num_tokens

    def input_prompt(self, ctx: PromptContext) -> torch.Tensor:
        return self.prompt.unsqueeze(0).expand(ctx.batch_size, -1, -1)  # (B, P, H)

    # ---- SoftPrompt: search, transfer and continual learning read and set the prompt
    def soft_prompt(self) -> torch.Tensor:
        return self.prompt.detach().clone()  # (P, H)

    @torch.no_grad()
    def set_soft_prompt(self, value: torch.Tensor) -> None:
        self.prompt.copy_(shape_checked(self.prompt, value, self.name))
