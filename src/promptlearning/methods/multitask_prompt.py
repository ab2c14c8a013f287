"""Multi-task prompt: one shared soft prompt times a rank-r factor per task.

Task t's prompt is ``shared * (1 + U_t V_t)`` (elementwise), with U_t (P, r) starting at
zero: every task starts from the shared prompt, and a task the model has never seen (no
factor trained yet) simply uses the shared prompt. Only 2 * r * (P + H) numbers are added
per task, so one adapter serves many tasks.

Regularisers (one option each, all off by default):
* ``l2_shared``: pulls every task's prompt toward the shared one (``regularization``);
* ``prompt_dropout``: drops whole prompt vectors while training;
* ``task_mixing``: while training, each row's task factor is interpolated with another
  training task's by a weight drawn from U(0, task_mixing), so the shared part cannot lean
  on one task type.
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
    check_prompt_length,
    option,
    register_method,
)
from promptlearning.methods.prompt_init import INITS, initial_prompt


@dataclass
class MultiTaskPromptConfig(MethodConfig):
    num_tokens: int = option(20, "length P of the shared prompt")
    rank: int = option(1, "rank r of each task's multiplicative factor")
    init: str = option("vocab", "initialisation of the shared prompt: random, vocab or text")
    init_text: str | None = option(None, "text whose token embeddings start the shared prompt (init=text)")
    init_std: float = option(0.02, "standard deviation for init=random and of the factors' V")
    init_seed: int = option(0, "seed of the initialisation")
    l2_shared: float = option(0.0, "weight of the L2 pull of task prompts toward the shared prompt")
    prompt_dropout: float = option(0.0, "probability of dropping a whole prompt vector while training")
    task_mixing: float = option(0.0, "largest weight of another task's factor mixed into a row's (0 = off)")

    def check(self) -> None:
        if self.num_tokens < 1 or self.rank < 1:
            raise ConfigError("num_tokens and rank must be >= 1")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of: {', '.join(INITS)}")
        for name in ("prompt_dropout", "task_mixing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1) (got {getattr(self, name)})")
        if self.l2_shared < 0:
            raise ConfigError(f"l2_shared must be >= 0 (got {self.l2_shared})")

    def check_backbone(self, info: BackboneInfo) -> None:
        check_prompt_length(self.num_tokens, info, "prompt")


def drop_prompt_vectors(prompt: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero whole prompt vectors of (B, P, H) with probability p (rescaled), only in training."""
    if not training or p == 0.0:
        return prompt
    keep = (torch.rand(prompt.shape[:2], device=prompt.device) >= p).to(prompt.dtype)  # (B, P)
    return prompt * keep.unsqueeze(-1) / (1.0 - p)


@register_method
class MultiTaskPrompt(PromptMethod):
    name = "multitask_prompt"
    config_class = MultiTaskPromptConfig
    summary = "multi-task prompt: a shared soft prompt times a low-rank factor per task; unseen tasks use the shared part"
    default_lr = 3e-2

    def __init__(self, config: MultiTaskPromptConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.config: MultiTaskPromptConfig = config
        self.shared = nn.Parameter(initial_prompt(config.init, config.num_tokens, backbone.input_embeddings().weight,
                                                  backbone.tokenizer, seed=config.init_seed, std=config.init_std,
                                                  text=config.init_text))  # (P, H)
        hidden = backbone.info.hidden_size
        self.task_u = nn.Parameter(torch.zeros(0, config.num_tokens, config.rank))  # (T, P, r)
        self.task_v = nn.Parameter(torch.zeros(0, config.rank, hidden))  # (T, r, H)
        self._generator = torch.Generator().manual_seed(config.init_seed + 1)

    def add_task(self, name: str) -> None:
        v = torch.randn(1, self.config.rank, self.info.hidden_size, generator=self._generator) * self.config.init_std
        device = self.shared.device
        self.task_u = nn.Parameter(torch.cat([self.task_u.data, torch.zeros(1, *self.task_u.shape[1:], device=device)]))
        self.task_v = nn.Parameter(torch.cat([self.task_v.data, v.to(device)]))

    @property
    def num_prompt_positions(self) -> int:
        return self.config.num_tokens

    def factors(self, task_ids: torch.Tensor) -> torch.Tensor:
        """Each row's task factor U_t V_t, (B, P, H); mixed with another task's while training."""
        u, v = self.task_u[task_ids], self.task_v[task_ids]  # (B, P, r), (B, r, H)
        factor = u @ v  # (B, P, H)
        if self.training and self.config.task_mixing > 0 and self.task_u.shape[0] > 1:
            other = torch.randint(0, self.task_u.shape[0], task_ids.shape, device=task_ids.device)
            weight = torch.rand(task_ids.shape, device=task_ids.device) * self.config.task_mixing  # (B,)
            mixed = self.task_u[other] @ self.task_v[other]  # (B, P, H)
            factor = factor + weight.view(-1, 1, 1) * (mixed - factor)
        return factor

    def input_prompt(self, ctx: PromptContext) -> torch.Tensor:
        assert ctx.task_ids is not None
        prompt = self.shared.unsqueeze(0) * (1.0 + self.factors(ctx.task_ids.to(self.shared.device)))  # (B, P, H)
        return drop_prompt_vectors(prompt, self.config.prompt_dropout, self.training)

    def regularization(self) -> torch.Tensor | None:
        if self.config.l2_shared == 0 or self.task_u.shape[0] == 0:
            return None
        deviation = self.shared.unsqueeze(0) * (self.task_u @ self.task_v)  # (T, P, H): task prompt - shared
        return self.config.l2_shared * deviation.pow(2).sum(dim=(1, 2)).mean()
