"""The registry of search strategies and what every strategy is given.

A strategy is a config dataclass (every option with help text, checked on construction)
plus a class registered under a short name, like a prompt method. It receives a
:class:`SearchContext` (the scorer, the budget, the seed prompts, the seed) and returns a
:class:`SearchOutcome`: the best model found (saved as an adapter), its readable
description and the best candidates. It makes every evaluation through the budget, so
forward passes are counted, the progress bar moves and a killed search resumes exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from promptlearning.configs import Options
from promptlearning.errors import ConfigError, UnknownNameError
from promptlearning.model import PromptModel
from promptlearning.search.budget import SearchBudget
from promptlearning.search.candidates import DiscretePrompt
from promptlearning.search.scoring import PromptScorer, Score


@dataclass
class SearcherConfig(Options):
    """Options of a strategy; subclasses add fields made with :func:`promptlearning.methods.base.option`."""

    where: ClassVar[str] = "search option(s)"


def positive(config: SearcherConfig, *names: str) -> None:
    for name in names:
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be >= 1 (got {getattr(config, name)}); pass --option {name}=...")


@dataclass
class SearchContext:
    scorer: PromptScorer
    budget: SearchBudget
    seeds: list[DiscretePrompt]
    seed: int = 0
    slots: tuple[str, ...] = ("{text_a}",)
    log: Callable[[str], None] = print


@dataclass
class SearchOutcome:
    model: PromptModel  # the best prompt, as a model to save and evaluate
    description: str  # readable: the template, or what the soft prompt is
    top: list[tuple[str, Score]]  # best candidates, readable, with their scores
    extra: dict[str, Any] = field(default_factory=dict)


class Searcher:
    name: ClassVar[str] = ""
    config_class: ClassVar[type[SearcherConfig]] = SearcherConfig
    summary: ClassVar[str] = ""
    # the option that stops the search after that many rounds (generations, steps; 0 = when the budget
    # is spent), or None when it has none; such a search ends by itself and never counts as converged
    rounds_option: ClassVar[str | None] = None
    # the option that bounds a prompt's length in words, or None: seed prompts may then be this long
    max_words_option: ClassVar[str | None] = None
    default_max_words: ClassVar[int] = 64

    def __init__(self, config: SearcherConfig, ctx: SearchContext) -> None:
        self.config = config
        self.ctx = ctx

    @classmethod
    def evaluations_per_round(cls, config: SearcherConfig) -> int:
        """Evaluations of one generation / step: the budget must afford at least this many."""
        return 1

    @classmethod
    def round_limit(cls, config: SearcherConfig) -> int:
        """Rounds after which the search stops by itself (0: none, it runs until the budget is spent)."""
        return int(getattr(config, cls.rounds_option)) if cls.rounds_option else 0

    @classmethod
    def max_prompt_words(cls, config: SearcherConfig) -> int:
        """The longest prompt, in words, the strategy works with (seed prompts are checked against it)."""
        return int(getattr(config, cls.max_words_option)) if cls.max_words_option else cls.default_max_words

    def run(self) -> SearchOutcome:
        raise NotImplementedError


SEARCHERS: dict[str, type[Searcher]] = {}


def register_searcher(cls: type[Searcher]) -> type[Searcher]:
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a non-empty `name`")
    options = {f.name for f in dataclasses.fields(cls.config_class)}
    for declared in (cls.rounds_option, cls.max_words_option):
        if declared is not None and declared not in options:
            raise TypeError(f"{cls.__name__} declares option {declared!r}, which {cls.config_class.__name__} lacks")
    if cls.name in SEARCHERS and SEARCHERS[cls.name] is not cls:
        raise TypeError(f"search strategy {cls.name!r} is already registered by {SEARCHERS[cls.name].__name__}")
    SEARCHERS[cls.name] = cls
    return cls


def _ensure_registered() -> None:
    from promptlearning.registry import import_submodules

    import_submodules("promptlearning.search", skip=frozenset({"base", "runner"}))


def get_searcher(name: str) -> type[Searcher]:
    _ensure_registered()
    key = name.replace("-", "_")
    if key not in SEARCHERS:
        raise UnknownNameError(f"unknown search strategy {name!r}; choose one of: {', '.join(sorted(SEARCHERS))}")
    return SEARCHERS[key]


def list_searchers() -> list[type[Searcher]]:
    _ensure_registered()
    return [SEARCHERS[k] for k in sorted(SEARCHERS)]
