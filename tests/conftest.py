"""Shared fixtures: a tiny in-memory backbone and a toy sentiment task (milliseconds)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from promptlearning.backbones import Backbone, tiny_backbone
from promptlearning.data.examples import Example

POSITIVE = ["great movie", "i love this film", "best story", "fun and funny", "good acting", "really enjoy it"]
NEGATIVE = ["awful film", "boring plot", "worst movie", "bad acting", "i hate this", "so boring"]


@pytest.fixture(scope="session")
def bert() -> Backbone:
    return tiny_backbone("bert")


@pytest.fixture(scope="session")
def llama() -> Backbone:
    return tiny_backbone("llama")


@pytest.fixture(params=["bert", "llama"])
def any_backbone(request: pytest.FixtureRequest, bert: Backbone, llama: Backbone) -> Backbone:
    return bert if request.param == "bert" else llama


def toy_examples(n_per_class: int = 16, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    pos = [Example(f"{rng.choice(POSITIVE)} {rng.choice(POSITIVE)}", 1) for _ in range(n_per_class)]
    neg = [Example(f"{rng.choice(NEGATIVE)} {rng.choice(NEGATIVE)}", 0) for _ in range(n_per_class)]
    return pos + neg


@pytest.fixture
def toy() -> list[Example]:
    return toy_examples()


@contextmanager
def killed_at(monkeypatch: pytest.MonkeyPatch, trainer_class: type[Any], step: int) -> Iterator[None]:
    """Run the body with ``trainer_class`` interrupted (Ctrl-C) at ``step``, as a killed run would be."""
    original = trainer_class.training_step

    def interrupted(self: Any, batch: Any, at: int) -> Any:
        if at == step:
            raise KeyboardInterrupt
        return original(self, batch, at)

    monkeypatch.setattr(trainer_class, "training_step", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        monkeypatch.setattr(trainer_class, "training_step", original)
