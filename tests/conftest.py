"""Shared fixtures: a tiny in-memory backbone and a toy sentiment task (milliseconds).

Killing and resuming runs: see :mod:`tests.resume_helper`.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from promptlearning.backbones import Backbone, tiny_backbone
from promptlearning.data.examples import Example

POSITIVE = ["great movie", "i love this film", "best story", "fun and funny", "good acting", "really enjoy it"]
NEGATIVE = ["awful film", "boring plot", "worst movie", "bad acting", "i hate this", "so boring"]


def _shared(kind: str) -> Iterator[Backbone]:
    """A backbone shared by the whole session; a test that changes its weights fails the session at teardown
    (it would otherwise make later tests fail far from the cause, e.g. as an adapter "made for another backbone")."""
    backbone = tiny_backbone(kind)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    yield backbone
    changed = [k for k, v in backbone.state_dict().items() if not torch.equal(v, before[k])]
    assert not changed, f"a test changed the shared tiny-{kind} backbone ({changed[:3]}); deepcopy it first"


@pytest.fixture(scope="session")
def bert() -> Iterator[Backbone]:
    yield from _shared("bert")


@pytest.fixture(scope="session")
def llama() -> Iterator[Backbone]:
    yield from _shared("llama")


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


def toy_csv(path: Path, n_per_class: int = 12, seed: int = 5) -> Path:
    """The toy task as a user's CSV file (columns text, label; labels neg and pos)."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for e in toy_examples(n_per_class, seed=seed):
            writer.writerow([e.text_a, ["neg", "pos"][e.label]])
    return path


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A small local Ray cluster for one test module (the modules that use it skip without the ray extra)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20, configure_logging=False,
             log_to_driver=False)
    yield
    ray.shutdown()

