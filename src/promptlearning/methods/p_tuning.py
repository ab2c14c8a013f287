"""P-tuning (Liu et al., 2021): pseudo-token prompts produced by a prompt encoder.

The template decides where the pseudo tokens sit (before, between and after the input's
parts, e.g. ``"[P3] {text_a} [P2] {text_b} [P1]"``); the encoder (a bidirectional LSTM
followed by an MLP, or an MLP alone) turns T trainable embeddings into the T prompt vectors,
which couples the pseudo tokens and steadies training. ``encoder="none"`` puts the trainable
embeddings in the slots directly; with ``init="ids"`` they start as given tokens' embeddings,
so the model's first forward is exactly that of the discrete template those tokens spell
(the discrete-to-soft hybrid of :mod:`promptlearning.search.hybrid`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from promptlearning.backbones import Backbone
from promptlearning.data.templates import Template
from promptlearning.errors import ConfigError
from promptlearning.methods.base import MethodConfig, PromptContext, PromptMethod, option, register_method
from promptlearning.methods.prompt_init import random_prompt, vocab_prompt
from promptlearning.methods.search_space import Choice, IntRange, LogFloat

ENCODERS = ("lstm", "mlp", "none")
INITS = ("vocab", "random", "ids")


@dataclass
class PTuningConfig(MethodConfig):
    template: str = option("[P3] {text_a} [P3]", "where the pseudo tokens go: [Pn] slots around {text_a}/{text_b}")
    encoder: str = option("lstm", "prompt encoder: lstm (bidirectional LSTM + MLP), mlp, or none (vectors used as they are)")
    encoder_hidden: int = option(256, "hidden width of the prompt encoder")
    init_seed: int = option(0, "seed of the initialisation")
    init: str = option("vocab", "embeddings start as: vocab (sampled tokens), random (Gaussian) or ids (init_ids)")
    init_ids: list[int] | None = option(None, "init=ids: one token id per pseudo token, in slot order")
    init_std: float = option(0.02, "standard deviation for init=random")

    def check(self) -> None:
        if self.encoder not in ENCODERS:
            raise ConfigError(f"unknown encoder {self.encoder!r}; choose one of: {', '.join(ENCODERS)}")
        if Template.parse(self.template).num_pseudo < 1:
            raise ConfigError(f"p_tuning template {self.template!r} has no [P] slot; e.g. '[P3] {{text_a}} [P3]'")
        if self.encoder_hidden < 1:
            raise ConfigError("encoder_hidden must be >= 1")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of: {', '.join(INITS)}")
        count = Template.parse(self.template).num_pseudo
        if self.init == "ids" and (self.init_ids is None or len(self.init_ids) != count):
            have = "none" if self.init_ids is None else len(self.init_ids)
            raise ConfigError(f"init=ids needs one token id per pseudo token: the template has {count}, init_ids "
                              f"gives {have}; pass --option init_ids=[...] with {count} ids")


@register_method
class PTuning(PromptMethod):
    name = "p_tuning"
    config_class = PTuningConfig
    summary = "P-tuning: template pseudo tokens (before/between/after the input) from an LSTM or MLP prompt encoder"
    default_lr = 3e-3
    search_space = {"encoder": Choice(("lstm", "mlp", "none")), "encoder_hidden": IntRange(64, 512, 64),
                    "train.lr": LogFloat(3e-4, 3e-2)}

    def __init__(self, config: PTuningConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.config: PTuningConfig = config
        hidden = backbone.info.hidden_size
        self._count = Template.parse(config.template).num_pseudo
        generator = torch.Generator().manual_seed(config.init_seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.init_seed)
            table = backbone.input_embeddings().weight
            if config.init == "ids":
                assert config.init_ids is not None
                bad = [i for i in config.init_ids if not 0 <= i < table.shape[0]]
                if bad:
                    raise ConfigError(f"init_ids {bad[:3]} are outside the vocabulary (0..{table.shape[0] - 1})")
                start = table.detach()[torch.tensor(config.init_ids)].to(torch.float32).clone()
            elif config.init == "random":
                start = random_prompt(self._count, hidden, config.init_std, generator)
            else:
                start = vocab_prompt(table, self._count, generator)
            self.embeddings = nn.Parameter(start)  # (T, H)
            width = config.encoder_hidden
            self.lstm = (nn.LSTM(hidden, width // 2, num_layers=2, bidirectional=True, batch_first=True)
                         if config.encoder == "lstm" else None)
            self.mlp = (nn.Sequential(nn.Linear(width if self.lstm is not None else hidden, width), nn.ReLU(),
                                      nn.Linear(width, hidden)) if config.encoder != "none" else None)

    @property
    def num_template_tokens(self) -> int:
        return self._count

    @property
    def default_template(self) -> str:
        return self.config.template

    def encoded(self) -> torch.Tensor:
        """The T prompt vectors, (T, H)."""
        if self.mlp is None:
            return self.embeddings  # (T, H)
        x = self.embeddings.unsqueeze(0)  # (1, T, H)
        if self.lstm is not None:
            x = self.lstm(x)[0]  # (1, T, width)
        return self.mlp(x).squeeze(0)  # (T, H)

    def template_prompt(self, ctx: PromptContext) -> torch.Tensor:
        return self.encoded().unsqueeze(0).expand(ctx.batch_size, -1, -1)  # (B, T, H)
