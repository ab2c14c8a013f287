"""Black-box soft-prompt tuning with CMA-ES (in the spirit of BBT / BBTv2): forward passes only.

For backbones served without gradients. The soft prompt is ``p0 + A z``: ``p0`` is the prompt
method's own initialisation (sampled vocabulary embeddings for an input prompt, the
Gaussian of P-tuning v2 for deep prompts), ``A`` a fixed random matrix (seeded, entries
``N(0, (scale * std(p0))^2 / d)``) and ``z`` a ``dim``-dimensional vector that CMA-ES, from
the maintained ``cma`` library, searches to maximise the fitness on the search split. The
hand-written template stays in place; the soft prompt is prepended at the input.

With ``layers`` the prompt is deep (P-tuning v2 at those layers), each layer with its own
projection and its own CMA-ES, optimised one layer at a time, round robin, for
``generations_per_layer`` generations each, the other layers held at the best found so far.
Resume is by replay (see :mod:`.budget`): CMA-ES draws from a generator seeded here, so
the same answers to ``tell`` lead to the same ``ask``.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from promptlearning.errors import ConfigError
from promptlearning.methods.base import option
from promptlearning.methods.protocols import soft_prompt_of
from promptlearning.search.base import (
    SearchContext,
    Searcher,
    SearcherConfig,
    SearchOutcome,
    positive,
    register_searcher,
)
from promptlearning.search.budget import BudgetExhausted
from promptlearning.search.scoring import Score


@dataclass
class BlackBoxConfig(SearcherConfig):
    num_tokens: int = option(5, "soft prompt length P")
    dim: int = option(50, "dimension d of the searched vector z (per layer)")
    popsize: int = option(0, "CMA-ES population per generation (0: the library's default 4 + 3 ln d)")
    sigma: float = option(1.0, "initial CMA-ES step size")
    scale: float = option(1.0, "projection scale, relative to the spread of the initial prompt")
    generations: int = option(0, "stop after this many generations (0: when the budget is spent)")
    layers: list[int] | None = option(None, "deep prompts at these layers, tuned one layer at a time (default: input only)")
    generations_per_layer: int = option(2, "with layers: generations spent on one layer before the next")

    def check(self) -> None:
        positive(self, "num_tokens", "dim", "generations_per_layer")
        if self.popsize < 0 or self.popsize == 1 or self.generations < 0:
            raise ConfigError("popsize must be 0 (default) or >= 2, and generations >= 0")
        if self.sigma <= 0 or self.scale <= 0:
            raise ConfigError("sigma and scale must be > 0")
        if self.layers is not None and not self.layers:
            raise ConfigError("layers is empty; give layer indices, e.g. --option layers=[10,20], or omit it")

    def population(self) -> int:
        return self.popsize or 4 + int(3 * math.log(self.dim))


def vector_key(zs: list[np.ndarray]) -> str:
    return hashlib.sha1(b"".join(np.asarray(z, dtype=np.float64).tobytes() for z in zs)).hexdigest()[:20]


@register_searcher
class BlackBoxSearch(Searcher):
    name = "cma_es"
    config_class = BlackBoxConfig
    rounds_option = "generations"
    summary = "black-box soft prompt: CMA-ES (cma library) over a random low-dimensional projection, forward passes only"

    def __init__(self, config: BlackBoxConfig, ctx: SearchContext) -> None:
        super().__init__(config, ctx)
        import cma

        self.config: BlackBoxConfig = config
        deep = config.layers is not None
        options: dict[str, object] = {"num_tokens": config.num_tokens, "init_seed": ctx.seed}
        if deep:
            options["layers"] = config.layers
        self.template = ctx.seeds[0].template
        self.model = ctx.scorer.model_for(self.template, "p_tuning_v2" if deep else "prompt_tuning", options)
        self.prompt = soft_prompt_of(self.model.method, "CMA-ES prompt search")
        self.p0 = self.prompt.soft_prompt()  # (S, P, H) deep, (P, H) input
        self.deep = deep
        self.blocks = self.p0.shape[0] if deep else 1
        generator = torch.Generator().manual_seed(ctx.seed)
        self.projections = []
        for b in range(self.blocks):
            block = self.p0[b] if deep else self.p0
            std = float(block.float().std()) or 1.0
            self.projections.append(torch.randn(block.numel(), config.dim, generator=generator)
                                    * (config.scale * std / math.sqrt(config.dim)))  # (P*H, d)
        self.current = [np.zeros(config.dim) for _ in range(self.blocks)]  # each block's best z so far
        self.labels: dict[str, str] = {}
        self.strategies = [cma.CMAEvolutionStrategy(np.zeros(config.dim), config.sigma, {
            "seed": ctx.seed * 1000 + b + 1, "popsize": config.population(), "verbose": -9})
            for b in range(self.blocks)]
        self.generation = 0

    @classmethod
    def evaluations_per_round(cls, config: SearcherConfig) -> int:
        return config.population()  # type: ignore[attr-defined]

    @torch.no_grad()
    def apply(self, zs: list[np.ndarray]) -> None:
        """Write p0 + A z into the model's prompt, block by block."""
        prompt = self.p0.clone()  # (S, P, H) deep, (P, H) input
        for b, z in enumerate(zs):
            delta = (self.projections[b] @ torch.as_tensor(z, dtype=torch.float32))  # (P*H,)
            if self.deep:
                prompt[b] = self.p0[b] + delta.view_as(self.p0[b])
            else:
                prompt = self.p0 + delta.view_as(self.p0)
        self.prompt.set_soft_prompt(prompt)

    def score(self, zs: list[np.ndarray], label: str) -> Score:
        key = vector_key(zs)
        self.labels.setdefault(key, label)

        def run() -> Score:
            self.apply(zs)
            return self.ctx.scorer.score_model(self.model)

        score = self.ctx.budget.evaluate(key, run)
        if self.ctx.budget.best_key == key:
            self.best = [z.copy() for z in zs]
        return score

    def run(self) -> SearchOutcome:
        cfg = self.config
        self.best = [z.copy() for z in self.current]
        try:
            self.score(self.current, "initial prompt (z = 0)")
            while not cfg.generations or self.generation < cfg.generations:
                b = (self.generation // cfg.generations_per_layer) % self.blocks
                es = self.strategies[b]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    xs = es.ask()
                fits = []
                for j, x in enumerate(xs):
                    zs = [np.asarray(x) if i == b else self.best[i] for i in range(self.blocks)]
                    where = f" layer {cfg.layers[b]}" if cfg.layers is not None else ""
                    fits.append(-self.score(zs, f"generation {self.generation + 1}{where} candidate {j + 1}").fitness)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    es.tell(xs, fits)
                self.generation += 1
                if self.generation % 5 == 0:
                    best = self.ctx.budget.best
                    assert best is not None
                    self.ctx.log(f"generation {self.generation}: best dev accuracy {best.accuracy:.4f}, "
                                 f"{self.ctx.budget.used} forward passes")
        except BudgetExhausted:
            pass
        self.apply(self.best)
        top = [(self.labels[k], s) for k, s in self.ctx.budget.top(10)]
        where = f"at layers {cfg.layers}" if cfg.layers is not None else "at the input"
        description = (f"{cfg.num_tokens} soft prompt vectors {where} (p0 + A z, z in {cfg.dim} dims, CMA-ES), "
                       f"template {self.template!r}")
        return SearchOutcome(self.model, description, top,
                             {"generations": self.generation, "best_z": [z.tolist() for z in self.best]})
