"""A method's hyper-parameter search space: what ``promptlearning tune`` may vary, declared by the method.

Each method class sets ``search_space`` next to its config (a mapping of option name to a
dimension); names are the method's own options, or ``train.NAME`` for a training option
(``train.lr``, ``train.head_lr``, ...). Every method is also searched over its learning rate
around its ``default_lr`` unless it declares ``train.lr`` itself. The dimensions are plain data,
so methods need no tuning library; :mod:`promptlearning.bench.tuning` turns them into Optuna
suggestions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LogFloat:
    """A positive float drawn on a log scale in [low, high] (learning rates, standard deviations)."""

    low: float
    high: float


@dataclass(frozen=True)
class IntRange:
    """An integer in [low, high], every ``step`` (prompt lengths, widths)."""

    low: int
    high: int
    step: int = 1


@dataclass(frozen=True)
class Choice:
    """One of a few values (switches, kinds of initialisation or encoder)."""

    values: tuple[Any, ...]


Dimension = LogFloat | IntRange | Choice
TRAIN_PREFIX = "train."


def lr_around(default_lr: float) -> LogFloat:
    """A learning rate from a tenth to ten times the method's default."""
    return LogFloat(default_lr / 10, default_lr * 10)


def full_space(declared: dict[str, Dimension], default_lr: float) -> dict[str, Dimension]:
    """What a method's trials vary: its declared space, plus its learning rate unless declared."""
    return {f"{TRAIN_PREFIX}lr": lr_around(default_lr), **declared}


__all__ = ["TRAIN_PREFIX", "Choice", "Dimension", "IntRange", "LogFloat", "full_space", "lr_around"]
