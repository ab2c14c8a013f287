"""Prefix tuning: trainable key/value prefixes handed to every layer's attention.

With ``reparam`` (Li & Liang, 2021) the prefixes are produced during training by an MLP from
a small embedding table, which steadies optimisation; :meth:`PrefixTuning.fold` computes the
table once and drops the MLP, so inference pays nothing and outputs do not change. Without
``reparam`` the prefixes are trained directly: P-tuning v2 in its original key/value form.

How the prefixes start: ``init=random`` (the default) draws small Gaussian prefixes (or the MLP's
input table); ``init=vocab`` (or ``text``) starts from the keys and values the frozen backbone
computes for real tokens, as Li & Liang advise for low-data settings, so that the model starts out
reading P ordinary tokens before its input; with ``reparam`` the MLP then learns a change to those
anchors (its output layer starts at zero). On MiniLM-L6 few-shot MR the real-token start scored
below the small random one (benchmarks/results/tuned_defaults.md), hence the default.
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
from promptlearning.methods.prompt_init import INITS, token_ids_for_init
from promptlearning.methods.search_space import Choice, IntRange, LogFloat


@dataclass
class PrefixTuningConfig(MethodConfig):
    num_tokens: int = option(16, "prefix length P (key/value positions per layer)")
    reparam: bool = option(True, "produce the prefixes by an MLP during training (fold it away for inference)")
    reparam_hidden: int = option(256, "hidden width of the reparameterisation MLP")
    init: str = option("random", "initialisation: random (Gaussian, init_std), vocab (the backbone's keys and "
                                 "values of sampled vocabulary tokens) or text (of init_text's tokens)")
    init_text: str | None = option(None, "text whose tokens' keys and values start the prefix (init=text)")
    init_std: float = option(0.05, "standard deviation of the initial prefixes for init=random (or of the MLP's "
                                   "input table)")
    init_seed: int = option(0, "seed of the initialisation")
    peft_positions: bool = option(False, "number the input's positions from P, after the prefix, as Hugging Face "
                                         "PEFT does (set on import from PEFT; needed to export to PEFT)")

    def check(self) -> None:
        if self.num_tokens < 1:
            raise ConfigError(f"num_tokens must be >= 1 (got {self.num_tokens}); pass --option num_tokens=16")
        if self.reparam_hidden < 1:
            raise ConfigError("reparam_hidden must be >= 1")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of: {', '.join(INITS)}")
        if self.init == "text" and not self.init_text:
            raise ConfigError("init=text needs init_text; pass --option init_text=\"a phrase\" or choose init vocab/random")

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
    # measured (benchmarks/results/tuned_defaults.md): at 1e-2 with init_std 0.5 the MLP's output ran away
    # within a few steps and about one run in three collapsed to one label; 3e-3 from small prefixes did not
    default_lr = 3e-3
    search_space = {"num_tokens": IntRange(4, 32, 4), "reparam": Choice((True, False)),
                    "init": Choice(("vocab", "random")), "init_std": LogFloat(0.02, 1.0),
                    "train.lr": LogFloat(1e-4, 1e-1)}

    def __init__(self, config: PrefixTuningConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.config: PrefixTuningConfig = config
        info = backbone.info
        self._shape = (info.num_layers, 2, info.num_kv_heads, config.num_tokens, info.head_dim)
        width = info.num_layers * 2 * info.num_kv_heads * info.head_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.init_seed)
            # a family without a key/value cache is refused by the injector at the first forward, in its words
            real = config.init != "random" and backbone.reads_kv_cache
            anchor = real_token_prefix(backbone, config) if real else None  # (P, W)
            if config.reparam:
                self.table = nn.Parameter(torch.randn(config.num_tokens, info.hidden_size) * config.init_std)
                first = nn.Linear(info.hidden_size, config.reparam_hidden)  # drawn first, as it always was
                out = nn.Linear(config.reparam_hidden, width)
                self.mlp = nn.Sequential(first, nn.Tanh(), out)
                if anchor is not None:
                    # the MLP learns a change to the anchors, starting from none
                    nn.init.zeros_(out.weight)
                    nn.init.zeros_(out.bias)
                    self.register_buffer("anchor", anchor)
            elif anchor is not None:
                self.prefix = nn.Parameter(anchor)
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
        if not self.config.reparam:
            return self.prefix
        made = self.mlp(self.table)
        anchor = getattr(self, "anchor", None)
        return made if anchor is None else made + anchor

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
        if hasattr(self, "anchor"):
            del self.anchor
        self.prefix = nn.Parameter(table)
        self.config.reparam = False


@torch.no_grad()
def real_token_prefix(backbone: Backbone, config: PrefixTuningConfig) -> torch.Tensor:
    """The keys and values every layer computes for P real tokens, laid out as the flat prefix (P, W).

    The frozen backbone reads the tokens alone (positions 0..P-1, no special tokens) and fills a
    key/value cache, the same cache the injector hands it prefixes through, so this works for every
    backbone family the injector supports."""
    from transformers import DynamicCache

    ids = token_ids_for_init(config.init, config.num_tokens, backbone.input_embeddings().num_embeddings,
                             backbone.tokenizer, seed=config.init_seed, text=config.init_text)  # (P,)
    device = backbone.input_embeddings().weight.device
    cache = DynamicCache()
    mask = torch.ones(1, len(ids), dtype=torch.long, device=device)
    backbone.model(input_ids=ids.unsqueeze(0).to(device), attention_mask=mask, use_cache=True,
                   **{backbone.cache_keyword: cache})
    keys: list[Any] = [getattr(layer, "keys", None) for layer in cache.layers]  # each (1, h, P, d)
    values: list[Any] = [getattr(layer, "values", None) for layer in cache.layers]
    if len(keys) != backbone.info.num_layers or any(k is None for k in keys + values):
        raise ConfigError(f"the backbone returned keys and values for {len(keys)} of its {backbone.info.num_layers} "
                          "layers; use --option init=random with this backbone")
    kv = torch.stack([torch.stack([k[0], v[0]]) for k, v in zip(keys, values, strict=True)])  # (N, 2, h, P, d)
    return kv.permute(3, 0, 1, 2, 4).reshape(config.num_tokens, -1).to(torch.float32).cpu().clone()  # (P, W)
