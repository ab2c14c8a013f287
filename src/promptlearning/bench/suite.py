"""A benchmark suite: one YAML file that expands into the list of jobs a sweep runs.

The suite's ``kind:`` (default ``experiment``) names the job kind whose module expands it
(:mod:`promptlearning.bench.kinds`): an experiment suite is the cross product tasks x
methods x shots x seeds x backbones; a held-out-task suite trains on source tasks and
evaluates on held-out ones; a prompt-search suite runs searches and the hybrid. Each job is
a plain, fully resolved configuration dict, so its hash names exactly what was run: a
re-run finds its result in the store and skips it, and a changed setting is a new job,
never a silently reused number. The parser is strict: an unknown key, task, method or
option raises :class:`~promptlearning.errors.ConfigError` with one line naming the fix,
before any training starts. ``report:`` lists the published tables built from the store
(:mod:`promptlearning.bench.tables`).

Example::

    name: fewshot16
    store: ../results/fewshot16          # default --store, relative to this file
    backbone: minilm-l6                  # or a list
    tasks: all                           # or [mr, cr], or mappings {name, train_file, ...}
    shots: 16                            # or a list
    seeds: [13, 21, 42, 87, 100]         # each seeds both the few-shot split and training
    max_test: 500
    train: {max_steps: 100, eval_every: 10}
    methods:
      - linear_probe
      - {method: prompt_tuning, method_options: {num_tokens: 20}, train: {lr: 0.03}}
      - peft:prompt_tuning
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from promptlearning.bench.jobs import Job, as_list, canonical_json, fail, job_key, unknown_keys_hint
from promptlearning.errors import ConfigError


@dataclass
class Suite:
    """A parsed suite file: its name, where results go by default, and its jobs."""

    name: str
    path: Path
    jobs: list[Job]
    store: Path | None = None
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    kind: str = "experiment"


def _check_report(value: Any, path: Path) -> None:
    """``report:`` lists {table, out, ...}: a published table, its file, and the table's own options."""
    from promptlearning.bench.tables import TABLES, entry_keys

    for item in as_list(value, "report", path):
        if not isinstance(item, dict) or "table" not in item or "out" not in item:
            raise fail(path, f"each report entry is a mapping {{table: NAME, out: FILE}} (got {item!r})")
        if item["table"] not in TABLES:
            raise fail(path, f"unknown report table {item['table']!r}; choose one of: {', '.join(sorted(TABLES))}")
        unknown = sorted(set(item) - set(entry_keys(item["table"])))
        if unknown:
            raise fail(path, f"unknown key(s) {', '.join(unknown)} in the {item['table']} report entry; "
                             f"valid: {', '.join(entry_keys(item['table']))}")


def load_suite(path: str | Path) -> Suite:
    """Parse and validate a suite file into its jobs (nothing is loaded or trained)."""
    from promptlearning.bench.kinds import SUITE_KINDS, get_kind

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"suite file {path} does not exist; check the path") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"suite file {path} is not valid YAML ({type(exc).__name__}); fix its syntax") from None
    if not isinstance(raw, dict):
        raise fail(path, "must be a mapping with tasks, methods, shots and seeds")
    kind = str(raw.get("kind", "experiment"))
    if kind not in SUITE_KINDS:
        raise fail(path, f"unknown kind {kind!r}; choose one of: {', '.join(SUITE_KINDS)}")
    module = get_kind(kind)
    unknown = sorted(set(raw) - set(module.SUITE_KEYS))
    if unknown:
        raise fail(path, f"unknown key(s) {', '.join(unknown)}; valid: {', '.join(module.SUITE_KEYS)}"
                         + unknown_keys_hint(unknown))
    if raw.get("report") is not None:
        _check_report(raw["report"], path)
    jobs = module.expand(raw, path)
    store = raw.get("store")
    name = str(raw.get("name") or path.stem)
    return Suite(name=name, path=path, jobs=jobs, description=str(raw.get("description") or ""),
                 store=(path.parent / str(store)).resolve() if store else None, raw=raw, kind=kind)


def experiment_config(config: dict[str, Any]) -> Any:
    """The :class:`~promptlearning.runs.single_task.ExperimentConfig` an experiment job dict describes."""
    from promptlearning.bench.kinds.experiment import experiment_config as build

    return build(config)


__all__ = ["Job", "Suite", "canonical_json", "experiment_config", "job_key", "load_suite"]
