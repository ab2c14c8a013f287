"""Multi-task training: one model, mixed-task batches, a choice of how tasks are sampled.

A strategy over the plain trainer: only the batch order changes. Each row's task is drawn
with probability proportional to the task's size (``proportional``), equal for all tasks
(``uniform``), or proportional to size^(1/T) (``temperature``, T > 1 flattens toward
uniform); the example is then drawn within that task. Every batch is a pure function of
(seed, step), so a killed run resumes exactly like a single-task one.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch

from promptlearning.configs import option
from promptlearning.data.batching import Encoded
from promptlearning.errors import ConfigError
from promptlearning.training.trainer import Trainer

SAMPLINGS = ("proportional", "uniform", "temperature")


@dataclass
class MultiTaskConfig:
    sampling: str = option("proportional", "task sampling: proportional, uniform or temperature")
    temperature: float = option(2.0, "T of temperature sampling (p ~ size^(1/T))")

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"unknown sampling {self.sampling!r}; choose one of: {', '.join(SAMPLINGS)}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0 (got {self.temperature})")


def task_probabilities(sizes: list[int], sampling: str, temperature: float = 2.0) -> torch.Tensor:
    """Probability of drawing each task for a row, (T,)."""
    n = torch.tensor(sizes, dtype=torch.float64)
    if sampling == "uniform":
        weights = torch.ones_like(n)
    elif sampling == "temperature":
        weights = n.pow(1.0 / temperature)
    elif sampling == "proportional":
        weights = n
    else:
        raise ConfigError(f"unknown sampling {sampling!r}; choose one of: {', '.join(SAMPLINGS)}")
    return weights / weights.sum()


def by_task(items: list[Encoded]) -> dict[int, list[int]]:
    """Indices of the items of each task id."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[item.task_id].append(i)
    return dict(sorted(groups.items()))


class MultiTaskTrainer(Trainer):
    """The plain trainer with batches sampled across tasks."""

    def __init__(self, *args: Any, multitask: MultiTaskConfig | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.multitask = multitask or MultiTaskConfig()
        self.groups = by_task(self.train_items)
        self.task_ids = list(self.groups)
        self.probs = task_probabilities([len(self.groups[t]) for t in self.task_ids], self.multitask.sampling,
                                        self.multitask.temperature)

    def rows_at(self, step: int) -> list[int]:
        gen = torch.Generator().manual_seed(self.config.seed * 100_003 + step)
        tasks = torch.multinomial(self.probs, self.config.batch_size, replacement=True, generator=gen).tolist()
        rows = []
        for t in tasks:
            pool = self.groups[self.task_ids[t]]
            rows.append(pool[int(torch.randint(len(pool), (1,), generator=gen))])
        return rows

    def _fingerprint(self) -> dict[str, Any]:
        # another sampling draws other batches: resuming under it would not continue the same run
        return {**super()._fingerprint(), "multitask": dataclasses.asdict(self.multitask)}

