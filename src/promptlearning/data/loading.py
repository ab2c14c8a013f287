"""Where a run's examples come from: a registered task or the user's files, and its few-shot split.

Every driver (single task, multi-task, search, bench) reads data through :func:`load_data`
and :func:`make_split`, so one (task, K, data seed) names the same examples everywhere.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptlearning.data.examples import TaskData
from promptlearning.data.fewshot import FewShotSplit, few_shot_split
from promptlearning.data.tasks import load_task
from promptlearning.data.user_files import load_user_task
from promptlearning.errors import ConfigError


@dataclass
class DataConfig:
    task: str | None = "mr"
    train_file: str | None = None
    test_file: str | None = None
    text_column: str = "text"
    text_b_column: str | None = None
    label_column: str = "label"
    description: str | None = None
    shots: int = 16
    dev_shots: int | None = None
    data_seed: int = 13
    max_test: int | None = None  # evaluate on the first N test examples only (smoke runs)
    allow_overlap: bool = False  # score a test file that shares texts with the training file (refused otherwise)

    def check(self) -> None:
        if not self.task and not self.train_file:
            raise ConfigError("no data: give --task NAME (see `promptlearning tasks`) or --train-file FILE")
        if self.shots < 1:
            raise ConfigError(f"shots must be >= 1 (got {self.shots})")
        if self.dev_shots is not None and self.dev_shots < 1:
            raise ConfigError(f"dev_shots must be >= 1 (got {self.dev_shots}): the dev set picks the best step; "
                              "omit --dev-shots to use as many as --shots")
        if self.max_test is not None and self.max_test < 1:
            raise ConfigError(f"max_test must be >= 1 (got {self.max_test}); omit --max-test to use the whole test set")



def load_data(cfg: DataConfig) -> TaskData:
    cfg.check()
    if cfg.train_file and Path(cfg.train_file).is_dir():  # one sub-folder of images per label: an image task
        from promptlearning.data.images import load_image_folder  # PIL and numpy only for image tasks

        return load_image_folder(cfg.train_file, cfg.test_file, cfg.description)
    if cfg.train_file:
        return load_user_task(cfg.train_file, cfg.test_file, text_column=cfg.text_column,
                              label_column=cfg.label_column, text_b_column=cfg.text_b_column,
                              description=cfg.description, allow_overlap=cfg.allow_overlap)
    assert cfg.task is not None
    return load_task(cfg.task)


def make_split(cfg: DataConfig, data: TaskData) -> FewShotSplit:
    split = few_shot_split(data, cfg.shots, cfg.data_seed, cfg.dev_shots)
    if cfg.max_test is not None:
        split = dataclasses.replace(split, test=test_subset(split.test, cfg.max_test))
    return split


def test_subset(test: list[Any], n: int) -> list[Any]:
    """A fixed random subset: the test lists keep file order, whose head is often one class."""
    if n >= len(test):
        return test
    return random.Random(0).sample(test, n)
