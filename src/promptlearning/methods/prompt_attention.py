"""Attention over prompts: frozen source-task prompts and a new target prompt, mixed per input.

For each input, a query made from its pooled input embeddings scores J = S + 1 candidate
prompts (S frozen source prompts, then the trainable target prompt); the input's prompt is
the softmax-weighted sum of the candidates. The idea follows ATTEMPT (Asai et al., 2022);
the formulas are our own:

    q_b     = up(tanh(down(mean_l e_bl)))                    (B, H)  pooled input embeddings
    k_j     = mean_p C_jp                                    (J, H)  each candidate's mean vector
    a_bj    = softmax_j(q_b . k_j / (sqrt(H) * T) + c_j)      (B, J)  c_j: a learned bias per candidate
    prompt_b = sum_j a_bj C_j                                (B, P, H)

``up`` starts at zero, so at the start every input gets the same mixture (set by ``c``).
Source prompts are handed in once, when the method is set up, and kept as buffers: the saved
adapter holds them, and reloading it needs no source files (``num_sources`` says how many buffers
to expect, ``source_names`` whose they are). A driver that has already read the sources (the
``transfer`` command) builds the method with ``num_sources`` and hands the prompts to
:meth:`PromptAttention.set_source_prompts`; the ``sources`` option (adapter directories, read
by :func:`load_source_prompt` in the constructor) serves a plain ``train --method
prompt_attention``, which has no such driver. With no sources the method is plain prompt tuning
of the target prompt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from promptlearning.backbones import Backbone, BackboneInfo
from promptlearning.errors import AdapterError, ConfigError
from promptlearning.methods.base import (
    MethodConfig,
    PromptContext,
    PromptMethod,
    check_prompt_length,
    option,
    register_method,
)
from promptlearning.methods.prompt_init import initial_prompt

TARGET_INITS = ("vocab", "random", "sources")


@dataclass
class PromptAttentionConfig(MethodConfig):
    sources: list[str] = option([], "prompt_tuning adapter directories whose prompts are mixed; read once when the "
                                    "method is built, then stored inside this adapter")
    num_sources: int = option(0, "how many frozen source prompts the adapter holds (set from sources)")
    source_names: list[str] = option([], "the source adapters' tasks, for the record (set from sources)")
    num_tokens: int = option(20, "prompt length P (must equal the source prompts')")
    attention_dim: int = option(32, "width r of the query projection (parameters ~ 2*H*r)")
    temperature: float = option(1.0, "softmax temperature T of the attention over prompts")
    init: str = option("vocab", "target prompt start: vocab (sampled token embeddings), random, or sources "
                                "(the mean of the source prompts)")
    init_seed: int = option(0, "seed of the initialisation")

    def check(self) -> None:
        if self.num_tokens < 1 or self.attention_dim < 1:
            raise ConfigError("num_tokens and attention_dim must be >= 1; pass e.g. --option num_tokens=20")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0 (got {self.temperature})")
        if self.num_sources < 0:
            raise ConfigError(f"num_sources must be >= 0 (got {self.num_sources})")
        if self.init not in TARGET_INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of: {', '.join(TARGET_INITS)}")
        if self.init == "sources" and not (self.sources or self.num_sources):
            raise ConfigError("init=sources needs source prompts; pass --option \"sources=[DIR]\" or use init=vocab")

    def check_backbone(self, info: BackboneInfo) -> None:
        check_prompt_length(self.num_tokens, info, "prompt")


def load_source_prompt(directory: str | Path, backbone: Backbone) -> tuple[str, torch.Tensor]:
    """A prompt-tuning adapter's task name and prompt (P, H), after checking it fits ``backbone``."""
    from promptlearning.adapters import check_backbone, load_adapter_state, read_adapter_config

    path = Path(directory)
    config = read_adapter_config(path)
    check_backbone(config, backbone, path)
    prompt = load_adapter_state(path).get("method.prompt")  # ours, or our export to PEFT's format
    if prompt is None or prompt.ndim != 2 or prompt.shape[1] != backbone.info.hidden_size:
        raise AdapterError(f"source adapter {path} (method {config.get('method')}) has no input prompt; "
                           "give prompt_tuning adapters as sources")
    return str(config.get("task") or path.name), prompt.float()


@register_method
class PromptAttention(PromptMethod):
    name = "prompt_attention"
    reads_input = True  # its prompts are made from the input (see PromptMethod.reads_input)
    config_class = PromptAttentionConfig
    summary = "per-input attention mixing frozen source-task prompts with a new target prompt (ATTEMPT-style)"
    default_lr = 3e-2
    source_prompts: torch.Tensor  # (S, P, H) buffer

    def __init__(self, config: PromptAttentionConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.config: PromptAttentionConfig = config
        hidden = backbone.info.hidden_size
        named = [load_source_prompt(d, backbone) for d in config.sources]  # the `train` path; drivers hand in
        if named:
            config.num_sources = len(named)
        self.register_buffer("source_prompts", torch.zeros(config.num_sources, config.num_tokens, hidden))  # (S, P, H)
        if config.init == "sources":
            target = self.source_prompts.mean(0).clone()  # (P, H), set again when the sources arrive
        else:
            target = initial_prompt(config.init, config.num_tokens, backbone.input_embeddings().weight,
                                    backbone.tokenizer, seed=config.init_seed, std=0.02, text=None)
        self.prompt = nn.Parameter(target)  # (P, H)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.init_seed)
            self.down = nn.Linear(hidden, config.attention_dim)
            self.up = nn.Linear(config.attention_dim, hidden)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.bias = nn.Parameter(torch.zeros(config.num_sources + 1))  # (J,) one logit offset per candidate
        if named:
            self.set_source_prompts(named)
            config.sources = []  # consumed: the adapter now carries the prompts themselves

    @torch.no_grad()
    def set_source_prompts(self, named: Sequence[tuple[str, torch.Tensor]]) -> None:
        """Take the frozen source prompts, (name, (P, H)) each, in candidate order, before training.

        Their number is fixed when the method is built (``num_sources``: the attention bias has one
        entry per candidate); with ``init=sources`` the target prompt restarts at their mean.
        """
        if len(named) != self.config.num_sources:
            raise ConfigError(f"{len(named)} source prompts given to a prompt_attention built for "
                              f"{self.config.num_sources}; pass --option num_sources={len(named)}")
        lengths = sorted({p.shape[0] for _, p in named})
        if named and lengths != [self.config.num_tokens]:
            raise ConfigError(f"source prompts have {lengths} tokens but num_tokens is {self.config.num_tokens}; "
                              f"pass --option num_tokens={lengths[0]} (and sources of one length)")
        if named:
            self.source_prompts.copy_(torch.stack([p for _, p in named]))
        self.config.source_names = [n for n, _ in named]
        if self.config.init == "sources":
            self.prompt.copy_(self.source_prompts.mean(0))

    @property
    def num_prompt_positions(self) -> int:
        return self.config.num_tokens

    def candidates(self) -> torch.Tensor:
        """Sources then the target, (J, P, H)."""
        return torch.cat([self.source_prompts.to(self.prompt.dtype), self.prompt.unsqueeze(0)])

    def mixing_weights(self, ctx: PromptContext) -> torch.Tensor:
        """Attention of each input over [sources..., target], (B, J); rows sum to 1."""
        assert ctx.text_embeds is not None and ctx.text_mask is not None
        mask = ctx.text_mask.to(self.prompt.dtype).unsqueeze(-1)  # (B, L, 1)
        pooled = (ctx.text_embeds.to(self.prompt.dtype) * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
        query = self.up(torch.tanh(self.down(pooled)))  # (B, H)
        keys = self.candidates().mean(1)  # (J, H)
        scale = math.sqrt(self.info.hidden_size) * self.config.temperature
        return (query @ keys.T / scale + self.bias).softmax(-1)  # (B, J)

    def input_prompt(self, ctx: PromptContext) -> torch.Tensor:
        weights = self.mixing_weights(ctx)  # (B, J)
        return torch.einsum("bj,jph->bph", weights, self.candidates())  # (B, P, H)
