"""The held-out-task job kind: train on source tasks, adapt to and evaluate on a task none of them is.

One job is (held-out task, method, K, seed). How the method meets the held-out task is its
``trained_on``:

- ``none``: not trained; the hand-written prompt of the task, scored at K = 0 (once per task);
- ``target``: trained from scratch on the K examples per class of the held-out task alone;
- ``train_tasks``: trained once on the suite's training tasks (16 shots each), then adapted
  with K examples per class (K = 0: not adapted) by :func:`promptlearning.runs.multitask.adapt_to_task`;
- ``nearest_task``: prompt transfer: the single-task prompt (K = 16) of the training task whose
  description encoding is nearest the held-out task's, then adapted like ``train_tasks``.

How it is adapted is the suite's ``adapt``:

- ``model`` (the default): the trained model itself takes the task on (``adapt_steps`` of its own
  training; ``target`` trains ``max_steps`` from scratch);
- ``prompt``: only the method's soft prompt is kept: a fresh single-task model of the same method
  starts from it (``target``: from the method's own initialisation, seeded by the job's seed),
  is tuned ``adapt_steps`` on the K examples, and its dev accuracy is recorded at step 0 and
  every ``eval_every`` steps. The row keeps that curve: how fast each start converges
  (``benchmarks/suites/meta_convergence_sweep.yaml``: a meta-learned start against vocabulary
  and random ones). K = 0 has nothing to tune and is left out.

What a cross-task training produced is kept under the store's ``artifacts/`` and reused by
every (held-out task, K) job that shares it, so a sweep trains each source model once, as
the old ``benchmarks/meta_loto.py`` did. Example suite::

    kind: heldout
    protocol: leave_one_task_out     # or cross_domain, with train_tasks: [mr, rt]
    tasks: [cr, subj]                # the held-out tasks
    train_tasks: others              # every other registered task (the default)
    shots: [0, 4, 8, 16]
    seeds: [13, 21]
    max_test: 300
    head: {kind: label_description}
    train: {max_steps: 100, adapt_steps: 30, train_shots: 16}
    methods:
      - {label: fixed_prompt, method: fixed_prompt, trained_on: none}
      - {label: prompt_tuning_single, method: prompt_tuning, method_options: {num_tokens: 20}, trained_on: target}
      - {label: hyperprompt, method: hyperprompt, method_options: {num_tokens: 20}, trained_on: train_tasks}
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from promptlearning.bench.jobs import (
    LEGACY_DEFAULT_LR,
    Job,
    as_list,
    canonical_json,
    check_backbone,
    default_lr,
    fail,
    ints,
    job_key,
    unknown_keys_hint,
)
from promptlearning.errors import ConfigError, PromptLearningError, UnknownNameError

SUITE_KEYS = ("name", "description", "store", "kind", "report", "backbone", "tasks", "train_tasks", "protocol",
              "shots", "seeds", "max_test", "head", "train", "methods", "adapt")
METHOD_KEYS = ("label", "method", "method_options", "meta", "trained_on", "train")
TRAINED_ON = ("none", "target", "train_tasks", "nearest_task")
ADAPT = ("model", "prompt")
TRAIN_KEYS = ("max_steps", "adapt_steps", "train_shots", "eval_every")
#: training of the source model: the settings a cross-task run was always made with
CROSS_EVAL_EVERY, CROSS_MAX_TEST, SINGLE_EVAL_EVERY, SOURCE_SHOTS = 20, 100, 10, 16


def _entries(raw: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    out = []
    for item in as_list(raw.get("methods"), "methods", path):
        if not isinstance(item, dict) or "method" not in item or "label" not in item:
            raise fail(path, f"each method of a heldout suite is a mapping with label and method (got {item!r})")
        unknown = sorted(set(item) - set(METHOD_KEYS))
        if unknown:
            raise fail(path, f"unknown key(s) {', '.join(unknown)} in method {item['label']!r}; "
                             f"valid: {', '.join(METHOD_KEYS)}" + unknown_keys_hint(unknown))
        if item.get("trained_on", "train_tasks") not in TRAINED_ON:
            raise fail(path, f"trained_on of {item['label']!r} must be one of {', '.join(TRAINED_ON)}")
        out.append(item)
    labels = [str(e["label"]) for e in out]
    if len(set(labels)) < len(labels):
        raise fail(path, "a method label appears twice; give each setting its own 'label'")
    return out


def _train(raw: dict[str, Any], entry: dict[str, Any], path: Path, adapt: str) -> dict[str, int]:
    train = {**(raw.get("train") or {}), **(entry.get("train") or {})}
    unknown = sorted(set(train) - set(TRAIN_KEYS))
    if unknown or not all(isinstance(v, int) and v >= 0 for v in train.values()):
        raise fail(path, f"train of a heldout suite takes integers {', '.join(TRAIN_KEYS)}"
                         + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    if adapt == "model" and "eval_every" in train:
        raise fail(path, "train.eval_every is for adapt: prompt (the recorded dev curve); remove it or set "
                         "adapt: prompt")
    if adapt == "prompt" and train.get("eval_every", 1) < 1:
        raise fail(path, "train.eval_every must be at least 1")
    defaults = {"max_steps": 100, "adapt_steps": 30, "train_shots": SOURCE_SHOTS}
    return {**defaults, **({"eval_every": 5} if adapt == "prompt" else {}), **train}


def _method(entry: dict[str, Any], path: Path) -> dict[str, Any]:
    from promptlearning.methods import get_method, make_config
    from promptlearning.training.meta_learning import MetaConfig

    try:
        name = get_method(str(entry["method"])).name
        make_config(name, dict(entry.get("method_options") or {}))  # checked; stored as given (as they always were)
        if entry.get("meta"):
            MetaConfig(**entry["meta"])
    except (PromptLearningError, TypeError) as exc:
        raise type(exc)(f"suite {path}, method {entry['label']!r}: {exc}") from None
    return {"method": name, "method_options": dict(entry.get("method_options") or {})}


def expand(raw: dict[str, Any], path: Path) -> list[Job]:
    """One job per held-out task x method x K x seed (a fixed prompt: one per task)."""
    from promptlearning.data import get_task, list_tasks
    from promptlearning.heads.base import HeadConfig

    backbone = check_backbone(raw.get("backbone", "minilm-l6"), path)
    targets = [str(t) for t in as_list(raw.get("tasks"), "tasks", path)]
    registered = [t.name for t in list_tasks()]
    chosen = raw.get("train_tasks", "others")
    for name in targets + ([] if chosen == "others" else [str(t) for t in as_list(chosen, "train_tasks", path)]):
        try:
            get_task(name)
        except UnknownNameError as exc:
            raise UnknownNameError(f"suite {path}: {exc}") from None
    shots, seeds = ints(raw.get("shots"), "shots", path), ints(raw.get("seeds"), "seeds", path)
    max_test = raw.get("max_test", 300)
    protocol = str(raw.get("protocol", "leave_one_task_out" if chosen == "others" else "held_out"))
    adapt = str(raw.get("adapt", "model"))
    if adapt not in ADAPT:
        raise fail(path, f"adapt must be one of {', '.join(ADAPT)} (got {adapt!r})")
    try:
        head = HeadConfig.from_dict({"kind": "label_description", **(raw.get("head") or {})}).to_dict()
    except PromptLearningError as exc:
        raise type(exc)(f"suite {path}: {exc}") from None
    jobs = []
    for target in targets:
        train_tasks = [t for t in registered if t != target] if chosen == "others" else [str(t) for t in chosen]
        for entry in _entries(raw, path):
            role, label = entry.get("trained_on", "train_tasks"), str(entry["label"])
            train = _train(raw, entry, path, adapt)
            if adapt == "prompt" and role == "none":
                raise fail(path, f"method {label!r}: adapt: prompt needs a prompt to start from; trained_on: none "
                                 "has none")
            if adapt == "prompt" and not any(k > 0 for k in shots):
                raise fail(path, "adapt: prompt tunes on the K examples; list shots above 0")
            # K = 0: the untouched start; only a model adapted as a whole (and not trained on the target) has one
            ks = [0] if role == "none" else [k for k in shots if k > 0 or (adapt == "model" and role != "target")]
            for seed in [None] if role == "none" else seeds:
                for k in ks:
                    config: dict[str, Any] = {
                        "kind": "heldout", "protocol": protocol, "heldout_task": target, "task_name": target,
                        "label": label, "backbone": backbone, "head": head, "trained_on": role,
                        "data": {"shots": k, "data_seed": seed, "max_test": max_test},
                        **_method(entry, path), "train_tasks": train_tasks if role in TRAINED_ON[2:] else []}
                    if entry.get("meta"):
                        config["meta"] = dict(entry["meta"])
                    if role == "none":
                        config |= {"template": "handwritten", "train": {"seed": None}}
                    elif adapt == "prompt":  # a key of its own, so the jobs of adapt: model keep theirs
                        config["adapt"] = adapt
                        config["train"] = {"seed": seed, **train} if role != "target" else {
                            "seed": seed, "adapt_steps": train["adapt_steps"], "eval_every": train["eval_every"]}
                    elif role == "target":
                        config["train"] = {"seed": seed, "max_steps": train["max_steps"]}
                    else:
                        config["train"] = {"seed": seed, **train}
                    defaults: dict[str, Any] = {}
                    if role != "none":  # every training of the job runs at the method's rate: the key says which
                        config["train"]["lr"] = default_lr(config["method"])
                        # rows stored before keys held it were trained at the frozen rate: taken over at that rate only
                        defaults = {"train": {"lr": LEGACY_DEFAULT_LR.get(config["method"])}}
                    jobs.append(Job(job_key(config), label, config, defaults))
    return jobs


# ---------------------------------------------------------------------------- running one job
def _rate(c: dict[str, Any]) -> dict[str, Any]:
    """The job's learning rate as part of a kept model's settings: absent at the rate every model kept so far
    was trained at (so their places stay), present otherwise (so a changed default trains anew)."""
    lr = c["train"].get("lr")
    return {} if lr is None or lr == LEGACY_DEFAULT_LR.get(c["method"]) else {"lr": lr}


def _cached(workdir: Path, what: dict[str, Any]) -> Path:
    """Where the model trained with settings ``what`` is kept (shared by the jobs that need it)."""
    digest = hashlib.sha256(canonical_json(what).encode()).hexdigest()[:16]
    return workdir / "artifacts" / f"{what.get('kind', 'model')}-{digest}"


def _load_or_train(backbone: Any, place: Path, train: Any) -> tuple[Any, float]:
    """The kept model at ``place`` and the seconds its training took; trained (and kept) when missing."""
    from promptlearning.model import PromptModel

    done = place / "trained.json"
    if done.is_file():
        seconds = float(json.loads(done.read_text())["seconds"])
        return PromptModel.from_pretrained(place / "model", backbone=backbone), seconds
    started = time.perf_counter()
    model = train()
    seconds = time.perf_counter() - started
    model.save_pretrained(place / "model")
    tmp = done.with_suffix(f".{os.getpid()}")
    tmp.write_text(json.dumps({"seconds": seconds}))
    tmp.replace(done)  # last: a half-written model is never taken for a kept one
    return model, seconds


def single_task(backbone: Any, c: dict[str, Any], task: str, shots: int) -> tuple[Any, float]:
    """Prompt tuning on ``task`` alone with K = ``shots``; returns the model and its test accuracy."""
    import torch

    from promptlearning.data import few_shot_split, load_task
    from promptlearning.data.task_info import TaskInfo
    from promptlearning.heads.base import HeadConfig
    from promptlearning.model import PromptModel
    from promptlearning.runs.single_task import test_subset
    from promptlearning.training import TrainConfig, Trainer
    from promptlearning.training.metrics import evaluate

    seed = c["train"]["seed"]
    data = load_task(task)
    split = few_shot_split(data, shots, seed)
    torch.manual_seed(seed)
    model = PromptModel.build(backbone, c["method"], data.labels, method_options=dict(c["method_options"]),
                              head=HeadConfig(**c["head"]), task=task,
                              tasks=[TaskInfo(task, data.labels, data.description)])
    Trainer(model, TrainConfig(max_steps=c["train"]["max_steps"], lr=c["train"].get("lr"), eval_every=SINGLE_EVAL_EVERY,
                               seed=seed, quiet=True),
            model.encode(split.train), model.encode(split.dev)).fit()
    return model, evaluate(model, model.encode(test_subset(split.test, c["data"]["max_test"])))["accuracy"]


def _fixed(backbone: Any, c: dict[str, Any]) -> dict[str, Any]:
    from promptlearning.data import load_task
    from promptlearning.data.prompts import handwritten_template
    from promptlearning.heads.base import HeadConfig
    from promptlearning.model import PromptModel
    from promptlearning.runs.single_task import test_subset
    from promptlearning.training.metrics import evaluate

    task = c["heldout_task"]
    data = load_task(task)
    model = PromptModel.build(backbone, "fixed_prompt", data.labels, head=HeadConfig(**c["head"]), task=task,
                              template=handwritten_template(task, data.labels).replace("\n", " "))
    return {"test_accuracy": evaluate(model, model.encode(test_subset(data.test, c["data"]["max_test"])))["accuracy"]}


def _cross(backbone: Any, c: dict[str, Any], workdir: Path) -> tuple[Any, dict[str, Any]]:
    """The model trained on the training tasks (kept and shared), and what its row records about it."""
    from promptlearning.heads.base import HeadConfig
    from promptlearning.runs.multitask import run_multitask
    from promptlearning.runs.single_task import ExperimentConfig
    from promptlearning.training import TrainConfig
    from promptlearning.training.meta_learning import MetaConfig

    seed, train = c["train"]["seed"], c["train"]
    what = {"kind": "cross", **{k: c.get(k) for k in ("backbone", "head", "method", "method_options", "meta",
                                                         "train_tasks")},
            "seed": seed, "max_steps": train["max_steps"], "train_shots": train["train_shots"], **_rate(c)}
    place = _cached(workdir, what)

    def fit() -> Any:
        cfg = ExperimentConfig(backbone=c["backbone"], method=c["method"], method_options=dict(c["method_options"]),
                               tasks=list(c["train_tasks"]), head=HeadConfig(**c["head"]),
                               train=TrainConfig(max_steps=train["max_steps"], lr=train.get("lr"),
                                                 eval_every=CROSS_EVAL_EVERY, seed=seed, quiet=True),
                               meta=MetaConfig(**(c.get("meta") or {})), output_dir=str(place / "run"))
        cfg.data.shots, cfg.data.data_seed, cfg.data.max_test = train["train_shots"], seed, CROSS_MAX_TEST
        return run_multitask(cfg, log=lambda *_: None)["_model"]

    model, seconds = _load_or_train(backbone, place, fit)
    return model, {"train_seconds": seconds, "trainable_params": model.num_trainable(),
                   "train_tasks": list(c["train_tasks"])}


def rank_sources(backbone: Any, target: str, candidates: list[str]) -> list[tuple[str, float]]:
    """Source tasks by cosine similarity of their description encodings to the target's (usable at K = 0)."""
    import torch

    from promptlearning.data import load_task
    from promptlearning.data.task_info import cosine_ranking, task_representation
    from promptlearning.runs.multitask import task_info

    infos = [task_info(load_task(t)) for t in [target, *candidates]]
    reprs = torch.stack([task_representation("description", backbone, info) for info in infos])
    return [(candidates[i], score) for i, score in cosine_ranking(reprs[0], reprs[1:])]


def _nearest(backbone: Any, c: dict[str, Any], workdir: Path) -> tuple[Any, dict[str, Any]]:
    """Prompt transfer's start: the kept single-task prompt (K = train_shots) of the nearest training task."""
    source, similarity = rank_sources(backbone, c["heldout_task"], list(c["train_tasks"]))[0]
    source_train = {"seed": c["train"]["seed"], "max_steps": c["train"]["max_steps"]}
    source_cfg = {**c, "train": {**source_train, "lr": c["train"].get("lr")}}
    shots = int(c["train"]["train_shots"])  # the source's K (16, as its single-task row)
    what = {"kind": "source", "task": source, "shots": shots, **{k: c.get(k) for k in (
        "backbone", "head", "method", "method_options")}, "train": source_train, "max_test": c["data"]["max_test"],
        **_rate(c)}
    model, seconds = _load_or_train(backbone, _cached(workdir, what),
                                    lambda: single_task(backbone, source_cfg, source, shots)[0])
    return model, {"source": source, "source_similarity": similarity, "source_seconds": seconds,
                   "trainable_params": model.num_trainable(), "train_tasks": [source]}


def adaptation_curve(backbone: Any, c: dict[str, Any], start: Any = None) -> dict[str, Any]:
    """``adapt: prompt``: a fresh model of the job's method on the held-out task, started from ``start``
    (a soft prompt; None: the method's own initialisation, seeded by the job's seed), tuned on the K
    examples with dev accuracy at step 0 and every ``eval_every`` steps; best-on-dev is kept for test."""
    from promptlearning.data import few_shot_split, load_task
    from promptlearning.data.task_info import TaskInfo
    from promptlearning.heads.base import HeadConfig
    from promptlearning.methods.protocols import SoftPrompt
    from promptlearning.model import PromptModel
    from promptlearning.runs.single_task import test_subset
    from promptlearning.training import TrainConfig, Trainer
    from promptlearning.training.metrics import evaluate

    seed, train = c["train"]["seed"], c["train"]
    data = load_task(c["heldout_task"])
    split = few_shot_split(data, int(c["data"]["shots"]), seed)
    model = PromptModel.build(backbone, c["method"], data.labels,
                              method_options={**c["method_options"], "init_seed": seed}, head=HeadConfig(**c["head"]),
                              task=data.name, tasks=[TaskInfo(data.name, data.labels, data.description)])
    if start is not None:
        if not isinstance(model.method, SoftPrompt):
            raise ConfigError(f"adapt: prompt starts {c['method']} from a soft prompt, which it does not have; "
                              "choose a method with one (prompt_tuning) or adapt: model")
        model.method.set_soft_prompt(start)
    dev = model.encode(split.dev)
    first = evaluate(model, dev)["accuracy"]
    # the whole curve is the row's point: the run goes on past a perfect dev score (the kept model is the same)
    fit = Trainer(model, TrainConfig(max_steps=train["adapt_steps"], lr=train.get("lr"), eval_every=train["eval_every"],
                                     seed=seed, quiet=True, train_past_perfect_dev=True),
                  model.encode(split.train), dev).fit()
    test = evaluate(model, model.encode(test_subset(split.test, c["data"]["max_test"])))["accuracy"]
    return {"curve": [[0, first]] + [[h["step"], h["dev_accuracy"]] for h in fit.history], "test_accuracy": test,
            "adapt_seconds": fit.train_seconds}


def _start(backbone: Any, c: dict[str, Any], workdir: Path) -> tuple[Any, dict[str, Any]]:
    """The soft prompt an ``adapt: prompt`` job starts from (None for ``target``) and what its row records."""
    from promptlearning.methods.protocols import SoftPrompt

    if c["trained_on"] == "target":
        return None, {}
    trained, extra = (_cross if c["trained_on"] == "train_tasks" else _nearest)(backbone, c, workdir)
    if not isinstance(trained.method, SoftPrompt):
        raise ConfigError(f"adapt: prompt starts from the trained method's soft prompt; {c['method']} has none "
                          "(choose prompt_tuning, or adapt: model)")
    return trained.method.soft_prompt(), extra


def execute(job: Job, log: Any = lambda _: None, workdir: Path | None = None) -> dict[str, Any]:
    """Run one held-out-task job; ``workdir`` keeps the source models (default: runs/bench/artifacts)."""
    from promptlearning.backbones import shared_backbone
    from promptlearning.bench.measure import machine_info
    from promptlearning.data import load_task
    from promptlearning.runs.multitask import adapt_to_task

    c = job.config
    workdir = Path(workdir) if workdir is not None else Path("runs") / "bench"
    backbone = shared_backbone(c["backbone"])
    role, k, target = c["trained_on"], int(c["data"]["shots"]), c["heldout_task"]
    if role == "none":
        row = _fixed(backbone, c)
    elif c.get("adapt") == "prompt":
        start, extra = _start(backbone, c, workdir)
        row = {**adaptation_curve(backbone, c, start), **extra}
    elif role == "target":
        started = time.perf_counter()
        _, accuracy = single_task(backbone, c, target, k)
        row = {"test_accuracy": accuracy, "seconds": time.perf_counter() - started}
    else:
        trained, extra = (_cross if role == "train_tasks" else _nearest)(backbone, c, workdir)
        r = adapt_to_task(copy.deepcopy(trained), load_task(target), shots=k, seed=c["train"]["seed"],
                          steps=c["train"]["adapt_steps"], lr=c["train"].get("lr"), max_test=c["data"]["max_test"],
                          quiet=True,
                          log=lambda *_: None)
        row = {"test_accuracy": r["after"], "before": r["before"], "adapt_seconds": r["adapt_seconds"], **extra}
    return row | {"machine": machine_info()}  # where it ran: what a published table states
