"""Task-conditioned prompt generator: a hypernetwork from a task's representation to a prompt.

The task representation comes with the batch (``ctx.task_repr``): the frozen backbone's
encoding of the task's description and label names ("description"), or the mean encoding
of its support examples ("support"); with "learned" each task owns a trainable embedding
instead (a new task starts from the mean of the trained ones).

    prompt = base + MLP(task)                                       # (B, P, H)
    prompt = prompt + a * softmax(q(prompt) k(x)^T / sqrt(r)) x      # attention over the input

The second line (``attention``) makes the prompt input-conditioned: each prompt position
queries the input's token embeddings through rank-r projections, and the result is added
with a learned scale ``a`` that starts at zero. ``base`` starts from vocabulary embeddings
and the MLP's last layer from zero, so before training the model is plain prompt tuning and
the hypernetwork learns only what differs between tasks. Because the task enters as a vector,
an unseen task gets a prompt at K=0 from its description alone.
"""

from __future__ import annotations

import math
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
from promptlearning.methods.multitask_prompt import drop_prompt_vectors
from promptlearning.methods.prompt_init import initial_prompt

TASK_REPRS = ("description", "support", "learned")


@dataclass
class HyperPromptConfig(MethodConfig):
    num_tokens: int = option(10, "prompt length P")
    task_repr: str = option("description", "task representation: description, support (mean of examples) or learned")
    bottleneck: int = option(64, "width of the hypernetwork's hidden layer")
    attention: bool = option(True, "make the prompt input-conditioned by attention over the input tokens")
    attention_rank: int = option(32, "rank r of the attention's query/key projections")
    prompt_dropout: float = option(0.0, "probability of dropping a whole prompt vector while training")
    init_seed: int = option(0, "seed of the initialisation")

    def check(self) -> None:
        if self.task_repr not in TASK_REPRS:
            raise ConfigError(f"unknown task_repr {self.task_repr!r}; choose one of: {', '.join(TASK_REPRS)}")
        if min(self.num_tokens, self.bottleneck, self.attention_rank) < 1:
            raise ConfigError("num_tokens, bottleneck and attention_rank must be >= 1")
        if not 0.0 <= self.prompt_dropout < 1.0:
            raise ConfigError(f"prompt_dropout must be in [0, 1) (got {self.prompt_dropout})")

    def check_backbone(self, info: BackboneInfo) -> None:
        check_prompt_length(self.num_tokens, info, "prompt")


@register_method
class HyperPrompt(PromptMethod):
    name = "hyperprompt"
    reads_input = True  # its prompts are made from the input (see PromptMethod.reads_input)
    config_class = HyperPromptConfig
    summary = ("task-conditioned generator: a hypernetwork maps a task's description (or examples) to a prompt, "
               "attention makes it input-conditioned; serves unseen tasks at K=0")
    default_lr = 1e-2

    def __init__(self, config: HyperPromptConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.config: HyperPromptConfig = config
        hidden, p = backbone.info.hidden_size, config.num_tokens
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.init_seed)
            self.base = nn.Parameter(initial_prompt("vocab", p, backbone.input_embeddings().weight, backbone.tokenizer,
                                                    seed=config.init_seed, std=0.02, text=None))  # (P, H)
            self.down = nn.Linear(hidden, config.bottleneck)
            self.up = nn.Linear(config.bottleneck, p * hidden)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)
            self.query = nn.Linear(hidden, config.attention_rank, bias=False) if config.attention else None
            self.key = nn.Linear(hidden, config.attention_rank, bias=False) if config.attention else None
        self.mix = nn.Parameter(torch.zeros(())) if config.attention else None
        self.task_embedding = nn.Parameter(torch.zeros(0, hidden))  # (T, H), used by task_repr="learned"

    @property
    def task_repr_kind(self) -> str | None:
        return None if self.config.task_repr == "learned" else self.config.task_repr

    def add_task(self, name: str) -> None:
        if self.config.task_repr != "learned":
            return
        table = self.task_embedding.data
        start = table.mean(0, keepdim=True) if len(table) else torch.zeros(1, table.shape[1], device=table.device)
        self.task_embedding = nn.Parameter(torch.cat([table, start]))

    @property
    def num_prompt_positions(self) -> int:
        return self.config.num_tokens

    def task_vectors(self, ctx: PromptContext) -> torch.Tensor:
        """(B, H) task representation of each row."""
        if self.config.task_repr == "learned":
            assert ctx.task_ids is not None
            return self.task_embedding[ctx.task_ids.to(self.task_embedding.device)]
        if ctx.task_repr is None:
            raise ConfigError("this hyperprompt needs task representations; build the model with "
                              "PromptModel.build(..., tasks=[...]) so each task gets one")
        return ctx.task_repr

    def input_prompt(self, ctx: PromptContext) -> torch.Tensor:
        task = self.task_vectors(ctx).to(self.base.dtype)  # (B, H)
        delta = self.up(torch.tanh(self.down(task)))  # (B, P * H)
        prompt = self.base.unsqueeze(0) + delta.view(-1, *self.base.shape)  # (B, P, H)
        if self.query is not None and self.key is not None and self.mix is not None:
            assert ctx.text_embeds is not None and ctx.text_mask is not None
            text = ctx.text_embeds.to(prompt.dtype)  # (B, L, H)
            scores = self.query(prompt) @ self.key(text).transpose(1, 2) / math.sqrt(self.config.attention_rank)
            scores = scores.masked_fill(ctx.text_mask[:, None, :] == 0, float("-inf"))  # (B, P, L)
            prompt = prompt + self.mix * (scores.softmax(-1) @ text)  # (B, P, H)
        return drop_prompt_vectors(prompt, self.config.prompt_dropout, self.training)
