"""Cross-task runs: train one model over several tasks, and adapt it to a task it has not seen.

``run_multitask`` is to ``--tasks`` what :func:`~promptlearning.runs.single_task.run_experiment` is
to ``--task``: every task gets its own few-shot split (same K and data seed), rows carry
their task id, and the plain multi-task trainer or the meta trainer fits the model. The
adapter serves every training task, and :func:`adapt_to_task` adds one more: its labels go
to the head, its representation to the method, and a few steps on K examples adapt it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from promptlearning.data import TaskData, few_shot_split
from promptlearning.data.task_info import TaskInfo
from promptlearning.errors import ConfigError
from promptlearning.fileio import write_json
from promptlearning.heads.base import HeadConfig
from promptlearning.launcher import is_main_process
from promptlearning.model import PromptModel
from promptlearning.seeding import seed_everything
from promptlearning.training import TrainConfig, Trainer
from promptlearning.training.callbacks import TrainerCallback
from promptlearning.training.metrics import evaluate
from promptlearning.training.strategies import TrainerInputs, sections_of, select_strategy

CROSS_TASK_HEAD = "label_description"


def task_info(data: TaskData, description: str | None = None) -> TaskInfo:
    return TaskInfo(data.name, list(data.labels), description if description is not None else data.description)


def cross_task_head(head: HeadConfig, log: Any) -> HeadConfig:
    """A head that serves several label sets: a head with per-task weights (the classification default)
    becomes the label-description head, keeping the options that head takes (the verbaliser and the
    label-description head already serve any number of tasks)."""
    if not head.head_class().serves_many_tasks:
        log(f"several tasks: using the {CROSS_TASK_HEAD} head (no per-task weights; unseen tasks need none)")
        return head.with_kind(CROSS_TASK_HEAD)
    return head


def run_multitask(cfg: Any, *, resume: bool = False, log: Any = print,
                  callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Train ``cfg.method`` over ``cfg.tasks`` at once and evaluate it on each task's test set."""
    from promptlearning.runs.single_task import load_data, make_split, shared_backbone

    started = time.perf_counter()
    names = list(cfg.tasks or [])
    if len(names) < 2:
        raise ConfigError("--tasks needs at least two tasks for cross-task training (for one task use --task)")
    sections = sections_of(cfg)
    strategy = select_strategy(sections, several_tasks=True)  # refuses clashing options before anything loads
    per_task = [dataclasses.replace(cfg.data, task=name, train_file=None) for name in names]
    datas = [load_data(data_cfg) for data_cfg in per_task]
    splits = [make_split(data_cfg, d) for data_cfg, d in zip(per_task, datas, strict=True)]
    infos = [task_info(d) for d in datas]
    backbone = shared_backbone(cfg.backbone, cfg.dtype)
    from promptlearning.data.tasks import check_task_modality
    from promptlearning.methods.base import input_kind

    for name in names:
        check_task_modality(name, input_kind(backbone.info), cfg.backbone)
    seed_everything(cfg.train.seed)
    head = cross_task_head(cfg.head, log)
    model = PromptModel.build(backbone, cfg.method, infos[0].labels, method_options=cfg.method_options, head=head,
                              max_length=cfg.max_length, template=cfg.template, tasks=infos,
                              support={i.name: s.train for i, s in zip(infos, splits, strict=True)})
    train_items = [x for i, s in enumerate(splits) for x in model.encode(s.train, i)]
    dev_items = [x for i, s in enumerate(splits) for x in model.encode(s.dev, i)]
    trainable, total = model.num_trainable(), model.num_backbone_parameters()
    log(f"tasks {', '.join(names)}: {len(train_items)} train / {len(dev_items)} dev rows; method {cfg.method}; "
        f"trainable parameters {trainable:,} ({100 * trainable / total:.3f}% of the backbone)")
    if model.task_templates is not None:
        log("templates (one per task): " + "; ".join(f"{n}: {t!r}" for n, t in model.task_templates.items()))
    out = Path(cfg.output_dir) if cfg.output_dir else None
    run_info: dict[str, Any] = {"tasks": names, "shots": cfg.data.shots, "data_seed": cfg.data.data_seed}
    trainer = strategy.make_trainer(TrainerInputs(model, cfg.train, train_items, dev_items, out, run_info, sections,
                                                  [s.train for s in splits], log, callbacks))
    fit = trainer.fit(resume=resume)
    accuracy = {}
    for i, split in enumerate(splits):
        scores = evaluate(model, model.encode(split.test, i), cfg.train.eval_batch_size)
        accuracy[names[i]] = scores["accuracy"]
        log(f"  {names[i]:8s} test accuracy {scores['accuracy']:.4f}")
    mean = sum(accuracy.values()) / len(accuracy)
    log(f"mean test accuracy over {len(names)} tasks: {mean:.4f} (best dev {fit.best_dev:.4f} at step {fit.best_step})")
    result: dict[str, Any] = {"tasks": names, "method": cfg.method, "test_accuracy": accuracy, "mean_test_accuracy": mean,
                              "best_dev": fit.best_dev, "steps": fit.steps, "seconds_per_step": fit.seconds_per_step,
                              "trainable_params": trainable, "wall_seconds": time.perf_counter() - started,
                              "dev_curve": [(h["step"], h["dev_accuracy"]) for h in fit.history]}
    if out is not None:
        if is_main_process():  # a data-parallel run's other processes write nothing
            write_json(out / "results.json", {"config": cfg.to_dict(), "results": result})
        result["adapter"] = str(out / "best")
    result["_model"] = model
    return result


def adapt_to_task(model: PromptModel, data: TaskData, *, shots: int, seed: int = 13, steps: int = 30,
                  lr: float | None = None, max_test: int | None = 500, description: str | None = None,
                  quiet: bool = False, output_dir: str | Path | None = None, log: Any = print,
                  label_words: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Add ``data``'s task to the model, score it at K=0, adapt on K shots per class, score again.

    ``label_words`` gives phrases for some or all labels (the verbaliser scores them, the
    label-description head encodes them): a user's file often has labels like ``0``/``1``
    that say nothing to either head."""
    from promptlearning.configs import check_at_least
    from promptlearning.data import FewShotSplit
    from promptlearning.runs.single_task import test_subset

    check_at_least(0, shots=shots, steps=steps)
    check_at_least(1, max_test=max_test)
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"--lr must be a positive number (got {lr!r})")
    info = task_info(data, description)
    if label_words:
        unknown = sorted(set(label_words) - set(info.labels))
        if unknown:
            raise ConfigError(f"--label-words names {', '.join(map(repr, unknown))}, not a label of task "
                              f"{info.name!r} (its labels: {', '.join(info.labels)}); map those labels")
        info.label_texts = {lab: list(words) for lab, words in label_words.items()}
    if not model.head.serves_many_tasks:
        raise ConfigError(f"this adapter's {model.head.kind} head cannot take a new task's labels; adapt from an "
                          "adapter trained with --head label_description (the default of --tasks) or --head verbalizer")
    if model.method.task_repr_kind == "description" and not info.description.strip():
        raise ConfigError(f"task {info.name!r} has no description and this adapter represents tasks by theirs; "
                          "pass --description \"one sentence saying what to decide\"")
    if shots > 0:
        split = few_shot_split(data, shots, seed)
    else:
        split = FewShotSplit(task=data.name, k=0, seed=seed, train=[], dev=[], test=list(data.test))
    if model.method.task_repr_kind == "support" and not split.train:
        raise ConfigError("this adapter represents tasks by their examples; give --shots >= 1")
    test = test_subset(split.test, max_test) if max_test else split.test
    index = model.add_task(info, support=split.train or None)
    if model.task_templates is not None:
        log(f"{info.name}: template {model.template_of(index)!r}")
    test_items = model.encode(test, index)
    before = evaluate(model, test_items)["accuracy"]
    log(f"{info.name}: test accuracy before adapting (K=0) {before:.4f} on {len(test_items)} examples")
    result: dict[str, Any] = {"task": info.name, "shots": shots, "seed": seed, "before": before, "after": before,
                              "steps": 0, "adapt_seconds": 0.0}
    if shots > 0:
        train_cfg = TrainConfig(max_steps=steps, lr=lr, eval_every=max(1, steps // 5), seed=seed, quiet=quiet,
                                batch_size=min(8, len(split.train)))
        started = time.perf_counter()
        Trainer(model, train_cfg, model.encode(split.train, index), model.encode(split.dev, index),
                output_dir).fit()
        after = evaluate(model, test_items)["accuracy"]
        result.update(after=after, steps=steps, adapt_seconds=time.perf_counter() - started)
        log(f"{info.name}: test accuracy after {steps} steps on {len(split.train)} examples {after:.4f} "
            f"({after - before:+.4f})")
    return result
