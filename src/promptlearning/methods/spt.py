"""Selective Prompt Tuning (SPT): a gated prompt generator at every candidate layer.

At layer l the prompt positions become ``p_l * new_l + (1 - p_l) * flowing``, where ``new_l``
is the instance-aware generator's prompt made from that layer's incoming hidden states,
``flowing`` is the prompt carried up from below, and ``p_l = sigmoid(g_l)`` is a learnable
gate: with the gate off the layer passes the lower prompt on. The gate logits are the
method's *architecture* parameters (trained on validation data by the bi-level trainer);
the generators are its weights.

The published formulas were not available to us; these choices are our own:

* ``gate="sigmoid"`` uses ``p_l`` as is (plain DARTS-style relaxation);
* ``gate="straight_through"`` (SPT-DARTS) uses a Bernoulli sample of ``p_l`` in the forward pass
  (``p_l > 0.5`` in eval mode) while the gradient flows into ``g_l`` as if ``p_l`` had been used;
* ``gate="normalized"`` (SPT-DARTS) uses ``p_l / max_k p_k``: the forward value no longer shrinks
  with the raw probabilities, which keeps all gates from collapsing toward 0 together.

After the search ``selected_layers`` fixes the architecture: those layers inject with no gate,
the others do nothing, and the gates are frozen.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from promptlearning.backbones import Backbone, BackboneInfo
from promptlearning.errors import ConfigError
from promptlearning.methods.base import (
    MethodConfig,
    PromptContext,
    PromptMethod,
    check_layers,
    option,
    register_method,
)
from promptlearning.methods.generator import ACTIVATIONS, POOLS, build_generators, generated_prompt

GATES = ("sigmoid", "straight_through", "normalized")


@dataclass
class SPTConfig(MethodConfig):
    num_tokens: int = option(5, "prompt length P generated at each layer")
    candidate_layers: list[int] | None = option(None, "layers that may get a prompt (default: every layer)")
    bottleneck: int = option(64, "generator bottleneck width r")
    activation: str = option("relu", "generator non-linearity: relu, tanh or gelu")
    pooling: str = option("mean", "pooling of the layer's input positions: mean or first")
    share_down: bool = option(False, "share the generators' down-projection across layers")
    gate: str = option("sigmoid", "gate value in the forward pass: sigmoid, straight_through or normalized (SPT-DARTS)")
    gate_init: float = option(0.0, "initial gate logit g_l (0 gives p_l = 0.5)")
    selected_layers: list[int] | None = option(None, "the searched architecture: inject at exactly these layers")
    random_layers: int | None = option(None, "baseline: inject at this many candidate layers drawn at random "
                                             "from the global seed (recorded in selected_layers)")
    init_std: float = option(0.1, "standard deviation of the generators' up-projection bias")
    init_seed: int = option(0, "seed of the initialisation")

    def check(self) -> None:
        if self.num_tokens < 1 or self.bottleneck < 1:
            raise ConfigError("num_tokens and bottleneck must be >= 1")
        if self.gate not in GATES:
            raise ConfigError(f"unknown gate {self.gate!r}; choose one of: {', '.join(GATES)}")
        if self.activation not in ACTIVATIONS or self.pooling not in POOLS:
            raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)}; pooling one of {', '.join(POOLS)}")
        if self.random_layers is not None and self.random_layers < 1:
            raise ConfigError(f"random_layers must be >= 1 (got {self.random_layers})")
        if self.candidate_layers is not None and not self.candidate_layers:
            raise ConfigError("candidate_layers is empty; give at least one layer or omit it for every layer")

    def check_backbone(self, info: BackboneInfo) -> None:
        candidates = check_layers(self.candidate_layers, info, "candidate_layers")
        if self.random_layers is not None and self.random_layers > len(candidates):
            raise ConfigError(f"random_layers={self.random_layers} exceeds the {len(candidates)} candidate layers; "
                              "lower it")
        if self.selected_layers is not None:
            outside = sorted(set(self.selected_layers) - set(candidates))
            if outside or not self.selected_layers:
                raise ConfigError(f"selected_layers must be a non-empty subset of the candidates {candidates} "
                                  f"(got {self.selected_layers})")


def gate_values(logits: torch.Tensor, mode: str, training: bool, generator: torch.Generator | None = None
                ) -> torch.Tensor:
    """Forward values of the gates (S,), with gradients into the logits in every mode."""
    p = torch.sigmoid(logits)
    if mode == "sigmoid":
        return p
    if mode == "normalized":
        return p / p.max()
    if training:
        hard = (torch.rand(p.shape, generator=generator, device=p.device) < p).to(p.dtype)
    else:
        hard = (p > 0.5).to(p.dtype)
    return hard + p - p.detach()  # straight-through: forward hard, backward as p


@register_method
class SelectivePromptTuning(PromptMethod):
    name = "spt"
    reads_input = True  # its prompts are made from the input (see PromptMethod.reads_input)
    config_class = SPTConfig
    summary = ("Selective Prompt Tuning: gated instance-aware generators at every candidate layer; "
               "the bi-level search learns which layers get prompts")
    default_lr = 3e-3

    def __init__(self, config: SPTConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.config: SPTConfig = config
        self.candidates = check_layers(config.candidate_layers, backbone.info, "candidate_layers")
        if config.random_layers is not None and config.selected_layers is None:
            # drawn from the global RNG, which the run's seed sets: each seed gets its own layers
            picked = torch.randperm(len(self.candidates))[: config.random_layers].tolist()
            config.selected_layers = sorted(self.candidates[i] for i in picked)
        hidden = backbone.info.hidden_size
        generators = build_generators(self.candidates, hidden, config.bottleneck, config.num_tokens,
                                      config.activation, config.share_down, config.init_std, config.init_seed)
        if config.selected_layers is not None:
            # a fixed architecture holds (and counts, and saves) only its layers' generators; built from the
            # full set first so each keeps the initial values it had in the supernet
            generators = nn.ModuleDict({str(k): generators[str(k)] for k in sorted(config.selected_layers)})
        self.generators = generators
        self.gates = nn.Parameter(torch.full((len(self.candidates),), float(config.gate_init)))  # (S,) logits
        self._slot = {layer: i for i, layer in enumerate(self.candidates)}
        self.discrete: list[int] | None = None  # set within discretised(): run as the fixed architecture
        if config.selected_layers is not None:
            self.gates.requires_grad_(False)

    # ---------------------------------------------------------------- LayerGates: what the search reads
    @property
    def candidate_layers(self) -> list[int]:
        return list(self.candidates)

    @contextmanager
    def discretised(self, layers: list[int]) -> Iterator[None]:
        """Run as the fixed architecture injecting at exactly ``layers`` (gate 1 there, nothing elsewhere)."""
        previous, self.discrete = self.discrete, list(layers)
        try:
            yield
        finally:
            self.discrete = previous

    def architecture_parameters(self) -> list[nn.Parameter]:
        return [self.gates] if self.config.selected_layers is None else []

    def probabilities(self) -> torch.Tensor:
        return torch.sigmoid(self.gates.detach())  # (S,)

    def top_layers(self, k: int) -> list[int]:
        """The k candidate layers with the highest gate probabilities, in layer order."""
        if not 1 <= k <= len(self.candidates):
            raise ConfigError(f"layer budget K={k} must be between 1 and the {len(self.candidates)} candidate layers")
        order = torch.argsort(self.probabilities(), descending=True, stable=True)[:k]
        return sorted(self.candidates[i] for i in order.tolist())

    def select_layers(self, k: int, threshold: float | None = None) -> list[int]:
        """The architecture the search chose: the top-k layers, or with a threshold those of the top-k whose
        gate probability reaches it (never none: a search whose gates all stay low still keeps its best layer)."""
        top = self.top_layers(k)
        if threshold is None:
            return top
        probs = dict(zip(self.candidates, self.probabilities().tolist(), strict=True))
        kept = [layer for layer in top if probs[layer] >= threshold]
        return kept or self.top_layers(1)

    # ---------------------------------------------------------------- the sites
    @property
    def num_prompt_positions(self) -> int:
        return self.config.num_tokens

    @property
    def prompt_layers(self) -> list[int]:
        fixed = self.config.selected_layers if self.config.selected_layers is not None else self.discrete
        return sorted(fixed) if fixed is not None else list(self.candidates)

    def layer_prompt(self, layer: int, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor | None:
        if layer not in self.prompt_layers:
            return None
        new = generated_prompt(self.generators[str(layer)], hidden, ctx, self.config.pooling)  # (B, P, H)
        if self.config.selected_layers is not None or self.discrete is not None:
            return new  # a fixed architecture: the chosen layers inject, the gate is 1
        gate = gate_values(self.gates, self.config.gate, self.training)[self._slot[layer]]
        flowing = hidden[:, : ctx.num_prompt_positions]  # (B, P, H) the prompt carried up from below
        return gate * new + (1 - gate) * flowing
