"""A benchmark suite: one YAML file that expands into the list of jobs a sweep runs.

A suite is the cross product tasks x methods x shots x seeds x backbones. Each job is a
plain, fully resolved configuration dict (every default written out), so its hash names
exactly what was run: a re-run finds its result in the store and skips it, and a changed
setting is a new job, never a silently reused number. The parser is strict: an unknown
key, task, method or option raises :class:`~promptlearning.errors.ConfigError` with one
line naming the fix, before any training starts.

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

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from promptlearning.errors import ConfigError, PromptLearningError, UnknownNameError

SUITE_KEYS = ("name", "description", "store", "backbone", "tasks", "shots", "dev_shots", "seeds", "max_test",
              "max_length", "head", "train", "methods")
METHOD_KEYS = ("method", "method_options", "train", "head", "template", "search", "label")
TASK_FILE_KEYS = ("name", "train_file", "test_file", "text_column", "text_b_column", "label_column", "description")
# Settings that change how a job is shown or logged, never its numbers: kept out of the hash.
_NOT_HASHED_TRAIN = ("quiet",)


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


@dataclass
class Suite:
    """A parsed suite file: its name, where results go by default, and its jobs."""

    name: str
    path: Path
    jobs: list[Job]
    store: Path | None = None
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


def canonical_json(value: Any) -> str:
    """One spelling per configuration (sorted keys, no spaces), so equal configs hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def job_key(config: dict[str, Any]) -> str:
    """The job's identity in the store: a hash of its canonical JSON."""
    hashed = json.loads(canonical_json(config))
    for name in _NOT_HASHED_TRAIN:
        hashed.get("train", {}).pop(name, None)
    return hashlib.sha256(canonical_json(hashed).encode()).hexdigest()[:24]


def _fail(path: Path, message: str) -> ConfigError:
    return ConfigError(f"suite {path}: {message}")


def _as_list(value: Any, what: str, path: Path) -> list[Any]:
    if value is None:
        raise _fail(path, f"'{what}' is missing; add e.g. {what}: [..]")
    items = value if isinstance(value, list) else [value]
    if not items:
        raise _fail(path, f"'{what}' is empty; list at least one")
    return items


def _ints(value: Any, what: str, path: Path) -> list[int]:
    items = _as_list(value, what, path)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise _fail(path, f"'{what}' must be integers (got {items!r})")
    return [int(v) for v in items]


def _check_backbone(name: Any, path: Path) -> str:
    from promptlearning.backbones import ALIASES, ZOO

    if not isinstance(name, str) or not name:
        raise _fail(path, f"backbone must be a name or directory (got {name!r})")
    if name in ZOO or name in ALIASES or os.path.isdir(name) or "/" in name:
        return name
    raise UnknownNameError(f"suite {path}: unknown backbone {name!r}; choose one of {', '.join(sorted(ZOO))}, "
                           "a local model directory or a hub id")


def _file_digest(file: str) -> str:
    try:
        return hashlib.sha256(Path(file).read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise ConfigError(f"data file {file} cannot be read ({exc.strerror}); check the path in the suite") from exc


def _tasks(value: Any, path: Path) -> list[dict[str, Any]]:
    """Each task as DataConfig fields plus its display name (``task_name``)."""
    from promptlearning.data import get_task, list_tasks

    if value == "all":
        return [{"task": spec.name, "task_name": spec.name} for spec in list_tasks()]
    out: list[dict[str, Any]] = []
    for item in _as_list(value, "tasks", path):
        if isinstance(item, str):
            try:
                get_task(item)
            except UnknownNameError as exc:
                raise UnknownNameError(f"suite {path}: {exc}") from None
            out.append({"task": item, "task_name": item})
        elif isinstance(item, dict):
            unknown = sorted(set(item) - set(TASK_FILE_KEYS))
            if unknown or "train_file" not in item:
                raise _fail(path, f"a task given as a mapping needs train_file and only {', '.join(TASK_FILE_KEYS)}"
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
            raise _fail(path, f"each task is a registered name or a mapping with train_file (got {item!r})")
    return out


def _method_entries(value: Any, path: Path) -> list[dict[str, Any]]:
    entries = []
    for item in _as_list(value, "methods", path):
        entry = {"method": item} if isinstance(item, str) else item
        if not isinstance(entry, dict) or "method" not in entry:
            raise _fail(path, f"each method is a name or a mapping with 'method' (got {item!r})")
        unknown = sorted(set(entry) - set(METHOD_KEYS))
        if unknown:
            raise _fail(path, f"unknown key(s) {', '.join(unknown)} in method {entry['method']!r}; "
                              f"valid: {', '.join(METHOD_KEYS)}")
        entries.append(entry)
    labels = [str(e.get("label") or e["method"]) for e in entries]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise _fail(path, f"method label(s) {', '.join(dupes)} appear twice; give each setting its own 'label'")
    return entries


def _method_config(entry: dict[str, Any], suite_train: dict[str, Any], suite_head: dict[str, Any],
                   path: Path) -> dict[str, Any]:
    """Validated method name, options, head and training settings of one method entry.

    ``head`` and ``template`` enter the job (and its hash) only when given, so adding them to
    the format left the keys of existing jobs unchanged."""
    from promptlearning.heads.base import HeadConfig
    from promptlearning.methods import get_method, make_config
    from promptlearning.runs import peft_runner
    from promptlearning.runs.single_task import ExperimentConfig
    from promptlearning.training import TrainConfig

    name = str(entry["method"])
    options = entry.get("method_options") or {}
    if not isinstance(options, dict):
        raise _fail(path, f"method_options of {name!r} must be a mapping")
    train = {**suite_train, **(entry.get("train") or {})}
    try:
        if peft_runner.is_peft_method(name):
            options = peft_runner.resolve_options(name, options)
            runner = "peft"
            train.setdefault("lr", peft_runner.default_lr(name))
        else:
            name = get_method(name).name
            options = make_config(name, options).to_dict()
            runner = "promptlearning"
        train_cfg = TrainConfig.from_dict(train)
        head = HeadConfig.from_dict({**suite_head, **(entry.get("head") or {})}).to_dict()
    except PromptLearningError as exc:
        raise type(exc)(f"suite {path}, method {entry['method']!r}: {exc}") from None
    train_dict = train_cfg.to_dict()
    train_dict["quiet"] = True  # a sweep prints one line per job, not a progress bar per job
    out = {"runner": runner, "method": name, "method_options": options, "train": train_dict, "head": head}
    if entry.get("template") is not None:
        if "template" not in {f.name for f in dataclasses.fields(ExperimentConfig)}:
            raise _fail(path, "this version has no templates; remove 'template'")
        out["template"] = str(entry["template"])
    if entry.get("search") is not None:
        # layer-search settings (methods with gates, e.g. spt); only given ones enter the hash
        from promptlearning.configs import build
        from promptlearning.training.gate_search import SearchConfig

        search = entry["search"]
        if not isinstance(search, dict):
            raise _fail(path, f"search of {entry['method']!r} must be a mapping of search options")
        try:
            out["search"] = dataclasses.asdict(build(SearchConfig, search, "search option(s)"))
        except PromptLearningError as exc:
            raise type(exc)(f"suite {path}, method {entry['method']!r}: {exc}") from None
    return out


def _defaults(method: dict[str, Any]) -> dict[str, Any]:
    """The default of every field a job config holds (for the store's adoption of old rows)."""
    from promptlearning.heads.base import HeadConfig
    from promptlearning.methods import make_config
    from promptlearning.runs import peft_runner
    from promptlearning.runs.single_task import DataConfig, ExperimentConfig
    from promptlearning.training import TrainConfig

    top = {f.name: f.default for f in dataclasses.fields(ExperimentConfig) if f.default is not dataclasses.MISSING}
    try:
        options = (peft_runner.resolve_options(method["method"], {}) if method["runner"] == "peft"
                   else make_config(method["method"], {}).to_dict())
    except PromptLearningError:  # a method with required options has no all-default config
        options = {}
    from promptlearning.training.gate_search import SearchConfig

    return {**top, "train": TrainConfig().to_dict(), "data": dataclasses.asdict(DataConfig()),
            "head": HeadConfig().to_dict(), "method_options": options, "search": dataclasses.asdict(SearchConfig())}


def load_suite(path: str | Path) -> Suite:
    """Parse and validate a suite file into its jobs (nothing is loaded or trained)."""
    from promptlearning.runs.single_task import DataConfig

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"suite file {path} does not exist; check the path") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"suite file {path} is not valid YAML ({type(exc).__name__}); fix its syntax") from None
    if not isinstance(raw, dict):
        raise _fail(path, "must be a mapping with tasks, methods, shots and seeds")
    unknown = sorted(set(raw) - set(SUITE_KEYS))
    if unknown:
        raise _fail(path, f"unknown key(s) {', '.join(unknown)}; valid: {', '.join(SUITE_KEYS)}")
    suite_train = raw.get("train") or {}
    if not isinstance(suite_train, dict):
        raise _fail(path, "'train' must be a mapping of training options")
    if "seed" in suite_train:
        raise _fail(path, "set seeds with the top-level 'seeds' list, not train.seed")
    suite_head = raw.get("head") or {}
    if not isinstance(suite_head, dict):
        raise _fail(path, "'head' must be a mapping of head options")
    backbones = [_check_backbone(b, path) for b in _as_list(raw.get("backbone", "minilm-l6"), "backbone", path)]
    tasks = _tasks(raw.get("tasks"), path)
    shots = _ints(raw.get("shots", 16), "shots", path)
    seeds = _ints(raw.get("seeds"), "seeds", path)
    methods = [(str(e.get("label") or e["method"]), _method_config(e, suite_train, suite_head, path))
               for e in _method_entries(raw.get("methods"), path)]
    defaults = {label: _defaults(method) for label, method in methods}
    extra = {k: raw[k] for k in ("max_test", "dev_shots") if raw.get(k) is not None}
    max_length = raw.get("max_length", 64)
    if not isinstance(max_length, int) or max_length < 8:
        raise _fail(path, f"max_length must be an integer >= 8 (got {max_length!r})")
    jobs: list[Job] = []
    for backbone in backbones:
        for task in tasks:
            for k in shots:
                for label, method in methods:
                    for seed in seeds:
                        data_fields = {f.name for f in dataclasses.fields(DataConfig)}
                        data = {key: v for key, v in task.items() if key in data_fields}
                        data_cfg = DataConfig(**data, shots=k, data_seed=seed, **extra)
                        try:
                            data_cfg.check()
                        except PromptLearningError as exc:
                            raise type(exc)(f"suite {path}: {exc}") from None
                        digests = {key: v for key, v in task.items() if key.endswith("_sha256")}
                        config = {**method, "train": {**method["train"], "seed": seed}, "backbone": backbone,
                                  "max_length": max_length, "data": dataclasses.asdict(data_cfg),
                                  "data_files": digests, "task_name": task["task_name"]}
                        jobs.append(Job(job_key(config), label, config, defaults[label]))
    store = raw.get("store")
    name = str(raw.get("name") or path.stem)
    return Suite(name=name, path=path, jobs=jobs, description=str(raw.get("description") or ""),
                 store=(path.parent / str(store)).resolve() if store else None, raw=raw)


def experiment_config(config: dict[str, Any]) -> Any:
    """The :class:`~promptlearning.runs.single_task.ExperimentConfig` a job dict describes."""
    from promptlearning.heads.base import HeadConfig
    from promptlearning.runs.single_task import DataConfig, ExperimentConfig
    from promptlearning.training import TrainConfig
    from promptlearning.training.gate_search import SearchConfig

    extra: dict[str, Any] = {"template": config["template"]} if config.get("template") is not None else {}
    if config.get("search") is not None:
        extra["search"] = SearchConfig(**config["search"])
    return ExperimentConfig(data=DataConfig(**config["data"]), backbone=config["backbone"], method=config["method"],
                            method_options=dict(config["method_options"]), head=HeadConfig(**config["head"]),
                            train=TrainConfig(**config["train"]), max_length=config["max_length"], **extra)
