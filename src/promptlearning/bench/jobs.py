"""A job and what every kind's suite parser shares: its key, strict field checks, tasks.

A job's identity in the store is the hash of its canonical JSON config, so a re-run finds
its result and a changed setting is a new job. Kept apart from :mod:`.suite` (which picks
the kind that expands a file) so that the kinds can use these helpers without a cycle.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptlearning.errors import ConfigError, UnknownNameError

# Settings that change how a job is shown or logged, never its numbers: kept out of the hash.
_NOT_HASHED_TRAIN = ("quiet",)
#: Top-level job fields that say how a job is measured, not what it computes: a changed value finds the same row.
_NOT_HASHED = ("latency_repeats",)
TASK_FILE_KEYS = ("name", "train_file", "test_file", "text_column", "text_b_column", "label_column", "description")

#: The learning rate each method trained at when a job left ``train.lr`` unset, frozen as it was for
#: every row stored so far: such jobs were keyed with ``lr: null``. A job's key now carries the rate
#: training really uses (:func:`default_lr`), so a changed ``default_lr`` is a new job; a stored row
#: with ``lr: null`` is adopted (:func:`with_legacy_lr`) only by a job whose rate is this one. Never
#: edit a value here: it records what was run, not what the code defaults to now.
LEGACY_DEFAULT_LR: dict[str, float] = {
    "cocoop": 2e-3, "coop": 2e-3, "finetune": 3e-5, "fixed_prompt": 1e-2, "generator": 3e-3, "hyperprompt": 1e-2,
    "linear_probe": 1e-2, "multitask_prompt": 3e-2, "p_tuning": 3e-3, "p_tuning_v2": 1e-2, "prefix_tuning": 1e-2,
    "prompt_attention": 3e-2, "prompt_tuning": 3e-2, "spt": 3e-3, "visual_prompt": 1e-2, "vpt": 1e-2,
    "zero_shot": 1e-2,
}


@dataclass(frozen=True)
class Job:
    """One run: a resolved configuration, its hash and how tables name it."""

    key: str
    label: str  # the method's name in tables (a suite may run one method with two settings)
    config: dict[str, Any]
    # every setting's default, so the store can tell a newly added field (at its default) from a change
    defaults: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def task(self) -> str:
        return str(self.config["task_name"])


def canonical_json(value: Any) -> str:
    """One spelling per configuration (sorted keys, no spaces), so equal configs hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def job_key(config: dict[str, Any]) -> str:
    """The job's identity in the store: a hash of its canonical JSON."""
    hashed = json.loads(canonical_json(config))
    for name in _NOT_HASHED_TRAIN:
        hashed.get("train", {}).pop(name, None)
    for name in _NOT_HASHED:
        hashed.pop(name, None)
    return hashlib.sha256(canonical_json(hashed).encode()).hexdigest()[:24]


def default_lr(method: str, runner: str = "promptlearning") -> float:
    """The learning rate a run of ``method`` trains at when ``train.lr`` is unset: the method's own
    ``default_lr`` (what :func:`~promptlearning.training.optimization.parameter_groups` uses for its
    weights, and for the backbone when it fine-tunes), or for a ``peft:*`` method our closest method's."""
    if runner == "peft":
        from promptlearning.runs import peft_runner

        return float(peft_runner.default_lr(method))
    from promptlearning.methods import get_method

    return float(get_method(method).default_lr)


def with_legacy_lr(config: dict[str, Any]) -> dict[str, Any]:
    """A stored job config with ``train.lr: null`` (keyed before jobs carried their learning rate) as it
    would be keyed now: the rate it was trained at, from :data:`LEGACY_DEFAULT_LR`. Other configs as they are."""
    train = config.get("train")
    if not isinstance(train, dict) or "lr" not in train or train["lr"] is not None:
        return config
    if config.get("runner") == "peft" or config.get("method") not in LEGACY_DEFAULT_LR:
        return config
    return {**config, "train": {**train, "lr": LEGACY_DEFAULT_LR[str(config["method"])]}}


def unknown_keys_hint(unknown: list[str]) -> str:
    """What to do instead, for unknown suite keys that name a feature the bench does not run."""
    if "ensemble" in unknown:
        return ("; a bench job trains one prompt, so `ensemble` is not run: train an ensemble with "
                "`promptlearning train --ensemble N`")
    return ""


def fail(path: Path, message: str) -> ConfigError:
    return ConfigError(f"suite {path}: {message}")


def as_list(value: Any, what: str, path: Path) -> list[Any]:
    if value is None:
        raise fail(path, f"'{what}' is missing; add e.g. {what}: [..]")
    items = value if isinstance(value, list) else [value]
    if not items:
        raise fail(path, f"'{what}' is empty; list at least one")
    return items


def ints(value: Any, what: str, path: Path) -> list[int]:
    items = as_list(value, what, path)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise fail(path, f"'{what}' must be integers (got {items!r})")
    return [int(v) for v in items]


def check_backbone(name: Any, path: Path) -> str:
    from promptlearning.backbones import ZOO, packaged_base

    if not isinstance(name, str) or not name:
        raise fail(path, f"backbone must be a name or directory (got {name!r})")
    if packaged_base(name) or os.path.isdir(name) or "/" in name:
        return name
    raise UnknownNameError(f"suite {path}: unknown backbone {name!r}; choose one of {', '.join(sorted(ZOO))}, "
                           "a local model directory or a hub id")


def _file_digest(file: str) -> str:
    try:
        return hashlib.sha256(Path(file).read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise ConfigError(f"data file {file} cannot be read ({exc.strerror}); check the path in the suite") from exc


def _registered(tagging: bool) -> tuple[list[str], Callable[[str], object]]:
    """The registered task names of one kind (sentence or tagging tasks) and the lookup that names the others."""
    if tagging:
        from promptlearning.data.tagging import tagged_task_names

        def lookup(name: str) -> object:
            if name not in tagged_task_names():
                raise UnknownNameError(f"unknown tagging task {name!r}; choose one of: {', '.join(tagged_task_names())} "
                                       "or a mapping with train_file (CoNLL columns or word/TAG lines)")
            return name

        return tagged_task_names(), lookup
    from promptlearning.data import get_task, list_tasks

    return [spec.name for spec in list_tasks()], get_task


def suite_tasks(value: Any, path: Path, *, tagging: bool = False) -> list[dict[str, Any]]:
    """Each task as DataConfig fields plus its display name (``task_name``); registered names are
    sentence tasks, or tagging tasks when ``tagging``."""
    names, lookup = _registered(tagging)
    if value == "all":
        return [{"task": name, "task_name": name} for name in names]
    out: list[dict[str, Any]] = []
    for item in as_list(value, "tasks", path):
        if isinstance(item, str):
            try:
                lookup(item)
            except UnknownNameError as exc:
                raise UnknownNameError(f"suite {path}: {exc}") from None
            out.append({"task": item, "task_name": item})
        elif isinstance(item, dict):
            unknown = sorted(set(item) - set(TASK_FILE_KEYS))
            if unknown or "train_file" not in item:
                raise fail(path, f"a task given as a mapping needs train_file and only {', '.join(TASK_FILE_KEYS)}"
                                  + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
            entry = {k: v for k, v in item.items() if k != "name"}
            for key in ("train_file", "test_file"):
                if entry.get(key):
                    entry[key] = str((path.parent / str(entry[key])).resolve())
                    entry[f"{key}_sha256"] = _file_digest(entry[key])
            entry["task"] = None
            entry["task_name"] = str(item.get("name") or Path(str(item["train_file"])).stem)
            out.append(entry)
        else:
            raise fail(path, f"each task is a registered name or a mapping with train_file (got {item!r})")
    return out
