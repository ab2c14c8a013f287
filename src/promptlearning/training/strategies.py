"""The trainer strategies, in one table: which trainer fits a run, with which options.

A strategy is a trainer class over the same :class:`~promptlearning.model.PromptModel` plus,
when it has options, a config dataclass that lives in its own YAML section (and field of the
experiment config, and group of ``train`` flags). Each :class:`TrainerStrategy` entry says
all of that and when it applies, so the CLI's flags, the single-task run and the multi-task
run read this table instead of naming strategies.

Adding a strategy is one new module (its config and its trainer, whose constructor takes the
config as the keyword named after its section, like ``MultiTaskTrainer(..., multitask=...)``)
and one line in :data:`STRATEGIES`. A run uses the strategy its options ask for
(``requested_by``: meta-learning, distillation), else the first entry of its kind (one task or
several) whose ``applies`` holds, else that kind's fallback, the entry that always applies
(``plain`` for one task, ``multi_task`` for several). A strategy asked for that cannot serve
the run is an error, never a silent fallback.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptlearning.data.batching import Encoded
from promptlearning.data.examples import Example
from promptlearning.errors import ConfigError
from promptlearning.methods.base import PromptMethod
from promptlearning.model import PromptModel
from promptlearning.training.callbacks import TrainerCallback
from promptlearning.training.config import TrainConfig
from promptlearning.training.distill import DistillConfig, DistillTrainer, load_teachers
from promptlearning.training.gate_search import BilevelTrainer, SearchConfig, split_for_search
from promptlearning.training.meta_learning import MetaConfig, MetaTrainer
from promptlearning.training.multitask import MultiTaskConfig, MultiTaskTrainer
from promptlearning.training.trainer import Trainer


@dataclass(frozen=True)
class RunShape:
    """What a strategy's ``applies`` may look at: the run's strategy options, its task count, its method."""

    sections: Mapping[str, Any]  # section name -> that strategy's options (absent: the defaults)
    several_tasks: bool
    method: PromptMethod | None = None  # None before the model is built

    def options(self, strategy: TrainerStrategy) -> Any:
        return strategy.options(self.sections)


@dataclass
class TrainerInputs:
    """Everything a strategy's trainer is built from."""

    model: PromptModel
    config: TrainConfig
    train: list[Encoded]
    dev: list[Encoded]
    output_dir: Path | None = None
    run_info: dict[str, Any] = field(default_factory=dict)
    sections: Mapping[str, Any] = field(default_factory=dict)  # the run's strategy options, by section
    examples: Sequence[Sequence[Example]] = ()  # each task's training examples (teachers re-encode them)
    log: Callable[[str], Any] = print
    callbacks: Sequence[TrainerCallback] = ()  # hooks on the run's progress (trackers, pruning)


def _always(shape: RunShape) -> bool:
    return True


@dataclass(frozen=True)
class TrainerStrategy:
    """One row of the table (see the module docstring)."""

    name: str
    trainer: type[Trainer]
    summary: str
    config: type | None = None  # its options dataclass (None: it has none)
    section: str | None = None  # YAML section and experiment-config field of those options
    several_tasks: bool = False  # trains one model over several tasks (--tasks) instead of one task
    applies: Callable[[RunShape], bool] = _always  # given the run, is this the strategy?
    requested_by: str | None = None  # the option that asks for it: then a run it cannot serve is refused
    flag_group: str = ""  # title of its options in `promptlearning train --help`
    flag_names: Mapping[str, str] = field(default_factory=dict)  # option -> CLI flag name where they differ
    searches_architecture: bool = False  # it picks the method's layers; the fixed model is then retrained
    build: Callable[[TrainerStrategy, TrainerInputs], Trainer] | None = None  # default: the section keyword

    @property
    def fallback(self) -> bool:
        """It always applies: the strategy of its kind when nothing more specific does."""
        return self.applies is _always

    def options(self, sections: Mapping[str, Any]) -> Any:
        """This strategy's options in a run (its defaults when the run gives none); None without a config."""
        if self.config is None or self.section is None:
            return None
        given = sections.get(self.section)
        return given if given is not None else self.config()

    def make_trainer(self, inputs: TrainerInputs) -> Trainer:
        if self.build is not None:
            return self.build(self, inputs)
        extra = {self.section: self.options(inputs.sections)} if self.section else {}
        return self.trainer(inputs.model, inputs.config, inputs.train, inputs.dev, inputs.output_dir,
                            run_info=inputs.run_info, callbacks=inputs.callbacks, **extra)


# ---------------------------------------------------------------------------- builders that need more than options
def _build_bilevel(strategy: TrainerStrategy, inputs: TrainerInputs) -> Trainer:
    """The gate search's trainer: weights on part of the training data, gates on the rest (see gate_search)."""
    search: SearchConfig = strategy.options(inputs.sections)
    weights, val = split_for_search(inputs.train, search.val_fraction, len(inputs.model.labels), inputs.config.seed)
    config = dataclasses.replace(inputs.config, max_steps=search.search_steps or inputs.config.max_steps)
    return BilevelTrainer(inputs.model, config, search, weights, val, inputs.dev, inputs.output_dir,
                          run_info=inputs.run_info, callbacks=inputs.callbacks)


def _build_distillation(strategy: TrainerStrategy, inputs: TrainerInputs) -> Trainer:
    """Load the teachers (they share the frozen backbone and are no part of the model), then the trainer."""
    distill: DistillConfig = strategy.options(inputs.sections)
    model = inputs.model
    teachers = load_teachers(distill, model.backbone, model.tasks, inputs.examples, inputs.log)
    inputs.run_info["distill_from"] = distill.teachers
    inputs.log(f"distilling teachers into the student (weight {distill.distill_weight:g}, temperature "
               f"{distill.distill_temperature:g}): " + ", ".join(f"{t.task} <- {t.path}" for t in teachers))
    return DistillTrainer(model, inputs.config, inputs.train, inputs.dev, inputs.output_dir,
                          run_info=inputs.run_info, multitask=MULTI_TASK.options(inputs.sections),
                          distill=distill, teachers=teachers, callbacks=inputs.callbacks)


def _build_meta(strategy: TrainerStrategy, inputs: TrainerInputs) -> Trainer:
    meta: MetaConfig = strategy.options(inputs.sections)
    inputs.log(f"meta-learning: {meta.meta_algorithm}, {meta.inner_steps} inner steps, "
               f"{meta.tasks_per_step} episodes per step")
    return MetaTrainer(inputs.model, inputs.config, inputs.train, inputs.dev, inputs.output_dir,
                       run_info=inputs.run_info, meta=meta, callbacks=inputs.callbacks)


def _has_gates(shape: RunShape) -> bool:
    return shape.method is not None and bool(shape.method.architecture_parameters())


def _has_teachers(shape: RunShape) -> bool:
    distill: DistillConfig = shape.options(DISTILLATION)
    return bool(distill.teachers)


def _has_meta_algorithm(shape: RunShape) -> bool:
    meta: MetaConfig = shape.options(META)
    return meta.meta_algorithm is not None


# ---------------------------------------------------------------------------- the table
PLAIN = TrainerStrategy(
    "plain", Trainer, "one task: AdamW on the method and head, dev evaluation, exact resume")
BILEVEL = TrainerStrategy(
    "bilevel", BilevelTrainer, "SPT's gate search: gates on held-out data, weights on the rest; then the "
    "chosen layers are retrained plainly", SearchConfig, "search", applies=_has_gates, searches_architecture=True,
    flag_group="layer search (bi-level, methods with gates, e.g. spt)",
    flag_names={"budget": "layer_budget", "scorer": "layer_scorer", "candidates": "layer_candidates",
                "blocks": "layer_blocks"},
    build=_build_bilevel)
MULTI_TASK = TrainerStrategy(
    "multi_task", MultiTaskTrainer, "several tasks: the plain trainer with batches drawn across tasks",
    MultiTaskConfig, "multitask", several_tasks=True, flag_group="several tasks (with --tasks)")
DISTILLATION = TrainerStrategy(
    "distillation", DistillTrainer, "several tasks, each guided by its single-task teacher adapter",
    DistillConfig, "distill", several_tasks=True, applies=_has_teachers,
    requested_by="--distill-from", flag_group="distillation from per-task teachers (with --tasks)",
    build=_build_distillation)
META = TrainerStrategy(
    "meta", MetaTrainer, "several tasks: episodes, an inner loop that adapts, an outer loop that learns the start",
    MetaConfig, "meta", several_tasks=True, applies=_has_meta_algorithm,
    requested_by="--meta-algorithm", flag_group="meta-learning (with --tasks)", build=_build_meta)

STRATEGIES: tuple[TrainerStrategy, ...] = (PLAIN, BILEVEL, MULTI_TASK, META, DISTILLATION)


# ---------------------------------------------------------------------------- lookups
def sections_of(config: Any) -> dict[str, Any]:
    """Every strategy's options held by an object with one attribute per section (an ExperimentConfig)."""
    return {s.section: getattr(config, s.section) for s in STRATEGIES if s.section and hasattr(config, s.section)}


def configured_strategies() -> list[TrainerStrategy]:
    """The strategies with options of their own, each once per section, in table order."""
    seen: set[str] = set()
    out = []
    for strategy in STRATEGIES:
        if strategy.section and strategy.section not in seen:
            seen.add(strategy.section)
            out.append(strategy)
    return out


def get_strategy(name: str) -> TrainerStrategy:
    for strategy in STRATEGIES:
        if strategy.name == name:
            return strategy
    raise ConfigError(f"unknown trainer strategy {name!r}; choose one of: {', '.join(s.name for s in STRATEGIES)}")


def check_requests(sections: Mapping[str, Any], several_tasks: bool) -> TrainerStrategy | None:
    """The strategy the run's options ask for, if any; refuse requests the run cannot serve or that clash.

    Needs no model, so a run fails on these before it loads anything."""
    shape = RunShape(sections, several_tasks)
    asked = [s for s in STRATEGIES if s.requested_by and s.applies(shape)]
    if len(asked) > 1:
        a, b = asked[:2]
        raise ConfigError(f"{a.requested_by} ({a.name}) and {b.requested_by} ({b.name}) are two training "
                          "strategies; drop one of them")
    for strategy in asked:
        if strategy.several_tasks and not several_tasks:
            raise ConfigError(f"{strategy.requested_by} needs --tasks: {strategy.name} trains one model over several "
                              f"tasks (e.g. --tasks cr,mr {strategy.requested_by} ...)")
        if not strategy.several_tasks and several_tasks:
            raise ConfigError(f"{strategy.requested_by} trains one task; give --task instead of --tasks")
    return asked[0] if asked else None


def select_strategy(sections: Mapping[str, Any], several_tasks: bool,
                    method: PromptMethod | None = None) -> TrainerStrategy:
    """The strategy of this run: the one its options ask for, else the first of its kind that applies,
    else its kind's fallback (see the module docstring)."""
    requested = check_requests(sections, several_tasks)
    if requested is not None:
        return requested
    shape = RunShape(sections, several_tasks, method)
    kind = [s for s in STRATEGIES if s.several_tasks == several_tasks and not s.requested_by]
    for strategy in sorted(kind, key=lambda s: s.fallback):  # specific ones first, in table order
        if strategy.applies(shape):
            return strategy
    raise ConfigError("no trainer strategy applies to this run")  # pragma: no cover - a fallback always applies
