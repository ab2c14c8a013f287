"""Toy tasks in the tiny backbone's vocabulary, registered for the duration of a test."""

from __future__ import annotations

import random

import pytest

from promptlearning.data import tasks as task_registry
from promptlearning.data.examples import Example, TaskData
from promptlearning.data.tasks import TaskSpec

WORDS = {
    "toy_movies": (["awful film", "boring plot", "worst movie", "bad acting"],
                   ["great movie", "best story", "fun film", "good acting"]),
    "toy_films": (["bad film", "boring story", "awful acting", "worst plot"],
                  ["good film", "great story", "fun acting", "best plot"]),
    "toy_phones": (["phone broke", "battery awful", "cheap quality", "camera broke"],
                   ["phone works", "battery good", "quality great", "camera works"]),
}


def toy_data(name: str, seed: int = 0) -> TaskData:
    rng = random.Random(seed)
    neg, pos = WORDS[name]
    rows = [Example(f"{rng.choice(words)} {rng.choice(['very', 'really', 'so', 'the'])}", label)
            for _ in range(14) for label, words in ((0, neg), (1, pos))]
    return TaskData(name, ["negative", "positive"], f"is the {name.split('_')[1]} text positive or negative?",
                    rows[:20], rows[20:])


@pytest.fixture
def toy_tasks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    for name in WORDS:
        spec = TaskSpec(name, ("negative", "positive"), f"toy task {name}", "tests", lambda n=name: toy_data(n))
        monkeypatch.setitem(task_registry._REGISTRY, name, spec)
        monkeypatch.delitem(task_registry._LOADED, name, raising=False)
    return list(WORDS)
