"""Prefix tuning: trainable key/value prefixes handed to every layer's attention.

With ``reparam`` (Li & Liang, 2021) the prefixes are produced during training by an MLP from
a small embedding table, which steadies optimisation; :meth:`PrefixTuning.fold` computes the
table once and drops the MLP, so inference pays nothing and outputs do not change. Without
``reparam`` the prefixes are trained directly: P-tuning v2 in its original key/value form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
from promptlearning.methods.search_space import Choice, IntRange, LogFloat


@dataclass
class PrefixTuningConfig(MethodConfig):
    num_tokens: int = option(16, "prefix length P (key/value positions per layer)")
    reparam: bool = option(True, "produce the prefixes by an MLP during training (fold it away for inference)")
    reparam_hidden: int = option(256, "hidden width of the reparameterisation MLP")
    init_std: float = option(0.5, "standard deviation of the initial prefixes (or of the MLP's input table)")
    init_seed: int = option(0, "seed of the initialisation")
    peft_positions: bool = option(False, "number the input's positions from P, after the prefix, as Hugging Face "
                                         "PEFT does (set on import from PEFT; needed to export to PEFT)")

    def check(self) -> None:
        if self.num_tokens < 1:
            raise ConfigError(f"num_tokens must be >= 1 (got {self.num_tokens}); pass --option num_tokens=16")
        if self.reparam_hidden < 1:
            raise ConfigError("reparam_hidden must be >= 1")

    def check_backbone(self, info: BackboneInfo) -> None:
        check_prompt_length(self.num_tokens, info, "prefix")

    def to_dict(self) -> dict[str, Any]:
        """``peft_positions`` only when on: the dict is part of stored bench job keys, which stay as they were."""
        values = super().to_dict()
        if not self.peft_positions:
            del values["peft_positions"]
        return values


@register_method
class PrefixTuning(PromptMethod):
    name = "prefix_tuning"
    config_class = PrefixTuningConfig
    summary = ("per-layer key/value prefixes (MLP reparameterisation, foldable); reparam=false is "
               "P-tuning v2's original key/value form")
    default_lr = 1e-2
    search_space = {"num_tokens": IntRange(4, 32, 4), "reparam": Choice((True, False)),
                    "init_std": LogFloat(0.02, 1.0), "train.lr": LogFloat(1e-4, 1e-1)}

    def __init__(self, config: PrefixTuningConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.config: PrefixTuningConfig = config
        info = backbone.info
        self._shape = (info.num_layers, 2, info.num_kv_heads, config.num_tokens, info.head_dim)
        width = info.num_layers * 2 * info.num_kv_heads * info.head_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.init_seed)
            if config.reparam:
                self.table = nn.Parameter(torch.randn(config.num_tokens, info.hidden_size) * config.init_std)
                self.mlp = nn.Sequential(nn.Linear(info.hidden_size, config.reparam_hidden), nn.Tanh(),
                                         nn.Linear(config.reparam_hidden, width))
            else:
                self.prefix = nn.Parameter(torch.randn(config.num_tokens, width) * config.init_std)  # (P, W)

    @property
    def num_prefix_positions(self) -> int:
        return self.config.num_tokens

    @property
    def text_position_offset(self) -> int:
        """Where the input's position ids start (read by the injector): 0, or P as PEFT numbers them."""
        return self.config.num_tokens if self.config.peft_positions else 0

    def flat_prefix(self) -> torch.Tensor:
        """(P, layers * 2 * kv_heads * head_dim), from the MLP or the folded table."""
        return self.mlp(self.table) if self.config.reparam else self.prefix

    def kv_prefix(self, ctx: PromptContext) -> list[tuple[torch.Tensor, torch.Tensor]]:
        layers, _, heads, length, dim = self._shape
        flat = self.flat_prefix().view(length, layers, 2, heads, dim)  # (P, N, 2, h, d)
        kv = flat.permute(1, 2, 3, 0, 4)  # (N, 2, h, P, d)
        return [(kv[i, 0].unsqueeze(0).expand(ctx.batch_size, -1, -1, -1),  # (B, h, P, d)
                 kv[i, 1].unsqueeze(0).expand(ctx.batch_size, -1, -1, -1)) for i in range(layers)]

    @torch.no_grad()
    def fold(self) -> None:
        """Replace the MLP by the prefixes it produces; outputs are unchanged."""
        if not self.config.reparam:
            return
        table = self.flat_prefix().detach().clone()
        del self.mlp
        del self.table
        self.prefix = nn.Parameter(table)
        self.config.reparam = False
