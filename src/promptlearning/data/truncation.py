"""Which part of an over-long input is kept, and how much was cut.

Cutting silently hid two problems: long documents lost their end (often where a review's
verdict is) and short ``--max-length`` values trained on fragments. Runs count what they cut
and say so; ``--truncation`` chooses the part kept: ``head`` (the start; the default and what
every earlier run did), ``tail`` (the end) or ``head+tail`` (a quarter from the start, the rest
from the end, as found best for long reviews by Sun et al., 2019).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from promptlearning.errors import ConfigError

TRUNCATIONS = ("head", "tail", "head+tail")
T = TypeVar("T")


def check_truncation(mode: str) -> str:
    if mode not in TRUNCATIONS:
        raise ConfigError(f"unknown truncation {mode!r}; choose one of: {', '.join(TRUNCATIONS)}")
    return mode


def keep(tokens: Sequence[T], n: int, mode: str) -> list[T]:
    """The ``n`` tokens of ``tokens`` that ``mode`` keeps, in their order."""
    if len(tokens) <= n:
        return list(tokens)
    if n <= 0:
        return []
    if mode == "head":
        return list(tokens[:n])
    if mode == "tail":
        return list(tokens[len(tokens) - n:])
    head = n // 4
    return list(tokens[:head]) + list(tokens[len(tokens) - (n - head):])


@dataclass
class TruncationCount:
    """How many inputs were seen, how many were cut, and how many of their tokens were dropped."""

    inputs: int = 0
    cut: int = 0
    dropped: int = 0

    def add(self, before: int, after: int) -> None:
        self.inputs += 1
        if after < before:
            self.cut += 1
            self.dropped += before - after

    def describe(self, what: str) -> str:
        return f"{self.cut} of {self.inputs} {what} inputs ({self.dropped:,} tokens dropped)"
