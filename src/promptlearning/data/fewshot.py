"""Few-shot splits: K examples per class for training and as many for development.

Following LM-BFF (Gao et al., 2021), a split is named by (task, K, data seed), the dev set
has as many examples per class as the train set, and results are averaged over the five
seeds in :data:`LMBFF_SEEDS`. A split depends only on the task's pool (fixed, in file
order) and the seed, through ``random.Random(seed)``, never on Python's per-process hash
randomisation, so it is the same on every machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from promptlearning.data.examples import Example, TaskData, label_counts
from promptlearning.errors import DataError

#: The data seeds LM-BFF used for its few-shot splits.
LMBFF_SEEDS: tuple[int, ...] = (13, 21, 42, 87, 100)


@dataclass
class FewShotSplit:
    """A named few-shot split: K per class for train, ``dev_k`` per class for dev, fixed test."""

    task: str
    k: int
    seed: int
    train: list[Example]
    dev: list[Example]
    test: list[Example]


def max_k(data: TaskData, dev_k: int | None = None) -> int:
    """Largest K the pool allows for every class (with dev_k = K when ``dev_k`` is None)."""
    smallest = min(label_counts(data.pool, data.labels).values(), default=0)
    return smallest // 2 if dev_k is None else smallest - dev_k


def check_pool_draw(task: str, pool_size: int, k: int, dev_k: int, noun: str) -> None:
    """Refuse a draw of K training and ``dev_k`` dev items from a pool of whole items (text pairs, tagged
    sentences) that is too small, naming a --shots that fits or, when none does, how many items to give."""
    if pool_size >= k + dev_k:
        return
    same = dev_k == k
    fits = pool_size // 2 if same else pool_size - dev_k
    if fits >= 1:
        fix = f"use --shots <= {fits}" + ("" if same else f" with --dev-shots {dev_k}")
    else:
        fix = f"give at least {2 if same else dev_k + 1} {noun} (one or more to train on, as many for dev)"
    raise DataError(f"task {task!r} has {pool_size} pool {noun}, fewer than shots + dev shots = {k} + {dev_k}; {fix}")


def few_shot_split(data: TaskData, k: int, seed: int, dev_k: int | None = None) -> FewShotSplit:
    """Sample ``k`` train and ``dev_k`` (default ``k``) dev examples per class from the pool.

    Train and dev are disjoint. Classes are visited in label order; each draws its train
    and dev examples in one ``rng.sample`` over its pool positions; finally train and dev
    are shuffled by the same generator so that classes are interleaved."""
    if k < 1:
        raise DataError(f"k must be at least 1 example per class (got {k}); pass k >= 1")
    dev_per_class = k if dev_k is None else dev_k
    if dev_per_class < 0:
        raise DataError(f"dev_k must be 0 or more examples per class (got {dev_k}); pass dev_k >= 0")
    by_class: list[list[Example]] = [[] for _ in data.labels]
    for ex in data.pool:
        by_class[ex.label].append(ex)
    for label, members in zip(data.labels, by_class, strict=True):
        if len(members) < k + dev_per_class:
            limit = max_k(data, dev_k)
            fix = f"use k <= {limit}" if limit >= 1 else "the pool is too small for any k; add data"
            raise DataError(
                f"task '{data.name}' has {len(members)} pool examples of class '{label}', fewer than "
                f"shots + dev shots = {k} + {dev_per_class}; {fix.replace('k <=', '--shots <=')}"
            )
    rng = random.Random(seed)
    train: list[Example] = []
    dev: list[Example] = []
    for members in by_class:
        picked = rng.sample(range(len(members)), k + dev_per_class)
        train.extend(members[i] for i in picked[:k])
        dev.extend(members[i] for i in picked[k:])
    rng.shuffle(train)
    rng.shuffle(dev)
    return FewShotSplit(task=data.name, k=k, seed=seed, train=train, dev=dev, test=list(data.test))
