"""Evolutionary search over readable prompts.

The first generation is the seed prompts (hand-written ones by default) filled up with
mutants of them. Each generation is scored on the search split through the head; the
``elite`` best pass unchanged, and the rest of the next generation are children: a parent
picked by tournament, crossed over with a second one with probability ``crossover``, then
mutated one to ``mutations`` times (word-level and phrase-level edits, see
:mod:`.mutation`). Children already scored are redrawn (up to a limit), so the budget goes
to new prompts. The search stops when the budget cannot pay for the next evaluation or
after ``generations`` generations.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from promptlearning.methods.base import option
from promptlearning.search.base import (
    SearchContext,
    Searcher,
    SearcherConfig,
    SearchOutcome,
    positive,
    register_searcher,
)
from promptlearning.search.budget import BudgetExhausted
from promptlearning.search.candidates import DiscretePrompt
from promptlearning.search.mutation import Mutator, phrase_pool
from promptlearning.search.scoring import Score, fixed_tokens
from promptlearning.search.vocabulary import Vocabulary


@dataclass
class EvolutionConfig(SearcherConfig):
    population: int = option(8, "prompts per generation")
    elite: int = option(2, "best prompts carried unchanged into the next generation")
    generations: int = option(0, "stop after this many generations (0: when the budget is spent)")
    crossover: float = option(0.3, "probability that a child is a crossover of two parents")
    mutations: int = option(2, "a child gets 1 to this many mutations")
    tournament: int = option(3, "tournament size of parent selection")
    max_words: int = option(40, "longest prompt allowed, in words (input slots excluded); its tokens must also "
                                "leave at least half of --max-length to the input")
    neighbours: int = option(10, "embedding-space neighbours a word substitution picks from")
    trigger_top: int = option(500, "inserted trigger words: the task text's most frequent readable words, this many")
    word_level: float = option(0.6, "share of mutations at word level (the rest at phrase level)")

    def check(self) -> None:
        positive(self, "population", "mutations", "tournament", "max_words", "neighbours", "trigger_top")
        from promptlearning.errors import ConfigError

        if not 0 <= self.elite < self.population:
            raise ConfigError(f"elite must be in 0..population-1 (got {self.elite}); pass --option elite=2")
        for name in ("crossover", "word_level"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1] (got {getattr(self, name)})")
        if self.generations < 0:
            raise ConfigError(f"generations must be >= 0 (got {self.generations})")


@register_searcher
class EvolutionarySearch(Searcher):
    name = "evolution"
    config_class = EvolutionConfig
    rounds_option = "generations"
    max_words_option = "max_words"
    summary = "evolutionary search over readable prompts: word and phrase mutations, crossover, elitism"

    def __init__(self, config: EvolutionConfig, ctx: SearchContext) -> None:
        super().__init__(config, ctx)
        self.config: EvolutionConfig = config
        self.rng = random.Random(ctx.seed)
        vocabulary = Vocabulary(ctx.scorer.backbone)
        texts = [e.text_a for e in ctx.scorer.examples] + [s.template for s in ctx.seeds]
        self.mutator = Mutator(vocabulary, phrase_pool(ctx.seeds), max_words=config.max_words,
                               slots=ctx.slots, neighbours=config.neighbours, trigger_top=config.trigger_top,
                               word_level=config.word_level, trigger_rows=vocabulary.rows_in(texts, config.trigger_top),
                               fits=lambda p: fixed_tokens(ctx.scorer.backbone.tokenizer, p.template)
                               <= ctx.scorer.max_length // 2)
        self.generation = 0

    @classmethod
    def evaluations_per_round(cls, config: SearcherConfig) -> int:
        return config.population  # type: ignore[attr-defined]

    def score(self, prompt: DiscretePrompt) -> Score:
        return self.ctx.budget.evaluate(prompt.template, lambda: self.ctx.scorer.score_template(prompt.template))

    def first_generation(self) -> list[DiscretePrompt]:
        population: list[DiscretePrompt] = []
        for seed in self.ctx.seeds:
            if seed not in population and len(population) < self.config.population:
                population.append(seed)
        tries = 0
        while len(population) < self.config.population:
            child = self.mutate(self.rng.choice(self.ctx.seeds))
            tries += 1
            if child not in population or tries > 50:
                population.append(child)
        return population

    def mutate(self, prompt: DiscretePrompt) -> DiscretePrompt:
        for _ in range(self.rng.randint(1, self.config.mutations)):
            prompt, _op = self.mutator.mutate(prompt, self.rng)
        return prompt

    def select(self, ranked: list[tuple[DiscretePrompt, Score]]) -> DiscretePrompt:
        """Tournament selection: the fittest of a few drawn at random."""
        picks = [self.rng.randrange(len(ranked)) for _ in range(self.config.tournament)]
        return ranked[min(picks)][0]  # ranked is sorted best first

    def next_generation(self, ranked: list[tuple[DiscretePrompt, Score]]) -> list[DiscretePrompt]:
        cfg = self.config
        population = [p for p, _ in ranked[:cfg.elite]]
        tries = 0
        while len(population) < cfg.population:
            child = self.select(ranked)
            if self.rng.random() < cfg.crossover:
                child = self.mutator.crossover(child, self.select(ranked), self.rng)
            child = self.mutate(child)
            tries += 1
            fresh = child not in population and child.template not in self.ctx.budget.memo
            if fresh or tries > 20 * cfg.population:
                population.append(child)
        return population

    def run(self) -> SearchOutcome:
        population = self.first_generation()
        try:
            while True:
                scored = [(p, self.score(p)) for p in population]
                ranked = sorted(scored, key=lambda ps: -ps[1].fitness)
                self.generation += 1
                best = self.ctx.budget.best
                assert best is not None
                self.ctx.log(f"generation {self.generation}: best dev accuracy {best.accuracy:.4f} "
                             f"(fitness {best.fitness:.4f}), {self.ctx.budget.used} forward passes")
                if self.config.generations and self.generation >= self.config.generations:
                    break
                population = self.next_generation(ranked)
        except BudgetExhausted:
            pass
        top = self.ctx.budget.top(10)
        best_template = top[0][0]
        return SearchOutcome(self.ctx.scorer.model_for(best_template), best_template, top,
                             {"generations": self.generation})
