"""The experiment job kind: one training run of one method on one task, K and seed.

A suite of this kind is the cross product tasks x methods x shots x seeds x backbones. Each
job is a plain, fully resolved configuration dict (every default written out), so its hash
names exactly what was run. ``peft:*`` methods of such a suite become jobs of the
:mod:`.peft` kind (same config shape, ``runner: peft``). The config shape is what the
stores under ``benchmarks/results`` are keyed by: change it and every stored row is a new job.
"""

from __future__ import annotations

import dataclasses
import gc
import os
from pathlib import Path
from typing import Any

import torch

from promptlearning.bench.jobs import (
    Job,
    as_list,
    check_backbone,
    default_lr,
    fail,
    ints,
    job_key,
    suite_tasks,
    unknown_keys_hint,
)
from promptlearning.bench.measure import machine_info, measure_latency, peak_memory_mb, reset_peak_memory
from promptlearning.errors import PromptLearningError

SUITE_KEYS = ("name", "description", "store", "kind", "report", "backbone", "tasks", "shots", "dev_shots", "seeds",
              "max_test", "max_length", "head", "train", "methods", "latency_repeats")
#: Timed forwards of the model and of the bare backbone per job (after one warm-up each), unless a suite's
#: ``latency_repeats`` says otherwise. How a job is measured, not what it trains: not part of its key.
DEFAULT_LATENCY_REPEATS = 3
METHOD_KEYS = ("method", "method_options", "train", "head", "template", "search", "label")


def _method_entries(value: Any, path: Path) -> list[dict[str, Any]]:
    entries = []
    for item in as_list(value, "methods", path):
        entry = {"method": item} if isinstance(item, str) else item
        if not isinstance(entry, dict) or "method" not in entry:
            raise fail(path, f"each method is a name or a mapping with 'method' (got {item!r})")
        unknown = sorted(set(entry) - set(METHOD_KEYS))
        if unknown:
            raise fail(path, f"unknown key(s) {', '.join(unknown)} in method {entry['method']!r}; "
                              f"valid: {', '.join(METHOD_KEYS)}" + unknown_keys_hint(unknown))
        entries.append(entry)
    labels = [str(e.get("label") or e["method"]) for e in entries]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise fail(path, f"method label(s) {', '.join(dupes)} appear twice; give each setting its own 'label'")
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
        raise fail(path, f"method_options of {name!r} must be a mapping")
    train = {**suite_train, **(entry.get("train") or {})}
    try:
        if peft_runner.is_peft_method(name):
            options = peft_runner.resolve_options(name, options)
            runner = "peft"
        else:
            name = get_method(name).name
            options = make_config(name, options).to_dict()
            runner = "promptlearning"
        if train.get("lr") is None:  # the key carries the rate training uses, so a changed default is a new job
            train["lr"] = default_lr(name, runner)
        train_cfg = TrainConfig.from_dict(train)
        head = HeadConfig.from_dict({**suite_head, **(entry.get("head") or {})}).to_dict()
    except PromptLearningError as exc:
        raise type(exc)(f"suite {path}, method {entry['method']!r}: {exc}") from None
    train_dict = train_cfg.to_dict()
    train_dict["quiet"] = True  # a sweep prints one line per job, not a progress bar per job
    out = {"runner": runner, "method": name, "method_options": options, "train": train_dict, "head": head}
    if entry.get("template") is not None:
        if "template" not in {f.name for f in dataclasses.fields(ExperimentConfig)}:
            raise fail(path, "this version has no templates; remove 'template'")
        out["template"] = str(entry["template"])
    if entry.get("search") is not None:
        # layer-search settings (methods with gates, e.g. spt); only given ones enter the hash
        from promptlearning.configs import build
        from promptlearning.training.gate_search import SearchConfig

        search = entry["search"]
        if not isinstance(search, dict):
            raise fail(path, f"search of {entry['method']!r} must be a mapping of search options")
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


def expand(raw: dict[str, Any], path: Path) -> list[Job]:
    """The jobs of an experiment suite (see the module docstring)."""
    return expand_grid(raw, path, suite_tasks(raw.get("tasks"), path))


def expand_grid(raw: dict[str, Any], path: Path, tasks: list[dict[str, Any]], *, head: dict[str, Any] | None = None,
                max_length: int = 64, fixed: dict[str, Any] | None = None) -> list[Job]:
    """The cross product tasks x shots x methods x seeds x backbones of a suite whose tasks are parsed.

    Other kinds that run one training per job share it: ``head`` is their default head (under the
    suite's and the method's own), ``max_length`` their default length and ``fixed`` keys that
    every job config of theirs carries (its ``kind``); at the defaults the configs are the
    experiment kind's, whose keys the stores are keyed by."""
    from promptlearning.runs.single_task import DataConfig

    suite_train = raw.get("train") or {}
    if not isinstance(suite_train, dict):
        raise fail(path, "'train' must be a mapping of training options")
    if "seed" in suite_train:
        raise fail(path, "set seeds with the top-level 'seeds' list, not train.seed")
    suite_head = raw.get("head") or {}
    if not isinstance(suite_head, dict):
        raise fail(path, "'head' must be a mapping of head options")
    suite_head = {**(head or {}), **suite_head}
    backbones = [check_backbone(b, path) for b in as_list(raw.get("backbone", "minilm-l6"), "backbone", path)]
    shots = ints(raw.get("shots", 16), "shots", path)
    seeds = ints(raw.get("seeds"), "seeds", path)
    methods = [(str(e.get("label") or e["method"]), _method_config(e, suite_train, suite_head, path))
               for e in _method_entries(raw.get("methods"), path)]
    defaults = {label: _defaults(method) for label, method in methods}
    extra = {k: raw[k] for k in ("max_test", "dev_shots") if raw.get(k) is not None}
    max_length = raw.get("max_length", max_length)
    if not isinstance(max_length, int) or max_length < 8:
        raise fail(path, f"max_length must be an integer >= 8 (got {max_length!r})")
    repeats = raw.get("latency_repeats")
    if repeats is not None and (not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 0):
        raise fail(path, f"latency_repeats must be an integer >= 0 (got {repeats!r}); 0 skips the latency measurement")
    measured = {} if repeats is None else {"latency_repeats": repeats}
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
                        config = {**(fixed or {}), **method, "train": {**method["train"], "seed": seed}, "backbone": backbone,
                                  "max_length": max_length, "data": dataclasses.asdict(data_cfg),
                                  "data_files": digests, "task_name": task["task_name"], **measured}
                        jobs.append(Job(job_key(config), label, config, defaults[label]))
    return jobs


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


def execute(job: Job, log: Any = lambda _: None, workdir: Path | None = None) -> dict[str, Any]:
    """Run one experiment (or PEFT) job: the training result plus dev macro-F1, peak memory and latency."""
    from promptlearning.runs.single_task import load_data, make_split, run_experiment
    from promptlearning.training.metrics import evaluate

    cfg = experiment_config(job.config)
    device = torch.device("cuda") if cfg.train.device != "cpu" and torch.cuda.is_available() else torch.device("cpu")
    memory_kind = reset_peak_memory(device)
    if job.config["runner"] == "peft":
        from promptlearning.runs.peft_runner import run_peft_experiment

        result = run_peft_experiment(cfg, log=log)
    else:
        result = run_experiment(cfg, log=log, baseline=False)
    model = result.pop("_model")
    result.pop("adapter", None)
    result["peak_memory_mb"] = peak_memory_mb(device)
    result["peak_memory_kind"] = memory_kind
    split = make_split(cfg.data, load_data(cfg.data))
    dev = evaluate(model, model.encode(split.dev), cfg.train.eval_batch_size) if split.dev else {}
    result["dev_macro_f1"] = dev.get("macro_f1")
    repeats = int(job.config.get("latency_repeats", DEFAULT_LATENCY_REPEATS))
    if repeats:  # on a CPU a 1.5B backbone's timed forwards can outlast its training: a suite may ask for fewer
        test_items = model.encode(split.test[: cfg.train.eval_batch_size])  # the model's own template, if any
        result.update(measure_latency(model, test_items, cfg.train.eval_batch_size, repeats=repeats))
    result["batch_size"] = cfg.train.batch_size
    result["lr"] = cfg.train.lr
    result["label"] = job.label
    result["task"] = job.task
    result["dev_curve"] = [list(point) for point in result.get("dev_curve", [])]
    result["machine"] = machine_info()
    result["load_avg_1m"] = os.getloadavg()[0]  # other work on the machine slows every timing
    del model
    gc.collect()
    return result
